// One-Shot-Aggregation blocks and stages, and VoVNet backbones, with timm's structure and
// parameter names (timm/models/vovnet.py).
#include "osa.hpp"

#include "infer.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

namespace sekit {

std::shared_ptr<Module> make_attn(int32_t attn, int64_t channels) {
  switch (attn) {
    case SK_ATTN_NONE: return nullptr;
    case SK_ATTN_ESE: return make_ese(channels, SK_ACT_HARD_SIGMOID, false);
    case SK_ATTN_SE:
      return make_se(channels, se_reduced_channels(channels, 1.0 / 16, 8), true, SK_ACT_RELU,
                     SK_ACT_SIGMOID, false, false);
    default: fail("unknown attention code ", attn, " (0 none, 1 eSE, 2 SE)");
  }
}

void check_attn(int32_t attn) {
  if (attn < SK_ATTN_NONE || attn > SK_ATTN_SE) fail("unknown attention code ", attn, " (0 none, 1 eSE, 2 SE)");
}

}  // namespace sekit

using namespace sekit;

extern "C" {

sk_error* sk_osa_block_new(int64_t in_chs, int64_t mid_chs, int64_t out_chs, int64_t layers,
                           int32_t residual, int32_t depthwise, int32_t attn, sk_module** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  *out = wrap_module(std::make_shared<OsaBlock>(in_chs, mid_chs, out_chs, layers, residual != 0,
                                                depthwise != 0, attn));
  SK_GUARD_END
}

sk_error* sk_osa_stage_new(int64_t in_chs, int64_t mid_chs, int64_t out_chs, int64_t blocks,
                           int64_t layers, int32_t downsample, int32_t residual, int32_t depthwise,
                           int32_t attn, int32_t attn_every_block, sk_module** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  *out = wrap_module(std::make_shared<OsaStage>(in_chs, mid_chs, out_chs, blocks, layers, downsample != 0,
                                                residual != 0, depthwise != 0, attn, attn_every_block != 0));
  SK_GUARD_END
}

sk_error* sk_vovnet_new(const int64_t* stem_chs, const int64_t* stage_conv_chs,
                        const int64_t* stage_out_chs, const int64_t* block_per_stage,
                        int64_t layer_per_block, int32_t residual, int32_t depthwise, int32_t attn,
                        int32_t attn_every_block, int64_t in_chans, int64_t num_classes,
                        double drop_rate, sk_module** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  if (!stem_chs || !stage_conv_chs || !stage_out_chs || !block_per_stage)
    fail("stem_chs, stage_conv_chs, stage_out_chs and block_per_stage must not be NULL");
  *out = wrap_module(std::make_shared<VoVNet>(stem_chs, stage_conv_chs, stage_out_chs, block_per_stage,
                                              layer_per_block, residual != 0, depthwise != 0, attn,
                                              attn_every_block != 0, in_chans, num_classes, drop_rate));
  SK_GUARD_END
}

sk_error* sk_vovnet_forward_stages(sk_module* m, const sk_tensor* x, int32_t record_grad, sk_tensor** out) {
  SK_GUARD_BEGIN
  CpuCacheScope keep_freed_blocks;
  Module* mod = module_arg(m)->module.get();
  auto* net = dynamic_cast<VoVNet*>(mod);
  auto* prepared = dynamic_cast<PreparedModule*>(mod);
  if (net == nullptr && (prepared == nullptr || !prepared->is_vovnet())) fail("module is not a VoVNet");
  const at::Tensor& in = tensor_arg(x, "x");
  out_arg(out, "out");
  c10::AutoGradMode grad_mode(record_grad != 0);
  std::vector<at::Tensor> feats = net ? net->forward_stages(in) : prepared->forward_stages(in);
  std::vector<std::unique_ptr<sk_tensor>> handles;
  for (auto& f : feats) handles.emplace_back(new_handle(f));
  for (size_t i = 0; i < handles.size(); ++i) out[i] = handles[i].release();
  SK_GUARD_END
}

}  // extern "C"
