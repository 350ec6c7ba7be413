#!/usr/bin/env python3
"""Writes the goldens of tests/engine/test-grounding.c and the seed corpus of fuzz-grounding.c.

DeepSeek-OCR's grounding post-processing lives in the official run scripts
(deepseek-ai/DeepSeek-OCR: DeepSeek-OCR-vllm/run_dpsk_ocr_image.py, run_dpsk_ocr_pdf.py, and the
hub's modeling_deepseekocr.py `infer`). They cannot be imported (they need vLLM / CUDA at import
time), so the behaviour is restated below, step by step, from those scripts:

  1. text = decode(output ids, special tokens kept); if it ends with '<｜end▁of▁sentence｜>' that
     suffix is cut once; then text.strip()                              (hub infer)
  2. matches = re.findall(r'(<\\|ref\\|>(.*?)<\\|/ref\\|><\\|det\\|>(.*?)<\\|/det\\|>)', DOTALL);
     a match whose whole text contains '<|ref|>image<|/ref|>' is an image match, the rest are
     other matches                                                      (re_match)
  3. per match, in order: label = group 2, boxes = eval(group 3); for each [x1, y1, x2, y2]:
     px = int(v / 999 * W), py = int(v / 999 * H); if label == 'image' the box is cropped from
     the original image and saved as images/{k}.jpg, k counting such boxes over all matches; an
     exception anywhere in a match's box loop ends that match          (draw_bounding_boxes)
  4. markdown: for idx, m in enumerate(image matches): text = text.replace(m, '![](images/{idx}.jpg)\\n');
     for m in other matches: text = text.replace(m, '').replace('\\\\coloneqq', ':=')
     .replace('\\\\eqqcolon', '=:'), plus, in the PDF script, .replace('\\n\\n\\n\\n', '\\n\\n')
     .replace('\\n\\n\\n', '\\n\\n'); the PDF script names files images/{page}_{idx}.jpg

What this project adds on top, and what the goldens therefore also encode (docs/result-json.md):
  - bytes that are not UTF-8 become U+FFFD the way bytes.decode('utf-8', 'replace') does (that is
    also what the tokenizer's decode gives); NUL becomes U+FFFD too; both flag the page malformed;
  - the box list is read by a strict parser instead of eval: nested lists of ints and floats,
    a subset of Python's literal syntax that, wherever it accepts, gives exactly eval's value
    (checked below against eval on every case); anything else is malformed (no boxes);
  - grid values are clamped to 0..999 before the pixel rule (so pixels stay inside the image);
    out-of-range values and x2 < x1 or y2 < y1 flag the box malformed;
  - region text: what follows a match up to the next match (or the end), stripped.

Crops: a small generated page (page.png) is cropped with Pillow exactly as the script does
(`image.crop(box).save(path)`, Pillow's default JPEG quality 75) and once more at quality 95;
the files that Pillow manages to write are the goldens.

Usage: python3 tests/reference/make_grounding_goldens.py   (from the repository root)
"""
import base64
import json
import os
import random
import re
import shutil
import struct
import sys

import PIL
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "fixtures", "grounding")
CORPUS = os.path.join(ROOT, "fuzz", "corpus", "grounding")

EOS = "<｜end▁of▁sentence｜>"
PATTERN = re.compile(r"(<\|ref\|>(.*?)<\|/ref\|><\|det\|>(.*?)<\|/det\|>)", re.DOTALL)
TAGS = ("<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>")
MAX_DEPTH = 32


# ---- the strict box-list parser (a subset of Python literals) ----

class Malformed(Exception):
    pass


NUMBER = re.compile(r"[+-]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                    r"|[0-9]+[eE][+-]?[0-9]+|[0-9]+)")
INNER_WS = " \t\n\r\f"
OUTER_WS = " \t"


