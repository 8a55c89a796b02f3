#!/usr/bin/env bash
# Builds Darkroom and its benchmark harness in release mode and runs every scenario,
# printing one table of medians and tails with the goals beside them (docs/benchmarks.md
# says what each figure means and records past runs).
#
# Usage: scripts/bench.sh [darkroom-bench options]
#   --quick                 small sizes (what CI runs), figures not comparable
#   --only latency,fanout   some scenarios only (idle, latency, throughput, utilisation,
#                           fanout, large-output, real)
#   --markdown FILE         also write the table as Markdown
#   --real off              leave out the real-ComfyUI comparison
#
# The real-ComfyUI comparison runs when scripts/install-comfyui.sh has installed ComfyUI;
# comfy-api-proxy takes part when scripts/install-comfy-api-proxy.sh has installed it
# (set DARKROOM_BENCH_INSTALL=1 to run both installs first). A full run takes a few
# minutes on 2 cores; every server it starts listens on 127.0.0.1 only.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "${DARKROOM_BENCH_INSTALL:-}" = 1 ]; then
  scripts/install-comfyui.sh
  scripts/install-comfy-api-proxy.sh
fi

cargo build --release --locked -p darkroom -p darkroom-bench
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/darkroom-bench" "$@"
