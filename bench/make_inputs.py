#!/usr/bin/env python3
"""Makes large benchmark inputs from ../shared/images (Pillow, bicubic): square N x N content and
style PNGs, and a 3840x2160 content for the ultra-resolution job. Usage: make_inputs.py OUTDIR"""
import os, sys
from PIL import Image

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/stylist-bench"
here = os.path.dirname(os.path.abspath(__file__))
images = os.path.normpath(os.path.join(here, "..", "..", "shared", "images"))
os.makedirs(out, exist_ok=True)
content = Image.open(os.path.join(images, "content", "golden_gate.jpg")).convert("RGB")
style = Image.open(os.path.join(images, "style", "brushstrokes.jpg")).convert("RGB")
for n in (512, 1024, 2048):
    content.resize((n, n), Image.BICUBIC).save(os.path.join(out, f"content-{n}.png"))
    style.resize((n, n), Image.BICUBIC).save(os.path.join(out, f"style-{n}.png"))
content.resize((3840, 2160), Image.BICUBIC).save(os.path.join(out, "content-3840x2160.png"))
print(out)
