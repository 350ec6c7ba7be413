#!/usr/bin/env python3
"""Golden fixtures for image decoding, resizing and DeepSeek-OCR preprocessing.

    python3 tests/reference/make_preprocess_goldens.py      # rewrites tests/fixtures/images/

Pillow (13.x) is the reference for everything on uint8 pixels; torch computes the normalised
tensors the way torchvision's ToTensor + Normalize do. Written under tests/fixtures/images/:

  *.png, *.jpg, bad-*       decode inputs: PNGs from a small independent encoder below (every colour
                            type / bit depth, Adam7, palettes with tRNS and out-of-range indices,
                            eXIf), JPEGs from Pillow's encoder (subsamplings, progressive, grey,
                            CMYK, EXIF orientations 1-8, XMP orientation), and broken files
  goldens.json              index of every case (sizes, offsets into the blobs, SHA-256 digests)
  decode.u8                 Pillow's ImageOps.exif_transpose(Image.open(f)).convert("RGB") bytes
  resize.u8, pad.u8         Image.resize(BICUBIC) / ImageOps.pad outputs small enough to store;
                            larger ones are checked by SHA-256 only (still an exact comparison).
                            Resize and a few preprocess cases also carry "pillow12" goldens: the
                            horizontal-first pass order of Pillow 9.1-12 (see resize_pillow12)

Source pictures for resize / pad / preprocess are not stored: `synth(w, h, seed)` is a small
integer formula that tests/engine/synth-image.h computes identically in C.
"""

import hashlib
import io
import json
import os
import struct
import sys
import zlib

import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, features

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "images")
STORE_LIMIT = 40000  # outputs up to this many bytes are stored raw, larger ones as digests

# ---------------------------------------------------------------------------------------------
# synthetic sources (mirrored by tests/engine/synth-image.h)


