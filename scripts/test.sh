#!/usr/bin/env bash
# Runs every test tier of Darkroom, the way CI does, on a fresh machine.
#
# Tiers, all of them every time (none is skipped silently):
#   format and lint   cargo fmt --check, cargo clippy -D warnings
#   unit and parsing  the protocol parsers, golden transcripts from a real ComfyUI
#   simulator         the ComfyUI stand-in and the client against it (faults on demand)
#   real ComfyUI      the client and scenarios against ComfyUI 0.3.75 on the CPU, installed
#                     by scripts/install-comfyui.sh into ~/.cache/darkroom/comfyui
#   browser and CLI   the page in Debian's headless chromium (playwright-core from npm, pinned
#                     in testing/browser) and the darkroom CLI, against that ComfyUI
#   S3 blob store     the artifact suite and one job end to end against moto's S3 server
#                     (scripts/install-moto.sh, pinned, into ~/.cache/darkroom/moto)
#   fuzzing           every cargo-fuzz target in fuzz/ for DARKROOM_FUZZ_SECONDS (default 30)
#                     each, seeded from the fixtures (scripts/fuzz.sh; installs cargo-fuzz once)
#   benchmark harness darkroom-bench --quick: every scenario must run (figures are printed,
#                     never asserted), beside comfy-api-proxy (installed from PyPI, pinned)
#
# Needs: a Rust toolchain (rustup), python3.11 with venv and pip, gcc, curl, Node.js with npm,
# root for apt-get; network access to crates.io, PyPI, Debian and npm the first time.
# DARKROOM_SKIP_REAL_COMFYUI=1 skips the real-ComfyUI tier (browser and CLI tests included),
# and says so. DARKROOM_SKIP_S3=1 skips the S3 tier, and says so.
# PostgreSQL: the store and replica tests also run on the PostgreSQL server at
# DARKROOM_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test), each in a
# schema or database of its own; they fail when it is unreachable, unless
# DARKROOM_SKIP_POSTGRES=1, which skips them and says so. DARKROOM_TEST_STORE=postgres runs
# the in-process API tests on PostgreSQL as well.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup" >&2; exit 1; }
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
cargo --version

if [ "${DARKROOM_SKIP_REAL_COMFYUI:-}" = 1 ]; then
  printf '\n!!! SKIPPING THE REAL-COMFYUI TIER (DARKROOM_SKIP_REAL_COMFYUI=1) !!!\n\n'
else
  step "real ComfyUI (installed once; instant when already there)"
  scripts/install-comfyui.sh

  step "comfy-api-proxy for the benchmark comparison (installed once)"
  scripts/install-comfy-api-proxy.sh

  step "browser test: Debian's chromium and the pinned playwright-core (installed once)"
  if [ ! -x /usr/bin/chromium ]; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
  fi
  # npm ci only when node_modules does not hold the locked version already.
  node -e 'const lock = require("./testing/browser/package-lock.json");
    const installed = require("./testing/browser/node_modules/playwright-core/package.json");
    process.exit(installed.version === lock.packages["node_modules/playwright-core"].version ? 0 : 1)' \
    2>/dev/null || (cd testing/browser && npm ci --no-audit --no-fund)
fi

if [ "${DARKROOM_SKIP_POSTGRES:-}" = 1 ]; then
  printf '\n!!! SKIPPING THE POSTGRESQL TESTS (DARKROOM_SKIP_POSTGRES=1) !!!\n\n'
fi

if [ "${DARKROOM_SKIP_S3:-}" = 1 ]; then
  printf '\n!!! SKIPPING THE S3 TIER (DARKROOM_SKIP_S3=1) !!!\n\n'
else
  step "S3 test server: moto (installed once; instant when already there)"
  scripts/install-moto.sh
fi

step "format"
cargo fmt --all --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests: unit, golden transcripts, simulator, real ComfyUI"
cargo test --workspace --locked --no-fail-fast

if [ "${DARKROOM_SKIP_REAL_COMFYUI:-}" != 1 ]; then
  step "smoke test of the installed ComfyUI and the test nodes"
  testing/smoke-real-comfyui.sh
fi

step "fuzzing: every target for a bounded time"
scripts/fuzz.sh

step "benchmark harness, quick mode (debug build: figures printed, not asserted)"
cargo build --locked -p darkroom -p darkroom-bench
real_comfyui=auto
[ "${DARKROOM_SKIP_REAL_COMFYUI:-}" = 1 ] && real_comfyui=off
"${CARGO_TARGET_DIR:-target}/debug/darkroom-bench" --quick --real "$real_comfyui"
