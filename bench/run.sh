#!/usr/bin/env bash
# pollserve benchmark matrix: pollserve against fastwebsockets, tokio-tungstenite,
# hyper, tiny_http and nginx, side by side on 127.0.0.1.
#
#   bench/run.sh           full matrix (~25 min): writes bench/results.md and bench/chart.svg
#   bench/run.sh --smoke   every benchmark for ~1 s, echo bytes verified; writes
#                          only under target/bench-smoke/ (non-zero exit on any failure)
#
# Every figure in results.md is a ratio of runs made side by side: within each
# round every server is measured once (order reversed every other round) and
# the median over rounds of the per-round ratio is reported.
#
# Needs: wrk, nginx, curl, openssl (apt-get install -y wrk nginx curl openssl);
#        the pmd part also node and Python >= 3.11 (it installs Node ws and
#        Python websockets as test.sh does, unless POLLSERVE_TEST_PYTHON is set).
# Env: BENCH_PORT_BASE (default 19100): first port tried; ports in use are skipped.
#      BENCH_BIN_DIR: use the binaries there instead of building (cargo test does this).
#      BENCH_SKIP_MICRO: leave out the criterion micro-benchmarks.
#      BENCH_ONLY: comma-separated parts to run (ws, idle, http, tls, hostile, pmd, fanout, micro),
#        e.g. BENCH_ONLY=hostile bench/run.sh; without --smoke the output then
#        goes to target/bench-only/ so bench/results.md keeps the full matrix.
set -euo pipefail

SMOKE=0
case "${1:-}" in
  --smoke) SMOKE=1 ;;
  "") ;;
  *) echo "usage: bench/run.sh [--smoke]" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] FAIL: %s\n' "$*" >&2; exit 1; }

for tool in wrk nginx curl cmp openssl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install -y wrk nginx curl openssl)"
done

# Rounds are short and many: the noise on this shared machine comes in phases
# of seconds that slow whichever server runs then, so short runs side by side
# see the same conditions more often than long ones (measured: 16 pairs of
# 0.5 s runs agree far better than 4 pairs of 3 s runs).
# Hostile row: HOSTILE_CONNS attack connections, HOSTILE_FLOODERS of them
# flooding; the probe sends HOSTILE_RATE requests/s for HOSTILE_SECS after
# HOSTILE_WARMUP, each failed after HOSTILE_TIMEOUT_MS.
HOSTILE_RATE=200; HOSTILE_TIMEOUT_MS=1000
# TLS part: TLS_SECS per run when set (smoke: shorter), else the rounds and
# run lengths of the HTTP (HTTPS rows) and WebSocket (wss row) parts;
# TLS_IDLE_CONNS idle connections (a full handshake each).
TLS_SECS=
# Fan-out part: FAN_SUBS subscriber counts, each with messages of FAN_SIZES
# bytes measured one after the other on the same subscribers (FAN_SECS per
# size after FAN_WARMUP), FAN_WINDOW messages in flight; the memory row opens
# FAN_MEM_CONNS subscribers per run.
FAN_SIZES=64,4096; FAN_WINDOW=8
if [ "$SMOKE" = 1 ]; then
  WS_SECS=1; WARMUP=0.2; WS_ROUNDS=1; HTTP_SECS=1; HTTP_WARMUP=0.2; HTTP_ROUNDS=1; IDLE_ROUNDS=1; IDLE_CONNS=1000
  HOSTILE_ROUNDS=1; HOSTILE_SECS=1; HOSTILE_WARMUP=0.2; HOSTILE_CONNS=40; HOSTILE_FLOODERS=2
  TLS_SECS=0.5; TLS_IDLE_CONNS=200; PMD_IDLE_CONNS=200; PMD_PEER_IDLE_CONNS=200
  FAN_SUBS=50; FAN_SECS=0.3; FAN_WARMUP=0.1; FAN_ROUNDS=1; FAN_MEM_CONNS=200; FAN_MEM_ROUNDS=1
  OUT_DIR="$ROOT/target/bench-smoke"
else
  WS_SECS=0.5; WARMUP=0.15; WS_ROUNDS=15; HTTP_SECS=1; HTTP_WARMUP=0.2; HTTP_ROUNDS=16; IDLE_ROUNDS=5; IDLE_CONNS=10000
  HOSTILE_ROUNDS=4; HOSTILE_SECS=5; HOSTILE_WARMUP=0.5; HOSTILE_CONNS=1000; HOSTILE_FLOODERS=16
  TLS_IDLE_CONNS=$IDLE_CONNS; PMD_IDLE_CONNS=$IDLE_CONNS; PMD_PEER_IDLE_CONNS=2000
  FAN_SUBS="1000 10000"; FAN_SECS=0.5; FAN_WARMUP=0.2; FAN_ROUNDS=4; FAN_MEM_CONNS=10000; FAN_MEM_ROUNDS=2
  OUT_DIR="$ROOT/bench"
fi
# BENCH_ONLY=hostile,http,...: only those parts (ws, idle, http, tls,
# hostile, pmd, fanout, micro); a partial full run writes to target/bench-only/, not bench/.
want() { [ -z "${BENCH_ONLY:-}" ] || [[ ",$BENCH_ONLY," == *",$1,"* ]]; }
if [ -n "${BENCH_ONLY:-}" ] && [ "$SMOKE" = 0 ]; then OUT_DIR="$ROOT/target/bench-only"; fi
WRK_WARMUP=1   # wrk takes whole seconds only
mkdir -p "$OUT_DIR"

BUILD_CMD="cargo build --release -p pollserve-bench"
if [ -n "${BENCH_BIN_DIR:-}" ]; then
  # bench/tests/smoke.rs passes the binaries cargo test built (a nested cargo
  # build would wait for the outer cargo's lock on the target directory).
  BIN=$BENCH_BIN_DIR
  BUILD_CMD="(prebuilt binaries from $BIN)"
  log "using $BUILD_CMD"
else
  log "$BUILD_CMD"
  $BUILD_CMD
  BIN="$ROOT/target/release"
fi

