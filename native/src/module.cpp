// Module base, Conv2d, BatchNorm2d, activations, and the module part of the C ABI.
#include "module.hpp"

#include "se_fused.hpp"

#include <c10/core/GradMode.h>
#include <c10/util/strides.h>

#include <cmath>

namespace sekit {

void Module::set_training(bool on) {
  training_ = on;
  for (auto& c : children_) c.second->set_training(on);
}

void Module::set_fused(bool on) {
  visit([on](Module& m) { m.fused_ = on; });
}

void Module::collect_state(const std::string& prefix, std::vector<StateEntry>& out) {
  for (auto& p : params_) out.push_back({prefix + p.first, &p.second, true});
  for (auto& b : buffers_) out.push_back({prefix + b.first, &b.second, false});
  for (auto& c : children_) c.second->collect_state(prefix + c.first + ".", out);
}

void Module::to(at::ScalarType floating_dtype, at::Device device) {
  c10::NoGradGuard no_grad;
  auto convert = [&](at::Tensor& t) {
    at::ScalarType st = at::isFloatingType(t.scalar_type()) ? floating_dtype : t.scalar_type();
    if (t.scalar_type() == st && t.device() == device) return;
    t.set_data(t.to(device, st));
    if (t.grad().defined()) t.mutable_grad() = t.grad().to(device, st);
  };
  for (auto& p : params_) convert(p.second);
  for (auto& b : buffers_) convert(b.second);
  for (auto& c : children_) c.second->to(floating_dtype, device);
}

void Module::visit(const std::function<void(Module&)>& f) {
  f(*this);
  for (auto& c : children_) c.second->visit(f);
}

MaxPool2d::MaxPool2d(int64_t kernel, int64_t stride, bool ceil) : kernel_(kernel), stride_(stride), ceil_(ceil) {
  if (kernel < 1 || stride < 1) fail("MaxPool2d kernel and stride must be >= 1, got ", kernel, " and ", stride);
}

at::Tensor MaxPool2d::forward(const at::Tensor& x) {
  if (x.dim() != 4) fail("MaxPool2d expects a 4-d input, got shape ", shape_str(x.sizes()));
  return max_pool2d(x, kernel_, stride_, 0, ceil_, fused_);
}

// timm's get_padding for dilation 1: ((stride - 1) + (kernel - 1)) / 2
static int64_t same_padding(int64_t kernel, int64_t stride) { return ((stride - 1) + (kernel - 1)) / 2; }

ConvNormAct::ConvNormAct(int64_t in, int64_t out, int64_t kernel, int64_t stride, bool separable)
    : separable_(separable) {
  positive_arg("in_chs", in);
  positive_arg("out_chs", out);
  if (kernel < 1 || stride < 1) fail("kernel and stride must be >= 1, got ", kernel, " and ", stride);
  const int64_t pad = same_padding(kernel, stride);
  if (separable) {
    conv_dw_ = register_module("conv_dw", std::make_shared<Conv2d>(in, in, kernel, stride, pad, in, false));
    conv_pw_ = register_module("conv_pw", std::make_shared<Conv2d>(in, out, 1, 1, 0, 1, false));
  } else {
    conv_ = register_module("conv", std::make_shared<Conv2d>(in, out, kernel, stride, pad, 1, false));
  }
  bn_ = register_module("bn", std::make_shared<BatchNorm2d>(out));
}

at::Tensor ConvNormAct::forward(const at::Tensor& x) {
  at::Tensor h = separable_ ? conv_pw_->forward(conv_dw_->forward(x)) : conv_->forward(x);
  return bn_->forward_relu(h);
}

ClassifierHead::ClassifierHead(int64_t in, int64_t classes, double drop_rate) : drop_rate_(drop_rate) {
  positive_arg("in_chs", in);
  positive_arg("classes", classes);
  if (!(drop_rate >= 0.0 && drop_rate < 1.0)) fail("drop_rate must be in [0, 1), got ", drop_rate);
  fc_ = register_module("fc", std::make_shared<Linear>(in, classes));
  c10::NoGradGuard no_grad;
  fc_->bias()->zero_();
}

at::Tensor ClassifierHead::forward(const at::Tensor& x) {
  at::Tensor pooled = x.dim() == 4 ? x.mean({2, 3}) : x;
  at::Tensor h = drop_rate_ > 0 ? at::dropout(pooled, drop_rate_, training_) : pooled;
  return fc_->forward(h);
}

void positive_arg(const char* what, int64_t v) {
  if (v < 1) fail(what, " must be >= 1, got ", v);
}

sk_module* wrap_module(std::shared_ptr<Module> m) {
  auto h = std::make_unique<sk_module>(sk_module{std::move(m), {}});
  h->module->collect_state("", h->state);  // may throw: h is freed then
  return h.release();
}

void Sequential::push_back(std::shared_ptr<Module> m) {
  register_module(std::to_string(items_.size()), m);
  items_.push_back(std::move(m));
}

at::Tensor Sequential::forward(const at::Tensor& x) {
  at::Tensor h = x;
  for (auto& m : items_) h = m->forward(h);
  return h;
}

Linear::Linear(int64_t in, int64_t out, bool bias) : in_(in), out_(out) {
  if (in < 1 || out < 1) fail("Linear sizes must be >= 1, got in=", in, " out=", out);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight_ = &register_parameter("weight", at::empty({out, in}, at::kFloat).uniform_(-bound, bound));
  if (bias) bias_ = &register_parameter("bias", at::empty({out}, at::kFloat).uniform_(-bound, bound));
}

at::Tensor Linear::forward(const at::Tensor& x) {
  if (x.dim() < 1 || x.size(-1) != in_)
    fail("Linear(", in_, ", ", out_, ") got input of shape ", shape_str(x.sizes()));
  const at::Tensor& w = *weight_;
  // The small kernel stands in for the reference BLAS Debian's libtorch links; a libtorch
  // with MKL multiplies large heads faster itself.
  const bool own = fused_ && !at::hasMKL() && x.dim() == 2 && x.device().is_cpu() && w.device().is_cpu() &&
                   x.scalar_type() == w.scalar_type() && (w.scalar_type() == at::kFloat || w.scalar_type() == at::kDouble) &&
                   (!bias_ || bias_->scalar_type() == w.scalar_type());
  if (own) return small_linear(x, w, bias_ ? *bias_ : at::Tensor());
  return at::linear(x, w, bias_ ? *bias_ : at::Tensor());
}

// `t` in `format` by its strides, as libtorch's convolution reads a layout
// (suggest_memory_format), not only by is_contiguous: a dimension of size 1 makes a tensor
// contiguous in both layouts at once, and contiguous(format) then keeps its strides (a
// grayscale stem's [24, 1, 3, 3] weight kept NCHW strides, so its convolution wrote NCHW and
// the BatchNorm+ReLU after it missed the fused channels-last kernel: 12 of the demo's 118 ms
// per training step). A tensor that already has the format's own strides is returned as it
// is, so that to(format) twice copies nothing.
static at::Tensor laid_out(const at::Tensor& t, at::MemoryFormat format) {
  if (t.dim() != 4) return t;
  const bool same = format == at::MemoryFormat::ChannelsLast
                        ? t.strides() == at::IntArrayRef(c10::get_channels_last_strides_2d(t.sizes()))
                        : t.strides() == at::IntArrayRef(c10::contiguous_strides(t.sizes()));
  if (same) return t;
  at::Tensor r = at::empty(t.sizes(), t.options().memory_format(format));
  r.copy_(t);
  return r;
}

void Module::to_format(at::MemoryFormat format) {
  c10::NoGradGuard no_grad;
  auto convert = [&](at::Tensor& t) {
    at::Tensor r = laid_out(t, format);
    if (r.is_same(t)) return;
    t.set_data(r);
    if (t.grad().defined()) t.mutable_grad() = laid_out(t.grad(), format);
  };
  for (auto& p : params_) convert(p.second);
  for (auto& b : buffers_) convert(b.second);
  for (auto& c : children_) c.second->to_format(format);
}

at::TensorOptions Module::param_options() const {
  for (auto& p : params_)
    if (at::isFloatingType(p.second.scalar_type())) return p.second.options();
  for (auto& c : children_) {
    auto o = c.second->param_options();
    if (o.has_dtype()) return o;
  }
  return at::TensorOptions();
}

at::Tensor& Module::register_parameter(std::string name, at::Tensor t) {
  t.set_requires_grad(true);
  params_.emplace_back(std::move(name), std::move(t));
  return params_.back().second;
}

at::Tensor& Module::register_buffer(std::string name, at::Tensor t) {
  buffers_.emplace_back(std::move(name), std::move(t));
  return buffers_.back().second;
}

void Module::check_input(const at::Tensor& x, int64_t channels, const char* what) const {
  if (x.dim() != 4)
    fail(what, " expects a 4-d input [N, C, H, W], got ", x.dim(), "-d shape ", shape_str(x.sizes()));
  if (x.size(1) != channels)
    fail(what, " has ", channels, " channels but the input has ", x.size(1), " (shape ",
         shape_str(x.sizes()), ")");
  auto o = param_options();
  if (o.has_dtype() && x.scalar_type() != c10::typeMetaToScalarType(o.dtype()))
    fail(what, " holds ", c10::toString(c10::typeMetaToScalarType(o.dtype())), " parameters but the input is ",
         c10::toString(x.scalar_type()), "; convert one of them first");
  if (o.has_device() && x.device() != o.device())
    fail(what, " is on ", o.device().str(), " but the input is on ", x.device().str());
}

static at::Tensor kaiming_uniform_default(at::IntArrayRef shape, int64_t fan_in) {
  // PyTorch's default: kaiming_uniform_(a=sqrt(5)) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return at::empty(shape, at::kFloat).uniform_(-bound, bound);
}

Conv2d::Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
               int64_t groups, bool bias)
    : in_(in), out_(out), kernel_(kernel), stride_(stride), padding_(padding), groups_(groups) {
  if (in < 1 || out < 1) fail("conv channels must be >= 1, got in=", in, " out=", out);
  if (groups < 1 || in % groups != 0 || out % groups != 0)
    fail("conv groups=", groups, " must divide in=", in, " and out=", out);
  const int64_t fan_in = (in / groups) * kernel * kernel;
  // Channels-last from the start: libtorch's CPU convolutions (oneDNN) are fastest in it,
  // and a channels-last weight makes the output, and so the layers after it, channels-last
  // too, whatever the input's layout. That holds for 1x1 kernels and one-channel inputs as
  // well: their weights get channels-last strides although both layouts hold the same bytes.
  weight_ = &register_parameter(
      "weight", laid_out(kaiming_uniform_default({out, in / groups, kernel, kernel}, fan_in), at::MemoryFormat::ChannelsLast));
  if (bias) bias_ = &register_parameter("bias", kaiming_uniform_default({out}, fan_in));
}

