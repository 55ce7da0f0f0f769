// Training primitives: loss, accuracy, gradient clipping, SGD and AdamW (the same
// updates as torch.optim, with their state exposed for checkpoints), augmentation.
#include "dispatch.hpp"
#include "module.hpp"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <random>

struct sk_optimizer {
  struct Group {
    double lr;
    double weight_decay;
  };
  virtual ~sk_optimizer() = default;
  std::shared_ptr<sekit::Module> module;  // keeps the parameters alive
  std::vector<std::pair<std::string, at::Tensor>> params;  // the optimised ones (frozen left out)
  std::vector<size_t> group;                                // group of params[i]
  std::vector<Group> groups;
  std::vector<std::pair<std::string, at::Tensor>> state;  // names are borrowed by callers
  at::Tensor step;                                         // int64 scalar
  virtual void update() = 0;
};

namespace sekit {
namespace {

void check_lr(double lr) {
  if (!(lr >= 0.0 && std::isfinite(lr))) fail("learning rate must be a finite number >= 0, got ", lr);
}

// Fills o.params, o.group and o.groups; without `grouped`, one group of every parameter.
void collect_params(sk_optimizer& o, sk_module* m, bool grouped, const int32_t* group_of, int64_t n_params,
                    const double* lrs, const double* weight_decays, int64_t n_groups) {
  o.module = module_arg(m)->module;
  int64_t count = 0;
  for (auto& e : m->state) count += e.is_parameter ? 1 : 0;
  if (count == 0) fail("the module has no parameters to optimise");
  if (grouped) {
    if (group_of == nullptr) fail("group_of must not be NULL");
    if (n_params != count) fail("group_of has ", n_params, " entries but the module has ", count, " parameters");
    if (n_groups < 1) fail("n_groups must be >= 1, got ", n_groups);
    if (lrs == nullptr || weight_decays == nullptr) fail("lrs and weight_decays must not be NULL");
  }
  for (int64_t g = 0; g < n_groups; ++g) {
    check_lr(lrs[g]);
    if (!(weight_decays[g] >= 0 && std::isfinite(weight_decays[g])))
      fail("weight decay of group ", g, " must be a finite number >= 0, got ", weight_decays[g]);
    o.groups.push_back({lrs[g], weight_decays[g]});
  }
  int64_t i = 0;
  for (auto& e : m->state) {
    if (!e.is_parameter) continue;
    const int32_t g = grouped ? group_of[i] : 0;
    if (g < -1 || g >= n_groups) fail("group_of[", i, "] (", e.name, ") is ", g, ", outside [-1, ", n_groups, ")");
    ++i;
    if (g < 0) continue;
    o.params.emplace_back(e.name, *e.tensor);
    o.group.push_back(static_cast<size_t>(g));
  }
  if (o.params.empty()) fail("every parameter is frozen: nothing to optimise");
  o.step = at::zeros({}, at::kLong);
}

struct Sgd : sk_optimizer {
  double momentum, dampening;
  bool nesterov;
  std::vector<at::Tensor> bufs;

  void update() override {
    const bool first = step.item<int64_t>() == 0;
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor& p = params[i].second;
      const at::Tensor& g = p.grad();
      if (!g.defined()) continue;
      const double lr = groups[group[i]].lr, weight_decay = groups[group[i]].weight_decay;
      if (fused(p, g, momentum != 0 ? &bufs[i] : nullptr, lr, weight_decay, first)) continue;
      at::Tensor d_p = weight_decay != 0 ? g.add(p, weight_decay) : g;
      if (momentum != 0) {
        at::Tensor& buf = bufs[i];
        if (first) {
          buf.copy_(d_p);
        } else {
          buf.mul_(momentum).add_(d_p, 1 - dampening);
        }
        d_p = nesterov ? d_p.add(buf, momentum) : buf;
      }
      p.add_(d_p, -lr);
    }
  }

