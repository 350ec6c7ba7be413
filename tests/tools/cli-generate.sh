#!/usr/bin/env bash
# Command-line contract of dsocr-generate (TAP): greedy ids equal the reference's first greedy
# tokens, --indexer-scores writes a safetensors file, and bad input exits 1 with a message.
#   cli-generate.sh <dsocr-generate> <fixtures dir> <tmp dir>
set -u
gen="$1"; fx="$2"; tmp="$3"
mkdir -p "$tmp"
n=0; fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
no() { n=$((n + 1)); fail=1; echo "not ok $n - $1"; }

echo "1..5"
# tiny-v2-mla-yarn: prompt and its first greedy tokens from golden.json / golden.safetensors
out=$("$gen" --model "$fx/tiny-v2-mla-yarn" --ids '[0,140,77,16,112,53,49,293,174,243,191,277]' \
      --max-new-tokens 4 --json 2>"$tmp/err1") && ok "generate exits 0" || no "generate exits 0: $(cat "$tmp/err1")"
# the reference's greedy_tokens[0][:4] (tests/fixtures/tiny-v2-mla-yarn/golden.safetensors)
case "$out" in *'"ids":[224,46,49,190]'*) ok "greedy ids equal the reference's" ;; *) no "greedy ids equal the reference's: $out" ;; esac

rm -f "$tmp/scores.safetensors"
"$gen" --model "$fx/tiny-v32" --ids '[0,5,9,13,17,21,25,29,33,37,41,45,49,53,57,61]' \
  --max-new-tokens 2 --indexer-scores "$tmp/scores.safetensors" >/dev/null 2>"$tmp/err2" \
  && [ -s "$tmp/scores.safetensors" ] && ok "--indexer-scores writes a file" \
  || no "--indexer-scores writes a file: $(cat "$tmp/err2")"

"$gen" --model "$tmp/no-such-model" --ids '[0]' >/dev/null 2>"$tmp/err3"
rc=$?
[ $rc -eq 1 ] && ok "missing model exits 1" || no "missing model exits 1 (got $rc)"
grep -q "no-such-model" "$tmp/err3" && ok "error names the model path" || no "error names the model path: $(cat "$tmp/err3")"
exit $fail
