#!/usr/bin/env bash
# Side-by-side WebSocket echo throughput of several echo-server binaries
# (for example pollserve_echo built at two commits, and fws_echo), on this
# machine, in alternating rounds: what a change did, apart from the machine.
#
#   bash bench/compare_builds.sh CONNS SIZE ROUNDS BIN [BIN ...]
#   e.g. bash bench/compare_builds.sh 200 16384 8 /tmp/echo_old target/release/pollserve_echo target/release/fws_echo
#
# Each BIN is started as `BIN PORT` pinned to CPU 1; `loadgen echo` (from
# target/release, `cargo build --release -p pollserve-bench`) runs pinned to
# CPU 0 for 0.5 s per server per round. Prints each binary's msg/s and server
# CPU µs per message, round by round. 127.0.0.1 only.
set -u
[ $# -ge 4 ] || { sed -n 2,12p "$0"; exit 2; }
CONNS=$1 SIZE=$2 ROUNDS=$3; shift 3
LG="$(cd "$(dirname "$0")/.." && pwd)/target/release/loadgen"
pids=() ports=() names=()
port=$(( 19400 + RANDOM % 500 ))
for b in "$@"; do
  taskset -c 1 "$b" "$port" >/dev/null 2>&1 & pids+=($!); ports+=("$port"); names+=("$(basename "$b")")
  port=$((port + 1))
done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
sleep 1
for r in $(seq "$ROUNDS"); do
  for i in "${!pids[@]}"; do
    out=$(taskset -c 0 "$LG" echo --addr "127.0.0.1:${ports[$i]}" --conns "$CONNS" --size "$SIZE" \
      --secs 0.5 --warmup 0.15 --pid "${pids[$i]}" 2>&1 | tail -1)
    echo "${names[$i]} $(grep -o 'msgs_per_s=[0-9.]*' <<<"$out") $(grep -o 'cpu_us_per_msg=[0-9.]*' <<<"$out")"
  done
done | awk '{split($2,a,"="); split($3,b,"="); r[$1]=r[$1]" "a[2]; c[$1]=c[$1]" "b[2]}
  END {for (k in r) print k, "msg/s:", r[k], " cpu us/msg:", c[k]}'
