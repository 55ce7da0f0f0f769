"""Quick timing of a VoVNet forward (eval, no grad) in PyTorch eager; see run.sh.
The model is the PyTorch statement of timm's VovNet used for the test fixtures."""
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "test", "python"))
import vovnet_ref  # noqa: E402

threads = int(sys.argv[1])
model = sys.argv[2] if len(sys.argv) > 2 else "ese_vovnet19b_dw"
batches = [int(b) for b in (sys.argv[3] if len(sys.argv) > 3 else "1,8").split(",")]
torch.set_num_threads(threads)
net = vovnet_ref.VovNet(vovnet_ref.CONFIGS[model]).eval()
with torch.no_grad():
    for n in batches:
        x = torch.randn(n, 3, 224, 224)
        reps = 30 if n == 1 else 10
        for _ in range(3):
            net(x)
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            net(x)
            t.append((time.perf_counter() - t0) * 1e3)
        t.sort()
        print("pytorch eager %s fwd batch %d 224x224 f32 threads=%d: median %.1f ms (min %.1f)"
              % (model, n, torch.get_num_threads(), t[reps // 2], t[0]))
print("pytorch eager peak RSS: %d kB" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
