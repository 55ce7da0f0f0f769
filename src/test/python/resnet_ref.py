#!/usr/bin/python3
"""PyTorch statement of timm's SE-ResNet / SE-ResNeXt / ResNet (timm.models.resnet)
and of the paper's original SE-ResNet layout (timm.models.senet, `legacy_*`), for
the sekit fixtures; plus the pre-activation residual block with SE of the SE
source texts.

Written from timm's definitions, with timm's module and parameter names and
state_dict order, so that a state_dict of these modules loads into timm and into
sekit unchanged.  timm itself is not needed.

timm ResNet (resnet.py):
  stem    '' : conv1 7x7/2 (64) -> bn1 -> ReLU -> maxpool 3/2 pad 1
          'deep': conv1 = Sequential(3x3/2 w, BN, ReLU, 3x3 w, BN, ReLU, 3x3 2w)
                  (keys conv1.0, conv1.1, conv1.3, conv1.4, conv1.6) -> bn1 -> ...
  stages  layer1..layer4 of blocks; stride 1, 2, 2, 2 on the first block; the
          first block gets a projection shortcut `downsample` when the stride or
          the width changes: Sequential(conv 1x1/s, BN) (keys downsample.0/.1),
          or with avg_down Sequential(AvgPool2d(2, s, ceil, no pad count) or
          Identity, conv 1x1, BN) (keys downsample.1/.2)
  blocks  BasicBlock: conv1 3x3/s, bn1, ReLU, conv2 3x3, bn2, se, (+ shortcut), ReLU
          Bottleneck: conv1 1x1, bn1, ReLU, conv2 3x3/s (groups = cardinality,
          width = floor(planes * base_width / 64) * cardinality), bn2, ReLU,
          conv3 1x1 (4 * planes), bn3, se, (+ shortcut), ReLU
          se = SEModule(out, rd_ratio 1/16, rd_divisor 8, ReLU, sigmoid, biases)
  head    global average pool -> (dropout) -> fc
  init    Kaiming-normal (fan_out, ReLU) for every conv (SE's included), the
          last BN of each block zeroed (zero_init_last), Linear as PyTorch.

timm SENet (senet.py, the paper's layout and Caffe weights' names):
  layer0.conv1 7x7/2, layer0.bn1, ReLU, pool0 = MaxPool2d(3, 2, ceil_mode=True);
  SEResNetBottleneck has the stride on conv1 (1x1), `se_module` with
  R = C // reduction; head `last_linear`, dropout 0.2 by default.

Running this file checks the parameter counts (1000 classes) against the
numbers timm reports:

    /usr/bin/python3 src/test/python/resnet_ref.py
"""

import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------
# Attention on the residual branch
# --------------------------------------------------------------------------

def attn_cfg(kind="se", rd_ratio=1.0 / 16, rd_divisor=8, rd_channels=0,
             reduction=0, bias=True, gate="sigmoid"):
    """Options of the attention of a block; kind is "se", "ese" or "none".
    R = rd_channels when > 0, else C // reduction when reduction > 0 (senet.py),
    else timm's make_divisible(C * rd_ratio, rd_divisor, round_limit=0)."""
    return {"kind": kind, "rd_ratio": rd_ratio, "rd_divisor": rd_divisor,
            "rd_channels": rd_channels, "reduction": reduction, "bias": bias,
            "gate": gate}


TIMM_SE = attn_cfg()
LEGACY_SE = attn_cfg(reduction=16)
NO_ATTN = attn_cfg(kind="none")


def make_divisible(v, divisor):
    """timm.layers.helpers.make_divisible(v, divisor, round_limit=0)."""
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


def se_reduced(channels, cfg):
    if cfg["rd_channels"] > 0:
        return cfg["rd_channels"]
    if cfg["reduction"] > 0:
        return channels // cfg["reduction"]
    return make_divisible(channels * cfg["rd_ratio"], cfg["rd_divisor"])


def _gate(name):
    return {"sigmoid": torch.sigmoid, "hard_sigmoid": F.hardsigmoid}[name]


class SE(nn.Module):
    """timm SEModule / senet.py SEModule: mean -> fc1 -> ReLU -> fc2 -> gate -> scale."""

    def __init__(self, channels, rd, bias=True, gate="sigmoid"):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=bias)
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=bias)
        self.gate = _gate(gate)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(F.relu(self.fc1(s))))


