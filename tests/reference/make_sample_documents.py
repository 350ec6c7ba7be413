#!/usr/bin/env python3
"""Writes the sample documents of tests/fixtures/sample/, which the example pipelines
(pipelines/*.sh) and scripts/run-main.sh run on:

  sample.pdf  a two-page A4 report: page 1 has a title, two paragraphs and a ruled table,
              page 2 a heading, a bulleted list and a grey figure with a caption. Text in the
              standard PDF fonts Helvetica and Helvetica-Bold (not embedded: every PDF reader,
              poppler included, substitutes an installed sans-serif font).
  sample.png  a 960 x 640 greyscale receipt drawn with Pillow in DejaVu Sans
              (fonts-dejavu-core).
  reader.pdf  two small pages (440 x 400 pt), a title and three short lines each in large
              DejaVu Sans (named, not embedded: poppler finds fonts-dejavu-core through
              fontconfig), the kind of page the bundled model models/dsocr-reader reads, used by
              scripts/run-main.sh.

The PDF is written object by object here (cross-reference offsets computed as it goes), so
it needs no PDF library and comes out byte-identical from run to run. Run from the source
tree:

    python3 tests/reference/make_sample_documents.py
"""
import os
import sys

from PIL import Image, ImageDraw, ImageFont

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "..", "fixtures", "sample")

A4 = (595, 842)  # points
MARGIN = 64


def pdf_string(text):
    """A PDF literal string: (text) with its delimiters escaped."""
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


class Page:
    """A content stream in PDF operators, with y measured down from the top of the page."""

    def __init__(self, size=A4):
        self.ops = []
        self.size = size

    def text(self, x, y, size, line, bold=False):
        font = "/F2" if bold else "/F1"
        self.ops.append("BT %s %g Tf %g %g Td %s Tj ET"
                        % (font, size, x, self.size[1] - y, pdf_string(line)))

    def line(self, x1, y1, x2, y2, width=0.8):
        h = self.size[1]
        self.ops.append("%g w %g %g m %g %g l S" % (width, x1, h - y1, x2, h - y2))

    def box(self, x, y, w, h, grey):
        self.ops.append("%g g %g %g %g %g re f 0 g" % (grey, x, self.size[1] - y - h, w, h))

    def stream(self):
        return "\n".join(self.ops).encode("ascii")


def page_one():
    p = Page()
    p.text(MARGIN, 96, 24, "Quarterly Operations Report", bold=True)
    p.text(MARGIN, 124, 11, "Northwind Logistics - Third Quarter 2024")
    paragraphs = [
        ["Shipments grew by twelve percent over the second quarter, driven by the new",
         "regional depot in Lyon. Average delivery time fell from 3.4 to 2.9 days, and",
         "returns stayed below one percent of all parcels handled."],
        ["Fuel costs rose sharply in August. The fleet renewal programme replaced",
         "fourteen vans with electric models, which offsets part of the increase and",
         "will reduce maintenance costs from next year on."],
    ]
    y = 170
    for para in paragraphs:
        for ln in para:
            p.text(MARGIN, y, 11, ln)
            y += 16
        y += 14
    p.text(MARGIN, y + 10, 14, "Results by region", bold=True)
    # a ruled table: header row and four data rows
    rows = [("Region", "Parcels", "On time", "Revenue (EUR)"),
            ("North", "18,420", "96.1%", "412,300"),
            ("South", "15,975", "94.8%", "366,150"),
            ("East", "11,204", "97.3%", "251,900"),
            ("West", "9,861", "95.5%", "228,400")]
    cols = [MARGIN, MARGIN + 130, MARGIN + 250, MARGIN + 350, A4[0] - MARGIN]
    top = y + 30
    row_h = 24
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            p.text(cols[j] + 6, top + i * row_h + 16, 11, cell, bold=(i == 0))
    for i in range(len(rows) + 1):
        p.line(cols[0], top + i * row_h, cols[-1], top + i * row_h, 1.2 if i in (0, 1) else 0.6)
    for x in cols:
        p.line(x, top, x, top + len(rows) * row_h, 0.6)
    p.text(MARGIN, A4[1] - 40, 9, "Page 1 of 2")
    return p


def page_two():
    p = Page()
    p.text(MARGIN, 96, 18, "Outlook for the fourth quarter", bold=True)
    items = ["Open the second depot in Toulouse in November.",
             "Extend weekend delivery to all northern routes.",
             "Replace the remaining diesel vans by March 2025.",
             "Publish the customer satisfaction survey results."]
    y = 136
    for it in items:
        p.box(MARGIN + 4, y - 7, 5, 5, 0)
        p.text(MARGIN + 18, y, 11, it)
        y += 20
    # a figure: bars of a chart on a light grey panel
    top = y + 24
    p.box(MARGIN, top, A4[0] - 2 * MARGIN, 220, 0.92)
    for k, h in enumerate([90, 130, 110, 170, 150]):
        p.box(MARGIN + 40 + k * 85, top + 200 - h, 45, h, 0.35)
    p.text(MARGIN, top + 244, 10, "Figure 1: Parcels per month, July to November (thousands).")
    p.text(MARGIN, top + 284, 11, "Prepared by the operations team. Contact: ops@northwind.example")
    p.text(MARGIN, A4[1] - 40, 9, "Page 2 of 2")
    return p


