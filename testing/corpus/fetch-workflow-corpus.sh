#!/usr/bin/env bash
# Fetches the real-workflow corpus for Darkroom's UI-to-API conversion test: workflow
# templates written by ComfyUI's authors, published on PyPI as wheels.
#
#   templates-0.7.25   the four media packages that comfyui-workflow-templates==0.7.25
#                      (the version ComfyUI 0.3.75 requires) depends on
#   templates-json     comfyui-workflow-templates-json, pinned to the newest release
#                      seen when this script was written (many use subgraphs)
#
# Every wheel is pinned by version and sha256 (pip --require-hashes) and downloaded with
# --no-deps; only the workflow JSON files are unpacked. Re-running is instant once a
# corpus folder carries its .complete marker.
#
# Usage: testing/corpus/fetch-workflow-corpus.sh
# Environment:
#   DARKROOM_CORPUS_DIR   cache folder (default: $HOME/.cache/darkroom/workflow-corpus)
#   DARKROOM_PYTHON       interpreter whose pip downloads (default: python3)
# Prints the folder of each corpus, one per line, on stdout. Needs network access to PyPI
# the first time (about 100 MB, mostly the media packages' images and videos).
set -euo pipefail

corpus_dir="${DARKROOM_CORPUS_DIR:-$HOME/.cache/darkroom/workflow-corpus}"
python="${DARKROOM_PYTHON:-python3}"

log() { printf '[workflow-corpus] %s\n' "$*" >&2; }
die() { printf '[workflow-corpus] error: %s\n' "$*" >&2; exit 1; }

# name==version sha256, one wheel a line, per corpus.
readonly TEMPLATES_0_7_25='comfyui-workflow-templates-media-api==0.3.14 8482cc5d574082e1376c327059a26ea2bc016865a415b6562868c8272d0341cd
comfyui-workflow-templates-media-video==0.3.12 6a99577651ab45be9e3ee45bcfd9dc55350b3caa9678648469586021570d2b15
comfyui-workflow-templates-media-image==0.3.17 1454d562881dcbe854ea77cd40a74d45551355945cb4773650bf2007f5927fd6
comfyui-workflow-templates-media-other==0.3.15 9e7e9406e32c59850e79c2f561381e4e113d3b161e63066208170b2e75f5a311'
readonly TEMPLATES_JSON='comfyui-workflow-templates-json==0.1.123 fc321960cfc4f52dddc3ee111f33489b167eb7958028eb5b6a7f3fa8865a385e'

# fetch_corpus NAME PINS: downloads the pinned wheels into NAME/wheels and unpacks each
# wheel's templates/*.json into NAME/<package folder>/.
fetch_corpus() {
  local name=$1 pins=$2
  local target="$corpus_dir/$name"
  if [ -f "$target/.complete" ]; then
    printf '%s\n' "$target"
    return
  fi

  log "downloading $name into $target"
  rm -rf "$target"
  mkdir -p "$target/wheels"
  local requirements="$target/requirements.txt"
  while read -r spec digest; do
    printf '%s --hash=sha256:%s\n' "$spec" "$digest"
  done <<<"$pins" >"$requirements"
  "$python" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
    -r "$requirements" -d "$target/wheels" >&2 || die "pip download failed for $name"

  local wheel package
  for wheel in "$target"/wheels/*.whl; do
    package=$(basename "$wheel" | cut -d- -f1)
    # A wheel is a zip; Python's zipfile avoids depending on an unzip binary.
    "$python" - "$wheel" "$target/$package" <<'PY' || die "cannot unpack $wheel"
import pathlib, sys, zipfile
wheel, destination = sys.argv[1], pathlib.Path(sys.argv[2])
destination.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(wheel) as archive:
    for member in archive.namelist():
        parts = pathlib.PurePosixPath(member).parts
        if len(parts) == 3 and parts[1] == "templates" and member.endswith(".json"):
            (destination / parts[2]).write_bytes(archive.read(member))
PY
  done

  touch "$target/.complete"
  log "$name: $(find "$target" -name '*.json' | wc -l) JSON files"
  printf '%s\n' "$target"
}

command -v "$python" >/dev/null 2>&1 || die "$python is missing"
mkdir -p "$corpus_dir"
fetch_corpus templates-0.7.25 "$TEMPLATES_0_7_25"
fetch_corpus templates-json-0.1.123 "$TEMPLATES_JSON"