def synth(w, h, seed):
    """Noise, gradients and hard edges in 8x8 blocks: exercises rounding, overshoot and clipping."""
    y, x = np.mgrid[0:h, 0:w]
    x = x.astype(np.uint32)
    y = y.astype(np.uint32)
    region = ((x >> 3) + (y >> 3) + np.uint32(seed)) & np.uint32(3)
    out = np.empty((h, w, 3), np.uint8)
    for c in range(3):
        v = (x * np.uint32(0x9E3779B1) + y * np.uint32(0x85EBCA77)
             + np.uint32((c * 0xC2B2AE3D + seed * 0x27D4EB2F) & 0xFFFFFFFF))
        v ^= v >> np.uint32(15)
        v *= np.uint32(0x2C1B3C6D)
        v ^= v >> np.uint32(12)
        noise = v >> np.uint32(24)
        gx = (x * np.uint32(255) // np.uint32(max(w - 1, 1)) + np.uint32(c * 40)) & np.uint32(255)
        gy = (y * np.uint32(255) // np.uint32(max(h - 1, 1)) + np.uint32(c * 80)) & np.uint32(255)
        edge = np.where(((x ^ y) & np.uint32(4)) != 0, np.uint32(255), np.uint32(0))
        val = np.select([region == 0, region == 1, region == 2], [noise, gx, gy], edge)
        out[:, :, c] = val.astype(np.uint8)
    return Image.fromarray(out, "RGB")


# ---------------------------------------------------------------------------------------------
# the reference's preprocessing (HUB modeling_deepseekocr.py), with Pillow doing the pixel work

MODES = {  # base_size, image_size, crop_mode (OCR-GH config.py / run_dpsk_ocr.py)
    "tiny": (512, 512, False),
    "small": (640, 640, False),
    "base": (1024, 1024, False),
    "large": (1280, 1280, False),
    "gundam": (1024, 640, True),
}


def candidate_grids(min_num, max_num):
    target_ratios = set((i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1)
                        for j in range(1, n + 1) if i * j <= max_num and i * j >= min_num)
    return sorted(target_ratios, key=lambda x: x[0] * x[1])


def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_ratio_diff = float("inf")
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def dynamic_preprocess(image, min_num=2, max_num=9, image_size=640):
    w, h = image.size
    ratio = find_closest_aspect_ratio(w / h, candidate_grids(min_num, max_num), w, h, image_size)
    tw, th = image_size * ratio[0], image_size * ratio[1]
    resized = image.resize((tw, th))
    tiles = []
    for i in range(ratio[0] * ratio[1]):
        box = ((i % (tw // image_size)) * image_size, (i // (tw // image_size)) * image_size,
               ((i % (tw // image_size)) + 1) * image_size,
               ((i // (tw // image_size)) + 1) * image_size)
        tiles.append(resized.crop(box))
    return tiles, ratio, resized


def to_tensor_normalized(img):
    """torchvision ToTensor() then Normalize((0.5,)*3, (0.5,)*3), written with torch ops."""
    t = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    t = t.to(dtype=torch.float32).div(255)
    mean = torch.as_tensor((0.5, 0.5, 0.5), dtype=torch.float32)[:, None, None]
    std = torch.as_tensor((0.5, 0.5, 0.5), dtype=torch.float32)[:, None, None]
    return t.sub_(mean).div_(std)


def n_image_tokens(mode, cols, rows):
    base, image_size, crop = MODES[mode]
    nq = -(-(image_size // 16) // 4)
    nb = -(-(base // 16) // 4)
    if crop:
        tokens = nb * (nb + 1) + 1
        if cols > 1 or rows > 1:
            tokens += (nq * rows) * (nq * cols + 1)
        return tokens
    return nq * (nq + 1) + 1


def reference_preprocess(image, mode, max_num):
    base, image_size, crop = MODES[mode]
    color = tuple(int(x * 255) for x in (0.5, 0.5, 0.5))
    canvas = None
    if crop:
        if image.size[0] <= 640 and image.size[1] <= 640:
            ratio, tiles = (1, 1), []
        else:
            tiles, ratio, canvas = dynamic_preprocess(image, min_num=2, max_num=max_num)
        global_view = ImageOps.pad(image, (base, base), color=color)
    else:
        ratio, tiles = (1, 1), []
        if image_size <= 640:
            image = image.resize((image_size, image_size))
        global_view = ImageOps.pad(image, (image_size, image_size), color=color)
    g = to_tensor_normalized(global_view)
    t = torch.stack([to_tensor_normalized(x) for x in tiles]) if tiles else None
    return global_view, canvas, g, t, ratio


def resize_pillow12(img, size):
    """Image.resize(size, BICUBIC) as Pillow 9.1-12 computes it: always the horizontal pass first.
    Pillow 13 may run the vertical pass first; a one-axis resize has no order, so two of them
    reproduce the old order exactly."""
    w, h = size
    if w != img.width and h != img.height:
        img = _ORIGINAL_RESIZE(img, (w, img.height), Image.Resampling.BICUBIC)
    return _ORIGINAL_RESIZE(img, (w, h), Image.Resampling.BICUBIC)


_ORIGINAL_RESIZE = Image.Image.resize


class pillow12_resizing:
    """Within this block every BICUBIC Image.resize, also inside ImageOps.pad, uses the old order."""

    def __enter__(self):
        def resize(img, size, resample=None, box=None, reducing_gap=None):
            if resample not in (None, Image.Resampling.BICUBIC) or box is not None or reducing_gap:
                return _ORIGINAL_RESIZE(img, size, resample, box, reducing_gap)
            return resize_pillow12(img, tuple(size))
        Image.Image.resize = resize

    def __exit__(self, *exc):
        Image.Image.resize = _ORIGINAL_RESIZE


def sha(b):
    return hashlib.sha256(b).hexdigest()


def f32_bytes(t):
    return t.contiguous().numpy().astype("<f4").tobytes()


def bf16_bytes(t):
    return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()


def bf16_as_f32_bytes(t):
    return f32_bytes(t.to(torch.bfloat16).to(torch.float32))


# ---------------------------------------------------------------------------------------------
# a minimal PNG encoder, independent of Pillow's, so every IHDR combination can be produced

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_pack_rows(samples, bit_depth):
    """samples: [h, w, c] ints -> list of packed rows (bytes)."""
    rows = []
    for r in samples:
        flat = [int(v) for px in r for v in px]
        if bit_depth == 16:
            rows.append(b"".join(struct.pack(">H", v) for v in flat))
        elif bit_depth == 8:
            rows.append(bytes(flat))
        else:
            per = 8 // bit_depth
            out = bytearray()
            for k in range(0, len(flat), per):
                byte = 0
                for m in range(per):
                    v = flat[k + m] if k + m < len(flat) else 0
                    byte |= v << (8 - bit_depth * (m + 1))
                out.append(byte)
            rows.append(bytes(out))
    return rows


def png_filter(rows, bpp):
    """Cycle through the five filter types so the decoders' unfiltering is exercised."""
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for n, row in enumerate(rows):
        ft = n % 5
        out.append(ft)
        for i, v in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ft == 0:
                p = 0
            elif ft == 1:
                p = a
            elif ft == 2:
                p = b
            elif ft == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out.append((v - p) & 0xFF)
        prev = row
    return bytes(out)


def png_encode(samples, color_type, bit_depth, interlace=False, before_idat=b"", after_idat=b"",
               iend=True):
    samples = np.asarray(samples)
    h, w, ch = samples.shape
    bpp = max(1, ch * bit_depth // 8)
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            raw += png_filter(png_pack_rows(sub, bit_depth), bpp)
    else:
        raw = png_filter(png_pack_rows(samples, bit_depth), bpp)
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 1 if interlace else 0)
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + before_idat
            + png_chunk(b"IDAT", zlib.compress(raw, 9)) + after_idat)
    return data + (png_chunk(b"IEND", b"") if iend else b"")


def rand_samples(rng, w, h, ch, bit_depth):
    return rng.integers(0, 1 << bit_depth, size=(h, w, ch), dtype=np.int64)


def exif_block(orientation, big_endian=False, typ=3, count=1):
    """A TIFF header and IFD0 holding one Orientation entry (plus a dummy tag before it)."""
    e = ">" if big_endian else "<"
    head = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(e + "I", 8)
    entries = [struct.pack(e + "HHI", 0x010F, 2, 4) + b"cam\x00"]
    if typ == 3:
        val = struct.pack(e + "H", orientation) + b"\x00\x00"
    elif typ == 4:
        val = struct.pack(e + "I", orientation)
    else:
        val = bytes([orientation, 0, 0, 0])
    entries.append(struct.pack(e + "HHI", 0x0112, typ, count) + val)
    return head + struct.pack(e + "H", len(entries)) + b"".join(entries) + struct.pack(e + "I", 0)


# ---------------------------------------------------------------------------------------------
# decode fixtures


def make_decode_fixtures(rng):
    files = {}
    # PNG: (name, w, h, color_type, bit_depth, interlace)
    combos = [
        ("rgb8", 13, 7, 2, 8, False), ("rgb16", 11, 6, 2, 16, False),
        ("rgba8", 9, 8, 6, 8, False), ("rgba16", 7, 5, 6, 16, False),
        ("gray1", 19, 5, 0, 1, False), ("gray2", 10, 4, 0, 2, False),
        ("gray4", 9, 3, 0, 4, False), ("gray8", 12, 9, 0, 8, False),
        ("la8", 6, 7, 4, 8, False), ("la16", 5, 4, 4, 16, False),
        ("rgb8-adam7", 13, 11, 2, 8, True), ("gray2-adam7", 17, 9, 0, 2, True),
        ("rgba16-adam7", 6, 10, 6, 16, True), ("rgb8-adam7-1x1", 1, 1, 2, 8, True),
        ("rgb8-adam7-2x1", 2, 1, 2, 8, True), ("gray8-adam7-1x5", 1, 5, 0, 8, True),
    ]
    for name, w, h, ct, bd, il in combos:
        ch = {0: 1, 2: 3, 4: 2, 6: 4}[ct]
        files[name + ".png"] = png_encode(rand_samples(rng, w, h, ch, bd), ct, bd, il)
    # 16-bit grey: Pillow's I;16 -> RGB clips, so put values on both sides of 255
    g16 = rng.integers(0, 1024, size=(6, 8, 1))
    g16[0, :4, 0] = [0, 255, 256, 65535]
    files["gray16.png"] = png_encode(g16, 0, 16)
    files["gray16-adam7.png"] = png_encode(g16, 0, 16, True)
    # palettes: short PLTE with out-of-range indices (black in Pillow), tRNS (ignored by RGB)
    for bd in (1, 2, 4, 8):
        n_pal = max(1, (1 << bd) - 1) if bd > 1 else 1
        pal = bytes(rng.integers(0, 256, size=3 * n_pal, dtype=np.int64).tolist())
        idx = rand_samples(rng, 11, 6, 1, bd)
        extra = png_chunk(b"PLTE", pal) + png_chunk(b"tRNS", bytes([0, 128][:n_pal]))
        files[f"pal{bd}.png"] = png_encode(idx, 3, bd, False, extra)
    pal = bytes(rng.integers(0, 256, size=3 * 200, dtype=np.int64).tolist())
    files["pal8-adam7.png"] = png_encode(rand_samples(rng, 10, 9, 1, 8), 3, 8, True,
                                         png_chunk(b"PLTE", pal))
    # metadata: gamma/sRGB/text are ignored by Pillow's convert; eXIf rotates
    meta = (png_chunk(b"gAMA", struct.pack(">I", 45455)) + png_chunk(b"sRGB", b"\x00")
            + png_chunk(b"tEXt", b"Comment\x00hello"))
    rgb = rand_samples(rng, 7, 4, 3, 8)
    files["rgb8-meta.png"] = png_encode(rgb, 2, 8, False, meta)
    files["rgb8-exif6.png"] = png_encode(rgb, 2, 8, False, png_chunk(b"eXIf", exif_block(6)))
    files["rgb8-exif3-mm.png"] = png_encode(rgb, 2, 8, False,
                                            png_chunk(b"eXIf", exif_block(3, True)))
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
           b'tiff:Orientation="8"/></rdf:RDF></x:xmpmeta>')
    files["rgb8-xmp8.png"] = png_encode(
        rgb, 2, 8, False, png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp))
    files["rgb8-noiend.png"] = png_encode(rgb, 2, 8, iend=False)
    files["rgb8-trailing.png"] = png_encode(rgb, 2, 8) + b"junk after the end"

    # JPEG from Pillow's encoder
    def jpeg(img, **kw):
        b = io.BytesIO()
        img.save(b, "JPEG", **kw)
        return b.getvalue()

    photo = synth(61, 43, 7)
    smooth = Image.fromarray(np.array(synth(96, 72, 3).resize((24, 18)).resize((96, 72))))
    files["ycc420.jpg"] = jpeg(photo, quality=90, subsampling=2)
    files["ycc422.jpg"] = jpeg(photo, quality=75, subsampling=1)
    files["ycc444.jpg"] = jpeg(photo, quality=95, subsampling=0)
    files["smooth420.jpg"] = jpeg(smooth, quality=85, subsampling=2)
    files["progressive.jpg"] = jpeg(photo, quality=80, progressive=True)
    files["gray.jpg"] = jpeg(photo.convert("L"), quality=90)
    files["cmyk.jpg"] = jpeg(photo.convert("CMYK"), quality=90)
    files["odd-1x1.jpg"] = jpeg(synth(1, 1, 1), quality=90)
    small = synth(24, 16, 5)
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        files[f"exif{o}.jpg"] = jpeg(small, quality=92, exif=exif.tobytes())
    files["exif6-mm.jpg"] = jpeg(small, quality=92, exif=b"Exif\x00\x00" + exif_block(6, True))
    files["exif5-long.jpg"] = jpeg(small, quality=92,
                                   exif=b"Exif\x00\x00" + exif_block(5, False, typ=4))
    files["exif9.jpg"] = jpeg(small, quality=92, exif=b"Exif\x00\x00" + exif_block(9))
    files["xmp6.jpg"] = jpeg(small, quality=92, xmp=xmp.replace(b'"8"', b'"6"'))
    # EXIF says 1, XMP says 6: EXIF wins (no fallback)
    exif = Image.Exif()
    exif[0x0112] = 1
    files["exif1-xmp6.jpg"] = jpeg(small, quality=92, exif=exif.tobytes(),
                                   xmp=xmp.replace(b'"8"', b'"6"'))
    return files


def make_bad_fixtures(files):
    bad = {}
    png = files["rgb8-adam7.png"]
    bad["bad-truncated.png"] = png[: len(png) // 2]
    bad["bad-header-only.png"] = png[:33]
    jpg = files["ycc420.jpg"]
    bad["bad-truncated.jpg"] = jpg[: len(jpg) // 2]
    bad["bad-noeoi.jpg"] = jpg[:-2]
    bad["bad-empty.png"] = b""
    bad["bad-format.gif"] = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
    bad["bad-format.bmp"] = b"BM" + bytes(60)

    def ihdr_png(w, h):
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
                + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))

    bad["bad-zero.png"] = ihdr_png(0, 5)
    bad["bad-wide.png"] = ihdr_png(40000, 2)
    bad["bad-pixels.png"] = ihdr_png(20000, 20000)

    def patch_sof(data, w, h):
        i = data.index(b"\xff\xc0")
        return data[: i + 5] + struct.pack(">HH", h, w) + data[i + 9:]

    bad["bad-wide.jpg"] = patch_sof(jpg, 40000, 43)
    bad["bad-pixels.jpg"] = patch_sof(jpg, 20000, 20000)
    bad["bad-zero.jpg"] = patch_sof(jpg, 61, 0)
    # kind of error the C decoder must report (DsocrError names)
    kinds = {
        "bad-truncated.png": "FORMAT", "bad-header-only.png": "FORMAT",
        "bad-truncated.jpg": "FORMAT", "bad-noeoi.jpg": "FORMAT", "bad-empty.png": "FORMAT",
        "bad-format.gif": "UNSUPPORTED", "bad-format.bmp": "UNSUPPORTED",
        "bad-zero.png": "FORMAT", "bad-wide.png": "UNSUPPORTED", "bad-pixels.png": "UNSUPPORTED",
        "bad-wide.jpg": "UNSUPPORTED", "bad-pixels.jpg": "UNSUPPORTED", "bad-zero.jpg": "FORMAT",
    }
    # Pillow must refuse the broken ones too (the size limits are this project's own)
    for name in ("bad-truncated.png", "bad-header-only.png", "bad-truncated.jpg", "bad-noeoi.jpg",
                 "bad-zero.png", "bad-zero.jpg"):
        try:
            Image.open(io.BytesIO(bad[name])).load()
        except Exception:
            continue
        raise SystemExit(f"{name}: Pillow decoded it")
    return bad, kinds


# ---------------------------------------------------------------------------------------------


def write_index(f, index):
    """JSON with one list element per line: small, and diffs stay readable."""
    f.write("{\n")
    for n, (key, val) in enumerate(index.items()):
        end = ",\n" if n + 1 < len(index) else "\n"
        if isinstance(val, list):
            items = ",\n  ".join(json.dumps(v, separators=(",", ":")) for v in val)
            f.write(f" {json.dumps(key)}: [\n  {items}\n ]{end}")
        else:
            f.write(f" {json.dumps(key)}: {json.dumps(val, separators=(',', ':'))}{end}")
    f.write("}\n")


def main():
    warnings.simplefilter("ignore")  # Pillow's advice on palette transparency
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    rng = np.random.default_rng(20240611)
    index = {
        "generator": "tests/reference/make_preprocess_goldens.py",
        "pillow": Image.__version__,
        "pillow_libjpeg_turbo": features.version("libjpeg_turbo"),
        "torch": torch.__version__,
    }

    # normalisation table: every uint8 value through ToTensor + Normalize, and its bf16 rounding
    lut = to_tensor_normalized(Image.fromarray(np.arange(256, dtype=np.uint8).reshape(1, 256, 1)
                                               .repeat(3, axis=2), "RGB"))[0, 0]
    index["normalize"] = {
        "f32_bits": [int(v) for v in lut.numpy().view(np.uint32)],
        "bf16_bits": [int(v) & 0xFFFF for v in lut.to(torch.bfloat16).view(torch.int16).numpy()],
    }

    # candidate order of dynamic_preprocess
    index["candidates"] = [
        {"min": mn, "max": mx, "grids": [list(g) for g in candidate_grids(mn, mx)]}
        for mn in (1, 2, 3) for mx in range(mn, 41)]

    # grid choice for many sizes: random, exact ties, extreme aspect ratios
    sizes = [(700, 560), (750, 600), (1250, 1000), (1300, 650), (2000, 1000), (641, 1282),
             (1282, 641), (3000, 1000), (1191, 1684), (2480, 3508), (1684, 1191), (641, 641),
             (5000, 641), (641, 9000), (32768, 700), (700, 32768), (1000, 3000), (2560, 1440),
             (1920, 1080), (900, 1800), (1800, 900), (1280, 1280), (960, 1440), (1440, 960),
             (3840, 2160), (645, 430), (1500, 1000), (1000, 1500), (2400, 800), (800, 2400)]
    sizes += [tuple(int(v) for v in rng.integers(641, 5000, size=2)) for _ in range(120)]
    sizes += [(int(rng.integers(641, 3000)), int(rng.integers(1, 641))) for _ in range(30)]
    grids = []
    for w, h in sizes:
        for mx in (6, 9, 12):
            i, j = find_closest_aspect_ratio(w / h, candidate_grids(2, mx), w, h, 640)
            grids.append([w, h, 2, mx, i, j])
    index["grids"] = grids

    # decode
    files = make_decode_fixtures(rng)
    bad, kinds = make_bad_fixtures(files)
    blob = bytearray()
    dec = []
    for name, data in sorted(files.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        im = Image.open(io.BytesIO(data))
        mode = im.mode
        rgb = ImageOps.exif_transpose(im).convert("RGB")
        raw = np.array(rgb, dtype=np.uint8).tobytes()
        dec.append({"file": name, "pillow_mode": mode, "width": rgb.width, "height": rgb.height,
                    "offset": len(blob), "jpeg": name.endswith(".jpg")})
        blob += raw
    with open(os.path.join(OUT, "decode.u8"), "wb") as f:
        f.write(blob)
    index["decode"] = dec
    for name, data in sorted(bad.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    index["decode_errors"] = [{"file": n, "error": kinds[n]} for n in sorted(bad)]

    # resize: up, down, one axis, 1 px, extreme aspect ratios, odd sizes
    cases = [
        (37, 23, 1, 64, 64), (64, 64, 2, 37, 23), (1, 1, 3, 5, 3), (1, 1, 4, 1, 1),
        (5, 1, 5, 1, 7), (1, 9, 6, 4, 4), (640, 3, 7, 17, 50), (3, 640, 8, 50, 17),
        (200, 100, 9, 200, 57), (100, 200, 10, 31, 200), (1000, 1000, 11, 13, 13),
        (7, 7, 12, 1000, 3), (300, 200, 13, 299, 201), (2, 2, 14, 256, 256), (97, 61, 15, 97, 61),
        (4000, 3, 16, 512, 1), (3, 4000, 17, 1, 512), (123, 457, 18, 640, 1280),
        (56, 165, 25, 52, 83), (100, 100, 26, 55, 10), (100, 100, 27, 60, 10),
        (600, 3000, 28, 640, 640),
        (173, 151, 29, 167, 108), (113, 49, 30, 86, 2),
        (1191, 1684, 19, 1280, 1920), (2480, 3508, 20, 724, 1024), (33, 1, 21, 32, 1),
        (1, 33, 22, 1, 34), (517, 389, 23, 1024, 770), (640, 640, 24, 641, 639),
    ]
    blob = bytearray()
    res = []
    for sw, sh, seed, dw, dh in cases:
        src = synth(sw, sh, seed)
        out = np.array(src.resize((dw, dh), Image.Resampling.BICUBIC)).tobytes()
        old = np.array(resize_pillow12(src, (dw, dh))).tobytes()
        e = {"src": [sw, sh, seed], "dst": [dw, dh], "sha256": sha(out), "offset": -1,
             "pillow12_sha256": sha(old), "pillow12_offset": -1}
        if len(out) <= STORE_LIMIT:
            e["offset"] = len(blob)
            blob += out
            if old != out:
                e["pillow12_offset"] = len(blob)
                blob += old
            else:
                e["pillow12_offset"] = e["offset"]
        res.append(e)
    with open(os.path.join(OUT, "resize.u8"), "wb") as f:
        f.write(blob)
    index["resize"] = res

    # ImageOps.pad: rounding of sizes and offsets (half to even), empty content, upscaling
    cases = [
        (128, 1, 1, 64), (128, 3, 2, 64), (10000, 1, 3, 1024), (1, 10000, 4, 1024),
        (100, 100, 5, 64), (64, 64, 6, 64), (301, 200, 7, 64), (200, 301, 8, 64),
        (33, 17, 9, 64), (17, 33, 10, 64), (723, 1024, 11, 1024), (1024, 723, 12, 1024),
        (1191, 1684, 13, 1024), (300, 200, 14, 1024), (2480, 3508, 15, 1280),
        (5, 3, 16, 512), (1280, 1280, 17, 1280), (640, 480, 18, 1024),
    ]
    blob = bytearray()
    pads = []
    for sw, sh, seed, size in cases:
        img = ImageOps.pad(synth(sw, sh, seed), (size, size), color=(127, 127, 127))
        out = np.array(img).tobytes()
        e = {"src": [sw, sh, seed], "size": size, "sha256": sha(out), "offset": -1}
        if len(out) <= STORE_LIMIT:
            e["offset"] = len(blob)
            blob += out
        pads.append(e)
    with open(os.path.join(OUT, "pad.u8"), "wb") as f:
        f.write(blob)
    index["pad"] = pads

    # whole preprocessing, per mode
    cases = [
        (300, 200, 31, "gundam", 9), (700, 560, 32, "gundam", 9), (750, 600, 33, "gundam", 9),
        (1191, 1684, 34, "gundam", 9), (1191, 1684, 34, "gundam", 6), (2000, 1000, 35, "gundam", 9),
        (100, 3000, 36, "gundam", 9), (641, 500, 37, "gundam", 6),
        (1191, 1684, 34, "tiny", 9), (1191, 1684, 34, "small", 9), (1191, 1684, 34, "base", 9),
        (1191, 1684, 34, "large", 9), (512, 512, 38, "tiny", 9), (333, 777, 39, "base", 9),
        (600, 3000, 41, "small", 9), (600, 3000, 41, "gundam", 6),
        (2480, 3508, 40, "gundam", 9), (2480, 3508, 40, "base", 9),
    ]
    cases = [c + (13,) for c in cases] + [
        (100, 3000, 36, "gundam", 9, 12), (600, 3000, 41, "small", 9, 12),
        (600, 3000, 41, "gundam", 6, 12), (1191, 1684, 34, "gundam", 9, 12),
    ]
    pipe = []
    for sw, sh, seed, mode, mx, pillow in cases:
        if pillow == 12:
            with pillow12_resizing():
                gv, canvas, g, t, ratio = reference_preprocess(synth(sw, sh, seed), mode, mx)
        else:
            gv, canvas, g, t, ratio = reference_preprocess(synth(sw, sh, seed), mode, mx)
        e = {"src": [sw, sh, seed], "mode": mode, "max_tiles": mx, "pillow": pillow,
             "grid": list(ratio),
             "n_tiles": 0 if t is None else int(t.shape[0]),
             "tokens": n_image_tokens(mode, *ratio),
             "view_size": gv.width,
             "global_u8_sha256": sha(np.array(gv).tobytes()),
             "global_f32_sha256": sha(f32_bytes(g)),
             "global_f32_bf16_sha256": sha(bf16_as_f32_bytes(g)),
             "global_bf16_sha256": sha(bf16_bytes(g))}
        if t is not None:
            e["canvas_u8_sha256"] = sha(np.array(canvas).tobytes())
            e["tiles_f32_sha256"] = sha(f32_bytes(t))
            e["tiles_f32_bf16_sha256"] = sha(bf16_as_f32_bytes(t))
            e["tiles_bf16_sha256"] = sha(bf16_bytes(t))
        pipe.append(e)
    index["preprocess"] = pipe

    with open(os.path.join(OUT, "goldens.json"), "w") as f:
        write_index(f, index)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, into {os.path.normpath(OUT)}")


if __name__ == "__main__":
    sys.exit(main())
