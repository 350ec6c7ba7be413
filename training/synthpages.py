#!/usr/bin/env python3
"""Synthetic printed pages for the dsocr-reader model: the image and its DeepSeek-OCR targets.

A page is a random size and tint, holds an optional title and a paragraph of two or three short
lines (at most 18 characters, fonts of 38 to 48 pixels once the page is squashed to the model's
512 x 512) in one of five DejaVu faces (Debian's fonts-dejavu-core), and is described twice,
once per prompt the model is trained on. Lines keep to a grid: one line on each of the view's
eight rows of 64 pixels (an eighth of the page's height), centred on it, as lines of a form are.

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
         "DejaVuSansMono.ttf"]
TITLE_FONTS = ["DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf"]

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

MAX_LINES = 3          # lines of a paragraph (a title may come on top)
MAX_CHARS = 18         # characters of a line
BODY_PX = (38, 48)     # font size range, model pixels

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


# The characters whose positions make_page reports: printable ASCII, the space first.
CELL_CHARS = [chr(c) for c in range(32, 127)]
_CELL_INDEX = {c: i for i, c in enumerate(CELL_CHARS)}


def _mark_cells(cells, patches, d, x0, y_top, y_bottom, s, font, sx, sy):
    """Adds the characters of line @s (drawn at x0, between y_top and y_bottom in page pixels)
    to @cells: {(row, col) of the 64 x 64 cell of the 512 x 512 model view: [indices in reading
    order]}, and to @patches: {(row, col) of SAM's 16 x 16 patch: set of indices}, each
    character placed by the centre of its advance (a space marks the gap between words).
    -> [row * 8 + col of the cell of each character of @s, -1 where none]"""
    where = []
    for i, ch in enumerate(s):
        k = _CELL_INDEX.get(ch)
        if k is None:
            where.append(-1)
            continue
        cx = (x0 + (d.textlength(s[:i], font=font) + d.textlength(s[:i + 1], font=font)) / 2) / sx
        cy = (y_top + y_bottom) / 2 / sy
        row, col = min(7, max(0, int(cy // 64))), min(7, max(0, int(cx // 64)))
        cells.setdefault((row, col), []).append(k)
        where.append(row * 8 + col)
        if ch != " ":
            row, col = min(31, max(0, int(cy // 16))), min(31, max(0, int(cx // 16)))
            patches.setdefault((row, col), set()).add(k)
    return where


def _row_top(d, font, row, sy):
    """-> the y (page pixels) at which to draw a line in @font so that its glyphs, from the
    top of a capital to the foot of a descender, are centred on cell row @row (0..7)."""
    top, bottom = d.textbbox((0, 0), "Hg", font=font)[1::2]
    return (64 * row + 32) * sy - (top + bottom) / 2


def _box(bb, w, h):
    x1, y1, x2, y2 = bb
    q = lambda v, s: max(0, min(999, int(round(v / s * 999))))  # noqa: E731
    return [q(x1, w), q(y1, h), q(x2, w), q(y2, h)]


def make_page(seed, max_lines=MAX_LINES):
    """-> (PIL RGB image, {"free": text, "grounding": text, "lines": [...], "title": str|None,
    "size": [w, h], "cells" and "patches": as _mark_cells fills them, "free_cells": the cell of
    each character of "free", -1 for its newlines}).
    @max_lines (1..MAX_LINES) caps the paragraph and, below MAX_LINES, leaves the title out
    (the training's curriculum starts with single lines); the held-out pages use the default."""
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
    # Lines sit on the rows of the vision tokens' cells, one line centred on each row of 64 x 64
    # cells: where two lines shared a row of cells (any other spacing), most tokens held parts
    # of both, and the tiny view's 64 tokens lost characters between them.
    row = rng.randint(0, 2)
    # font size in model pixels: a glyph spans two to three of SAM's 16-pixel patches and a
    # vision token's 64-pixel cell holds two or three of them
    body_px = rng.uniform(BODY_PX[0], BODY_PX[1])
    body = ImageFont.truetype(FONT_DIR + rng.choice(FONTS), max(8, int(body_px * sy)))
    usable = (512 - 2 * margin) * sx

    blocks = []
    cells, patches = {}, {}
    title = None
    if rng.random() < 0.4 and max_lines >= MAX_LINES:
        title = _title(rng)
        tfont = ImageFont.truetype(FONT_DIR + rng.choice(TITLE_FONTS),
                                   max(8, int(rng.uniform(1.1, 1.25) * body_px * sy)))
        while d.textlength(title, font=tfont) > usable and " " in title:
            title = title.rsplit(" ", 1)[0]
        y = _row_top(d, tfont, row, sy)
        bb = d.textbbox((x0, y), title, font=tfont)
        d.text((x0, y), title, font=tfont, fill=ink)
        title_cells = _mark_cells(cells, patches, d, x0, bb[1], bb[3], title, tfont, sx, sy)
        blocks.append(("title", bb, "# " + title))
        row += rng.randint(1, 2)                # sometimes an empty row below the title

    n_lines = rng.randint(min(2, max_lines), max_lines)
    lines, boxes, line_cells = [], [], []
    for _ in range(n_lines):              # rows 0..6 at most: start <= 2, title gap <= 2, 3 lines
        y = _row_top(d, body, row, sy)
        s = _line(rng, MAX_CHARS)
        while d.textlength(s, font=body) > usable and " " in s:
            s = s.rsplit(" ", 1)[0]
        if d.textlength(s, font=body) > usable:
            continue
        bb = d.textbbox((x0, y), s, font=body)
        d.text((x0, y), s, font=body, fill=ink)
        line_cells.append(_mark_cells(cells, patches, d, x0, bb[1], bb[3], s, body, sx, sy))
        lines.append(s)
        boxes.append(bb)
        row += 1
    if boxes:
        bb = (min(b[0] for b in boxes), min(b[1] for b in boxes),
              max(b[2] for b in boxes), max(b[3] for b in boxes))
        blocks.append(("text", bb, "\n".join(lines)))

    if rng.random() < 0.15:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8) * sy))

    free = "\n".join(([title] if title else []) + lines)
    free_cells = []
    for where in ([title_cells] if title else []) + line_cells:
        free_cells += ([-1] if free_cells else []) + where
    grounding = "".join(f"<|ref|>{kind}<|/ref|><|det|>[{_box(bb, w, h)}]<|/det|>\n{text}\n\n"
                        for kind, bb, text in blocks)
    return img, {"free": free, "grounding": grounding, "title": title, "lines": lines,
                 "size": [w, h], "cells": cells, "free_cells": free_cells,
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