  // The same update in one pass over p, g and buf (ATen's ops above make five, and two
  // temporaries): CPU float32/float64 tensors that are dense and share one order of elements
  // (strides may differ only where a dimension has size 1, as a channels-last 1x1 weight's
  // and its gradient's do).
  bool fused(at::Tensor& p, const at::Tensor& g, at::Tensor* buf, double lr, double weight_decay, bool first) {
    auto fits = [&](const at::Tensor& t) {
      if (!t.device().is_cpu() || t.scalar_type() != p.scalar_type() || t.sizes() != p.sizes() ||
          !t.is_non_overlapping_and_dense())
        return false;
      for (int64_t d = 0; d < p.dim(); ++d)
        if (p.size(d) > 1 && t.stride(d) != p.stride(d)) return false;
      return true;
    };
    if (!p.device().is_cpu() || (p.scalar_type() != at::kFloat && p.scalar_type() != at::kDouble) ||
        !p.is_non_overlapping_and_dense() || !fits(g) || (buf && !fits(*buf)) || p.is_inference())
      return false;
    AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "sgd_update", [&] {
      scalar_t* pp = p.data_ptr<scalar_t>();
      const scalar_t* gp = g.data_ptr<scalar_t>();
      scalar_t* bp = buf ? buf->data_ptr<scalar_t>() : nullptr;
      at::parallel_for(0, p.numel(), 32768, [&](int64_t i0, int64_t i1) {
        SEKIT_DISPATCH(sgd_update<scalar_t>, pp, gp, bp, i0, i1, static_cast<scalar_t>(lr),
                       static_cast<scalar_t>(weight_decay), static_cast<scalar_t>(momentum),
                       static_cast<scalar_t>(1 - dampening), nesterov, first);
      });
    });
    // Written through raw pointers: the version counters move as ATen's in-place ops move them
    // (autograd's checks, and a prepared module noticing new weights, read them).
    p.unsafeGetTensorImpl()->bump_version();
    if (buf) buf->unsafeGetTensorImpl()->bump_version();
    return true;
  }
};

struct AdamW : sk_optimizer {
  double beta1, beta2, eps;
  std::vector<at::Tensor> exp_avg, exp_avg_sq;

  void update() override {
    const double t = static_cast<double>(step.item<int64_t>() + 1);
    const double bc1 = 1 - std::pow(beta1, t);
    const double bc2 = 1 - std::pow(beta2, t);
    const double bc2_sqrt = std::sqrt(bc2);
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor& p = params[i].second;
      const at::Tensor& g = p.grad();
      if (!g.defined()) continue;
      const double lr = groups[group[i]].lr, weight_decay = groups[group[i]].weight_decay;
      const double step_size = lr / bc1;
      p.mul_(1 - lr * weight_decay);
      exp_avg[i].mul_(beta1).add_(g, 1 - beta1);  // as torch 1.13 (2.x uses lerp_)
      exp_avg_sq[i].mul_(beta2).addcmul_(g, g, 1 - beta2);
      at::Tensor denom = (exp_avg_sq[i].sqrt() / bc2_sqrt).add_(eps);
      p.addcdiv_(exp_avg[i], denom, -step_size);
    }
  }
};

sk_optimizer* make_sgd(sk_module* m, bool grouped, const int32_t* group_of, int64_t n_params, const double* lrs,
                       const double* weight_decays, int64_t n_groups, double momentum, double dampening,
                       int32_t nesterov) {
  if (!(momentum >= 0)) fail("momentum must be >= 0, got ", momentum);
  if (nesterov && (momentum <= 0 || dampening != 0))
    fail("Nesterov momentum requires a momentum > 0 and zero dampening");
  auto o = std::make_unique<Sgd>();
  collect_params(*o, m, grouped, group_of, n_params, lrs, weight_decays, n_groups);
  o->momentum = momentum;
  o->dampening = dampening;
  o->nesterov = nesterov != 0;
  if (momentum != 0)
    for (auto& p : o->params) {
      o->bufs.push_back(at::zeros_like(p.second));
      o->state.emplace_back(p.first + ".momentum_buffer", o->bufs.back());
    }
  o->state.emplace_back("step", o->step);
  return o.release();
}

