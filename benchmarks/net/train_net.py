"""Training steps per second in PyTorch eager (the network benchmark of run.sh; TrainBench.java
is the sekit side): forward, cross-entropy with label smoothing 0.1, backward, gradient
clipping, SGD with Nesterov momentum, on fixed random batches. MODEL "demo" is the
Fashion-MNIST network (the SmallVoVNet with eSE, 1x28x28, 10 classes), anything else a timm
VoVNet (vovnet_ref.py) at 224x224 with 1000 classes. LAYOUT is nchw or cl (channels-last).
Prints one JSON line.   Usage: train_net.py MODEL LAYOUT BATCH THREADS STEPS"""
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "src", "test", "python"))
import vovnet_ref as v  # noqa: E402

model, layout, batch, threads, steps = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
torch.set_num_threads(threads)
torch.manual_seed(0)


if model == "demo":
    net = v.small_vovnet("ese")
    x = torch.randn(batch, 1, 28, 28)
    classes = 10
else:
    net = v.VovNet(v.CONFIGS[model])
    x = torch.randn(batch, 3, 224, 224)
    classes = 1000
y = torch.tensor([(i * 7) % classes for i in range(batch)])
if layout == "cl":
    net = net.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
net.train()
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
t = []
for i in range(steps + 3):
    t0 = time.perf_counter()
    loss = F.cross_entropy(net(x), y, label_smoothing=0.1)
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    opt.step()
    if i >= 3:
        t.append((time.perf_counter() - t0) * 1e3)
t.sort()
m = t[len(t) // 2]
print(json.dumps({"engine": "pytorch_train_" + layout, "model": model, "batch": batch,
                  "threads": torch.get_num_threads(), "median_ms": m, "min_ms": t[0], "steps_per_s": 1000 / m,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