class EffectiveSE(nn.Module):
    """timm EffectiveSEModule: mean -> fc (C -> C) -> gate -> scale."""

    def __init__(self, channels, gate="hard_sigmoid"):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)
        self.gate = _gate(gate)

    def forward(self, x):
        return x * self.gate(self.fc(x.mean((2, 3), keepdim=True)))


def make_attn(cfg, channels):
    if cfg is None or cfg["kind"] == "none":
        return None
    if cfg["kind"] == "ese":
        return EffectiveSE(channels, cfg["gate"])
    if cfg["kind"] == "se":
        return SE(channels, se_reduced(channels, cfg), cfg["bias"], cfg["gate"])
    raise ValueError("unknown attention %r" % (cfg["kind"],))


# --------------------------------------------------------------------------
# Shortcuts
# --------------------------------------------------------------------------

def conv_shortcut(in_chs, out_chs, stride):
    """timm downsample_conv with down_kernel_size 1 (also senet.py's)."""
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_chs))


def avg_shortcut(in_chs, out_chs, stride):
    """timm downsample_avg (avg_down): pool first, then the 1x1 projection."""
    if stride == 1:
        pool = nn.Identity()
    else:
        pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
    return nn.Sequential(pool, nn.Conv2d(in_chs, out_chs, 1, bias=False),
                         nn.BatchNorm2d(out_chs))


def make_shortcut(kind, in_chs, out_chs, stride):
    if kind == "none":
        if stride != 1 or in_chs != out_chs:
            raise ValueError("an identity shortcut needs stride 1 and in == out")
        return None
    return {"conv": conv_shortcut, "avg": avg_shortcut}[kind](in_chs, out_chs, stride)


# --------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------

class BasicBlock(nn.Module):
    """timm BasicBlock (expansion 1)."""
    expansion = 1

    def __init__(self, in_chs, planes, stride=1, shortcut="none", attn=TIMM_SE):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = make_attn(attn, planes)
        self.downsample = make_shortcut(shortcut, in_chs, planes, stride)

    def last_bn(self):
        return self.bn2

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.se is not None:
            y = self.se(y)
        s = x if self.downsample is None else self.downsample(x)
        return F.relu(y + s)


