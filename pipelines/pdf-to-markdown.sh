#!/usr/bin/env bash
# pdf-to-markdown.sh: OCRs every page of a PDF document into one markdown document, pages
# joined by the DeepSeek-OCR PDF script's "<--- Page Split --->" line.
#   pipelines/pdf-to-markdown.sh [options] document.pdf
# Run from a source tree, it uses the plugin of the build directory ($DSOCR_BUILD_DIR, else
# build/); otherwise the installed plugin. See pipelines/README.md.
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
prog=$(basename "$0")
. "$srcdir/pipelines/lib/default-model.sh"
model=${DSOCR_MODEL:-}
mode=   # empty: tiny with the bundled model, else gundam
dpi=144
max_new_tokens=8192
output=/dev/stdout
print=

usage() {
  cat <<EOF
usage: $prog [options] document.pdf

Recognises every page of document.pdf with DeepSeek-OCR and writes the markdown.

options:
  --model DIR           DeepSeek-OCR model directory (default: \$DSOCR_MODEL, else the
                        bundled dsocr-reader, models/dsocr-reader, when present;
                        otherwise the tiny random-weight test model, whose text is noise)
  --mode MODE           tiny, small, base, large or gundam (default: tiny with the
                        bundled model, else gundam)
  --dpi DPI             page rendering resolution (default: $dpi)
  --max-new-tokens N    tokens generated per page at most (default: $max_new_tokens)
  -o, --output FILE     write the markdown to FILE (default: standard output)
  --print               print the gst-launch-1.0 command instead of running it
  -h, --help            this text
EOF
}

die() { echo "$prog: $*" >&2; exit 1; }
print_command() { printf '%q ' "$@"; echo; }

input=
while [ $# -gt 0 ]; do
  case $1 in
    --model) [ $# -ge 2 ] || die "--model needs a directory"; model=$2; shift 2 ;;
    --mode) [ $# -ge 2 ] || die "--mode needs a value"; mode=$2; shift 2 ;;
    --dpi) [ $# -ge 2 ] || die "--dpi needs a value"; dpi=$2; shift 2 ;;
    --max-new-tokens) [ $# -ge 2 ] || die "--max-new-tokens needs a value"; max_new_tokens=$2; shift 2 ;;
    -o|--output) [ $# -ge 2 ] || die "$1 needs a file"; output=$2; shift 2 ;;
    --print) print=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;;
    *) [ -z "$input" ] || { usage >&2; exit 2; }; input=$1; shift ;;
  esac
done
[ -n "$input" ] || { usage >&2; exit 2; }

default_model gundam

if [ -z "$print" ]; then
  [ -r "$input" ] || die "cannot read $input"
  [ -r "$model/config.json" ] || die "no model in $model (config.json missing): pass --model DIR or set DSOCR_MODEL"
  command -v gst-launch-1.0 >/dev/null || die "gst-launch-1.0 not found: install gstreamer1.0-tools"
  # filesink appends, so that standard output is not truncated: empty a file output first
  [ "$output" = /dev/stdout ] || : > "$output"
  builddir=${DSOCR_BUILD_DIR:-$srcdir/build}
  if [ -e "$builddir/gst/libgstdsocr.so" ]; then
    export GST_PLUGIN_PATH="$builddir/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
  fi
  for element in dsocrpdfdec dsocrpreprocess dsocrencode dsocrdecode dsocrresult; do
    gst-inspect-1.0 "$element" >/dev/null 2>&1 ||
      die "element $element not found: build the plugin (meson setup build && meson compile -C build; dsocrpdfdec needs libpoppler-glib-dev) or set DSOCR_BUILD_DIR"
  done
fi

${print:+print_command} gst-launch-1.0 -q -e \
  filesrc location="$input" ! dsocrpdfdec dpi="$dpi" ! \
  dsocrpreprocess mode="$mode" ! \
  dsocrencode model-location="$model" ! \
  dsocrdecode model-location="$model" max-new-tokens="$max_new_tokens" ! \
  dsocrresult format=markdown ! \
  filesink location="$output" append=true
