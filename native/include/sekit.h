/*
 * sekit.h — the C ABI of libsekit.
 *
 * This header is the contract between the native shim (C++17 on libtorch) and
 * every caller (the Java bindings are generated from it by jextract).
 *
 * Rules that hold for every function below:
 *  - Every fallible call returns `sk_error*`: NULL means success; otherwise the
 *    caller owns the error and releases it with sk_error_free(). On error, out
 *    parameters are left untouched.
 *  - No C++ exception ever leaves a function of this header.
 *  - Handles (`sk_tensor*`, `sk_module*`) are opaque. A handle returned through
 *    an out parameter is OWNED by the caller and released with its `*_free`.
 *    Every `*_free` accepts NULL. Pointer parameters are BORROWED (read during
 *    the call only) unless the comment says otherwise.
 *  - Sizes and dimensions are int64_t; byte counts are size_t; booleans are
 *    int32_t (0 = false, anything else = true); strings are UTF-8, NUL-ended.
 *  - A handle may be used from any thread, but not from two threads at once, and
 *    neither may two handles that share state (a module and its parameters, a
 *    Sequential and its children, a tensor and the modules its graph went through).
 *
 * Incompatible changes bump SK_ABI_VERSION; callers check sk_abi_version().
 */
#ifndef SEKIT_H
#define SEKIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SK_ABI_VERSION 1

#if defined(SEKIT_BUILDING) && defined(__GNUC__)
#define SK_API __attribute__((visibility("default")))
#else
#define SK_API
#endif

/* ---- error codes (stable) ---- */
#define SK_ERR_INVALID_ARGUMENT 1 /* a null handle, wrong shape, dtype, rank, ... */
#define SK_ERR_OUT_OF_MEMORY 2    /* an allocation failed (host or device) */
#define SK_ERR_DEVICE 3           /* a CUDA or device error */
#define SK_ERR_INTERNAL 4         /* anything else libtorch or the shim raised */
#define SK_ERR_DISTRIBUTED 5      /* a collective failed or timed out: a peer was lost or stuck */

/* ---- dtypes (stable) ---- */
#define SK_FLOAT32 0
#define SK_FLOAT64 1
#define SK_FLOAT16 2
#define SK_BFLOAT16 3
#define SK_INT64 4

/* ---- device types (stable) ---- */
#define SK_DEVICE_CPU 0
#define SK_DEVICE_CUDA 1

/* ---- memory formats of 4-d tensors (stable) ---- */
#define SK_FORMAT_CONTIGUOUS 0    /* NCHW, row-major */
#define SK_FORMAT_CHANNELS_LAST 1 /* NHWC in memory, still indexed [N, C, H, W] */

/* ---- activations and gates (stable) ---- */
#define SK_ACT_IDENTITY 0
#define SK_ACT_RELU 1
#define SK_ACT_SIGMOID 2
#define SK_ACT_HARD_SIGMOID 3 /* relu6(x + 3) / 6 */
#define SK_ACT_SILU 4
#define SK_ACT_GELU 5
#define SK_ACT_HARD_SWISH 6
#define SK_ACT_TANH 7

/* ---- attention inside OSA and residual blocks (stable) ---- */
#define SK_ATTN_NONE 0
#define SK_ATTN_ESE 1 /* timm 'ese': EffectiveSEModule(out_chs) */
#define SK_ATTN_SE 2  /* timm 'se': SEModule(out_chs), rd_ratio 1/16 */

/* ---- reductions of collectives (stable) ---- */
#define SK_REDUCE_SUM 0
#define SK_REDUCE_AVG 1 /* the sum divided by the world size */
#define SK_REDUCE_MIN 2
#define SK_REDUCE_MAX 3

/* ---- residual blocks (stable) ---- */
#define SK_BLOCK_BASIC 0             /* timm BasicBlock: 3x3 -> 3x3, expansion 1 */
#define SK_BLOCK_BOTTLENECK 1        /* timm Bottleneck: 1x1 -> 3x3 (grouped) -> 1x1, expansion 4 */
#define SK_BLOCK_LEGACY_BOTTLENECK 2 /* timm senet.py SEResNetBottleneck: stride on the 1x1 */
#define SK_BLOCK_PREACT 3            /* BN -> ReLU -> 3x3, twice; SE; identity added */

/* ---- shortcuts of residual blocks (stable) ---- */
#define SK_SHORTCUT_IDENTITY 0 /* x itself (stride 1, same width) */
#define SK_SHORTCUT_CONV 1     /* timm downsample_conv: 1x1 conv with the stride, BN ("0", "1") */
#define SK_SHORTCUT_AVG_CONV 2 /* timm downsample_avg: 2x2 avg pool, 1x1 conv, BN ("1", "2") */

/* ---- ResNet stems (stable) ---- */
#define SK_STEM_CONV7X7 0 /* conv1 7x7/2 -> bn1 -> ReLU -> max pool 3/2 pad 1 (timm '') */
#define SK_STEM_DEEP 1    /* conv1 = three 3x3 (w, w, 2w; the first /2) -> bn1 -> ReLU -> max pool */
#define SK_STEM_LEGACY 2  /* layer0.conv1 7x7/2 -> layer0.bn1 -> ReLU -> pool0 3/2 ceil (senet.py) */
#define SK_STEM_SMALL 3   /* conv1 3x3/1 -> bn1 -> ReLU, no pool (28x28 or 32x32 images) */

