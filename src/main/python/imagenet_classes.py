#!/usr/bin/python3
"""Writes src/main/resources/dev/sekit/data/imagenet_classes.txt: ImageNet-1k's class
names in logit order, one a line, as torchvision lists them. Run once with Debian's
interpreter (python3-torchvision):

    /usr/bin/python3 src/main/python/imagenet_classes.py
"""
import os
import sys

from torchvision.models._meta import _IMAGENET_CATEGORIES

names = list(_IMAGENET_CATEGORIES)
if len(names) != 1000 or any("\n" in n or not n.strip() for n in names):
    sys.exit("unexpected category list: %d names" % len(names))
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "resources", "dev", "sekit", "data",
                   "imagenet_classes.txt")
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w", encoding="utf-8") as f:
    f.write("\n".join(names) + "\n")
print("wrote %d names to %s" % (len(names), os.path.normpath(out)))
