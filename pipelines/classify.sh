#!/usr/bin/env bash
# classify.sh: OCRs the pages of a PDF document and labels each page with a DeepSeek-V2
# sequence classifier; prints one line per page ("page 2: invoice 0.913 kept") from the
# dsocr-class bus messages and writes the JSON results of the pages that pass --keep.
#   pipelines/classify.sh [options] document.pdf
# Run from a source tree, it uses the plugin of the build directory ($DSOCR_BUILD_DIR, else
# build/); otherwise the installed plugin. See pipelines/README.md.
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
prog=$(basename "$0")
. "$srcdir/pipelines/lib/default-model.sh"
tiny_classifier=$srcdir/tests/fixtures/sample/tiny-classifier
model=${DSOCR_MODEL:-}
classifier=${DSOCR_CLASSIFIER:-}
keep=
mode=   # empty: tiny with the bundled model, else gundam
dpi=144
max_new_tokens=8192
output=/dev/null
print=

usage() {
  cat <<EOF
usage: $prog [options] document.pdf

Recognises every page of document.pdf with DeepSeek-OCR, classifies its markdown and prints
one line per page: its number, best label, that label's probability, and whether it was kept.

options:
  --model DIR           DeepSeek-OCR model directory (default: \$DSOCR_MODEL, else the
                        bundled dsocr-reader, models/dsocr-reader, when present;
                        otherwise the tiny random-weight test model, whose text is noise)
  --classifier DIR      DeepseekV2ForSequenceClassification directory with tokenizer.json
                        (default: \$DSOCR_CLASSIFIER, else a tiny random-weight classifier
                        with the labels negative, neutral and positive)
  --keep LABELS         comma-separated labels: only the pages with one of them as best label
                        are kept (default: every page)
  --mode MODE           tiny, small, base, large or gundam (default: tiny with the
                        bundled model, else gundam)
  --dpi DPI             page rendering resolution (default: $dpi)
  --max-new-tokens N    tokens generated per page at most (default: $max_new_tokens)
  -o, --output FILE     write the JSON results of the kept pages to FILE, one per line
  --print               print the gst-launch-1.0 command instead of running it
  -h, --help            this text
EOF
}

die() { echo "$prog: $*" >&2; exit 1; }
print_command() { printf '%q ' "$@"; echo; }

# Turns gst-launch-1.0 -m's dsocr-class messages into one line per page; the page is counted
# from the message's timestamp (dsocrpdfdec spaces pages one page-duration, 1 s, apart).
page_labels() {
  if [ -n "$print" ]; then
    cat
    return
  fi
  awk '
    function field(name,    s) {
      if (!match($0, " " name "=\\([a-z0-9]+\\)(\"([^\"\\\\]|\\\\.)*\"|[^,;]*)"))
        return ""
      s = substr($0, RSTART, RLENGTH)
      sub(/^[^)]*\)/, "", s)
      gsub(/^"|"$/, "", s)
      gsub(/\\/, "", s)
      return s
    }
    /\(element\): dsocr-class, / {
      printf "page %d: %s %.3f %s\n", field("timestamp") / 1000000000 + 1, field("label"),
        field("score"), field("passed") == "true" ? "kept" : "dropped"
      fflush()
    }'
}

input=
while [ $# -gt 0 ]; do
  case $1 in
    --model) [ $# -ge 2 ] || die "--model needs a directory"; model=$2; shift 2 ;;
    --classifier) [ $# -ge 2 ] || die "--classifier needs a directory"; classifier=$2; shift 2 ;;
    --keep) [ $# -ge 2 ] || die "--keep needs labels"; keep=$2; shift 2 ;;
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
if [ -z "$classifier" ]; then
  classifier=$tiny_classifier
  [ -n "$print" ] || echo "$prog: no --classifier: using a tiny random-weight classifier; its labels are arbitrary" >&2
fi

if [ -z "$print" ]; then
  [ -r "$input" ] || die "cannot read $input"
  [ -r "$model/config.json" ] || die "no model in $model (config.json missing): pass --model DIR or set DSOCR_MODEL"
  [ -r "$classifier/config.json" ] || die "no classifier in $classifier (config.json missing): pass --classifier DIR or set DSOCR_CLASSIFIER"
  command -v gst-launch-1.0 >/dev/null || die "gst-launch-1.0 not found: install gstreamer1.0-tools"
  [ "$output" = /dev/null ] || : > "$output"
  builddir=${DSOCR_BUILD_DIR:-$srcdir/build}
  if [ -e "$builddir/gst/libgstdsocr.so" ]; then
    export GST_PLUGIN_PATH="$builddir/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
  fi
  for element in dsocrpdfdec dsocrpreprocess dsocrencode dsocrdecode dsclassify dsocrresult; do
    gst-inspect-1.0 "$element" >/dev/null 2>&1 ||
      die "element $element not found: build the plugin (meson setup build && meson compile -C build; dsocrpdfdec needs libpoppler-glib-dev) or set DSOCR_BUILD_DIR"
  done
fi

${print:+print_command} gst-launch-1.0 -m -e \
  filesrc location="$input" ! dsocrpdfdec dpi="$dpi" ! \
  dsocrpreprocess mode="$mode" ! \
  dsocrencode model-location="$model" ! \
  dsocrdecode model-location="$model" max-new-tokens="$max_new_tokens" ! \
  dsclassify model-location="$classifier" ${keep:+pass-labels="$keep"} ! \
  dsocrresult format=json ! \
  filesink location="$output" | page_labels