typedef struct sk_error sk_error;
typedef struct sk_tensor sk_tensor;
typedef struct sk_module sk_module;
typedef struct sk_optimizer sk_optimizer;
typedef struct sk_process_group sk_process_group;
typedef struct sk_ddp sk_ddp;

/* ===================================================================== */
/* Library                                                                */
/* ===================================================================== */

/* SK_ABI_VERSION of the compiled library. */
SK_API int32_t sk_abi_version(void);
/* libtorch version the library runs on, e.g. "1.13.1". Static string. */
SK_API const char* sk_torch_version(void);
/* 1 when a CUDA device is usable, else 0. */
SK_API int32_t sk_cuda_available(void);
/* Number of CUDA devices (0 without CUDA). */
SK_API int32_t sk_cuda_device_count(void);
/* Page-locks caller host memory in place (cudaHostRegister) so copies between it and a
 * GPU are fast (DMA, no staging copy); every copy of this header is still finished when the
 * call returns. Expensive: do it once per buffer, and undo it with
 * sk_cuda_host_unregister before freeing the memory. A build without CUDA returns
 * SK_ERR_DEVICE. `data` is borrowed. */
SK_API sk_error* sk_cuda_host_register(void* data, size_t bytes);
SK_API sk_error* sk_cuda_host_unregister(void* data);
/* Waits until all work queued on CUDA device `device_index` has finished. Every call of
 * this header that computes on a CUDA tensor only queues the work on the calling thread's
 * current stream, except those that return values to the host (copy_to_host, item,
 * count_correct, clip_grad_norm, optimizer steps), which wait for it. */
SK_API sk_error* sk_cuda_synchronize(int32_t device_index);
/* Whether float32 convolutions (cuDNN) and matrix products (cuBLAS) on CUDA may round their
 * operands to TF32 on GPUs that have it (process-wide), PyTorch's two flags
 * (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32). libtorch's
 * defaults, which are PyTorch's, stay until this is called: on for convolutions, off for
 * matrix products. Each argument is 0 or 1; (0, 0) makes every float32 CUDA result a float32
 * one. */
SK_API sk_error* sk_cuda_set_allow_tf32(int32_t convolutions, int32_t matmul);
/* The flags as bits in *out: SK_TF32_CONVOLUTIONS | SK_TF32_MATMUL when both allow TF32.
 * (libtorch 2.9+ refuses to answer when its newer precision setting contradicts them.) */
#define SK_TF32_CONVOLUTIONS 1
#define SK_TF32_MATMUL 2
SK_API sk_error* sk_cuda_allow_tf32(int32_t* out);
/* Intra-op threads libtorch uses (process-wide): 1 <= n <= sk_max_num_threads(). */
SK_API sk_error* sk_set_num_threads(int32_t n);
SK_API int32_t sk_get_num_threads(void);
/* The largest thread count sk_set_num_threads accepts: 4 per core, at least 8. */
SK_API int32_t sk_max_num_threads(void);
/* Does nothing and returns x: measures the cost of a call into the library. */
SK_API int32_t sk_noop(int32_t x);
/* Seeds libtorch's default generators (CPU, and CUDA when present). */
SK_API sk_error* sk_manual_seed(uint64_t seed);

/* ===================================================================== */
/* Errors                                                                 */
/* ===================================================================== */

/* One of SK_ERR_*; 0 for NULL. */
SK_API int32_t sk_error_code(const sk_error* err);
/* Message owned by `err`, valid until sk_error_free(err). "" for NULL. */
SK_API const char* sk_error_message(const sk_error* err);
SK_API void sk_error_free(sk_error* err);

/* ===================================================================== */
/* Tensors                                                                */
/* ===================================================================== */

/*
 * Views caller memory as a tensor WITHOUT copying. `data` is borrowed for the
 * whole life of the returned tensor (and of anything autograd keeps of it):
 * the caller keeps it alive and must not free it first. `data_bytes` is the
 * size of the memory at `data`; the shape (with `strides`, or contiguous when
 * `strides` is NULL) must fit inside it. `data` must be aligned to the
 * dtype's element size. `shape` and `strides` hold `ndim` entries (borrowed).
 * Sizes must be >= 1. Only SK_DEVICE_CPU memory is accepted here.
 */
SK_API sk_error* sk_tensor_from_blob(void* data, size_t data_bytes, const int64_t* shape,
                              const int64_t* strides, int64_t ndim, int32_t dtype,
                              sk_tensor** out);

/* New contiguous tensors owned by the shim. `shape` has `ndim` entries >= 1. */
SK_API sk_error* sk_tensor_empty(const int64_t* shape, int64_t ndim, int32_t dtype,
                          int32_t device_type, int32_t device_index, sk_tensor** out);
SK_API sk_error* sk_tensor_zeros(const int64_t* shape, int64_t ndim, int32_t dtype,
                          int32_t device_type, int32_t device_index, sk_tensor** out);
/* Standard normal values from libtorch's default generator (see sk_manual_seed). */
SK_API sk_error* sk_tensor_randn(const int64_t* shape, int64_t ndim, int32_t dtype,
                          int32_t device_type, int32_t device_index, sk_tensor** out);
