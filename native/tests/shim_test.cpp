// Unit tests of libsekit through its C ABI only (what any caller sees).
#include "sekit.h"

#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                        \
  do {                                                                     \
    ++checks;                                                              \
    if (!(cond)) {                                                         \
      ++failures;                                                          \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                      \
  } while (0)

// Expects `err` to be an error with `code` whose message contains `needle`.
static void expect_error(sk_error* err, int32_t code, const char* needle, int line) {
  ++checks;
  if (err == nullptr) {
    ++failures;
    std::fprintf(stderr, "line %d: expected an error, got success\n", line);
    return;
  }
  std::string msg = sk_error_message(err);
  if (sk_error_code(err) != code || msg.find(needle) == std::string::npos) {
    ++failures;
    std::fprintf(stderr, "line %d: expected code %d containing '%s', got %d: %s\n", line, code,
                 needle, sk_error_code(err), msg.c_str());
  }
  sk_error_free(err);
}
#define EXPECT_ERROR(call, code, needle) expect_error((call), (code), (needle), __LINE__)
#define EXPECT_OK(call)                                                    \
  do {                                                                     \
    sk_error* e_ = (call);                                                 \
    ++checks;                                                              \
    if (e_) {                                                              \
      ++failures;                                                          \
      std::fprintf(stderr, "%s:%d: unexpected error: %s\n", __FILE__, __LINE__, sk_error_message(e_)); \
      sk_error_free(e_);                                                   \
    }                                                                      \
  } while (0)

static void test_library() {
  CHECK(sk_abi_version() == SK_ABI_VERSION);
  CHECK(std::strlen(sk_torch_version()) > 0);
  CHECK(sk_cuda_device_count() >= 0);
  EXPECT_ERROR(sk_set_num_threads(0), SK_ERR_INVALID_ARGUMENT, "threads");
  CHECK(sk_error_code(nullptr) == 0);
  CHECK(std::strcmp(sk_error_message(nullptr), "") == 0);
  sk_error_free(nullptr);
  sk_tensor_free(nullptr);
  sk_module_free(nullptr);
}

static void test_from_blob() {
  std::vector<float> buf(2 * 3 * 4, 0.0f);
  int64_t shape[3] = {2, 3, 4};
  sk_tensor* t = nullptr;
  EXPECT_OK(sk_tensor_from_blob(buf.data(), buf.size() * 4, shape, nullptr, 3, SK_FLOAT32, &t));
  CHECK(t != nullptr);
  CHECK(sk_tensor_data_ptr(t) == buf.data());  // zero copy
  CHECK(sk_tensor_ndim(t) == 3 && sk_tensor_size(t, 2) == 4 && sk_tensor_stride(t, 0) == 12);
  CHECK(sk_tensor_size(t, 3) == -1);
  CHECK(sk_tensor_numel(t) == 24 && sk_tensor_dtype(t) == SK_FLOAT32);
  CHECK(sk_tensor_device_type(t) == SK_DEVICE_CPU && sk_tensor_is_contiguous(t) == 1);
  buf[5] = 42.0f;  // seen through the tensor
  std::vector<float> back(24);
  EXPECT_OK(sk_tensor_copy_to_host(t, back.data(), back.size() * 4));
  CHECK(back[5] == 42.0f);
  EXPECT_ERROR(sk_tensor_copy_to_host(t, back.data(), 10), SK_ERR_INVALID_ARGUMENT, "destination holds 10");
  sk_tensor_free(t);

  sk_tensor* u = nullptr;
  EXPECT_ERROR(sk_tensor_from_blob(buf.data(), 8, shape, nullptr, 3, SK_FLOAT32, &u),
               SK_ERR_INVALID_ARGUMENT, "needs 96 bytes");
  EXPECT_ERROR(sk_tensor_from_blob(reinterpret_cast<char*>(buf.data()) + 1, 64, shape, nullptr, 1,
                                   SK_FLOAT32, &u),
               SK_ERR_INVALID_ARGUMENT, "not aligned");
  int64_t bad[2] = {2, 0};
  EXPECT_ERROR(sk_tensor_from_blob(buf.data(), 96, bad, nullptr, 2, SK_FLOAT32, &u),
               SK_ERR_INVALID_ARGUMENT, "sizes must be >= 1");
  EXPECT_ERROR(sk_tensor_from_blob(nullptr, 96, shape, nullptr, 3, SK_FLOAT32, &u),
               SK_ERR_INVALID_ARGUMENT, "data must not be NULL");
  EXPECT_ERROR(sk_tensor_from_blob(buf.data(), 96, shape, nullptr, 3, 99, &u),
               SK_ERR_INVALID_ARGUMENT, "unknown dtype");
  EXPECT_ERROR(sk_tensor_from_blob(buf.data(), 96, shape, nullptr, 3, SK_FLOAT32, nullptr),
               SK_ERR_INVALID_ARGUMENT, "out must not be NULL");
  CHECK(u == nullptr);  // untouched on error
}

// eSE with fc.weight = 0 and fc.bias = b gives y = x * hardsigmoid(b[c]).
static void test_ese_closed_form() {
  const int64_t N = 2, C = 3, H = 2, W = 2;
  sk_module* m = nullptr;
  EXPECT_OK(sk_ese_new(C, SK_ACT_HARD_SIGMOID, 0, &m));
  int64_t count = 0;
  EXPECT_OK(sk_module_state_count(m, &count));
  CHECK(count == 2);
  const char* names[2] = {nullptr, nullptr};
  for (int64_t i = 0; i < count; ++i) {
    int32_t is_param = -1;
    sk_tensor* p = nullptr;
    EXPECT_OK(sk_module_state_entry(m, i, &names[i], &is_param, &p));
    CHECK(is_param == 1);
    float bias[3] = {-4.0f, 0.0f, 1.5f};
    if (i == 0) {
      std::vector<float> zeros(C * C, 0.0f);
      int64_t ws[4] = {C, C, 1, 1};
      sk_tensor* z = nullptr;
      EXPECT_OK(sk_tensor_from_blob(zeros.data(), zeros.size() * 4, ws, nullptr, 4, SK_FLOAT32, &z));
      EXPECT_OK(sk_tensor_copy_(p, z));
      sk_tensor_free(z);
    } else {
      int64_t bs[1] = {C};
      sk_tensor* b = nullptr;
      EXPECT_OK(sk_tensor_from_blob(bias, sizeof bias, bs, nullptr, 1, SK_FLOAT32, &b));
      EXPECT_OK(sk_tensor_copy_(p, b));
      sk_tensor_free(b);
    }
    sk_tensor_free(p);
  }
  CHECK(std::string(names[0]) == "fc.weight" && std::string(names[1]) == "fc.bias");

  std::vector<float> x(N * C * H * W);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) - 7.0f;
  int64_t xs[4] = {N, C, H, W};
  sk_tensor* xt = nullptr;
  sk_tensor* y = nullptr;
  EXPECT_OK(sk_tensor_from_blob(x.data(), x.size() * 4, xs, nullptr, 4, SK_FLOAT32, &xt));
  EXPECT_OK(sk_module_forward(m, xt, 0, &y));  // no graph recorded
  std::vector<float> out(x.size());
  EXPECT_OK(sk_tensor_copy_to_host(y, out.data(), out.size() * 4));
  const float gate[3] = {0.0f, 0.5f, 0.75f};  // hardsigmoid(-4), (0), (1.5)
  bool ok = true;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t k = 0; k < H * W; ++k) {
        size_t i = static_cast<size_t>(((n * C + c) * H * W) + k);
        ok = ok && std::fabs(out[i] - x[i] * gate[c]) < 1e-6f;
      }
  CHECK(ok);

  // Backward with grad = 1 gives d/dx = gate (fc weights are zero), and grads on params.
  std::vector<float> ones(x.size(), 1.0f);
  sk_tensor* g = nullptr;
  EXPECT_OK(sk_tensor_from_blob(ones.data(), ones.size() * 4, xs, nullptr, 4, SK_FLOAT32, &g));
  EXPECT_ERROR(sk_tensor_backward(y, g), SK_ERR_INVALID_ARGUMENT, "does not require grad");
  // With record_grad the parameters (which require grad) put y in a graph.
  sk_tensor_free(y);
  y = nullptr;
  EXPECT_OK(sk_tensor_set_requires_grad(xt, 1));
  EXPECT_OK(sk_module_forward(m, xt, 1, &y));
  EXPECT_OK(sk_tensor_backward(y, g));
  sk_tensor* gx = nullptr;
  EXPECT_OK(sk_tensor_grad(xt, &gx));
  CHECK(gx != nullptr);
  std::vector<float> gxv(x.size());
  EXPECT_OK(sk_tensor_copy_to_host(gx, gxv.data(), gxv.size() * 4));
  // d/dx_i = gate_c + (terms through fc, zero because fc.weight = 0)
  CHECK(std::fabs(gxv[0] - 0.0f) < 1e-6f && std::fabs(gxv[4] - 0.5f) < 1e-6f);
  sk_tensor_free(gx);
  sk_tensor_free(g);
  sk_tensor_free(y);
  sk_tensor_free(xt);
  sk_module_free(m);
}