def parse_literal(s):
    pos = 0

    def skip(ws):
        nonlocal pos
        while pos < len(s) and s[pos] in ws:
            pos += 1

    def value(depth):
        nonlocal pos
        if pos < len(s) and s[pos] == "[":
            if depth >= MAX_DEPTH:
                raise Malformed("too deep")
            pos += 1
            items = []
            skip(INNER_WS)
            if pos < len(s) and s[pos] == "]":
                pos += 1
                return items
            while True:
                items.append(value(depth + 1))
                skip(INNER_WS)
                if pos < len(s) and s[pos] == ",":
                    pos += 1
                    skip(INNER_WS)
                    if pos < len(s) and s[pos] == "]":     # trailing comma
                        pos += 1
                        return items
                    continue
                if pos < len(s) and s[pos] == "]":
                    pos += 1
                    return items
                raise Malformed("expected , or ]")
        m = NUMBER.match(s, pos)
        if not m:
            raise Malformed("expected a number or [")
        tok = m.group(0)
        pos = m.end()
        if pos < len(s) and s[pos] not in INNER_WS + ",]":
            raise Malformed("junk after a number")
        digits = tok.lstrip("+-")
        if digits.isdigit():
            if len(digits) > 1 and digits[0] == "0" and digits.strip("0") != "":
                raise Malformed("leading zero")          # Python refuses 007 too
            return int(tok)
        return float(tok)

    skip(OUTER_WS)
    v = value(0)
    skip(OUTER_WS)
    if pos != len(s):
        raise Malformed("junk after the literal")
    return v


def same_value(a, b):
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same_value, a, b))
    return type(a) is type(b) and a == b


def literal_boxes(det):
    """(boxes, malformed): the reference's box loop over eval(det), on the strict parser."""
    try:
        lit = parse_literal(det)
    except Malformed:
        return [], True
    try:      # the strict parser only accepts what eval reads the same way
        assert same_value(eval(det, {"__builtins__": {}}), lit), det
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as e:
        raise AssertionError("strict parser accepted %r, eval did not: %s" % (det, e))
    if not isinstance(lit, list):
        return [], True                     # `for points in 5` raises: the match ends
    boxes = []
    for item in lit:
        if (isinstance(item, list) and len(item) == 4 and
                all(isinstance(v, (int, float)) for v in item)):
            boxes.append(item)
        else:
            return boxes, True              # the unpack raises: later boxes are dropped
    return boxes, False


def grid_to_pixel(v, size):
    c = min(max(v, 0), 999)
    return int(c / 999 * size)


# ---- the page post-processing ----

def python_strip_text(raw):
    """bytes -> (text, malformed): UTF-8 with 'replace', NUL -> U+FFFD."""
    text = raw.decode("utf-8", "replace")
    bad = False
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        bad = True
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
        bad = True
    return text, bad


def crop_name(page, k):
    return "images/%d.jpg" % k if page < 0 else "images/%d_%d.jpg" % (page, k)


def postprocess(raw, W, H, collapse=False, page=-1):
    text, malformed = python_strip_text(raw)
    if text.endswith(EOS):
        text = text[:-len(EOS)]
    text = text.strip()

    matches = list(PATTERN.finditer(text))
    image_strs = [m.group(1) for m in matches if "<|ref|>image<|/ref|>" in m.group(1)]
    other_strs = [m.group(1) for m in matches if "<|ref|>image<|/ref|>" not in m.group(1)]

    md = text
    for idx, s in enumerate(image_strs):
        md = md.replace(s, "![](%s)\n" % crop_name(page, idx))
    for s in other_strs:
        md = md.replace(s, "").replace("\\coloneqq", ":=").replace("\\eqqcolon", "=:")
        if collapse:
            md = md.replace("\n\n\n\n", "\n\n").replace("\n\n\n", "\n\n")

    n_tags = sum(text.count(t) for t in TAGS)
    if n_tags != 4 * len(matches):
        malformed = True

    regions = []
    k = 0
    image_idx = 0
    for i, m in enumerate(matches):
        label, det = m.group(2), m.group(3)
        boxes, bad = literal_boxes(det)
        if any(t in label for t in TAGS):
            bad = True
        is_image = "<|ref|>image<|/ref|>" in m.group(1)
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        rtext = text[m.end():end].strip()
        if other_strs:
            rtext = rtext.replace("\\coloneqq", ":=").replace("\\eqqcolon", "=:")
        out_boxes = []
        for b in boxes:
            g = [min(max(v, 0), 999) for v in b]
            px = [grid_to_pixel(b[0], W), grid_to_pixel(b[1], H),
                  grid_to_pixel(b[2], W), grid_to_pixel(b[3], H)]
            bm = any(v < 0 or v > 999 for v in b) or g[2] < g[0] or g[3] < g[1]
            empty = px[2] <= px[0] or px[3] <= px[1]
            crop = -1
            if label == "image":
                crop = k
                k += 1
            out_boxes.append({"px": px, "grid": g, "crop": crop, "malformed": bm,
                              "empty": empty})
            malformed |= bm
        malformed |= bad
        regions.append({"label": label, "image_index": image_idx if is_image else -1,
                        "text": rtext, "malformed": bad, "boxes": out_boxes,
                        "start": len(text[:m.start()].encode()),
                        "end": len(text[:m.end()].encode())})
        if is_image:
            image_idx += 1
    return {"raw": text, "markdown": md, "malformed": malformed, "regions": regions}