at::Tensor Conv2d::forward(const at::Tensor& x) {
  check_input(x, in_, "Conv2d");
  return at::conv2d(x, *weight_, bias_ ? *bias_ : at::Tensor(), {stride_, stride_},
                    {padding_, padding_}, {1, 1}, groups_);
}

BatchNorm2d::BatchNorm2d(int64_t channels, double eps, double momentum)
    : channels_(channels), eps_(eps), momentum_(momentum) {
  if (channels < 1) fail("BatchNorm2d channels must be >= 1, got ", channels);
  weight_ = &register_parameter("weight", at::ones({channels}, at::kFloat));
  bias_ = &register_parameter("bias", at::zeros({channels}, at::kFloat));
  running_mean_ = &register_buffer("running_mean", at::zeros({channels}, at::kFloat));
  running_var_ = &register_buffer("running_var", at::ones({channels}, at::kFloat));
  num_batches_tracked_ = &register_buffer("num_batches_tracked", at::zeros({}, at::kLong));
}

at::Tensor BatchNorm2d::forward(const at::Tensor& x) { return normalize(x, false); }

at::Tensor BatchNorm2d::forward_relu(const at::Tensor& x) { return normalize(x, true); }

at::Tensor BatchNorm2d::normalize(const at::Tensor& x, bool relu) {
  if (x.dim() < 2 || x.size(1) != channels_)
    fail("BatchNorm2d(", channels_, ") got input of shape ", shape_str(x.sizes()));
  if (training_) {
    c10::NoGradGuard no_grad;
    num_batches_tracked_->add_(1);
  }
  at::Tensor z;
  if (training_ && sync_) {
    z = sync_->forward(x, *weight_, *bias_, *running_mean_, *running_var_, momentum_, eps_);
  } else if (relu && training_ && fused_ && fused_batch_norm_relu_applies(x, *weight_, *bias_, *running_mean_, *running_var_)) {
    return fused_batch_norm_relu(x, *weight_, *bias_, *running_mean_, *running_var_, momentum_, eps_);
  } else {
    z = at::batch_norm(x, *weight_, *bias_, *running_mean_, *running_var_, training_, momentum_, eps_,
                       /*cudnn_enabled=*/true);
  }
  return relu ? at::relu_(z) : z;  // ReLU in place, as timm's BatchNormAct2d
}

