"""PyTorch eager baseline of the benchmark suite: the same blocks and shapes as BlockBench,
VoVNetBench and block_driver.cpp, on Debian's PyTorch (the same libtorch as sekit).
Prints one JSON object {"key": milliseconds}.   Usage: eager.py THREADS [quick]"""
import json
import os
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "test", "python"))
import vovnet_ref as v  # noqa: E402

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
secs = 0.2 if len(sys.argv) > 2 and sys.argv[2] == "quick" else 1.0
torch.set_num_threads(threads)
torch.manual_seed(0)


def mean_ms(f):
    for _ in range(3):
        f()
    reps, t0 = 0, time.perf_counter()
    while True:
        f()
        reps += 1
        el = time.perf_counter() - t0
        if el >= secs and reps >= 5:
            return el / reps * 1e3


out = {}
SHAPES = ("32,256,56,56", "8,512,28,28", "1,1024,7,7", "1,64,7,7")
OSA_SHAPES = ("1,256,56,56", "1,512,28,28", "1,768,14,14", "1,1024,7,7")
for blk in ("se", "ese", "osa"):
    for sh in (OSA_SHAPES if blk == "osa" else SHAPES):
        s = [int(t) for t in sh.split(",")]
        c = s[1]
        if blk == "se":
            m = torchvision.ops.SqueezeExcitation(c, max(8, int(c / 16 + 4) // 8 * 8))
        elif blk == "ese":
            m = v.EffectiveSE(c)
        else:
            m = v.OsaBlock(c, c // 2, c, 3, True, False, "ese")
        m.eval()
        x = torch.randn(*s)
        xg = torch.randn(*s).requires_grad_()
        g = torch.randn(*s)

        def fwd():
            with torch.no_grad():
                m(x)

        def fb():
            m(xg).backward(g)
            xg.grad = None

        key = "%s_%%s_%s" % (blk, sh.replace(",", "x"))
        out[key % "fwd"] = mean_ms(fwd)
        out[key % "fwdbwd"] = mean_ms(fb)
net = v.VovNet(v.CONFIGS["ese_vovnet19b_dw"]).eval()
for b in (1, 8):
    x = torch.randn(b, 3, 224, 224)

    def f():
        with torch.no_grad():
            net(x)

    out["vovnet_fwd_b%d" % b] = mean_ms(f)
print(json.dumps(out))
