#!/usr/bin/env python3
"""Synthetic printed pages for the dsocr-reader model: the image and its DeepSeek-OCR targets.

A page is a random size and tint, holds an optional title and a paragraph of two to four short
lines (at most 22 characters, glyphs 26 to 38 pixels tall once the page is squashed to the
model's 512 x 512) in one of the DejaVu faces (Debian's fonts-dejavu-core), and is described twice, once per
prompt the model is trained on:

  "<image>\\nFree OCR."                                     the lines, one per line
  "<image>\\n<|grounding|>Convert the document to markdown."  one grounded block per element:
      <|ref|>title<|/ref|><|det|>[[x1, y1, x2, y2]]<|/det|>\\n# Title\\n\\n
      <|ref|>text<|/ref|><|det|>[[x1, y1, x2, y2]]<|/det|>\\nline\\nline\\n\\n

Boxes are DeepSeek-OCR's: corners in the original page's pixels, scaled to 0..999 by the page's
width and height. Everything is drawn from random.Random(seed), so a seed names a page. For the
training's auxiliary losses a page also reports which characters lie in each 64 x 64 cell of
the 512 x 512 view the model sees (one cell per vision token) and in each 16 x 16 patch.

Usage: python3 training/synthpages.py --seed 7 --out page.png   (writes the image, prints targets)
"""

import argparse
import json
import random

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu/"
FONTS = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
         "DejaVuSansMono.ttf", "DejaVuSansCondensed.ttf", "DejaVuSerifCondensed.ttf",
         "DejaVuSans-Oblique.ttf"]
TITLE_FONTS = ["DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansCondensed-Bold.ttf"]

PROMPT_FREE = "<image>\nFree OCR."
PROMPT_GROUNDING = "<image>\n<|grounding|>Convert the document to markdown."

# Everyday words of letters, invoices and notices: the model reads words it has seen, in any
# order, plus numbers, amounts, dates and codes it must read character by character.
WORDS = """
the of and to in is for on with as by at from that this are was be or an it not we you our your
all new one two three four five six ten more most some any each other than then when where which
who will can may must should would could has have had do does did done made make use used using
time year years month week day days today date page pages line lines part parts item items total
price cost costs paid pay payment due amount balance account order orders number name names
address city street road house room office home work works report reports note notes letter
letters invoice invoices receipt bill bills tax fee fees rate rates sale sales shop store market
bank card cash check cheque credit debit loan fund funds share shares stock plan plans project
team group company client clients customer service services product products sample model data
file files record records list lists table form forms copy copies print printed paper document
text word words read write open close closed start end first last next previous final draft
section chapter figure summary result results review notice policy terms rules law court state
public private local national world city county north south east west center central main high
low long short large small big little good best better great full free open early late quick
slow clear simple easy hard real true white black red blue green gray light dark old young
water food power energy light heat air train bus car ship flight travel trip visit meeting event
events news weather school class course student students teacher book books library museum art
music film game games sport club park garden tree trees river lake sea coast island hill field
farm village town people person family friend friends child children man woman doctor nurse
health care help support staff member members board director manager office hours open monday
tuesday wednesday thursday friday saturday sunday january february march april may june july
august september october november december spring summer autumn winter morning evening night
please thank thanks dear sir madam regards sincerely attached enclosed below above following
request confirm update updated change changes delivery shipping return returns refund contact
phone email website online offline system systems network software hardware version release
test tests check checked ready send sent receive received keep kept hold held give given take
""".split()

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _token(rng):
    """One word of a line: mostly dictionary words, sometimes a number, amount, date or code."""
    r = rng.random()
    if r < 0.72:
        w = rng.choice(WORDS)
        c = rng.random()
        if c < 0.25:
            w = w.capitalize()
        elif c < 0.28:
            w = w.upper()
        return w
    if r < 0.80:
        return str(rng.randint(0, 9999))
    if r < 0.86:
        return f"${rng.randint(1, 999)}.{rng.randint(0, 99):02d}"
    if r < 0.91:
        return f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1990, 2030)}"
    if r < 0.96:
        letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(rng.randint(2, 3)))
        return f"{letters}-{rng.randint(10, 9999)}"
    return f"{rng.randint(1, 99)}%"


def _line(rng, max_chars):
    words = [_token(rng) for _ in range(rng.randint(2, 5))]
    while len(" ".join(words)) > max_chars and len(words) > 1:
        words.pop()
    s = " ".join(words)[:max_chars]
    if rng.random() < 0.3:
        s += rng.choice(".,:;")
    return s.strip()


def _title(rng):
    return " ".join(rng.choice(WORDS).capitalize() for _ in range(rng.randint(1, 3)))


# The characters whose positions make_page reports (printable ASCII but the space).
CELL_CHARS = [chr(c) for c in range(33, 127)]
_CELL_INDEX = {c: i for i, c in enumerate(CELL_CHARS)}


