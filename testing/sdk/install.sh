#!/usr/bin/env bash
# Installs the pinned official Python SDK (comfy-sdk, see requirements.txt) into a venv
# of its own, for the end-to-end test that drives Darkroom with it.
#
# Idempotent: the venv carries a marker holding the sha256 of requirements.txt, and when
# it matches nothing is done (instant). Otherwise the venv is rebuilt from scratch.
# Prints the venv's python on stdout (the only stdout line); progress goes to stderr.
#
# Usage: testing/sdk/install.sh
# Environment:
#   DARKROOM_SDK_VENV   venv folder (default: $HOME/.cache/darkroom/sdk-venv)
#   DARKROOM_PYTHON     interpreter that makes the venv (default: python3.11)
# Needs: python3.11 with the venv module, flock; network access to PyPI the first time.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
requirements="$here/requirements.txt"
venv="${DARKROOM_SDK_VENV:-$HOME/.cache/darkroom/sdk-venv}"
python="${DARKROOM_PYTHON:-python3.11}"
marker="$venv/.darkroom-sdk-installed"

log() { printf '[sdk-install] %s\n' "$*" >&2; }
die() { printf '[sdk-install] error: %s\n' "$*" >&2; exit 1; }

wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
installed() { [ -x "$venv/bin/python" ] && [ "$(cat "$marker" 2>/dev/null)" = "$wanted" ]; }

if installed; then
  echo "$venv/bin/python"
  exit 0
fi

# Two test runs may get here at once: one builds, the other waits and reuses it.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if installed; then
  echo "$venv/bin/python"
  exit 0
fi

command -v "$python" >/dev/null || die "$python is missing (set DARKROOM_PYTHON to another 3.10+)"
if [ -e "$venv" ]; then
  # Only ever delete a folder that is recognisably a venv, never whatever the path names.
  [ -f "$venv/pyvenv.cfg" ] || die "$venv exists and is not a venv; move it away"
  log "requirements changed: rebuilding $venv"
  rm -rf "$venv"
fi

log "creating $venv with $python"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input --quiet)
log "installing $(grep -c '==' "$requirements") pinned packages"
"${pip[@]}" install --no-deps --only-binary=:all: --requirement "$requirements" >&2
"${pip[@]}" check >&2 || die "requirements.txt is missing a dependency (see pip check above)"
echo "$wanted" >"$marker"
log "done"
echo "$venv/bin/python"
