#!/usr/bin/python3
"""Write reference fixtures for the sekit SE / eSE tests from real PyTorch runs.

Usage (run by the Maven build with Debian's interpreter):

    /usr/bin/python3 src/test/python/make_fixtures.py OUT_DIR
    /usr/bin/python3 src/test/python/make_fixtures.py --demo OUT_DIR

Each case is written as OUT_DIR/<case>.safetensors (format written by hand,
the `safetensors` package is not needed): an 8-byte little-endian header
length n, n bytes of UTF-8 JSON header (padded with spaces so n % 8 == 0),
then the tensors packed back-to-back, little-endian, row-major.  All tensors
of one file share the case dtype, so every tensor starts at a multiple of its
element size in the file and the offsets are gap-free, as the safetensors
specification requires.

Tensors per case: input, output, grad_output, grad_input, param.<name> and
grad.<name> for every module parameter.  Backward is Y.backward(G), i.e. the
gradients of loss = sum(Y * G).

In normal mode OUT_DIR/manifest.json lists every case written.

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

BASE_SEED = 20240611
WEIGHT_SCALE = 0.5

DTYPES = {
    "float32": (torch.float32, "F32", "<f4"),
    "float64": (torch.float64, "F64", "<f8"),
}
DTYPE_TAG = {"float32": "f32", "float64": "f64"}


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
        for _, (tdt, sdt, ndt) in DTYPES.items():
            if t.dtype == tdt:
                st_dtype, np_dtype = sdt, ndt
        if st_dtype is None:
            raise ValueError("unsupported dtype %s for %s" % (t.dtype, name))
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
        names = [n for n, _ in specs]
        if len(set(names)) != len(names):
            raise RuntimeError("duplicate case names")

    total = 0
    for name, spec in specs:
        total += run_case(spec, name, out_dir)

    if not demo:
        manifest = {"torch_version": torch.__version__,
                    "cases": [n for n, _ in specs]}
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
