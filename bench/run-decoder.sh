#!/usr/bin/env bash
# Decoder speed, this engine vs transformers, on the same CPU, weights, ids and thread count.
#
#   bench/run-decoder.sh [BUILD_DIR]        (default build-dec-bench, configured here if missing)
#
# Two models: tests/fixtures/tiny-ocr-decoder (hidden 64, 3 layers) and a random-weight
# checkpoint with the real DeepSeek-OCR decoder config, written to $DSOCR_BENCH_DIR
# (default /tmp/dsocr-bench/ocr-decoder-full, 5.9 GB of bf16, made once and never committed).
# Prints one JSON line per run (medians and best runs); bench/results/decoder-cpu.md records
# a run. Knobs: THREADS (2), FULL_PROMPT (256), FULL_NEW (32), TINY_PROMPT (128),
# TINY_NEW (128), REPS (5), HF_F32 (1: also time transformers with the weights upcast to f32).
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-build-dec-bench}
threads=${THREADS:-2}
reps=${REPS:-5}
full_dir=${DSOCR_BENCH_DIR:-/tmp/dsocr-bench/ocr-decoder-full}
tiny_dir=tests/fixtures/tiny-ocr-decoder

if [ ! -d "$build" ]; then
  meson setup "$build" -Dcuda=disabled -Dbuildtype=release -Dtests=false -Dgst=disabled >/dev/null
fi
meson compile -C "$build" bench/bench-decoder >/dev/null
bench="$build/bench/bench-decoder"

if [ ! -f "$full_dir/model.safetensors" ]; then
  python3 bench/bench_decoder_hf.py make-full "$full_dir"
fi

echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "# threads: $threads, reps: $reps; load average before: $(cut -d" " -f1-3 /proc/loadavg)"
run() {  # run <model dir> <prompt> <new>
  "$bench" --model "$1" --prompt-len "$2" --new-tokens "$3" --threads "$threads" \
    --reps "$reps" --json
  python3 bench/bench_decoder_hf.py time "$1" --prompt-len "$2" --new-tokens "$3" \
    --threads "$threads" --reps "$reps" --dtype bf16
  if [ "${HF_F32:-1}" = 1 ]; then
    python3 bench/bench_decoder_hf.py time "$1" --prompt-len "$2" --new-tokens "$3" \
      --threads "$threads" --reps "$reps" --dtype f32
  fi
}
run "$tiny_dir" "${TINY_PROMPT:-128}" "${TINY_NEW:-128}"
run "$full_dir" "${FULL_PROMPT:-256}" "${FULL_NEW:-32}"