static void test_bad_module_input() {
  sk_module* m = nullptr;
  EXPECT_ERROR(sk_se_new(0, 1.0 / 16, -1, 8, 1, SK_ACT_RELU, SK_ACT_SIGMOID, 0, 0, &m),
               SK_ERR_INVALID_ARGUMENT, "channels must be >= 1");
  EXPECT_ERROR(sk_se_new(64, 1.0 / 16, 0, 8, 1, SK_ACT_RELU, SK_ACT_SIGMOID, 0, 0, &m),
               SK_ERR_INVALID_ARGUMENT, "rd_channels must be >= 1");
  EXPECT_ERROR(sk_se_new(64, 1.0 / 16, -1, 8, 1, 42, SK_ACT_SIGMOID, 0, 0, &m),
               SK_ERR_INVALID_ARGUMENT, "unknown activation");
  CHECK(m == nullptr);
  EXPECT_OK(sk_se_new(64, 1.0 / 16, -1, 8, 1, SK_ACT_RELU, SK_ACT_SIGMOID, 0, 0, &m));
  int64_t count = 0;
  EXPECT_OK(sk_module_state_count(m, &count));
  CHECK(count == 4);
  const char* name = nullptr;
  int32_t is_param = 0;
  sk_tensor* p = nullptr;
  EXPECT_OK(sk_module_state_entry(m, 0, &name, &is_param, &p));
  CHECK(std::string(name) == "fc1.weight" && sk_tensor_size(p, 0) == 8);  // make_divisible(4, 8) = 8
  sk_tensor_free(p);
  EXPECT_ERROR(sk_module_state_entry(m, 4, &name, &is_param, &p), SK_ERR_INVALID_ARGUMENT, "out of range");

  int64_t shape[4] = {1, 32, 4, 4};
  sk_tensor* x = nullptr;
  sk_tensor* y = nullptr;
  EXPECT_OK(sk_tensor_zeros(shape, 4, SK_FLOAT32, SK_DEVICE_CPU, -1, &x));
  EXPECT_ERROR(sk_module_forward(m, x, 1, &y), SK_ERR_INVALID_ARGUMENT, "has 64 channels but the input has 32");
  sk_tensor_free(x);
  EXPECT_OK(sk_tensor_zeros(shape, 3, SK_FLOAT32, SK_DEVICE_CPU, -1, &x));
  EXPECT_ERROR(sk_module_forward(m, x, 1, &y), SK_ERR_INVALID_ARGUMENT, "4-d input");
  sk_tensor_free(x);
  int64_t s64[4] = {1, 64, 2, 2};
  EXPECT_OK(sk_tensor_zeros(s64, 4, SK_FLOAT64, SK_DEVICE_CPU, -1, &x));
  EXPECT_ERROR(sk_module_forward(m, x, 1, &y), SK_ERR_INVALID_ARGUMENT, "input is Double");
  EXPECT_ERROR(sk_module_forward(nullptr, x, 1, &y), SK_ERR_INVALID_ARGUMENT, "module must not be NULL");
  EXPECT_ERROR(sk_module_forward(m, nullptr, 1, &y), SK_ERR_INVALID_ARGUMENT, "x must not be NULL");
  EXPECT_OK(sk_module_to(m, SK_FLOAT64, SK_DEVICE_CPU, -1));
  EXPECT_OK(sk_module_forward(m, x, 0, &y));
  CHECK(y != nullptr && sk_tensor_dtype(y) == SK_FLOAT64 && sk_tensor_requires_grad(y) == 0);
  sk_tensor_free(y);
  sk_tensor_free(x);
  sk_module_free(m);
}