# ---- cases ----

def page(*parts):
    return "".join(parts)


def ref(label, boxes):
    return "<|ref|>%s<|/ref|><|det|>%s<|/det|>" % (label, boxes)


REALISTIC = page(
    ref("title", "[[62, 45, 937, 92]]"), "\n# Attention Is All You Need\n\n",
    ref("text", "[[62, 110, 937, 240]]"),
    "\nThe dominant sequence transduction models are based on complex recurrent or "
    "convolutional neural networks.\n\n",
    ref("image", "[[120, 260, 880, 540]]"), "\n\n",
    ref("image_caption", "[[300, 548, 700, 570]]"),
    "\n<center>Figure 1: The Transformer - model architecture.</center>\n\n",
    ref("equation", "[[200, 600, 800, 640]]"),
    "\n\\[\nf(x) \\coloneqq \\sum_i x_i, \\quad y \\eqqcolon g(x)\n\\]\n\n",
    ref("table", "[[80, 660, 920, 900]]"),
    "\n<table><tr><td>Model</td><td>BLEU</td></tr><tr><td>Base</td><td>27.3</td></tr>"
    "</table>\n\n",
    ref("text", "[[62, 910, 500, 950], [520, 910, 937, 950]]"),
    "\nTwo-column footnote text.", EOS)

CJK = page(
    ref("sub_title", "[[100, 50, 900, 90]]"), "\n## 第一章　概述\n\n",
    ref("text", "[[100, 100, 900, 300]]"),
    "\n深度学习模型在光学字符识别任务中取得了显著进展。\n\n",
    ref("image", "[[100, 320, 480, 700], [520, 320, 900, 700]]"), "\n\n",
    ref("image", "[[100, 720, 900, 950]]"), "\n", EOS, "\n")