std::pair<at::Tensor, at::Tensor> BatchNorm2d::affine() const {
  c10::NoGradGuard no_grad;
  at::Tensor scale = weight_->to(at::kDouble) * (running_var_->to(at::kDouble) + eps_).rsqrt();
  at::Tensor shift = bias_->to(at::kDouble) - running_mean_->to(at::kDouble) * scale;
  return {scale, shift};
}

void check_activation(int32_t act, const char* what) {
  if (act < SK_ACT_IDENTITY || act > SK_ACT_TANH)
    fail(what, ": unknown activation code ", act, " (expected ", SK_ACT_IDENTITY, "..", SK_ACT_TANH, ")");
}

at::Tensor apply_activation(int32_t act, const at::Tensor& x) {
  switch (act) {
    case SK_ACT_IDENTITY: return x;
    case SK_ACT_RELU: return at::relu(x);
    case SK_ACT_SIGMOID: return at::sigmoid(x);
    case SK_ACT_HARD_SIGMOID: return at::hardsigmoid(x);
    case SK_ACT_SILU: return at::silu(x);
    case SK_ACT_GELU: return at::gelu(x);
    case SK_ACT_HARD_SWISH: return at::hardswish(x);
    case SK_ACT_TANH: return at::tanh(x);
    default: fail("unknown activation code ", act);
  }
}