def _mark_cells(cells, patches, d, x0, y_top, y_bottom, s, font, sx, sy):
    """Adds the characters of line @s (drawn at x0, between y_top and y_bottom in page pixels)
    to @cells: {(row, col) of the 64 x 64 cell of the 512 x 512 model view: set of indices},
    and to @patches, the same for SAM's 16 x 16 patches (by each glyph's centre)."""
    for i, ch in enumerate(s):
        k = _CELL_INDEX.get(ch)
        if k is None:
            continue
        cx = (x0 + (d.textlength(s[:i], font=font) + d.textlength(s[:i + 1], font=font)) / 2) / sx
        cy = (y_top + y_bottom) / 2 / sy
        row, col = min(7, max(0, int(cy // 64))), min(7, max(0, int(cx // 64)))
        cells.setdefault((row, col), set()).add(k)
        row, col = min(31, max(0, int(cy // 16))), min(31, max(0, int(cx // 16)))
        patches.setdefault((row, col), set()).add(k)


def _box(bb, w, h):
    x1, y1, x2, y2 = bb
    q = lambda v, s: max(0, min(999, int(round(v / s * 999))))  # noqa: E731
    return [q(x1, w), q(y1, h), q(x2, w), q(y2, h)]


def make_page(seed, max_lines=4):
    """-> (PIL RGB image, {"free": text, "grounding": text, "lines": [...], "title": str|None}).
    @max_lines (1..4) caps the paragraph and, below 3, leaves the title out (the training's
    curriculum starts with single lines); the held-out pages use the default."""
    rng = random.Random(seed)
    # Work in the 512 x 512 space the model sees (tiny mode squashes the page to a square), then
    # scale the page to its own size.
    aspect = rng.uniform(0.75, 1.33)          # width / height
    scale = rng.uniform(1.0, 1.6)             # page pixels per model pixel, vertically
    h = int(512 * scale)
    w = int(h * aspect)
    sx, sy = w / 512, h / 512
    bg = tuple(rng.randint(228, 255) for _ in range(3))
    ink = tuple(rng.randint(0, 70) for _ in range(3))
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)

    margin = rng.randint(12, 40)              # model pixels
    x0 = margin * sx
    y = rng.randint(16, 60) * sy
    # cap-to-descender size in model pixels: a glyph spans one to two of SAM's 16-pixel patches
    body_px = rng.uniform(26, 38)
    body = ImageFont.truetype(FONT_DIR + rng.choice(FONTS), max(8, int(body_px * sy)))
    usable = (512 - 2 * margin) * sx

    blocks = []
    cells, patches = {}, {}
    title = None
    if rng.random() < 0.5 and max_lines >= 3:
        title = _title(rng)
        tfont = ImageFont.truetype(FONT_DIR + rng.choice(TITLE_FONTS),
                                   max(8, int(rng.uniform(1.15, 1.35) * body_px * sy)))
        while d.textlength(title, font=tfont) > usable and " " in title:
            title = title.rsplit(" ", 1)[0]
        bb = d.textbbox((x0, y), title, font=tfont)
        d.text((x0, y), title, font=tfont, fill=ink)
        _mark_cells(cells, patches, d, x0, bb[1], bb[3], title, tfont, sx, sy)
        blocks.append(("title", bb, "# " + title))
        y = bb[3] + rng.uniform(0.6, 1.4) * body_px * sy

    n_lines = rng.randint(min(2, max_lines), max_lines)
    spacing = rng.uniform(1.2, 1.6) * body_px * sy
    lines, boxes = [], []
    for _ in range(n_lines):
        if y + body_px * sy > h - 8 * sy:
            break
        s = _line(rng, 22)
        while d.textlength(s, font=body) > usable and " " in s:
            s = s.rsplit(" ", 1)[0]
        if d.textlength(s, font=body) > usable:
            continue
        bb = d.textbbox((x0, y), s, font=body)
        d.text((x0, y), s, font=body, fill=ink)
        _mark_cells(cells, patches, d, x0, bb[1], bb[3], s, body, sx, sy)
        lines.append(s)
        boxes.append(bb)
        y += spacing
    if boxes:
        bb = (min(b[0] for b in boxes), min(b[1] for b in boxes),
              max(b[2] for b in boxes), max(b[3] for b in boxes))
        blocks.append(("text", bb, "\n".join(lines)))

    if rng.random() < 0.2:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9) * sy))

    free = "\n".join(([title] if title else []) + lines)
    grounding = "".join(f"<|ref|>{kind}<|/ref|><|det|>[{_box(bb, w, h)}]<|/det|>\n{text}\n\n"
                        for kind, bb, text in blocks)
    return img, {"free": free, "grounding": grounding, "title": title, "lines": lines,
                 "size": [w, h], "cells": {k: sorted(v) for k, v in cells.items()},
                 "patches": {k: sorted(v) for k, v in patches.items()}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="page.png")
    args = ap.parse_args()
    img, t = make_page(args.seed)
    img.save(args.out)
    t.pop("cells")
    t.pop("patches")
    print(json.dumps(t, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
