#!/usr/bin/env bash
# run-main.sh: the main job: builds gst-dsocr when needed (build/), then turns a PDF document
# into markdown with pipelines/pdf-to-markdown.sh. With the bundled model (models/dsocr-reader)
# the default document is tests/fixtures/sample/reader.pdf, two short pages of the kind it
# reads; without it, the tiny random-weight test model runs the pipeline on
# tests/fixtures/sample/sample.pdf and its text is noise.
#   scripts/run-main.sh [--model DIR] [-o FILE] [document.pdf]
# The markdown goes to standard output, or to FILE; build output and notes go to standard
# error. Needs the packages of scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

prog=$(basename "$0")
builddir=${DSOCR_BUILD_DIR:-build}
model=${DSOCR_MODEL:-}
output=
bundled=models/dsocr-reader
input=

usage() {
  cat <<EOF
usage: $prog [--model DIR] [-o FILE] [document.pdf]

Builds the project in $builddir/ when needed and writes the markdown of document.pdf (default:
tests/fixtures/sample/reader.pdf with the bundled model, else tests/fixtures/sample/sample.pdf)
to standard output or FILE.

  --model DIR    DeepSeek-OCR model directory (default: \$DSOCR_MODEL, else the bundled
                 dsocr-reader (models/dsocr-reader) when present, else the tiny random-weight
                 test model, which runs the whole pipeline but writes noise)
  -o FILE        write the markdown to FILE
EOF
}

while [ $# -gt 0 ]; do
  case $1 in
    --model) [ $# -ge 2 ] || { usage >&2; exit 2; }; model=$2; shift 2 ;;
    -o|--output) [ $# -ge 2 ] || { usage >&2; exit 2; }; output=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;;
    *) input=$1; shift ;;
  esac
done

for tool in meson ninja gst-launch-1.0; do
  command -v "$tool" >/dev/null ||
    { echo "$prog: $tool not found: run scripts/install-deps.sh first" >&2; exit 1; }
done

# build (meson and ninja do nothing when everything is up to date)
if [ ! -f "$builddir/build.ninja" ]; then
  echo "$prog: configuring $builddir/" >&2
  meson setup "$builddir" >&2
fi
echo "$prog: building $builddir/" >&2
meson compile -C "$builddir" >&2
if [ ! -e "$builddir/gst/libgstdsocr.so" ]; then
  echo "$prog: $builddir/ has no GStreamer plugin: GStreamer or poppler-glib development files are missing (scripts/install-deps.sh)" >&2
  exit 1
fi

args=()
if [ -n "$model" ]; then
  args+=(--model "$model")
  [ -n "$input" ] || input=tests/fixtures/sample/sample.pdf
elif [ -r "$bundled/config.json" ]; then
  echo "$prog: using the bundled model $bundled (tiny mode); pass --model DIR or set DSOCR_MODEL for another" >&2
  # its pages are a few short lines: 256 tokens is plenty, and bounds a page it cannot read
  args+=(--model "$bundled" --max-new-tokens 256)
  [ -n "$input" ] || input=tests/fixtures/sample/reader.pdf
else
  echo "$prog: note: no bundled model ($bundled holds no weights): the tiny random-weight test model (tests/fixtures/tiny-ocr-e2e) runs the pipeline end to end, but its text is noise; pass --model DIR or set DSOCR_MODEL" >&2
  # a short page of that noise is enough
  args+=(--model tests/fixtures/tiny-ocr-e2e --max-new-tokens 200)
  [ -n "$input" ] || input=tests/fixtures/sample/sample.pdf
fi
[ -z "$output" ] || args+=(-o "$output")

case $builddir in /*) ;; *) builddir=$PWD/$builddir ;; esac
DSOCR_BUILD_DIR=$builddir pipelines/pdf-to-markdown.sh "${args[@]}" "$input"
