#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time with cargo-fuzz (libFuzzer), seeded
# from the project's own fixtures, templates and the UI workflow corpus.
#
# Usage: scripts/fuzz.sh [TARGET...]        (default: all four targets)
# Environment:
#   DARKROOM_FUZZ_SECONDS   time per target (default 30)
#
# Runs on the stable toolchain with `--sanitizer none`: Darkroom forbids unsafe code, so
# AddressSanitizer (nightly only) would find nothing safe Rust can do; libFuzzer's coverage
# instrumentation works on stable. A crash stops the run and names its input file under
# fuzz/artifacts/TARGET/; copy it to fuzz/regressions/TARGET/ and
# `cargo test -p darkroom --test fuzz_regressions` replays it from then on.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
seconds="${DARKROOM_FUZZ_SECONDS:-30}"
readonly CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "[fuzz] installing cargo-fuzz $CARGO_FUZZ_VERSION (first time only)"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(workflow ui_conversion backend_messages injection)
fi

target_dir="${CARGO_TARGET_DIR:-$root/target}"
seeds="$target_dir/fuzz-seeds"
rm -rf "$seeds"
mapfile -t ui_corpora < <(testing/corpus/fetch-workflow-corpus.sh)
python3 testing/fuzz/make-seeds.py "$seeds" "${ui_corpora[@]}"

cd fuzz
for target in "${targets[@]}"; do
  corpus="$target_dir/fuzz-corpus/$target"
  mkdir -p "$corpus" "$seeds/$target"
  log="$target_dir/fuzz-logs/$target.log"
  mkdir -p "$(dirname "$log")"
  echo "[fuzz] $target for ${seconds}s (libFuzzer's log: $log)"
  # libFuzzer reports every new input it finds; keep that in the log file and show the
  # summary here, or the whole tail when the target crashed.
  if ! cargo fuzz run --sanitizer none "$target" "$corpus" "$seeds/$target" -- \
    -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=4096 -timeout=20 \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -n 80 "$log"
    echo "[fuzz] $target crashed: see the input named above under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)' "$log" || true
done
echo "[fuzz] no crash in ${#targets[@]} target(s), ${seconds}s each"
