#!/bin/sh
# A10 against the shipped command: `pollserve demo --deflate-context-takeover`, /ws/echo.
# Usage: sh a_ctx_churn_demo.sh [secs] [demo flags, default --deflate-context-takeover; "default" for the default mode]
SECS=${1:-10}
FLAGS=${2:---deflate-context-takeover}
[ "$FLAGS" = default ] && FLAGS=""
PORT=$(python3 -c "import ws23;print(ws23.free_port())")
nice -n 10 ../../target/release/pollserve demo --port $PORT --quiet $FLAGS >/dev/null 2>&1 &
SP=$!
sleep 0.7
rss() { awk '/VmRSS/ {printf "%.0f MB", $2/1024}' /proc/$SP/status; }
echo "demo pid $SP, RSS at start $(rss)"

nice -n 10 python3 churn_only.py $PORT $SECS /ws/echo &
CP=$!
i=0
while kill -0 $CP 2>/dev/null; do sleep 1; i=$((i+1)); echo "  t=${i}s RSS $(rss)"; done
sleep 12
echo "12 s after the churn (all slots expired): RSS $(rss)"
kill $SP
