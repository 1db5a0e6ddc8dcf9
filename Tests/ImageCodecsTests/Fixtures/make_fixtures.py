#!/usr/bin/env python3
"""Generates the ImageCodecsTests fixtures. Run once, by hand; CI only reads the output.

    pip install pillow numpy
    python3 Tests/ImageCodecsTests/Fixtures/make_fixtures.py

PNGs are written by the small writer below (exact control over colour type, bit depth,
tRNS and Adam7 interlacing, which Pillow cannot write); JPEGs by Pillow. The pixel
formulas here are repeated in ImageCodecsTests/Fixtures.swift: keep them in sync.
"""
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps

OUT = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------------------
# A minimal PNG writer
# --------------------------------------------------------------------------------------

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_row(samples, depth):
    """samples: flat list of ints for one row."""
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if depth == 8:
        return bytes(samples)
    per = 8 // depth
    out = bytearray()
    for i in range(0, len(samples), per):
        byte = 0
        group = samples[i:i + per]
        for j, s in enumerate(group):
            byte |= s << (8 - depth * (j + 1))
        out.append(byte)
    return bytes(out)


def write_png(name, width, height, color_type, depth, pixel, interlace=False, plte=None, trns=None):
    """pixel(x, y) -> tuple of samples. Rows alternate filter types 0 (None) and 1 (Sub)."""
    ch = CHANNELS[color_type]
    bpp = max(1, ch * depth // 8)

    def encode_rows(xs, ys):
        raw = bytearray()
        for n, y in enumerate(ys):
            samples = []
            for x in xs:
                px = pixel(x, y)
                assert len(px) == ch
                samples.extend(px)
            row = pack_row(samples, depth)
            if n % 2 == 1:
                sub = bytes((row[i] - (row[i - bpp] if i >= bpp else 0)) & 0xFF for i in range(len(row)))
                raw += b"\x01" + sub
            else:
                raw += b"\x00" + row
        return raw

    if interlace:
        raw = bytearray()
        for x0, y0, dx, dy in ADAM7:
            xs, ys = list(range(x0, width, dx)), list(range(y0, height, dy))
            if xs and ys:
                raw += encode_rows(xs, ys)
    else:
        raw = encode_rows(list(range(width)), list(range(height)))

    data = b"\x89PNG\r\n\x1a\n"
    data += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 1 if interlace else 0))
    if plte is not None:
        data += chunk(b"PLTE", b"".join(bytes(c) for c in plte))
    if trns is not None:
        data += chunk(b"tRNS", trns)
    data += chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    data += chunk(b"IEND", b"")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    return data


# --------------------------------------------------------------------------------------
# The coloured quadrant pattern (upright), used by quad.png and every JPEG
# --------------------------------------------------------------------------------------

QW, QH = 64, 48
TL, TR, BL, BR = (200, 30, 40), (20, 180, 60), (30, 60, 220), (240, 240, 20)


def quad(x, y):
    if y < QH // 2:
        return TL if x < QW // 2 else TR
    return BL if x < QW // 2 else BR


def quad_image():
    a = np.zeros((QH, QW, 3), np.uint8)
    for y in range(QH):
        for x in range(QW):
            a[y, x] = quad(x, y)
    return Image.fromarray(a, "RGB")


# Pillow's transpose that exif_transpose applies for each orientation, and its inverse.
OP = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
INVERSE = {2: OP[2], 3: OP[3], 4: OP[4], 5: OP[5], 6: Image.Transpose.ROTATE_90, 7: OP[7],
           8: Image.Transpose.ROTATE_270}


def check_close(path, expected, tol):
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    got = np.asarray(im).astype(int)
    exp = np.asarray(expected.convert("RGB")).astype(int)
    assert got.shape == exp.shape, (path, got.shape, exp.shape)
    # Compare the quadrant centres (edges between quadrants blur in JPEG).
    for (x, y) in [(16, 12), (48, 12), (16, 36), (48, 36)]:
        if got.shape[1] != QW:
            continue
        d = np.abs(got[y, x] - exp[y, x]).max()
        assert d <= tol, (path, x, y, got[y, x], exp[y, x])


