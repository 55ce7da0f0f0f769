// Fused SE / eSE for CPU tensors (see se_fused.cpp).
#pragma once

#include "module.hpp"

namespace sekit {

struct FusedConfig {
  bool se;        // false: eSE (params fc.weight, fc.bias); true: SE (fc1.w, [fc1.b], fc2.w, [fc2.b])
  int32_t act;    // SE only
  int32_t gate;
  bool bias;      // SE only
  bool add_maxpool;
};

// Whether the fused kernels take x: a float32/float64 CPU [N, C, H, W] tensor, NCHW or
// channels-last contiguous.
bool fused_applicable(const at::Tensor& x);
at::Tensor fused_squeeze_excite(const at::Tensor& x, const std::vector<at::Tensor>& params, const FusedConfig& c);
bool fused_kernels_use_avx2();
#ifdef SEKIT_WITH_CUDA
bool fused_cuda_applicable(const at::Tensor& x);
at::Tensor fused_squeeze_excite_cuda(const at::Tensor& x, const std::vector<at::Tensor>& params, const FusedConfig& c);
#endif
// Drops the recycled output buffers of the fused kernels.
void release_cached_buffers();

}  // namespace sekit