class Bottleneck(nn.Module):
    """timm Bottleneck (expansion 4; grouped 3x3 for ResNeXt).  legacy=True is
    senet.py's SEResNetBottleneck: stride on conv1, attention named se_module."""
    expansion = 4

    def __init__(self, in_chs, planes, stride=1, shortcut="none", attn=TIMM_SE,
                 cardinality=1, base_width=64, legacy=False):
        super().__init__()
        width = int(math.floor(planes * (base_width / 64)) * cardinality)
        out = planes * 4
        s1, s2 = (stride, 1) if legacy else (1, stride)
        self.legacy = legacy
        self.conv1 = nn.Conv2d(in_chs, width, 1, stride=s1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=s2, padding=1,
                               groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        a = make_attn(attn, out)
        if legacy:
            self.se_module = a
        else:
            self.se = a
        self.downsample = make_shortcut(shortcut, in_chs, out, stride)

    def last_bn(self):
        return self.bn3

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        a = self.se_module if self.legacy else self.se
        if a is not None:
            y = a(y)
        s = x if self.downsample is None else self.downsample(x)
        return F.relu(y + s)


class PreActBlock(nn.Module):
    """The SE source texts' residual block: BN -> ReLU -> 3x3 conv, twice, then SE
    on the branch, then the identity added (no activation after the sum)."""

    def __init__(self, channels, attn=TIMM_SE):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.se = make_attn(attn, channels)

    def forward(self, x):
        y = self.conv1(F.relu(self.norm1(x)))
        y = self.conv2(F.relu(self.norm2(y)))
        if self.se is not None:
            y = self.se(y)
        return x + y


def make_block(kind, in_chs, planes, stride=1, shortcut="none", attn=TIMM_SE,
               cardinality=1, base_width=64):
    if kind == "basic":
        if cardinality != 1 or base_width != 64:
            raise ValueError("BasicBlock has cardinality 1 and base width 64")
        return BasicBlock(in_chs, planes, stride, shortcut, attn)
    if kind in ("bottleneck", "legacy_bottleneck"):
        return Bottleneck(in_chs, planes, stride, shortcut, attn, cardinality,
                          base_width, legacy=kind == "legacy_bottleneck")
    if kind == "preact":
        if stride != 1 or shortcut != "none" or in_chs != planes:
            raise ValueError("the pre-activation block keeps its width and size")
        return PreActBlock(planes, attn)
    raise ValueError("unknown block %r" % (kind,))


def expansion(kind):
    return 1 if kind in ("basic", "preact") else 4


# --------------------------------------------------------------------------
# Stems
# --------------------------------------------------------------------------

class DeepStem(nn.Module):
    """timm's 'deep' stem conv1: three 3x3 convs; children named like the
    Sequential timm builds (0 conv, 1 BN, 2 ReLU, 3 conv, 4 BN, 5 ReLU, 6 conv)."""

    def __init__(self, in_chans, width):
        super().__init__()
        self.add_module("0", nn.Conv2d(in_chans, width, 3, stride=2, padding=1, bias=False))
        self.add_module("1", nn.BatchNorm2d(width))
        self.add_module("3", nn.Conv2d(width, width, 3, padding=1, bias=False))
        self.add_module("4", nn.BatchNorm2d(width))
        self.add_module("6", nn.Conv2d(width, 2 * width, 3, padding=1, bias=False))

    def forward(self, x):
        m = self._modules
        x = F.relu(m["1"](m["0"](x)))
        x = F.relu(m["4"](m["3"](x)))
        return m["6"](x)


class LegacyStem(nn.Module):
    """senet.py layer0 (7x7 variant): conv1 7x7/2, bn1, ReLU."""

    def __init__(self, in_chans, width):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)

    def forward(self, x):
        return F.relu(self.bn1(self.conv1(x)))


# --------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------

class ResNet(nn.Module):
    """timm ResNet (output stride 32, no drop path / drop block / anti-aliasing),
    or senet.py's SENet layout when stem == 'legacy'.  stem 'small' (sekit's, for
    28x28 / 32x32 images) is conv1 3x3/1 -> bn1 -> ReLU with no pooling."""

    def __init__(self, block, layers, channels=(64, 128, 256, 512), cardinality=1,
                 base_width=64, stem="7x7", stem_width=64, avg_down=False,
                 attn=TIMM_SE, in_chans=3, num_classes=1000, drop_rate=0.0):
        super().__init__()
        self.stem = stem
        self.drop_rate = drop_rate
        if block == "preact":
            raise ValueError("networks of pre-activation blocks are not defined")
        if stem == "legacy":
            self.layer0 = LegacyStem(in_chans, stem_width)
            inplanes = stem_width
        elif stem == "deep":
            self.conv1 = DeepStem(in_chans, stem_width)
            inplanes = 2 * stem_width
        elif stem in ("7x7", "small"):
            k, s = (7, 2) if stem == "7x7" else (3, 1)
            self.conv1 = nn.Conv2d(in_chans, stem_width, k, stride=s, padding=k // 2, bias=False)
            inplanes = stem_width
        else:
            raise ValueError("unknown stem %r" % (stem,))
        if stem != "legacy":
            self.bn1 = nn.BatchNorm2d(inplanes)
        for i, (planes, n) in enumerate(zip(channels, layers)):
            stride = 1 if i == 0 else 2
            out = planes * expansion(block)
            shortcut = "none"
            if stride != 1 or inplanes != out:
                shortcut = "avg" if avg_down else "conv"
            blocks = []
            for b in range(n):
                blocks.append(make_block(block, inplanes, planes, stride if b == 0 else 1,
                                         shortcut if b == 0 else "none", attn,
                                         cardinality, base_width))
                inplanes = out
            self.add_module("layer%d" % (i + 1), nn.Sequential(*blocks))
        self.num_features = inplanes
        fc = nn.Linear(inplanes, num_classes) if num_classes > 0 else None
        if stem == "legacy":
            self.last_linear = fc
        else:
            self.fc = fc
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if stem != "legacy":  # timm's zero_init_last
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def forward_stem(self, x):
        if self.stem == "legacy":
            return F.max_pool2d(self.layer0(x), 3, 2, ceil_mode=True)
        x = F.relu(self.bn1(self.conv1(x)))
        if self.stem == "small":
            return x
        return F.max_pool2d(x, 3, 2, padding=1)

    def forward_stages(self, x):
        """The outputs of layer1..layer4 (strides 4, 8, 16, 32; 1, 2, 4, 8 with the
        small stem)."""
        x = self.forward_stem(x)
        feats = []
        for i in range(1, 5):
            x = getattr(self, "layer%d" % i)(x)
            feats.append(x)
        return feats

    def forward_head(self, x):
        x = x.mean((2, 3))
        if self.drop_rate > 0.0:
            x = F.dropout(x, self.drop_rate, self.training)
        fc = self.last_linear if self.stem == "legacy" else self.fc
        return x if fc is None else fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_stages(x)[-1])


