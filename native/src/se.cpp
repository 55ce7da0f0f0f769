// SE (timm SEModule) and eSE (timm EffectiveSEModule) on libtorch ops.
#include "module.hpp"
#include "se_fused.hpp"

namespace sekit {

namespace {

// The reference path: op for op what timm runs — mean with keepdim (averaged with the max
// for add_maxpool), 1x1 convs on the [N, C, 1, 1] descriptor, gate, broadcast multiply.
at::Tensor squeeze(const at::Tensor& x, bool add_maxpool) {
  at::Tensor s = x.mean({2, 3}, /*keepdim=*/true);
  if (add_maxpool) s = 0.5 * s + 0.5 * x.amax({2, 3}, /*keepdim=*/true);
  return s;
}

}  // namespace

class SqueezeExcitation : public Module {
 public:
  SqueezeExcitation(int64_t channels, int64_t rd, bool bias, int32_t act, int32_t gate,
                    bool add_maxpool, bool use_bn)
      : channels_(channels), act_(act), gate_(gate), add_maxpool_(add_maxpool) {
    fc1_ = register_module("fc1", std::make_shared<Conv2d>(channels, rd, 1, 1, 0, 1, bias));
    if (use_bn) bn_ = register_module("bn", std::make_shared<BatchNorm2d>(rd));
    fc2_ = register_module("fc2", std::make_shared<Conv2d>(rd, channels, 1, 1, 0, 1, bias));
  }

  at::Tensor forward(const at::Tensor& x) override {
    check_input(x, channels_, "SqueezeExcitation");
    if (fused_ && !bn_) {  // BatchNorm inside the excitation stays on the composition
      std::vector<at::Tensor> p{fc1_->weight()};
      if (fc1_->bias()) p.push_back(*fc1_->bias());
      p.push_back(fc2_->weight());
      if (fc2_->bias()) p.push_back(*fc2_->bias());
      at::Tensor y = fused_squeeze_excite(x, p, {true, act_, gate_, fc1_->bias() != nullptr, add_maxpool_});
      if (y.defined()) return y;
    }
    at::Tensor s = fc1_->forward(squeeze(x, add_maxpool_));
    if (bn_) s = bn_->forward(s);
    s = fc2_->forward(apply_activation(act_, s));
    return x * apply_activation(gate_, s);
  }

  void describe(ExcitationParams& p) const {
    c10::NoGradGuard no_grad;
    auto w2d = [](const at::Tensor& w) { return w.reshape({w.size(0), w.size(1)}).to(at::kDouble).contiguous(); };
    auto bias = [](Conv2d& c) {
      return c.bias() ? c.bias()->to(at::kDouble) : at::zeros({c.out_channels()}, at::kDouble);
    };
    p.se = true;
    p.act = act_;
    p.gate = gate_;
    p.add_maxpool = add_maxpool_;
    p.channels = channels_;
    p.reduced = fc1_->out_channels();
    p.w1 = w2d(fc1_->weight());
    p.b1 = bias(*fc1_);
    if (bn_) {  // eval BatchNorm on fc1's output: fold it into fc1
      auto [scale, shift] = bn_->affine();
      p.w1 = (p.w1 * scale.unsqueeze(1)).contiguous();
      p.b1 = p.b1 * scale + shift;
    }
    p.w2 = w2d(fc2_->weight());
    p.b2 = bias(*fc2_);
  }

 private:
  int64_t channels_;
  int32_t act_, gate_;
  bool add_maxpool_;
  std::shared_ptr<Conv2d> fc1_, fc2_;
  std::shared_ptr<BatchNorm2d> bn_;
};

class EffectiveSqueezeExcitation : public Module {
 public:
  EffectiveSqueezeExcitation(int64_t channels, int32_t gate, bool add_maxpool)
      : channels_(channels), gate_(gate), add_maxpool_(add_maxpool) {
    fc_ = register_module("fc", std::make_shared<Conv2d>(channels, channels, 1, 1, 0, 1, true));
  }

  at::Tensor forward(const at::Tensor& x) override {
    check_input(x, channels_, "EffectiveSqueezeExcitation");
    if (fused_) {
      at::Tensor y = fused_squeeze_excite(x, {fc_->weight(), *fc_->bias()}, {false, 0, gate_, true, add_maxpool_});
      if (y.defined()) return y;
    }
    return x * apply_activation(gate_, fc_->forward(squeeze(x, add_maxpool_)));
  }

  void describe(ExcitationParams& p) const {
    c10::NoGradGuard no_grad;
    p.se = false;
    p.gate = gate_;
    p.add_maxpool = add_maxpool_;
    p.channels = p.reduced = channels_;
    p.w1 = fc_->weight().reshape({channels_, channels_}).to(at::kDouble).contiguous();
    p.b1 = fc_->bias()->to(at::kDouble);
  }

 private:
  int64_t channels_;
  int32_t gate_;
  bool add_maxpool_;
  std::shared_ptr<Conv2d> fc_;
};

bool excitation_params(Module& m, ExcitationParams& p) {
  if (auto* se = dynamic_cast<SqueezeExcitation*>(&m)) {
    se->describe(p);
    return true;
  }
  if (auto* ese = dynamic_cast<EffectiveSqueezeExcitation*>(&m)) {
    ese->describe(p);
    return true;
  }
  return false;
}

std::shared_ptr<Module> make_se(int64_t channels, int64_t rd, bool bias, int32_t act, int32_t gate,
                                bool add_maxpool, bool use_bn) {
  return std::make_shared<SqueezeExcitation>(channels, rd, bias, act, gate, add_maxpool, use_bn);
}

std::shared_ptr<Module> make_ese(int64_t channels, int32_t gate, bool add_maxpool) {
  return std::make_shared<EffectiveSqueezeExcitation>(channels, gate, add_maxpool);
}

}  // namespace sekit

using namespace sekit;

extern "C" {

sk_error* sk_se_new(int64_t channels, double rd_ratio, int64_t rd_channels, int64_t rd_divisor,
                    int32_t bias, int32_t act, int32_t gate, int32_t add_maxpool, int32_t use_bn,
                    sk_module** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  if (channels < 1) fail("SE channels must be >= 1, got ", channels);
  check_activation(act, "SE act");
  check_activation(gate, "SE gate");
  int64_t rd = rd_channels;
  if (rd_channels == -1) {
    if (!(rd_ratio > 0.0 && rd_ratio <= 1024.0))
      fail("SE rd_ratio must be in (0, 1024], got ", rd_ratio);
    if (rd_divisor < 1) fail("SE rd_divisor must be >= 1, got ", rd_divisor);
    rd = se_reduced_channels(channels, rd_ratio, rd_divisor);
  } else if (rd_channels < 1) {
    fail("SE rd_channels must be >= 1 (or -1 to derive it from rd_ratio), got ", rd_channels);
  }
  *out = wrap_module(std::make_shared<SqueezeExcitation>(channels, rd, bias != 0, act, gate,
                                                         add_maxpool != 0, use_bn != 0));
  SK_GUARD_END
}

sk_error* sk_ese_new(int64_t channels, int32_t gate, int32_t add_maxpool, sk_module** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  if (channels < 1) fail("eSE channels must be >= 1, got ", channels);
  check_activation(gate, "eSE gate");
  *out = wrap_module(std::make_shared<EffectiveSqueezeExcitation>(channels, gate, add_maxpool != 0));
  SK_GUARD_END
}

}  // extern "C"
