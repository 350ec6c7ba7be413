# lib/default-model.sh: sourced by the example scripts (not run by itself). Picks the model and
# mode a script uses when the command line names none:
#   default_model OTHER_MODE
# reads $srcdir, $prog, $print, $model and $mode, and sets $model and $mode: the model is
# --model / $DSOCR_MODEL, else the bundled models/dsocr-reader when it holds weights, else the
# tiny random-weight test model (with a note on stderr: its text is noise); the mode is --mode,
# else tiny for the bundled model (it reads pages squashed to 512 x 512, as it was trained),
# else OTHER_MODE.
default_model() {
  local bundled=$srcdir/models/dsocr-reader
  if [ -z "$model" ]; then
    if [ -r "$bundled/config.json" ]; then
      model=$bundled
    else
      model=$srcdir/tests/fixtures/tiny-ocr-e2e
      [ -n "$print" ] || echo "$prog: no --model and no bundled model: using the tiny random-weight test model; its text is noise" >&2
    fi
  fi
  if [ -z "$mode" ]; then
    # compared as real paths: models/dsocr-reader, ./models/dsocr-reader/ or a link to it is
    # the bundled model too, and reads in tiny mode
    if [ "$(realpath -m -- "$model")" = "$(realpath -m -- "$bundled")" ]; then
      mode=tiny
    else
      mode=$1
    fi
  fi
}
