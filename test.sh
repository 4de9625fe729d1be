#!/usr/bin/env bash
# Runs every pollserve test on a fresh machine, installing what the tests need:
# Debian packages (curl, Node.js), a Python venv with requests/httpx/websockets,
# the Node `ws` client, and Autobahn|Testsuite's wstest (Python 2.7).
#
#   ./test.sh            everything (what CI runs)
#
# Network traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
step() { printf '\n=== %s\n' "$*"; }

step "system packages"
missing=()
command -v curl >/dev/null || missing+=(curl)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "missing: ${missing[*]} (install them, or run as root so this script can)" >&2
    exit 1
  fi
fi

step "format, lints, docs"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "interop clients (Python venv, Node ws)"
POLLSERVE_TEST_PYTHON=$(scripts/setup-python.sh | tail -n 1)
export POLLSERVE_TEST_PYTHON
(cd tests/node && npm ci --silent --no-audit --no-fund)

step "cargo test (unit, loopback integration, interop, doctests)"
cargo test --workspace

step "Autobahn|Testsuite against pollserve demo /ws/echo"
cargo build --release --quiet --bin pollserve
port=9001
./target/release/pollserve demo --port "$port" --quiet &
demo_pid=$!
trap 'kill "$demo_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$port/api/status" >/dev/null 2>&1 && break
  sleep 0.1
done
set +e
bash conformance/autobahn.sh "ws://127.0.0.1:$port/ws/echo"
rc=$?
set -e
kill "$demo_pid" 2>/dev/null || true
if [ "$rc" = 3 ]; then
  echo "Autobahn stage skipped: no Python 2.7 on this machine (CI always runs it)"
elif [ "$rc" != 0 ]; then
  exit "$rc"
fi

step "all tests passed"