# CPU placement: with two or more CPUs the load generator (loadgen, wrk) runs
# on CPU 0 and every server built to use one core (pollserve's single loop,
# the peers' current-thread forms, tiny_http, nginx with one worker) on CPU 1,
# so each side has a core of its own and the kernel does not migrate them.
# Servers built for several cores (`*_mt`, `pollserve_http_2loops`) are left
# free to use both, sharing with the load generator.
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  GEN_PIN=(taskset -c 0); SRV_PIN=(taskset -c 1)
  PLACEMENT="load generator pinned to CPU 0, single-core servers to CPU 1 (taskset), multi-threaded servers unpinned"
else
  GEN_PIN=(); SRV_PIN=()
  PLACEMENT="load generator and servers share the CPUs (no taskset or one CPU)"
fi

WORK=$(mktemp -d /tmp/pollserve-bench.XXXXXX)
chmod 755 "$WORK"   # nginx workers run as nobody and must read the static files
RAW="$WORK/raw.tsv"
COMMANDS="$WORK/commands.txt"
: > "$RAW"; : > "$COMMANDS"
# The TLS part's certificates and keys, made by openssl for this run (under
# target/, never committed; removed with the run's other files).
CERTS="$ROOT/target/bench-certs/${WORK##*/}"

PIDS=()
# The fan-out memory row's network namespace, once made (see there).
FAN_NS=
cleanup() {
  local status=$?
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  if [ -n "$FAN_NS" ]; then ip netns del "$FAN_NS" 2>/dev/null || true; fi
  if [ "$status" -ne 0 ]; then
    log "logs kept in $WORK"
  else
    rm -rf "$WORK" "$CERTS"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Open-file limit for 10,000 idle connections (server and load generator each).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + 100)) ]; then
  die "open-file limit $(ulimit -n) is below $((IDLE_CONNS + 100)); raise the hard limit"
fi

# NETNS: a command prefix (ip netns exec NAME) that `start` runs servers
# under and `port_busy` looks in; empty outside the fan-out memory row.
NETNS=()
port_busy() {
  if [ ${#NETNS[@]} -gt 0 ]; then
    "${NETNS[@]}" bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}
NEXT_PORT=${BENCH_PORT_BASE:-19100}
# Sets PORT to a port nothing listens on.
pick_port() {
  while port_busy "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
  PORT=$NEXT_PORT
  NEXT_PORT=$((NEXT_PORT + 1))
}

declare -A PORT_OF PID_OF
# start NAME CMD... (CMD may use the literal word @PORT@)
start() {
  local name=$1; shift
  pick_port
  local args=("${NETNS[@]}") a
  case $name in
    *_mt|*_2loops) ;;
    *) args+=("${SRV_PIN[@]}") ;;
  esac
  for a in "$@"; do args+=("${a//@PORT@/$PORT}"); done
  "${args[@]}" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  PORT_OF[$name]=$PORT
  PID_OF[$name]=$pid
  echo "$name: ${args[*]}" >> "$COMMANDS"
  local i
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.log" >&2; die "$name exited at start"; }
    port_busy "$PORT" && return 0
    sleep 0.1
  done
  die "$name did not listen on $PORT"
}

# stop NAME: ends a server started by `start`.
stop() {
  local pid=${PID_OF[$1]}
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

alive() {
  kill -0 "${PID_OF[$1]}" 2>/dev/null || { cat "$WORK/$1.log" >&2; die "server $1 died"; }
}

# Subjects of a round in alternating order: forward on odd rounds, reversed on even.
order() {
  local round=$1; shift
  if [ $((round % 2)) = 1 ]; then printf '%s\n' "$@"; else printf '%s\n' "$@" | tac; fi
}

# subject_of NAME: the subject a server's rows carry in the raw table, its
# kind without what tells its instances apart (pollserve_http -> pollserve,
# nginx_tls_rsa -> nginx, fws_st_wss -> fws_st).
subject_of() {
  local s=${1/#pollserve_http/pollserve}
  s=${s%_tls_ecdsa}; s=${s%_tls_rsa}; s=${s%_wss}
  printf '%s' "$s"
}

# Extra loadgen arguments of the cases run next (the TLS part: --tls CERT,
# --close), their run length when not the part's usual one, and the
# connections of `lg_case` when not 64.
LG_EXTRA=()
CASE_SECS=
LG_CONNS=

kv() { # kv KEY LINE -> value of KEY=value in LINE, or -
  local v
  v=$(printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1)
  printf '%s' "${v:--}"
}

# record CASE SUBJECT ROUND LINE: logs loadgen's result line and appends its
# rate, p50, p99 and CPU per operation to the raw table.
record() {
  log "$1 $2 r$3: $4"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" \
    "$(kv msgs_per_s "$4")" "$(kv p50_us "$4")" "$(kv p99_us "$4")" "$(kv cpu_us_per_msg "$4")" >> "$RAW"
}

# ---------------------------------------------------------------- WebSocket
ws_case() { # ws_case CASE CONNS SIZE SUBJECT...
  local case=$1 conns=$2 size=$3; shift 3
  local round s line
  for round in $(seq "$WS_ROUNDS"); do
    for s in $(order "$round" "$@"); do
      local cmd=("${GEN_PIN[@]}" "$BIN/loadgen" echo --addr "127.0.0.1:${PORT_OF[$s]}" --conns "$conns" --size "$size" --secs "${CASE_SECS:-$WS_SECS}" --warmup "$WARMUP" --pid "${PID_OF[$s]}" "${LG_EXTRA[@]}")
      [ "$round" = 1 ] && echo "$case/$s: ${cmd[*]}" >> "$COMMANDS"
      line=$("${cmd[@]}") || { alive "$s"; die "$case: loadgen against $s failed"; }
      alive "$s"
      record "$case" "$(subject_of "$s")" "$round" "$line"
    done
  done
}

if want ws; then
  WS_SERVERS=(pollserve fws_st fws_mt tungstenite_st tungstenite_mt)
  start pollserve "$BIN/pollserve_echo" @PORT@
  start fws_st "$BIN/fws_echo" @PORT@ st
  start fws_mt "$BIN/fws_echo" @PORT@ mt
  start tungstenite_st "$BIN/tungstenite_echo" @PORT@ st
  start tungstenite_mt "$BIN/tungstenite_echo" @PORT@ mt

  ws_case ws_1x20 1 20 "${WS_SERVERS[@]}"
  ws_case ws_100x20 100 20 "${WS_SERVERS[@]}"
  ws_case ws_200x16k 200 16384 "${WS_SERVERS[@]}"
  ws_case ws_500x16k 500 16384 "${WS_SERVERS[@]}"
  for s in "${WS_SERVERS[@]}"; do stop "$s"; done
fi

# Idle memory: fresh servers, so earlier load does not pre-grow their heaps.
if want idle; then
  for round in $(seq "$IDLE_ROUNDS"); do
    for s in $(order "$round" pollserve tungstenite_st); do
      case $s in
        pollserve) start idle_pollserve "$BIN/pollserve_echo" @PORT@ ;;
        tungstenite_st) start idle_tungstenite_st "$BIN/tungstenite_echo" @PORT@ st ;;
      esac
      name=idle_$s
      sleep 0.3
      cmd=("${GEN_PIN[@]}" "$BIN/loadgen" idle --addr "127.0.0.1:${PORT_OF[$name]}" --conns "$IDLE_CONNS" --pid "${PID_OF[$name]}")
      [ "$round" = 1 ] && echo "ws_idle/$s: ${cmd[*]}" >> "$COMMANDS"
      line=$("${cmd[@]}") || { alive "$name"; die "idle: loadgen against $s failed"; }
      alive "$name"
      log "ws_idle $s r$round: $line"
      printf 'ws_idle\t%s\t%s\t%s\t%s\t-\t-\n' "$s" "$round" "$(kv bytes_per_conn "$line")" "$(kv conns "$line")" >> "$RAW"
      stop "$name"
    done
  done
