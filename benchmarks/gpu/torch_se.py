"""PyTorch's side of the GPU benchmark: timm's SEModule and EffectiveSEModule on the shapes,
dtypes and layouts of gpu_driver.cpp, eager and (for the first shape) torch.compile (inductor),
timed as gpu_driver times: 5 warm-up calls, then the mean of 50, synchronised. Prints a
Markdown table. Usage: python3 benchmarks/gpu/torch_se.py [--no-compile]
"""
import sys
import time

import torch
from timm.layers import EffectiveSEModule, SEModule

SHAPES = [(32, 256, 56, 56), (8, 512, 28, 28), (64, 1024, 7, 7), (1, 1024, 7, 7)]
DTYPES = [("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16)]
FORMATS = [("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)]


def ms(fn, reps=50):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def timings(module, x, g):
    def fwd():
        with torch.no_grad():
            module(x)

    def fwd_bwd():
        module(x).backward(g)
        x.grad = None

    x.requires_grad_(False)
    f = ms(fwd)
    x.requires_grad_(True)
    b = ms(fwd_bwd)
    x.requires_grad_(False)
    return f, b


def main():
    compile_ok = "--no-compile" not in sys.argv
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print("| block | dtype | format | shape | eager fwd ms | eager fwd+bwd ms | compiled fwd ms | compiled fwd+bwd ms |")
    print("|---|---|---|---|---|---|---|---|")
    t0 = time.time()
    for dname, dtype in DTYPES:
        for shape in SHAPES:
            for fname, fmt in FORMATS:
                for block in ("eSE", "SE"):
                    c = shape[1]
                    m = EffectiveSEModule(c) if block == "eSE" else SEModule(c, rd_ratio=1 / 16, rd_divisor=8)
                    m = m.cuda().to(dtype).to(memory_format=fmt)
                    x = torch.randn(shape, device="cuda", dtype=dtype).contiguous(memory_format=fmt)
                    g = torch.randn(shape, device="cuda", dtype=dtype).contiguous(memory_format=fmt)
                    ef, eb = timings(m, x, g)
                    cf = cb = float("nan")
                    # inductor compiles each case for tens of seconds: the first shape only.
                    if compile_ok and shape == SHAPES[0] and time.time() - t0 < 90:
                        # Every case compiles the same forward code: without a reset,
                        # dynamo reaches its recompile limit and silently runs eager.
                        torch._dynamo.reset()
                        cm = torch.compile(m)
                        cf, cb = timings(cm, x, g)
                    print("| %s | %s | %s | %s | %.3f | %.3f | %.3f | %.3f |" % (
                        block, dname, fname, "x".join(map(str, shape)), ef, eb, cf, cb), flush=True)


if __name__ == "__main__":
    main()