/* Uniform values in [low, high). */
SK_API sk_error* sk_tensor_rand(const int64_t* shape, int64_t ndim, double low, double high,
                         int32_t dtype, int32_t device_type, int32_t device_index,
                         sk_tensor** out);

/* Another handle to the same tensor (same storage, same autograd identity). */
SK_API sk_error* sk_tensor_alias(const sk_tensor* t, sk_tensor** out);
/* A new tensor over t's current memory, outside autograd: it keeps that memory alive even
 * when t's storage is later replaced (sk_module_to, optimizer state conversion), so a
 * caller's view of the memory stays valid for as long as this handle lives. */
SK_API sk_error* sk_tensor_detach(const sk_tensor* t, sk_tensor** out);
/* A contiguous copy with the given dtype on the given device (always a copy). */
SK_API sk_error* sk_tensor_to(const sk_tensor* t, int32_t dtype, int32_t device_type,
                       int32_t device_index, sk_tensor** out);
/* Copies src's values into dst in place (shapes must match; dtype and device
 * may differ). Not recorded by autograd. */
SK_API sk_error* sk_tensor_copy_(sk_tensor* dst, const sk_tensor* src);
/* Copies t's values, in row-major (contiguous) order, to caller memory `dst`
 * (borrowed) of `dst_bytes` bytes, which must equal numel * element size. */
SK_API sk_error* sk_tensor_copy_to_host(const sk_tensor* t, void* dst, size_t dst_bytes);

SK_API void sk_tensor_free(sk_tensor* t);

/* Trivial getters: never fail on a valid handle; on NULL they return -1
 * (or NULL for the data pointer). `dim` outside [0, ndim) gives -1. */
SK_API int64_t sk_tensor_ndim(const sk_tensor* t);
SK_API int64_t sk_tensor_size(const sk_tensor* t, int64_t dim);
SK_API int64_t sk_tensor_stride(const sk_tensor* t, int64_t dim); /* in elements */
SK_API int64_t sk_tensor_numel(const sk_tensor* t);
SK_API int32_t sk_tensor_dtype(const sk_tensor* t);
SK_API int32_t sk_tensor_device_type(const sk_tensor* t);
SK_API int32_t sk_tensor_device_index(const sk_tensor* t); /* -1 on CPU */
SK_API int32_t sk_tensor_is_contiguous(const sk_tensor* t);
SK_API int32_t sk_tensor_requires_grad(const sk_tensor* t);
/* Address of the first element (storage offset included). Borrowed: valid
 * while the tensor's storage lives. */
SK_API void* sk_tensor_data_ptr(const sk_tensor* t);
/* Bytes from the first element to one past the last one reachable through
 * the strides (numel * element size when contiguous). */
SK_API int64_t sk_tensor_span_bytes(const sk_tensor* t);

/* Autograd. requires_grad may be set only on leaf tensors of float dtype. */
SK_API sk_error* sk_tensor_set_requires_grad(sk_tensor* t, int32_t requires_grad);
/* Back-propagates from t. `grad` (borrowed) has t's shape; it may be NULL
 * only when t holds one element (then the gradient is 1). Gradients add up
 * into the leaves' .grad. */
SK_API sk_error* sk_tensor_backward(sk_tensor* t, const sk_tensor* grad);
/* t's accumulated gradient as a new handle, or *out = NULL when there is none. */
SK_API sk_error* sk_tensor_grad(const sk_tensor* t, sk_tensor** out);
/* Sets t's gradient to a copy of `grad` (same shape; converted to t's dtype). */
SK_API sk_error* sk_tensor_set_grad(sk_tensor* t, const sk_tensor* grad);
/* Drops t's gradient (like PyTorch's zero_grad(set_to_none=True)). */
SK_API sk_error* sk_tensor_clear_grad(sk_tensor* t);

/* out = t.index_select(dim, index): index is a 1-d SK_INT64 tensor. */
SK_API sk_error* sk_tensor_index_select(const sk_tensor* t, int64_t dim, const sk_tensor* index,
                                        sk_tensor** out);
/* t laid out in `format` (SK_FORMAT_*): t itself (another handle) when it already is,
 * else a copy. SK_FORMAT_CHANNELS_LAST needs a 4-d tensor. */
SK_API sk_error* sk_tensor_contiguous(const sk_tensor* t, int32_t format, sk_tensor** out);
/* 1 when t is laid out in `format`, else 0 (-1 on NULL or an unknown format). */
SK_API int32_t sk_tensor_is_format(const sk_tensor* t, int32_t format);
/* out = t.narrow(dim, start, length): a view of `length` rows of `dim` from `start`
 * (no copy; it shares t's storage, borrowed memory included). */
SK_API sk_error* sk_tensor_narrow(const sk_tensor* t, int64_t dim, int64_t start, int64_t length,
                                  sk_tensor** out);
/* The one value of a one-element tensor, as a double. */
SK_API sk_error* sk_tensor_item(const sk_tensor* t, double* out);

/* ===================================================================== */
/* Modules                                                                */
/* ===================================================================== */

