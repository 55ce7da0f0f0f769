import sys, time, torch, torchvision
torch.set_num_threads(int(sys.argv[1]))
se = torchvision.ops.SqueezeExcitation(256, 16)
x = torch.randn(32, 256, 56, 56)
with torch.no_grad():
    for _ in range(10): se(x)
    t = []
    for _ in range(30):
        t0 = time.perf_counter(); se(x); t.append((time.perf_counter() - t0) * 1e3)
t.sort()
print("pytorch eager SE fwd N=32 C=256 56x56 f32 threads=%d: median %.2f ms (min %.2f)" % (torch.get_num_threads(), t[15], t[0]))
