"""Training throughput of the Fashion-MNIST demo network in PyTorch eager, for a side-by-side
with sekit (TrainTiming.java): same architecture (SmallVoVNet), same step (gather, random
crop+flip, forward, cross-entropy with label smoothing, backward, clip, SGD Nesterov).
Usage: train_timing.py THREADS [STEPS] [ATTN] [nchw|cl]"""
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "test", "python"))
import vovnet_ref as v  # noqa: E402

threads = int(sys.argv[1])
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
attn = sys.argv[3] if len(sys.argv) > 3 else "ese"
layout = sys.argv[4] if len(sys.argv) > 4 else "nchw"
torch.set_num_threads(threads)
torch.manual_seed(0)


net = v.small_vovnet(attn)

d = "/usr/share/datasets/fashion-mnist"
with gzip.open(os.path.join(d, "train-images-idx3-ubyte.gz")) as f:
    imgs = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
with gzip.open(os.path.join(d, "train-labels-idx1-ubyte.gz")) as f:
    labels = np.frombuffer(f.read(), np.uint8, offset=8)
if layout == "cl":
    net = net.to(memory_format=torch.channels_last)
x_all = (torch.from_numpy(imgs.astype(np.float32)) / 255 - 0.2860) / 0.3530
y_all = torch.from_numpy(labels.astype(np.int64))
opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
g = torch.Generator().manual_seed(0)
B = 128
black = -0.2860 / 0.3530


def step(i):
    idx = torch.randint(0, x_all.shape[0], (B,), generator=g)
    x = x_all.index_select(0, idx)
    y = y_all.index_select(0, idx)
    p = F.pad(x, (2, 2, 2, 2), value=black)
    off = torch.randint(0, 5, (B, 2), generator=g).tolist()
    flip = torch.randint(0, 2, (B,), generator=g).tolist()
    out = torch.empty_like(x)
    for k in range(B):
        c = p[k, :, off[k][0]:off[k][0] + 28, off[k][1]:off[k][1] + 28]
        out[k] = c.flip(-1) if flip[k] else c
    if layout == "cl":
        out = out.contiguous(memory_format=torch.channels_last)
    loss = F.cross_entropy(net(out), y, label_smoothing=0.1)
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    opt.step()
    return loss.item()


net.train()
for i in range(20):
    step(i)
t0 = time.perf_counter()
for i in range(steps):
    step(i)
dt = time.perf_counter() - t0
print("pytorch eager train %s attn=%s %s batch %d threads=%d: %.0f samples/s (%d steps, %.1f s)"
      % ("SmallVoVNet", attn, layout, B, torch.get_num_threads(), steps * B / dt, steps, dt))
