// Residual blocks with SE and the ResNets built from them, with timm's structure and
// parameter names: timm/models/resnet.py (ResNet, BasicBlock, Bottleneck: the seresnet*,
// seresnext* and resnet* models) and timm/models/senet.py (SENet, SEResNetBottleneck: the
// paper's original layout, legacy_seresnet*); plus the pre-activation block with SE of the
// SE source texts.
#include "module.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

namespace sekit {

namespace {

// The attention on a block's residual branch (sk_resnet_block_new's attn arguments).
struct AttnSpec {
  int32_t kind;
  double rd_ratio;
  int64_t rd_divisor;
  int64_t rd_channels;
  int64_t reduction;
  bool bias;
  int32_t act;
  int32_t gate;
};

void check_attn_spec(const AttnSpec& a) {
  if (a.kind < SK_ATTN_NONE || a.kind > SK_ATTN_SE)
    fail("unknown attention code ", a.kind, " (0 none, 1 eSE, 2 SE)");
  if (a.kind == SK_ATTN_NONE) return;
  check_activation(a.gate, "attention gate");
  if (a.kind != SK_ATTN_SE) return;
  check_activation(a.act, "SE act");
  if (a.rd_channels < 0) fail("SE rd_channels must be >= 0 (0: derive it), got ", a.rd_channels);
  if (a.reduction < 0) fail("SE reduction must be >= 0 (0: use rd_ratio), got ", a.reduction);
  if (a.rd_channels == 0 && a.reduction == 0) {
    if (!(a.rd_ratio > 0.0 && a.rd_ratio <= 1024.0)) fail("SE rd_ratio must be in (0, 1024], got ", a.rd_ratio);
    if (a.rd_divisor < 1) fail("SE rd_divisor must be >= 1, got ", a.rd_divisor);
  }
}

std::shared_ptr<Module> make_attn(const AttnSpec& a, int64_t channels) {
  switch (a.kind) {
    case SK_ATTN_NONE: return nullptr;
    case SK_ATTN_ESE: return make_ese(channels, a.gate, false);
    case SK_ATTN_SE: {
      int64_t rd = a.rd_channels > 0   ? a.rd_channels
                   : a.reduction > 0   ? channels / a.reduction
                                       : se_reduced_channels(channels, a.rd_ratio, a.rd_divisor);
      if (rd < 1) fail("SE on ", channels, " channels with reduction ", a.reduction, " has no channels left");
      return make_se(channels, rd, a.bias, a.act, a.gate, false, false);
    }
    default: fail("unknown attention code ", a.kind);
  }
}

// The projection shortcut of a block whose stride or width changes: timm's downsample_conv
// (1x1 conv with the stride, BN: keys 0, 1) or downsample_avg (2x2 average pool with the
// stride, ceil mode, padding not counted, then 1x1 conv, BN: keys 1, 2).
class Shortcut : public Module {
 public:
  Shortcut(int64_t in, int64_t out, int64_t stride, bool avg) : stride_(stride), avg_(avg) {
    const std::string c = avg ? "1" : "0", b = avg ? "2" : "1";
    conv_ = register_module(c, std::make_shared<Conv2d>(in, out, 1, avg ? 1 : stride, 0, 1, false));
    bn_ = register_module(b, std::make_shared<BatchNorm2d>(out));
  }

  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor h = x;
    if (avg_ && stride_ > 1)
      h = at::avg_pool2d(x, {2, 2}, {stride_, stride_}, {0, 0}, /*ceil_mode=*/true, /*count_include_pad=*/false);
    return bn_->forward(conv_->forward(h));
  }

