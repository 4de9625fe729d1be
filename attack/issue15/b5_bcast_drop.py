#!/usr/bin/env python3
"""B5 reproduction: WebSockets that a broadcast drops at their send bound
(between polls, from the program's loop) are counted in neither
`Activity::closed` nor listed by `Server::ws_ready`.

`python3 b5_bcast_drop.py [N]`: N WebSockets (rcvbuf 4 KiB) flood pings and
never read, so their pongs fill the 64 KiB send bound; the target
broadcasts 64 B every 100 ms (BCAST_MS) and lists every `ws_ready` id in its
own list (RECEIVE_COUNT=1; ids listed without a message count in
`recv_empty`). Prints, once a second: open connections, the sum of
`Activity::closed`, and how many closed ids `ws_ready` listed."""
import json
import os
import subprocess
import sys
import time

import a15
import lib15
import ws15

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
STATS = "/tmp/b5_bcast_drop.stats.jsonl"
env = dict(os.environ, BCAST_MS="100", BCAST_SIZE="64", RECEIVE_COUNT="1", WS_SEND_BUF="65536",
           STATS_MS="500", STATS_FULL="1", WS_KEEPALIVE_S="0", SNDBUF="16384", STATS_FILE=STATS)
if os.path.exists(STATS):
    os.remove(STATS)
lib15.raise_fd_limit()
p = subprocess.Popen([lib15.BIN], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
try:
    port = json.loads(p.stdout.readline())["port"]
    socks, fails = a15.open_many(port, N, rcvbuf=4096)
    print("opened", len(socks), "fails", fails)
    ping = ws15.fast_masked_frame(9, b"p" * 125) * 64
    for s in socks:
        s.setblocking(False)
    off = [0] * len(socks)
    reset = set()
    t0 = time.monotonic()
    last = 0.0
    while time.monotonic() < t0 + 6:
        for i, s in enumerate(socks):
            if i in reset:
                continue
            try:
                k = s.send(ping[off[i]:])
                off[i] = (off[i] + k) % len(ping)
            except BlockingIOError:
                pass
            except OSError:
                reset.add(i)
        if time.monotonic() - last > 1:
            last = time.monotonic()
            r = json.loads(open(STATS).read().strip().splitlines()[-1])
            print(f"{last - t0:4.1f}s stats.connections {r['conns']:5} (closed kept {r['closed_ws']:4})  client sockets reset {len(reset):5}  "
                  f"Activity::closed total {r['closed']:5}  closed ids listed by ws_ready {r['recv_empty']:5}")
        time.sleep(0.001)
finally:
    p.kill()
