#!/usr/bin/env bash
# Side-by-side speed of two builds of the engine on the full-size random-weight DeepSeek-OCR:
# the working tree against a git revision (by default the one before the backend interface),
# the two sides run alternately for several rounds so that a noisy shared machine hurts both
# alike, with the load average recorded before every run.
#
#   BASE=<rev> bench/run-compare.sh [OUT.jsonl]
#
# Needs the models of bench/run-decoder.sh and bench/run-vision.sh in $DSOCR_BENCH_ROOT
# (default /tmp/dsocr-bench: ocr-decoder-full/ and ocr-vision-full/; those scripts make them).
# Knobs: ROUNDS (3), THREADS (2), PROMPT (256), NEW (32), DEC_REPS (3), VIS_REPS (1),
# MODES ("base gundam"). Builds are release builds without tests in /tmp/dsocr-compare-*.
# Prints one JSON line per run (with "side": base|new, "round", "loadavg") and a summary:
# the median of each metric per side and the ratio new / base (> 1: the new side is faster).
set -euo pipefail
cd "$(dirname "$0")/.."

base=${BASE:-af5712a}
out=${1:-/tmp/dsocr-compare.jsonl}
rounds=${ROUNDS:-3}
threads=${THREADS:-2}
root=${DSOCR_BENCH_ROOT:-/tmp/dsocr-bench}
dec_model=$root/ocr-decoder-full
vis_model=$root/ocr-vision-full
for d in "$dec_model" "$vis_model"; do
  [ -d "$d" ] || { echo "missing $d: run bench/run-decoder.sh and bench/run-vision.sh first" >&2; exit 2; }
done

build_side() {  # build_side <name> <source dir>
  local dir=/tmp/dsocr-compare-$1
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$2" -Dcuda=disabled -Dbuildtype=release -Dtests=false -Dgst=disabled \
      >/dev/null
  fi
  meson compile -C "$dir" bench/bench-decoder bench/bench-vision >/dev/null
}

src_base=/tmp/dsocr-compare-src-base
if [ ! -d "$src_base" ]; then
  git worktree add --detach "$src_base" "$base" >/dev/null
fi
git -C "$src_base" checkout --detach -q "$base"
build_side base "$src_base"
build_side new "$PWD"

: > "$out"
echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; base $base ($(git rev-parse --short "$base")), new = working tree; threads $threads" | tee -a "$out"
run() {  # run <side> <round> <what> <command...>
  local side=$1 round=$2 what=$3
  shift 3
  local load
  load=$(cut -d" " -f1-3 /proc/loadavg)
  "$@" | while read -r line; do
    case "$line" in
      "{"*) printf '{"side": "%s", "round": %d, "bench": "%s", "loadavg": "%s", %s\n' \
              "$side" "$round" "$what" "$load" "${line#\{}" ;;
    esac
  done | tee -a "$out"
}
for r in $(seq 1 "$rounds"); do
  # alternate which side goes first, so that neither always runs on a warmer machine
  if [ $((r % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
  for side in $order; do
    b=/tmp/dsocr-compare-$side/bench
    run "$side" "$r" decoder "$b/bench-decoder" --model "$dec_model" --prompt-len "${PROMPT:-256}" \
      --new-tokens "${NEW:-32}" --threads "$threads" --reps "${DEC_REPS:-3}" --json
    for m in ${MODES:-base gundam}; do
      run "$side" "$r" "vision-$m" "$b/bench-vision" --model "$vis_model" --mode "$m" \
        --threads "$threads" --reps "${VIS_REPS:-1}" --json
    done
  done
done

python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
metrics = [("decoder", "prefill_tok_s", "prefill tok/s", True),
           ("decoder", "decode_tok_s", "decode tok/s", True),
           ("vision-base", "encode_s", "vision base s", False),
           ("vision-gundam", "encode_s", "vision gundam s", False)]
print("\n| metric | base (median) | new (median) | new / base speed |")
print("|---|---:|---:|---:|")
for bench, key, label, higher in metrics:
    v = {s: [r[key] for r in rows if r["side"] == s and r["bench"] == bench and key in r]
         for s in ("base", "new")}
    if not v["base"] or not v["new"]:
        continue
    b, n = statistics.median(v["base"]), statistics.median(v["new"])
    ratio = n / b if higher else b / n
    print(f"| {label} | {b:.3f} | {n:.3f} | {ratio:.3f}x |")
loads = sorted({r["loadavg"] for r in rows})
print(f"\nload averages seen: {loads[0]} .. {loads[-1]}")
PY