// Errors: a failed allocation is OUT_OF_MEMORY with a plain sentence, thread counts are
// bounded, and a detached view keeps its memory alive when the module's storage moves.
static void test_errors_and_storage() {
  // 256 TiB of float32: more than x86-64's user address space, so it fails even where the
  // kernel overcommits memory without limit (as some GPU machines do).
  int64_t huge[2] = {int64_t(1) << 24, int64_t(1) << 22};
  sk_tensor* t = nullptr;
  sk_error* e = sk_tensor_empty(huge, 2, SK_FLOAT32, SK_DEVICE_CPU, -1, &t);
  ++checks;
  if (e == nullptr || sk_error_code(e) != SK_ERR_OUT_OF_MEMORY ||
      std::string(sk_error_message(e)).rfind("out of memory: could not allocate", 0) != 0 ||
      std::string(sk_error_message(e)).find("enforce fail") != std::string::npos) {
    ++failures;
    std::fprintf(stderr, "allocation failure: code %d, message '%s'\n", sk_error_code(e), sk_error_message(e));
  }
  sk_error_free(e);
  CHECK(t == nullptr);

  const int32_t max = sk_max_num_threads();
  CHECK(max >= 8);
  EXPECT_ERROR(sk_set_num_threads(max + 1), SK_ERR_INVALID_ARGUMENT, "number of threads must be in [1, ");
  EXPECT_ERROR(sk_set_num_threads(100000), SK_ERR_INVALID_ARGUMENT, "number of threads");
  // The TF32 flags: each 0 or 1, read back as bits (a CPU build keeps them too).
  int32_t tf32 = -1;
  EXPECT_OK(sk_cuda_allow_tf32(&tf32));
  CHECK(tf32 >= 0 && tf32 <= 3);
  EXPECT_ERROR(sk_cuda_set_allow_tf32(2, 0), SK_ERR_INVALID_ARGUMENT, "convolutions must be 0 or 1, got 2");
  EXPECT_ERROR(sk_cuda_set_allow_tf32(0, -1), SK_ERR_INVALID_ARGUMENT, "matmul must be 0 or 1, got -1");
  EXPECT_ERROR(sk_cuda_allow_tf32(nullptr), SK_ERR_INVALID_ARGUMENT, "out");
  EXPECT_OK(sk_cuda_set_allow_tf32(0, 1));
  int32_t now = -1;
  EXPECT_OK(sk_cuda_allow_tf32(&now));
  CHECK(now == SK_TF32_MATMUL);
  EXPECT_OK(sk_cuda_set_allow_tf32(tf32 & SK_TF32_CONVOLUTIONS ? 1 : 0, tf32 & SK_TF32_MATMUL ? 1 : 0));
  const int32_t before = sk_get_num_threads();
  EXPECT_OK(sk_set_num_threads(before));

  sk_module* m = nullptr;
  EXPECT_OK(sk_ese_new(4, SK_ACT_HARD_SIGMOID, 0, &m));
  const char* name = nullptr;
  int32_t is_param = 0;
  sk_tensor* bias = nullptr;
  EXPECT_OK(sk_module_state_entry(m, 1, &name, &is_param, &bias));
  sk_tensor* pinned = nullptr;
  EXPECT_OK(sk_tensor_detach(bias, &pinned));
  float* old_data = static_cast<float*>(sk_tensor_data_ptr(pinned));
  CHECK(old_data == sk_tensor_data_ptr(bias));
  EXPECT_OK(sk_module_to(m, SK_FLOAT64, SK_DEVICE_CPU, -1));
  CHECK(sk_tensor_dtype(bias) == SK_FLOAT64);                     // the alias sees the change
  CHECK(sk_tensor_data_ptr(pinned) == old_data);                  // the detached view does not
  for (int i = 0; i < 4; ++i) old_data[i] = 1.0f;                 // and its memory is still there
  CHECK(sk_tensor_dtype(pinned) == SK_FLOAT32);
  sk_tensor_free(pinned);
  sk_tensor_free(bias);
  sk_module_free(m);
  EXPECT_ERROR(sk_tensor_detach(nullptr, &pinned), SK_ERR_INVALID_ARGUMENT, "t must not be NULL");
}

