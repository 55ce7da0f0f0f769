#!/usr/bin/python3
"""PyTorch statement of timm's VoVNet (V1 and V2), for the sekit fixtures.

Written from timm.models.vovnet and the timm layers it uses (ConvNormAct,
SeparableConvNormAct, BatchNormAct2d, EffectiveSEModule, SEModule,
ClassifierHead), with the same module and parameter names as timm, so that a
state_dict of these modules loads into timm and into sekit unchanged.  timm
itself is not needed.

Running this file checks the parameter counts of the eight timm
configurations (1000-class head) against the numbers timm reports:

    /usr/bin/python3 src/test/python/vovnet_ref.py
"""

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------

def same_padding(kernel_size, stride=1, dilation=1):
    """timm.layers.padding.get_padding (symmetric, no 'same' dynamic pad)."""
    return ((stride - 1) + dilation * (kernel_size - 1)) // 2


class ConvNormAct(nn.Module):
    """timm ConvNormAct with BatchNormAct2d: conv (no bias) -> BN -> ReLU.

    timm keeps BatchNormAct2d under the name `bn`, and BatchNormAct2d is a
    BatchNorm2d subclass, so its state is bn.weight, bn.bias,
    bn.running_mean, bn.running_var, bn.num_batches_tracked.
    """

    def __init__(self, in_chs, out_chs, kernel_size=1, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride,
                              padding=same_padding(kernel_size, stride),
                              bias=False)
        self.bn = nn.BatchNorm2d(out_chs, eps=1e-5, momentum=0.1)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class SeparableConvNormAct(nn.Module):
    """timm SeparableConvNormAct: depthwise kxk -> pointwise 1x1 -> BN -> ReLU
    (no norm between the two convolutions, neither has a bias)."""

    def __init__(self, in_chs, out_chs, kernel_size=3, stride=1):
        super().__init__()
        self.conv_dw = nn.Conv2d(in_chs, in_chs, kernel_size, stride=stride,
                                 padding=same_padding(kernel_size, stride),
                                 groups=in_chs, bias=False)
        self.conv_pw = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_chs, eps=1e-5, momentum=0.1)

    def forward(self, x):
        return F.relu(self.bn(self.conv_pw(self.conv_dw(x))))


class EffectiveSE(nn.Module):
    """timm EffectiveSEModule as created by create_attn('ese', C):
    avg pool -> 1x1 conv C->C with bias -> hard sigmoid -> scale."""

    def __init__(self, channels):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * F.hardsigmoid(self.fc(s))


def se_rd_channels(channels):
    """timm SEModule default: make_divisible(C / 16, 8, round_limit=0)."""
    return max(8, int(channels / 16.0 + 4) // 8 * 8)


class SE(nn.Module):
    """timm SEModule as created by create_attn('se', C): avg pool -> fc1 (bias)
    -> ReLU -> fc2 (bias) -> sigmoid -> scale (its `bn` is an Identity)."""

    def __init__(self, channels):
        super().__init__()
        rd = se_rd_channels(channels)
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=True)
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=True)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        s = self.fc2(F.relu(self.fc1(s)))
        return x * torch.sigmoid(s)


def make_attn(attn, channels):
    if attn in ("", None, "none"):
        return None
    if attn == "ese":
        return EffectiveSE(channels)
    if attn == "se":
        return SE(channels)
    raise ValueError("unknown attn %r" % (attn,))


# --------------------------------------------------------------------------
# OSA block / stage / network
# --------------------------------------------------------------------------

