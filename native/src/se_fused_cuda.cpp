// Fused SE / eSE on CUDA tensors: the autograd Function around the raw kernels of
// native/cuda/se_kernels.cu. Compiled only when the libtorch found has CUDA
// (SEKIT_WITH_CUDA); the excitation on the [N, C] descriptor uses libtorch (cuBLAS).
#include "se_fused.hpp"

#ifdef SEKIT_WITH_CUDA

#include "../cuda/se_kernels.cuh"
#include "cuda_check.hpp"

#include <c10/cuda/CUDAStream.h>
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

// Excitation through libtorch (cuBLAS), in the parameters' dtype.
at::Tensor excite(const at::Tensor& s, const std::vector<at::Tensor>& p, const FusedConfig& c) {
  return excitation(s, p, c, [](const at::Tensor& v, const at::Tensor& w2, const at::Tensor& b) {
    return at::linear(v.to(w2.scalar_type()), w2, b);
  });
}

struct FusedCuda : public torch::autograd::Function<FusedCuda> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, at::TensorList params, int64_t se,
                            int64_t act, int64_t gate_act, int64_t bias, int64_t add_maxpool) {
    const FusedConfig cfg = decode({se, act, gate_act, bias, add_maxpool});
    const cuda::Geometry g = geometry(x);
    auto stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
    auto f32 = x.options().dtype(at::kFloat).memory_format(at::MemoryFormat::Contiguous);
    at::Tensor mean = at::empty({g.n, g.c}, f32);
    at::Tensor max = cfg.add_maxpool ? at::empty({g.n, g.c}, f32) : at::Tensor();
    check_cuda(cuda::squeeze(x.data_ptr(), code(x.scalar_type()), g, mean.data_ptr<float>(),
                        max.defined() ? max.data_ptr<float>() : nullptr, stream), "squeeze");
    at::Tensor s = cfg.add_maxpool ? (mean + max).mul_(0.5) : mean;
    at::Tensor gate = excite(s, params.vec(), cfg).to(at::kFloat).contiguous();
    at::Tensor y = at::empty_like(x);
    check_cuda(cuda::scale(x.data_ptr(), gate.data_ptr<float>(), y.data_ptr(), code(x.scalar_type()), g, stream), "scale");
    ctx->save_for_backward(pack({x, gate, s, max, params.vec()}));
    ctx->saved_data["cfg"] = encode(cfg, params.size());
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const FusedConfig cfg = decode(ctx->saved_data["cfg"].toIntVector());
    const Saved v = unpack(ctx->get_saved_variables(), cfg);
    const at::Tensor &x = v.x, &gate = v.gate, &s = v.s, &max = v.max;
    const std::vector<at::Tensor>& params = v.params;
    const cuda::Geometry g = geometry(x);
    auto stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
    at::Tensor gy = grads[0].contiguous(g.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
    auto f32 = x.options().dtype(at::kFloat).memory_format(at::MemoryFormat::Contiguous);
    at::Tensor dg = at::empty({g.n, g.c}, f32);
    at::Tensor ties = cfg.add_maxpool ? at::empty({g.n, g.c}, f32) : at::Tensor();
    check_cuda(cuda::gate_grad(gy.data_ptr(), x.data_ptr(), code(x.scalar_type()), g, dg.data_ptr<float>(),
                          max.defined() ? max.data_ptr<float>() : nullptr,
                          ties.defined() ? ties.data_ptr<float>() : nullptr, stream), "gate_grad");
    ExcitationGrads e = excitation_backward(s, params, dg, ties, g.hw, at::kFloat,
        [&cfg](const at::Tensor& s_leaf, const std::vector<at::Tensor>& p) { return excite(s_leaf, p, cfg).to(at::kFloat); });
    at::Tensor gx = at::empty_like(x);
    check_cuda(cuda::input_grad(gy.data_ptr(), x.data_ptr(), gate.data_ptr<float>(), e.dmean.data_ptr<float>(),
                           max.defined() ? max.data_ptr<float>() : nullptr,
                           e.dmax.defined() ? e.dmax.data_ptr<float>() : nullptr, gx.data_ptr(),
                           code(x.scalar_type()), g, stream), "input_grad");
    return function_grads(gx, e.dparams);
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
