#!/usr/bin/env bash
# Install moto's S3-compatible server, which Darkroom's S3 blob-store tests start on a free
# loopback port (crates/darkroom/tests/support/s3.rs). PyPI only; pinned with every
# dependency, so a fresh machine gets the server the tests were written against.
#
# Usage: scripts/install-moto.sh [--force]
#   --force   rebuild the venv even when the pinned version is already there
#
# Environment:
#   DARKROOM_MOTO_HOME   install folder (default: $HOME/.cache/darkroom/moto)
#   DARKROOM_PYTHON      interpreter for the venv (default: python3.11, else python3)
#
# Result: $DARKROOM_MOTO_HOME/venv/bin/moto_server, and .installed holding the lock below.
# Needs: python3 with the venv module and network access to PyPI the first time (~60 MB).
# Re-running once installed is instant.
set -euo pipefail

readonly LOCK='moto[server]==5.2.5
annotated-types==0.8.0
antlr4-python3-runtime==4.13.2
attrs==26.1.0
aws-xray-sdk==2.15.0
blinker==1.9.0
boto3==1.44.8
botocore==1.44.8
certifi==2026.10.19.post1
cffi==2.1.1
cfn-lint==1.58.0
charset-normalizer==3.5.3
click==8.5.1
cryptography==50.0.2
docker==7.2.0
Flask==3.1.3
flask-cors==6.0.5
graphql-core==3.3.2
idna==3.20
itsdangerous==2.2.0
Jinja2==3.1.6
jmespath==1.1.0
joserfc==1.8.0
jsonpatch==1.48
jsonpath-ng==1.17.0
jsonpointer==3.12
jsonschema==4.26.0
jsonschema-path==0.5.0
jsonschema-specifications==2025.9.1
lazy-object-proxy==1.13.0
MarkupSafe==3.0.4
mpmath==1.3.0
networkx==3.6.1
openapi-schema-validator==0.9.0
openapi-spec-validator==0.9.0
pathable==0.6.0
py-partiql-parser==0.6.3
pycparser==3.12
pydantic==2.14.4
pydantic-settings==2.16.3
pydantic_core==2.50.5
pyparsing==3.3.3
python-dateutil==2.9.0.post0
python-dotenv==1.2.4
PyYAML==6.0.4
referencing==0.37.0
regex==2026.11.19
requests==2.34.2
responses==0.26.3
rfc3339-validator==0.1.4
rpds-py==2026.9.1
s3transfer==0.19.3
six==1.17.0
sympy==1.14.0
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
Werkzeug==3.1.9
wrapt==2.5.2
xmltodict==1.0.4'

home="${DARKROOM_MOTO_HOME:-$HOME/.cache/darkroom/moto}"
force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

if [ "$force" = 0 ] && [ -x "$home/venv/bin/moto_server" ] \
  && [ "$(cat "$home/.installed" 2>/dev/null)" = "$LOCK" ]; then
  echo "moto already installed in $home"
  exit 0
fi

python="${DARKROOM_PYTHON:-}"
if [ -z "$python" ]; then
  python=$(command -v python3.11 || command -v python3 || true)
fi
[ -n "$python" ] || { echo "python3 is missing: install it with the venv module" >&2; exit 1; }

echo "installing moto into $home with $python"
rm -rf "$home/venv" "$home/.installed"
mkdir -p "$home"
"$python" -m venv "$home/venv"
printf '%s\n' "$LOCK" > "$home/requirements.txt"
"$home/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
  -r "$home/requirements.txt"
"$home/venv/bin/moto_server" --help >/dev/null
printf '%s' "$LOCK" > "$home/.installed"
echo "moto installed: $home/venv/bin/moto_server"