class OsaBlock(nn.Module):
    """timm OsaBlock (drop_path not used)."""

    def __init__(self, in_chs, mid_chs, out_chs, layers, residual=False,
                 depthwise=False, attn=""):
        super().__init__()
        self.residual = residual
        self.depthwise = depthwise
        if depthwise and in_chs != mid_chs:
            if residual:
                raise ValueError("a depthwise OSA block with in_chs != mid_chs "
                                 "cannot be residual")
            self.conv_reduction = ConvNormAct(in_chs, mid_chs, 1)
        else:
            self.conv_reduction = None
        convs = []
        next_in = in_chs
        for _ in range(layers):
            if depthwise:
                convs.append(SeparableConvNormAct(mid_chs, mid_chs, 3))
            else:
                convs.append(ConvNormAct(next_in, mid_chs, 3))
            next_in = mid_chs
        self.conv_mid = nn.Sequential(*convs)
        self.conv_concat = ConvNormAct(in_chs + layers * mid_chs, out_chs, 1)
        self.attn = make_attn(attn, out_chs)

    def forward(self, x):
        outputs = [x]
        h = self.conv_reduction(x) if self.conv_reduction is not None else x
        for conv in self.conv_mid:
            h = conv(h)
            outputs.append(h)
        z = self.conv_concat(torch.cat(outputs, 1))
        if self.attn is not None:
            z = self.attn(z)
        if self.residual:
            z = z + x
        return z


class OsaStage(nn.Module):
    """timm OsaStage; attn_every_block=True puts the attention on every block
    (original VoVNetV2), False only on the last one (timm)."""

    def __init__(self, in_chs, mid_chs, out_chs, blocks, layers,
                 downsample=True, residual=True, depthwise=False, attn="ese",
                 attn_every_block=False):
        super().__init__()
        if downsample:
            self.pool = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)
        else:
            self.pool = None
        mods = []
        for i in range(blocks):
            last = i == blocks - 1
            mods.append(OsaBlock(
                in_chs if i == 0 else out_chs, mid_chs, out_chs, layers,
                residual=residual and i > 0, depthwise=depthwise,
                attn=attn if (last or attn_every_block) else ""))
        self.blocks = nn.Sequential(*mods)

    def forward(self, x):
        if self.pool is not None:
            x = self.pool(x)
        return self.blocks(x)


class ClassifierHead(nn.Module):
    """timm ClassifierHead with pool_type='avg': global average pool ->
    flatten -> dropout -> fc.  Only `fc` holds parameters."""

    def __init__(self, in_features, num_classes, drop_rate=0.0):
        super().__init__()
        self.drop_rate = drop_rate
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x):
        x = x.mean((2, 3))
        if self.drop_rate > 0.0:
            x = F.dropout(x, self.drop_rate, self.training)
        return self.fc(x)


class VovNet(nn.Module):
    """timm VovNet (stem_stride 4, output_stride 32, no drop path)."""

    def __init__(self, cfg, in_chans=3, num_classes=1000, drop_rate=0.0):
        super().__init__()
        s0, s1, s2 = cfg["stem_chs"]
        conv_chs = cfg["stage_conv_chs"]
        out_chs = cfg["stage_out_chs"]
        conv_type = SeparableConvNormAct if cfg["depthwise"] else ConvNormAct
        self.stem = nn.Sequential(
            ConvNormAct(in_chans, s0, 3, stride=2),
            conv_type(s0, s1, 3, stride=1),
            conv_type(s1, s2, 3, stride=2),
        )
        in_list = [s2] + list(out_chs[:-1])
        self.stages = nn.Sequential(*[
            OsaStage(in_list[i], conv_chs[i], out_chs[i],
                     cfg["block_per_stage"][i], cfg["layer_per_block"],
                     downsample=i > 0, residual=cfg["residual"],
                     depthwise=cfg["depthwise"], attn=cfg["attn"])
            for i in range(4)])
        self.head = ClassifierHead(out_chs[-1], num_classes, drop_rate)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out",
                                        nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_stages(self, x):
        """The four stage outputs (strides 4, 8, 16, 32)."""
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def forward_head(self, x):
        return self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_stages(x)[-1])


# --------------------------------------------------------------------------
# timm configurations
# --------------------------------------------------------------------------

def _cfg(stem, conv, out, layers, blocks, residual, depthwise, attn):
    return {"stem_chs": list(stem), "stage_conv_chs": list(conv),
            "stage_out_chs": list(out), "layer_per_block": layers,
            "block_per_stage": list(blocks), "residual": residual,
            "depthwise": depthwise, "attn": attn}


