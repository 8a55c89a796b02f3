#!/usr/bin/env bash
# Smoke test of the ComfyUI installed by scripts/install-comfyui.sh.
#
# Starts the server on a free 127.0.0.1 port with a fresh temporary base directory
# (custom_nodes/ -> testing/comfy-nodes/darkroom_test_nodes, models/checkpoints/ ->
# the tiny checkpoint), waits for GET /system_stats, runs the standard txt2img graph
# and one graph per Darkroom test node (testing/smoke_real_comfyui.py), then stops the
# server by its PID. Prints PASS/FAIL per check and a summary; exits non-zero on failure.
#
# Usage: testing/smoke-real-comfyui.sh
# Environment:
#   DARKROOM_COMFYUI_HOME   install folder (default: $HOME/.cache/darkroom/comfyui)
#   DARKROOM_SMOKE_KEEP=1   keep the temporary base directory (server log, outputs)
#   DARKROOM_SMOKE_READY_TIMEOUT  seconds to wait for the server (default 120)
# Needs: curl, python3 (standard library only).
set -euo pipefail

log() { printf '[smoke-comfyui] %s\n' "$*"; }
die() { printf '[smoke-comfyui] FAIL: %s\n' "$*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
home_dir="${DARKROOM_COMFYUI_HOME:-$HOME/.cache/darkroom/comfyui}"
ready_timeout="${DARKROOM_SMOKE_READY_TIMEOUT:-120}"
nodes_dir="$here/comfy-nodes/darkroom_test_nodes"
ckpt="$home_dir/models/tiny-sd15.safetensors"

command -v curl >/dev/null 2>&1 || die "curl is missing"
command -v python3 >/dev/null 2>&1 || die "python3 is missing"
if [ ! -f "$home_dir/.installed" ] || [ ! -x "$home_dir/start.sh" ]; then
  die "ComfyUI is not installed in $home_dir; run scripts/install-comfyui.sh first"
fi
[ -s "$ckpt" ] || die "missing $ckpt; re-run scripts/install-comfyui.sh"
[ -f "$nodes_dir/__init__.py" ] || die "missing $nodes_dir"

base=$(mktemp -d "${TMPDIR:-/tmp}/darkroom-smoke.XXXXXX")
mkdir -p "$base/custom_nodes" "$base/models/checkpoints"
ln -s "$nodes_dir" "$base/custom_nodes/darkroom_test_nodes"
ln -s "$ckpt" "$base/models/checkpoints/tiny-sd15.safetensors"
server_log="$base/server.log"

# Ask the kernel for a free port (there is a small race until the server binds it;
# the readiness check below also makes sure the answer comes from our own process).
port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')

server_pid=""
stop_server() {
  [ -n "$server_pid" ] || return 0
  if kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      log "server $server_pid did not stop on SIGTERM; sending SIGKILL"
      kill -9 "$server_pid" 2>/dev/null || true
    fi
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
  stop_server
  if [ "${DARKROOM_SMOKE_KEEP:-0}" = 1 ]; then
    log "kept $base"
  else
    rm -rf "$base"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show_log() {
  log "last lines of the server log ($server_log):"
  tail -n 40 "$server_log" | sed 's/^/    /' >&2 || true
}

log "starting ComfyUI on 127.0.0.1:$port, base directory $base"
t_start=$(date +%s.%N)
# Its own TMPDIR inside $base (removed with it): PyTorch leaves a folder there at start.
mkdir -p "$base/tmp"
TMPDIR="$base/tmp" "$home_dir/start.sh" --port "$port" --base-directory "$base" >"$server_log" 2>&1 &
server_pid=$!

ready=0
deadline=$(($(date +%s) + ready_timeout))
while [ "$(date +%s)" -lt "$deadline" ]; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    show_log
    die "the server (pid $server_pid) exited during startup"
  fi
  if curl -fsS --max-time 2 "http://127.0.0.1:$port/system_stats" -o "$base/system_stats.json" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ "$ready" != 1 ]; then
  show_log
  die "no answer from GET /system_stats within $ready_timeout s"
fi
kill -0 "$server_pid" 2>/dev/null || die "a server answered on port $port but ours (pid $server_pid) is gone"
# start.sh must exec python so that our PID is the server's own.
case "$(tr '\0' ' ' <"/proc/$server_pid/cmdline" 2>/dev/null || true)" in
  *python*main.py*) ;;
  *) die "pid $server_pid is not the python server (start.sh must exec it)" ;;
esac
version=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["system"]["comfyui_version"])' "$base/system_stats.json")
log "ready after $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t_start" "$(date +%s.%N)") s: ComfyUI $version, pid $server_pid"

rc=0
python3 "$here/smoke_real_comfyui.py" "$port" || rc=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
  show_log
  rc=1
  log "the server died during the checks"
fi
if grep -q "IMPORT FAILED" "$server_log"; then
  show_log
  rc=1
  log "a custom node failed to import"
fi
log "stopping the server (pid $server_pid)"
t_stop=$(date +%s.%N)
stop_server
log "server stopped after $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t_stop" "$(date +%s.%N)") s"
if [ "$rc" = 0 ]; then
  log "PASS: ComfyUI $version from $home_dir works end to end"
else
  show_log
  log "FAIL: see the lines above"
fi
exit "$rc"