fi

# ------------------------------------------------------- permessage-deflate
# Compressed WebSocket echo (RFC 7692): `loadgen echo --deflate` offers
# permessage-deflate with client_no_context_takeover, sends 1 KiB JSON text
# messages compressed once at start, and inflates and checks every echo
# (see bench/src/bin/loadgen/pmd.rs). pollserve_echo in two modes (default:
# neither side keeps context; server-takeover: the server keeps its
# compressor's) against Node `ws` and Python `websockets` at their default
# compression settings (bench/peers/; both keep the server's context).
# tokio-tungstenite and fastwebsockets have no permessage-deflate: no row.
# Then memory per idle compressed connection, pollserve in every mode (off:
# plain WebSocket, the baseline) and the peers; fresh servers every round.
# PMD_IDLE_CONNS pollserve connections (PMD_PEER_IDLE_CONNS for the peers).

# pmd_peers: NODE_MODULES (with `ws`) and PMD_PYTHON (with `websockets`).
# test.sh installs both (npm ci in tests/node, scripts/setup-python.sh);
# run alone, the script does the same.
pmd_peers() {
  command -v node >/dev/null 2>&1 || die "node not found (apt-get install -y nodejs npm)"
  NODE_MODULES="$ROOT/tests/node/node_modules"
  if [ ! -d "$NODE_MODULES/ws" ]; then
    log "npm ci in tests/node (Node ws for the pmd rows)"
    (cd "$ROOT/tests/node" && npm ci --silent --no-audit --no-fund) || die "npm ci in tests/node failed"
  fi
  PMD_PYTHON=${POLLSERVE_TEST_PYTHON:-}
  if [ -z "$PMD_PYTHON" ]; then
    PMD_PYTHON=$("$ROOT/scripts/setup-python.sh" | tail -n 1) || die "scripts/setup-python.sh failed"
  fi
}

# pmd_start NAME SUBJECT: starts the server of SUBJECT as NAME.
pmd_start() {
  case $2 in
    pollserve) start "$1" "$BIN/pollserve_echo" @PORT@ --deflate default ;;
    pollserve_default|pollserve_server_takeover|pollserve_takeover|pollserve_off)
      local mode=${2#pollserve_}
      start "$1" "$BIN/pollserve_echo" @PORT@ --deflate "${mode//_/-}" ;;
    node_ws) start "$1" env NODE_PATH="$NODE_MODULES" node "$ROOT/bench/peers/node_ws_echo.cjs" @PORT@ ;;
    python_websockets) start "$1" "$PMD_PYTHON" "$ROOT/bench/peers/websockets_echo.py" @PORT@ ;;
    *) die "pmd: unknown subject $2" ;;
  esac
}

# pmd_case CASE CONNS SIZE SUBJECT...: side-by-side rounds of compressed
# echo; raw row: case subject round rate p50 p99 cpu, then wire bytes per
# message, the uncompressed frame's size, the share of compressed echoes,
# client frame bytes per message and what was negotiated.
pmd_case() {
  local case=$1 conns=$2 size=$3; shift 3
  local round s line
  for round in $(seq "$WS_ROUNDS"); do
    for s in $(order "$round" "$@"); do
      local name=pmd_$s
      local cmd=("${GEN_PIN[@]}" "$BIN/loadgen" echo --deflate --addr "127.0.0.1:${PORT_OF[$name]}" --conns "$conns" --size "$size" --secs "$WS_SECS" --warmup "$WARMUP" --pid "${PID_OF[$name]}")
      [ "$round" = 1 ] && echo "$case/$s: ${cmd[*]}" >> "$COMMANDS"
      line=$("${cmd[@]}") || { alive "$name"; die "$case: loadgen against $s failed"; }
      alive "$name"
      log "$case $s r$round: $line"
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$s" "$round" \
        "$(kv msgs_per_s "$line")" "$(kv p50_us "$line")" "$(kv p99_us "$line")" "$(kv cpu_us_per_msg "$line")" \
        "$(kv wire_bytes_per_msg "$line")" "$(kv raw_frame_bytes "$line")" "$(kv compressed_share "$line")" \
        "$(kv client_frame_bytes_per_msg "$line")" "$(kv negotiated "$line")" >> "$RAW"
    done
  done
}