 private:
  int64_t stride_;
  bool avg_;
  std::shared_ptr<Conv2d> conv_;
  std::shared_ptr<BatchNorm2d> bn_;
};

at::Tensor bn_relu(BatchNorm2d& bn, const at::Tensor& x) { return bn.forward_relu(x); }

// A residual block: BASIC, BOTTLENECK (grouped for ResNeXt), LEGACY_BOTTLENECK or PREACT.
class ResidualBlock : public Module {
 public:
  ResidualBlock(int32_t kind, int64_t in, int64_t planes, int64_t stride, int64_t cardinality,
                int64_t base_width, int32_t shortcut, const AttnSpec& attn)
      : kind_(kind), in_(in) {
    positive_arg("in_chs", in);
    positive_arg("planes", planes);
    positive_arg("stride", stride);
    positive_arg("cardinality", cardinality);
    positive_arg("base_width", base_width);
    if (kind < SK_BLOCK_BASIC || kind > SK_BLOCK_PREACT)
      fail("unknown residual block code ", kind, " (0 basic, 1 bottleneck, 2 legacy bottleneck, 3 pre-activation)");
    if (shortcut < SK_SHORTCUT_IDENTITY || shortcut > SK_SHORTCUT_AVG_CONV)
      fail("unknown shortcut code ", shortcut, " (0 identity, 1 conv, 2 avg pool + conv)");
    check_attn_spec(attn);
    const bool bottleneck = kind == SK_BLOCK_BOTTLENECK || kind == SK_BLOCK_LEGACY_BOTTLENECK;
    const int64_t out = bottleneck ? planes * 4 : planes;
    if ((kind == SK_BLOCK_BASIC || kind == SK_BLOCK_PREACT) && (cardinality != 1 || base_width != 64))
      fail("basic and pre-activation blocks have cardinality 1 and base width 64, got ", cardinality, " and ",
           base_width);
    if (kind == SK_BLOCK_PREACT && (stride != 1 || shortcut != SK_SHORTCUT_IDENTITY))
      fail("the pre-activation block keeps its size: stride 1 and an identity shortcut");
    if (shortcut == SK_SHORTCUT_IDENTITY && (stride != 1 || in != out))
      fail("an identity shortcut needs stride 1 and in_chs == out channels (", out, "), got stride ", stride,
           " and in_chs ", in, "; use a projection shortcut");

    if (kind == SK_BLOCK_PREACT) {
      norm1_ = register_module("norm1", std::make_shared<BatchNorm2d>(in));
      conv1_ = register_module("conv1", std::make_shared<Conv2d>(in, planes, 3, 1, 1, 1, false));
      norm2_ = register_module("norm2", std::make_shared<BatchNorm2d>(planes));
      conv2_ = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, 1, 1, 1, false));
      if (auto a = make_attn(attn, planes)) attn_ = register_module("se", a);
      return;
    }
    if (kind == SK_BLOCK_BASIC) {
      conv1_ = register_module("conv1", std::make_shared<Conv2d>(in, planes, 3, stride, 1, 1, false));
      bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
      conv2_ = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, 1, 1, 1, false));
      bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
      last_bn_ = bn2_.get();
    } else {
      // timm: width = floor(planes * base_width / 64) * cardinality; senet.py's
      // SEResNetBottleneck puts the stride on the 1x1 conv1 instead of the 3x3 conv2.
      const int64_t width = static_cast<int64_t>(std::floor(static_cast<double>(planes) *
                                                            (static_cast<double>(base_width) / 64.0))) *
                            cardinality;
      positive_arg("bottleneck width floor(planes * base_width / 64) * cardinality", width);
      const bool legacy = kind == SK_BLOCK_LEGACY_BOTTLENECK;
      conv1_ = register_module("conv1", std::make_shared<Conv2d>(in, width, 1, legacy ? stride : 1, 0, 1, false));
      bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(width));
      conv2_ = register_module("conv2", std::make_shared<Conv2d>(width, width, 3, legacy ? 1 : stride, 1,
                                                                 cardinality, false));
      bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(width));
      conv3_ = register_module("conv3", std::make_shared<Conv2d>(width, out, 1, 1, 0, 1, false));
      bn3_ = register_module("bn3", std::make_shared<BatchNorm2d>(out));
      last_bn_ = bn3_.get();
    }
    if (auto a = make_attn(attn, out))
      attn_ = register_module(kind == SK_BLOCK_LEGACY_BOTTLENECK ? "se_module" : "se", a);
    if (shortcut != SK_SHORTCUT_IDENTITY)
      downsample_ = register_module("downsample",
                                    std::make_shared<Shortcut>(in, out, stride, shortcut == SK_SHORTCUT_AVG_CONV));
  }

  at::Tensor forward(const at::Tensor& x) override {
    check_input(x, in_, "ResidualBlock");
    if (kind_ == SK_BLOCK_PREACT) {
      at::Tensor y = conv1_->forward(bn_relu(*norm1_, x));
      y = conv2_->forward(bn_relu(*norm2_, y));
      if (attn_) y = attn_->forward(y);
      return x + y;
    }
    at::Tensor y = bn_relu(*bn1_, conv1_->forward(x));
    if (kind_ == SK_BLOCK_BASIC) {
      y = bn2_->forward(conv2_->forward(y));
    } else {
      y = bn_relu(*bn2_, conv2_->forward(y));
      y = bn3_->forward(conv3_->forward(y));
    }
    if (attn_) y = attn_->forward(y);
    at::Tensor sum = y + (downsample_ ? downsample_->forward(x) : x);
    return at::relu_(sum);
  }

  // The BatchNorm whose weight timm zeroes at initialisation (zero_init_last); null for
  // the pre-activation block.
  BatchNorm2d* last_bn() { return last_bn_; }

 private:
  int32_t kind_;
  int64_t in_;
  std::shared_ptr<Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_, bn3_, norm1_, norm2_;
  BatchNorm2d* last_bn_ = nullptr;
  std::shared_ptr<Module> attn_, downsample_;
};