CASES = [
    ("realistic-page", REALISTIC, 1653, 2339, {}),
    ("realistic-page-pdf", REALISTIC, 1224, 1584, {"collapse": True, "page": 3}),
    ("cjk-multi-image", CJK, 1000, 1414, {}),
    ("free-ocr-no-refs", "Just some text\nwith lines.\n" + EOS, 640, 480, {}),
    ("locate", ref("the red car", "[[12, 40, 300, 500]]") + EOS, 800, 600, {}),
    ("empty", "", 10, 10, {}),
    ("only-eos", "  \n" + EOS, 10, 10, {}),
    ("eos-twice", "a\n" + EOS + EOS, 10, 10, {}),
    ("eos-then-space", "a " + EOS + "  \n", 10, 10, {}),
    ("eos-middle", "a" + EOS + "b" + EOS, 10, 10, {}),
    ("unicode-whitespace", "\u3000\u00a0\u2028 x \u205f\u0085\x1c", 10, 10, {}),
    ("floats-and-spacing", ref("text", "[ [ 10.5 ,20.25,\n 300. , .5e3 ] , ]") + "\nt", 1000,
     1000, {}),
    ("signed-and-exponent", ref("text", "[[+1, -0, 1e2, 2E+2], [0.0, 00, 007.5, 999]]"), 500,
     700, {}),
    ("out-of-range", ref("text", "[[-5, 10, 1200, 999.5]]") + "\nx", 640, 480, {}),
    ("inverted", ref("text", "[[500, 600, 100, 200]]") + "\nx", 640, 480, {}),
    ("inverted-image", ref("image", "[[500, 600, 100, 200], [0, 0, 999, 999]]"), 640, 480,
     {}),
    ("zero-area-image", ref("image", "[[100, 100, 100, 900], [1, 1, 2, 2], [0, 0, 999, 999]]"),
     640, 480, {}),
    ("bad-number", ref("text", "[[1, 2, 3, x]]") + "\nkept", 640, 480, {}),
    ("leading-zero-int", ref("text", "[[007, 2, 3, 4]]"), 640, 480, {}),
    ("flat-list", ref("text", "[1, 2, 3, 4]"), 640, 480, {}),
    ("scalar", ref("text", "5"), 640, 480, {}),
    ("tuple", ref("text", "[(1, 2, 3, 4)]"), 640, 480, {}),
    ("five-values", ref("image", "[[1, 2, 3, 4], [1, 2, 3, 4, 5], [10, 20, 30, 40]]"), 640,
     480, {}),
    ("nested-value", ref("text", "[[1, 2, 3, [4]]]"), 640, 480, {}),
    ("empty-list", ref("text", "[]") + "\nnothing boxed", 640, 480, {}),
    ("empty-det", ref("text", "") + "\nx", 640, 480, {}),
    ("deep-nesting", ref("text", "[" * 40 + "]" * 40), 640, 480, {}),
    ("deep-ok", ref("text", "[[[[[[]]]]]]"), 640, 480, {}),
    ("junk-after", ref("text", "[[1, 2, 3, 4]] extra"), 640, 480, {}),
    ("unclosed-det", "intro\n" + "<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]\nbody", 640, 480,
     {}),
    ("unclosed-ref", "<|ref|>text\n" + ref("title", "[[1, 2, 3, 4]]") + "\nT", 640, 480, {}),
    ("stray-close", "a<|/det|>b" + ref("text", "[[1, 2, 3, 4]]") + "\nc<|/ref|>", 640, 480,
     {}),
    ("det-without-ref", "<|det|>[[1,2,3,4]]<|/det|>\ntext", 640, 480, {}),
    ("label-swallows-ref", "<|ref|>x<|ref|>image<|/ref|><|det|>[[0, 0, 500, 500]]<|/det|>\nq",
     640, 480, {}),
    ("det-swallows-tags", "<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|ref|>image<|/ref|>"
     "<|det|>[[5, 6, 7, 8]]<|/det|>\nz", 640, 480, {}),
    ("duplicate-image-matches", page(ref("image", "[[0, 0, 500, 500]]"), "\na\n",
                                     ref("image", "[[500, 500, 999, 999]]"), "\nb\n",
                                     ref("image", "[[0, 0, 500, 500]]"), "\nc"), 640, 480, {}),
    ("duplicate-other-matches", page(ref("text", "[[0, 0, 5, 5]]"), "x\n",
                                     ref("text", "[[0, 0, 5, 5]]"), "y\n"), 640, 480, {}),
    # Removing one match joins the text around it into a copy of a later match: the
    # reference's replace-all chain removes both.
    ("removal-creates-match", page("<|re", ref("b", "[[1, 1, 2, 2]]"),
                                   "f|>a<|/ref|><|det|>[[3, 3, 4, 4]]<|/det|>|",
                                   ref("a", "[[3, 3, 4, 4]]")), 640, 480, {}),
    ("coloneqq-only-images", page(ref("image", "[[0, 0, 10, 10]]"), "\n$a \\coloneqq b$"), 640,
     480, {}),
    ("coloneqq-joined-by-removal", page("\\colon", ref("text", "[[1, 1, 2, 2]]"), "eqq x"), 640,
     480, {}),
    ("newlines-no-collapse", page(ref("text", "[[1, 1, 2, 2]]"), "\n\n\n\n\n\n\n\nA",
                                  ref("text", "[[3, 3, 4, 4]]"), "\n\n\n\n\n\nB"), 640, 480, {}),
    ("newlines-collapse", page(ref("text", "[[1, 1, 2, 2]]"), "\n\n\n\n\n\n\n\nA",
                               ref("text", "[[3, 3, 4, 4]]"), "\n\n\n\n\n\nB\n\n\n\n\n\n\n\n\n",
                               ref("text", "[[5, 5, 6, 6]]"), "C"), 640, 480,
     {"collapse": True}),
    ("pdf-page-names", page(ref("image", "[[0, 0, 10, 10], [20, 20, 30, 30]]"), "\n",
                            ref("image", "[[40, 40, 50, 50]]")), 200, 100, {"page": 12}),
    ("label-image-variants", page(ref("Image", "[[0, 0, 10, 10]]"), "\n",
                                  ref("image ", "[[0, 0, 10, 10]]"), "\n",
                                  ref("image", "[[0, 0, 10, 10]]")), 640, 480, {}),
    ("multiline-label", ref("te\nxt", "[[1,\n2,\n3,\n4]]") + "\nbody", 640, 480, {}),
    ("huge-list", ref("text", "[" + ", ".join("[%d, %d, %d, %d]" % (i % 1000, (i * 7) % 1000,
                                                                    999, 999)
                                              for i in range(300)) + "]"), 2480, 3508, {}),
    ("huge-number", ref("text", "[[1" + "0" * 400 + ", 1e400, 5, 5]]"), 640, 480, {}),
    ("tiny-image", ref("image", "[[0, 0, 999, 999], [500, 500, 999, 999]]"), 1, 1, {}),
    ("large-image", ref("text", "[[1, 333, 666, 998]]"), 32768, 32768, {}),
]

