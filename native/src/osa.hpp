// One-Shot-Aggregation blocks and stages, and VoVNet backbones, with timm's structure and
// parameter names (timm/models/vovnet.py). Declared here so that inference preparation
// (infer.cpp) can read their structure.
#pragma once

#include "module.hpp"

#include <ATen/ATen.h>

#include <cmath>

namespace sekit {

std::shared_ptr<Module> make_attn(int32_t attn, int64_t channels);
void check_attn(int32_t attn);

class OsaBlock : public Module {
 public:
  OsaBlock(int64_t in, int64_t mid, int64_t out, int64_t layers, bool residual, bool depthwise,
           int32_t attn)
      : in_(in), residual_(residual) {
    positive_arg("in_chs", in);
    positive_arg("mid_chs", mid);
    positive_arg("out_chs", out);
    positive_arg("layers", layers);
    check_attn(attn);
    if (residual && in != out)
      fail("a residual OSA block needs in_chs == out_chs, got ", in, " and ", out);
    if (depthwise && in != mid) {
      if (residual) fail("a depthwise OSA block with in_chs != mid_chs cannot be residual (timm asserts this)");
      conv_reduction_ = register_module("conv_reduction", std::make_shared<ConvNormAct>(in, mid, 1, 1, false));
    }
    conv_mid_ = register_module("conv_mid", std::make_shared<Sequential>());
    int64_t next_in = in;
    for (int64_t j = 0; j < layers; ++j) {
      conv_mid_->push_back(depthwise ? std::make_shared<ConvNormAct>(mid, mid, 3, 1, true)
                                     : std::make_shared<ConvNormAct>(next_in, mid, 3, 1, false));
      next_in = mid;
    }
    conv_concat_ = register_module("conv_concat", std::make_shared<ConvNormAct>(in + layers * mid, out, 1, 1, false));
    if (auto a = make_attn(attn, out)) attn_ = register_module("attn", a);
  }

  at::Tensor forward(const at::Tensor& x) override {
    check_input(x, in_, "OsaBlock");
    std::vector<at::Tensor> outputs{x};
    at::Tensor h = conv_reduction_ ? conv_reduction_->forward(x) : x;
    for (auto& m : conv_mid_->items()) {
      h = m->forward(h);
      outputs.push_back(h);
    }
    at::Tensor z = conv_concat_->forward(at::cat(outputs, 1));
    if (attn_) z = attn_->forward(z);
    if (residual_) z = z + x;
    return z;
  }

 // Structure, for inference preparation.
  int64_t in_channels() const { return in_; }
  bool residual() const { return residual_; }
  Module* conv_reduction() const { return conv_reduction_.get(); }
  const std::vector<std::shared_ptr<Module>>& conv_mid() const { return conv_mid_->items(); }
  Module* conv_concat() const { return conv_concat_.get(); }
  Module* attn() const { return attn_.get(); }

 private:
  int64_t in_;
  bool residual_;
  std::shared_ptr<Module> conv_reduction_, attn_;
  std::shared_ptr<Sequential> conv_mid_;
  std::shared_ptr<Module> conv_concat_;
};

class OsaStage : public Module {
 public:
  OsaStage(int64_t in, int64_t mid, int64_t out, int64_t blocks, int64_t layers, bool downsample,
           bool residual, bool depthwise, int32_t attn, bool attn_every_block)
      : in_(in), downsample_(downsample) {
    positive_arg("blocks", blocks);
    blocks_ = register_module("blocks", std::make_shared<Sequential>());
    for (int64_t i = 0; i < blocks; ++i) {
      const bool last = i == blocks - 1;
      blocks_->push_back(std::make_shared<OsaBlock>(i == 0 ? in : out, mid, out, layers, residual && i > 0,
                                                    depthwise, (last || attn_every_block) ? attn : SK_ATTN_NONE));
    }
  }

