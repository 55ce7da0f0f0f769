// Fused SE / eSE CUDA kernels: C-style host launchers over raw device pointers. No libtorch
// headers, so nvcc compiles this on any machine (CI compiles it on every run); the library
// links it only when the libtorch found has CUDA.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace sekit {
namespace cuda {

// Element types of the feature maps (the SK_* dtype codes of sekit.h).
enum class DType : int32_t { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

// Shapes: n samples, c channels, hw pixels; channels_last = NHWC memory.
struct Geometry {
  int64_t n, c, hw;
  bool channels_last;
};

// mean[n*c] (and max[n*c] when max != nullptr) over the pixels of each (sample, channel);
// float accumulation. `scratch` holds n*c floats (zeroed by the launcher) for NHWC.
cudaError_t squeeze(const void* x, DType t, Geometry g, float* mean, float* max, cudaStream_t s);
// y = x * gate[n, c]
cudaError_t scale(const void* x, const float* gate, void* y, DType t, Geometry g, cudaStream_t s);
// dgate[n, c] = sum over pixels of gy * x; ties[n, c] = #(x == max) when max != nullptr.
cudaError_t gate_grad(const void* gy, const void* x, DType t, Geometry g, float* dgate, const float* max,
                      float* ties, cudaStream_t s);
// gx = gy * gate + dmean (+ dmax where x == max)
cudaError_t input_grad(const void* gy, const void* x, const float* gate, const float* dmean, const float* max,
                       const float* dmax, void* gx, DType t, Geometry g, cudaStream_t s);

}  // namespace cuda
}  // namespace sekit
