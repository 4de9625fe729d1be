#!/usr/bin/env bash
# Runs every pollserve test on a fresh machine, installing what the tests need:
# Debian packages (curl, Node.js, Chromium, wrk and nginx for the benchmark
# smoke run), a Python venv with
# requests/httpx/websockets, the Node `ws` client and playwright-core,
# Autobahn|Testsuite's wstest (Python 2.7), and cargo-fuzz (from the crate
# registry; the fuzz smoke run uses the nightly toolchain).
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
command -v chromium >/dev/null || missing+=(chromium chromium-driver)
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx)
command -v openssl >/dev/null || missing+=(openssl)
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
# The library without its default feature (permessage-deflate) builds clean too.
cargo clippy -p pollserve --no-default-features --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "minimum supported Rust version (Cargo.toml's rust-version)"
# The library, every feature, checked with the oldest toolchain it promises.
# rustup fetches that toolchain on a fresh machine; a machine that cannot
# reach the toolchain server says so loudly and skips only this check.
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
if rustup run "$msrv" rustc --version >/dev/null 2>&1 \
  || timeout 600 rustup toolchain install "$msrv" --profile minimal; then
  CARGO_TARGET_DIR=target/msrv cargo "+$msrv" check -p pollserve --all-features --quiet
  echo "MSRV $msrv: the library checks"
else
  echo "WARNING: toolchain $msrv could not be installed here: MSRV check SKIPPED" >&2
fi

step "library dependencies: no CLI crates for library users"
# The command (clap, signal-hook) lives in its own package, cli/; a program
# that depends on the pollserve library must not build it.
lib_deps=$(cargo tree -p pollserve -e normal --prefix none)
if grep -E '^(clap|signal-hook) ' <<<"$lib_deps"; then
  echo "the pollserve library pulls in the crates above; they belong to cli/" >&2
  exit 1
fi
# TLS is the library's `tls` feature, off by default (the command turns it on).
if grep -E '^(rustls|ring) ' <<<"$lib_deps"; then
  echo "the pollserve library pulls in TLS crates by default; they belong behind its tls feature" >&2
  exit 1
fi

step "interop clients (Python venv, Node ws)"
POLLSERVE_TEST_PYTHON=$(scripts/setup-python.sh | tail -n 1)
export POLLSERVE_TEST_PYTHON
(cd tests/node && npm ci --silent --no-audit --no-fund)
(cd tests/browser && npm ci --silent --no-audit --no-fund)

step "cargo test (unit, loopback integration, interop, doctests, benchmark smoke run)"
cargo build --examples --quiet
cargo test --workspace

step "fuzz smoke run (each libFuzzer target 10 s; installs cargo-fuzz if missing)"
scripts/fuzz.sh --smoke

# The `pollserve` command, from the workspace package `cli/` (pollserve-cli).
cargo build --release --quiet -p pollserve-cli --bin pollserve
demo_pid=
start_demo() { # PORT [SCHEME [DEMO ARGS...]]
  local port=$1 scheme=${2:-http}
  shift $(($# < 2 ? $# : 2))
  ./target/release/pollserve demo --port "$port" --quiet "$@" &
  demo_pid=$!
  for _ in $(seq 100); do
    curl -kfsS "$scheme://127.0.0.1:$port/api/status" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "pollserve demo did not start on port $port" >&2
  return 1
}
# A certificate for the HTTPS runs, made now (no key is ever committed).
tls_dir=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$tls_dir/key.pem" -out "$tls_dir/cert.pem" 2>/dev/null
tls_args=(--tls-cert "$tls_dir/cert.pem" --tls-key "$tls_dir/key.pem")
trap '[ -z "$demo_pid" ] || kill "$demo_pid" 2>/dev/null || true; rm -rf "$tls_dir"' EXIT

step "browser end-to-end: headless Chromium on pollserve demo"
start_demo 9002
mkdir -p target/artifacts
(cd tests/browser && node demo.mjs "http://127.0.0.1:9002/" "$PWD/../../target/artifacts/demo.png")
kill "$demo_pid" 2>/dev/null || true
echo "screenshot kept at target/artifacts/demo.png"

step "browser end-to-end over HTTPS and wss:// (test certificate, --ignore-certificate-errors)"
start_demo 9003 https "${tls_args[@]}"
(cd tests/browser && node demo.mjs "https://127.0.0.1:9003/" "$PWD/../../target/artifacts/demo-https.png")
kill "$demo_pid" 2>/dev/null || true

# Autobahn|Testsuite against `pollserve demo`'s /ws/echo. wstest is
# single-threaded Python 2 and takes 2-14 s per compression case (it runs
# 1,000 messages through each), so two wstest processes run side by side: one
# on section 13, one on everything else. Every case must be OK or
# INFORMATIONAL (NON-STRICT fails too) and every expected case present.
autobahn_split() { # URL OUT_DIR EXTRA_EXCLUDES EXPECTED_OUTSIDE_13
  local url=$1 out=$2 extra=$3 expected=$4 ra=0 rb=0
  AUTOBAHN_EXCLUDE="13.*${extra:+,$extra}" AUTOBAHN_EXPECTED_COUNT=$expected \
    bash conformance/autobahn.sh "$url" "*" "$out" &
  local a=$!
  AUTOBAHN_EXCLUDE='' AUTOBAHN_EXPECTED_COUNT=126 \
    bash conformance/autobahn.sh "$url" "13.*" "$out-13" &
  local b=$!
  wait "$a" || ra=$?
  wait "$b" || rb=$?
  [ "$ra" = 0 ] && [ "$rb" = 0 ]
}
export AUTOBAHN_STRICT=1 AUTOBAHN_TIMEOUT=3000
set +e
wstest_path=$(conformance/install-wstest.sh)
rc=$?
set -e
if [ "$rc" = 3 ]; then
  echo "Autobahn stage skipped: no Python 2.7 on this machine (CI always runs it)"
elif [ "$rc" != 0 ]; then
  exit "$rc"
else
  echo "wstest: $wstest_path"
  step "Autobahn|Testsuite over ws://: all 517 cases (1-10, and 12-13 with permessage-deflate, neither side keeping context: the demo's default)"
  start_demo 9001
  autobahn_split "ws://127.0.0.1:9001/ws/echo" conformance/reports/servers "" 391
  kill "$demo_pid" 2>/dev/null || true

  step "Autobahn|Testsuite over wss:// (wstest does not check the certificate), both compression contexts kept: 445 cases"
  # Sections 1-10, 12.1 (every message size, default offer) and 13 (every
  # parameter combination); 12.2-12.5 repeat 12.1 with other fragment sizes
  # and ran above.
  start_demo 9004 https "${tls_args[@]}" --deflate-context-takeover
  autobahn_split "wss://127.0.0.1:9004/ws/echo" conformance/reports/servers-wss \
    '12.2.*,12.3.*,12.4.*,12.5.*' 319
  kill "$demo_pid" 2>/dev/null || true
fi

step "all tests passed"
