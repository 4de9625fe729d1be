#!/usr/bin/env bash
# Create (or reuse) the Python 3 virtualenv used by pollserve's interop tests,
# with requests, httpx and websockets at the exact versions pinned in
# scripts/requirements-interop.txt.
#
#   scripts/setup-python.sh [VENV_DIR]      (default: <repo>/.venv)
#
# Idempotent: a stamp file in the venv records the hash of the requirements
# file and the interpreter version; when it matches (and the imports work)
# the script returns in well under a second without touching the network.
# Progress goes to stderr; the venv's python path is printed on stdout as the
# last line, so callers can do:  PY=$(scripts/setup-python.sh)
#
# Env: PYTHON   interpreter used to create the venv (default: python3; >= 3.11)
set -euo pipefail

log() { printf '[setup-python] %s\n' "$*" >&2; }
die() { printf '[setup-python] ERROR: %s\n' "$*" >&2; exit 1; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
REQS="$SCRIPT_DIR/requirements-interop.txt"
VENV_DIR=${1:-"$REPO_ROOT/.venv"}
PYTHON=${PYTHON:-python3}
STAMP_NAME=.pollserve-interop-stamp

[ -f "$REQS" ] || die "missing $REQS"
command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found; set PYTHON=/path/to/python3.11+"

# websockets 17.x needs Python >= 3.11.
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  die "$("$PYTHON" -V 2>&1) is too old: need Python >= 3.11 (set PYTHON=...)"
fi

py_version=$("$PYTHON" -c 'import sys; print(".".join(map(str, sys.version_info[:3])))')
want_stamp="$(sha256sum "$REQS" | cut -d' ' -f1) python-$py_version"
venv_py="$VENV_DIR/bin/python"

if [ -x "$venv_py" ] && [ -f "$VENV_DIR/$STAMP_NAME" ] \
   && [ "$(cat "$VENV_DIR/$STAMP_NAME")" = "$want_stamp" ] \
   && "$venv_py" -c 'import requests, httpx, websockets' >/dev/null 2>&1; then
  log "up to date: $VENV_DIR (python $py_version, $(grep -E '^(requests|httpx|websockets)==' "$REQS" | tr '\n' ' '))"
else
  start=$(date +%s)
  if [ -x "$venv_py" ] && [ "$("$venv_py" -c 'import sys; print(".".join(map(str, sys.version_info[:3])))' 2>/dev/null || true)" = "$py_version" ]; then
    log "reusing existing venv $VENV_DIR (python $py_version); requirements changed or incomplete"
  else
    if [ -e "$VENV_DIR" ]; then
      [ -f "$VENV_DIR/pyvenv.cfg" ] || die "$VENV_DIR exists and is not a virtualenv; refusing to replace it"
      log "removing stale venv $VENV_DIR (different/broken interpreter)"
      rm -rf "$VENV_DIR"
    fi
    log "creating venv $VENV_DIR with $PYTHON ($py_version)"
    "$PYTHON" -m venv "$VENV_DIR" \
      || die "python -m venv failed (on Debian's system python: apt-get install python3-venv)"
  fi
  log "installing pinned packages from $REQS"
  "$venv_py" -m pip install --disable-pip-version-check --no-input -q -r "$REQS"
  "$venv_py" -c 'import requests, httpx, websockets' \
    || die "packages installed but import failed"
  printf '%s\n' "$want_stamp" > "$VENV_DIR/$STAMP_NAME"
  log "installed in $(( $(date +%s) - start ))s: $("$venv_py" -c 'import requests, httpx, websockets; print("requests", requests.__version__, "httpx", httpx.__version__, "websockets", websockets.__version__)')"
fi

# Absolute path of the venv interpreter (stdout, last line).
(cd "$VENV_DIR" && printf '%s/bin/python\n' "$(pwd)")
