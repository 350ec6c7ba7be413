#!/usr/bin/env bash
# pdf-to-images.sh: renders every page of a PDF document to PNG files with dsocrpdfdec.
#   pipelines/pdf-to-images.sh [--print] document.pdf [output-dir] [dpi]
# Writes output-dir/page-001.png, page-002.png, ... (output-dir defaults to the current
# directory, dpi to 144). Run from a source tree, it uses the plugin of the build directory
# ($DSOCR_BUILD_DIR, else build/); otherwise the installed plugin. --print prints the
# gst-launch-1.0 command instead of running it.
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
prog=$(basename "$0")
print=

die() { echo "$prog: $*" >&2; exit 1; }
print_command() { printf '%q ' "$@"; echo; }

usage() { echo "usage: $prog [--print] document.pdf [output-dir] [dpi]"; }

case ${1:-} in
  -h|--help) usage; exit 0 ;;
  --print) print=1; shift ;;
esac
if [ $# -lt 1 ] || [ $# -gt 3 ] || [ "${1:0:1}" = - ]; then
  usage >&2
  exit 2
fi
pdf=$1
outdir=${2:-.}
dpi=${3:-144}

if [ -z "$print" ]; then
  [ -r "$pdf" ] || die "cannot read $pdf"
  mkdir -p "$outdir"
  command -v gst-launch-1.0 >/dev/null || die "gst-launch-1.0 not found: install gstreamer1.0-tools"
  builddir=${DSOCR_BUILD_DIR:-$srcdir/build}
  if [ -e "$builddir/gst/libgstdsocr.so" ]; then
    export GST_PLUGIN_PATH="$builddir/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
  fi
  gst-inspect-1.0 dsocrpdfdec >/dev/null 2>&1 ||
    die "element dsocrpdfdec not found: build the plugin with poppler-glib (libpoppler-glib-dev; meson setup build && meson compile -C build) or set DSOCR_BUILD_DIR"
fi

${print:+print_command} gst-launch-1.0 -q -e \
  filesrc location="$pdf" ! dsocrpdfdec dpi="$dpi" ! videoconvert ! pngenc ! \
  multifilesink location="$outdir/page-%03d.png" index=1
