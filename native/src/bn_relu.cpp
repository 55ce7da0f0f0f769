// Training-mode BatchNorm followed by ReLU (timm's BatchNormAct2d) in fewer passes over memory
// than ATen's batch_norm + relu_ + their two backwards: forward reads x twice and writes y
// once (statistics in one shifted pass, then normalise-and-clamp), backward reads dz and x
// twice and writes dx once (the mask is recomputed from x, never stored).
#include "dispatch.hpp"
#include "autograd_node.hpp"
#include "module.hpp"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace sekit {
namespace {

// Row ranges for the threads: one per thread, none smaller than 16K values.
int64_t chunks_of(int64_t rows, int64_t c) {
  const int64_t by_size = std::max<int64_t>(1, rows * c / 16384);
  return std::max<int64_t>(1, std::min<int64_t>({static_cast<int64_t>(at::get_num_threads()), by_size, rows}));
}

// Runs f(r0, r1, partial) on each chunk's rows, with its own zeroed `width` doubles, and
// returns the chunks' partials added up.
template <typename F>
std::vector<double> reduce_rows(int64_t rows, int64_t c, int64_t width, F f) {
  const int64_t chunks = chunks_of(rows, c);
  std::vector<double> part(static_cast<size_t>(chunks * width), 0.0);
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) f(rows * t / chunks, rows * (t + 1) / chunks, part.data() + t * width);
  });
  std::vector<double> total(static_cast<size_t>(width), 0.0);
  for (int64_t t = 0; t < chunks; ++t)
    for (int64_t k = 0; k < width; ++k) total[k] += part[t * width + k];
  return total;
}

template <typename F>
void for_rows(int64_t rows, int64_t c, F f) {
  const int64_t chunks = chunks_of(rows, c);
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) f(rows * t / chunks, rows * (t + 1) / chunks);
  });
}

at::Tensor floats(const std::vector<double>& v) {
  at::Tensor t = at::empty({static_cast<int64_t>(v.size())}, at::kFloat);
  std::transform(v.begin(), v.end(), t.data_ptr<float>(), [](double d) { return static_cast<float>(d); });
  return t;
}

struct BatchNormReluBackward : torch::autograd::Node {
  torch::autograd::SavedVariable x_;
  // Float32 [C] each: the forward's y = x * a + b (a = weight * invstd), the batch mean.
  at::Tensor a, b, mean;
  std::vector<double> invstd;

  std::string name() const override { return "BatchNormReluBackward"; }
  void release_variables() override { x_.reset_data(); }

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    c10::NoGradGuard no_grad;
    at::Tensor x = x_.unpack();
    torch::autograd::variable_list out(3);
    if (!grads[0].defined()) return out;
    const int64_t c = x.size(1), rows = x.numel() / c;
    at::Tensor dz = grads[0].contiguous(at::MemoryFormat::ChannelsLast);
    const float *xp = x.data_ptr<float>(), *dp = dz.data_ptr<float>();
    const float *ap = a.data_ptr<float>(), *bp = b.data_ptr<float>(), *mp = mean.data_ptr<float>();
    std::vector<double> sums = reduce_rows(rows, c, 2 * c, [&](int64_t r0, int64_t r1, double* p) {
      SEKIT_DISPATCH(bn_relu_grad_sums_rows, dp, xp, r0, r1, c, ap, bp, mp, p, p + c);
    });
    if (task_should_compute_output(0)) {
      std::vector<double> mg(c), q(c);
      for (int64_t k = 0; k < c; ++k) {
        mg[k] = sums[k] / rows;
        q[k] = sums[c + k] * invstd[k] * invstd[k] / rows;
      }
      at::Tensor mgt = floats(mg), qt = floats(q);
      const float *mgp = mgt.data_ptr<float>(), *qp = qt.data_ptr<float>();
      at::Tensor dx = at::empty_like(x, at::MemoryFormat::ChannelsLast);
      float* dxp = dx.data_ptr<float>();
      for_rows(rows, c, [&](int64_t r0, int64_t r1) {
        SEKIT_DISPATCH(bn_relu_grad_rows, dp, xp, dxp, r0, r1, c, ap, bp, mp, mgp, qp, ap);
      });
      out[0] = dx;
    }
    if (task_should_compute_output(1)) {
      std::vector<double> dw(c);
      for (int64_t k = 0; k < c; ++k) dw[k] = sums[c + k] * invstd[k];
      out[1] = floats(dw);
    }
    if (task_should_compute_output(2)) out[2] = floats(std::vector<double>(sums.begin(), sums.begin() + c));
    return out;
  }
};

}  // namespace