/*
 * Squeeze-and-Excitation, as timm's SEModule:
 *   s = mean_hw(x)  (add_maxpool: 0.5 * mean + 0.5 * max)
 *   y = x * gate(fc2(act(bn(fc1(s)))))
 * rd_channels > 0 fixes the reduced width; rd_channels == -1 derives it as
 * max(rd_divisor, floor((channels * rd_ratio + rd_divisor / 2) / rd_divisor) * rd_divisor).
 * use_bn adds BatchNorm2d(rd) named "bn" after fc1. act and gate are SK_ACT_*.
 * Parameters: fc1.weight [rd,C,1,1], fc1.bias [rd], fc2.weight [C,rd,1,1],
 * fc2.bias [C] (biases only when `bias`). PyTorch's default initialisation.
 * Created in float32 on the CPU, in training mode.
 */
SK_API sk_error* sk_se_new(int64_t channels, double rd_ratio, int64_t rd_channels,
                    int64_t rd_divisor, int32_t bias, int32_t act, int32_t gate,
                    int32_t add_maxpool, int32_t use_bn, sk_module** out);

/*
 * Effective Squeeze-and-Excitation, as timm's EffectiveSEModule:
 *   y = x * gate(fc(mean_hw(x)))   (add_maxpool as above)
 * Parameters: fc.weight [C,C,1,1], fc.bias [C]. gate defaults (in the
 * bindings) to SK_ACT_HARD_SIGMOID.
 */
SK_API sk_error* sk_ese_new(int64_t channels, int32_t gate, int32_t add_maxpool, sk_module** out);

/*
 * ConvNormAct, as timm's: Conv2d(in, out, kernel, stride, padding = kernel / 2,
 * no bias) -> BatchNorm2d(eps 1e-5, momentum 0.1) -> ReLU. Names conv.weight, bn.*.
 * Every module's convolution weights are created channels-last (the faster layout of
 * libtorch's CPU convolutions; outputs then come out channels-last too); inputs may be in
 * either layout, and sk_module_to_format changes it.
 * separable = 1 gives timm's SeparableConvNormAct instead: depthwise conv_dw
 * (groups = in) -> pointwise 1x1 conv_pw -> bn -> ReLU.
 */
SK_API sk_error* sk_conv_norm_act_new(int64_t in_chs, int64_t out_chs, int64_t kernel,
                                      int64_t stride, int32_t separable, sk_module** out);

/*
 * One-Shot-Aggregation block, as timm's OsaBlock:
 *   outputs = [x]; h = x (depthwise and in != mid: h = conv_reduction(h), 1x1)
 *   for j < layers: h = conv_mid[j](h) (3x3 ConvNormAct, or separable); outputs += h
 *   z = conv_concat(cat(outputs)) (1x1); z = attn(z); residual: z = z + x
 * residual needs in_chs == out_chs; depthwise with in != mid excludes residual.
 * attn is SK_ATTN_*.
 */
SK_API sk_error* sk_osa_block_new(int64_t in_chs, int64_t mid_chs, int64_t out_chs,
                                  int64_t layers, int32_t residual, int32_t depthwise,
                                  int32_t attn, sk_module** out);

/*
 * OSA stage, as timm's OsaStage: optional MaxPool2d(3, 2, ceil_mode) ("pool", no
 * parameters), then `blocks` OsaBlocks under "blocks.{i}"; block i > 0 takes out_chs in
 * and has the residual when `residual`. attn goes on the last block only (timm), or on
 * every block when attn_every_block (the original VoVNetV2 code).
 */
SK_API sk_error* sk_osa_stage_new(int64_t in_chs, int64_t mid_chs, int64_t out_chs,
                                  int64_t blocks, int64_t layers, int32_t downsample,
                                  int32_t residual, int32_t depthwise, int32_t attn,
                                  int32_t attn_every_block, sk_module** out);

/*
 * VoVNet, as timm's VovNet (stem stride 4, output stride 32): stem of three
 * ConvNormAct (the last two separable when depthwise), four OsaStages (stage 0 without
 * pool), head GAP -> flatten -> dropout(drop_rate) -> Linear ("head.fc") when
 * num_classes > 0. stem_chs has 3 entries; stage_conv_chs, stage_out_chs and
 * block_per_stage 4 each (borrowed). timm's initialisation: Kaiming-normal (fan_out,
 * ReLU) convolutions, zero Linear bias. sk_module_forward gives the logits (or the
 * pooled features [N, C] when num_classes == 0).
 */
SK_API sk_error* sk_vovnet_new(const int64_t* stem_chs, const int64_t* stage_conv_chs,
                               const int64_t* stage_out_chs, const int64_t* block_per_stage,
                               int64_t layer_per_block, int32_t residual, int32_t depthwise,
                               int32_t attn, int32_t attn_every_block, int64_t in_chans,
                               int64_t num_classes, double drop_rate, sk_module** out);

/* The four stage outputs of a VoVNet (strides 4, 8, 16, 32) for x [N, in_chans, H, W].
 * `m` may also be a VoVNet prepared by sk_module_prepare_inference.
 * `out` points to 4 slots that receive new handles. */
SK_API sk_error* sk_vovnet_forward_stages(sk_module* m, const sk_tensor* x, int32_t record_grad,
                                          sk_tensor** out);