if want pmd; then
  pmd_peers
  PMD_SERVERS=(pollserve pollserve_server_takeover node_ws python_websockets)
  for s in "${PMD_SERVERS[@]}"; do pmd_start "pmd_$s" "$s"; done
  pmd_case pmd_1k 100 1024 "${PMD_SERVERS[@]}"
  for s in "${PMD_SERVERS[@]}"; do stop "pmd_$s"; done

  # Idle: each connection does one echo (compressed, except `off`: the plain
  # 20-byte echo of the idle row), then waits; raw row: case subject round
  # bytes-per-connection connections - - negotiated. `takeover` gets a
  # browser's offer (no client_no_context_takeover), so the server may keep
  # an inflate context too. The peers keep ~50-280 KB per connection, which
  # PMD_PEER_IDLE_CONNS measure as well as 10,000 would, in a fifth of the
  # time (Python opens about 400 connections per second here).
  for round in $(seq "$IDLE_ROUNDS"); do
    for s in $(order "$round" pollserve_off pollserve_default pollserve_server_takeover pollserve_takeover node_ws python_websockets); do
      name=pmd_idle_$s
      pmd_start "$name" "$s"
      sleep 0.3
      lg=(--deflate --size 1024) conns=$PMD_IDLE_CONNS
      case $s in
        pollserve_off) lg=() ;;
        pollserve_takeover) lg+=(--client-context) ;;
        node_ws|python_websockets) conns=$PMD_PEER_IDLE_CONNS ;;
      esac
      cmd=("${GEN_PIN[@]}" "$BIN/loadgen" idle --addr "127.0.0.1:${PORT_OF[$name]}" --conns "$conns" --pid "${PID_OF[$name]}" "${lg[@]}")
      [ "$round" = 1 ] && echo "pmd_idle/$s: ${cmd[*]}" >> "$COMMANDS"
      line=$("${cmd[@]}") || { alive "$name"; die "pmd idle: loadgen against $s failed"; }
      alive "$name"
      log "pmd_idle $s r$round: $line"
      printf 'pmd_idle\t%s\t%s\t%s\t%s\t-\t-\t%s\n' "$s" "$round" "$(kv bytes_per_conn "$line")" "$(kv conns "$line")" "$(kv negotiated "$line")" >> "$RAW"
      stop "$name"
    done
  done
fi

# --------------------------------------------------------------------- HTTP
STATIC="$WORK/static"
mkdir -p "$STATIC" "$WORK/nginx-tmp"
head -c 1024 /dev/urandom | base64 -w 0 | head -c 1024 > "$STATIC/small.txt"
head -c 1048576 /dev/urandom > "$STATIC/big.bin"
printf 'Hello, world!\n' > "$WORK/hello.txt"   # what every hello server answers
chmod -R a+rX "$STATIC"

cat > "$WORK/nginx.conf.in" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 100000000;
  keepalive_timeout 60s;
  types { text/plain txt; application/octet-stream bin; }
  client_body_temp_path $WORK/nginx-tmp/body;
  proxy_temp_path $WORK/nginx-tmp/proxy;
  fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
  scgi_temp_path $WORK/nginx-tmp/scgi;
  server {
    listen 127.0.0.1:@PORT@;
    root $STATIC;
  }
}
EOF

# server_pids NAME: the server's process and its direct children (nginx's
# worker is a child of the master we started).
server_pids() {
  echo "${PID_OF[$1]}" $(pgrep -P "${PID_OF[$1]}" 2>/dev/null)
}

# start_nginx NAME: nginx with the configuration above on a free port.
start_nginx() {
  pick_port
  sed "s/@PORT@/$PORT/" "$WORK/nginx.conf.in" > "$WORK/$1.conf"
  NEXT_PORT=$PORT  # let `start` take the same port
  start "$1" nginx -c "$WORK/$1.conf" -p "$WORK" -e "$WORK/nginx-error.log"
  wait_worker "$1"
}

# wait_worker NAME: nginx forks its worker after it listens; wait for it
# (its RSS and CPU count).
wait_worker() {
  local p
  for p in $(seq 50); do
    [ "$(server_pids "$1" | wc -w)" -gt 1 ] && return 0
    sleep 0.1
  done
}

if want http; then
  start pollserve_http "$BIN/pollserve_http" @PORT@ "$STATIC"
  start pollserve_http_2loops "$BIN/pollserve_http" @PORT@ "$STATIC" 2
  start hyper_st "$BIN/hyper_hello" @PORT@ st
  start hyper_mt "$BIN/hyper_hello" @PORT@ mt
  start tiny_http "$BIN/tiny_hello" @PORT@
  start_nginx nginx

  # Correctness first: every server's answer, byte for byte.
  for s in pollserve_http pollserve_http_2loops hyper_st hyper_mt tiny_http; do
    body=$(curl -sS --max-time 5 "http://127.0.0.1:${PORT_OF[$s]}/") || die "curl $s failed"
    [ "$body" = "Hello, world!" ] || die "$s answered '$body'"
  done
  for s in pollserve_http nginx; do
    for f in small.txt big.bin; do
      curl -sS --max-time 5 -o "$WORK/got" "http://127.0.0.1:${PORT_OF[$s]}/$f" || die "curl $s/$f failed"
      cmp -s "$WORK/got" "$STATIC/$f" || die "$s served a wrong $f"
    done
  done
  log "HTTP answers verified"
fi

# cpu_ns PID...: on-CPU nanoseconds of every thread of those processes
# (/proc/PID/task/*/schedstat; utime+stime would count 10 ms ticks only).
cpu_ns() {
  local p
  for p in "$@"; do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done | awk '{ s += $1 } END { printf "%.0f", s }'
}

http_case() { # http_case CASE PATH EXTRA_HEADER SUBJECT...
  local case=$1 path=$2 header=$3; shift 3
  local round s out rps p50 p99 before after reqs cpu pids
  for round in $(seq "$HTTP_ROUNDS"); do
    for s in $(order "$round" "$@"); do
      local load=("${GEN_PIN[@]}" wrk -t1 -c64) target=()
      [ -n "$header" ] && target+=(-H "$header")
      target+=("http://127.0.0.1:${PORT_OF[$s]}$path")
      local cmd=("${load[@]}" -d"${HTTP_SECS}s" --latency "${target[@]}")
      [ "$round" = 1 ] && echo "$case/$s: ${cmd[*]}" >> "$COMMANDS"
      # Unmeasured warm-up with the same load before a server's first round:
      # the first seconds after a server starts are slower (measured: a cold
      # first run at ~0.6× a warm one).
      if [ "$round" = 1 ]; then
        "${load[@]}" -d"${WRK_WARMUP}s" "${target[@]}" >/dev/null 2>&1 || true
      fi
      pids=$(server_pids "$s")
      before=$(cpu_ns $pids)
      out=$("${cmd[@]}" 2>&1) || { printf '%s\n' "$out" >&2; die "$case: wrk against $s failed"; }
      after=$(cpu_ns $pids)
      alive "$s"
      if grep -q 'Non-2xx' <<<"$out"; then printf '%s\n' "$out" >&2; die "$case: $s sent error responses"; fi
      grep -q 'Socket errors' <<<"$out" && log "$case $s r$round: $(grep 'Socket errors' <<<"$out")"
      rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
      [ -n "$rps" ] || { printf '%s\n' "$out" >&2; die "$case: no Requests/sec from wrk"; }
      p50=$(awk '$1=="50%" {print $2}' <<<"$out")
      p99=$(awk '$1=="99%" {print $2}' <<<"$out")
      reqs=$(awk '/ requests in / {print $1}' <<<"$out")
      cpu=$(awk -v a="$before" -v b="$after" -v n="$reqs" \
        'BEGIN { if (n > 0) printf "%.3f", (b - a) / 1000 / n; else print "-" }')
      log "$case $s r$round: $rps req/s p50 $p50 p99 $p99 server CPU $cpu us/req"
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "${s/#pollserve_http/pollserve}" "$round" "$rps" "$(to_us "$p50")" "$(to_us "$p99")" "$cpu" >> "$RAW"
    done
  done
}

