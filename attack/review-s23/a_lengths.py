"""A1: every payload length in a range, each echoed and compared byte for byte.

python3 a_lengths.py [start] [end] [mode] [--deflate]
mode: bin (binary, random bytes), text (UTF-8 with multi-byte characters), both
Pipelined with a window of in-flight bytes; each message gets its own random mask
(the mask byte pattern rotates through all 256 values of each mask byte too).
Bounded to 110 s.
"""
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ws23  # noqa: E402

start = int(sys.argv[1]) if len(sys.argv) > 1 else 0
end = int(sys.argv[2]) if len(sys.argv) > 2 else 70000
mode = sys.argv[3] if len(sys.argv) > 3 else "bin"
deflate = "--deflate" in sys.argv
port = int(os.environ.get("PORT", "0")) or ws23.free_port()
own = not os.environ.get("PORT")
proc = ws23.start_target(port, {"DEFLATE": "1" if deflate else "0", "RECV_EVERY_MS": os.environ.get("RECV_EVERY_MS", "0")}) if own else None
DEADLINE = time.time() + 110

rnd = random.Random(23)
BLOCK = rnd.randbytes(140000)
# Text: a mix of 1-4 byte characters, so lengths in bytes hit every alignment.
chars = "aé€😀ßz\u0800\uffff\U0010ffff~"
TEXT = "".join(rnd.choice(chars) for _ in range(80000)).encode()


def text_of_len(n, off):
    # A valid UTF-8 string of exactly n bytes: a slice of TEXT cut to whole characters, padded with ASCII.
    s = TEXT[off:off + n].decode("utf-8", "ignore").encode()
    return s + b"x" * (n - len(s))


s, left, head = ws23.handshake(port, "/ws", "permessage-deflate; client_max_window_bits" if deflate else None)
if deflate and b"permessage-deflate" not in head:
    print("deflate not agreed", head)
    sys.exit(2)
s.settimeout(20)
reader = ws23.Reader(s, left)
lens = list(range(start, end + 1))
kinds = []
for n in lens:
    if mode == "both":
        kinds.append("text" if n % 2 else "bin")
    else:
        kinds.append(mode)

inflight = [0]
cv = threading.Condition()
WINDOW = int(os.environ.get("WINDOW", 1 << 20))
sent_count = [0]
err = []


def sender():
    try:
        for i, n in enumerate(lens):
            if time.time() > DEADLINE:
                break
            off = (n * 7) % 70000
            if kinds[i] == "text":
                data = text_of_len(n, off % 70000)
                op = 1
            else:
                data = BLOCK[off:off + n]
                op = 2
            mask = bytes([i % 256, (i * 37 + 1) % 256, (i * 101 + 2) % 256, (255 - i % 256)])
            if deflate:
                payload = ws23.deflate_msg(data)
                f = ws23.frame(op, payload, rsv1=True, mask=mask)
            else:
                f = ws23.frame(op, data, mask=mask)
            with cv:
                while inflight[0] > WINDOW and not err:
                    cv.wait(1)
                inflight[0] += len(data)
            s.sendall(f)
            sent_count[0] += 1
    except Exception as e:  # noqa: BLE001
        err.append("sender: %r" % e)


t = threading.Thread(target=sender, daemon=True)
t0 = time.time()
t.start()
bad = []
got = 0
try:
    while got < len(lens):
        if not t.is_alive() and got >= sent_count[0]:
            break
        op, data, ctl, comp = reader.message()
        i = got
        n = lens[i]
        if op == 8:
            bad.append((n, "close", ws23.parse_close(data)))
            break
        off = (n * 7) % 70000
        exp = text_of_len(n, off % 70000) if kinds[i] == "text" else BLOCK[off:off + n]
        if data != exp or op != (1 if kinds[i] == "text" else 2):
            first = next((k for k in range(min(len(data), len(exp))) if data[k] != exp[k]), None)
            bad.append((n, "mismatch", len(data), op, first))
            if len(bad) > 20:
                break
        got += 1
        with cv:
            inflight[0] -= n
            cv.notify()
except Exception as e:  # noqa: BLE001
    err.append("reader: %r after %d" % (e, got))
dt = time.time() - t0
print("A1 lengths %d..%d mode=%s deflate=%s: sent %d, echoed %d, bad %d, %.1f s" % (
    start, end, mode, deflate, sent_count[0], got, len(bad), dt))
for b in bad[:20]:
    print("  BAD", b)
for e in err:
    print("  ERR", e)
if proc:
    print("  server alive:", proc.poll() is None, ws23.proc_status(proc.pid))
    proc.kill()
sys.exit(1 if bad or err else 0)
