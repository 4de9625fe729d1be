"""A6: idle memory per connection before and after the first broadcast (the lazily
allocated broadcast queue is kept once made).

python3 a_idle_mem.py [n] [kind] [size]
kind: ws (/ws/sub, joins the ws group) | sse (/events) | wsplain (/ws, no group)
The target broadcasts every 20 s (first at start, before anyone joins): subscribers are
opened, RSS measured idle; at t=20 s one broadcast of SIZE bytes goes to all of them
(every socket reads it), RSS measured again once they are idle; then a second broadcast
at t=40 s. Reports RSS per connection at each step and Server::stats.
"""
import json
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ws23  # noqa: E402
from a_fanout import sse_req, ws_req  # noqa: E402

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
kind = sys.argv[2] if len(sys.argv) > 2 else "ws"
size = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
port = ws23.free_port()
stats = "/tmp/s23_idle_stats_%d.jsonl" % port
proc = ws23.start_target(port, {"BCAST_MS": 20000, "BCAST_SIZE": size, "STATS_FILE": stats})
t0 = time.time()
time.sleep(0.5)
base = ws23.proc_status(proc.pid)["VmRSS"]
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(sse_req() if kind == "sse" else ws_req("/ws/sub" if kind == "ws" else "/ws"))
    socks.append(s)
    if i % 500 == 499:
        time.sleep(0.05)
# read the 101 / 200 heads
for s in socks:
    s.settimeout(5)
    s.recv(4096)
    s.setblocking(False)


def last_stats():
    try:
        return json.loads(open(stats).read().strip().splitlines()[-1])
    except (OSError, IndexError, ValueError):
        return {}


def drain(secs):
    end = time.time() + secs
    got = 0
    while time.time() < end:
        for s in socks:
            try:
                d = s.recv(65536)
                got += len(d)
            except BlockingIOError:
                pass
        time.sleep(0.2)
    return got


time.sleep(max(0, 17 - (time.time() - t0)))
idle = ws23.proc_status(proc.pid)["VmRSS"]
st_idle = last_stats()
print("n=%d kind=%s: RSS base %d kB, idle %d kB -> %.0f B/conn; stats %s" % (
    n, kind, base, idle, (idle - base) * 1024 / n, {k: st_idle.get(k) for k in ("conns", "in_buf", "out_buf")}))
got = drain(max(0, 30 - (time.time() - t0)))
after1 = ws23.proc_status(proc.pid)["VmRSS"]
st1 = last_stats()
print("  after broadcast 1 (%d B, %d bytes read by clients): RSS %d kB -> %.0f B/conn (+%.0f B/conn); stats %s" % (
    size, got, after1, (after1 - base) * 1024 / n, (after1 - idle) * 1024 / n,
    {k: st1.get(k) for k in ("conns", "in_buf", "out_buf", "out_q")}))
got = drain(max(0, 50 - (time.time() - t0)))
after2 = ws23.proc_status(proc.pid)["VmRSS"]
st2 = last_stats()
print("  after broadcast 2 (%d bytes read): RSS %d kB -> %.0f B/conn (+%.0f B/conn vs idle); stats %s" % (
    got, after2, (after2 - base) * 1024 / n, (after2 - idle) * 1024 / n,
    {k: st2.get(k) for k in ("conns", "in_buf", "out_buf", "out_q")}))
proc.kill()
