#!/usr/bin/env bash
# camera-ocr.sh: live OCR of a V4L2 camera, with the layout boxes the model finds drawn over
# the picture in a window.
#   pipelines/camera-ocr.sh [options]
# The camera is never held back by the model: a leaky queue keeps only the newest frame for
# the vision tower, dsocrdecode drops the oldest waiting frame when generation falls behind
# (leaky=downstream), and a frame that shows the same page as the last recognised one reuses
# its result (skip-unchanged). The window shows the recognised frames with their boxes.
# Run from a source tree, it uses the plugin of the build directory ($DSOCR_BUILD_DIR, else
# build/); otherwise the installed plugin. See pipelines/README.md.
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
prog=$(basename "$0")
. "$srcdir/pipelines/lib/default-model.sh"
model=${DSOCR_MODEL:-}
device=/dev/video0
width=1280
height=720
mode=   # empty: tiny with the bundled model, else base
max_new_tokens=2048
json=/dev/null
print=

usage() {
  cat <<EOF
usage: $prog [options]

Recognises what the camera sees with DeepSeek-OCR and shows the frames with the boxes of
the recognised layout (titles, text, tables, images) drawn over them.

options:
  --model DIR           DeepSeek-OCR model directory (default: \$DSOCR_MODEL, else the
                        bundled dsocr-reader, models/dsocr-reader, when present;
                        otherwise the tiny random-weight test model, whose text is noise)
  --device DEV          V4L2 device (default: $device)
  --size WxH            capture size (default: ${width}x$height)
  --mode MODE           tiny, small, base, large or gundam (default: tiny with the
                        bundled model, else base)
  --max-new-tokens N    tokens generated per frame at most (default: $max_new_tokens)
  --json FILE           also write the results as JSON lines to FILE
  --print               print the gst-launch-1.0 command instead of running it
  -h, --help            this text
Stop with Ctrl-C.
EOF
}

die() { echo "$prog: $*" >&2; exit 1; }
print_command() { printf '%q ' "$@"; echo; }

while [ $# -gt 0 ]; do
  case $1 in
    --model) [ $# -ge 2 ] || die "--model needs a directory"; model=$2; shift 2 ;;
    --device) [ $# -ge 2 ] || die "--device needs a value"; device=$2; shift 2 ;;
    --size)
      [ $# -ge 2 ] || die "--size needs WxH"
      width=${2%x*}; height=${2#*x}
      case $width$height in ''|*[!0-9]*) die "--size: WxH, e.g. 1280x720" ;; esac
      shift 2 ;;
    --mode) [ $# -ge 2 ] || die "--mode needs a value"; mode=$2; shift 2 ;;
    --max-new-tokens) [ $# -ge 2 ] || die "--max-new-tokens needs a value"; max_new_tokens=$2; shift 2 ;;
    --json) [ $# -ge 2 ] || die "--json needs a file"; json=$2; shift 2 ;;
    --print) print=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

default_model base

if [ -z "$print" ]; then
  [ -e "$device" ] || die "no camera at $device: pass --device"
  [ -r "$model/config.json" ] || die "no model in $model (config.json missing): pass --model DIR or set DSOCR_MODEL"
  command -v gst-launch-1.0 >/dev/null || die "gst-launch-1.0 not found: install gstreamer1.0-tools"
  builddir=${DSOCR_BUILD_DIR:-$srcdir/build}
  if [ -e "$builddir/gst/libgstdsocr.so" ]; then
    export GST_PLUGIN_PATH="$builddir/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
  fi
  for element in dsocrpreprocess dsocrencode dsocrdecode dsocroverlay dsocrresult; do
    gst-inspect-1.0 "$element" >/dev/null 2>&1 ||
      die "element $element not found: build the plugin (meson setup build && meson compile -C build; dsocroverlay needs cairo) or set DSOCR_BUILD_DIR"
  done
fi

${print:+print_command} gst-launch-1.0 -e \
  v4l2src device="$device" ! videoconvert ! videoscale ! \
  "video/x-raw,format=RGB,width=$width,height=$height" ! \
  queue leaky=downstream max-size-buffers=1 ! \
  dsocrpreprocess mode="$mode" ! \
  dsocrencode model-location="$model" ! \
  dsocrdecode model-location="$model" max-new-tokens="$max_new_tokens" \
    leaky=downstream max-pending=1 skip-unchanged=true ! \
  tee name=results \
  results. ! queue ! dsocrresult format=json ! filesink location="$json" \
  results. ! queue ! dsocroverlay ! videoconvert ! autovideosink sync=false
