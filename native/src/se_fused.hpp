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

// The excitation of the descriptor s [N, C] -> gate [N, C] (before the gate's dtype is
// chosen): SE's fc1 -> act -> fc2 -> gate, or eSE's fc -> gate; `fc(v, w2d, b)` is the
// fully connected layer to use (w2d is the [out, in] view of a 1x1 conv weight).
template <typename Fc>
at::Tensor excitation(const at::Tensor& s, const std::vector<at::Tensor>& p, const FusedConfig& c, Fc fc) {
  auto layer = [&fc](const at::Tensor& v, const at::Tensor& w, const at::Tensor& b) {
    return fc(v, w.reshape({w.size(0), w.size(1)}), b);
  };
  if (!c.se) return apply_activation(c.gate, layer(s, p[0], p[1]));
  size_t i = 0;
  const at::Tensor& w1 = p[i++];
  at::Tensor b1 = c.bias ? p[i++] : at::Tensor();
  const at::Tensor& w2 = p[i++];
  at::Tensor b2 = c.bias ? p[i++] : at::Tensor();
  return apply_activation(c.gate, layer(apply_activation(c.act, layer(s, w1, b1)), w2, b2));
}

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
