#!/usr/bin/env bash
# images-to-json.sh: OCRs a folder of PNG or JPEG images (or the images named) into JSON
# lines, one object per image (docs/result-json.md), in the order of the sorted file names.
#   pipelines/images-to-json.sh [options] FOLDER | IMAGE...
# The images are linked as 000000.png, 000001.png, ... into a temporary folder that
# multifilesrc reads; one pipeline decodes one kind, so PNG and JPEG cannot be mixed in a run.
# videoconvert only converts what dsocrpreprocess does not read itself (RGB, RGBA, grey and
# the others it takes are passed as decoded, as the reference reads them).
# Run from a source tree, it uses the plugin of the build directory ($DSOCR_BUILD_DIR, else
# build/); otherwise the installed plugin. See pipelines/README.md.
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
prog=$(basename "$0")
. "$srcdir/pipelines/lib/default-model.sh"
model=${DSOCR_MODEL:-}
mode=   # empty: tiny with the bundled model, else gundam
max_new_tokens=8192
output=/dev/stdout
print=

usage() {
  cat <<EOF
usage: $prog [options] FOLDER | IMAGE...

Recognises every PNG or JPEG image of FOLDER (or the IMAGEs given) with DeepSeek-OCR and
writes one JSON object per image and line, in the order of the sorted file names.

options:
  --model DIR           DeepSeek-OCR model directory (default: \$DSOCR_MODEL, else the
                        bundled dsocr-reader, models/dsocr-reader, when present;
                        otherwise the tiny random-weight test model, whose text is noise)
  --mode MODE           tiny, small, base, large or gundam (default: tiny with the
                        bundled model, else gundam)
  --max-new-tokens N    tokens generated per image at most (default: $max_new_tokens)
  -o, --output FILE     write the JSON lines to FILE (default: standard output)
  --print               print the gst-launch-1.0 command instead of running it
  -h, --help            this text
EOF
}

die() { echo "$prog: $*" >&2; exit 1; }
print_command() { printf '%q ' "$@"; echo; }

inputs=()
while [ $# -gt 0 ]; do
  case $1 in
    --model) [ $# -ge 2 ] || die "--model needs a directory"; model=$2; shift 2 ;;
    --mode) [ $# -ge 2 ] || die "--mode needs a value"; mode=$2; shift 2 ;;
    --max-new-tokens) [ $# -ge 2 ] || die "--max-new-tokens needs a value"; max_new_tokens=$2; shift 2 ;;
    -o|--output) [ $# -ge 2 ] || die "$1 needs a file"; output=$2; shift 2 ;;
    --print) print=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;;
    *) inputs+=("$1"); shift ;;
  esac
done
[ ${#inputs[@]} -gt 0 ] || { usage >&2; exit 2; }

default_model gundam

# the images, sorted by name
images=()
if [ ${#inputs[@]} -eq 1 ] && [ -d "${inputs[0]}" ]; then
  while IFS= read -r -d '' f; do
    images+=("$f")
  done < <(find -L "${inputs[0]}" -maxdepth 1 -type f \
             \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \) -print0 | LC_ALL=C sort -z)
  [ ${#images[@]} -gt 0 ] || die "no PNG or JPEG image in ${inputs[0]}"
else
  images=("${inputs[@]}")
fi

# one decoder for the run: the kind of the first image
case ${images[0],,} in
  *.png) ext=png; caps=image/png; decoder=pngdec ;;
  *.jpg|*.jpeg) ext=jpg; caps=image/jpeg; decoder=jpegdec ;;
  *) die "${images[0]}: not a .png, .jpg or .jpeg file" ;;
esac

list=$(mktemp -d "${TMPDIR:-/tmp}/images-to-json.XXXXXX")
if [ -n "$print" ]; then
  echo "$prog: the printed command reads the links in $list (remove it afterwards)" >&2
else
  trap 'rm -rf "$list"' EXIT
fi
i=0
for f in "${images[@]}"; do
  case ${f,,} in
    *.png) [ $ext = png ] || die "$f: PNG and JPEG images cannot be mixed in one run" ;;
    *.jpg|*.jpeg) [ $ext = jpg ] || die "$f: PNG and JPEG images cannot be mixed in one run" ;;
    *) die "$f: not a .png, .jpg or .jpeg file" ;;
  esac
  [ -n "$print" ] || [ -r "$f" ] || die "cannot read $f"
  ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$(printf '%s/%06d.%s' "$list" $i $ext)"
  [ -n "$print" ] || echo "$prog: line $((i + 1)): $f" >&2
  i=$((i + 1))
done

if [ -z "$print" ]; then
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
  multifilesrc location="$list/%06d.$ext" index=0 caps="$caps,framerate=1/1" ! "$decoder" ! \
  videoconvert ! \
  dsocrpreprocess mode="$mode" ! \
  dsocrencode model-location="$model" ! \
  dsocrdecode model-location="$model" max-new-tokens="$max_new_tokens" ! \
  dsocrresult format=json ! \
  filesink location="$output" append=true