// timm's 'deep' stem (conv1 of the ResNet-D models): 3x3/2 (w) -> BN -> ReLU -> 3x3 (w) ->
// BN -> ReLU -> 3x3 (2w), keyed 0, 1, 3, 4, 6 as in the Sequential timm builds.
class DeepStem : public Module {
 public:
  DeepStem(int64_t in, int64_t w) {
    c0_ = register_module("0", std::make_shared<Conv2d>(in, w, 3, 2, 1, 1, false));
    b1_ = register_module("1", std::make_shared<BatchNorm2d>(w));
    c3_ = register_module("3", std::make_shared<Conv2d>(w, w, 3, 1, 1, 1, false));
    b4_ = register_module("4", std::make_shared<BatchNorm2d>(w));
    c6_ = register_module("6", std::make_shared<Conv2d>(w, 2 * w, 3, 1, 1, 1, false));
  }

  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor h = bn_relu(*b1_, c0_->forward(x));
    h = bn_relu(*b4_, c3_->forward(h));
    return c6_->forward(h);
  }

 private:
  std::shared_ptr<Conv2d> c0_, c3_, c6_;
  std::shared_ptr<BatchNorm2d> b1_, b4_;
};

// senet.py's layer0 (7x7 variant): conv1 7x7/2 -> bn1 -> ReLU.
class LegacyStem : public Module {
 public:
  LegacyStem(int64_t in, int64_t w) {
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(in, w, 7, 2, 3, 1, false));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(w));
  }

  at::Tensor forward(const at::Tensor& x) override { return bn_relu(*bn1_, conv1_->forward(x)); }

 private:
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
};

}  // namespace

class ResNet : public Module {
 public:
  ResNet(int32_t block, const int64_t* layers, const int64_t* channels, int64_t cardinality, int64_t base_width,
         int32_t stem, int64_t stem_width, bool avg_down, const AttnSpec& attn, int64_t in_chans,
         int64_t num_classes, double drop_rate)
      : stem_kind_(stem), in_chans_(in_chans), drop_rate_(drop_rate) {
    positive_arg("in_chans", in_chans);
    positive_arg("stem_width", stem_width);
    if (num_classes < 0) fail("num_classes must be >= 0, got ", num_classes);
    if (!(drop_rate >= 0.0 && drop_rate < 1.0)) fail("drop_rate must be in [0, 1), got ", drop_rate);
    if (block == SK_BLOCK_PREACT) fail("ResNets of pre-activation blocks are not defined; build the blocks singly");
    if (block < SK_BLOCK_BASIC || block > SK_BLOCK_PREACT) fail("unknown residual block code ", block);
    if (stem < SK_STEM_CONV7X7 || stem > SK_STEM_SMALL)
      fail("unknown stem code ", stem, " (0 7x7, 1 deep, 2 legacy, 3 small)");
    for (int i = 0; i < 4; ++i) {
      positive_arg("layers[i]", layers[i]);
      positive_arg("channels[i]", channels[i]);
    }
    int64_t inplanes = stem_width;
    switch (stem) {
      case SK_STEM_LEGACY: stem_ = register_module("layer0", std::make_shared<LegacyStem>(in_chans, stem_width)); break;
      case SK_STEM_DEEP:
        stem_ = register_module("conv1", std::make_shared<DeepStem>(in_chans, stem_width));
        inplanes = 2 * stem_width;
        break;
      case SK_STEM_CONV7X7: stem_ = register_module("conv1", std::make_shared<Conv2d>(in_chans, stem_width, 7, 2, 3, 1, false)); break;
      default: stem_ = register_module("conv1", std::make_shared<Conv2d>(in_chans, stem_width, 3, 1, 1, 1, false)); break;
    }
    if (stem != SK_STEM_LEGACY) bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(inplanes));
    const int64_t expansion = block == SK_BLOCK_BASIC ? 1 : 4;
    for (int i = 0; i < 4; ++i) {
      const int64_t stride = i == 0 ? 1 : 2;
      const int64_t out = channels[i] * expansion;
      const int32_t shortcut = (stride != 1 || inplanes != out)
                                   ? (avg_down ? SK_SHORTCUT_AVG_CONV : SK_SHORTCUT_CONV)
                                   : SK_SHORTCUT_IDENTITY;
      auto stage = register_module("layer" + std::to_string(i + 1), std::make_shared<Sequential>());
      for (int64_t b = 0; b < layers[i]; ++b) {
        stage->push_back(std::make_shared<ResidualBlock>(block, inplanes, channels[i], b == 0 ? stride : 1,
                                                         cardinality, base_width,
                                                         b == 0 ? shortcut : SK_SHORTCUT_IDENTITY, attn));
        inplanes = out;
      }
      stages_.push_back(stage);
    }
    if (num_classes > 0)
      fc_ = register_module(stem == SK_STEM_LEGACY ? "last_linear" : "fc",
                            std::make_shared<Linear>(inplanes, num_classes));

