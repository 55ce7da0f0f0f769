#!/usr/bin/python3
"""Write reference fixtures for sekit's image tests: PIL decoding, PIL's bicubic resize,
torchvision's (= timm's) evaluation and training transforms, torchvision's ImageFolder
order, and a classifier's top-5 through PyTorch.

Usage (run by the Maven build with Debian's interpreter):

    /usr/bin/python3 src/test/python/image_fixtures.py OUT_DIR

Photographs come from Debian's lomiri-wallpapers package (real JPEG photos in
/usr/share/backgrounds); smaller
JPEG, PNG and BMP files in every colour mode PIL writes are made from the first one.
Everything is written under OUT_DIR/images/:

  files/NAME                  the image file itself
  NAME.rgb                    PIL's Image.open(f).convert("RGB"), raw bytes (H x W x 3)
  resize/NAME.WxH.rgb         PIL resize to W x H with Image.BICUBIC of that RGB image
  eval/NAME.S_C.f32           torchvision Resize(floor(S / C), BICUBIC), CenterCrop(S),
                              ToTensor, Normalize(ImageNet): raw float32, 3 x S x S
  crop/NAME.T_L_H_W_F.rgb     F.resized_crop(img, T, L, H, W, [224, 224], BICUBIC),
                              then F.hflip when F = 1: raw bytes 224 x 224 x 3
  files/damaged/NAME.K.jpg    JPEGs with damaged entropy-coded data; index.json's "damaged"
                              says whether PIL decodes each (then damaged/NAME.K.jpg.rgb)
  folder/...                  a small image folder; folder.json holds torchvision's
                              ImageFolder classes, class_to_idx and samples
  predict.safetensors         random weights of ese_vovnet19b_slim_dw (timm statement),
                              BatchNorm statistics from a batch of the photographs
  index.json                  what was written, with sizes, and for each photograph the
                              classifier's top-5 (indices and softmax probabilities)
"""

import glob
import json
import math
import os
import shutil
import sys
import zlib

try:
    import numpy as np
    import torch
    import torchvision
    from PIL import Image
    from torchvision import transforms
    import torchvision.transforms.functional as F
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write("image_fixtures.py needs PyTorch, torchvision and PIL for /usr/bin/python3 (%s); "
                     "install them with: apt-get install -y python3-torch python3-torchvision\n" % exc)
    sys.exit(2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures  # noqa: E402
import vovnet_ref  # noqa: E402

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
BICUBIC = transforms.InterpolationMode.BICUBIC


# Three of the package's photographs: 4:2:0 progressive (portrait), 4:4:4 progressive and
# 4:2:0 baseline, 1.5 to 6.3 megapixels.
PREFERRED = ["friends_by_Aitzol_Berasategi.jpg", "Picture_1A_by_freespace.jpg", "analogpattern_by_Peter_Nerlich.jpg"]


def photos():
    """Photographs of Debian's lomiri-wallpapers (and the wallpaper packages it pulls in)."""
    found = sorted(glob.glob("/usr/share/backgrounds/*.jpg"))
    if not found:
        sys.stderr.write("image_fixtures.py needs the photographs of Debian's lomiri-wallpapers package: "
                         "apt-get install -y lomiri-wallpapers\n")
        sys.exit(2)
    by_name = {os.path.basename(p): p for p in found}
    chosen = [by_name[n] for n in PREFERRED if n in by_name]
    if len(chosen) < 2:  # another release of the package: its two smallest files
        chosen = sorted(found, key=lambda p: (os.path.getsize(p), p))[:2]
    return chosen


def rgb_bytes(img):
    return np.asarray(img.convert("RGB"), dtype=np.uint8).tobytes()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def make_variants(photo, files_dir):
    """Small files in the modes and encodings a user's folder may hold, from one photo."""
    base = Image.open(photo).convert("RGB").resize((203, 157), Image.BICUBIC)
    made = []

    def save(name, img, **kw):
        path = os.path.join(files_dir, name)
        img.save(path, **kw)
        made.append(name)

    save("q90_420.jpg", base, quality=90, subsampling=2)
    save("q95_422.jpg", base, quality=95, subsampling=1)
    save("q75_444.jpg", base, quality=75, subsampling=0)
    save("progressive.jpg", base, quality=85, progressive=True)
    save("gray.jpg", base.convert("L"), quality=90)
    save("cmyk.jpg", base.convert("CMYK"), quality=90)
    odd = base.resize((97, 61), Image.BICUBIC)
    save("odd_420.jpg", odd, quality=80, subsampling=2)
    save("rgb.png", base)
    rgba = base.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(base.size))
    save("rgba.png", rgba)
    save("gray.png", base.convert("L"))
    save("gray_alpha.png", rgba.convert("LA"))
    save("palette.png", base.quantize(colors=50))
    save("bilevel.png", base.convert("1"))
    save("gray16.png", base.convert("L").point(lambda v: v * 1.1 + 3).convert("I").point(lambda v: v * 2))
    save("rgb.bmp", base)
    for name, layout in (("rgb565.bmp", 565), ("rgb555.bmp", 555)):
        write(os.path.join(files_dir, name), bmp16(odd, layout))
        made.append(name)
    return made


