#!/usr/bin/env bash
# Where the CPU of an event-stream fan-out goes: pollserve_fanout and the
# hyper peer (hyper_sse, current-thread) side by side, `loadgen fanout --sse`
# against each in turn (window 8 as bench/run.sh, or WINDOW), for 1,000 and 10,000
# streams and 64 B and 4 KiB events. Per delivery it prints each server's
# CPU (schedstat), the share of it spent in the kernel (/proc/PID/stat
# utime/stime ticks over the window), hence kernel and user µs, and
#   ceiling = hyper's CPU per delivery ÷ pollserve's kernel CPU per delivery:
# the throughput ratio pollserve would reach if its own (user-space) work
# cost nothing. Medians over ROUNDS rounds (default 3). Needs a quiet
# machine with two CPUs; 127.0.0.1 only; about 3 minutes.
#
# With `perf` on the PATH and syscall tracepoints readable (root), it also
# counts each server's write calls (write, writev, sendto, sendmsg) over the
# whole run and prints them per delivery (`writes`: calls ÷ (messages
# published × streams); the response heads add 1 ÷ messages published):
# with a window of W messages in flight a server cannot write less than
# once per W deliveries (0.125 at W = 8), and a server that wrote more
# often would pay the kernel's fixed cost per call more often.
#
#   bash bench/sse_kernel_floor.sh            # builds the bench binaries first
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-1.5}
WINDOW=${WINDOW:-8}
cargo build --release -p pollserve-bench --quiet
BIN=target/release
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap 'cleanup; rm -f /tmp/sse_floor_perf.$$' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P1=$(free_port); P2=$(free_port)
taskset -c 1 "$BIN/pollserve_fanout" "$P1" >/dev/null 2>&1 & pids+=($!); PS=$!
taskset -c 1 "$BIN/hyper_sse" "$P2" st >/dev/null 2>&1 & pids+=($!); HY=$!
sleep 1
kv() { grep -o "$1=[0-9.]*" <<<"$2" | cut -d= -f2; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
PERF_EVENTS=syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg
if ! command -v perf >/dev/null || ! perf stat -e "$PERF_EVENTS" -- true >/dev/null 2>&1; then PERF_EVENTS=; fi
printf '%-8s %-6s %-10s %12s %9s %9s %9s %9s %7s\n' subs size server deliveries/s cpu_us kern_us user_us kernel% writes
for subs in 1000 10000; do
  for size in 64 4096; do
    declare -A rate=() cpu=() kern=() writes=()
    for r in $(seq "$ROUNDS"); do
      for s in pollserve hyper; do
        if [ $s = pollserve ]; then port=$P1 pid=$PS; else port=$P2 pid=$HY; fi
        counter=
        if [ -n "$PERF_EVENTS" ]; then
          perf stat -x, -e "$PERF_EVENTS" -p "$pid" -o /tmp/sse_floor_perf.$$ & counter=$!
        fi
        out=$(taskset -c 0 "$BIN/loadgen" fanout --sse --addr "127.0.0.1:$port" --conns "$subs" \
          --sizes "$size" --window "$WINDOW" --secs "$SECS" --warmup 0.3 --pid "$pid")
        rate[$s]+="$(kv msgs_per_s "$out") "
        if [ -n "$counter" ]; then
          kill -INT "$counter"
          wait "$counter" || true
          calls=$(awk -F, '$1 ~ /^[0-9]+$/ {n += $1} END {print n + 0}' /tmp/sse_floor_perf.$$)
          writes[$s]+="$(echo "$calls / ($(kv published "$out") * $subs)" | bc -l) "
        fi
        cpu[$s]+="$(kv cpu_us_per_msg "$out") "
        kern[$s]+="$(kv server_kernel_share "$out") "
      done
    done
    for s in pollserve hyper; do
      R=$(tr ' ' '\n' <<<"${rate[$s]}" | grep . | median)
      C=$(tr ' ' '\n' <<<"${cpu[$s]}" | grep . | median)
      K=$(tr ' ' '\n' <<<"${kern[$s]}" | grep . | median)
      W=-
      [ -n "$PERF_EVENTS" ] && W=$(printf '%.3f' "$(tr ' ' '\n' <<<"${writes[$s]}" | grep . | median)")
      printf '%-8s %-6s %-10s %12.0f %9.3f %9.3f %9.3f %8.1f%% %7s\n' "$subs" "$size" "$s" "$R" "$C" \
        "$(echo "$C*$K" | bc -l)" "$(echo "$C*(1-$K)" | bc -l)" "$(echo "100*$K" | bc -l)" "$W"
      eval "C_$s=$C K_$s=$K R_$s=$R"
    done
    printf '%-8s %-6s ratio %.2f (throughput, pollserve ÷ hyper); ceiling %.2f (hyper CPU ÷ pollserve kernel CPU per delivery)\n' \
      "$subs" "$size" "$(echo "$R_pollserve/$R_hyper" | bc -l)" "$(echo "$C_hyper/($C_pollserve*$K_pollserve)" | bc -l)"
    unset rate cpu kern writes
  done
done
