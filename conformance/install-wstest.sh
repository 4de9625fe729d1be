#!/usr/bin/env bash
# Install Autobahn|Testsuite's `wstest` (Python 2.7 only) into a virtualenv.
#
#   conformance/install-wstest.sh [ENV_DIR]   (default: conformance/.wstest-env)
#
# Recipe: a Python-3-run virtualenv<20.22 (the last line that can create 2.7
# envs) builds a 2.7 env; autobahntestsuite and all of its dependencies are
# then installed at the exact versions in conformance/wstest-constraints.txt.
# wsaccel is built from source, so gcc and the 2.7 headers (pyenv has them)
# are needed. Takes ~1 min the first time; idempotent (stamp file) afterwards.
#
# Python 2.7 lookup: $PYTHON2, python2.7 on PATH, $(pyenv root)/versions/2.7*,
# $PYENV_ROOT/versions/2.7*, ~/.pyenv/versions/2.7*, /usr/bin, /usr/local/bin.
# (PYTHON2_SEARCH_ROOTS="dir ..." replaces the pyenv roots and /usr paths;
#  PYTHON2_SEARCH_ROOTS="" PATH=/usr/bin:/bin simulates a machine without 2.7.)
#
# Exit codes: 0 ok (path of wstest printed on stdout, last line)
#             3 no Python 2.7 found and $CI is empty -> caller should SKIP
#             1 any other error, including no Python 2.7 when $CI is set
set -euo pipefail

log() { printf '[install-wstest] %s\n' "$*" >&2; }
die() { printf '[install-wstest] ERROR: %s\n' "$*" >&2; exit 1; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ENV_DIR=${1:-"$SCRIPT_DIR/.wstest-env"}
CONSTRAINTS="$SCRIPT_DIR/wstest-constraints.txt"
AUTOBAHN_VERSION=25.10.1
VIRTUALENV_PINS=(virtualenv==20.21.1 distlib==0.4.4 filelock==3.32.7 platformdirs==3.11.0)
PYTHON3=${PYTHON3:-python3}
STAMP_NAME=.pollserve-wstest-stamp

[ -f "$CONSTRAINTS" ] || die "missing $CONSTRAINTS"

is_py27() { [ -n "${1:-}" ] && [ -x "$1" ] && "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' >/dev/null 2>&1; }

find_python27() {
  local c roots=() r
  if [ -n "${PYTHON2:-}" ]; then
    is_py27 "$PYTHON2" && { echo "$PYTHON2"; return 0; }
    log "PYTHON2=$PYTHON2 is not a working Python 2.7; searching elsewhere"
  fi
  c=$(command -v python2.7 2>/dev/null || true)
  # A pyenv shim on PATH may exist but fail when 2.7 is not the selected version.
  is_py27 "$c" && { echo "$c"; return 0; }
  if [ -n "${PYTHON2_SEARCH_ROOTS+x}" ]; then
    read -r -a roots <<<"$PYTHON2_SEARCH_ROOTS"   # override (used to test the skip path)
  else
    if command -v pyenv >/dev/null 2>&1; then roots+=("$(pyenv root 2>/dev/null || true)"); fi
    roots+=("${PYENV_ROOT:-}" "${HOME:-/root}/.pyenv" /root/.pyenv /opt/pyenv /usr/local/pyenv)
  fi
  for r in "${roots[@]}"; do
    if [ -z "$r" ] || [ ! -d "$r/versions" ]; then continue; fi
    # Highest 2.7.x first.
    while IFS= read -r c; do
      is_py27 "$c/bin/python2.7" && { echo "$c/bin/python2.7"; return 0; }
    done < <(find "$r/versions" -mindepth 1 -maxdepth 1 -name '2.7*' 2>/dev/null | sort -V -r)
  done
  local sys_paths=(/usr/bin/python2.7 /usr/local/bin/python2.7)
  [ -z "${PYTHON2_SEARCH_ROOTS+x}" ] || sys_paths=()
  for c in "${sys_paths[@]}"; do
    is_py27 "$c" && { echo "$c"; return 0; }
  done
  return 1
}

if ! PY27=$(find_python27); then
  if [ -n "${CI:-}" ]; then
    die "no Python 2.7 interpreter found (needed by Autobahn wstest); CI is set, so this is an error. Set PYTHON2=/path/to/python2.7."
  fi
  log "SKIP: no Python 2.7 interpreter found, so Autobahn wstest cannot be installed."
  log "      Install CPython 2.7 (e.g. 'pyenv install 2.7.18') or set PYTHON2=/path/to/python2.7."
  exit 3
fi

want_stamp="autobahntestsuite==$AUTOBAHN_VERSION constraints=$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1) python2=$PY27"
WSTEST="$ENV_DIR/bin/wstest"

verify() {
  local v
  v=$("$WSTEST" -a 2>/dev/null | sed -n 's/^AutobahnTestSuite //p')
  [ "$v" = "$AUTOBAHN_VERSION" ]   # -a imports twisted/autobahn: a real smoke test
}

if [ -f "$ENV_DIR/$STAMP_NAME" ] && [ "$(cat "$ENV_DIR/$STAMP_NAME")" = "$want_stamp" ] && verify; then
  log "up to date: $WSTEST (AutobahnTestSuite $AUTOBAHN_VERSION, $PY27)"
  (cd "$ENV_DIR/bin" && printf '%s/wstest\n' "$(pwd)")
  exit 0
fi

start=$(date +%s)
log "using Python 2.7 at $PY27"
command -v "$PYTHON3" >/dev/null 2>&1 || die "'$PYTHON3' not found (needed to run virtualenv); set PYTHON3=..."
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 \
  || die "no C compiler: wsaccel is built from source (apt-get install gcc)"

if [ -e "$ENV_DIR" ]; then
  [ -f "$ENV_DIR/pyvenv.cfg" ] || [ -f "$ENV_DIR/$STAMP_NAME" ] || [ -z "$(ls -A "$ENV_DIR" 2>/dev/null)" ] \
    || die "$ENV_DIR exists and is not a virtualenv; refusing to replace it"
  log "removing outdated/broken env $ENV_DIR"
  rm -rf "$ENV_DIR"
fi

BOOT=$(mktemp -d "${TMPDIR:-/tmp}/wstest-virtualenv.XXXXXX")
trap 'rm -rf "$BOOT"' EXIT
log "bootstrapping ${VIRTUALENV_PINS[0]} (Python 3, into a temp dir)"
PIP_ROOT_USER_ACTION=ignore "$PYTHON3" -m pip install --disable-pip-version-check --no-input -q --target "$BOOT" "${VIRTUALENV_PINS[@]}"

log "creating Python 2.7 env $ENV_DIR"
PYTHONPATH="$BOOT" "$PYTHON3" -m virtualenv -q -p "$PY27" "$ENV_DIR"

log "installing autobahntestsuite==$AUTOBAHN_VERSION with pinned deps (~1 min)"
PIP_NO_PYTHON_VERSION_WARNING=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
  "$ENV_DIR/bin/pip" install --no-input -q -c "$CONSTRAINTS" "autobahntestsuite==$AUTOBAHN_VERSION"

if ! "$WSTEST" --help >/dev/null 2>&1 || ! verify; then
  die "installed, but '$WSTEST --help' / '-a' does not work"
fi
printf '%s\n' "$want_stamp" > "$ENV_DIR/$STAMP_NAME"
log "installed in $(( $(date +%s) - start ))s: $("$WSTEST" -a 2>/dev/null | tr '\n' ' ')"
(cd "$ENV_DIR/bin" && printf '%s/wstest\n' "$(pwd)")
