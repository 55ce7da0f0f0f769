#!/usr/bin/python3
"""Data-parallel fixtures: a small network without BatchNorm trained for a few SGD steps by
PyTorch's own DistributedDataParallel (torch.distributed, Gloo, 2 processes on loopback).

write_all(out_dir, write) writes OUT_DIR/ddp_sgd.safetensors with
  init.<key>    the initial state dict (every rank of sekit loads it on rank 0 only)
  x, y          the global batches of every step: x [steps, batch, C, H, W], y [steps, batch]
  ddp.<key>     the state dict after the steps, 2 processes x half of each batch (rank r
                takes rows [r * batch / 2, (r + 1) * batch / 2)), PyTorch DDP
  single.<key>  the state dict after the same steps in one process with the whole batches
and metadata: steps, batch, lr, momentum, weight_decay, world_size, channels.

The network (names as sekit's Sequential of SqueezeExcitation, EffectiveSqueezeExcitation
and ClassifierHead): 0 = torchvision's SqueezeExcitation(C, 8) (ReLU, sigmoid),
1 = timm's EffectiveSEModule(C) (hard sigmoid), 2 = global average pool + Linear(C, 10)
named "fc". Loss: mean cross-entropy; torch.optim.SGD with momentum and weight decay.

Run as a script, it is one DDP worker:  ddp_fixtures.py RANK WORLD PORT IN.pt OUT.pt
"""

import os
import socket
import subprocess
import sys

import torch
import torch.nn.functional as F

CHANNELS = 8
CLASSES = 10
STEPS = 5
BATCH = 8
SIZE = (5, 5)
LR = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
WORLD = 2
SEED = 1212


class EffectiveSE(torch.nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.fc = torch.nn.Conv2d(channels, channels, 1, bias=True)

    def forward(self, x):
        return x * F.hardsigmoid(self.fc(x.mean((2, 3), keepdim=True)))


class Head(torch.nn.Module):
    def __init__(self, channels, classes):
        super().__init__()
        self.fc = torch.nn.Linear(channels, classes)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


def build():
    from torchvision.ops import SqueezeExcitation
    return torch.nn.Sequential(
        SqueezeExcitation(CHANNELS, 8, activation=torch.nn.ReLU, scale_activation=torch.nn.Sigmoid),
        EffectiveSE(CHANNELS),
        Head(CHANNELS, CLASSES))


def train(model, xs, ys, rank, world):
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    per = BATCH // world
    for k in range(STEPS):
        x = xs[k][rank * per:(rank + 1) * per]
        y = ys[k][rank * per:(rank + 1) * per]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def worker(rank, world, port, inp, out):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    torch.set_num_threads(1)
    # PyTorch 2.4+ asks for a libuv store by default, which a build without libuv (Debian 13's
    # 2.6) refuses; the plain TCP store is what every release has (and what sekit uses).
    os.environ["USE_LIBUV"] = "0"
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=world)
    data = torch.load(inp)
    model = build()
    if rank == 0:
        model.load_state_dict(data["init"])  # the other rank starts elsewhere: DDP broadcasts rank 0's
    ddp = DistributedDataParallel(model)
    train(ddp, data["x"], data["y"], rank, world)
    if rank == 0:
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out)
    dist.barrier()
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_all(out_dir, write):
    """Writes ddp_sgd.safetensors with `write(path, tensors, metadata)`; returns (bytes, case names)."""
    torch.manual_seed(SEED)
    model = build()
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    xs = torch.randn(STEPS, BATCH, CHANNELS, *SIZE)
    ys = torch.randint(0, CLASSES, (STEPS, BATCH))
    single = build()
    single.load_state_dict(init)
    train(single, xs, ys, 0, 1)

    tmp = os.path.join(out_dir, "ddp_tmp")
    os.makedirs(tmp, exist_ok=True)
    inp, out = os.path.join(tmp, "in.pt"), os.path.join(tmp, "out.pt")
    torch.save({"init": init, "x": xs, "y": ys}, inp)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for attempt in range(3):  # a free port can be taken between the probe and the bind
        port = free_port()
        procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), str(r), str(WORLD), str(port), inp, out],
                                  env=env) for r in range(WORLD)]
        codes = [p.wait(timeout=300) for p in procs]
        if all(c == 0 for c in codes):
            break
    else:
        raise RuntimeError("torch.distributed DDP workers failed with exit codes %s" % codes)
    ddp = torch.load(out)

    tensors = [("init." + k, v) for k, v in init.items()]
    tensors += [("x", xs), ("y", ys)]
    tensors += [("ddp." + k, v) for k, v in ddp.items()]
    tensors += [("single." + k, v.detach()) for k, v in single.state_dict().items()]
    meta = {"steps": STEPS, "batch": BATCH, "lr": LR, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY,
            "world_size": WORLD, "channels": CHANNELS, "classes": CLASSES,
            "reference": "torch.nn.parallel.DistributedDataParallel, gloo, %d processes" % WORLD}
    size = write(os.path.join(out_dir, "ddp_sgd.safetensors"), tensors, meta)
    for f in (inp, out):
        os.remove(f)
    os.rmdir(tmp)
    return size, ["ddp_sgd"]


if __name__ == "__main__":
    worker(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
