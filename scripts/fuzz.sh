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
  echo "[fuzz] $target for ${seconds}s"
  cargo fuzz run --sanitizer none "$target" "$corpus" "$seeds/$target" -- \
    -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=4096 -timeout=20 \
    -print_final_stats=1
done
echo "[fuzz] no crash in ${#targets[@]} target(s), ${seconds}s each"