void apply_activation_(int32_t act, at::Tensor& x) {
  switch (act) {
    case SK_ACT_IDENTITY: return;
    case SK_ACT_RELU: at::relu_(x); return;
    case SK_ACT_SIGMOID: at::sigmoid_(x); return;
    case SK_ACT_HARD_SIGMOID: at::hardsigmoid_(x); return;
    case SK_ACT_SILU: at::silu_(x); return;
    case SK_ACT_GELU: at::gelu_(x); return;
    case SK_ACT_HARD_SWISH: at::hardswish_(x); return;
    case SK_ACT_TANH: at::tanh_(x); return;
    default: fail("unknown activation code ", act);
  }
}

int64_t se_reduced_channels(int64_t channels, double rd_ratio, int64_t rd_divisor) {
  const double v = static_cast<double>(channels) * rd_ratio;
  const int64_t rounded =
      static_cast<int64_t>(v + static_cast<double>(rd_divisor) / 2.0) / rd_divisor * rd_divisor;
  return std::max(rd_divisor, rounded);
}

sk_module* module_arg(const sk_module* m) {
  if (m == nullptr || !m->module) fail("module must not be NULL");
  return const_cast<sk_module*>(m);
}

}  // namespace sekit

using namespace sekit;

extern "C" {

void sk_module_free(sk_module* m) { delete m; }

sk_error* sk_sequential_new(sk_module** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  *out = wrap_module(std::make_shared<Sequential>());
  SK_GUARD_END
}

sk_error* sk_sequential_append(sk_module* seq, sk_module* child) {
  SK_GUARD_BEGIN
  auto* s = dynamic_cast<Sequential*>(module_arg(seq)->module.get());
  if (s == nullptr) fail("seq is not a Sequential");
  Module& c = *module_arg(child)->module;
  bool cycle = false;
  c.visit([&](Module& m) { cycle = cycle || &m == s; });
  if (cycle) fail("appending this child would make a cycle (a Sequential cannot contain itself)");
  s->push_back(child->module);
  seq->state.clear();
  seq->module->collect_state("", seq->state);
  SK_GUARD_END
}

sk_error* sk_maxpool2d_new(int64_t kernel, int64_t stride, int32_t ceil_mode, sk_module** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  *out = wrap_module(std::make_shared<MaxPool2d>(kernel, stride, ceil_mode != 0));
  SK_GUARD_END
}

sk_error* sk_classifier_head_new(int64_t in_chs, int64_t classes, double drop_rate, sk_module** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  *out = wrap_module(std::make_shared<ClassifierHead>(in_chs, classes, drop_rate));
  SK_GUARD_END
}

sk_error* sk_conv_norm_act_new(int64_t in_chs, int64_t out_chs, int64_t kernel, int64_t stride,
                               int32_t separable, sk_module** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  *out = wrap_module(std::make_shared<ConvNormAct>(in_chs, out_chs, kernel, stride, separable != 0));
  SK_GUARD_END
}

sk_error* sk_module_forward(sk_module* m, const sk_tensor* x, int32_t record_grad, sk_tensor** out) {
  SK_GUARD_BEGIN
  CpuCacheScope keep_freed_blocks;
  Module& mod = *module_arg(m)->module;
  const at::Tensor& in = tensor_arg(x, "x");
  out_arg(out, "out");
  c10::AutoGradMode grad_mode(record_grad != 0);
  *out = new_handle(mod.forward(in));
  SK_GUARD_END
}

sk_error* sk_module_set_training(sk_module* m, int32_t training) {
  SK_GUARD_BEGIN
  module_arg(m)->module->set_training(training != 0);
  SK_GUARD_END
}

int32_t sk_module_is_training(const sk_module* m) {
  return m && m->module ? (m->module->training() ? 1 : 0) : -1;
}

sk_error* sk_module_to(sk_module* m, int32_t dtype, int32_t device_type, int32_t device_index) {
  SK_GUARD_BEGIN
  Module& mod = *module_arg(m)->module;
  at::ScalarType st = to_scalar_type(dtype);
  if (!at::isFloatingType(st)) fail("modules can only be converted to a floating dtype");
  mod.to(st, to_device(device_type, device_index));
  SK_GUARD_END
}

sk_error* sk_module_set_fused(sk_module* m, int32_t fused) {
  SK_GUARD_BEGIN
  module_arg(m)->module->set_fused(fused != 0);
  SK_GUARD_END
}

void sk_release_cached_buffers(void) {
  try {
    empty_cpu_cache();
  } catch (...) {
  }
}

int64_t sk_cpu_cache_bytes(void) {
  try {
    return cpu_cache_bytes();
  } catch (...) {
    return 0;
  }
}

int64_t sk_cpu_cache_limit(void) {
  try {
    return cpu_cache_limit();
  } catch (...) {
    return 0;
  }
}

sk_error* sk_cpu_cache_set_limit(int64_t bytes) {
  SK_GUARD_BEGIN
  if (bytes < 0) fail("the CPU cache limit must be >= 0 bytes, got ", bytes);
  set_cpu_cache_limit(bytes);
  SK_GUARD_END
}

int32_t sk_fused_kernels_isa(void) {
  try {
    return fused_kernels_use_avx2() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

sk_error* sk_module_to_format(sk_module* m, int32_t format) {
  SK_GUARD_BEGIN
  module_arg(m)->module->to_format(memory_format_arg(format, 4));
  SK_GUARD_END
}

sk_error* sk_module_state_count(const sk_module* m, int64_t* out_count) {
  SK_GUARD_BEGIN
  sk_module* mm = module_arg(m);
  out_arg(out_count, "out_count");
  *out_count = static_cast<int64_t>(mm->state.size());
  SK_GUARD_END
}

sk_error* sk_module_state_entry(const sk_module* m, int64_t index, const char** name,
                                int32_t* is_parameter, sk_tensor** tensor) {
  SK_GUARD_BEGIN
  sk_module* mm = module_arg(m);
  out_arg(name, "name");
  out_arg(is_parameter, "is_parameter");
  out_arg(tensor, "tensor");
  if (index < 0 || index >= static_cast<int64_t>(mm->state.size()))
    fail("state entry index ", index, " out of range [0, ", mm->state.size(), ")");
  const StateEntry& e = mm->state[static_cast<size_t>(index)];
  sk_tensor* h = new_handle(*e.tensor);
  *name = e.name.c_str();
  *is_parameter = e.is_parameter ? 1 : 0;
  *tensor = h;
  SK_GUARD_END
}

}  // extern "C"