def bmp16(img, layout):
    """A 16-bit BMP (PIL reads them, but does not write them): 5-6-5 with BI_BITFIELDS
    masks, or 5-5-5 as BI_RGB, bottom-up rows padded to 4 bytes."""
    import struct
    a = np.asarray(img.convert("RGB"), dtype=np.uint16)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    if layout == 565:
        px = ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3)
    else:
        px = ((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3)
    h, w = px.shape
    stride = (2 * w + 3) // 4 * 4
    rows = b"".join(px[y].astype("<u2").tobytes().ljust(stride, b"\0") for y in range(h - 1, -1, -1))
    masks = struct.pack("<3I", 0xF800, 0x07E0, 0x001F) if layout == 565 else b""
    offset = 14 + 40 + len(masks)
    header = struct.pack("<2sIHHI", b"BM", offset + len(rows), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 16, 3 if layout == 565 else 0, len(rows), 2835, 2835, 0, 0)
    return header + info + masks + rows


def damaged_jpegs(files_dir, names, out):
    """JPEGs with bytes of their entropy-coded data overwritten (seeded), some also cut short,
    and PIL's verdict: PIL ignores libjpeg's warnings (a bad Huffman code, a scan that ends
    early) and refuses a file on libjpeg's errors ("broken data stream") and when its data
    ends before the image does ("image file is truncated"). 4 of each kind per file."""
    import io
    import random
    rng = random.Random(29)
    cases = []
    for name in names:
        kept = {True: 0, False: 0}
        base = open(os.path.join(files_dir, name), "rb").read()
        i = base.index(b"\xff\xda")
        start = i + 2 + (base[i + 2] << 8 | base[i + 3])
        for k in range(200):
            b = bytearray(base)
            for _ in range(rng.randint(1, 20)):
                b[rng.randrange(start, len(b) - 2)] = rng.randrange(256)
            if k % 4 == 3:  # damaged and cut short
                b = b[:rng.randrange(start, len(b))]
            elif k == 1:  # only the EOI marker missing: truncated for PIL too
                b = bytearray(base[:-2])
            try:
                rgb = rgb_bytes(Image.open(io.BytesIO(bytes(b))))
                ok, error = True, None
            except OSError as exc:
                ok, error, rgb = False, str(exc), None
            if kept[ok] >= 4 or (not ok and "broken data stream" not in error and "truncated" not in error):
                continue
            kept[ok] += 1
            dname = "damaged/%s.%d.jpg" % (os.path.splitext(name)[0], k)
            write(os.path.join(files_dir, dname), bytes(b))
            if ok:
                write(os.path.join(out, dname + ".rgb"), rgb)
            cases.append({"name": dname, "pil_decodes": ok, "pil_error": error})
    return cases


def write_folder(out_dir):
    """A small ImageFolder tree with names that test torchvision's ordering."""
    root = os.path.join(out_dir, "folder")
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.RandomState(0)

    def img(path, w, h, fmt):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        a = rng.randint(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(a).save(path, fmt)

    for cls in ["zebra", "Apple", "apple", "b-c", "b_c", "b.c"]:
        img(os.path.join(root, cls, "b.png"), 40, 30, "PNG")
        img(os.path.join(root, cls, "a.JPG"), 31, 45, "JPEG")
        img(os.path.join(root, cls, "sub", "c.jpeg"), 64, 48, "JPEG")
        img(os.path.join(root, cls, "sub-x", "d.png"), 20, 50, "PNG")
        img(os.path.join(root, cls, "A.Png"), 33, 33, "PNG")
        with open(os.path.join(root, cls, "notes.txt"), "w") as f:
            f.write("not an image\n")
    ds = torchvision.datasets.ImageFolder(root)
    rel = [[os.path.relpath(p, root), t] for p, t in ds.samples]
    tf = transforms.Compose([transforms.Resize(36, interpolation=BICUBIC), transforms.CenterCrop(32),
                             transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    first = tf(ds.loader(ds.samples[0][0]))
    write(os.path.join(out_dir, "folder_sample0.f32"), first.numpy().astype("<f4").tobytes())
    return {"classes": ds.classes, "class_to_idx": ds.class_to_idx, "samples": rel}


def eval_tensor(img, size, crop_pct):
    scale = int(math.floor(size / crop_pct))
    tf = transforms.Compose([transforms.Resize(scale, interpolation=BICUBIC), transforms.CenterCrop(size),
                             transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    return tf(img)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: image_fixtures.py OUT_DIR\n")
        return 1
    out = os.path.join(argv[1], "images")
    shutil.rmtree(out, ignore_errors=True)
    files_dir = os.path.join(out, "files")
    os.makedirs(files_dir)
    torch.set_num_threads(2)
    index = {"pil_version": Image.__version__, "torchvision_version": torchvision.__version__,
             "images": [], "resize": [], "eval": [], "crop": []}

    names = []
    for i, p in enumerate(photos()):
        name = "photo%d%s" % (i, os.path.splitext(p)[1].lower())
        shutil.copyfile(p, os.path.join(files_dir, name))
        names.append(name)
    names += make_variants(os.path.join(files_dir, names[0]), files_dir)

    decoded = {}
    for name in names:
        img = Image.open(os.path.join(files_dir, name)).convert("RGB")
        decoded[name] = img
        write(os.path.join(out, name + ".rgb"), rgb_bytes(img))
        index["images"].append({"name": name, "width": img.width, "height": img.height,
                                "mode": Image.open(os.path.join(files_dir, name)).mode})

    # PIL's bicubic resize: strong and mild down-scaling, up-scaling, one axis at a time.
    photo = decoded[names[0]]
    small = decoded["q90_420.jpg"]
    resize_cases = [(names[0], photo.width // 9, photo.height // 9), (names[0], 341, 256),
                    ("q90_420.jpg", 150, 100), ("q90_420.jpg", 203, 80), ("q90_420.jpg", 64, 157),
                    ("q90_420.jpg", 401, 333), ("odd_420.jpg", 500, 61), ("odd_420.jpg", 13, 7),
                    ("palette.png", 99, 201)]
    for name, w, h in resize_cases:
        r = decoded[name].resize((w, h), Image.BICUBIC)
        write(os.path.join(out, "resize", "%s.%dx%d.rgb" % (name, w, h)), rgb_bytes(r))
        index["resize"].append({"name": name, "width": w, "height": h})

    # timm's evaluation transform (Resize of the shorter side + CenterCrop), through torchvision.
    eval_cases = [(names[0], 224, 0.875), (names[-1] if len(names) > 1 else names[0], 224, 0.875),
                  ("q90_420.jpg", 224, 0.875), ("odd_420.jpg", 160, 0.95), ("gray.png", 96, 0.9),
                  ("cmyk.jpg", 224, 0.875)]
    for name, size, crop_pct in eval_cases:
        t = eval_tensor(decoded[name], size, crop_pct)
        write(os.path.join(out, "eval", "%s.%d_%s.f32" % (name, size, crop_pct)),
              t.numpy().astype("<f4").tobytes())
        index["eval"].append({"name": name, "size": size, "crop_pct": crop_pct})

    # The deterministic part of the training transform: a crop box and a flip.
    crop_cases = [(names[0], 10, 20, photo.height // 2, photo.width // 3, 0),
                  (names[0], 0, 0, photo.height, photo.width, 1),
                  ("q90_420.jpg", 5, 7, 100, 120, 1), ("q90_420.jpg", 150, 190, 7, 13, 0),
                  ("odd_420.jpg", 0, 40, 61, 57, 1)]
    for name, top, left, h, w, flip in crop_cases:
        r = F.resized_crop(decoded[name], top, left, h, w, [224, 224], interpolation=BICUBIC)
        if flip:
            r = F.hflip(r)
        write(os.path.join(out, "crop", "%s.%d_%d_%d_%d_%d.rgb" % (name, top, left, h, w, flip)), rgb_bytes(r))
        index["crop"].append({"name": name, "top": top, "left": left, "height": h, "width": w, "flip": flip})

    index["folder"] = write_folder(out)
    index["damaged"] = damaged_jpegs(files_dir, ["q90_420.jpg", "progressive.jpg", "gray.jpg"], out)

    # A classifier with random weights (timm's ese_vovnet19b_slim_dw, restated), eval mode.
    # Its BatchNorm statistics are those of a batch of the photographs (so that the logits
    # depend on the image: with arbitrary statistics the features collapse to a constant),
    # its classifier scaled up so that the top classes are well apart.
    torch.manual_seed(zlib.crc32(b"predict"))
    net = vovnet_ref.VovNet(vovnet_ref.CONFIGS["ese_vovnet19b_slim_dw"], in_chans=3, num_classes=1000)
    make_fixtures.randomise_batchnorm(net)
    photo_names = [n for n in names if n.startswith("photo")]
    xs = [eval_tensor(decoded[n], 224, 0.875).unsqueeze(0) for n in photo_names]
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    net.train()
    with torch.no_grad():
        net(torch.cat(xs + [x.flip(3) for x in xs]))
        net.head.fc.weight.mul_(30.0)
    net.eval()
    make_fixtures.write_safetensors(os.path.join(out, "predict.safetensors"),
                                    list(net.state_dict().items()), {"model": "ese_vovnet19b_slim_dw"})
    index["predict"] = []
    for name, x in zip(photo_names, xs):
        with torch.no_grad():
            probs = torch.softmax(net(x)[0], 0)
        top = torch.topk(probs, 6)
        index["predict"].append({"model": "ese_vovnet19b_slim_dw", "image": name, "size": 224, "crop_pct": 0.875,
                                 "top5": [int(i) for i in top.indices[:5]],
                                 "probs": [float(p) for p in top.values[:5]], "sixth": float(top.values[5])})

    with open(os.path.join(out, "index.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1)
    print("image_fixtures: %d images, %d resizes, %d eval and %d crop cases, %d folder samples in %s" % (
        len(index["images"]), len(index["resize"]), len(index["eval"]), len(index["crop"]),
        len(index["folder"]["samples"]), out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