# The pages of reader.pdf: what the bundled model (models/dsocr-reader) was trained to read
# (training/synthpages.py), a title and short lines of everyday words, numbers, amounts, dates
# and codes in a DejaVu face, as large as the training pages once tiny mode squashes the page
# to 512 x 512 (32 pt at dsocrpdfdec's 144 dpi is 64 pixels, 41 of the model's), one line on
# each row of the model's 64-pixel cells as on those pages (a row is an eighth of the page).
READER_SIZE = (440, 400)  # points: 880 x 800 pixels at the 144 dpi of dsocrpdfdec
READER_ROW = READER_SIZE[1] / 8
READER_FONTS = (b"DejaVuSans", b"DejaVuSans-Bold")
READER_PAGES = [
    ("Delivery Notice", ["Order 4821 ready", "Total $129.50 paid", "Due 14 Mar 2025"]),
    ("Meeting Notes", ["Team meeting today", "Room 12 office", "Review 3 Apr 2026"]),
]


def reader_baseline(row, size):
    """The baseline (points down from the top) that centres a line's glyphs, from the top of a
    capital (0.729 em in DejaVu Sans) to the foot of a descender (0.236 em), on cell row @row."""
    return (row + 0.5) * READER_ROW + (0.729 - 0.236) / 2 * size


def reader_page(title, lines):
    p = Page(READER_SIZE)
    p.text(30, reader_baseline(1, 36), 36, title, bold=True)
    for i, line in enumerate(lines):
        p.text(30, reader_baseline(2 + i, 32), 32, line)
    return p


def font_widths(name):
    """The /Widths of a font that is not one of PDF's standard 14 (empty for those): without
    them a reader spaces the substitute's glyphs by Helvetica's metrics."""
    if name.startswith(b"Helvetica"):
        return b""
    f = font(name.endswith(b"-Bold"), 1000)
    widths = b" ".join(b"%d" % round(f.getlength(chr(c))) for c in range(32, 127))
    return b" /FirstChar 32 /LastChar 126 /Widths [%s]" % widths


def write_pdf(path, pages, title=b"Quarterly Operations Report", author=b"Northwind Logistics",
              fonts=(b"Helvetica", b"Helvetica-Bold")):
    objects = []  # bodies of objects 1..n, bytes

    def add(body):
        objects.append(body)
        return len(objects)

    catalog = add(None)
    pages_obj = add(None)
    font1, font2 = (add(b"<< /Type /Font /Subtype /Type1 /BaseFont /%s "
                        b"/Encoding /WinAnsiEncoding%s >>" % (name, font_widths(name)))
                    for name in fonts)
    kids = []
    for pg in pages:
        data = pg.stream()
        content = add(b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream")
        kids.append(add(("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] "
                         "/Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> "
                         "/Contents %d 0 R >>"
                         % (pages_obj, pg.size[0], pg.size[1], font1, font2,
                            content)).encode()))
    info = add(b"<< /Title (%s) /Author (%s) >>" % (title, author))
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_obj
    objects[pages_obj - 1] = ("<< /Type /Pages /Kids [%s] /Count %d >>"
                              % (" ".join("%d 0 R" % k for k in kids), len(kids))).encode()

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += (b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objects) + 1, catalog, info, xref))
    with open(path, "wb") as f:
        f.write(out)


def font(bold, size):
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for d in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu"):
        if os.path.exists(os.path.join(d, name)):
            return ImageFont.truetype(os.path.join(d, name), size)
    sys.exit("make_sample_documents: DejaVu fonts not found (install fonts-dejavu-core)")


def write_png(path):
    img = Image.new("L", (960, 640), 255)
    d = ImageDraw.Draw(img)
    d.text((60, 40), "CORNER CAFE", font=font(True, 40), fill=0)
    d.text((60, 96), "12 Harbour Street, Portsmouth", font=font(False, 22), fill=40)
    d.text((60, 126), "Receipt 0042    2024-10-17 09:41", font=font(False, 22), fill=40)
    d.line((60, 170, 900, 170), fill=0, width=2)
    items = [("Flat white", "2", "6.40"), ("Croissant", "1", "2.80"),
             ("Orange juice", "1", "3.20"), ("Porridge with berries", "1", "5.50")]
    y = 190
    for name, qty, price in items:
        d.text((60, y), name, font=font(False, 26), fill=0)
        d.text((640, y), qty, font=font(False, 26), fill=0)
        d.text((780, y), price, font=font(False, 26), fill=0)
        y += 44
    d.line((60, y + 6, 900, y + 6), fill=0, width=2)
    d.text((60, y + 24), "TOTAL", font=font(True, 30), fill=0)
    d.text((760, y + 24), "17.90", font=font(True, 30), fill=0)
    d.text((60, y + 90), "Thank you for your visit!", font=font(False, 22), fill=60)
    img.save(path, optimize=True)


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    write_pdf(os.path.join(OUT_DIR, "sample.pdf"), [page_one(), page_two()])
    write_png(os.path.join(OUT_DIR, "sample.png"))
    write_pdf(os.path.join(OUT_DIR, "reader.pdf"), [reader_page(t, l) for t, l in READER_PAGES],
              title=b"Delivery Notice", author=b"gst-dsocr", fonts=READER_FONTS)
    for name in ("sample.pdf", "sample.png", "reader.pdf"):
        p = os.path.join(OUT_DIR, name)
        print("%s: %d bytes" % (os.path.relpath(p), os.path.getsize(p)))


if __name__ == "__main__":
    main()