/*
 * A residual block with channel attention on its branch, as timm's (resnet.py, senet.py):
 *   BASIC:       y = bn2(conv2(relu(bn1(conv1(x)))))               conv1 3x3 with the stride
 *   BOTTLENECK:  y = bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))))  1x1, 3x3 with the
 *                stride and groups = cardinality, 1x1; width = floor(planes * base_width /
 *                64) * cardinality, out = 4 * planes
 *   LEGACY_BOTTLENECK: the same with the stride on conv1 (1x1) and the attention named
 *                "se_module" (senet.py; width = planes when cardinality 1, base width 64)
 *   then y = attn(y) ("se"); out = relu(y + shortcut(x)), shortcut SK_SHORTCUT_*
 *   ("downsample").
 *   PREACT:      y = conv2(relu(norm2(conv1(relu(norm1(x)))))); y = attn(y); out = x + y
 *                (stride 1, identity shortcut, in_chs == planes).
 * BASIC and PREACT need cardinality 1 and base_width 64 (timm asserts it); an identity
 * shortcut needs stride 1 and in_chs equal to the block's output width.
 * attn is SK_ATTN_*: SE gets R = se_rd_channels when > 0, else channels / se_reduction when
 * se_reduction > 0 (the paper's C/r, floored as senet.py does), else timm's
 * max(se_rd_divisor, floor((C * se_rd_ratio + se_rd_divisor / 2) / se_rd_divisor) *
 * se_rd_divisor); biases when se_bias; SK_ACT_* se_act between fc1 and fc2. gate (SK_ACT_*)
 * is the gate of SE (timm: sigmoid) or eSE (timm: hard sigmoid). Attention runs the fused
 * kernels unless sk_module_set_fused(m, 0).
 * PyTorch's default initialisation; float32 on the CPU, training mode.
 */
SK_API sk_error* sk_resnet_block_new(int32_t block, int64_t in_chs, int64_t planes, int64_t stride,
                                     int64_t cardinality, int64_t base_width, int32_t shortcut,
                                     int32_t attn, double se_rd_ratio, int64_t se_rd_divisor,
                                     int64_t se_rd_channels, int64_t se_reduction, int32_t se_bias,
                                     int32_t se_act, int32_t gate, sk_module** out);

/*
 * A ResNet as timm's ResNet (resnet.py; the seresnet*, seresnext*, resnet* models), or as
 * timm's SENet (senet.py, the legacy_seresnet* models) when stem is SK_STEM_LEGACY.
 * stem (SK_STEM_*) of width stem_width ("conv1", "bn1"; "layer0" when legacy); stages
 * "layer1".."layer4" of layers[i] blocks (SK_BLOCK_*, not PREACT) with planes channels[i]
 * (borrowed, 4 entries each), stride 1, 2, 2, 2 on the first block, whose shortcut is a
 * projection when its stride or width changes (SK_SHORTCUT_AVG_CONV when avg_down, else
 * SK_SHORTCUT_CONV); attention as in sk_resnet_block_new on every block (R derived per block:
 * there is no fixed se_rd_channels here); head: global
 * average pool -> dropout(drop_rate) -> Linear ("fc", or "last_linear" when legacy) when
 * num_classes > 0. timm's initialisation: Kaiming-normal (fan_out, ReLU) convolutions,
 * the last BN of each block zeroed (not when legacy), PyTorch's Linear.
 * sk_module_forward gives the logits (or the pooled features [N, C] when num_classes == 0).
 */
SK_API sk_error* sk_resnet_new(int32_t block, const int64_t* layers, const int64_t* channels,
                               int64_t cardinality, int64_t base_width, int32_t stem,
                               int64_t stem_width, int32_t avg_down, int32_t attn,
                               double se_rd_ratio, int64_t se_rd_divisor, int64_t se_reduction,
                               int32_t se_bias, int32_t se_act, int32_t gate, int64_t in_chans,
                               int64_t num_classes, double drop_rate, sk_module** out);

/* The four stage outputs of a ResNet ("layer1".."layer4": strides 4, 8, 16, 32; 1, 2, 4, 8
 * with SK_STEM_SMALL) for x [N, in_chans, H, W]. `out` points to 4 slots that receive new
 * handles. */
SK_API sk_error* sk_resnet_forward_stages(sk_module* m, const sk_tensor* x, int32_t record_grad,
                                          sk_tensor** out);

/* An empty container whose children run in order and are named "0", "1", ...
 * (nn.Sequential). */
SK_API sk_error* sk_sequential_new(sk_module** out);
/* Appends `child` to the Sequential `seq`. The child is shared, not moved: both
 * handles stay valid and must each be freed; the child lives while either does. */
SK_API sk_error* sk_sequential_append(sk_module* seq, sk_module* child);
/* nn.MaxPool2d(kernel, stride, padding 0, ceil_mode); no parameters. */
SK_API sk_error* sk_maxpool2d_new(int64_t kernel, int64_t stride, int32_t ceil_mode, sk_module** out);
/* timm's ClassifierHead: global average pool -> flatten -> dropout(drop_rate) ->
 * Linear (named "fc", zero bias). [N, C, H, W] -> [N, classes]. */
SK_API sk_error* sk_classifier_head_new(int64_t in_chs, int64_t classes, double drop_rate,
                                        sk_module** out);

SK_API void sk_module_free(sk_module* m);

/* y = m(x). x is [N,C,H,W] with the module's dtype and device. *out is a new
 * tensor. record_grad = 1 records the autograd graph (PyTorch's default);
 * 0 runs as under torch.no_grad(). The flag is per call: libtorch's grad mode
 * is thread-local and is never left changed. */
SK_API sk_error* sk_module_forward(sk_module* m, const sk_tensor* x, int32_t record_grad,
                            sk_tensor** out);

