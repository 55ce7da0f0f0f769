// Fused SE / eSE on CUDA tensors: the autograd Function around the raw kernels of
// native/cuda/se_kernels.cu. Compiled only when the libtorch found has CUDA
// (SEKIT_WITH_CUDA); the excitation on the [N, C] descriptor uses libtorch (cuBLAS).
#include "se_fused.hpp"

#ifdef SEKIT_WITH_CUDA

#include "../cuda/se_kernels.cuh"

#include <ATen/cuda/CUDAContext.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

namespace sekit {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

cuda::DType code(at::ScalarType s) {
  switch (s) {
    case at::kFloat: return cuda::DType::kFloat32;
    case at::kDouble: return cuda::DType::kFloat64;
    case at::kHalf: return cuda::DType::kFloat16;
    case at::kBFloat16: return cuda::DType::kBFloat16;
    default: fail("fused CUDA kernels take float32/float64/float16/bfloat16, got ", c10::toString(s));
  }
}

cuda::Geometry geometry(const at::Tensor& x) {
  return {x.size(0), x.size(1), x.size(2) * x.size(3),
          !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast)};
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

// Excitation through libtorch (cuBLAS), in the parameters' dtype.
at::Tensor excite(const at::Tensor& s, const std::vector<at::Tensor>& p, const FusedConfig& c) {
  return excitation(s, p, c, [](const at::Tensor& v, const at::Tensor& w2, const at::Tensor& b) {
    return at::linear(v.to(w2.scalar_type()), w2, b);
  });
}

struct FusedCuda : public torch::autograd::Function<FusedCuda> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, at::TensorList params, int64_t se,
                            int64_t act, int64_t gate_act, int64_t bias, int64_t add_maxpool) {
    const FusedConfig cfg{se != 0, static_cast<int32_t>(act), static_cast<int32_t>(gate_act), bias != 0,
                          add_maxpool != 0};
    const cuda::Geometry g = geometry(x);
    auto stream = at::cuda::getCurrentCUDAStream(x.device().index()).stream();
    auto f32 = x.options().dtype(at::kFloat).memory_format(at::MemoryFormat::Contiguous);
    at::Tensor mean = at::empty({g.n, g.c}, f32);
    at::Tensor max = cfg.add_maxpool ? at::empty({g.n, g.c}, f32) : at::Tensor();
    check(cuda::squeeze(x.data_ptr(), code(x.scalar_type()), g, mean.data_ptr<float>(),
                        max.defined() ? max.data_ptr<float>() : nullptr, stream), "squeeze");
    at::Tensor s = cfg.add_maxpool ? (mean + max).mul_(0.5) : mean;
    at::Tensor gate = excite(s, params.vec(), cfg).to(at::kFloat).contiguous();
    at::Tensor y = at::empty_like(x);
    check(cuda::scale(x.data_ptr(), gate.data_ptr<float>(), y.data_ptr(), code(x.scalar_type()), g, stream), "scale");
    std::vector<at::Tensor> saved{x, gate, s};
    if (cfg.add_maxpool) saved.push_back(max);
    for (const auto& p : params) saved.push_back(p);
    ctx->save_for_backward(saved);
    ctx->saved_data["cfg"] = std::vector<int64_t>{se, act, gate_act, bias, add_maxpool,
                                                  static_cast<int64_t>(params.size())};
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto c = ctx->saved_data["cfg"].toIntVector();
    const FusedConfig cfg{c[0] != 0, static_cast<int32_t>(c[1]), static_cast<int32_t>(c[2]), c[3] != 0, c[4] != 0};
    const at::Tensor& x = saved[0];
    const at::Tensor& gate = saved[1];
    const at::Tensor& s = saved[2];
    at::Tensor max = cfg.add_maxpool ? saved[3] : at::Tensor();
    std::vector<at::Tensor> params(saved.begin() + (cfg.add_maxpool ? 4 : 3), saved.end());
    const cuda::Geometry g = geometry(x);
    auto stream = at::cuda::getCurrentCUDAStream(x.device().index()).stream();
    at::Tensor gy = grads[0].contiguous(g.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
    auto f32 = x.options().dtype(at::kFloat).memory_format(at::MemoryFormat::Contiguous);
    at::Tensor dg = at::empty({g.n, g.c}, f32);
    at::Tensor ties = cfg.add_maxpool ? at::empty({g.n, g.c}, f32) : at::Tensor();
    check(cuda::gate_grad(gy.data_ptr(), x.data_ptr(), code(x.scalar_type()), g, dg.data_ptr<float>(),
                          max.defined() ? max.data_ptr<float>() : nullptr,
                          ties.defined() ? ties.data_ptr<float>() : nullptr, stream), "gate_grad");
    std::vector<at::Tensor> inputs;
    at::Tensor s_leaf = s.detach().requires_grad_(true);
    inputs.push_back(s_leaf);
    std::vector<at::Tensor> p_leaf;
    for (const auto& p : params) {
      p_leaf.push_back(p.detach().requires_grad_(p.requires_grad()));
      if (p.requires_grad()) inputs.push_back(p_leaf.back());
    }
    variable_list d;
    {
      at::AutoGradMode enable(true);
      at::Tensor gate2 = excite(s_leaf, p_leaf, cfg).to(at::kFloat);
      d = torch::autograd::grad({gate2}, inputs, {dg}, false, false, true);
    }
    at::Tensor ds = (d[0].defined() ? d[0] : at::zeros_like(s)).to(at::kFloat);
    at::Tensor dmean = ((cfg.add_maxpool ? ds * 0.5 : ds) / static_cast<double>(g.hw)).contiguous();
    at::Tensor dmax = cfg.add_maxpool ? ((ds * 0.5) / ties).contiguous() : at::Tensor();
    at::Tensor gx = at::empty_like(x);
    check(cuda::input_grad(gy.data_ptr(), x.data_ptr(), gate.data_ptr<float>(), dmean.data_ptr<float>(),
                           max.defined() ? max.data_ptr<float>() : nullptr,
                           dmax.defined() ? dmax.data_ptr<float>() : nullptr, gx.data_ptr(), code(x.scalar_type()),
                           g, stream), "input_grad");
    variable_list out{gx};
    size_t k = 1;
    for (size_t i = 0; i < params.size(); ++i) out.push_back(params[i].requires_grad() ? d[k++] : at::Tensor());
    for (int i = 0; i < 5; ++i) out.emplace_back();
    return out;
  }
};

}  // namespace

bool fused_cuda_applicable(const at::Tensor& x) {
  if (!x.is_cuda() || x.dim() != 4) return false;
  switch (x.scalar_type()) {
    case at::kFloat: case at::kDouble: case at::kHalf: case at::kBFloat16: break;
    default: return false;
  }
  return x.is_contiguous() || x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

at::Tensor fused_squeeze_excite_cuda(const at::Tensor& x, const std::vector<at::Tensor>& params, const FusedConfig& c) {
  return FusedCuda::apply(x, at::TensorList(params), c.se ? 1 : 0, c.act, c.gate, c.bias ? 1 : 0, c.add_maxpool ? 1 : 0);
}

}  // namespace sekit

#endif  // SEKIT_WITH_CUDA
