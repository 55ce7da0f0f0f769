// See se_kernels.cuh. One block per (sample, channel) plane for NCHW reductions; NHWC
// reductions give each thread one channel of a tile of pixels and combine tiles with
// atomicAdd / atomicMax-by-CAS. Element-wise passes give each block a row (a plane or a pixel).
#include "se_kernels.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>

namespace sekit {
namespace cuda {
namespace {

template <typename T> __device__ __forceinline__ float load(const T* p, int64_t i) { return static_cast<float>(p[i]); }
template <> __device__ __forceinline__ float load<__half>(const __half* p, int64_t i) { return __half2float(p[i]); }
template <> __device__ __forceinline__ float load<__nv_bfloat16>(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
template <typename T> __device__ __forceinline__ void store(T* p, int64_t i, float v) { p[i] = static_cast<T>(v); }
template <> __device__ __forceinline__ void store<__half>(__half* p, int64_t i, float v) { p[i] = __float2half(v); }
template <> __device__ __forceinline__ void store<__nv_bfloat16>(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16(v);
}
// Doubles keep double precision through the element-wise passes.
__device__ __forceinline__ void store(double* p, int64_t i, float v) { p[i] = v; }

constexpr int kThreads = 256;

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum and max of one value per thread; result valid in thread 0.
__device__ void block_sum_max(float& s, float& m) {
  __shared__ float ss[kThreads / 32], sm[kThreads / 32];
  s = warp_sum(s);
  m = warp_max(m);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    ss[warp] = s;
    sm[warp] = m;
  }
  __syncthreads();
  if (warp == 0) {
    s = lane < kThreads / 32 ? ss[lane] : 0.f;
    m = lane < kThreads / 32 ? sm[lane] : -FLT_MAX;
    s = warp_sum(s);
    m = warp_max(m);
  }
}

__device__ void atomic_max_float(float* addr, float v) {
  int* a = reinterpret_cast<int*>(addr);
  int old = *a;
  while (__int_as_float(old) < v) {
    const int prev = atomicCAS(a, old, __float_as_int(v));
    if (prev == old) break;
    old = prev;
  }
}

template <typename T>
__global__ void squeeze_planes(const T* x, int64_t hw, float* mean, float* max) {
  const int64_t p = blockIdx.x;
  const T* q = x + p * hw;
  float s = 0.f, m = -FLT_MAX;
  for (int64_t i = threadIdx.x; i < hw; i += blockDim.x) {
    const float v = load(q, i);
    s += v;
    m = fmaxf(m, v);
  }
  block_sum_max(s, m);
  if (threadIdx.x == 0) {
    mean[p] = s / static_cast<float>(hw);
    if (max) max[p] = m;
  }
}

// NHWC: grid (n, channel tiles of blockDim.x, pixel tiles); sums are atomically added.
template <typename T>
__global__ void squeeze_rows(const T* x, int64_t hw, int64_t c, int64_t rows_per_tile, float* sum, float* max) {
  const int64_t n = blockIdx.x, ch = blockIdx.y * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  const int64_t r0 = blockIdx.z * rows_per_tile, r1 = min(hw, r0 + rows_per_tile);
  float s = 0.f, m = -FLT_MAX;
  for (int64_t r = r0; r < r1; ++r) {
    const float v = load(x, (n * hw + r) * c + ch);
    s += v;
    m = fmaxf(m, v);
  }
  atomicAdd(sum + n * c + ch, s);
  if (max) atomic_max_float(max + n * c + ch, m);
}

__global__ void divide(float* v, int64_t count, float d) {
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x) v[i] /= d;
}

__global__ void fill(float* v, int64_t count, float value) {
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x) v[i] = value;
}

// Element-wise passes go by rows: an NCHW plane (one gate value) or an NHWC pixel (a row of
// gates), so that no element needs a 64-bit division to find its channel.
struct Rows {
  int64_t rows, len, hw;
  bool cl;
};
__host__ Rows rows_of(const Geometry& g) {
  return g.channels_last ? Rows{g.n * g.hw, g.c, g.hw, true} : Rows{g.n * g.c, g.hw, g.hw, false};
}
// The gate (and the like) of row r: one value for a plane, c values for a pixel.
__device__ __forceinline__ int64_t gate_base(const Rows& w, int64_t r) { return w.cl ? (r / w.hw) * w.len : r; }

template <typename T>
__global__ void scale_kernel(const T* x, const float* gate, T* y, Rows w) {
  for (int64_t r = blockIdx.x; r < w.rows; r += gridDim.x) {
    const int64_t base = r * w.len, gb = gate_base(w, r);
    for (int64_t j = threadIdx.x; j < w.len; j += blockDim.x) {
      store(y, base + j, load(x, base + j) * gate[w.cl ? gb + j : gb]);
    }
  }
}

template <typename T>
__global__ void gate_grad_planes(const T* gy, const T* x, int64_t hw, float* dgate, const float* max, float* ties) {
  const int64_t p = blockIdx.x;
  float s = 0.f, t = 0.f;
  const float mx = max ? max[p] : 0.f;
  for (int64_t i = threadIdx.x; i < hw; i += blockDim.x) {
    const float v = load(x, p * hw + i);
    s += load(gy, p * hw + i) * v;
    if (max) t += v == mx ? 1.f : 0.f;
  }
  float dummy = -FLT_MAX;
  block_sum_max(s, dummy);
  __syncthreads();
  float dummy2 = -FLT_MAX;
  if (max) block_sum_max(t, dummy2);
  if (threadIdx.x == 0) {
    dgate[p] = s;
    if (max) ties[p] = t;
  }
}

template <typename T>
__global__ void gate_grad_rows(const T* gy, const T* x, int64_t hw, int64_t c, int64_t rows_per_tile, float* dgate,
                               const float* max, float* ties) {
  const int64_t n = blockIdx.x, ch = blockIdx.y * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  const int64_t r0 = blockIdx.z * rows_per_tile, r1 = min(hw, r0 + rows_per_tile);
  const float mx = max ? max[n * c + ch] : 0.f;
  float s = 0.f, t = 0.f;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t i = (n * hw + r) * c + ch;
    const float v = load(x, i);
    s += load(gy, i) * v;
    t += (max && v == mx) ? 1.f : 0.f;
  }
  atomicAdd(dgate + n * c + ch, s);
  if (max) atomicAdd(ties + n * c + ch, t);
}

