"""A4: compressed messages that the server must inflate in several rounds (1 MiB per
connection per round) and pause for the inflate budget mid-chunk (the rest of the chunk is
masked back and read again): are the echoes byte-exact?

python3 a_inflate_pause.py [clients] [msgs_each] [max_inflated_bytes]
Each message: 0.1-6 MiB of compressible pseudo-random text, random mask, one frame or
several fragments, sent in random pieces. A 1013 close (budget) is counted, not an error;
a wrong byte is. Bounded to 100 s.
"""
import os
import random
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ws23  # noqa: E402

clients = int(sys.argv[1]) if len(sys.argv) > 1 else 6
msgs = int(sys.argv[2]) if len(sys.argv) > 2 else 6
budget = sys.argv[3] if len(sys.argv) > 3 else str(8 << 20)
DEADLINE = time.time() + 100
port = ws23.free_port()
proc = ws23.start_target(port, {"DEFLATE": "1", "MAX_INFLATED": budget, "PAUSE_MS": "4000"})
ALPHA = list("abcdefghijklmnopqrstuvwxyz ") + ["é", "€", "😀", "\u0800", "\U0010ffff", "ß"]
words = ["".join(random.Random(i).choice(ALPHA) for _ in range(random.Random(i).randrange(1, 12))).encode()
         for i in range(3000)]
res = {"ok": 0, "bad": [], "closes": [], "err": []}
lock = threading.Lock()


def make(r, n):
    out = []
    size = 0
    while size < n:
        w = words[r.randrange(len(words))]
        out.append(w)
        size += len(w)
    return b"".join(out)[:n].decode("utf-8", "ignore").encode()


def client(ci):
    r = random.Random(1000 + ci)
    try:
        s, left, head = ws23.handshake(port, "/ws", "permessage-deflate")
        s.settimeout(30)
        rd = ws23.Reader(s, left)
        for m in range(msgs):
            if time.time() > DEADLINE:
                break
            n = r.choice([100_000, 1 << 20, (1 << 20) + 1, 3_000_000, 6_000_000])
            data = make(r, n)
            text = r.random() < 0.5
            wire = ws23.deflate_msg(data, level=r.choice([1, 6, 9]))
            k = r.choice([1, 1, 2, 5])
            cuts = sorted(r.randrange(0, len(wire) + 1) for _ in range(k - 1))
            bounds = [0] + cuts + [len(wire)]
            stream = b""
            for i in range(k):
                stream += ws23.frame((1 if text else 2) if i == 0 else 0, wire[bounds[i]:bounds[i + 1]],
                                     fin=(i == k - 1), rsv1=(i == 0), mask=os.urandom(4))
            pos = 0
            while pos < len(stream):
                step = r.choice([1, 7, 1000, 65536, 300000])
                s.sendall(stream[pos:pos + step])
                pos += step
                if r.random() < 0.05:
                    time.sleep(0.001)
            op, got, ctl, comp = rd.message()
            if op == 8:
                with lock:
                    res["closes"].append((ci, m, ws23.parse_close(got)))
                return
            if got != data or op != (1 if text else 2):
                first = next((i for i in range(min(len(got), len(data))) if got[i] != data[i]), None)
                with lock:
                    res["bad"].append((ci, m, n, len(got), first))
                return
            with lock:
                res["ok"] += 1
    except Exception as e:  # noqa: BLE001
        with lock:
            res["err"].append((ci, repr(e)[:120]))


t0 = time.time()
peak = [0]


def sampler():
    while time.time() < DEADLINE and proc.poll() is None:
        peak[0] = max(peak[0], ws23.proc_status(proc.pid).get("VmRSS", 0))
        time.sleep(0.1)


threading.Thread(target=sampler, daemon=True).start()
ts = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("A4 inflate pauses: clients=%d msgs=%d budget=%s: ok %d, bad %d, closes %d, errors %d, %.1f s, RSS peak %d kB" % (
    clients, msgs, budget, res["ok"], len(res["bad"]), len(res["closes"]), len(res["err"]), time.time() - t0, peak[0]))
for b in res["bad"]:
    print("  BAD", b)
for c in res["closes"]:
    print("  CLOSE", c)
for e in res["err"]:
    print("  ERR", e)
print("  server alive:", proc.poll() is None, ws23.proc_status(proc.pid))
proc.kill()
sys.exit(1 if res["bad"] or res["err"] else 0)
