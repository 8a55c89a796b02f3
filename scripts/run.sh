#!/usr/bin/env bash
# Starts Darkroom with a real ComfyUI behind it and opens the page.
#
# 1. installs ComfyUI 0.3.75 for the CPU (first time only; scripts/install-comfyui.sh),
# 2. starts it on 127.0.0.1:8188 with a base folder in ~/.local/share/darkroom/comfyui
#    holding the tiny SD 1.5 checkpoint (reuses a ComfyUI already answering there),
# 3. builds and starts `darkroom serve` on 127.0.0.1:8420 and opens http://127.0.0.1:8420/.
# Ctrl-C (or a TERM to this script) stops both. Extra arguments go to `darkroom serve`.
#
# Environment: DARKROOM_COMFYUI_PORT (8188), DARKROOM_LISTEN (127.0.0.1:8420),
# DARKROOM_COMFYUI_HOME (install folder), DARKROOM_DATA_DIR (database and outputs).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { printf '[darkroom-run] %s\n' "$*"; }

comfy_home="${DARKROOM_COMFYUI_HOME:-$HOME/.cache/darkroom/comfyui}"
comfy_port="${DARKROOM_COMFYUI_PORT:-8188}"
listen="${DARKROOM_LISTEN:-127.0.0.1:8420}"
base_dir="${XDG_DATA_HOME:-$HOME/.local/share}/darkroom/comfyui"

scripts/install-comfyui.sh

comfy_pid=""
darkroom_pid=""
# Stops what this script started, Darkroom first (it finishes storing what it collects
# from ComfyUI); runs once, whether on a signal or at the end.
cleanup() {
  if [ -n "$darkroom_pid" ]; then
    log "stopping darkroom (pid $darkroom_pid)"
    kill "$darkroom_pid" 2>/dev/null || true
    wait "$darkroom_pid" 2>/dev/null || true
    darkroom_pid=""
  fi
  if [ -n "$comfy_pid" ]; then
    log "stopping ComfyUI (pid $comfy_pid)"
    kill "$comfy_pid" 2>/dev/null || true
    wait "$comfy_pid" 2>/dev/null || true
    comfy_pid=""
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

if curl -fsS "http://127.0.0.1:$comfy_port/system_stats" >/dev/null 2>&1; then
  log "a ComfyUI already answers on port $comfy_port; using it"
else
  mkdir -p "$base_dir/models/checkpoints" "$base_dir/custom_nodes"
  ln -sfn "$comfy_home/models/tiny-sd15.safetensors" "$base_dir/models/checkpoints/tiny-sd15.safetensors"
  log "starting ComfyUI on 127.0.0.1:$comfy_port (log: $base_dir/comfyui.log)"
  "$comfy_home/start.sh" --port "$comfy_port" --base-directory "$base_dir" \
    --preview-method latent2rgb --preview-size 256 >"$base_dir/comfyui.log" 2>&1 &
  comfy_pid=$!
  for _ in $(seq 1 1200); do
    curl -fsS "http://127.0.0.1:$comfy_port/system_stats" >/dev/null 2>&1 && break
    kill -0 "$comfy_pid" 2>/dev/null || { log "ComfyUI exited; see $base_dir/comfyui.log"; exit 1; }
    sleep 0.1
  done
  log "ComfyUI is up"
fi

log "building darkroom (release)"
cargo build --release -p darkroom
url="http://$listen/"
( for _ in $(seq 1 300); do
    if curl -fsS "${url}api/v2/health" >/dev/null 2>&1; then
      log "ready: open $url, type a prompt and press Generate"
      log "(the tiny test checkpoint draws noise; README.md says how to use real models)"
      command -v xdg-open >/dev/null 2>&1 && xdg-open "$url" >/dev/null 2>&1
      exit 0
    fi
    sleep 0.1
  done
  log "darkroom did not answer on $url; see its log above" ) &
# In the background, waited for: a signal to this script then runs its trap at once
# (bash holds a trap until a foreground command ends), which stops Darkroom and ComfyUI.
"${CARGO_TARGET_DIR:-target}/release/darkroom" serve --listen "$listen" \
  --backend "http://127.0.0.1:$comfy_port" "$@" &
darkroom_pid=$!
status=0
wait "$darkroom_pid" || status=$?
darkroom_pid=""
exit "$status"