/* Training (1) or evaluation (0) mode, recursively. */
SK_API sk_error* sk_module_set_training(sk_module* m, int32_t training);
SK_API int32_t sk_module_is_training(const sk_module* m); /* -1 on NULL */

/* Moves/converts every floating parameter and buffer in place (handles to
 * them stay valid and see the change). */
SK_API sk_error* sk_module_to(sk_module* m, int32_t dtype, int32_t device_type, int32_t device_index);

/* SE and eSE blocks in m (m itself or inside it) run fused CPU kernels by default (one
 * pass to squeeze, one to scale; two passes backward) for float32/float64 inputs in NCHW or
 * channels-last, and so do BatchNorm+ReLU in training (float32 channels-last), max pooling
 * under autograd (float32 channels-last; ATen's values and gradients bit for bit) and Linear
 * on [N, in] CPU inputs (float32/float64, instead of the system BLAS when libtorch has no
 * MKL); fused = 0 selects the libtorch composition (the reference) instead. */
SK_API sk_error* sk_module_set_fused(sk_module* m, int32_t fused);
/* Which build of the fused CPU kernels runs: 1 = AVX2+FMA, 0 = baseline x86-64. */
SK_API int32_t sk_fused_kernels_isa(void);
/* libtorch's CPU allocator in this process is sekit's: a block of 128 KiB or more that a
 * forward, a backward, a loss, a training augmentation, an optimizer's step, zero_grad
 * (the optimizer's or sk_tensor_clear_grad), or sk_tensor_free frees is kept
 * under its size (once that size has been asked for twice) and handed out again: a training step or a
 * forward allocates the sizes of the one before it, and fresh memory costs a page fault per
 * 4 KiB, more than a memory-bound kernel's own pass. What building, loading, converting or
 * preparing a module frees goes back to the system. The cache holds at most its limit: SEKIT_CPU_CACHE_BYTES
 * when the library loads, else a quarter of the machine's memory up to 4 GiB; a block that
 * would pass it empties the cache first, and a failed allocation empties it and retries.
 * sk_release_cached_buffers returns every cached block to the system. */
SK_API void sk_release_cached_buffers(void);
SK_API int64_t sk_cpu_cache_bytes(void);  /* held now */
SK_API int64_t sk_cpu_cache_limit(void);
/* bytes >= 0; 0 turns caching off. Empties the cache when it holds more. */
SK_API sk_error* sk_cpu_cache_set_limit(int64_t bytes);

/* Lays out every 4-d parameter and buffer in `format` (SK_FORMAT_*), in place, as
 * PyTorch's module.to(memory_format=...). Feed such a module inputs in the same format. */
SK_API sk_error* sk_module_to_format(sk_module* m, int32_t format);

/*
 * Inference preparation. *out is a new module (OWNED) that computes m's evaluation-mode
 * forward, without autograd, on a plan made once per input size: BatchNorm folded into the
 * convolutions, ReLU fused, one blocked activation layout with weights reordered once, OSA
 * aggregation written in place (no concatenation), SE/eSE on fused kernels, intermediate
 * buffers in one arena reused from call to call. m must be in evaluation mode; m is shared,
 * not copied: *out follows m's parameters and buffers (it plans again after they change)
 * and keeps m alive. Inputs may be NCHW or channels-last; map results are channels-last.
 * Float32 CPU VoVNets, OSA stages and blocks, ConvNormAct, SE/eSE, MaxPool2d, ClassifierHead
 * and Sequentials of them run the plan; anything else runs m's own forward (eval mode, no
 * grad). The prepared module has no parameters of its own; sk_module_forward runs it.
 */
SK_API sk_error* sk_module_prepare_inference(const sk_module* m, sk_module** out);
/* 1 when the prepared module m runs the plan for float32 CPU inputs, 0 when it runs its
 * source's own forward, -1 when m is NULL or not a prepared module. */
SK_API int32_t sk_module_inference_plan(const sk_module* m);

/*
 * The state dict, in PyTorch's order and with timm's names: parameters and
 * buffers (BatchNorm running stats and num_batches_tracked).
 */
SK_API sk_error* sk_module_state_count(const sk_module* m, int64_t* out_count);
/* Entry `index`: *name is borrowed (valid while the module lives),
 * *is_parameter is 1 for a parameter and 0 for a buffer, *tensor is a new
 * handle aliasing the entry (writes through it change the module). */
SK_API sk_error* sk_module_state_entry(const sk_module* m, int64_t index, const char** name,
                                int32_t* is_parameter, sk_tensor** tensor);

/* ===================================================================== */
/* Training                                                               */
/* ===================================================================== */

/* Mean cross-entropy of logits [N, K] against class indices targets [N] (SK_INT64),
 * with label smoothing in [0, 1) as torch.nn.functional.cross_entropy. *loss is a
 * one-element tensor, in the autograd graph when logits are. */
SK_API sk_error* sk_cross_entropy(const sk_tensor* logits, const sk_tensor* targets,
                                  double label_smoothing, sk_tensor** loss);
/* Number of rows whose argmax equals the target. */
SK_API sk_error* sk_count_correct(const sk_tensor* logits, const sk_tensor* targets,
                                  int64_t* out_count);
