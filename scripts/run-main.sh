#!/usr/bin/env bash
# run-main.sh: the main job: builds gst-dsocr when needed (build/), then turns a PDF document
# (by default the bundled two-page sample, tests/fixtures/sample/sample.pdf) into markdown
# with pipelines/pdf-to-markdown.sh.
#   scripts/run-main.sh [--model DIR] [-o FILE] [document.pdf]
# The markdown goes to standard output, or to FILE; build output and notes go to standard
# error. Needs the packages of scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

prog=$(basename "$0")
builddir=${DSOCR_BUILD_DIR:-build}
model=${DSOCR_MODEL:-}
output=
input=tests/fixtures/sample/sample.pdf

usage() {
  cat <<EOF
usage: $prog [--model DIR] [-o FILE] [document.pdf]

Builds the project in $builddir/ when needed and writes the markdown of document.pdf (default:
$input) to standard output or FILE.

  --model DIR    DeepSeek-OCR model directory (default: \$DSOCR_MODEL, else the tiny
                 random-weight test model: it runs the whole pipeline, but its text is noise)
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
else
  echo "$prog: note: the default model is the tiny random-weight test model (tests/fixtures/tiny-ocr-e2e): the pipeline runs end to end, but its text is noise until a trained model ships; pass --model DIR or set DSOCR_MODEL" >&2
  # a short page of that noise is enough
  args+=(--model tests/fixtures/tiny-ocr-e2e --max-new-tokens 200)
fi
[ -z "$output" ] || args+=(-o "$output")

case $builddir in /*) ;; *) builddir=$PWD/$builddir ;; esac
DSOCR_BUILD_DIR=$builddir pipelines/pdf-to-markdown.sh "${args[@]}" "$input"