sk_optimizer* make_adamw(sk_module* m, bool grouped, const int32_t* group_of, int64_t n_params, const double* lrs,
                         const double* weight_decays, int64_t n_groups, double beta1, double beta2, double eps) {
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
    fail("betas must be in [0, 1), got ", beta1, " and ", beta2);
  if (!(eps > 0)) fail("eps must be > 0, got ", eps);
  auto o = std::make_unique<AdamW>();
  collect_params(*o, m, grouped, group_of, n_params, lrs, weight_decays, n_groups);
  o->beta1 = beta1;
  o->beta2 = beta2;
  o->eps = eps;
  for (auto& p : o->params) {
    o->exp_avg.push_back(at::zeros_like(p.second));
    o->exp_avg_sq.push_back(at::zeros_like(p.second));
  }
  for (size_t i = 0; i < o->params.size(); ++i) {
    o->state.emplace_back(o->params[i].first + ".exp_avg", o->exp_avg[i]);
    o->state.emplace_back(o->params[i].first + ".exp_avg_sq", o->exp_avg_sq[i]);
  }
  o->state.emplace_back("step", o->step);
  return o.release();
}

sk_optimizer* arg(const sk_optimizer* o) {
  if (o == nullptr) fail("optimizer must not be NULL");
  return const_cast<sk_optimizer*>(o);
}

}  // namespace
}  // namespace sekit

using namespace sekit;

