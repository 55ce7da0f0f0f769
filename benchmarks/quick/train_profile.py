"""Where a training step goes in PyTorch eager (channels-last, SGD with Nesterov momentum), by
ATen operator: the op structure sekit's composition shares, so it shows what a faster training
step has to cut. MODEL: demo (the Fashion-MNIST network, batch 128; the default) or a timm
VoVNet name (224x224, batch 8).
    OMP_WAIT_POLICY=passive /usr/bin/python3 benchmarks/quick/train_profile.py [THREADS [MODEL]]"""
import sys

import torch

sys.path.insert(0, "src/test/python")
import vovnet_ref  # noqa: E402

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
model = sys.argv[2] if len(sys.argv) > 2 else "demo"
if model == "demo":
    m = vovnet_ref.small_vovnet(attn="ese")
    x = torch.randn(128, 1, 28, 28)
else:
    m = vovnet_ref.VovNet(vovnet_ref.CONFIGS[model])
    x = torch.randn(8, 3, 224, 224)
m = m.to(memory_format=torch.channels_last).train()
opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True)
x = x.contiguous(memory_format=torch.channels_last)
y = torch.arange(x.shape[0]) % 10


def step():
    loss = torch.nn.functional.cross_entropy(m(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


for _ in range(3):
    step()
with torch.autograd.profiler.profile() as p:
    for _ in range(5):
        step()
print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