template <typename T>
__global__ void input_grad_kernel(const T* gy, const T* x, const float* gate, const float* dmean, const float* max,
                                  const float* dmax, T* gx, Rows w) {
  for (int64_t r = blockIdx.x; r < w.rows; r += gridDim.x) {
    const int64_t base = r * w.len, gb = gate_base(w, r);
    for (int64_t j = threadIdx.x; j < w.len; j += blockDim.x) {
      const int64_t nc = w.cl ? gb + j : gb;
      float v = load(gy, base + j) * gate[nc] + dmean[nc];
      if (max && load(x, base + j) == max[nc]) v += dmax[nc];
      store(gx, base + j, v);
    }
  }
}

int grid_for(int64_t total) {
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65535 * 8 ? blocks : 65535 * 8);
}

// One block per row (up to 2^20 blocks, then grid-stride), its threads a multiple of 32 that
// covers a short row.
struct RowLaunch {
  unsigned blocks, threads;
};
RowLaunch row_launch(const Rows& w) {
  const int64_t t = w.len >= kThreads ? kThreads : ((w.len + 31) / 32) * 32;
  return {static_cast<unsigned>(w.rows < (int64_t{1} << 20) ? w.rows : (int64_t{1} << 20)), static_cast<unsigned>(t)};
}

int64_t rows_per_tile(const Geometry& g) { return g.hw < 64 ? g.hw : 64; }

