// See se_kernels.hpp. Plain loops written so the compiler vectorises them: reductions use
// 16 independent lanes (no -ffast-math needed), element-wise loops are simple.
#include "se_kernels.hpp"

#include <algorithm>
#include <limits>

namespace sekit {
namespace kernels {
namespace SEKIT_KERNEL_NS {

namespace {
constexpr int L = 16;

template <typename T>
inline void plane_sum_max(const T* q, int64_t hw, T* mean, T* max) {
  T acc[L] = {};
  T mx[L];
  for (int k = 0; k < L; ++k) mx[k] = -std::numeric_limits<T>::infinity();
  int64_t i = 0;
  for (; i + L <= hw; i += L)
    for (int k = 0; k < L; ++k) acc[k] += q[i + k];
  if (max)
    for (int64_t j = 0; j + L <= hw; j += L)
      for (int k = 0; k < L; ++k) mx[k] = std::max(mx[k], q[j + k]);
  T s = 0;
  for (int k = 0; k < L; ++k) s += acc[k];
  T m = -std::numeric_limits<T>::infinity();
  for (int k = 0; k < L; ++k) m = std::max(m, mx[k]);
  for (; i < hw; ++i) {
    s += q[i];
    m = std::max(m, q[i]);
  }
  *mean = s / static_cast<T>(hw);
  if (max) *max = m;
}
}  // namespace

template <typename T>
void squeeze_planes(const T* x, int64_t p0, int64_t p1, int64_t hw, T* mean, T* max) {
  for (int64_t p = p0; p < p1; ++p) plane_sum_max(x + p * hw, hw, mean + p, max ? max + p : nullptr);
}

template <typename T>
void scale_planes(const T* x, const T* gate, T* y, int64_t p0, int64_t p1, int64_t hw) {
  for (int64_t p = p0; p < p1; ++p) {
    const T g = gate[p];
    const T* q = x + p * hw;
    T* o = y + p * hw;
    for (int64_t i = 0; i < hw; ++i) o[i] = q[i] * g;
  }
}

template <typename T>
void dot_planes(const T* gy, const T* x, int64_t p0, int64_t p1, int64_t hw, T* dg, const T* max, int64_t* ties) {
  for (int64_t p = p0; p < p1; ++p) {
    const T* a = gy + p * hw;
    const T* b = x + p * hw;
    T acc[L] = {};
    int64_t i = 0;
    for (; i + L <= hw; i += L)
      for (int k = 0; k < L; ++k) acc[k] += a[i + k] * b[i + k];
    T s = 0;
    for (int k = 0; k < L; ++k) s += acc[k];
    for (; i < hw; ++i) s += a[i] * b[i];
    dg[p] = s;
    if (max) {
      const T m = max[p];
      int64_t c = 0;
      for (int64_t j = 0; j < hw; ++j) c += b[j] == m;
      ties[p] = c;
    }
  }
}

template <typename T>
void grad_planes(const T* gy, const T* x, const T* gate, const T* dmean, const T* max, const T* dmax, T* gx,
                 int64_t p0, int64_t p1, int64_t hw) {
  for (int64_t p = p0; p < p1; ++p) {
    const T g = gate[p];
    const T d = dmean[p];
    const T* a = gy + p * hw;
    T* o = gx + p * hw;
    for (int64_t i = 0; i < hw; ++i) o[i] = a[i] * g + d;
    if (max) {
      const T m = max[p];
      const T dm = dmax[p];
      const T* b = x + p * hw;
      for (int64_t i = 0; i < hw; ++i) o[i] += b[i] == m ? dm : T(0);
    }
  }
}

template <typename T>
void squeeze_rows(const T* x, int64_t n, int64_t r0, int64_t r1, int64_t hw, int64_t c, double* sum, T* max) {
  // Rows are summed in blocks of 64 in T, then added to the double totals.
  T part[1024];
  for (int64_t c0 = 0; c0 < c; c0 += 1024) {
    const int64_t cb = std::min<int64_t>(1024, c - c0);
    for (int64_t r = r0; r < r1;) {
      const int64_t re = std::min(r1, r + 64);
      std::fill(part, part + cb, T(0));
      for (; r < re; ++r) {
        const T* row = x + (n * hw + r) * c + c0;
        for (int64_t k = 0; k < cb; ++k) part[k] += row[k];
        if (max)
          for (int64_t k = 0; k < cb; ++k) max[c0 + k] = std::max(max[c0 + k], row[k]);
      }
      for (int64_t k = 0; k < cb; ++k) sum[c0 + k] += part[k];
    }
  }
}

template <typename T>
void scale_rows(const T* x, const T* gate, T* y, int64_t n, int64_t r0, int64_t r1, int64_t hw, int64_t c) {
  const T* g = gate + n * c;
  for (int64_t r = r0; r < r1; ++r) {
    const T* row = x + (n * hw + r) * c;
    T* o = y + (n * hw + r) * c;
    for (int64_t k = 0; k < c; ++k) o[k] = row[k] * g[k];
  }
}

template <typename T>
void dot_rows(const T* gy, const T* x, int64_t n, int64_t r0, int64_t r1, int64_t hw, int64_t c, double* dg,
              const T* max, int64_t* ties) {
  T part[1024];
  for (int64_t c0 = 0; c0 < c; c0 += 1024) {
    const int64_t cb = std::min<int64_t>(1024, c - c0);
    for (int64_t r = r0; r < r1;) {
      const int64_t re = std::min(r1, r + 64);
      std::fill(part, part + cb, T(0));
      for (; r < re; ++r) {
        const T* a = gy + (n * hw + r) * c + c0;
        const T* b = x + (n * hw + r) * c + c0;
        for (int64_t k = 0; k < cb; ++k) part[k] += a[k] * b[k];
        if (max)
          for (int64_t k = 0; k < cb; ++k) ties[c0 + k] += b[k] == max[n * c + c0 + k];
      }
      for (int64_t k = 0; k < cb; ++k) dg[c0 + k] += part[k];
    }
  }
}

template <typename T>
void grad_rows(const T* gy, const T* x, const T* gate, const T* dmean, const T* max, const T* dmax, T* gx, int64_t n,
               int64_t r0, int64_t r1, int64_t hw, int64_t c) {
  const T* g = gate + n * c;
  const T* d = dmean + n * c;
  for (int64_t r = r0; r < r1; ++r) {
    const T* a = gy + (n * hw + r) * c;
    T* o = gx + (n * hw + r) * c;
    for (int64_t k = 0; k < c; ++k) o[k] = a[k] * g[k] + d[k];
    if (max) {
      const T* b = x + (n * hw + r) * c;
      const T* m = max + n * c;
      const T* dm = dmax + n * c;
      for (int64_t k = 0; k < c; ++k) o[k] += b[k] == m[k] ? dm[k] : T(0);
    }
  }
}

template <typename T>
void linear_forward(const T* s, const T* w, const T* b, T* z, int64_t r0, int64_t r1, int64_t in, int64_t out) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / out, o = r % out;
    const T* a = s + n * in;
    const T* q = w + o * in;
    T acc[L] = {};
    int64_t i = 0;
    for (; i + L <= in; i += L)
      for (int k = 0; k < L; ++k) acc[k] += a[i + k] * q[i + k];
    T v = b ? b[o] : T(0);
    for (int k = 0; k < L; ++k) v += acc[k];
    for (; i < in; ++i) v += a[i] * q[i];
    z[r] = v;
  }
}

template <typename T>
void linear_grad_input(const T* dz, const T* w, T* ds, int64_t n0, int64_t n1, int64_t in, int64_t out) {
  for (int64_t n = n0; n < n1; ++n) {
    T* d = ds + n * in;
    std::fill(d, d + in, T(0));
    for (int64_t o = 0; o < out; ++o) {
      const T f = dz[n * out + o];
      const T* q = w + o * in;
      for (int64_t i = 0; i < in; ++i) d[i] += f * q[i];
    }
  }
}

template <typename T>
void linear_grad_weight(const T* dz, const T* s, T* dw, T* db, int64_t o0, int64_t o1, int64_t n, int64_t in,
                        int64_t out) {
  for (int64_t o = o0; o < o1; ++o) {
    T* d = dw + o * in;
    std::fill(d, d + in, T(0));
    T bsum = 0;
    for (int64_t k = 0; k < n; ++k) {
      const T f = dz[k * out + o];
      bsum += f;
      const T* a = s + k * in;
      for (int64_t i = 0; i < in; ++i) d[i] += f * a[i];
    }
    if (db) db[o] = bsum;
  }
}

bool compiled_with_avx2() {
#ifdef __AVX2__
  return true;
#else
  return false;
#endif
}

#define SEKIT_INSTANTIATE(T)                                                                              \
  template void squeeze_planes<T>(const T*, int64_t, int64_t, int64_t, T*, T*);                           \
  template void scale_planes<T>(const T*, const T*, T*, int64_t, int64_t, int64_t);                       \
  template void dot_planes<T>(const T*, const T*, int64_t, int64_t, int64_t, T*, const T*, int64_t*);     \
  template void grad_planes<T>(const T*, const T*, const T*, const T*, const T*, const T*, T*, int64_t,    \
                               int64_t, int64_t);                                                         \
  template void squeeze_rows<T>(const T*, int64_t, int64_t, int64_t, int64_t, int64_t, double*, T*);     \
  template void scale_rows<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t);       \
  template void dot_rows<T>(const T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, double*,     \
                            const T*, int64_t*);                                                          \
  template void grad_rows<T>(const T*, const T*, const T*, const T*, const T*, const T*, T*, int64_t,     \
                             int64_t, int64_t, int64_t, int64_t);                                         \
  template void linear_forward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t);  \
  template void linear_grad_input<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t);         \
  template void linear_grad_weight<T>(const T*, const T*, T*, T*, int64_t, int64_t, int64_t, int64_t,     \
                                      int64_t);
SEKIT_INSTANTIATE(float)
SEKIT_INSTANTIATE(double)

}  // namespace SEKIT_KERNEL_NS
}  // namespace kernels
}  // namespace sekit
