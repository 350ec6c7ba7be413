#!/bin/sh
# pdf-to-images.sh: renders every page of a PDF document to PNG files with dsocrpdfdec.
#   pipelines/pdf-to-images.sh document.pdf [output-dir] [dpi]
# Writes output-dir/page-001.png, page-002.png, ... (output-dir defaults to the current
# directory, dpi to 144). Run from a source tree, it uses the plugin of the first build
# directory found (build/, or $DSOCR_BUILD_DIR); otherwise the installed plugin.
set -eu

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
  echo "usage: $0 document.pdf [output-dir] [dpi]" >&2
  exit 2
fi
pdf=$1
outdir=${2:-.}
dpi=${3:-144}

if [ ! -r "$pdf" ]; then
  echo "$0: cannot read $pdf" >&2
  exit 1
fi
mkdir -p "$outdir"

srcdir=$(cd "$(dirname "$0")/.." && pwd)
builddir=${DSOCR_BUILD_DIR:-$srcdir/build}
if [ -e "$builddir/gst/libgstdsocr.so" ]; then
  GST_PLUGIN_PATH="$builddir/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
  export GST_PLUGIN_PATH
fi

exec gst-launch-1.0 -e \
  filesrc location="$pdf" ! dsocrpdfdec dpi="$dpi" ! videoconvert ! pngenc ! \
  multifilesink location="$outdir/page-%03d.png" index=1
