// Raw-pointer CPU kernels of the training step: torch.optim.SGD's update in one pass, max
// pooling with one-byte winners, and
// training-mode BatchNorm followed by ReLU (timm's BatchNormAct2d) on channels-last float32 data: M rows of C contiguous values, each function working on the
// rows [r0, r1) so that the caller can parallelise. Compiled twice like se_kernels.hpp
// (baseline and AVX2+FMA, each into its own namespace SEKIT_KERNEL_NS), so no include guard.
//
// The ReLU's mask is never stored: a value passes where x * a[k] + b[k] > 0, recomputed by
// the backward kernels with the forward's a and b, so it is the forward's mask bit for bit.

#include <cstdint>

namespace sekit {
namespace kernels {
namespace SEKIT_KERNEL_NS {

// The statistics in one pass over x, shifted by a value of each channel (so that a mean far
// from zero does not cancel the variance): sum[k] += x - shift[k], sumsq[k] += (x - shift[k])^2.
void bn_stats_rows(const float* x, int64_t r0, int64_t r1, int64_t c, const float* shift, double* sum,
                   double* sumsq);
// y = max(x * a[k] + b[k], 0).
void bn_relu_rows(const float* x, float* y, int64_t r0, int64_t r1, int64_t c, const float* a, const float* b);
// With g = dz where x * a[k] + b[k] > 0, else 0: sg[k] += g, sgx[k] += g * (x - mean[k]).
void bn_relu_grad_sums_rows(const float* dz, const float* x, int64_t r0, int64_t r1, int64_t c, const float* a,
                            const float* b, const float* mean, double* sg, double* sgx);
// dx = (g - mg[k] - (x - mean[k]) * q[k]) * s[k], g as above (ATen's BatchNorm backward form).
void bn_relu_grad_rows(const float* dz, const float* x, float* dx, int64_t r0, int64_t r1, int64_t c, const float* a,
                       const float* b, const float* mean, const float* mg, const float* q, const float* s);

// Max pooling of channels-last maps (x is [N, H, W, C] in memory, y and idx [N, OH, OW, C]),
// a k x k window at stride s with p padding, as ATen's channels-last kernel picks: a NaN wins,
// else the first largest value. idx keeps the winner's place in its window, (ih - ih0) * k +
// (iw - iw0) from the window's unclipped corner (ih0, iw0), so k * k must be <= 256. Output
// rows [r0, r1) of the N * OH.
void max_pool_rows(const float* x, float* y, uint8_t* idx, int64_t r0, int64_t r1, int64_t h, int64_t w, int64_t c,
                   int64_t oh, int64_t ow, int64_t k, int64_t s, int64_t p);
// Its backward, input rows [r0, r1) of the N * H: each value of dx is the sum of dy over the
// windows it won, added in the windows' raster order from zero, as ATen's scatter adds them.
void max_pool_grad_rows(const float* dy, const uint8_t* idx, float* dx, int64_t r0, int64_t r1, int64_t h, int64_t w,
                        int64_t c, int64_t oh, int64_t ow, int64_t k, int64_t s, int64_t p);

// torch.optim.SGD's update of elements [i0, i1) with ATen's roundings (an add with alpha is
// one fused multiply-add): d = g + wd * p (wd != 0); with momentum, buf = d on the first step
// (first != 0), else buf = buf * momentum + (1 - dampening) * d, then d = d + momentum * buf
// (nesterov) or d = buf; p = p - lr * d. buf may be null without momentum.
template <typename T>
void sgd_update(T* p, const T* g, T* buf, int64_t i0, int64_t i1, T lr, T wd, T momentum, T damp1, bool nesterov,
                bool first);

}  // namespace SEKIT_KERNEL_NS
}  // namespace kernels
}  // namespace sekit
