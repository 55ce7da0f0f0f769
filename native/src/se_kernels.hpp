// Raw-pointer CPU kernels of the fused SE / eSE blocks. No libtorch here: each function
// works on a range of planes (NCHW) or of rows (channels-last) so that the caller can
// parallelise. This file is compiled twice (baseline and AVX2+FMA, see CMakeLists.txt),
// each time into its own namespace SEKIT_KERNEL_NS; so this header has no include guard
// and is included once per namespace (see se_fused.cpp).

#include <cstdint>

namespace sekit {
namespace kernels {
namespace SEKIT_KERNEL_NS {

// NCHW: planes p in [p0, p1) of hw elements each.
template <typename T>
void squeeze_planes(const T* x, int64_t p0, int64_t p1, int64_t hw, T* mean, T* max);
template <typename T>
void scale_planes(const T* x, const T* gate, T* y, int64_t p0, int64_t p1, int64_t hw);
// dg[p] = sum(gy * x); with max != nullptr also ties[p] = #(x == max[p]).
template <typename T>
void dot_planes(const T* gy, const T* x, int64_t p0, int64_t p1, int64_t hw, T* dg, const T* max,
                int64_t* ties);
// gx = gy * gate[p] + dmean[p] (+ dmax[p] where x == max[p]).
template <typename T>
void grad_planes(const T* gy, const T* x, const T* gate, const T* dmean, const T* max, const T* dmax, T* gx,
                 int64_t p0, int64_t p1, int64_t hw);

// Channels-last: sample n, pixels [r0, r1), all C channels (rows of C contiguous values).
// The reductions add into sum/max/dg/ties of [C] (the caller combines row ranges).
template <typename T>
void squeeze_rows(const T* x, int64_t n, int64_t r0, int64_t r1, int64_t hw, int64_t c, double* sum, T* max);
template <typename T>
void scale_rows(const T* x, const T* gate, T* y, int64_t n, int64_t r0, int64_t r1, int64_t hw, int64_t c);
template <typename T>
void dot_rows(const T* gy, const T* x, int64_t n, int64_t r0, int64_t r1, int64_t hw, int64_t c, double* dg,
              const T* max, int64_t* ties);
template <typename T>
void grad_rows(const T* gy, const T* x, const T* gate, const T* dmean, const T* max, const T* dmax, T* gx, int64_t n,
               int64_t r0, int64_t r1, int64_t hw, int64_t c);

// The excitation's small fully connected layers, z = s W^T + b with s [N, I], W [O, I]:
// z entries r in [r0, r1) of N*O; input gradient rows n in [n0, n1); weight gradient rows
// o in [o0, o1). b and db may be nullptr.
template <typename T>
void linear_forward(const T* s, const T* w, const T* b, T* z, int64_t r0, int64_t r1, int64_t in, int64_t out);
template <typename T>
void linear_grad_input(const T* dz, const T* w, T* ds, int64_t n0, int64_t n1, int64_t in, int64_t out);
template <typename T>
void linear_grad_weight(const T* dz, const T* s, T* dw, T* db, int64_t o0, int64_t o1, int64_t n, int64_t in,
                        int64_t out);

bool compiled_with_avx2();

}  // namespace SEKIT_KERNEL_NS
}  // namespace kernels
}  // namespace sekit