# lg_case CASE PATH EXPECTED_BODY_FILE SUBJECT...: keep-alive GETs from
# loadgen's http mode (64 connections, every body byte checked), which needs
# about half of wrk's CPU per request, so the server saturates first.
lg_case() {
  local case=$1 path=$2 expect=$3; shift 3
  local round s line pid_args p
  for round in $(seq "$HTTP_ROUNDS"); do
    for s in $(order "$round" "$@"); do
      pid_args=()
      for p in $(server_pids "$s"); do pid_args+=(--pid "$p"); done
      local cmd=("${GEN_PIN[@]}" "$BIN/loadgen" http --addr "127.0.0.1:${PORT_OF[$s]}" --path "$path" --expect "$expect" --conns "${LG_CONNS:-64}" --secs "${CASE_SECS:-$HTTP_SECS}" --warmup "$HTTP_WARMUP" "${pid_args[@]}" "${LG_EXTRA[@]}")
      [ "$round" = 1 ] && echo "$case/$s: ${cmd[*]}" | sed "s#$WORK#\$WORK#g" >> "$COMMANDS"
      line=$("${cmd[@]}") || { alive "$s"; die "$case: loadgen against $s failed"; }
      alive "$s"
      record "$case" "$(subject_of "$s")" "$round" "$line"
    done
  done
}

to_us() { # wrk latency (e.g. 512.00us, 1.23ms, 2.00s) -> microseconds
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); print v + 0 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000000 }
    else print "-" }'
}

if want http; then
  # pollserve_http_2loops: two poll loops on one port (SO_REUSEPORT); its row
  # shows 1 loop ÷ 2 loops, i.e. the inverse of the scaling.
  http_case http_hello_ka / "" pollserve_http pollserve_http_2loops hyper_st hyper_mt tiny_http
  http_case http_hello_close / "Connection: close" pollserve_http hyper_st hyper_mt tiny_http
  http_case static_small /small.txt "" pollserve_http nginx
  http_case static_1m /big.bin "" pollserve_http nginx
  lg_case lg_hello_ka / "$WORK/hello.txt" pollserve_http hyper_st tiny_http
  lg_case lg_static_small /small.txt "$STATIC/small.txt" pollserve_http nginx
  lg_case lg_static_1m /big.bin "$STATIC/big.bin" pollserve_http nginx
  for s in pollserve_http pollserve_http_2loops hyper_st hyper_mt tiny_http nginx; do stop "$s"; done
fi

# ---------------------------------------------------------------------- TLS
# HTTPS and WSS, TLS 1.3, side by side: pollserve against nginx (1 worker)
# and against fastwebsockets and tokio-tungstenite behind tokio-rustls, all
# with the same certificates, made here by openssl: ECDSA P-256 (every row)
# and RSA-2048 (the handshake row again). loadgen is the client of every TLS
# row: rustls with the ring provider, TLS 1.3, AES-128-GCM and X25519, the
# server's certificate pinned, session resumption off (every new connection
# is a full handshake); see bench/README.md.

# make_cert KIND: $CERTS/KIND.pem and KIND.key, self-signed for localhost
# and 127.0.0.1 (KIND: ecdsa, rsa).
make_cert() {
  local newkey
  case $1 in
    ecdsa) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
    rsa) newkey=(-newkey rsa:2048) ;;
  esac
  openssl req -x509 "${newkey[@]}" -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$CERTS/$1.key" -out "$CERTS/$1.pem" 2> "$WORK/openssl.log" \
    || { cat "$WORK/openssl.log" >&2; die "openssl could not make the $1 certificate"; }
}
# cert_args KIND: the server arguments for certificate KIND.
cert_args() { echo --tls "$CERTS/$1.pem" "$CERTS/$1.key"; }

# The plain nginx configuration with TLS 1.3 on the listener; nginx's TLS
# defaults otherwise (session tickets on, no session cache). Under TLS
# without kTLS nginx does not use sendfile: it reads and encrypts.
cat > "$WORK/nginx-tls.conf.in" <<EOF
worker_processes 1;
daemon off;
pid $WORK/@NAME@.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 100000000;
  keepalive_timeout 60s;
  types { text/plain txt; application/octet-stream bin; }
  client_body_temp_path $WORK/nginx-tmp/body;
  proxy_temp_path $WORK/nginx-tmp/proxy;
  fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
  scgi_temp_path $WORK/nginx-tmp/scgi;
  server {
    listen 127.0.0.1:@PORT@ ssl;
    ssl_certificate @CERTS@/@KIND@.pem;
    ssl_certificate_key @CERTS@/@KIND@.key;
    ssl_protocols TLSv1.3;
    root $STATIC;
  }
}
EOF

# start_nginx_tls NAME KIND: nginx over TLS with certificate KIND.
start_nginx_tls() {
  pick_port
  sed -e "s/@PORT@/$PORT/" -e "s#@NAME@#$1#" -e "s#@CERTS@#$CERTS#" -e "s#@KIND@#$2#" \
    "$WORK/nginx-tls.conf.in" > "$WORK/$1.conf"
  NEXT_PORT=$PORT  # let `start` take the same port
  start "$1" nginx -c "$WORK/$1.conf" -p "$WORK" -e "$WORK/nginx-error.log"
  wait_worker "$1"
}