// Residual blocks and ResNets: bad arguments are refused with a sentence; a small network
// names its entries as timm does and gives four stage maps.
static void test_resnet() {
  sk_module* m = nullptr;
  const int32_t se = SK_ATTN_SE, relu = SK_ACT_RELU, sig = SK_ACT_SIGMOID;
  EXPECT_ERROR(sk_resnet_block_new(7, 8, 8, 1, 1, 64, SK_SHORTCUT_IDENTITY, se, 1.0 / 16, 8, 0, 0, 1, relu, sig, &m),
               SK_ERR_INVALID_ARGUMENT, "unknown residual block code 7");
  EXPECT_ERROR(sk_resnet_block_new(SK_BLOCK_BASIC, 8, 8, 2, 1, 64, SK_SHORTCUT_IDENTITY, se, 1.0 / 16, 8, 0, 0, 1,
                                   relu, sig, &m),
               SK_ERR_INVALID_ARGUMENT, "an identity shortcut needs stride 1");
  EXPECT_ERROR(sk_resnet_block_new(SK_BLOCK_PREACT, 8, 8, 1, 2, 64, SK_SHORTCUT_IDENTITY, se, 1.0 / 16, 8, 0, 0, 1,
                                   relu, sig, &m),
               SK_ERR_INVALID_ARGUMENT, "cardinality 1 and base width 64");
  EXPECT_ERROR(sk_resnet_block_new(SK_BLOCK_LEGACY_BOTTLENECK, 16, 2, 1, 1, 64, SK_SHORTCUT_CONV, se, 1.0 / 16, 8, 0,
                                   16, 1, relu, sig, &m),
               SK_ERR_INVALID_ARGUMENT, "has no channels left");
  EXPECT_ERROR(sk_resnet_block_new(SK_BLOCK_BASIC, 8, 8, 1, 1, 64, SK_SHORTCUT_IDENTITY, 9, 1.0 / 16, 8, 0, 0, 1, relu,
                                   sig, &m),
               SK_ERR_INVALID_ARGUMENT, "unknown attention code 9");
  EXPECT_ERROR(sk_resnet_block_new(SK_BLOCK_BASIC, 8, 8, 1, 1, 64, SK_SHORTCUT_IDENTITY, se, 1.0 / 16, 8, 0, 0, 1, relu,
                                   sig, nullptr),
               SK_ERR_INVALID_ARGUMENT, "out must not be NULL");
  CHECK(m == nullptr);
  EXPECT_OK(sk_resnet_block_new(SK_BLOCK_BOTTLENECK, 16, 8, 2, 4, 16, SK_SHORTCUT_AVG_CONV, se, 1.0 / 16, 8, 0, 0, 1,
                                relu, sig, &m));
  int64_t count = 0;
  EXPECT_OK(sk_module_state_count(m, &count));
  CHECK(count == 3 + 3 * 5 + 4 + 1 + 5);  // conv1-3, bn1-3, se fc1/fc2, downsample conv + bn
  const char* name = nullptr;
  int32_t is_param = 0;
  sk_tensor* p = nullptr;
  EXPECT_OK(sk_module_state_entry(m, count - 6, &name, &is_param, &p));
  CHECK(std::string(name) == "downsample.1.weight");
  sk_tensor_free(p);
  sk_module_free(m);
  m = nullptr;

  int64_t layers[4] = {1, 1, 1, 1}, chans[4] = {8, 8, 16, 16};
  EXPECT_ERROR(sk_resnet_new(SK_BLOCK_BASIC, nullptr, chans, 1, 64, SK_STEM_SMALL, 8, 0, se, 1.0 / 16, 8, 0, 1, relu,
                             sig, 1, 10, 0.0, &m),
               SK_ERR_INVALID_ARGUMENT, "layers and channels must not be NULL");
  EXPECT_ERROR(sk_resnet_new(SK_BLOCK_PREACT, layers, chans, 1, 64, SK_STEM_SMALL, 8, 0, se, 1.0 / 16, 8, 0, 1, relu,
                             sig, 1, 10, 0.0, &m),
               SK_ERR_INVALID_ARGUMENT, "pre-activation");
  EXPECT_ERROR(sk_resnet_new(SK_BLOCK_BASIC, layers, chans, 1, 64, 11, 8, 0, se, 1.0 / 16, 8, 0, 1, relu, sig, 1, 10,
                             0.0, &m),
               SK_ERR_INVALID_ARGUMENT, "unknown stem code 11");
  CHECK(m == nullptr);
  EXPECT_OK(sk_resnet_new(SK_BLOCK_BASIC, layers, chans, 1, 64, SK_STEM_SMALL, 8, 0, se, 1.0 / 16, 8, 0, 1, relu, sig,
                          1, 10, 0.0, &m));
  EXPECT_OK(sk_module_state_entry(m, 0, &name, &is_param, &p));
  CHECK(std::string(name) == "conv1.weight" && sk_tensor_size(p, 2) == 3);
  sk_tensor_free(p);
  int64_t shape[4] = {2, 1, 12, 12};
  sk_tensor* x = nullptr;
  EXPECT_OK(sk_tensor_zeros(shape, 4, SK_FLOAT32, SK_DEVICE_CPU, -1, &x));
  sk_tensor* maps[4] = {nullptr, nullptr, nullptr, nullptr};
  EXPECT_OK(sk_resnet_forward_stages(m, x, 0, maps));
  CHECK(maps[0] && sk_tensor_size(maps[0], 1) == 8 && sk_tensor_size(maps[0], 2) == 12);
  CHECK(maps[3] && sk_tensor_size(maps[3], 1) == 16 && sk_tensor_size(maps[3], 2) == 2);
  for (sk_tensor* t : maps) sk_tensor_free(t);
  sk_module* ese = nullptr;
  EXPECT_OK(sk_ese_new(4, SK_ACT_HARD_SIGMOID, 0, &ese));
  EXPECT_ERROR(sk_resnet_forward_stages(ese, x, 0, maps), SK_ERR_INVALID_ARGUMENT, "module is not a ResNet");
  sk_module_free(ese);
  sk_tensor_free(x);
  sk_module_free(m);
}