/* Top-k accuracy counts as timm's accuracy(logits, targets, topk=ks): with m = min(max(ks), K),
 * the classes of torch.topk(logits, m, dim=1) (largest, sorted; its choice among ties);
 * out_counts[j] = number of rows whose target is among the first min(ks[j], m) of them.
 * ks has n_ks >= 1 entries, each >= 1; out_counts has n_ks entries. */
SK_API sk_error* sk_count_correct_topk(const sk_tensor* logits, const sk_tensor* targets, const int64_t* ks,
                                       int64_t n_ks, int64_t* out_counts);
/* Scales the gradients of m's parameters so that their global L2 norm is at most
 * max_norm (torch.nn.utils.clip_grad_norm_); *total_norm gets the norm before. */
SK_API sk_error* sk_clip_grad_norm(sk_module* m, double max_norm, double* total_norm);

/* torch.optim.SGD over m's parameters (same update, including Nesterov and
 * dampening). The optimizer shares m's parameters; m may be freed first. */
SK_API sk_error* sk_sgd_new(sk_module* m, double lr, double momentum, double dampening,
                            double weight_decay, int32_t nesterov, sk_optimizer** out);
/* torch.optim.AdamW over m's parameters (decoupled weight decay, amsgrad off). */
SK_API sk_error* sk_adamw_new(sk_module* m, double lr, double beta1, double beta2, double eps,
                              double weight_decay, sk_optimizer** out);
/*
 * Parameter groups (torch.optim's param_groups). The parameters of m are numbered in state
 * order (the order sk_module_state_entry lists them, buffers skipped); group_of[i] (n_params
 * entries, exactly m's parameter count) puts parameter i into group group_of[i] in
 * [0, n_groups), or leaves it out of the optimizer with -1 (frozen: never updated, no state).
 * Group g has learning rate lrs[g] and weight decay weight_decays[g]; the other settings are
 * shared, as above. State entries exist only for parameters in a group. The optimizers made
 * by sk_sgd_new and sk_adamw_new have one group holding every parameter.
 */
SK_API sk_error* sk_sgd_new_grouped(sk_module* m, const int32_t* group_of, int64_t n_params, const double* lrs,
                                    const double* weight_decays, int64_t n_groups, double momentum,
                                    double dampening, int32_t nesterov, sk_optimizer** out);
SK_API sk_error* sk_adamw_new_grouped(sk_module* m, const int32_t* group_of, int64_t n_params,
                                      const double* lrs, const double* weight_decays, int64_t n_groups,
                                      double beta1, double beta2, double eps, sk_optimizer** out);
SK_API int64_t sk_optimizer_group_count(const sk_optimizer* opt); /* -1 on NULL */
/* Learning rate of group `group` (torch's param_groups[group]["lr"]). */
SK_API sk_error* sk_optimizer_group_lr(const sk_optimizer* opt, int64_t group, double* out_lr);
SK_API sk_error* sk_optimizer_set_group_lr(sk_optimizer* opt, int64_t group, double lr);
SK_API void sk_optimizer_free(sk_optimizer* opt);
/* One update from the parameters' current gradients (parameters without one, and frozen
 * ones, are skipped, as PyTorch does). */
SK_API sk_error* sk_optimizer_step(sk_optimizer* opt);
/* Drops the gradient of every parameter in a group (set_to_none). */
SK_API sk_error* sk_optimizer_zero_grad(sk_optimizer* opt);
/* Sets the learning rate of every group. */
SK_API sk_error* sk_optimizer_set_lr(sk_optimizer* opt, double lr);
SK_API double sk_optimizer_lr(const sk_optimizer* opt); /* group 0's; -1 on NULL */
/* The optimizer's state tensors, for checkpoints: "<param>.momentum_buffer" (SGD),
 * "<param>.exp_avg", "<param>.exp_avg_sq" (AdamW) and "step" (an SK_INT64 scalar).
 * Entries alias the live state: copying into them restores it. */
SK_API sk_error* sk_optimizer_state_count(const sk_optimizer* opt, int64_t* out_count);
SK_API sk_error* sk_optimizer_state_entry(const sk_optimizer* opt, int64_t index, const char** name,
                                          sk_tensor** tensor);

/* Data augmentation for a batch x [N, C, H, W]: each sample is padded by `pad` with
 * `fill` and cropped back to H x W at a random offset, then flipped left-right with
 * probability 1/2 when `flip`. Deterministic in `seed`. *out is a new tensor. */
SK_API sk_error* sk_random_crop_flip(const sk_tensor* x, int64_t pad, double fill, int32_t flip,
                                     uint64_t seed, sk_tensor** out);

/* ===================================================================== */
/* Images                                                                 */
/* ===================================================================== */

/* JPEG decoding with libjpeg-turbo (TurboJPEG), the library PIL decodes with on Debian,
 * with PIL's settings (accurate integer DCT, fancy upsampling), so that the pixels equal
 * PIL's Image.open(f).convert("RGB") bit for bit. `data` (borrowed) holds `len` bytes of
 * a JPEG file. sk_jpeg_info reads its header: width and height in pixels. */
SK_API sk_error* sk_jpeg_info(const uint8_t* data, size_t len, int32_t* width, int32_t* height);
/* Decodes the JPEG into `out` (borrowed, caller memory of out_len = width * height * 3
 * bytes): RGB, row-major, height x width x 3. Grayscale images come out with three equal
 * channels, CMYK (Adobe) images converted as PIL's convert("RGB") does. A corrupt or
 * truncated file is SK_ERR_INVALID_ARGUMENT; `out` may then hold partial pixels. */