# Raw bytes (not UTF-8, NUL inside): stored base64.
BYTE_CASES = [
    ("invalid-utf8", b"ok \xe2\x82 \xf0\x80\x80\x80 \xed\xa0\x80 \xff" +
     ref("text", "[[1, 2, 3, 4]]").encode() + b"\n\xc0\xaf end", 640, 480, {}),
    ("invalid-utf8-in-label", ("<|ref|>ti").encode() + b"\xf0\x9f\x98" +
     ("tle<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nT").encode(), 640, 480, {}),
    ("nul-bytes", b"a\x00b" + ref("text", "[[1, 2,\x003, 4]]").encode() + b"\n\x00", 640, 480,
     {}),
    ("truncated-eos", (ref("text", "[[1, 2, 3, 4]]") + "\nabc").encode() + EOS.encode()[:-2],
     640, 480, {}),
]

# The crop case: a page drawn here, cropped by Pillow as the script does.
CROP_PAGE = page(
    ref("title", "[[10, 10, 990, 80]]"), "\n# Crops\n\n",
    ref("image", "[[0, 0, 999, 999]]"), "\n",
    ref("image", "[[100, 120, 430, 610], [433, 97, 998, 777]]"), "\n",
    ref("image", "[[300, 300, 300, 900], [700, 200, 200, 800]]"), "\n",   # empty, inverted
    ref("image", "[[5, 900, 995, 999]]"), "\n",
    ref("text", "[[1, 1, 2, 2]]"), "\ntail")
CROP_W, CROP_H = 97, 61

# grid_to_pixel sweep: every integer grid value and some fractional ones, for several sizes
SWEEP_SIZES = [1, 2, 3, 7, 333, 640, 999, 1000, 1024, 1653, 2339, 32768]
SWEEP_FRACTIONS = [0.5, 1.25, 0.001, 333.3, 499.5, 666.6666666666666, 998.9999, 998.99999999999,
                   123.456, 7.0, 1e-300, 998.5]


