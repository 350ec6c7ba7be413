#!/usr/bin/env bash
# pipelines/lib/default-model.sh (TAP): which model and mode the example scripts pick when the
# command line names none, with a stand-in source tree whose models/dsocr-reader holds a
# config.json. The bundled model reads in tiny mode however its path is written.
#   default-model.sh <pipelines/lib/default-model.sh> <tmp dir>
set -u
lib="$1"; tmp="$2"
n=0; fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
no() { n=$((n + 1)); fail=1; echo "not ok $n - $1"; }
# shellcheck source=/dev/null
. "$lib"

srcdir="$tmp/src"; prog=test; print=
rm -rf "$srcdir"; mkdir -p "$srcdir/models/dsocr-reader" "$tmp/other"
echo '{}' > "$srcdir/models/dsocr-reader/config.json"
ln -sfn "$srcdir/models/dsocr-reader" "$tmp/link"

pick() { model=$1; mode=$2; default_model gundam; echo "$model $mode"; }

echo "1..6"
r=$(pick "" ""); [ "$r" = "$srcdir/models/dsocr-reader tiny" ] \
  && ok "no --model: the bundled model, tiny" || no "no --model: got '$r'"
r=$(cd "$srcdir" && pick models/dsocr-reader ""); [ "${r##* }" = tiny ] \
  && ok "a relative path to the bundled model reads in tiny mode" || no "relative path: got '$r'"
r=$(cd "$srcdir" && pick ./models/dsocr-reader/ ""); [ "${r##* }" = tiny ] \
  && ok "./ and a trailing slash too" || no "./ and trailing slash: got '$r'"
r=$(pick "$tmp/link" ""); [ "${r##* }" = tiny ] \
  && ok "a link to the bundled model too" || no "link: got '$r'"
r=$(pick "$tmp/other" ""); [ "$r" = "$tmp/other gundam" ] \
  && ok "another model: the script's mode" || no "another model: got '$r'"
r=$(pick "" small); [ "${r##* }" = small ] \
  && ok "--mode wins" || no "--mode: got '$r'"
exit $fail
