#!/usr/bin/python3
"""Write reference fixtures for the sekit SE / eSE / OSA / VoVNet tests from real
PyTorch runs.

Usage (run by the Maven build with Debian's interpreter):

    /usr/bin/python3 src/test/python/make_fixtures.py OUT_DIR
    /usr/bin/python3 src/test/python/make_fixtures.py --demo OUT_DIR

Each case is written as OUT_DIR/<case>.safetensors (format written by hand,
the `safetensors` package is not needed): an 8-byte little-endian header
length n, n bytes of UTF-8 JSON header (padded with spaces so n % 8 == 0),
then the tensors packed back-to-back, little-endian, row-major, in header
order.  The offsets are gap-free, as the safetensors specification requires,
and the writer checks that every tensor starts at a multiple of its element
size in the file (the SE / eSE files hold only the case dtype; the OSA /
VoVNet files also hold I64 num_batches_tracked scalars, shape []).

SE / eSE cases (metadata module "se" / "ese"): input, output, grad_output,
grad_input, param.<name> and grad.<name> for every module parameter.
Backward is Y.backward(G), i.e. the gradients of loss = sum(Y * G).

OSA / VoVNet cases (metadata module "osa_block" / "osa_stage" / "vovnet"; the
modules are the PyTorch statement of timm's VoVNet in vovnet_ref.py, with
timm's parameter names): every BatchNorm has random weight, bias, running
statistics and num_batches_tracked.  Tensors: state.<key> for every entry of
state_dict() before the forward (parameters and buffers), input, output;
with gradients also grad_output, grad_input and grad.<name> for every
parameter; in train mode also state_after.<key> for every buffer after the
forward; for "vovnet" also feature.0 .. feature.3 (the stage outputs).

In normal mode OUT_DIR/manifest.json lists every case written, and
OUT_DIR/vovnet_configs.json gives, for each of timm's eight VoVNet
configurations, its parameter count (1000 classes; checked against timm's
numbers), its state_dict keys and shapes in order, and its configuration.

The run is deterministic: every case seeds torch from a fixed base seed plus a
CRC32 of its name, and torch runs with 2 threads.
"""

import json
import math
import os
import sys
import zlib

