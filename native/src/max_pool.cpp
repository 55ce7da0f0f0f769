// Max pooling for training on channels-last float32 maps. ATen's keeps every winner as an
// int64 index, and its backward zero-fills the input's gradient and then scatters into it.
// Here the forward keeps each winner as one byte (its place in the window), and the backward
// gathers: each input value adds up the gradients of the windows it won, in the order ATen's
// scatter adds them, so values and gradients are ATen's bit for bit.
#include "dispatch.hpp"
#include "autograd_node.hpp"
#include "module.hpp"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include <ATen/Parallel.h>
#include <ATen/native/Pool.h>

#include <algorithm>
#include <limits>

namespace sekit {
namespace {

struct Pooling {
  int64_t n, h, w, c, oh, ow, k, s, p;
};

struct MaxPoolBackward : torch::autograd::Node {
  Pooling g{};
  at::Tensor winners;  // uint8, [N, OH, OW, C] in memory

  std::string name() const override { return "MaxPoolBackward"; }
  void release_variables() override { winners.reset(); }

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    torch::autograd::variable_list out(1);
    if (!grads[0].defined() || !task_should_compute_output(0)) return out;
    if (!winners.defined()) fail("MaxPoolBackward: the graph was already freed (backward twice without retain_graph)");
    c10::NoGradGuard no_grad;
    at::Tensor dy = grads[0].contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor dx = at::empty({g.n, g.c, g.h, g.w}, dy.options().memory_format(at::MemoryFormat::ChannelsLast));
    const float* dyp = dy.data_ptr<float>();
    const uint8_t* ip = winners.data_ptr<uint8_t>();
    float* dxp = dx.data_ptr<float>();
    const Pooling q = g;
    at::parallel_for(0, q.n * q.h, task_grain(q.w * q.c), [&](int64_t r0, int64_t r1) {
      SEKIT_DISPATCH(max_pool_grad_rows, dyp, ip, dxp, r0, r1, q.h, q.w, q.c, q.oh, q.ow, q.k, q.s, q.p);
    });
    out[0] = dx;
    return out;
  }
};

}  // namespace

at::Tensor max_pool2d(const at::Tensor& x, int64_t k, int64_t s, int64_t p, bool ceil, bool fused) {
  // Where ATen would refuse the arguments (a stride beyond int, a window larger than the padded
  // map) or pick an NCHW output (a map that reads both ways, such as one channel), ATen runs.
  const bool applies = fused && c10::GradMode::is_enabled() && x.requires_grad() && x.dim() == 4 &&
                       x.device().is_cpu() && x.scalar_type() == at::kFloat && !x.is_inference() &&
                       x.is_contiguous(at::MemoryFormat::ChannelsLast) &&
                       x.suggest_memory_format() == at::MemoryFormat::ChannelsLast && k >= 1 && k * k <= 256 &&
                       s >= 1 && s <= std::numeric_limits<int32_t>::max() && p >= 0 && p <= k / 2 &&
                       x.size(2) + 2 * p >= k && x.size(3) + 2 * p >= k && x.numel() > 0 &&
                       x.numel() / x.size(0) <= std::numeric_limits<int32_t>::max();
  if (!applies) return at::max_pool2d(x, {k, k}, {s, s}, {p, p}, {1, 1}, ceil);
  Pooling g{x.size(0), x.size(2), x.size(3), x.size(1),
            at::native::pooling_output_shape<int64_t>(x.size(2), k, p, s, 1, ceil),
            at::native::pooling_output_shape<int64_t>(x.size(3), k, p, s, 1, ceil), k, s, p};
  c10::NoGradGuard no_grad;
  const auto cl = at::MemoryFormat::ChannelsLast;
  at::Tensor y = at::empty({g.n, g.c, g.oh, g.ow}, x.options().memory_format(cl));
  at::Tensor winners = at::empty({g.n, g.c, g.oh, g.ow}, x.options().dtype(at::kByte).memory_format(cl));
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  uint8_t* ip = winners.data_ptr<uint8_t>();
  at::parallel_for(0, g.n * g.oh, task_grain(g.ow * g.c * k), [&](int64_t r0, int64_t r1) {
    SEKIT_DISPATCH(max_pool_rows, xp, yp, ip, r0, r1, g.h, g.w, g.c, g.oh, g.ow, g.k, g.s, g.p);
  });
  auto node = new_node<MaxPoolBackward>();
  node->g = g;
  node->winners = winners;
  node->set_next_edges(torch::autograd::collect_next_edges(x));
  torch::autograd::set_history(y, node);
  return y;
}

}  // namespace sekit
