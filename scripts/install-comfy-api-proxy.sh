#!/usr/bin/env bash
# Install Comfy-Org's own Comfy API v2 gateway, comfy-api-proxy 0.1.6 (PyPI), into a venv,
# for the benchmark harness to compare Darkroom with it on the same backend.
#
# The wheel is downloaded on its own and checked against its pinned sha256 before anything
# is installed; its dependencies are pinned below (the versions it resolved to when this
# script was written).
#
# Usage: scripts/install-comfy-api-proxy.sh [--force] [--help]
#   --force   rebuild the venv (the downloaded wheel is reused)
#
# Environment:
#   DARKROOM_PROXY_HOME   install folder (default: $HOME/.cache/darkroom/comfy-api-proxy)
#   DARKROOM_PYTHON       interpreter for the venv (default: python3.11)
#
# Result in $DARKROOM_PROXY_HOME:
#   venv/bin/comfy-api-proxy   the proxy; run it as
#                              comfy-api-proxy run --comfyui http://127.0.0.1:PORT --port PORT
#   dl/                        the verified wheel        .installed   marker (version)
#
# Needs: python3.11 with the venv module and network access to PyPI. About 20 MB, seconds.
set -euo pipefail

readonly PROXY_VERSION=0.1.6
readonly PROXY_WHEEL=comfy_api_proxy-0.1.6-py3-none-any.whl
readonly PROXY_SHA256=1ea405f1a4dc5886d06d630bc1de57fd8754062776ace797e66969636ca941c6
readonly REQUIREMENTS_LOCK='aiohappyeyeballs==2.7.1
aiohttp==3.14.5
aiosignal==1.4.0
annotated-types==0.8.0
attrs==26.1.0
blake3==1.0.11
frozenlist==1.8.0
idna==3.20
multidict==7.2.1
propcache==0.5.4
pydantic==2.14.4
pydantic_core==2.50.5
PyYAML==6.0.4
typing-inspection==0.4.5
typing_extensions==4.16.0
yarl==1.25.1'

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

force=0
for argument in "$@"; do
  case "$argument" in
    --force) force=1 ;;
    --help | -h) usage; exit 0 ;;
    *) echo "unknown argument: $argument (see --help)" >&2; exit 2 ;;
  esac
done

home="${DARKROOM_PROXY_HOME:-$HOME/.cache/darkroom/comfy-api-proxy}"
python="${DARKROOM_PYTHON:-python3.11}"
marker="$home/.installed"

if [ "$force" = 0 ] && [ -f "$marker" ] && [ "$(cat "$marker")" = "$PROXY_VERSION" ] \
  && [ -x "$home/venv/bin/comfy-api-proxy" ]; then
  echo "comfy-api-proxy $PROXY_VERSION already installed in $home"
  exit 0
fi
command -v "$python" >/dev/null || {
  echo "$python is missing: install Python 3.11 with venv, or set DARKROOM_PYTHON" >&2
  exit 1
}

mkdir -p "$home/dl"
wheel="$home/dl/$PROXY_WHEEL"
if [ ! -f "$wheel" ]; then
  echo "downloading comfy-api-proxy==$PROXY_VERSION from PyPI"
  "$python" -m pip download --quiet --no-deps --only-binary=:all: \
    --dest "$home/dl" "comfy-api-proxy==$PROXY_VERSION"
fi
if ! echo "$PROXY_SHA256  $wheel" | sha256sum --check --status; then
  echo "$wheel does not match its pinned sha256 $PROXY_SHA256; removed it" >&2
  rm -f "$wheel"
  exit 1
fi

rm -rf "$home/venv" "$marker"
"$python" -m venv "$home/venv"
lock="$home/requirements.lock"
printf '%s\n' "$REQUIREMENTS_LOCK" > "$lock"
"$home/venv/bin/pip" install --quiet --disable-pip-version-check --constraint "$lock" \
  "$wheel"
"$home/venv/bin/comfy-api-proxy" --help >/dev/null
echo "$PROXY_VERSION" > "$marker"
echo "comfy-api-proxy $PROXY_VERSION installed in $home"