_WIDE_CONV = (128, 160, 192, 224)
_WIDE_OUT = (256, 512, 768, 1024)
_SLIM_CONV = (64, 80, 96, 112)
_SLIM_OUT = (112, 256, 384, 512)

CONFIGS = {
    "vovnet39a": _cfg((64, 64, 128), _WIDE_CONV, _WIDE_OUT, 5, (1, 1, 2, 2),
                      False, False, ""),
    "vovnet57a": _cfg((64, 64, 128), _WIDE_CONV, _WIDE_OUT, 5, (1, 1, 4, 3),
                      False, False, ""),
    "ese_vovnet19b_slim_dw": _cfg((64, 64, 64), _SLIM_CONV, _SLIM_OUT, 3,
                                  (1, 1, 1, 1), True, True, "ese"),
    "ese_vovnet19b_dw": _cfg((64, 64, 64), _WIDE_CONV, _WIDE_OUT, 3,
                             (1, 1, 1, 1), True, True, "ese"),
    "ese_vovnet19b_slim": _cfg((64, 64, 128), _SLIM_CONV, _SLIM_OUT, 3,
                               (1, 1, 1, 1), True, False, "ese"),
    "ese_vovnet39b": _cfg((64, 64, 128), _WIDE_CONV, _WIDE_OUT, 5,
                          (1, 1, 2, 2), True, False, "ese"),
    "ese_vovnet57b": _cfg((64, 64, 128), _WIDE_CONV, _WIDE_OUT, 5,
                          (1, 1, 4, 3), True, False, "ese"),
    "ese_vovnet99b": _cfg((64, 64, 128), _WIDE_CONV, _WIDE_OUT, 5,
                          (1, 3, 9, 3), True, False, "ese"),
}

# Parameter counts timm reports with a 1000-class head (spec.md).
TIMM_PARAM_COUNTS = {
    "vovnet39a": 22600296,
    "vovnet57a": 36640296,
    "ese_vovnet19b_slim_dw": 1897752,
    "ese_vovnet19b_dw": 6543080,
    "ese_vovnet19b_slim": 3166136,
    "ese_vovnet39b": 24568936,
    "ese_vovnet57b": 38608936,
    "ese_vovnet99b": 63199272,
}


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def check_param_counts(verbose=False):
    """Build every configuration and compare with timm; raise on mismatch."""
    bad = []
    for name, cfg in CONFIGS.items():
        n = param_count(VovNet(cfg, num_classes=1000))
        if verbose:
            print("%-22s %12d %s" % (name, n, "ok" if n == TIMM_PARAM_COUNTS[name]
                                     else "MISMATCH (timm %d)" % TIMM_PARAM_COUNTS[name]))
        if n != TIMM_PARAM_COUNTS[name]:
            bad.append((name, n, TIMM_PARAM_COUNTS[name]))
    if bad:
        raise RuntimeError("parameter counts differ from timm: %r" % bad)


class GapHead(nn.Module):
    """Global average pool, then a Linear (the head of sekit's SmallVoVNet)."""

    def __init__(self, c, k):
        super().__init__()
        self.fc = nn.Linear(c, k)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


def small_vovnet(attn="ese", classes=10):
    """sekit's SmallVoVNet (src/main/java/dev/sekit/nn/SmallVoVNet.java), the Fashion-MNIST demo
    network on 1x28x28 inputs; attn "ese", "se" or "none"."""
    a = "" if attn == "none" else attn
    return nn.Sequential(
        ConvNormAct(1, 24, 3, stride=1), ConvNormAct(24, 32, 3, stride=2),
        OsaBlock(32, 32, 64, 3, False, False, a), nn.MaxPool2d(3, 2, ceil_mode=True),
        OsaBlock(64, 48, 128, 3, False, False, a), nn.MaxPool2d(3, 2, ceil_mode=True),
        OsaBlock(128, 64, 192, 3, False, False, a), GapHead(192, classes))

if __name__ == "__main__":
    check_param_counts(verbose=True)
    sys.exit(0)
