"""Writes the weights every engine of the network benchmark runs (run.sh): for each model,
the PyTorch statement of timm's VoVNet (src/test/python/vovnet_ref.py) with seeded random
weights and BatchNorm statistics, saved as
  OUT/MODEL.safetensors  state dict (timm names) + "check.input" / "check.output" (PyTorch's
                         logits for one image, so each engine can report its error)
  OUT/MODEL.onnx         the same network exported by torch.onnx (opset 13, dynamic batch)
Usage: prepare.py OUT MODEL..."""
import os
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "src", "test", "python"))
import make_fixtures  # noqa: E402
import vovnet_ref  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for model in sys.argv[2:]:
    st = os.path.join(out, model + ".safetensors")
    onnx = os.path.join(out, model + ".onnx")
    if os.path.exists(st) and os.path.exists(onnx):
        continue
    torch.manual_seed(0)
    net = vovnet_ref.VovNet(vovnet_ref.CONFIGS[model]).eval()
    make_fixtures.randomise_batchnorm(net)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        y = net(x)
    tensors = list(net.state_dict().items()) + [("check.input", x), ("check.output", y)]
    make_fixtures.write_safetensors(st, tensors, {"format": "pt", "model": model})
    torch.onnx.export(net, x, onnx, opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    print("wrote %s and %s" % (st, onnx), file=sys.stderr)