def make_page_image():
    img = Image.new("RGB", (CROP_W, CROP_H))
    px = img.load()
    for y in range(CROP_H):
        for x in range(CROP_W):
            r = (x * 255) // (CROP_W - 1)
            g = (y * 255) // (CROP_H - 1)
            b = ((x // 8 + y // 8) % 2) * 200 + (x * y) % 50
            px[x, y] = (r, g, b)
    return img


def reference_crops(img, raw, out_dir, quality):
    """The script's crop loop (Pillow; quality None = Pillow's default, as the script)."""
    os.makedirs(out_dir, exist_ok=True)
    res = postprocess(raw.encode(), img.width, img.height)
    for region in res["regions"]:
        if region["label"] != "image":
            continue
        for b in region["boxes"]:
            try:
                c = img.crop(tuple(b["px"]))
                path = os.path.join(out_dir, "%d.jpg" % b["crop"])
                if quality is None:
                    c.save(path)
                else:
                    c.save(path, quality=quality)
            except (ValueError, SystemError):
                pass
    return sorted(os.listdir(out_dir), key=lambda n: int(n.split(".")[0]))


def case_entry(name, raw, W, H, opts):
    collapse = opts.get("collapse", False)
    pg = opts.get("page", -1)
    e = {"name": name, "width": W, "height": H, "collapse_newlines": collapse, "page": pg}
    if isinstance(raw, str):
        e["raw"] = raw
        raw = raw.encode()
    else:
        e["raw_b64"] = base64.b64encode(raw).decode()
    e["expect"] = postprocess(raw, W, H, collapse, pg)
    return e, raw


def fuzz_seed(raw, W, H, opts):
    flags = (1 if opts.get("collapse") else 0) | (2 if opts.get("page", -1) >= 0 else 0)
    flags |= (max(opts.get("page", 0), 0) & 0x3f) << 2
    return struct.pack("<HHB", min(W, 65536) - 1, min(H, 65536) - 1, flags) + raw


def main():
    random.seed(0)
    if os.path.isdir(FIX):
        shutil.rmtree(FIX)
    os.makedirs(FIX)
    os.makedirs(CORPUS, exist_ok=True)

    cases = []
    for name, raw, W, H, opts in CASES + BYTE_CASES:
        e, raw_bytes = case_entry(name, raw, W, H, opts)
        cases.append(e)
        if len(raw_bytes) < 4096:
            with open(os.path.join(CORPUS, name), "wb") as f:
                f.write(fuzz_seed(raw_bytes, W, H, opts))

    img = make_page_image()
    img.save(os.path.join(FIX, "page.png"))
    crop_case, _ = case_entry("crops", CROP_PAGE, CROP_W, CROP_H, {})
    cases.append(crop_case)
    crops = {
        "75": reference_crops(img, CROP_PAGE, os.path.join(FIX, "crops-q75"), None),
        "95": reference_crops(img, CROP_PAGE, os.path.join(FIX, "crops-q95"), 95),
    }

    sweep = []
    for size in SWEEP_SIZES:
        sweep.append({"size": size,
                      "int_px": [grid_to_pixel(v, size) for v in range(1000)],
                      "fractions": SWEEP_FRACTIONS,
                      "fraction_px": [grid_to_pixel(v, size) for v in SWEEP_FRACTIONS]})

    doc = {"generator": "tests/reference/make_grounding_goldens.py",
           "python": sys.version.split()[0], "pillow": PIL.__version__,
           "cases": cases, "crop_case": "crops", "crop_image": "page.png", "crops": crops,
           "sweep": sweep}
    with open(os.path.join(FIX, "goldens.json"), "w", encoding="utf-8") as f:
        # one case per line keeps diffs readable
        f.write("{\n")
        keys = list(doc)
        for i, k in enumerate(keys):
            v = doc[k]
            if k in ("cases", "sweep"):
                f.write(' "%s": [\n' % k)
                f.write(",\n".join("  " + json.dumps(c, ensure_ascii=False, separators=(",", ":"))
                                   for c in v))
                f.write("\n ]")
            else:
                f.write(" %s: %s" % (json.dumps(k), json.dumps(v, ensure_ascii=False)))
            f.write(",\n" if i + 1 < len(keys) else "\n")
        f.write("}\n")
    print("wrote %d cases, %d + %d crops" % (len(cases), len(crops["75"]), len(crops["95"])))


if __name__ == "__main__":
    main()
