// See norm_kernels.hpp. Plain loops over the channels of a row, which the compiler
// vectorises; sums run in float over blocks of 64 rows and are then added to double totals.
#include "norm_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sekit {
namespace kernels {
namespace SEKIT_KERNEL_NS {

namespace {
constexpr int64_t kBlockRows = 64;
constexpr int64_t kBlockChannels = 512;

// The one expression of the ReLU's mask, shared by the forward and backward kernels.
inline float pre_activation(float x, float a, float b) { return x * a + b; }

struct Terms {
  float first, second;
};

// Adds two per-channel sums over rows [r0, r1) of c channels into out1[k] and out2[k]:
// term(r, k) gives the value at row r, channel k's two terms. Sums run in float over 64 rows
// at a time and are then added to the double totals.
template <typename Term>
inline void sum_rows(int64_t r0, int64_t r1, int64_t c, double* out1, double* out2, Term term) {
  float s1[kBlockChannels], s2[kBlockChannels];
  for (int64_t c0 = 0; c0 < c; c0 += kBlockChannels) {
    const int64_t cb = std::min(kBlockChannels, c - c0);
    for (int64_t r = r0; r < r1;) {
      const int64_t re = std::min(r1, r + kBlockRows);
      std::fill(s1, s1 + cb, 0.f);
      std::fill(s2, s2 + cb, 0.f);
      for (; r < re; ++r)
        for (int64_t k = 0; k < cb; ++k) {
          const Terms t = term(r, c0 + k);
          s1[k] += t.first;
          s2[k] += t.second;
        }
      for (int64_t k = 0; k < cb; ++k) {
        out1[c0 + k] += s1[k];
        out2[c0 + k] += s2[k];
      }
    }
  }
}
}  // namespace

void bn_stats_rows(const float* x, int64_t r0, int64_t r1, int64_t c, const float* shift, double* sum,
                   double* sumsq) {
  sum_rows(r0, r1, c, sum, sumsq, [=](int64_t r, int64_t k) {
    const float d = x[r * c + k] - shift[k];
    return Terms{d, d * d};
  });
}

void bn_relu_rows(const float* x, float* y, int64_t r0, int64_t r1, int64_t c, const float* a, const float* b) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = x + r * c;
    float* out = y + r * c;
    for (int64_t k = 0; k < c; ++k) out[k] = std::max(pre_activation(row[k], a[k], b[k]), 0.f);
  }
}

void bn_relu_grad_sums_rows(const float* dz, const float* x, int64_t r0, int64_t r1, int64_t c, const float* a,
                            const float* b, const float* mean, double* sg, double* sgx) {
  sum_rows(r0, r1, c, sg, sgx, [=](int64_t r, int64_t k) {
    const float xv = x[r * c + k];
    const float g = pre_activation(xv, a[k], b[k]) > 0.f ? dz[r * c + k] : 0.f;
    return Terms{g, g * (xv - mean[k])};
  });
}

void bn_relu_grad_rows(const float* dz, const float* x, float* dx, int64_t r0, int64_t r1, int64_t c, const float* a,
                       const float* b, const float* mean, const float* mg, const float* q, const float* s) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * c;
    const float* dr = dz + r * c;
    float* out = dx + r * c;
    for (int64_t k = 0; k < c; ++k) {
      const float g = pre_activation(xr[k], a[k], b[k]) > 0.f ? dr[k] : 0.f;
      out[k] = (g - mg[k] - (xr[k] - mean[k]) * q[k]) * s[k];
    }
  }
}

namespace {
// Channels are handled in blocks of this many, with the running maxima and winners on the stack.
constexpr int64_t kPoolBlock = 64;
}  // namespace

