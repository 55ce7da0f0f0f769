"""One engine of the network benchmark (run.sh) in PyTorch, in its own process (for its
peak resident memory): the forward of MODEL (eval, no grad, 224x224) at BATCH, REPS timed
calls after 3 warm-up calls, on THREADS intra-op threads; prints one JSON line.
  eager_nchw  PyTorch eager, default layout
  eager_cl    PyTorch eager, model and input channels-last
  frozen      torch.jit.trace -> torch.jit.freeze -> torch.jit.optimize_for_inference
Usage: torch_net.py DIR MODEL MODE BATCH THREADS REPS"""
import json
import os
import resource
import sys
import time

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "src", "test", "python"))
import vovnet_ref  # noqa: E402

d, model, mode, batch, threads, reps = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7])
torch.set_num_threads(threads)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        dtype = {"F32": np.float32, "I64": np.int64}[v["dtype"]]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=dtype).reshape(v["shape"]).copy())
    return out


st = read_safetensors(os.path.join(d, model + ".safetensors"))
net = vovnet_ref.VovNet(vovnet_ref.CONFIGS[model]).eval()
net.load_state_dict({k: v for k, v in st.items() if not k.startswith("check.")})
x = torch.randn(batch, 3, 224, 224)
check = st["check.input"]
with torch.no_grad():
    if mode == "eager_cl":
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        check = check.contiguous(memory_format=torch.channels_last)
    elif mode == "frozen":
        net = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, x)))
    y = net(check)
    err = float((y - st["check.output"]).abs().max() / st["check.output"].abs().max())
    for _ in range(3):
        net(x)
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        net(x)
        t.append((time.perf_counter() - t0) * 1e3)
t.sort()
print(json.dumps({"engine": "pytorch_" + mode, "model": model, "batch": batch, "threads": torch.get_num_threads(),
                  "median_ms": t[len(t) // 2], "min_ms": t[0], "times_ms": t, "err": err,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
