#!/usr/bin/env bash
# Vision tower speed, this engine vs the official DeepSeek-OCR modules in PyTorch, on the same
# CPU, random full-size weights, pixels and thread count.
#
#   DSOCR_OCR_REPO=<DeepSeek-OCR-vllm dir> bench/run-vision.sh [BUILD_DIR]
#
# (default build-vis-bench, configured here if missing). The weights are written once to
# $DSOCR_BENCH_DIR (default /tmp/dsocr-bench/ocr-vision-full, 0.8 GB, never committed) by
# bench/bench_vision_ref.py make-full, with the reference's own outputs for a 512 and a 1024
# view, which bench-vision compares with the engine's (rel_err_vs_ref).
# Prints one JSON line per run; bench/results/vision-cpu.md records a run.
# Knobs: THREADS (2), REPS (2), MODES ("tiny small base large gundam"),
# REF_DTYPES ("f32 bf16": the reference in float32 and in bfloat16 on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-build-vis-bench}
threads=${THREADS:-2}
reps=${REPS:-2}
modes=${MODES:-tiny small base large gundam}
dir=${DSOCR_BENCH_DIR:-/tmp/dsocr-bench/ocr-vision-full}
: "${DSOCR_OCR_REPO:?set DSOCR_OCR_REPO to the DeepSeek-OCR-vllm directory of a checkout}"
export DSOCR_OCR_REPO

if [ ! -d "$build" ]; then
  meson setup "$build" -Dcuda=disabled -Dbuildtype=release -Dtests=false >/dev/null
fi
meson compile -C "$build" bench/bench-vision >/dev/null
bench="$build/bench/bench-vision"

if [ ! -f "$dir/reference.safetensors" ]; then
  python3 bench/bench_vision_ref.py make-full "$dir" --threads "$threads"
fi

echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "# threads: $threads, reps: $reps (medians)"
for m in $modes; do
  "$bench" --model "$dir" --mode "$m" --threads "$threads" --reps "$reps" \
    --check "$dir/reference.safetensors" --json
  for dt in ${REF_DTYPES:-f32 bf16}; do
    python3 bench/bench_vision_ref.py time "$dir" --mode "$m" --threads "$threads" \
      --reps "$reps" --dtype "$dt"
  done
done