void max_pool_rows(const float* x, float* y, uint8_t* idx, int64_t r0, int64_t r1, int64_t h, int64_t w, int64_t c,
                   int64_t oh, int64_t ow, int64_t k, int64_t s, int64_t p) {
  float best[kPoolBlock];
  int32_t win[kPoolBlock];
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / oh, i = r % oh;
    const int64_t h0 = i * s - p, h1 = std::min(h0 + k, h), hs = std::max<int64_t>(h0, 0);
    for (int64_t j = 0; j < ow; ++j) {
      const int64_t w0 = j * s - p, w1 = std::min(w0 + k, w), ws = std::max<int64_t>(w0, 0);
      const int64_t o = (r * ow + j) * c;
      for (int64_t c0 = 0; c0 < c; c0 += kPoolBlock) {
        const int64_t cb = std::min(kPoolBlock, c - c0);
        const int32_t first = static_cast<int32_t>((hs - h0) * k + (ws - w0));
        for (int64_t q = 0; q < cb; ++q) {
          best[q] = -std::numeric_limits<float>::infinity();
          win[q] = first;
        }
        for (int64_t ih = hs; ih < h1; ++ih)
          for (int64_t iw = ws; iw < w1; ++iw) {
            const float* in = x + ((n * h + ih) * w + iw) * c + c0;
            const int32_t code = static_cast<int32_t>((ih - h0) * k + (iw - w0));
            for (int64_t q = 0; q < cb; ++q) {
              const float v = in[q];
              const bool take = v > best[q] || v != v;
              best[q] = take ? v : best[q];
              win[q] = take ? code : win[q];
            }
          }
        for (int64_t q = 0; q < cb; ++q) {
          y[o + c0 + q] = best[q];
          idx[o + c0 + q] = static_cast<uint8_t>(win[q]);
        }
      }
    }
  }
}

void max_pool_grad_rows(const float* dy, const uint8_t* idx, float* dx, int64_t r0, int64_t r1, int64_t h, int64_t w,
                        int64_t c, int64_t oh, int64_t ow, int64_t k, int64_t s, int64_t p) {
  // The windows over input row ih (or column): from the first whose last row reaches it to the
  // last that starts at or before it.
  auto first_over = [&](int64_t at) { const int64_t d = at + p - k + 1; return d <= 0 ? 0 : (d + s - 1) / s; };
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / h, ih = r % h;
    const int64_t i0 = first_over(ih), i1 = std::min(oh - 1, (ih + p) / s);
    for (int64_t iw = 0; iw < w; ++iw) {
      const int64_t j0 = first_over(iw), j1 = std::min(ow - 1, (iw + p) / s);
      float* __restrict out = dx + ((n * h + ih) * w + iw) * c;
      for (int64_t q = 0; q < c; ++q) out[q] = 0.f;
      for (int64_t i = i0; i <= i1; ++i)
        for (int64_t j = j0; j <= j1; ++j) {
          const int32_t code = static_cast<int32_t>((ih - (i * s - p)) * k + (iw - (j * s - p)));
          const int64_t o = ((n * oh + i) * ow + j) * c;
          const float* __restrict g = dy + o;
          const uint8_t* __restrict id = idx + o;
          // Adding +0 where the window's winner is elsewhere leaves the sum exact: it starts
          // at +0 and so is never -0.
#pragma GCC ivdep
          for (int64_t q = 0; q < c; ++q) out[q] += static_cast<int32_t>(id[q]) == code ? g[q] : 0.f;
        }
    }
  }
}

// a * b + c as ATen's vectorised add with alpha rounds it in this build: one FMA where the
// CPU has them (the AVX2 build), else a multiply and an add (not the C library's software fma).
template <typename T>
inline T madd(T a, T b, T c) {
#ifdef __FMA__
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

template <typename T>
void sgd_update(T* p, const T* g, T* buf, int64_t i0, int64_t i1, T lr, T wd, T momentum, T damp1, bool nesterov,
                bool first) {
  const T neg_lr = -lr;
  for (int64_t i = i0; i < i1; ++i) {
    T d = wd != 0 ? madd(p[i], wd, g[i]) : g[i];
    if (buf) {
      buf[i] = first ? d : madd(d, damp1, buf[i] * momentum);
      d = nesterov ? madd(buf[i], momentum, d) : buf[i];
    }
    p[i] = madd(d, neg_lr, p[i]);
  }
}

template void sgd_update<float>(float*, const float*, float*, int64_t, int64_t, float, float, float, float, bool, bool);
template void sgd_update<double>(double*, const double*, double*, int64_t, int64_t, double, double, double, double,
                                 bool, bool);

}  // namespace SEKIT_KERNEL_NS
}  // namespace kernels
}  // namespace sekit