SK_API sk_error* sk_jpeg_decode_rgb(const uint8_t* data, size_t len, uint8_t* out, size_t out_len);

/* ===================================================================== */
/* Distributed (PyTorch's c10d)                                           */
/* ===================================================================== */

/*
 * Joins a process group of `world_size` processes as rank `rank`, with torchrun's
 * rendezvous: rank 0 hosts a c10d TCPStore on `master_port` (all interfaces), the others
 * connect to it at `master_addr`; then Gloo connects every pair of ranks. Gloo binds to
 * the interface named by the environment variable GLOO_SOCKET_IFNAME when set, to
 * 127.0.0.1 when master_addr is a loopback address, else to the address this host's name
 * resolves to. timeout_ms (> 0) bounds the rendezvous and every collective below: a peer
 * that is lost or stuck makes them return SK_ERR_DISTRIBUTED within it, with a message
 * that names the ranks whose heartbeat stopped (each rank writes one to the store every
 * 500 ms). Only CPU tensors (Gloo); CUDA tensors need NCCL, which this build lacks.
 */
SK_API sk_error* sk_process_group_new(const char* master_addr, int32_t master_port, int32_t rank,
                                      int32_t world_size, int64_t timeout_ms, sk_process_group** out);
/* Leaves the group (a DDP made on it keeps its own reference). Accepts NULL. */
SK_API void sk_process_group_free(sk_process_group* pg);
SK_API int32_t sk_process_group_rank(const sk_process_group* pg);       /* -1 on NULL */
SK_API int32_t sk_process_group_world_size(const sk_process_group* pg); /* -1 on NULL */

/* Collectives: every rank calls the same ones in the same order, with tensors of the same
 * shape and dtype (contiguous, on the CPU); they block until done or failed. */
/* t = reduce(t over all ranks), in place; op is SK_REDUCE_*. */
SK_API sk_error* sk_all_reduce(sk_process_group* pg, sk_tensor* t, int32_t op);
/* t = rank root's t, in place. */
SK_API sk_error* sk_broadcast(sk_process_group* pg, sk_tensor* t, int32_t root);
/* Returns when every rank has entered it. */
SK_API sk_error* sk_barrier(sk_process_group* pg);
/* *out (new) is [world_size, *t.shape]: row r is rank r's t. */
SK_API sk_error* sk_all_gather(sk_process_group* pg, const sk_tensor* t, sk_tensor** out);

/*
 * SyncBatchNorm (PyTorch's nn.SyncBatchNorm.convert_sync_batchnorm): every BatchNorm2d in m
 * then normalises, in training mode, with the mean and variance of the whole batch over all
 * ranks of pg rather than of this rank's share, and updates its running statistics with them,
 * so they are the same on every rank. Each such forward all-gathers the per-channel
 * statistics and its backward all-reduces two per-channel gradient sums: every rank must run
 * the same forwards and backwards, and nothing else may use pg meanwhile. Evaluation mode is
 * unchanged. pg NULL gives back each rank's own statistics. m keeps pg's connections alive
 * while converted. *converted (when not NULL) = the number of BatchNorm2d layers set.
 */
SK_API sk_error* sk_sync_batchnorm(sk_module* m, sk_process_group* pg, int32_t* converted);

/*
 * Data-parallel training of module m over pg, as PyTorch's DistributedDataParallel: at
 * creation every parameter and buffer is set to rank 0's (broadcast); then, during each
 * backward through m, each parameter's gradient (after accumulation) is multiplied by
 * 1 / world_size into a bucket as soon as it is ready, and a bucket whose gradients are all
 * in (buckets of at most bucket_bytes, filled in reverse parameter order, launched in
 * order) is all-reduced asynchronously while backward goes on. When backward ends, it
 * waits for every bucket and writes the averages back into the gradients, so after
 * sk_tensor_backward returns every rank holds the same averaged gradients. A parameter
 * that got no gradient counts as zero; one that does not require a gradient (frozen) is
 * broadcast with the others but never reduced, as in PyTorch's DDP. m's parameters must be
 * on the CPU; m and pg stay alive while the DDP lives.
 */
SK_API sk_error* sk_ddp_new(sk_process_group* pg, sk_module* m, int64_t bucket_bytes, sk_ddp** out);
/* Detaches the gradient hooks. Accepts NULL. */
SK_API void sk_ddp_free(sk_ddp* ddp);
/* Before a forward: drops what a failed backward left, and, when broadcast_buffers, sets
 * m's buffers (BatchNorm statistics) to rank 0's, as DDP does before each forward. */
SK_API sk_error* sk_ddp_prepare(sk_ddp* ddp, int32_t broadcast_buffers);
/* Sets every parameter and buffer of m to rank 0's again (after loading a checkpoint). */
SK_API sk_error* sk_ddp_broadcast_state(sk_ddp* ddp);
/* Number of buckets, gradient reductions done, and seconds spent waiting for buckets at the
 * end of backward (communication not hidden behind backward), since creation. */
SK_API sk_error* sk_ddp_stats(const sk_ddp* ddp, int64_t* buckets, int64_t* reductions,
                              double* wait_seconds);

#ifdef __cplusplus
}
#endif

#endif /* SEKIT_H */
