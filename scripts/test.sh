#!/usr/bin/env bash
# Runs every test tier of Darkroom, the way CI does, on a fresh machine.
#
# Tiers, all of them every time (none is skipped silently):
#   format and lint   cargo fmt --check, cargo clippy -D warnings
#   unit and parsing  the protocol parsers, golden transcripts from a real ComfyUI
#   simulator         the ComfyUI stand-in and the client against it (faults on demand)
#   real ComfyUI      the client and scenarios against ComfyUI 0.3.75 on the CPU, installed
#                     by scripts/install-comfyui.sh into ~/.cache/darkroom/comfyui
#
# Needs: a Rust toolchain (rustup), python3.11 with venv and pip, gcc, curl; network access
# to crates.io and PyPI the first time. DARKROOM_SKIP_REAL_COMFYUI=1 skips the real-ComfyUI
# tier, and says so.
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