template <typename T>
cudaError_t squeeze_t(const T* x, Geometry g, float* mean, float* max, cudaStream_t s) {
  const int64_t planes = g.n * g.c;
  if (!g.channels_last) {
    squeeze_planes<T><<<static_cast<unsigned>(planes), kThreads, 0, s>>>(x, g.hw, mean, max);
    return cudaGetLastError();
  }
  fill<<<grid_for(planes), kThreads, 0, s>>>(mean, planes, 0.f);
  if (max) fill<<<grid_for(planes), kThreads, 0, s>>>(max, planes, -FLT_MAX);
  const int64_t rpt = rows_per_tile(g);
  dim3 grid(static_cast<unsigned>(g.n), static_cast<unsigned>((g.c + kThreads - 1) / kThreads),
            static_cast<unsigned>((g.hw + rpt - 1) / rpt));
  squeeze_rows<T><<<grid, kThreads, 0, s>>>(x, g.hw, g.c, rpt, mean, max);
  divide<<<grid_for(planes), kThreads, 0, s>>>(mean, planes, static_cast<float>(g.hw));
  return cudaGetLastError();
}

template <typename T>
cudaError_t gate_grad_t(const T* gy, const T* x, Geometry g, float* dgate, const float* max, float* ties,
                        cudaStream_t s) {
  const int64_t planes = g.n * g.c;
  if (!g.channels_last) {
    gate_grad_planes<T><<<static_cast<unsigned>(planes), kThreads, 0, s>>>(gy, x, g.hw, dgate, max, ties);
    return cudaGetLastError();
  }
  fill<<<grid_for(planes), kThreads, 0, s>>>(dgate, planes, 0.f);
  if (max) fill<<<grid_for(planes), kThreads, 0, s>>>(ties, planes, 0.f);
  const int64_t rpt = rows_per_tile(g);
  dim3 grid(static_cast<unsigned>(g.n), static_cast<unsigned>((g.c + kThreads - 1) / kThreads),
            static_cast<unsigned>((g.hw + rpt - 1) / rpt));
  gate_grad_rows<T><<<grid, kThreads, 0, s>>>(gy, x, g.hw, g.c, rpt, dgate, max, ties);
  return cudaGetLastError();
}

}  // namespace

#define SEKIT_CUDA_DISPATCH(t, ...)                                                   \
  switch (t) {                                                                        \
    case DType::kFloat32: { using T = float; __VA_ARGS__; }                           \
    case DType::kFloat64: { using T = double; __VA_ARGS__; }                          \
    case DType::kFloat16: { using T = __half; __VA_ARGS__; }                          \
    case DType::kBFloat16: { using T = __nv_bfloat16; __VA_ARGS__; }                  \
  }                                                                                   \
  return cudaErrorInvalidValue;

cudaError_t squeeze(const void* x, DType t, Geometry g, float* mean, float* max, cudaStream_t s) {
  SEKIT_CUDA_DISPATCH(t, return squeeze_t<T>(static_cast<const T*>(x), g, mean, max, s))
}

cudaError_t scale(const void* x, const float* gate, void* y, DType t, Geometry g, cudaStream_t s) {
  const Rows w = rows_of(g);
  const RowLaunch l = row_launch(w);
  SEKIT_CUDA_DISPATCH(t, scale_kernel<T><<<l.blocks, l.threads, 0, s>>>(
      static_cast<const T*>(x), gate, static_cast<T*>(y), w);
      return cudaGetLastError())
}

cudaError_t gate_grad(const void* gy, const void* x, DType t, Geometry g, float* dgate, const float* max,
                      float* ties, cudaStream_t s) {
  SEKIT_CUDA_DISPATCH(t, return gate_grad_t<T>(static_cast<const T*>(gy), static_cast<const T*>(x), g, dgate,
                                               max, ties, s))
}

cudaError_t input_grad(const void* gy, const void* x, const float* gate, const float* dmean, const float* max,
                       const float* dmax, void* gx, DType t, Geometry g, cudaStream_t s) {
  const Rows w = rows_of(g);
  const RowLaunch l = row_launch(w);
  SEKIT_CUDA_DISPATCH(t, input_grad_kernel<T><<<l.blocks, l.threads, 0, s>>>(
      static_cast<const T*>(gy), static_cast<const T*>(x), gate, dmean, max, dmax, static_cast<T*>(gx), w);
      return cudaGetLastError())
}

}  // namespace cuda
}  // namespace sekit