bool fused_batch_norm_relu_applies(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                   const at::Tensor& running_mean, const at::Tensor& running_var) {
  auto plain = [](const at::Tensor& t) {
    return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() &&
           !t.is_inference();
  };
  return x.dim() == 4 && x.device().is_cpu() && x.scalar_type() == at::kFloat && x.size(1) > 0 &&
         x.numel() / x.size(1) > 1 && x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_inference() &&
         plain(weight) && plain(bias) && plain(running_mean) && plain(running_var);
}

at::Tensor fused_batch_norm_relu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                 at::Tensor& running_mean, at::Tensor& running_var, double momentum, double eps) {
  const int64_t c = x.size(1), rows = x.numel() / c;
  const bool record = c10::GradMode::is_enabled() &&
                      (x.requires_grad() || weight.requires_grad() || bias.requires_grad());
  c10::NoGradGuard no_grad;
  const float* xp = x.data_ptr<float>();
  // Shifted by the first row, the one pass keeps the variance of a channel whose mean is far
  // from zero.
  const float* shift = xp;
  std::vector<double> sums = reduce_rows(rows, c, 2 * c, [&](int64_t r0, int64_t r1, double* p) {
    SEKIT_DISPATCH(bn_stats_rows, xp, r0, r1, c, shift, p, p + c);
  });
  std::vector<double> a(c), b(c), mean(c), invstd(c);
  const float *wp = weight.data_ptr<float>(), *bp = bias.data_ptr<float>();
  float *rm = running_mean.data_ptr<float>(), *rv = running_var.data_ptr<float>();
  const double n = static_cast<double>(rows);
  for (int64_t k = 0; k < c; ++k) {
    const double d = sums[k] / n;
    const double var = std::max(0.0, sums[c + k] / n - d * d);
    mean[k] = static_cast<double>(shift[k]) + d;
    invstd[k] = 1.0 / std::sqrt(var + eps);
    // ATen's forward form: y = x * (invstd * w) + (b - mean * invstd * w), in float.
    const float mk = static_cast<float>(mean[k]);
    const float ak = static_cast<float>(invstd[k]) * wp[k];
    a[k] = ak;
    b[k] = bp[k] - mk * ak;
    rm[k] = static_cast<float>((1 - momentum) * rm[k] + momentum * mean[k]);
    rv[k] = static_cast<float>((1 - momentum) * rv[k] + momentum * var * n / (n - 1));
  }
  at::Tensor at_ = floats(a), bt = floats(b);
  const float *ap = at_.data_ptr<float>(), *bpp = bt.data_ptr<float>();
  at::Tensor y = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  float* yp = y.data_ptr<float>();
  for_rows(rows, c, [&](int64_t r0, int64_t r1) { SEKIT_DISPATCH(bn_relu_rows, xp, yp, r0, r1, c, ap, bpp); });
  if (record) {
    auto node = new_node<BatchNormReluBackward>();
    node->x_ = torch::autograd::SavedVariable(x, false);
    node->a = at_;
    node->b = bt;
    node->mean = floats(mean);
    node->invstd = std::move(invstd);
    node->set_next_edges(torch::autograd::collect_next_edges(x, weight, bias));
    torch::autograd::set_history(y, node);
  }
  return y;
}

}  // namespace sekit