try:
    import torch
    import torch.nn.functional as F
    import torchvision
    from torchvision.ops import SqueezeExcitation
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write(
        "make_fixtures.py needs PyTorch and torchvision for /usr/bin/python3 "
        "(%s); install them with: apt-get install -y python3-torch "
        "python3-torchvision\n" % exc)
    sys.exit(2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vovnet_ref  # noqa: E402  (next to this file)
import resnet_fixtures  # noqa: E402  (residual blocks and ResNets)
import ddp_fixtures  # noqa: E402  (PyTorch DistributedDataParallel, 2 processes)

BASE_SEED = 20240611
WEIGHT_SCALE = 0.5

DTYPES = {
    "float32": (torch.float32, "F32", "<f4"),
    "float64": (torch.float64, "F64", "<f8"),
}
DTYPE_TAG = {"float32": "f32", "float64": "f64"}
# Every torch dtype the writer accepts: safetensors dtype, numpy dtype.
WRITER_DTYPES = [(tdt, sdt, ndt) for tdt, sdt, ndt in DTYPES.values()] + [
    (torch.int64, "I64", "<i8"),
]


# --------------------------------------------------------------------------
# Reference modules
# --------------------------------------------------------------------------

def _gate_fn(gate):
    if gate == "sigmoid":
        return torch.sigmoid
    if gate == "hard_sigmoid":
        return F.hardsigmoid
    raise ValueError("unknown gate %r" % gate)


def _squeeze(x, add_maxpool):
    s = x.mean((2, 3), keepdim=True)
    if add_maxpool:
        s = 0.5 * s + 0.5 * x.amax((2, 3), keepdim=True)
    return s


class SEMaxPool(torch.nn.Module):
    """PyTorch statement of timm SEModule (act=ReLU, bias) with add_maxpool,
    using the same parameter names as torchvision.ops.SqueezeExcitation."""

    def __init__(self, channels, rd_channels, gate, add_maxpool=True):
        super().__init__()
        self.fc1 = torch.nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.fc2 = torch.nn.Conv2d(rd_channels, channels, 1, bias=True)
        self.add_maxpool = add_maxpool
        self.gate = _gate_fn(gate)

    def forward(self, x):
        s = _squeeze(x, self.add_maxpool)
        s = self.fc1(s)
        s = F.relu(s)
        s = self.fc2(s)
        return x * self.gate(s)


class EffectiveSE(torch.nn.Module):
    """PyTorch statement of timm EffectiveSEModule (bias)."""

    def __init__(self, channels, gate, add_maxpool=False):
        super().__init__()
        self.fc = torch.nn.Conv2d(channels, channels, 1, bias=True)
        self.add_maxpool = add_maxpool
        self.gate = _gate_fn(gate)

    def forward(self, x):
        s = _squeeze(x, self.add_maxpool)
        s = self.fc(s)
        return x * self.gate(s)


def make_divisible(v, divisor=8, min_value=None, round_limit=0.0):
    """timm.layers.helpers.make_divisible."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def default_rd_channels(channels):
    # timm SEModule: make_divisible(channels * 1/16, 8, round_limit=0.)
    return make_divisible(channels / 16.0, 8, round_limit=0.0)


def build_module(spec):
    """Return (module, metadata) for a case spec."""
    c = spec["channels"]
    gate = spec["gate"]
    add_maxpool = spec["add_maxpool"]
    meta = {
        "module": spec["module"],
        "channels": str(c),
        "gate": gate,
        "add_maxpool": "true" if add_maxpool else "false",
        "bias": "true",
        "dtype": spec["dtype"],
    }
    if spec["module"] == "se":
        r = spec.get("rd_channels") or default_rd_channels(c)
        meta["rd_channels"] = str(r)
        meta["act"] = "relu"
        if add_maxpool:
            mod = SEMaxPool(c, r, gate, add_maxpool=True)
            meta["reference"] = ("pytorch statement of timm SEModule "
                                 "(add_maxpool, torchvision parameter names)")
        else:
            scale_act = (torch.nn.Sigmoid if gate == "sigmoid"
                         else torch.nn.Hardsigmoid)
            mod = SqueezeExcitation(c, r, activation=torch.nn.ReLU,
                                    scale_activation=scale_act)
            meta["reference"] = "torchvision.ops.SqueezeExcitation"
    elif spec["module"] == "ese":
        mod = EffectiveSE(c, gate, add_maxpool=add_maxpool)
        meta["reference"] = "pytorch statement of timm EffectiveSEModule"
    else:
        raise ValueError("unknown module %r" % spec["module"])
    return mod, meta


# --------------------------------------------------------------------------
# safetensors writer
# --------------------------------------------------------------------------

def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, tensor) in file order; metadata: str -> str."""
    header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    blobs = []
    offset = 0
    for name, t in tensors:
        if name in header:
            raise ValueError("duplicate tensor name %r" % name)
        t = t.detach().cpu().contiguous()
        st_dtype, np_dtype = None, None
        for tdt, sdt, ndt in WRITER_DTYPES:
            if t.dtype == tdt:
                st_dtype, np_dtype = sdt, ndt
        if st_dtype is None:
            raise ValueError("unsupported dtype %s for %s" % (t.dtype, name))
        if offset % t.element_size() != 0:
            raise ValueError("%s would start at byte %d, not a multiple of its "
                             "element size %d" % (name, offset, t.element_size()))
        data = t.numpy().astype(np_dtype, copy=False).tobytes(order="C")
        assert len(data) == t.numel() * t.element_size()
        header[name] = {
            "dtype": st_dtype,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((-len(hbytes)) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(hbytes).to_bytes(8, "little"))
        f.write(hbytes)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
    return 8 + len(hbytes) + offset


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

def case_name(spec):
    gate = "hardsigmoid" if spec["gate"] == "hard_sigmoid" else "sigmoid"
    pool = "avgmax" if spec["add_maxpool"] else "avg"
    n, c, h, w = spec["shape"]
    rd = "_r%d" % spec["rd_channels"] if spec.get("rd_channels") else ""
    return "%s_%s_n%d_c%d%s_%dx%d_%s_%s" % (
        spec["module"], DTYPE_TAG[spec["dtype"]], n, c, rd, h, w, gate, pool)


def _c(module, dtype, shape, gate, add_maxpool, rd_channels=None):
    return {"module": module, "dtype": dtype, "shape": shape,
            "channels": shape[1], "gate": gate, "add_maxpool": add_maxpool,
            "rd_channels": rd_channels}


SG, HS = "sigmoid", "hard_sigmoid"
F32, F64 = "float32", "float64"

CASES = [
    # ---- SE (timm SEModule, act=ReLU) ----
    _c("se", F32, (2, 64, 7, 7), SG, False),
    _c("se", F32, (2, 64, 7, 7), HS, False),
    _c("se", F32, (2, 64, 7, 7), SG, True),
    _c("se", F32, (2, 64, 7, 7), HS, True),
    _c("se", F64, (2, 64, 7, 7), SG, False),
    _c("se", F64, (4, 64, 5, 9), HS, True),
    _c("se", F32, (1, 8, 1, 1), SG, False),
    _c("se", F64, (2, 8, 1, 1), SG, True),
    _c("se", F32, (4, 8, 5, 9), HS, False),
    _c("se", F32, (1, 256, 56, 56), SG, False),
    _c("se", F32, (2, 64, 56, 56), HS, True),
    _c("se", F64, (1, 64, 56, 56), SG, False),
    _c("se", F32, (2, 1024, 7, 7), SG, False),
    _c("se", F64, (1, 1024, 1, 1), HS, True),
    _c("se", F32, (4, 256, 13, 6), SG, True),
    _c("se", F64, (2, 256, 5, 9), HS, False),
    _c("se", F32, (2, 64, 7, 7), SG, False, rd_channels=4),
    _c("se", F64, (1, 64, 13, 6), HS, True, rd_channels=4),
    # ---- eSE (timm EffectiveSEModule) ----
    _c("ese", F32, (2, 64, 7, 7), HS, False),
    _c("ese", F32, (2, 64, 7, 7), SG, False),
    _c("ese", F32, (2, 64, 7, 7), HS, True),
    _c("ese", F64, (2, 64, 7, 7), SG, True),
    _c("ese", F64, (1, 8, 1, 1), HS, False),
    _c("ese", F32, (4, 8, 5, 9), SG, True),
    _c("ese", F32, (1, 128, 56, 56), HS, True),
    _c("ese", F64, (1, 64, 56, 56), HS, False),
    _c("ese", F32, (2, 1024, 7, 7), HS, False),
    _c("ese", F32, (1, 512, 1, 1), SG, True),
    _c("ese", F64, (4, 256, 13, 6), HS, False),
    _c("ese", F64, (2, 256, 6, 13), SG, True),
]


def case_seed(name):
    return (BASE_SEED + zlib.crc32(name.encode("utf-8"))) % (2 ** 31)


def run_case(spec, name, out_dir):
    dtype = DTYPES[spec["dtype"]][0]
    seed = case_seed(name)
    torch.manual_seed(seed)
    mod, meta = build_module(spec)
    mod = mod.to(dtype)
    mod.train(False)
    with torch.no_grad():
        for _, p in mod.named_parameters():
            # Weights scaled by 1/sqrt(fan_in) keep the gate inputs mostly out of the
            # flat regions of sigmoid / hard sigmoid, so every path carries gradient.
            scale = WEIGHT_SCALE * 3.0 / math.sqrt(p.shape[1]) if p.dim() == 4 else WEIGHT_SCALE
            p.copy_(torch.randn(p.shape, dtype=dtype) * scale)
    x = torch.randn(spec["shape"], dtype=dtype).requires_grad_(True)
    y = mod(x)
    g = torch.randn_like(y)
    y.backward(g)

    tensors = [
        ("input", x),
        ("output", y),
        ("grad_output", g),
        ("grad_input", x.grad),
    ]
    params = list(mod.named_parameters())
    for pname, p in params:
        tensors.append(("param." + pname, p))
    for pname, p in params:
        if p.grad is None:
            raise RuntimeError("%s: no gradient for %s" % (name, pname))
        tensors.append(("grad." + pname, p.grad))
    for tname, t in tensors:
        if t.dtype != dtype:
            raise RuntimeError("%s: %s has dtype %s" % (name, tname, t.dtype))

    meta["torch_version"] = torch.__version__
    meta["torchvision_version"] = torchvision.__version__
    meta["seed"] = str(seed)
    meta["weight_init"] = "randn*%g (weights also * 3/sqrt(fan_in))" % WEIGHT_SCALE
    path = os.path.join(out_dir, name + ".safetensors")
    return write_safetensors(path, tensors, meta)


# --------------------------------------------------------------------------
# OSA / VoVNet cases (modules from vovnet_ref.py)
# --------------------------------------------------------------------------

def _b(dtype, mode, in_chs, mid_chs, out_chs, layers, residual, depthwise,
       attn, hw=(8, 8), n=2):
    return {"module": "osa_block", "dtype": dtype, "mode": mode,
            "in_chs": in_chs, "mid_chs": mid_chs, "out_chs": out_chs,
            "layers": layers, "residual": residual, "depthwise": depthwise,
            "attn": attn, "shape": (n, in_chs) + tuple(hw), "grad": True}


def _s(dtype, mode, in_chs, mid_chs, out_chs, layers, blocks, downsample,
       residual, depthwise, attn, attn_every_block, hw, n=2):
    return {"module": "osa_stage", "dtype": dtype, "mode": mode,
            "in_chs": in_chs, "mid_chs": mid_chs, "out_chs": out_chs,
            "layers": layers, "blocks": blocks, "downsample": downsample,
            "residual": residual, "depthwise": depthwise, "attn": attn,
            "attn_every_block": attn_every_block,
            "shape": (n, in_chs) + tuple(hw), "grad": True}


def _cna(dtype, mode, in_chs, out_chs, kernel, stride, shape, offset=0.0):
    """timm's ConvNormAct (conv, BatchNormAct2d with ReLU); `offset` is added to the input, so
    that each channel's mean lies far from zero against its spread (the variance must not
    cancel)."""
    return {"module": "conv_norm_act", "dtype": dtype, "mode": mode, "in_chs": in_chs,
            "out_chs": out_chs, "kernel": kernel, "stride": stride, "shape": tuple(shape),
            "offset": offset, "grad": True}


def _v(name, config, dtype, mode, num_classes, shape, grad):
    return {"module": "vovnet", "name": name, "config": config,
            "dtype": dtype, "mode": mode, "num_classes": num_classes,
            "shape": tuple(shape), "grad": grad}


TRAIN, EVAL = "train", "eval"
RES, NORES, DW, FULL = True, False, True, False

MODEL_CASES = [
    # ---- OSA block: residual x depthwise x attn, train mode ----
    # (all channel counts even, so the I64 scalars stay 8-byte aligned)
    _b(F32, TRAIN, 16, 8, 24, 3, NORES, FULL, "none"),
    _b(F32, TRAIN, 16, 8, 24, 3, NORES, FULL, "ese"),
    _b(F32, TRAIN, 16, 8, 24, 3, NORES, FULL, "se"),
    _b(F32, TRAIN, 16, 8, 16, 2, RES, FULL, "none"),
    _b(F32, TRAIN, 16, 8, 16, 2, RES, FULL, "ese"),
    _b(F32, TRAIN, 16, 8, 16, 2, RES, FULL, "se"),
    _b(F32, TRAIN, 16, 8, 24, 3, NORES, DW, "none"),   # conv_reduction
    _b(F32, TRAIN, 16, 8, 24, 3, NORES, DW, "ese"),    # conv_reduction
    _b(F32, TRAIN, 16, 8, 24, 3, NORES, DW, "se"),     # conv_reduction
    _b(F32, TRAIN, 8, 8, 16, 2, NORES, DW, "ese"),     # in == mid
    _b(F32, TRAIN, 16, 16, 16, 2, RES, DW, "none"),
    _b(F32, TRAIN, 16, 16, 16, 2, RES, DW, "ese"),
    _b(F32, TRAIN, 16, 16, 16, 2, RES, DW, "se"),
    # ---- OSA block, eval mode (running statistics) ----
    _b(F32, EVAL, 16, 8, 24, 3, NORES, FULL, "none"),
    _b(F32, EVAL, 16, 8, 16, 3, RES, FULL, "ese", hw=(7, 9)),
    _b(F32, EVAL, 16, 8, 24, 2, NORES, DW, "se"),      # conv_reduction
    _b(F32, EVAL, 16, 16, 16, 3, RES, DW, "ese"),
    # ---- OSA block, float64 ----
    _b(F64, TRAIN, 16, 8, 16, 3, RES, FULL, "ese", hw=(7, 9)),
    _b(F64, TRAIN, 16, 16, 16, 2, RES, DW, "se"),
    _b(F64, EVAL, 16, 8, 24, 3, NORES, DW, "ese"),     # conv_reduction
    # ---- OSA stage: max pool (ceil_mode) + 2 blocks, eSE last vs every ----
    # 10 and 8, 12 are sizes where ceil_mode=True gives one more output row /
    # column than floor (9 would not: (9 - 3) / 2 is exact).
    _s(F32, TRAIN, 16, 8, 24, 2, 2, True, RES, FULL, "ese", False, (10, 10)),
    _s(F32, TRAIN, 16, 8, 24, 2, 2, True, RES, FULL, "ese", True, (8, 12)),
    # ---- ConvNormAct (BatchNorm+ReLU, fused in training for float32 channels-last) ----
    _cna(F32, TRAIN, 8, 24, 3, 1, (4, 8, 9, 11)),
    _cna(F32, TRAIN, 16, 1040, 1, 1, (2, 16, 5, 3)),   # channels past a 512 block, not x16
    _cna(F32, TRAIN, 16, 5, 3, 2, (3, 16, 6, 6)),      # odd channels, stride 2
    _cna(F32, TRAIN, 16, 24, 1, 1, (2, 16, 1, 1)),     # two values per channel
    _cna(F32, TRAIN, 16, 32, 1, 1, (4, 16, 7, 7), offset=50.0),
    _cna(F32, EVAL, 8, 24, 3, 1, (4, 8, 9, 11)),
    _cna(F64, TRAIN, 8, 24, 3, 1, (4, 8, 9, 11)),
    # ---- whole networks ----
    _v("vovnet_ese_vovnet19b_dw_eval_224", "ese_vovnet19b_dw", F32, EVAL,
       1000, (1, 3, 224, 224), False),
    _v("vovnet_ese_vovnet19b_slim_dw_train_64", "ese_vovnet19b_slim_dw", F64,
       TRAIN, 10, (2, 3, 64, 64), True),
]


def _tf(b):
    return "true" if b else "false"


def model_case_name(spec):
    if spec["module"] == "vovnet":
        return spec["name"]
    n, _, h, w = spec["shape"]
    if spec["module"] == "conv_norm_act":
        return "conv_norm_act_%s_%s_n%d_in%d_out%d_k%d_s%d_%dx%d%s" % (
            DTYPE_TAG[spec["dtype"]], spec["mode"], n, spec["in_chs"], spec["out_chs"],
            spec["kernel"], spec["stride"], h, w,
            "_offset%g" % spec["offset"] if spec["offset"] else "")
    name = "%s_%s_%s_n%d_in%d_mid%d_out%d_l%d" % (
        spec["module"], DTYPE_TAG[spec["dtype"]], spec["mode"], n,
        spec["in_chs"], spec["mid_chs"], spec["out_chs"], spec["layers"])
    if spec["module"] == "osa_stage":
        name += "_b%d%s" % (spec["blocks"], "_pool" if spec["downsample"] else "")
    name += "_%s_%s_%s" % ("res" if spec["residual"] else "nores",
                           "dw" if spec["depthwise"] else "full", spec["attn"])
    if spec["module"] == "osa_stage" and spec["attn"] != "none":
        name += "_every" if spec["attn_every_block"] else "_last"
    return name + "_%dx%d" % (h, w)


def build_model(spec):
    """Return (module, metadata) for an OSA / VoVNet case spec."""
    meta = {"module": spec["module"], "mode": spec["mode"],
            "dtype": spec["dtype"], "grad": _tf(spec["grad"])}
    attn = "" if spec.get("attn") == "none" else spec.get("attn")
    if spec["module"] in ("osa_block", "osa_stage"):
        for k in ("in_chs", "mid_chs", "out_chs", "layers"):
            meta[k] = str(spec[k])
        meta["residual"] = _tf(spec["residual"])
        meta["depthwise"] = _tf(spec["depthwise"])
        meta["attn"] = spec["attn"]
    if spec["module"] == "conv_norm_act":
        for k in ("in_chs", "out_chs", "kernel", "stride"):
            meta[k] = str(spec[k])
        meta["input_offset"] = str(spec["offset"])
        mod = vovnet_ref.ConvNormAct(spec["in_chs"], spec["out_chs"], spec["kernel"], spec["stride"])
        meta["reference"] = "pytorch statement of timm ConvNormAct (vovnet_ref.py)"
    elif spec["module"] == "osa_block":
        mod = vovnet_ref.OsaBlock(
            spec["in_chs"], spec["mid_chs"], spec["out_chs"], spec["layers"],
            residual=spec["residual"], depthwise=spec["depthwise"], attn=attn)
        meta["reference"] = "pytorch statement of timm OsaBlock (vovnet_ref.py)"
    elif spec["module"] == "osa_stage":
        meta["blocks"] = str(spec["blocks"])
        meta["downsample"] = _tf(spec["downsample"])
        meta["attn_every_block"] = _tf(spec["attn_every_block"])
        mod = vovnet_ref.OsaStage(
            spec["in_chs"], spec["mid_chs"], spec["out_chs"], spec["blocks"],
            spec["layers"], downsample=spec["downsample"],
            residual=spec["residual"], depthwise=spec["depthwise"], attn=attn,
            attn_every_block=spec["attn_every_block"])
        meta["reference"] = ("pytorch statement of timm OsaStage (vovnet_ref.py; "
                             "attn_every_block=true: original VoVNetV2)")
    elif spec["module"] == "vovnet":
        meta["config"] = spec["config"]
        meta["num_classes"] = str(spec["num_classes"])
        meta["in_chans"] = str(spec["shape"][1])
        mod = vovnet_ref.VovNet(vovnet_ref.CONFIGS[spec["config"]],
                                in_chans=spec["shape"][1],
                                num_classes=spec["num_classes"])
        meta["reference"] = "pytorch statement of timm VovNet (vovnet_ref.py)"
    else:
        raise ValueError("unknown module %r" % spec["module"])
    return mod, meta


def randomise_batchnorm(mod):
    """Random affine parameters, running statistics and step counts for every
    BatchNorm, so that a port mixing them up cannot pass by accident."""
    with torch.no_grad():
        for m in mod.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(int(torch.randint(1, 10, ())))


def float32_error(spec, state, x, g, tensors):
    """How far PyTorch's own float32 result lies from the same case run in float64 (largest
    relative error over the output and the gradients): where a case is ill-conditioned (a
    weight gradient that sums to nearly zero against a large input mean), another float32
    implementation may differ from PyTorch's by as much, and the test allows for it."""
    mod, _ = build_model(spec)
    mod = mod.to(torch.float64)
    mod.load_state_dict({k: v.to(torch.float64) if v.is_floating_point() else v for k, v in state})
    mod.train(spec["mode"] == "train")
    x64 = x.detach().to(torch.float64).requires_grad_(True)
    y64 = mod(x64)
    y64.backward(g.to(torch.float64))
    exact = {"output": y64, "grad_input": x64.grad}
    exact.update({"grad." + k: p.grad for k, p in mod.named_parameters()})
    err = 0.0
    for tname, t in tensors:
        if tname in exact:
            ref = exact[tname].detach()
            err = max(err, ((t.detach().double() - ref).abs().max() / ref.abs().max()).item())
    return err


def run_model_case(spec, name, out_dir):
    dtype = DTYPES[spec["dtype"]][0]
    seed = case_seed(name)
    torch.manual_seed(seed)
    mod, meta = build_model(spec)
    mod = mod.to(dtype)
    randomise_batchnorm(mod)
    train = spec["mode"] == "train"
    mod.train(train)
    grad = spec["grad"]
    state = [(k, v.detach().clone()) for k, v in mod.state_dict().items()]

    x = torch.randn(spec["shape"], dtype=dtype) + spec.get("offset", 0.0)
    feats = None
    with torch.set_grad_enabled(grad):
        if grad:
            x.requires_grad_(True)
        if spec["module"] == "vovnet":
            feats = mod.forward_stages(x)
            y = mod.forward_head(feats[-1])
        else:
            y = mod(x)
        if grad:
            g = torch.randn_like(y)
            y.backward(g)

    tensors = [("input", x), ("output", y)]
    if grad:
        tensors += [("grad_output", g), ("grad_input", x.grad)]
    tensors += [("state." + k, v) for k, v in state]
    if grad:
        for pname, p in mod.named_parameters():
            if p.grad is None:
                raise RuntimeError("%s: no gradient for %s" % (name, pname))
            tensors.append(("grad." + pname, p.grad))
    if train:
        tensors += [("state_after." + k, v) for k, v in mod.named_buffers()]
    if feats is not None:
        tensors += [("feature.%d" % i, f) for i, f in enumerate(feats)]
    for tname, t in tensors:
        want = torch.int64 if tname.endswith("num_batches_tracked") else dtype
        if t.dtype != want:
            raise RuntimeError("%s: %s has dtype %s" % (name, tname, t.dtype))

    if spec["module"] == "conv_norm_act" and dtype == torch.float32 and grad:
        meta["float32_error"] = "%.3e" % float32_error(spec, state, x, g, tensors)
    meta["torch_version"] = torch.__version__
    meta["torchvision_version"] = torchvision.__version__
    meta["seed"] = str(seed)
    meta["weight_init"] = (
        ("timm VovNet init (kaiming_normal fan_out relu convs, zero linear bias)"
         if spec["module"] == "vovnet" else "pytorch default")
        + "; BatchNorm weight U(0.5,1.5), bias N(0,0.1), running_mean N(0,0.1), "
        "running_var U(0.5,1.5), num_batches_tracked randint[1,10)")
    path = os.path.join(out_dir, name + ".safetensors")
    return write_safetensors(path, tensors, meta)


def write_vovnet_configs(out_dir):
    """OUT_DIR/vovnet_configs.json: parameter count (1000 classes), state_dict
    keys and shapes, and configuration of every timm VoVNet; the counts must
    equal timm's."""
    out = {}
    for cname, cfg in vovnet_ref.CONFIGS.items():
        model = vovnet_ref.VovNet(cfg, num_classes=1000)
        count = vovnet_ref.param_count(model)
        if count != vovnet_ref.TIMM_PARAM_COUNTS[cname]:
            raise RuntimeError("%s: %d parameters, timm has %d" % (
                cname, count, vovnet_ref.TIMM_PARAM_COUNTS[cname]))
        out[cname] = {
            "param_count": count,
            "state_dict": [[k, list(v.shape)] for k, v in model.state_dict().items()],
            "config": dict(cfg),
        }
        del model
    path = os.path.join(out_dir, "vovnet_configs.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return os.path.getsize(path)


# --- training: optimizer steps and the loss, from torch.optim and F.cross_entropy ---

OPTIM_CASES = [
    # name, optimizer kind, kwargs (torch.optim names)
    ("optim_sgd_nesterov_wd", "sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)),
    ("optim_sgd_dampening", "sgd", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.0)),
    ("optim_sgd_plain_wd", "sgd", dict(lr=0.2, momentum=0.0, weight_decay=1e-2)),
    ("optim_adamw", "adamw", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)),
    ("optim_adamw_betas", "adamw", dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
]
OPTIM_STEPS = 4


def write_training_cases(out_dir):
    """Optimizer trajectories on given gradients, and cross-entropy with its gradient.
    Parameters are named like an eSE block's (fc.weight [3,3,1,1], fc.bias [3])."""
    total = 0
    names = []
    for name, kind, kw in OPTIM_CASES:
        for dtype, tag in ((torch.float64, "f64"), (torch.float32, "f32")):
            torch.manual_seed(case_seed(name + tag))
            params = {"fc.weight": torch.randn(3, 3, 1, 1, dtype=dtype), "fc.bias": torch.randn(3, dtype=dtype)}
            ps = [torch.nn.Parameter(t.clone()) for t in params.values()]
            opt = (torch.optim.SGD if kind == "sgd" else torch.optim.AdamW)(ps, **kw)
            tensors = [("param0." + k, v) for k, v in params.items()]
            for step in range(1, OPTIM_STEPS + 1):
                for (k, _), p in zip(params.items(), ps):
                    g = torch.randn_like(p)
                    p.grad = g
                    tensors.append(("grad%d.%s" % (step, k), g))
                opt.step()
                for (k, _), p in zip(params.items(), ps):
                    tensors.append(("param%d.%s" % (step, k), p.detach().clone()))
            meta = {"optimizer": kind, "steps": str(OPTIM_STEPS), "dtype": tag,
                    "torch_version": torch.__version__}
            meta.update({k: json.dumps(v) for k, v in kw.items()})
            fname = "%s_%s" % (name, tag)
            total += write_safetensors(os.path.join(out_dir, fname + ".safetensors"), tensors, meta)
            names.append(fname)
    for ls in (0.0, 0.1):
        for dtype, tag in ((torch.float64, "f64"), (torch.float32, "f32")):
            fname = "loss_cross_entropy_ls%g_%s" % (ls, tag)
            torch.manual_seed(case_seed(fname))
            logits = (torch.randn(16, 10, dtype=dtype) * 2).requires_grad_(True)
            targets = torch.randint(0, 10, (16,))
            loss = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=ls)
            loss.backward()
            tensors = [("logits", logits.detach()), ("targets", targets), ("loss", loss.detach().reshape(1)),
                       ("grad_logits", logits.grad)]
            total += write_safetensors(os.path.join(out_dir, fname + ".safetensors"), tensors,
                                       {"label_smoothing": str(ls), "dtype": tag})
            names.append(fname)
    return total, names


# --- parameter groups and top-k: torch.optim with param_groups, timm's accuracy() ---

# A VoVNet small enough for fixtures (a few thousand parameters) with every kind of
# parameter name: stem, depthwise OSA blocks with eSE and residuals, head.
TINY_VOVNET = vovnet_ref._cfg((8, 8, 16), (8, 8, 8, 8), (16, 16, 24, 24), 2, (1, 1, 1, 1),
                              True, True, "ese")

# name, optimizer kind, kwargs (torch.optim names), groups as sekit's ParamGroups states them:
# frozen prefixes, then rules (first match wins; "complement": the names under none of the
# prefixes); a parameter no rule matches is in the default group (the optimizer's settings).
GROUP_CASES = [
    ("groups_sgd_frozen_stem", "sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
     {"frozen": ["stem"],
      "groups": [{"prefixes": ["stages"], "complement": False, "lr_scale": 0.1, "weight_decay": 1e-3}]}),
    ("groups_adamw_backbone", "adamw", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
     {"frozen": ["stem", "stages.0"],
      "groups": [{"prefixes": ["head"], "complement": True, "lr_scale": 0.25, "weight_decay": 0.0},
                 {"prefixes": ["head.fc.bias"], "complement": False, "lr_scale": 2.0}]}),
]
# The optimizer's learning rate at each step (a schedule): every group follows it, times its scale.
GROUP_LR_FACTORS = [1.0, 0.8, 0.5, 0.3]


def _under(name, prefixes):
    for p in prefixes:
        dotted = p if p.endswith(".") else p + "."
        if name.startswith(dotted) or name == p:
            return True
    return False


def _group_of(name, spec):
    if _under(name, spec["frozen"]):
        return -1
    for i, g in enumerate(spec["groups"]):
        if _under(name, g["prefixes"]) != g["complement"]:
            return i + 1
    return 0


def timm_accuracy(output, target, topk):
    """timm.utils.metrics.accuracy, as counts instead of percentages."""
    maxk = min(max(topk), output.size()[1])
    _, pred = output.topk(maxk, 1, True, True)
    pred = pred.t()
    correct = pred.eq(target.reshape(1, -1).expand_as(pred))
    return [int(correct[:min(k, maxk)].reshape(-1).float().sum(0)) for k in topk]


def write_group_cases(out_dir):
    total = 0
    names = []
    for name, kind, kw, spec in GROUP_CASES:
        for dtype, tag in ((torch.float64, "f64"), (torch.float32, "f32")):
            torch.manual_seed(case_seed(name + tag))
            model = vovnet_ref.VovNet(TINY_VOVNET, in_chans=3, num_classes=5).to(dtype)
            params = [(k, p) for k, p in model.named_parameters()]
            for _, p in params:  # away from the initialisation's zeros (head bias)
                with torch.no_grad():
                    p.add_(torch.randn_like(p) * 0.1)
            groups = [[] for _ in range(len(spec["groups"]) + 1)]
            for k, p in params:
                g = _group_of(k, spec)
                if g < 0:
                    p.requires_grad_(False)
                else:
                    groups[g].append(p)
            if any(len(g) == 0 for g in groups):
                raise RuntimeError("%s: an empty group" % name)
            wd = kw["weight_decay"]
            pg = [{"params": groups[0]}]
            for g, rule in zip(groups[1:], spec["groups"]):
                pg.append({"params": g, "lr": kw["lr"] * rule["lr_scale"],
                           "weight_decay": rule.get("weight_decay", wd)})
            opt = (torch.optim.SGD if kind == "sgd" else torch.optim.AdamW)(pg, **kw)
            scales = [1.0] + [r["lr_scale"] for r in spec["groups"]]
            tensors = [("param0." + k, p.detach().clone()) for k, p in params]
            for step, factor in enumerate(GROUP_LR_FACTORS, start=1):
                for group, scale in zip(opt.param_groups, scales):
                    group["lr"] = kw["lr"] * factor * scale
                for k, p in params:
                    g = torch.randn_like(p)
                    p.grad = g  # frozen ones too: the optimizer must leave them alone
                    tensors.append(("grad%d.%s" % (step, k), g))
                opt.step()
                for k, p in params:
                    tensors.append(("param%d.%s" % (step, k), p.detach().clone()))
            meta = {"optimizer": kind, "steps": str(len(GROUP_LR_FACTORS)), "dtype": tag,
                    "lr_factors": json.dumps(GROUP_LR_FACTORS), "groups": json.dumps(spec),
                    "names": json.dumps([k for k, _ in params]),
                    "group_of": json.dumps([_group_of(k, spec) for k, _ in params]),
                    "config": json.dumps(TINY_VOVNET), "num_classes": "5",
                    "torch_version": torch.__version__}
            meta.update({k: json.dumps(v) for k, v in kw.items()})
            fname = "%s_%s" % (name, tag)
            total += write_safetensors(os.path.join(out_dir, fname + ".safetensors"), tensors, meta)
            names.append(fname)
    # top-k counts with many ties (small integer logits), as timm's accuracy() counts them
    torch.manual_seed(case_seed("topk"))
    logits = torch.randint(0, 4, (64, 10)).float()
    logits[:4] = 1.0  # whole rows tied
    targets = torch.randint(0, 10, (64,))
    tensors = [("logits", logits), ("targets", targets)]
    meta = {"torch_version": torch.__version__}
    for j, ks in enumerate(((1, 5), (1, 3, 5, 12), (2,), (10,))):
        tensors.append(("ks%d" % j, torch.tensor(ks, dtype=torch.int64)))
        tensors.append(("counts%d" % j, torch.tensor(timm_accuracy(logits, targets, ks), dtype=torch.int64)))
    meta["cases"] = "4"
    total += write_safetensors(os.path.join(out_dir, "topk_ties.safetensors"), tensors, meta)
    names.append("topk_ties")
    return total, names


def main(argv):
    args = argv[1:]
    demo = False
    if args and args[0] == "--demo":
        demo = True
        args = args[1:]
    if len(args) != 1:
        sys.stderr.write("usage: make_fixtures.py [--demo] OUT_DIR\n")
        return 1
    out_dir = args[0]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(2)

    if demo:
        specs = [
            ("demo_se", _c("se", F32, (8, 256, 14, 14), SG, False)),
            ("demo_ese", _c("ese", F32, (8, 256, 14, 14), HS, False)),
        ]
    else:
        specs = [(case_name(s), s) for s in CASES]
        specs += [(model_case_name(s), s) for s in MODEL_CASES]
        names = [n for n, _ in specs]
        if len(set(names)) != len(names):
            raise RuntimeError("duplicate case names")

    total = 0
    for name, spec in specs:
        if spec["module"] in ("se", "ese"):
            total += run_case(spec, name, out_dir)
        else:
            total += run_model_case(spec, name, out_dir)

    if not demo:
        total += write_vovnet_configs(out_dir)
        training_bytes, training = write_training_cases(out_dir)
        total += training_bytes
        group_bytes, group_cases = write_group_cases(out_dir)
        total += group_bytes
        resnet_bytes, resnet_cases = resnet_fixtures.write_all(out_dir, write_safetensors, case_seed)
        total += resnet_bytes
        ddp_bytes, _ = ddp_fixtures.write_all(out_dir, write_safetensors)  # ddp_sgd.safetensors
        total += ddp_bytes
        manifest = {"torch_version": torch.__version__,
                    "cases": [n for n, _ in specs] + resnet_cases,
                    "training": training,
                    "groups": group_cases}
        tmp = os.path.join(out_dir, "manifest.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        os.replace(tmp, os.path.join(out_dir, "manifest.json"))

    print("make_fixtures: wrote %d %s (%.1f MB) to %s" % (
        len(specs), "demo files" if demo else "cases", total / 1e6, out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