if want tls; then
  mkdir -p "$CERTS"
  make_cert ecdsa
  make_cert rsa
  TLS_SERVERS=(pollserve_tls_ecdsa pollserve_tls_rsa nginx_tls_ecdsa nginx_tls_rsa pollserve_wss fws_st_wss tungstenite_st_wss)
  start pollserve_tls_ecdsa "$BIN/pollserve_http" @PORT@ "$STATIC" $(cert_args ecdsa)
  start pollserve_tls_rsa "$BIN/pollserve_http" @PORT@ "$STATIC" $(cert_args rsa)
  start_nginx_tls nginx_tls_ecdsa ecdsa
  start_nginx_tls nginx_tls_rsa rsa
  start pollserve_wss "$BIN/pollserve_echo" @PORT@ $(cert_args ecdsa)
  start fws_st_wss "$BIN/fws_echo" @PORT@ st $(cert_args ecdsa)
  start tungstenite_st_wss "$BIN/tungstenite_echo" @PORT@ st $(cert_args ecdsa)

  # Correctness first: every HTTPS server's files, byte for byte, over TLS
  # 1.3 with the certificate checked by curl (loadgen verifies the echoes
  # of the WSS servers as it runs).
  for s in pollserve_tls_ecdsa pollserve_tls_rsa nginx_tls_ecdsa nginx_tls_rsa; do
    for f in small.txt big.bin; do
      curl -sS --max-time 5 --tlsv1.3 --cacert "$CERTS/${s##*_}.pem" -o "$WORK/got" \
        "https://127.0.0.1:${PORT_OF[$s]}/$f" || die "curl $s/$f failed"
      cmp -s "$WORK/got" "$STATIC/$f" || die "$s served a wrong $f"
    done
  done
  log "HTTPS answers verified"

  CASE_SECS=$TLS_SECS
  LG_EXTRA=(--tls "$CERTS/ecdsa.pem")
  lg_case tls_static_small /small.txt "$STATIC/small.txt" pollserve_tls_ecdsa nginx_tls_ecdsa
  LG_EXTRA=(--tls "$CERTS/ecdsa.pem" --close)
  lg_case tls_close_ecdsa /small.txt "$STATIC/small.txt" pollserve_tls_ecdsa nginx_tls_ecdsa
  LG_EXTRA=(--tls "$CERTS/rsa.pem" --close)
  lg_case tls_close_rsa /small.txt "$STATIC/small.txt" pollserve_tls_rsa nginx_tls_rsa
  LG_EXTRA=(--tls "$CERTS/ecdsa.pem")
  # Smoke: 8 connections, as a debug build (cargo test) encrypts only about
  # 60 MiB/s and 64 MiB in flight would outlast the short run.
  [ "$SMOKE" = 1 ] && LG_CONNS=8
  lg_case tls_static_1m /big.bin "$STATIC/big.bin" pollserve_tls_ecdsa nginx_tls_ecdsa
  LG_CONNS=
  ws_case wss_100x20 100 20 pollserve_wss fws_st_wss tungstenite_st_wss
  LG_EXTRA=()
  CASE_SECS=
  for s in "${TLS_SERVERS[@]}"; do stop "$s"; done

  # Memory per idle connection after the TLS handshake and one echo (wss),
  # beside the same over plain TCP (ws); fresh servers, as in the idle part.
  for round in $(seq "$IDLE_ROUNDS"); do
    for s in $(order "$round" pollserve_plain pollserve tungstenite_st); do
      name=tls_idle_$s
      lg=(--tls "$CERTS/ecdsa.pem")
      case $s in
        pollserve_plain) start "$name" "$BIN/pollserve_echo" @PORT@; lg=() ;;
        pollserve) start "$name" "$BIN/pollserve_echo" @PORT@ $(cert_args ecdsa) ;;
        tungstenite_st) start "$name" "$BIN/tungstenite_echo" @PORT@ st $(cert_args ecdsa) ;;
      esac
      sleep 0.3
      cmd=("${GEN_PIN[@]}" "$BIN/loadgen" idle --addr "127.0.0.1:${PORT_OF[$name]}" --conns "$TLS_IDLE_CONNS" --pid "${PID_OF[$name]}" "${lg[@]}")
      [ "$round" = 1 ] && echo "tls_idle/$s: ${cmd[*]}" >> "$COMMANDS"
      line=$("${cmd[@]}") || { alive "$name"; die "tls idle: loadgen against $s failed"; }
      alive "$name"
      log "tls_idle $s r$round: $line"
      printf 'tls_idle\t%s\t%s\t%s\t%s\t-\t-\n' "$s" "$round" "$(kv bytes_per_conn "$line")" "$(kv conns "$line")" >> "$RAW"
      stop "$name"
    done
  done
fi

