#!/usr/bin/env bash
# The image-folder pipeline against the in-memory one, with the same settings:
#   benchmarks/finetune/run.sh [EPOCHS] [THREADS]      (defaults: 1 epoch, 2 threads)
# Writes Fashion-MNIST (Debian's IDX files) out as a folder of PNG files in torchvision's
# layout (benchmarks/target/fm-folder/{train,val}/CLASS/N.png, each image padded with black to
# 32x32, as the in-memory path pads it), makes a timm-layout checkpoint of
# ese_vovnet19b_slim_dw with random weights, and fine-tunes it twice with `sekit finetune`:
# from the IDX files (in memory) and from the PNG folder (decoded on the loader's threads,
# timm's evaluation transform at 32 with crop_pct 1, so the same pixels). Prints both runs'
# per-epoch lines and their final top-1/top-5.
set -euo pipefail
cd "$(dirname "$0")/../.."
epochs="${1:-1}"
threads="${2:-2}"
out=benchmarks/target
mkdir -p "$out"
/usr/bin/python3 - "$out" <<'PY'
import gzip, os, sys
import numpy as np
from PIL import Image
sys.path.insert(0, "src/test/python")
import torch, vovnet_ref, make_fixtures
out = sys.argv[1]
src = "/usr/share/datasets/fashion-mnist"
def idx(name):
    with gzip.open(os.path.join(src, name + ".gz")) as f:
        return f.read()
for split, prefix in (("train", "train"), ("val", "t10k")):
    root = os.path.join(out, "fm-folder", split)
    if os.path.isdir(root):
        continue
    images = np.frombuffer(idx(prefix + "-images-idx3-ubyte"), np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(idx(prefix + "-labels-idx1-ubyte"), np.uint8, offset=8)
    for i, (img, y) in enumerate(zip(images, labels)):
        d = os.path.join(root, str(y))
        os.makedirs(d, exist_ok=True)
        padded = np.zeros((32, 32), np.uint8)
        padded[2:30, 2:30] = img
        Image.fromarray(padded, "L").save(os.path.join(d, "%05d.png" % i))
w = os.path.join(out, "ese_vovnet19b_slim_dw-random.safetensors")
if not os.path.exists(w):
    torch.manual_seed(0)
    net = vovnet_ref.VovNet(vovnet_ref.CONFIGS["ese_vovnet19b_slim_dw"], in_chans=3, num_classes=1000)
    make_fixtures.write_safetensors(w, list(net.state_dict().items()), {"format": "pt"})
PY
common=(--model ese_vovnet19b_slim_dw --weights "$out/ese_vovnet19b_slim_dw-random.safetensors" --epochs "$epochs"
  --threads "$threads" --no-progress)
echo "== in memory (IDX files)"
time ./sekit finetune "${common[@]}" --data /usr/share/datasets/fashion-mnist --classes 10 --out "$out/ft-memory"
echo "== image folder (PNG files)"
time ./sekit finetune "${common[@]}" --data "$out/fm-folder" --size 32 --crop-pct 1 --no-augment --out "$out/ft-folder"