def main():
    # ---- PNG: every colour type and bit depth libpng has to expand -------------------
    write_png("grey8.png", 32, 16, 0, 8, lambda x, y: ((x * 8 + y * 3) % 256,))
    write_png("grey4.png", 16, 8, 0, 4, lambda x, y: ((x + y) % 16,))
    write_png("grey1.png", 9, 3, 0, 1, lambda x, y: ((x + y) % 2,))
    write_png("grey16.png", 8, 4, 0, 16, lambda x, y: (x * 8191 + y * 17,))
    write_png("grey_alpha.png", 16, 8, 4, 8, lambda x, y: ((x * 16 + y) % 256, (x * y * 9) % 256))
    # grey + tRNS: grey value 100 is transparent; must still decode as 100 (alpha dropped)
    write_png("grey_trns.png", 10, 10, 0, 8, lambda x, y: (100 if (x + y) % 3 == 0 else x * 20 + y,),
              trns=struct.pack(">H", 100))
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 20, 30)]
    write_png("palette_trns.png", 8, 8, 3, 8, lambda x, y: ((x + y) % 4,), plte=palette, trns=bytes([0, 128]))
    write_png("palette2.png", 7, 5, 3, 2, lambda x, y: ((x * y) % 4,), plte=palette)
    write_png("rgb16.png", 8, 6, 2, 16, lambda x, y: (x * 8000 + y, 65535 - x * 5000, y * 10000 + 0x0102))
    write_png("rgba.png", 12, 10, 6, 8, lambda x, y: (x * 20, y * 25, (x + y) * 5, (x * y * 13) % 256))
    write_png("interlaced.png", 13, 11, 2, 8,
              lambda x, y: ((x * 19) % 256, (y * 23) % 256, (x * y * 7) % 256), interlace=True)
    write_png("interlaced_ga16.png", 10, 9, 4, 16, lambda x, y: (x * 6000 + y * 300, 65535 - x * 1000),
              interlace=True)
    write_png("quad.png", QW, QH, 2, 8, quad)

    # Cross-check the 8-bit writer output with Pillow.
    assert Image.open(os.path.join(OUT, "interlaced.png")).convert("RGB").getpixel((12, 10)) == (228, 230, 72)
    assert Image.open(os.path.join(OUT, "palette_trns.png")).convert("RGB").getpixel((1, 0)) == (0, 255, 0)
    assert Image.open(os.path.join(OUT, "grey4.png")).getpixel((15, 7)) in (6, 6 * 17)

    # ---- JPEG ------------------------------------------------------------------------
    up = quad_image()
    up.save(os.path.join(OUT, "quad_baseline.jpg"), "JPEG", quality=90)  # 4:2:0
    up.save(os.path.join(OUT, "quad_progressive.jpg"), "JPEG", quality=90, progressive=True, subsampling=0)
    check_close(os.path.join(OUT, "quad_baseline.jpg"), up, 8)
    check_close(os.path.join(OUT, "quad_progressive.jpg"), up, 8)

    g = np.zeros((38, 50), np.uint8)  # partial MCUs on both axes
    g[:19, :25], g[:19, 25:], g[19:, :25], g[19:, 25:] = 30, 90, 160, 230
    Image.fromarray(g, "L").save(os.path.join(OUT, "grey.jpg"), "JPEG", quality=92)

    up.convert("CMYK").save(os.path.join(OUT, "cmyk.jpg"), "JPEG", quality=95)
    check_close(os.path.join(OUT, "cmyk.jpg"), up, 10)

    for k in range(1, 9):
        stored = up if k == 1 else up.transpose(INVERSE[k])
        exif = Image.Exif()
        exif[0x0112] = k
        path = os.path.join(OUT, f"orient{k}.jpg")
        stored.save(path, "JPEG", quality=92, subsampling=0, exif=exif)
        im = ImageOps.exif_transpose(Image.open(path))
        assert im.size == (QW, QH), (k, im.size)
        check_close(path, up, 8)

    for name in sorted(os.listdir(OUT)):
        if name.endswith((".png", ".jpg")):
            size = os.path.getsize(os.path.join(OUT, name))
            assert size < 100_000, name
            print(f"{name:24} {size:6} bytes")


if __name__ == "__main__":
    main()