# ------------------------------------------------------ hostile connections
# A probe's latency (GET /small.txt, one at a time at HOSTILE_RATE/s, on its
# own keep-alive connection) with no attacker and with HOSTILE_CONNS hostile
# connections (slowloris, slow body, blank-line flood, idle WebSockets or,
# for nginx, idle keep-alive connections): `loadgen hostile`. Every run gets
# a fresh server, stopped after it: a flood can leave a server busy for many
# seconds after the attackers are gone (pollserve at d5b70e4: ~40 s after a
# 15 s flood), which would spill into the next run.
hostile_case() {
  local round s cond name line p
  for round in $(seq "$HOSTILE_ROUNDS"); do
    for s in $(order "$round" pollserve nginx); do
      for cond in $(order "$round" quiet attacked); do
        name=hostile_$s
        local idle=()
        case $s in
          pollserve) start "$name" "$BIN/pollserve_http" @PORT@ "$STATIC"; idle=(--idle ws --ws-path /ws) ;;
          nginx) start_nginx "$name"; idle=(--idle http) ;;
        esac
        local pid_args=() attack=()
        for p in $(server_pids "$name"); do pid_args+=(--pid "$p"); done
        [ "$cond" = attacked ] && attack=(--attackers "$HOSTILE_CONNS" --flooders "$HOSTILE_FLOODERS")
        local cmd=("${GEN_PIN[@]}" "$BIN/loadgen" hostile --addr "127.0.0.1:${PORT_OF[$name]}" --path /small.txt --expect "$STATIC/small.txt" "${attack[@]}" "${idle[@]}" --rate "$HOSTILE_RATE" --timeout-ms "$HOSTILE_TIMEOUT_MS" --secs "$HOSTILE_SECS" --warmup "$HOSTILE_WARMUP" "${pid_args[@]}")
        [ "$round" = 1 ] && echo "hostile_$cond/$s: ${cmd[*]}" | sed "s#$WORK#\$WORK#g" >> "$COMMANDS"
        line=$("${cmd[@]}") || { alive "$name"; die "hostile $cond: loadgen against $s failed"; }
        alive "$name"
        stop "$name"
        log "hostile_$cond $s r$round: $line"
        local n
        for n in p50_us p99_us max_us probes answered failures rss_kib busy timeout_us missed; do
          [[ $(kv "$n" "$line") =~ ^[0-9.]+$ ]] || die "hostile $cond $s: no number for $n in: $line"
        done
        # case subject round rate p50 p99 cpu, then max_us failures probes
        # rss_kib busy closes timeout_us missed
        printf '%s\t%s\t%s\t%s\t%s\t%s\t-\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "hostile_$cond" "$s" "$round" \
          "$(awk -v a="$(kv answered "$line")" -v t="$(kv secs "$line")" 'BEGIN { printf "%.1f", a / t }')" \
          "$(kv p50_us "$line")" "$(kv p99_us "$line")" "$(kv max_us "$line")" "$(kv failures "$line")" \
          "$(kv probes "$line")" "$(kv rss_kib "$line")" "$(kv busy "$line")" "$(kv closes "$line")" \
          "$(kv timeout_us "$line")" "$(kv missed "$line")" >> "$RAW"
      done
    done
  done
}
if want hostile; then hostile_case; fi

# ------------------------------------------------------------------ fan-out
# One publisher, many subscribers (issue 15), side by side: `loadgen fanout`
# opens the subscribers (WebSockets to /sub, or event streams GET /events
# with --sse), then a publisher WebSocket to /pub whose messages the server
# broadcasts; message i leaves once every subscriber has message i - window,
# and every subscriber checks every byte and the order. One loadgen run per
# server and subscriber count measures each size of FAN_SIZES in turn, so
# the subscribers are set up once for both. Rows: deliveries per second
# (messages received summed over subscribers) and server CPU per delivery.
fan_case() { # fan_case ws|sse SUBSCRIBERS SERVER...
  local kind=$1 subs=$2; shift 2
  local round s out line extra=()
  [ "$kind" = sse ] && extra=(--sse)
  for round in $(seq "$FAN_ROUNDS"); do
    for s in $(order "$round" "$@"); do
      local cmd=("${GEN_PIN[@]}" "$BIN/loadgen" fanout "${extra[@]}" --addr "127.0.0.1:${PORT_OF[$s]}" --conns "$subs" --sizes "$FAN_SIZES" --window "$FAN_WINDOW" --secs "$FAN_SECS" --warmup "$FAN_WARMUP" --pid "${PID_OF[$s]}")
      [ "$round" = 1 ] && echo "fanout_${kind}_$subs/${s#fan_}: ${cmd[*]}" >> "$COMMANDS"
      out=$("${cmd[@]}") || { alive "$s"; die "fanout $kind $subs: loadgen against $s failed"; }
      alive "$s"
      while IFS= read -r line; do
        record "fanout_${kind}_$(kv size "$line")_$subs" "${s#fan_}" "$round" "$line"
      done <<< "$out"
    done
  done
}

# The memory row: FAN_MEM_CONNS WebSocket subscribers that stop reading,
# two 4 KiB broadcasts that fill the kernel's buffers of every connection,
# then the measured 4 KiB broadcast, which waits in the server; VmRSS at
# each step, once the server's CPU time stops growing (`loadgen fanout-memory`, fresh server per run). The kernel
# must hold little per connection, or the bytes never reach the server's
# queues (on loopback a socket takes ~4 MiB before the server sees
# EAGAIN, 40 GB for 10,000 clients): the row runs in a network namespace
# of its own whose TCP buffers are 4 KiB (tcp_wmem and tcp_rmem, per
# namespace), leaving the machine's settings alone. Needs root (ip netns);
# skipped without it.
fan_memory() {
  FAN_NS=pollserve-bench-$$
  if ! ip netns add "$FAN_NS" 2>/dev/null; then
    FAN_NS=
    log "fan-out memory row skipped: no network namespace (needs root and ip netns)"
    return 0
  fi
  ip netns exec "$FAN_NS" ip link set lo up || die "fanout memory: no loopback in the namespace"
  ip netns exec "$FAN_NS" sysctl -qw net.ipv4.tcp_wmem="4096 4096 4096" net.ipv4.tcp_rmem="4096 4096 4096" \
    || die "fanout memory: cannot set the namespace's TCP buffers"
  NETNS=(ip netns exec "$FAN_NS")
  local round s name line stats
  for round in $(seq "$FAN_MEM_ROUNDS"); do
    for s in $(order "$round" pollserve fws_st tungstenite_st); do
      name=fanmem_$s
      stats=()
      case $s in
        pollserve) start "$name" "$BIN/pollserve_fanout" @PORT@; stats=(--stats-path /stats) ;;
        fws_st) start "$name" "$BIN/fws_fanout" @PORT@ st ;;
        tungstenite_st) start "$name" "$BIN/tungstenite_fanout" @PORT@ st ;;
      esac
      sleep 0.3
      local cmd=("${NETNS[@]}" "${GEN_PIN[@]}" "$BIN/loadgen" fanout-memory --addr "127.0.0.1:${PORT_OF[$name]}" --conns "$FAN_MEM_CONNS" --size 4096 --fill 2 --pid "${PID_OF[$name]}" "${stats[@]}")
      [ "$round" = 1 ] && echo "fanout_mem/$s: ${cmd[*]}" >> "$COMMANDS"
      line=$("${cmd[@]}") || { alive "$name"; die "fanout memory: loadgen against $s failed"; }
      alive "$name"
      stop "$name"
      log "fanout_mem $s r$round: $line"
      # case subject round queued_per_conn subscribers - -, then
      # idle_per_conn last_per_conn goal_ratio stats_last_per_conn
      printf 'fanout_mem\t%s\t%s\t%s\t%s\t-\t-\t%s\t%s\t%s\t%s\n' "$s" "$round" \
        "$(kv queued_bytes_per_conn "$line")" "$(kv conns "$line")" "$(kv idle_bytes_per_conn "$line")" \
        "$(kv last_bytes_per_conn "$line")" "$(kv goal_ratio "$line")" "$(kv stats_last_per_conn "$line")" >> "$RAW"
    done
  done
  NETNS=()
  ip netns del "$FAN_NS" 2>/dev/null || true
  FAN_NS=
}