extern "C" {

sk_error* sk_cross_entropy(const sk_tensor* logits, const sk_tensor* targets, double label_smoothing,
                           sk_tensor** loss) {
  SK_GUARD_BEGIN
  CpuCacheScope keep_freed_blocks;
  const at::Tensor& z = tensor_arg(logits, "logits");
  const at::Tensor& y = tensor_arg(targets, "targets");
  out_arg(loss, "loss");
  if (z.dim() != 2) fail("cross_entropy: logits must be [N, K], got ", shape_str(z.sizes()));
  if (y.dim() != 1 || y.size(0) != z.size(0))
    fail("cross_entropy: targets must be [N] with N = ", z.size(0), ", got ", shape_str(y.sizes()));
  if (y.scalar_type() != at::kLong) fail("cross_entropy: targets must be int64, got ", c10::toString(y.scalar_type()));
  if (!(label_smoothing >= 0.0 && label_smoothing < 1.0))
    fail("cross_entropy: label_smoothing must be in [0, 1), got ", label_smoothing);
  int64_t lo = y.min().item<int64_t>(), hi = y.max().item<int64_t>();
  if (lo < 0 || hi >= z.size(1))
    fail("cross_entropy: targets span [", lo, ", ", hi, "] but there are ", z.size(1), " classes");
  *loss = new_handle(at::cross_entropy_loss(z, y, {}, at::Reduction::Mean, -100, label_smoothing));
  SK_GUARD_END
}

sk_error* sk_count_correct(const sk_tensor* logits, const sk_tensor* targets, int64_t* out_count) {
  SK_GUARD_BEGIN
  const at::Tensor& z = tensor_arg(logits, "logits");
  const at::Tensor& y = tensor_arg(targets, "targets");
  out_arg(out_count, "out_count");
  if (z.dim() != 2 || y.dim() != 1 || y.size(0) != z.size(0))
    fail("count_correct: expects logits [N, K] and targets [N], got ", shape_str(z.sizes()), " and ",
         shape_str(y.sizes()));
  c10::NoGradGuard no_grad;
  *out_count = z.argmax(1).eq(y).sum().item<int64_t>();
  SK_GUARD_END
}

sk_error* sk_count_correct_topk(const sk_tensor* logits, const sk_tensor* targets, const int64_t* ks, int64_t n_ks,
                                int64_t* out_counts) {
  SK_GUARD_BEGIN
  const at::Tensor& z = tensor_arg(logits, "logits");
  const at::Tensor& y = tensor_arg(targets, "targets");
  out_arg(out_counts, "out_counts");
  if (ks == nullptr) fail("ks must not be NULL");
  if (n_ks < 1) fail("n_ks must be >= 1, got ", n_ks);
  if (z.dim() != 2 || y.dim() != 1 || y.size(0) != z.size(0))
    fail("count_correct_topk: expects logits [N, K] and targets [N], got ", shape_str(z.sizes()), " and ",
         shape_str(y.sizes()));
  if (z.size(1) < 1) fail("count_correct_topk: logits have no classes");
  if (y.scalar_type() != at::kLong)
    fail("count_correct_topk: targets must be int64, got ", c10::toString(y.scalar_type()));
  int64_t maxk = 0;
  for (int64_t j = 0; j < n_ks; ++j) {
    if (ks[j] < 1) fail("ks[", j, "] must be >= 1, got ", ks[j]);
    maxk = std::max(maxk, ks[j]);
  }
  c10::NoGradGuard no_grad;
  maxk = std::min(maxk, z.size(1));
  at::Tensor pred = std::get<1>(z.topk(maxk, 1, /*largest=*/true, /*sorted=*/true));  // [N, maxk]
  // hits within the first k predictions, for every k at once: one host copy, not one per k
  at::Tensor hit = pred.eq(y.to(pred.device()).view({-1, 1}));
  at::Tensor within = hit.sum(0).cumsum(0).to(at::kCPU, at::kLong);  // [maxk]
  const int64_t* w = within.data_ptr<int64_t>();
  for (int64_t j = 0; j < n_ks; ++j) out_counts[j] = w[std::min(ks[j], maxk) - 1];
  SK_GUARD_END
}

sk_error* sk_clip_grad_norm(sk_module* m, double max_norm, double* total_norm) {
  SK_GUARD_BEGIN
  CpuCacheScope keep_freed_blocks;
  module_arg(m);
  out_arg(total_norm, "total_norm");
  if (!(max_norm > 0)) fail("max_norm must be > 0, got ", max_norm);
  c10::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (auto& e : m->state)
    if (e.is_parameter && e.tensor->grad().defined()) grads.push_back(e.tensor->grad());
  if (grads.empty()) {
    *total_norm = 0;
    return nullptr;
  }
  std::vector<at::Tensor> norms;
  for (auto& g : grads) norms.push_back(g.norm(2));
  at::Tensor total = at::stack(norms).norm(2);
  const double clip = max_norm / (total.item<double>() + 1e-6);
  if (clip < 1)
    for (auto& g : grads) g.mul_(clip);
  *total_norm = total.item<double>();
  SK_GUARD_END
}

sk_error* sk_sgd_new(sk_module* m, double lr, double momentum, double dampening, double weight_decay,
                     int32_t nesterov, sk_optimizer** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  *out = make_sgd(m, false, nullptr, 0, &lr, &weight_decay, 1, momentum, dampening, nesterov);
  SK_GUARD_END
}

sk_error* sk_sgd_new_grouped(sk_module* m, const int32_t* group_of, int64_t n_params, const double* lrs,
                             const double* weight_decays, int64_t n_groups, double momentum, double dampening,
                             int32_t nesterov, sk_optimizer** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  *out = make_sgd(m, true, group_of, n_params, lrs, weight_decays, n_groups, momentum, dampening, nesterov);
  SK_GUARD_END
}

sk_error* sk_adamw_new(sk_module* m, double lr, double beta1, double beta2, double eps, double weight_decay,
                       sk_optimizer** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  *out = make_adamw(m, false, nullptr, 0, &lr, &weight_decay, 1, beta1, beta2, eps);
  SK_GUARD_END
}

sk_error* sk_adamw_new_grouped(sk_module* m, const int32_t* group_of, int64_t n_params, const double* lrs,
                               const double* weight_decays, int64_t n_groups, double beta1, double beta2,
                               double eps, sk_optimizer** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  *out = make_adamw(m, true, group_of, n_params, lrs, weight_decays, n_groups, beta1, beta2, eps);
  SK_GUARD_END
}

int64_t sk_optimizer_group_count(const sk_optimizer* opt) {
  return opt ? static_cast<int64_t>(opt->groups.size()) : -1;
}

sk_error* sk_optimizer_group_lr(const sk_optimizer* opt, int64_t group, double* out_lr) {
  SK_GUARD_BEGIN
  sk_optimizer* o = arg(opt);
  out_arg(out_lr, "out_lr");
  if (group < 0 || group >= static_cast<int64_t>(o->groups.size()))
    fail("group ", group, " out of range [0, ", o->groups.size(), ")");
  *out_lr = o->groups[static_cast<size_t>(group)].lr;
  SK_GUARD_END
}

sk_error* sk_optimizer_set_group_lr(sk_optimizer* opt, int64_t group, double lr) {
  SK_GUARD_BEGIN
  sk_optimizer* o = arg(opt);
  if (group < 0 || group >= static_cast<int64_t>(o->groups.size()))
    fail("group ", group, " out of range [0, ", o->groups.size(), ")");
  check_lr(lr);
  o->groups[static_cast<size_t>(group)].lr = lr;
  SK_GUARD_END
}

void sk_optimizer_free(sk_optimizer* opt) { delete opt; }

sk_error* sk_optimizer_step(sk_optimizer* opt) {
  SK_GUARD_BEGIN
  CpuCacheScope keep_freed_blocks;
  sk_optimizer* o = arg(opt);
  c10::NoGradGuard no_grad;
  for (auto& p : o->params)
    if (p.second.grad().defined() && p.second.grad().scalar_type() != p.second.scalar_type())
      fail("the gradient of ", p.first, " is ", c10::toString(p.second.grad().scalar_type()), " but the parameter is ",
           c10::toString(p.second.scalar_type()));
  // State follows the parameters' dtype and device (after module.to()).
  for (auto& s : o->state)
    if (s.first != "step") {
      const at::Tensor& like = o->params.front().second;
      if (s.second.scalar_type() != like.scalar_type() || s.second.device() != like.device())
        s.second.set_data(s.second.to(like.device(), like.scalar_type()));
    }
  o->update();
  o->step.add_(1);
  SK_GUARD_END
}

sk_error* sk_optimizer_zero_grad(sk_optimizer* opt) {
  SK_GUARD_BEGIN
  CpuCacheScope keep_freed_blocks;  // the gradients freed here are the next backward's
  for (auto& p : arg(opt)->params)
    if (p.second.grad().defined()) p.second.mutable_grad() = at::Tensor();
  SK_GUARD_END
}

sk_error* sk_optimizer_set_lr(sk_optimizer* opt, double lr) {
  SK_GUARD_BEGIN
  sk_optimizer* o = arg(opt);
  check_lr(lr);
  for (auto& g : o->groups) g.lr = lr;
  SK_GUARD_END
}

double sk_optimizer_lr(const sk_optimizer* opt) { return opt ? opt->groups.front().lr : -1; }

sk_error* sk_optimizer_state_count(const sk_optimizer* opt, int64_t* out_count) {
  SK_GUARD_BEGIN
  sk_optimizer* o = arg(opt);
  out_arg(out_count, "out_count");
  *out_count = static_cast<int64_t>(o->state.size());
  SK_GUARD_END
}

sk_error* sk_optimizer_state_entry(const sk_optimizer* opt, int64_t index, const char** name, sk_tensor** tensor) {
  SK_GUARD_BEGIN
  sk_optimizer* o = arg(opt);
  out_arg(name, "name");
  out_arg(tensor, "tensor");
  if (index < 0 || index >= static_cast<int64_t>(o->state.size()))
    fail("optimizer state index ", index, " out of range [0, ", o->state.size(), ")");
  auto& e = o->state[static_cast<size_t>(index)];
  sk_tensor* h = new_handle(e.second);
  *name = e.first.c_str();
  *tensor = h;
  SK_GUARD_END
}

sk_error* sk_random_crop_flip(const sk_tensor* x, int64_t pad, double fill, int32_t flip, uint64_t seed,
                              sk_tensor** out) {
  SK_GUARD_BEGIN
  CpuCacheScope keep_freed_blocks;  // the padded copy freed here is every step's
  const at::Tensor& in = tensor_arg(x, "x");
  out_arg(out, "out");
  if (in.dim() != 4) fail("random_crop_flip expects [N, C, H, W], got ", shape_str(in.sizes()));
  if (pad < 0) fail("pad must be >= 0, got ", pad);
  c10::NoGradGuard no_grad;
  const int64_t n = in.size(0), h = in.size(2), w = in.size(3);
  at::Tensor padded = pad > 0 ? at::constant_pad_nd(in, {pad, pad, pad, pad}, fill) : in;
  at::Tensor result = at::empty_like(in, at::MemoryFormat::Contiguous);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> offset(0, 2 * pad);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t dy = offset(rng), dx = offset(rng);
    const bool mirror = flip && (rng() & 1);
    at::Tensor crop = padded[i].slice(1, dy, dy + h).slice(2, dx, dx + w);
    result[i].copy_(mirror ? crop.flip({2}) : crop);
  }
  *out = new_handle(result);
  SK_GUARD_END
}

}  // extern "C"