# --------------------------------------------------------------------------
# timm configurations
# --------------------------------------------------------------------------

def _cfg(block, layers, attn=TIMM_SE, cardinality=1, base_width=64, stem="7x7",
         stem_width=64, avg_down=False, drop_rate=0.0):
    return {"block": block, "layers": list(layers), "channels": [64, 128, 256, 512],
            "cardinality": cardinality, "base_width": base_width, "stem": stem,
            "stem_width": stem_width, "avg_down": avg_down, "attn": dict(attn),
            "drop_rate": drop_rate}


CONFIGS = {
    "resnet50": _cfg("bottleneck", (3, 4, 6, 3), attn=NO_ATTN),
    "seresnet18": _cfg("basic", (2, 2, 2, 2)),
    "seresnet34": _cfg("basic", (3, 4, 6, 3)),
    "seresnet50": _cfg("bottleneck", (3, 4, 6, 3)),
    "seresnet101": _cfg("bottleneck", (3, 4, 23, 3)),
    "seresnet152": _cfg("bottleneck", (3, 8, 36, 3)),
    "seresnext26d_32x4d": _cfg("bottleneck", (2, 2, 2, 2), cardinality=32, base_width=4,
                               stem="deep", stem_width=32, avg_down=True),
    "seresnext50_32x4d": _cfg("bottleneck", (3, 4, 6, 3), cardinality=32, base_width=4),
    "seresnext101_32x4d": _cfg("bottleneck", (3, 4, 23, 3), cardinality=32, base_width=4),
    "legacy_seresnet50": _cfg("legacy_bottleneck", (3, 4, 6, 3), attn=LEGACY_SE,
                              stem="legacy", drop_rate=0.2),
}

# Parameter counts of timm's models with a 1000-class head, as timm reports them
# (sum of p.numel() over timm.create_model(name).parameters()).
TIMM_PARAM_COUNTS = {
    "resnet50": 25557032,
    "seresnet18": 11779624,
    "seresnet34": 21960416,
    "seresnet50": 28088024,
    "seresnet101": 49326872,
    "seresnet152": 66821848,
    "seresnext26d_32x4d": 16809512,
    "seresnext50_32x4d": 27559896,
    "seresnext101_32x4d": 48955416,
    "legacy_seresnet50": 28088024,
}


def build(name, **overrides):
    cfg = dict(CONFIGS[name])
    cfg.update(overrides)
    return ResNet(cfg["block"], cfg["layers"], cfg["channels"], cfg["cardinality"],
                  cfg["base_width"], cfg["stem"], cfg["stem_width"], cfg["avg_down"],
                  cfg["attn"], cfg.get("in_chans", 3), cfg.get("num_classes", 1000),
                  cfg["drop_rate"])


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def check_param_counts(verbose=False):
    """Build every configuration and compare with timm; raise on a mismatch."""
    bad = []
    for name in CONFIGS:
        n = param_count(build(name))
        want = TIMM_PARAM_COUNTS[name]
        if verbose:
            print("%-20s %12d %s" % (name, n, "ok" if n == want else "MISMATCH (timm %d)" % want))
        if n != want:
            bad.append((name, n, want))
    if bad:
        raise RuntimeError("parameter counts differ from timm: %r" % bad)


if __name__ == "__main__":
    check_param_counts(verbose=True)
    sys.exit(0)