    // timm's initialisation: Kaiming-normal (fan_out, ReLU) for every convolution (SE's
    // too), and, in resnet.py (not senet.py), the last BN of each block zeroed. BN starts
    // at weight 1, bias 0 and the Linear keeps PyTorch's default.
    c10::NoGradGuard no_grad;
    visit([stem](Module& m) {
      if (auto* c = dynamic_cast<Conv2d*>(&m)) {
        at::Tensor& w = c->weight();
        const int64_t fan_out = w.size(0) * w.size(2) * w.size(3);
        w.normal_(0.0, std::sqrt(2.0 / static_cast<double>(fan_out)));
      } else if (auto* b = dynamic_cast<ResidualBlock*>(&m)) {
        if (stem != SK_STEM_LEGACY && b->last_bn()) b->last_bn()->weight().zero_();
      }
    });
  }

  std::vector<at::Tensor> forward_stages(const at::Tensor& x) {
    check_input(x, in_chans_, "ResNet");
    at::Tensor h = stem_->forward(x);
    switch (stem_kind_) {
      case SK_STEM_LEGACY: h = max_pool2d(h, 3, 2, 0, /*ceil=*/true, fused_); break;
      case SK_STEM_SMALL: h = bn_relu(*bn1_, h); break;
      default: h = max_pool2d(bn_relu(*bn1_, h), 3, 2, 1, /*ceil=*/false, fused_); break;
    }
    std::vector<at::Tensor> feats;
    for (auto& s : stages_) {
      h = s->forward(h);
      feats.push_back(h);
    }
    return feats;
  }

  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor pooled = forward_stages(x).back().mean({2, 3});
    if (drop_rate_ > 0) pooled = at::dropout(pooled, drop_rate_, training_);
    return fc_ ? fc_->forward(pooled) : pooled;
  }

 private:
  int32_t stem_kind_;
  int64_t in_chans_;
  double drop_rate_;
  std::shared_ptr<Module> stem_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::vector<std::shared_ptr<Sequential>> stages_;
  std::shared_ptr<Linear> fc_;
};

}  // namespace sekit

using namespace sekit;

extern "C" {

sk_error* sk_resnet_block_new(int32_t block, int64_t in_chs, int64_t planes, int64_t stride, int64_t cardinality,
                              int64_t base_width, int32_t shortcut, int32_t attn, double se_rd_ratio,
                              int64_t se_rd_divisor, int64_t se_rd_channels, int64_t se_reduction, int32_t se_bias,
                              int32_t se_act, int32_t gate, sk_module** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  AttnSpec a{attn, se_rd_ratio, se_rd_divisor, se_rd_channels, se_reduction, se_bias != 0, se_act, gate};
  *out = wrap_module(std::make_shared<ResidualBlock>(block, in_chs, planes, stride, cardinality, base_width,
                                                     shortcut, a));
  SK_GUARD_END
}

sk_error* sk_resnet_new(int32_t block, const int64_t* layers, const int64_t* channels, int64_t cardinality,
                        int64_t base_width, int32_t stem, int64_t stem_width, int32_t avg_down, int32_t attn,
                        double se_rd_ratio, int64_t se_rd_divisor, int64_t se_reduction, int32_t se_bias,
                        int32_t se_act, int32_t gate, int64_t in_chans, int64_t num_classes, double drop_rate,
                        sk_module** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  if (!layers || !channels) fail("layers and channels must not be NULL");
  AttnSpec a{attn, se_rd_ratio, se_rd_divisor, 0, se_reduction, se_bias != 0, se_act, gate};
  *out = wrap_module(std::make_shared<ResNet>(block, layers, channels, cardinality, base_width, stem, stem_width,
                                              avg_down != 0, a, in_chans, num_classes, drop_rate));
  SK_GUARD_END
}

sk_error* sk_resnet_forward_stages(sk_module* m, const sk_tensor* x, int32_t record_grad, sk_tensor** out) {
  SK_GUARD_BEGIN
  CpuCacheScope keep_freed_blocks;
  auto* net = dynamic_cast<ResNet*>(module_arg(m)->module.get());
  if (net == nullptr) fail("module is not a ResNet");
  const at::Tensor& in = tensor_arg(x, "x");
  out_arg(out, "out");
  c10::AutoGradMode grad_mode(record_grad != 0);
  std::vector<at::Tensor> feats = net->forward_stages(in);
  std::vector<std::unique_ptr<sk_tensor>> handles;
  for (auto& f : feats) handles.emplace_back(new_handle(f));
  for (size_t i = 0; i < handles.size(); ++i) out[i] = handles[i].release();
  SK_GUARD_END
}

}  // extern "C"
