#!/usr/bin/env bash
# The test command: builds gst-dsocr twice (the normal build, with CUDA when nvcc is there, and
# an AddressSanitizer + UndefinedBehaviorSanitizer CPU build), runs the whole suite in each,
# smoke-runs the fuzz harnesses when clang has libFuzzer, and ends with "N passed, N failed".
#   scripts/test.sh            everything
#   scripts/test.sh --quick    the normal build only
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
skipped=0

count() {  # count <builddir>: adds that build's results to the totals
  local log="$1/meson-logs/testlog.json"
  [ -f "$log" ] || return 0   # the build ran no test of the selected suites
  read -r p f s < <(python3 - "$log" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r == "SKIP":
        s += 1
    else:
        f += 1
print(p, f, s)
PY
)
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

run_build() {  # run_build <dir> <meson setup args...>
  local dir="$1"; shift
  echo "=== $dir: meson setup $*"
  if ! { [ -d "$dir" ] && meson setup --reconfigure "$dir" "$@" >/dev/null ||
         meson setup --wipe "$dir" "$@" >/dev/null 2>&1 || meson setup "$dir" "$@"; }; then
    echo "$dir: meson setup failed"; failed=$((failed + 1)); return
  fi
  if ! meson compile -C "$dir" -j "$jobs"; then
    echo "$dir: build failed"; failed=$((failed + 1)); return
  fi
  rm -f "$dir/meson-logs/testlog.json"
  # shellcheck disable=SC2086
  meson test -C "$dir" --num-processes "$jobs" --print-errorlogs ${TEST_ARGS:-} || true
  count "$dir"
}

run_build build
if [ $quick -eq 0 ]; then
  # Sanitizers: CPU only (nvcc objects do not take -fsanitize). DSOCR_QUICK: the slow
  # end-to-end checks read a sample of their pages (the normal build reads them all).
  DSOCR_QUICK=1 run_build build-asan -Dcuda=disabled -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debug -Dbench=false
  if command -v clang >/dev/null 2>&1; then
    # libFuzzer harnesses, each run for a few seconds from its committed corpus
    CC=clang TEST_ARGS="--suite fuzz" run_build build-fuzz -Dcuda=disabled -Dfuzz=true \
      -Dbench=false -Dgst=disabled -Db_sanitize=address,undefined -Db_lundef=false \
      -Dbuildtype=debug
  fi
fi

echo
echo "skipped: $skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
