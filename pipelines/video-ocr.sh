#!/usr/bin/env bash
# video-ocr.sh: OCRs the frames of a video file (slides, screen recordings, scanned pages
# filmed one after another) into JSON lines, one object per recognised frame.
#   pipelines/video-ocr.sh [options] VIDEO
# Frames are sampled at --rate frames per second; with --interval N, dsocrdecode recognises
# one sampled frame and passes the next N; a frame that shows the same page as the last
# recognised one reuses its result (skip-unchanged) unless --every-frame is given.
# Run from a source tree, it uses the plugin of the build directory ($DSOCR_BUILD_DIR, else
# build/); otherwise the installed plugin. See pipelines/README.md.
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
prog=$(basename "$0")
. "$srcdir/pipelines/lib/default-model.sh"
model=${DSOCR_MODEL:-}
mode=   # empty: tiny with the bundled model, else gundam
max_new_tokens=8192
rate=1/1
interval=0
skip_unchanged=true
output=/dev/stdout
print=

usage() {
  cat <<EOF
usage: $prog [options] VIDEO

Samples the frames of VIDEO (any format decodebin plays), recognises them with DeepSeek-OCR
and writes one JSON object per recognised frame and line. With --interval 0 (the default),
line N is the frame at (N - 1) / rate seconds.

options:
  --model DIR           DeepSeek-OCR model directory (default: \$DSOCR_MODEL, else the
                        bundled dsocr-reader, models/dsocr-reader, when present;
                        otherwise the tiny random-weight test model, whose text is noise)
  --mode MODE           tiny, small, base, large or gundam (default: tiny with the
                        bundled model, else gundam)
  --max-new-tokens N    tokens generated per frame at most (default: $max_new_tokens)
  --rate FPS            frames sampled per second, a fraction (default: $rate)
  --interval N          sampled frames passed unrecognised after each recognised one
                        (default: $interval)
  --every-frame         recognise every sampled frame, even when the page did not change
  -o, --output FILE     write the JSON lines to FILE (default: standard output)
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
    --max-new-tokens) [ $# -ge 2 ] || die "--max-new-tokens needs a value"; max_new_tokens=$2; shift 2 ;;
    --rate) [ $# -ge 2 ] || die "--rate needs a value"; rate=$2; shift 2 ;;
    --interval) [ $# -ge 2 ] || die "--interval needs a value"; interval=$2; shift 2 ;;
    --every-frame) skip_unchanged=false; shift ;;
    -o|--output) [ $# -ge 2 ] || die "$1 needs a file"; output=$2; shift 2 ;;
    --print) print=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;;
    *) [ -z "$input" ] || { usage >&2; exit 2; }; input=$1; shift ;;
  esac
done
[ -n "$input" ] || { usage >&2; exit 2; }
case $rate in */*) ;; *) rate=$rate/1 ;; esac

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
  for element in dsocrpreprocess dsocrencode dsocrdecode dsocrresult; do
    gst-inspect-1.0 "$element" >/dev/null 2>&1 ||
      die "element $element not found: build the plugin (meson setup build && meson compile -C build) or set DSOCR_BUILD_DIR"
  done
fi

${print:+print_command} gst-launch-1.0 -q -e \
  filesrc location="$input" ! decodebin ! \
  videorate drop-only=true ! "video/x-raw,framerate=$rate" ! \
  videoconvert ! video/x-raw,format=RGB ! \
  dsocrpreprocess mode="$mode" ! \
  dsocrencode model-location="$model" ! \
  dsocrdecode model-location="$model" max-new-tokens="$max_new_tokens" \
    interval="$interval" skip-unchanged="$skip_unchanged" ! \
  dsocrresult format=json ! \
  filesink location="$output" append=true