// JPEG decoding: a small image encoded by TurboJPEG comes back (lossy, so nearly equal); bad
// arguments and bad bytes are errors, never crashes.
static void test_jpeg() {
  const int w = 16, h = 8;
  std::vector<unsigned char> rgb(w * h * 3);
  for (int i = 0; i < w * h; i++) {
    rgb[3 * i] = static_cast<unsigned char>(16 * (i % w));
    rgb[3 * i + 1] = static_cast<unsigned char>(32 * (i / w));
    rgb[3 * i + 2] = 128;
  }
  tjhandle enc = tjInitCompress();
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  CHECK(tjCompress2(enc, rgb.data(), w, 0, h, TJPF_RGB, &jpeg, &size, TJSAMP_444, 100, 0) == 0);
  int32_t ww = 0, hh = 0;
  EXPECT_OK(sk_jpeg_info(jpeg, size, &ww, &hh));
  CHECK(ww == w && hh == h);
  std::vector<uint8_t> out(w * h * 3);
  EXPECT_OK(sk_jpeg_decode_rgb(jpeg, size, out.data(), out.size()));
  int worst = 0;
  for (size_t i = 0; i < out.size(); i++) worst = std::max(worst, std::abs(out[i] - rgb[i]));
  CHECK(worst <= 8);
  EXPECT_ERROR(sk_jpeg_decode_rgb(jpeg, size, out.data(), out.size() - 1), SK_ERR_INVALID_ARGUMENT, "needs 384");
  EXPECT_ERROR(sk_jpeg_decode_rgb(jpeg, size, nullptr, out.size()), SK_ERR_INVALID_ARGUMENT, "out must not be NULL");
  EXPECT_ERROR(sk_jpeg_decode_rgb(jpeg, size / 2, out.data(), out.size()), SK_ERR_INVALID_ARGUMENT, "");
  EXPECT_ERROR(sk_jpeg_info(nullptr, 10, &ww, &hh), SK_ERR_INVALID_ARGUMENT, "data must not be NULL");
  EXPECT_ERROR(sk_jpeg_info(jpeg, size, nullptr, &hh), SK_ERR_INVALID_ARGUMENT, "width must not be NULL");
  const uint8_t png[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  EXPECT_ERROR(sk_jpeg_info(png, sizeof png, &ww, &hh), SK_ERR_INVALID_ARGUMENT, "not a JPEG file");
  std::vector<uint8_t> garbage(64, 0x42);
  garbage[0] = 0xFF;
  garbage[1] = 0xD8;
  EXPECT_ERROR(sk_jpeg_info(garbage.data(), garbage.size(), &ww, &hh), SK_ERR_INVALID_ARGUMENT, "");
  tjFree(jpeg);
  tjDestroy(enc);
}

// Parameter groups: plain SGD (no momentum) on an eSE block (fc.weight [2,2,1,1], fc.bias [2])
// with fc.weight frozen and fc.bias at its own rate; top-k counts; bad arguments.
static void test_param_groups_and_topk() {
  sk_module* m = nullptr;
  EXPECT_OK(sk_ese_new(2, SK_ACT_HARD_SIGMOID, 0, &m));
  sk_tensor* w = nullptr;
  sk_tensor* b = nullptr;
  const char* name = nullptr;
  int32_t is_param = 0;
  EXPECT_OK(sk_module_state_entry(m, 0, &name, &is_param, &w));
  EXPECT_OK(sk_module_state_entry(m, 1, &name, &is_param, &b));
  CHECK(std::string(name) == "fc.bias");
  float w0[4], b0[2];
  EXPECT_OK(sk_tensor_copy_to_host(w, w0, sizeof w0));
  EXPECT_OK(sk_tensor_copy_to_host(b, b0, sizeof b0));
  float ones[4] = {1, 1, 1, 1};
  int64_t ws[4] = {2, 2, 1, 1}, bs[1] = {2};
  sk_tensor* gw = nullptr;
  sk_tensor* gb = nullptr;
  EXPECT_OK(sk_tensor_from_blob(ones, sizeof ones, ws, nullptr, 4, SK_FLOAT32, &gw));
  EXPECT_OK(sk_tensor_from_blob(ones, 2 * sizeof(float), bs, nullptr, 1, SK_FLOAT32, &gb));
  EXPECT_OK(sk_tensor_set_grad(w, gw));
  EXPECT_OK(sk_tensor_set_grad(b, gb));

  int32_t group_of[2] = {-1, 1};
  double lrs[2] = {0.5, 0.25}, wds[2] = {0, 0};
  sk_optimizer* o = nullptr;
  EXPECT_ERROR(sk_sgd_new_grouped(m, group_of, 3, lrs, wds, 2, 0, 0, 0, &o), SK_ERR_INVALID_ARGUMENT,
               "group_of has 3 entries but the module has 2 parameters");
  int32_t bad[2] = {0, 2};
  EXPECT_ERROR(sk_sgd_new_grouped(m, bad, 2, lrs, wds, 2, 0, 0, 0, &o), SK_ERR_INVALID_ARGUMENT, "outside [-1, 2)");
  int32_t none[2] = {-1, -1};
  EXPECT_ERROR(sk_adamw_new_grouped(m, none, 2, lrs, wds, 2, 0.9, 0.999, 1e-8, &o), SK_ERR_INVALID_ARGUMENT,
               "every parameter is frozen");
  double neg[2] = {0.5, -1};
  EXPECT_ERROR(sk_sgd_new_grouped(m, group_of, 2, neg, wds, 2, 0, 0, 0, &o), SK_ERR_INVALID_ARGUMENT,
               "learning rate must be");
  EXPECT_ERROR(sk_sgd_new_grouped(m, nullptr, 2, lrs, wds, 2, 0, 0, 0, &o), SK_ERR_INVALID_ARGUMENT,
               "group_of must not be NULL");
  CHECK(o == nullptr);
  EXPECT_OK(sk_sgd_new_grouped(m, group_of, 2, lrs, wds, 2, 0, 0, 0, &o));
  CHECK(sk_optimizer_group_count(o) == 2);
  CHECK(sk_optimizer_group_count(nullptr) == -1);
  int64_t n_state = 0;
  EXPECT_OK(sk_optimizer_state_count(o, &n_state));
  CHECK(n_state == 1);  // "step" only: no momentum, and the frozen weight has no state
  EXPECT_OK(sk_optimizer_step(o));
  float w1[4], b1[2];
  EXPECT_OK(sk_tensor_copy_to_host(w, w1, sizeof w1));
  EXPECT_OK(sk_tensor_copy_to_host(b, b1, sizeof b1));
  CHECK(std::memcmp(w0, w1, sizeof w0) == 0);
  CHECK(b1[0] == b0[0] - 0.25f && b1[1] == b0[1] - 0.25f);
  double lr = 0;
  EXPECT_OK(sk_optimizer_set_group_lr(o, 1, 0.125));
  EXPECT_OK(sk_optimizer_group_lr(o, 1, &lr));
  CHECK(lr == 0.125);
  EXPECT_ERROR(sk_optimizer_group_lr(o, 2, &lr), SK_ERR_INVALID_ARGUMENT, "group 2 out of range");
  EXPECT_OK(sk_optimizer_set_lr(o, 0.75));
  EXPECT_OK(sk_optimizer_group_lr(o, 1, &lr));
  CHECK(lr == 0.75 && sk_optimizer_lr(o) == 0.75);
  sk_optimizer_free(o);

  // top-k: row 0 ranks class 2 first, row 1 has its target (0) third of three
  float z[6] = {0.1f, 0.2f, 0.9f, 0.1f, 0.5f, 0.3f};
  int64_t y[2] = {2, 0};
  int64_t zs[2] = {2, 3}, ys[1] = {2};
  sk_tensor* logits = nullptr;
  sk_tensor* targets = nullptr;
  EXPECT_OK(sk_tensor_from_blob(z, sizeof z, zs, nullptr, 2, SK_FLOAT32, &logits));
  EXPECT_OK(sk_tensor_from_blob(y, sizeof y, ys, nullptr, 1, SK_INT64, &targets));
  int64_t ks[3] = {1, 2, 5}, counts[3] = {-1, -1, -1};
  EXPECT_OK(sk_count_correct_topk(logits, targets, ks, 3, counts));
  CHECK(counts[0] == 1 && counts[1] == 1 && counts[2] == 2);
  int64_t k0[1] = {0};
  EXPECT_ERROR(sk_count_correct_topk(logits, targets, k0, 1, counts), SK_ERR_INVALID_ARGUMENT, "must be >= 1");
  EXPECT_ERROR(sk_count_correct_topk(logits, logits, ks, 3, counts), SK_ERR_INVALID_ARGUMENT, "targets [N]");
  float yf[2] = {2, 0};
  sk_tensor* float_targets = nullptr;
  EXPECT_OK(sk_tensor_from_blob(yf, sizeof yf, ys, nullptr, 1, SK_FLOAT32, &float_targets));
  EXPECT_ERROR(sk_count_correct_topk(logits, float_targets, ks, 3, counts), SK_ERR_INVALID_ARGUMENT,
               "targets must be int64");
  sk_tensor_free(float_targets);
  sk_tensor_free(logits);
  sk_tensor_free(targets);
  sk_tensor_free(gw);
  sk_tensor_free(gb);
  sk_tensor_free(w);
  sk_tensor_free(b);
  sk_module_free(m);
}

int main() {
  test_library();
  test_errors_and_storage();
  test_from_blob();
  test_ese_closed_form();
  test_bad_module_input();
  test_resnet();
  test_jpeg();
  test_param_groups_and_topk();
  std::printf("shim_test: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
