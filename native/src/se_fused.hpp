// Fused SE / eSE: the parts shared by the CPU (se_fused.cpp) and CUDA (se_fused_cuda.cpp) paths.
#pragma once

#include "module.hpp"

#include <torch/csrc/autograd/autograd.h>

namespace sekit {

struct FusedConfig {
  bool se;        // false: eSE (params fc.weight, fc.bias); true: SE (fc1.w, [fc1.b], fc2.w, [fc2.b])
  int32_t act;    // SE only
  int32_t gate;
  bool bias;      // SE only
  bool add_maxpool;
};

// The excitation's layers in order, from a fused Function's parameters: SE's fc1 (then
// act) and fc2 (then the gate), or eSE's fc (then the gate). w is a 1x1 conv weight
// [out, in, 1, 1]; b is undefined for SE without bias.
struct ExcitationLayer {
  at::Tensor w, b;
  int32_t act;
};
inline std::vector<ExcitationLayer> excitation_layers(const std::vector<at::Tensor>& p, const FusedConfig& c) {
  if (!c.se) return {{p[0], p[1], c.gate}};
  size_t i = 0;
  ExcitationLayer fc1{p[i++], at::Tensor(), c.act};
  if (c.bias) fc1.b = p[i++];
  ExcitationLayer fc2{p[i++], at::Tensor(), c.gate};
  if (c.bias) fc2.b = p[i++];
  return {fc1, fc2};
}

// The excitation of the descriptor s [N, C] -> gate [N, C] (before the gate's dtype is
// chosen); `fc(v, w2d, b)` is the fully connected layer to use (w2d is the [out, in] view of
// a 1x1 conv weight).
template <typename Fc>
at::Tensor excitation(const at::Tensor& s, const std::vector<at::Tensor>& p, const FusedConfig& c, Fc fc) {
  at::Tensor v = s;
  for (const ExcitationLayer& l : excitation_layers(p, c))
    v = apply_activation(l.act, fc(v, l.w.reshape({l.w.size(0), l.w.size(1)}), l.b));
  return v;
}

// The configuration as the int arguments / saved data of a fused autograd Function.
inline std::vector<int64_t> encode(const FusedConfig& c, size_t nparams) {
  return {c.se, c.act, c.gate, c.bias, c.add_maxpool, static_cast<int64_t>(nparams)};
}
inline FusedConfig decode(const std::vector<int64_t>& v) {
  return {v[0] != 0, static_cast<int32_t>(v[1]), static_cast<int32_t>(v[2]), v[3] != 0, v[4] != 0};
}

// What a fused Function saves for backward, in this order: x, gate, s, [max], parameters.
struct Saved {
  at::Tensor x, gate, s, max;
  std::vector<at::Tensor> params;
};
inline std::vector<at::Tensor> pack(const Saved& v) {
  std::vector<at::Tensor> out{v.x, v.gate, v.s};
  if (v.max.defined()) out.push_back(v.max);
  out.insert(out.end(), v.params.begin(), v.params.end());
  return out;
}
inline Saved unpack(const std::vector<at::Tensor>& saved, const FusedConfig& c) {
  const size_t first = c.add_maxpool ? 4 : 3;
  return {saved[0], saved[1], saved[2], c.add_maxpool ? saved[3] : at::Tensor(),
          std::vector<at::Tensor>(saved.begin() + static_cast<std::ptrdiff_t>(first), saved.end())};
}

struct ExcitationGrads {
  at::Tensor dmean;                 // added to dL/dx at every pixel of (n, c): ds_mean / HW
  at::Tensor dmax;                  // added where x == max (add_maxpool), else undefined
  std::vector<at::Tensor> dparams;  // per parameter; undefined where none is needed
};

// The excitation's backward, shared by the CPU and CUDA Functions: the small graph on the
// descriptor s is recomputed with autograd for dL/dgate = dg, and ds is split between the
// mean and the max paths. `ties` counts the maxima per (n, c) (add_maxpool only); results
// are in dtype `acc`, the kernels' accumulation type.
template <typename Excite>
ExcitationGrads excitation_backward(const at::Tensor& s, const std::vector<at::Tensor>& params, const at::Tensor& dg,
                                    const at::Tensor& ties, int64_t hw, at::ScalarType acc, Excite excite) {
  std::vector<at::Tensor> inputs;
  at::Tensor s_leaf = s.detach().requires_grad_(true);
  inputs.push_back(s_leaf);
  std::vector<at::Tensor> p_leaf;
  for (const auto& p : params) {
    p_leaf.push_back(p.detach().requires_grad_(p.requires_grad()));
    if (p.requires_grad()) inputs.push_back(p_leaf.back());
  }
  torch::autograd::variable_list d;
  {
    c10::AutoGradMode enable(true);
    d = torch::autograd::grad({excite(s_leaf, p_leaf)}, inputs, {dg}, /*retain_graph=*/false,
                              /*create_graph=*/false, /*allow_unused=*/true);
  }
  at::Tensor ds = (d[0].defined() ? d[0] : at::zeros_like(s)).to(acc);
  ExcitationGrads r;
  r.dmean = ((ties.defined() ? ds * 0.5 : ds) / static_cast<double>(hw)).contiguous();
  if (ties.defined()) r.dmax = ((ds * 0.5) / ties.to(acc)).contiguous();
  size_t k = 1;
  for (const auto& p : params) r.dparams.push_back(p.requires_grad() ? d[k++] : at::Tensor());
  return r;
}

// What a fused Function's backward returns: gx, one gradient per parameter, and nothing for
// its five non-tensor arguments.
inline torch::autograd::variable_list function_grads(const at::Tensor& gx, const std::vector<at::Tensor>& dparams) {
  torch::autograd::variable_list out{gx};
  out.insert(out.end(), dparams.begin(), dparams.end());
  for (int i = 0; i < 5; ++i) out.emplace_back();
  return out;
}

// y = SE/eSE(x) on the fused kernels of x's device, or an undefined tensor when they do not
// take x (the caller then runs the composition): CPU float32/float64 and, in CUDA builds,
// GPU float32/float64/float16/bfloat16; NCHW or channels-last contiguous [N, C, H, W].
at::Tensor fused_squeeze_excite(const at::Tensor& x, const std::vector<at::Tensor>& params, const FusedConfig& c);
bool fused_kernels_use_avx2();
#ifdef SEKIT_WITH_CUDA
bool fused_cuda_applicable(const at::Tensor& x);
at::Tensor fused_squeeze_excite_cuda(const at::Tensor& x, const std::vector<at::Tensor>& params, const FusedConfig& c);
#endif

}  // namespace sekit
