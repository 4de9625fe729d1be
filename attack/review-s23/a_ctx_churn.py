"""A10: churn of short-lived compressed WebSockets: does a closed socket's slot keep its
compression codecs (context takeover: each socket's own compressor and inflater)?

python3 a_ctx_churn.py MODE [secs] [threads] [wait_echo] [no_receive]
MODE: ctx (DEFLATE=ctx: both sides keep context) | noctx (DEFLATE=1) | plain (no extension)
Each cycle: connect, handshake offering permessage-deflate, send one 200-byte compressed
text, (read the echo), close with FIN. The server's RSS and Server::stats (slots, closed
WebSockets) are sampled; after the churn stops, RSS is followed for 12 s (closed slots
expire after linger_timeout 2 s, or closed_message_timeout 10 s with an untaken message).
"""
import json
import os
import socket
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ws23  # noqa: E402

mode = sys.argv[1] if len(sys.argv) > 1 else "ctx"
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 15
nthreads = int(sys.argv[3]) if len(sys.argv) > 3 else 4
wait_echo = (sys.argv[4] if len(sys.argv) > 4 else "1") == "1"
no_receive = (sys.argv[5] if len(sys.argv) > 5 else "0") == "1"
port = ws23.free_port()
stats = "/tmp/s23_ctx_stats_%d.jsonl" % port
env = {"DEFLATE": {"ctx": "ctx", "noctx": "1", "plain": "0"}[mode], "STATS_FILE": stats,
       "NO_RECEIVE": "1" if no_receive else "0", "MAX_CONN": os.environ.get("MAX_CONN", "16384")}
proc = ws23.start_target(port, env)
END = time.time() + secs
count = [0, 0]
lock = threading.Lock()
msg = ws23.deflate_msg(json.dumps({"user": "x", "text": "hello " * 30}).encode()[:200])


def churn():
    while time.time() < END:
        try:
            s, left, head = ws23.handshake(port, "/ws", "permessage-deflate; client_max_window_bits")
            s.sendall(ws23.frame(1, msg, rsv1=True))
            if wait_echo and not no_receive:
                s.settimeout(3)
                ws23.Reader(s, left).message()
            s.close()
            with lock:
                count[0] += 1
        except Exception:  # noqa: BLE001
            with lock:
                count[1] += 1
            time.sleep(0.01)


def last_stats():
    try:
        return json.loads(open(stats).read().strip().splitlines()[-1])
    except (OSError, IndexError, ValueError):
        return {}


base = ws23.proc_status(proc.pid)["VmRSS"]
ts = [threading.Thread(target=churn) for _ in range(nthreads)]
t0 = time.time()
for t in ts:
    t.start()
peak = 0
rows = []
while time.time() < END + 12:
    st = ws23.proc_status(proc.pid)
    peak = max(peak, st.get("VmRSS", 0))
    s = last_stats()
    rows.append((round(time.time() - t0, 1), st.get("VmRSS", 0) // 1024, s.get("conns"), s.get("closed_ws")))
    time.sleep(1)
for t in ts:
    t.join()
print("A10 churn mode=%s wait_echo=%s no_receive=%s: %d cycles (%.0f/s), %d errors; RSS base %d MB, peak %d MB" % (
    mode, wait_echo, no_receive, count[0], count[0] / secs, count[1], base // 1024, peak // 1024))
print("  t(s)  RSS(MB)  slots  closed_ws")
for r in rows:
    print("  %5s  %6s  %5s  %5s" % r)
st = last_stats()
print("  last stats:", {k: st.get(k) for k in ("conns", "closed_ws", "in_buf", "out_buf", "rss_kb", "hwm_kb")})
proc.kill()
