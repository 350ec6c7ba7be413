#!/usr/bin/env bash
# Tokenizer encode throughput, this engine vs HF `tokenizers`, one thread each, same text.
#
#   bench/run-tokenizer.sh [BUILD_DIR]        (default build-tok-bench, configured here if missing)
#
# The text (4 MB of mixed English / markdown / code / LaTeX / CJK / emoji, made from shared/ by
# bench_tokenizer_hf.py make-text) goes to $DSOCR_BENCH_TEXT (default
# /tmp/dsocr-bench/tokenizer-mixed.txt). Both sides encode the same documents with the
# DeepSeek-V3 tokenizer and print one JSON line each; equal "hash" values mean equal ids.
# Knobs: TOKENIZER (shared/tokenizers/deepseek-v3), MB (4), REPS (3), DOC_BYTES (4096).
# bench/results/tokenizer-cpu.md records a run.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-build-tok-bench}
tokenizer=${TOKENIZER:-../shared/tokenizers/deepseek-v3}
text=${DSOCR_BENCH_TEXT:-/tmp/dsocr-bench/tokenizer-mixed.txt}
reps=${REPS:-3}
doc=${DOC_BYTES:-4096}

if [ ! -d "$build" ]; then
  meson setup "$build" -Dcuda=disabled -Dbuildtype=release -Dtests=false >/dev/null
fi
meson compile -C "$build" bench/bench-tokenizer >/dev/null
if [ ! -f "$text" ]; then
  mkdir -p "$(dirname "$text")"
  python3 bench/bench_tokenizer_hf.py make-text "$text" --mb "${MB:-4}"
fi

echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
echo "# text: $text ($(wc -c < "$text") bytes), documents of >= $doc bytes, best of $reps"
ours=$("$build/bench/bench-tokenizer" --tokenizer "$tokenizer" --text "$text" --reps "$reps" \
  --doc-bytes "$doc" --json)
hf=$(RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false python3 bench/bench_tokenizer_hf.py time \
  --tokenizer "$tokenizer" --text "$text" --reps "$reps" --doc-bytes "$doc")
echo "$ours"
echo "$hf"
python3 - "$ours" "$hf" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
same = "same ids" if a["hash"] == b["hash"] and a["ids"] == b["ids"] else "IDS DIFFER"
print(f"ratio (dsocr / HF, best MB/s): {a['best_MBps'] / b['best_MBps']:.2f}x; {same}")
PY