if want fanout; then
  # The peers' current-thread runtimes only, as the goals are set against
  # them: each server of a 10,000-subscriber case costs 3-6 s per round
  # (setup included), and the multi-thread forms (`fws_fanout PORT mt`…)
  # would add 40 % to the part's ~5 minutes.
  FAN_WS=(fan_pollserve fan_fws_st fan_tungstenite_st)
  FAN_SSE=(fan_pollserve fan_hyper_st)
  start fan_pollserve "$BIN/pollserve_fanout" @PORT@
  start fan_fws_st "$BIN/fws_fanout" @PORT@ st
  start fan_tungstenite_st "$BIN/tungstenite_fanout" @PORT@ st
  start fan_hyper_st "$BIN/hyper_sse" @PORT@ st
  for n in $FAN_SUBS; do fan_case ws "$n" "${FAN_WS[@]}"; done
  for n in $FAN_SUBS; do fan_case sse "$n" "${FAN_SSE[@]}"; done
  for s in "${FAN_WS[@]}" fan_hyper_st; do stop "$s"; done
  fan_memory
fi

# --------------------------------------------------------- micro-benchmarks
CRIT_DIR="$ROOT/target/criterion"
if [ "$SMOKE" = 1 ]; then
  MICRO_CMD="cargo bench -p pollserve-bench --bench micro -- --test"
else
  MICRO_CMD="cargo bench -p pollserve-bench --bench micro -- --warm-up-time 0.5 --measurement-time 1.5"
fi
if [ -n "${BENCH_SKIP_MICRO:-}" ]; then
  log "BENCH_SKIP_MICRO set: micro-benchmarks not run here"
elif ! want micro; then
  log "BENCH_ONLY=$BENCH_ONLY: micro-benchmarks not run"
else
  echo "micro: $MICRO_CMD" >> "$COMMANDS"
  log "$MICRO_CMD"
  $MICRO_CMD > "$WORK/micro.log" 2>&1 || { cat "$WORK/micro.log" >&2; die "micro-benchmarks failed"; }
fi

# ------------------------------------------------------------------- report
CHART="$OUT_DIR/chart.svg"
{
  echo "# pollserve benchmark results"
  echo
  if [ "$SMOKE" = 1 ]; then echo "**Smoke run** (1 s per benchmark, one round): numbers are not meaningful."; echo; fi
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "- Toolchain: $(rustc --version); wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'); $(nginx -v 2>&1 | sed 's/.*: //')"
  echo "- Commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- Method: WebSocket cases ${WS_ROUNDS} round(s) of ${WS_SECS} s per server (after ${WARMUP} s warm-up), HTTP cases ${HTTP_ROUNDS} round(s) of ${HTTP_SECS} s (wrk: after a ${WRK_WARMUP} s warm-up before the first round; loadgen: after ${HTTP_WARMUP} s warm-up every round), idle memory ${IDLE_ROUNDS} round(s), TLS cases as the HTTP and WebSocket ones$([ -n "$TLS_SECS" ] && echo " but ${TLS_SECS} s per run"), hostile connections ${HOSTILE_ROUNDS} round(s) of ${HOSTILE_SECS} s per server and condition (after ${HOSTILE_WARMUP} s warm-up, fresh server each run), fan-out ${FAN_ROUNDS} round(s) of ${FAN_SECS} s per server and message size (after ${FAN_WARMUP} s warm-up; window ${FAN_WINDOW}; the memory row ${FAN_MEM_ROUNDS} fresh-server round(s) of ${FAN_MEM_CONNS} subscribers); servers in alternating order within each round, all on 127.0.0.1 of a shared, noisy machine; ${PLACEMENT}."
  echo
  echo "![ratio chart](chart.svg)"
  echo
  "$BIN/report" "$RAW" "$CHART" "$CRIT_DIR"
  echo "## Exact commands"
  echo
  echo "Run with \`bench/run.sh$([ "$SMOKE" = 1 ] && echo ' --smoke')\`, which executed:"
  echo
  echo '```'
  echo "$BUILD_CMD"
  cat "$COMMANDS"
  echo '```'
  echo
  echo "nginx configuration written by the script:"
  echo
  echo '```nginx'
  sed "s#$WORK#\$WORK#g" "$WORK/nginx.conf.in"
  echo '```'
  if want tls; then
    echo
    echo "nginx configuration of the TLS rows (@KIND@: ecdsa or rsa; the certificates openssl made for the run, see bench/README.md):"
    echo
    echo '```nginx'
    sed -e "s#$WORK#\$WORK#g" -e "s#@CERTS@#target/bench-certs/RUN#g" "$WORK/nginx-tls.conf.in"
    echo '```'
  fi
  echo
  echo "## Raw measurements"
  echo
  echo "case, server, round, rate (msg/s, req/s, deliveries/s for fanout_*, or bytes per idle connection; hostile: probes answered per second; fanout_mem: bytes per subscriber beyond idle), p50 µs (connections for ws_idle, tls_idle and fanout_mem; fanout_*: a message's time to reach every subscriber), p99 µs, server CPU µs per message (per delivery for fanout_*); hostile rows go on with max µs, failures, probes, server RSS KiB (largest), server busy (share of a core), attack connections closed by the server, probe timeout µs, ticks missed; fanout_mem rows with idle bytes per subscriber, bytes per subscriber of the last broadcast, memory ÷ (idle + one copy), the server's own queued-bytes count per subscriber for the last broadcast:"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
} > "$OUT_DIR/results.md.tmp"
mv "$OUT_DIR/results.md.tmp" "$OUT_DIR/results.md"
log "wrote $OUT_DIR/results.md and $CHART"