  at::Tensor forward(const at::Tensor& x) override {
    check_input(x, in_, "OsaStage");
    at::Tensor h = downsample_ ? max_pool2d(x, 3, 2, 0, /*ceil=*/true, fused_) : x;
    return blocks_->forward(h);
  }

 bool downsample() const { return downsample_; }
  const std::vector<std::shared_ptr<Module>>& blocks() const { return blocks_->items(); }

 private:
  int64_t in_;
  bool downsample_;
  std::shared_ptr<Sequential> blocks_;
};

class VoVNet : public Module {
 public:
  VoVNet(const int64_t* stem, const int64_t* conv, const int64_t* out, const int64_t* bps, int64_t layers,
         bool residual, bool depthwise, int32_t attn, bool attn_every_block, int64_t in_chans,
         int64_t num_classes, double drop_rate)
      : in_chans_(in_chans), drop_rate_(drop_rate) {
    positive_arg("in_chans", in_chans);
    if (num_classes < 0) fail("num_classes must be >= 0, got ", num_classes);
    if (!(drop_rate >= 0.0 && drop_rate < 1.0)) fail("drop_rate must be in [0, 1), got ", drop_rate);
    for (int i = 0; i < 3; ++i) positive_arg("stem_chs[i]", stem[i]);
    for (int i = 0; i < 4; ++i) {
      positive_arg("stage_conv_chs[i]", conv[i]);
      positive_arg("stage_out_chs[i]", out[i]);
      positive_arg("block_per_stage[i]", bps[i]);
    }
    stem_ = register_module("stem", std::make_shared<Sequential>());
    stem_->push_back(std::make_shared<ConvNormAct>(in_chans, stem[0], 3, 2, false));
    stem_->push_back(std::make_shared<ConvNormAct>(stem[0], stem[1], 3, 1, depthwise));
    stem_->push_back(std::make_shared<ConvNormAct>(stem[1], stem[2], 3, 2, depthwise));
    stages_ = register_module("stages", std::make_shared<Sequential>());
    const int64_t in_list[4] = {stem[2], out[0], out[1], out[2]};
    for (int i = 0; i < 4; ++i)
      stages_->push_back(std::make_shared<OsaStage>(in_list[i], conv[i], out[i], bps[i], layers, i > 0, residual,
                                                    depthwise, attn, attn_every_block));
    if (num_classes > 0) head_ = register_module("head", std::make_shared<ClassifierHead>(out[3], num_classes, drop_rate));

    // timm's VovNet initialisation.
    c10::NoGradGuard no_grad;
    visit([](Module& m) {
      if (auto* c = dynamic_cast<Conv2d*>(&m)) {
        at::Tensor& w = c->weight();
        const int64_t fan_out = w.size(0) * w.size(2) * w.size(3);
        w.normal_(0.0, std::sqrt(2.0 / static_cast<double>(fan_out)));
      } else if (auto* l = dynamic_cast<Linear*>(&m)) {
        if (l->bias()) l->bias()->zero_();
      }
    });
  }

  std::vector<at::Tensor> forward_stages(const at::Tensor& x) {
    check_input(x, in_chans_, "VoVNet");
    std::vector<at::Tensor> feats;
    at::Tensor h = stem_->forward(x);
    for (auto& s : stages_->items()) {
      h = s->forward(h);
      feats.push_back(h);
    }
    return feats;
  }

  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor pooled = forward_stages(x).back().mean({2, 3});
    if (!head_) return drop_rate_ > 0 ? at::dropout(pooled, drop_rate_, training_) : pooled;
    return head_->forward(pooled);
  }

 int64_t in_channels() const { return in_chans_; }
  const std::vector<std::shared_ptr<Module>>& stem() const { return stem_->items(); }
  const std::vector<std::shared_ptr<Module>>& stages() const { return stages_->items(); }
  ClassifierHead* head() const { return head_.get(); }

 private:
  int64_t in_chans_;
  double drop_rate_;
  std::shared_ptr<Sequential> stem_, stages_;
  std::shared_ptr<ClassifierHead> head_;
};

}  // namespace sekit
