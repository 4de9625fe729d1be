"""A2: frames split across TCP segments at every byte position, fragmented messages
with odd continuation sizes, pings interleaved, UTF-8 straddling fragment and segment
boundaries, every mask byte pattern; with --deflate the same for compressed messages.

python3 a_split.py [--deflate] [--threads N] [--gap-ms X] [--only SET]
Each case's pieces are sent with a pause between them (default 1 ms, TCP_NODELAY) so the
server reads them separately; the echo (and pongs) are compared byte for byte.
Bounded to 110 s.
"""
import os
import queue
import random
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ws23  # noqa: E402

args = sys.argv[1:]
deflate = "--deflate" in args
threads = int(args[args.index("--threads") + 1]) if "--threads" in args else 24
gap = float(args[args.index("--gap-ms") + 1]) / 1000 if "--gap-ms" in args else 0.001
only = args[args.index("--only") + 1] if "--only" in args else None
frag_reps = int(args[args.index("--frag-reps") + 1]) if "--frag-reps" in args else 900
DEADLINE = time.time() + 110
CTX = os.environ.get("DEFLATE_MODE") == "ctx"
rnd = random.Random(2323)
port = int(os.environ.get("PORT", "0")) or ws23.free_port()
own = not os.environ.get("PORT")
proc = ws23.start_target(port, {"DEFLATE": os.environ.get("DEFLATE_MODE", "1") if deflate else "0"}) if own else None

cases = []  # (name, pieces, expected) expected: list of ("msg", op, data) / ("pong", data)
mask_i = [0]


def next_mask():
    i = mask_i[0]
    mask_i[0] += 1
    # Walk every value of every mask byte, plus all-zero and all-ones.
    if i % 50 == 0:
        return b"\x00\x00\x00\x00"
    if i % 50 == 1:
        return b"\xff\xff\xff\xff"
    return bytes([i % 256, (i // 256 + 3 * i) % 256, (i * 7 + 11) % 256, (i * 13 + 200) % 256])


def data_frames(op, data, sizes, compressed=False):
    """Frames of one message: first frame op (RSV1 if compressed), then continuations."""
    if compressed:
        wire = ws23.deflate_msg(data)
    else:
        wire = data
    out = []
    pos = 0
    for k, sz in enumerate(sizes):
        chunk = wire[pos:pos + sz]
        pos += sz
        last = k == len(sizes) - 1
        if last:
            chunk = wire[pos - sz:]
        out.append(ws23.frame(op if k == 0 else 0, chunk, fin=last, rsv1=(compressed and k == 0),
                              mask=next_mask()))
    return out, len(wire)


def split_at(b, positions):
    out = []
    prev = 0
    for p in sorted(set(positions)):
        if 0 < p < len(b):
            out.append(b[prev:p])
            prev = p
    out.append(b[prev:])
    return out


def sizes_for(total, k, r):
    if k == 1 or total == 0:
        return [total] if k == 1 else [0] * (k - 1) + [total]
    cuts = sorted(r.randrange(0, total + 1) for _ in range(k - 1))
    sizes = []
    prev = 0
    for c in cuts:
        sizes.append(c - prev)
        prev = c
    sizes.append(total - prev)
    return sizes


BLOCK = rnd.randbytes(200000)
chars = "aé€😀ßz\u0800\uffff\U0010ffff~\u07ff\u0080"
TEXT = "".join(rnd.choice(chars) for _ in range(100000)).encode()

# Set 1: a single frame split in two at every byte position.
if only in (None, "split2"):
    for n in [0, 1, 2, 3, 4, 5, 7, 31, 32, 33, 63, 64, 65, 125, 126, 127, 128, 129, 130,
              159, 160, 161, 191, 192, 193, 255, 256, 257]:
        for op in (1, 2):
            data = TEXT[n:n * 2].decode("utf-8", "ignore").encode()[:n] if op == 1 else BLOCK[n:2 * n]
            if op == 1:
                data = data.decode("utf-8", "ignore").encode()
            frames, wl = data_frames(op, data, [len(data) if not deflate else 0], compressed=deflate)
            f = frames[0]
            for p in range(1, len(f)):
                cases.append(("split2 n=%d op=%d p=%d" % (len(data), op, p), split_at(f, [p]),
                              [("msg", op, data)]))

# Set 2: one byte at a time.
if only in (None, "bytewise"):
    for n in list(range(0, 70)) + [125, 126, 127, 128, 129, 200, 300]:
        data = BLOCK[3 * n:4 * n]
        frames, _ = data_frames(2, data, [0], compressed=deflate)
        f = frames[0]
        cases.append(("bytewise n=%d" % n, [f[i:i + 1] for i in range(len(f))], [("msg", 2, data)]))

# Set 3: lengths around 125/126/65535/65536 split at 3 random points and at the header edges.
if only in (None, "big"):
    for n in [65530, 65534, 65535, 65536, 65537, 65540, 70000, 131072 + 3]:
        for rep in range(6):
            data = BLOCK[rep:rep + n]
            frames, _ = data_frames(2, data, [0], compressed=deflate)
            f = frames[0]
            pts = [rnd.randrange(1, len(f)) for _ in range(3)]
            if rep == 0:
                pts = [1, 2, 4, 10, 14]  # inside the 8-byte length and the mask
            if rep == 1:
                pts = [len(f) - 1, len(f) - 2, len(f) - 33]
            cases.append(("big n=%d rep=%d" % (n, rep), split_at(f, pts), [("msg", 2, data)]))

# Set 4: fragmented messages, odd continuation sizes, pings between fragments,
# text straddling fragment and segment boundaries.
if only in (None, "frag"):
    for rep in range(frag_reps):
        r = random.Random(rep)
        text = r.random() < 0.6
        n = r.choice([0, 1, 3, 5, 17, 33, 127, 128, 129, 255, 257, 1000, 4097, 16385, 65537])
        if text:
            off = r.randrange(0, 50000)
            data = TEXT[off:off + n].decode("utf-8", "ignore").encode()
        else:
            data = BLOCK[r.randrange(0, 100000):][:n]
        op = 1 if text else 2
        k = r.choice([2, 3, 5, 7, 13])
        if deflate:
            wire_len = len(ws23.deflate_msg(data))
        else:
            wire_len = len(data)
        sizes = sizes_for(wire_len, k, r)
        frames, _ = data_frames(op, data, sizes, compressed=deflate and r.random() < 0.8)
        stream = b""
        expected = []
        cuts = []
        for i, fr in enumerate(frames):
            stream += fr
            cuts.append(len(stream) - r.randrange(0, max(1, len(fr))))
            if i < len(frames) - 1 and r.random() < 0.5:
                pl = r.randbytes(r.randrange(0, 126))
                pf = ws23.frame(9, pl, mask=next_mask())
                cuts.append(len(stream) + r.randrange(0, len(pf)))
                stream += pf
                expected.append(("pong", pl))
        expected.append(("msg", op, data))
        # plus a few random cuts
        cuts += [r.randrange(1, max(2, len(stream))) for _ in range(3)]
        cases.append(("frag rep=%d n=%d k=%d text=%s" % (rep, len(data), k, text), split_at(stream, cuts),
                      expected))

# Set 5: a ping split at every byte position inside a fragmented message.
if only in (None, "ping"):
    for pl_len in (0, 1, 4, 5, 124, 125):
        pl = BLOCK[:pl_len]
        pf = ws23.frame(9, pl, mask=next_mask())
        f1 = ws23.frame(1, "héllo €".encode(), fin=False, mask=next_mask())
        f2 = ws23.frame(0, " wörld 😀".encode(), fin=True, mask=next_mask())
        base = len(f1)
        for p in range(1, len(pf)):
            stream = f1 + pf + f2
            cases.append(("ping pl=%d p=%d" % (pl_len, p), split_at(stream, [base + p]),
                          [("pong", pl), ("msg", 1, "héllo € wörld 😀".encode())]))

print("cases:", len(cases), "threads:", threads, "deflate:", deflate, flush=True)
q = queue.Queue()
for c in cases:
    q.put(c)
results = {"ok": 0, "bad": [], "err": []}
lock = threading.Lock()


def worker():
    try:
        s, left, head = ws23.handshake(port, "/ws", "permessage-deflate" if deflate else None)
    except Exception as e:  # noqa: BLE001
        with lock:
            results["err"].append("handshake %r" % e)
        return
    if deflate and b"permessage-deflate" not in head:
        with lock:
            results["err"].append("not agreed")
        return
    s.settimeout(10)
    rd = ws23.Reader(s, left)
    infl = [zlib.decompressobj(-15)]
    while time.time() < DEADLINE:
        try:
            name, pieces, expected = q.get_nowait()
        except queue.Empty:
            break
        try:
            for i, p in enumerate(pieces):
                s.sendall(p)
                if i < len(pieces) - 1:
                    time.sleep(gap)
            for exp in expected:
                fin, rsv1, opc, payload, b0 = rd.frame()
                while exp[0] == "msg" and opc == 10:
                    fin, rsv1, opc, payload, b0 = rd.frame()
                if exp[0] == "pong":
                    if opc != 10 or payload != exp[1]:
                        raise AssertionError("pong: got op %d %r" % (opc, payload[:40]))
                    continue
                parts = [payload]
                comp = rsv1
                first_op = opc
                while not fin:
                    fin, rsv1, opc, payload, b0 = rd.frame()
                    parts.append(payload)
                data = b"".join(parts)
                if comp:
                    if CTX:
                        data = infl[0].decompress(data + ws23.TAIL)
                    else:
                        data = zlib.decompressobj(-15).decompress(data + ws23.TAIL)
                if first_op == 8:
                    raise AssertionError("close %r" % (ws23.parse_close(data),))
                if first_op != exp[1] or data != exp[2]:
                    firstdiff = next((k for k in range(min(len(data), len(exp[2]))) if data[k] != exp[2][k]), None)
                    raise AssertionError("mismatch op %d len %d/%d first diff %s" % (
                        first_op, len(data), len(exp[2]), firstdiff))
            with lock:
                results["ok"] += 1
        except Exception as e:  # noqa: BLE001
            with lock:
                results["bad"].append((name, repr(e)[:200]))
            try:
                s.close()
            except OSError:
                pass
            try:
                s, left, head = ws23.handshake(port, "/ws", "permessage-deflate" if deflate else None)
                s.settimeout(10)
                rd = ws23.Reader(s, left)
                infl[0] = zlib.decompressobj(-15)
            except Exception as e2:  # noqa: BLE001
                with lock:
                    results["err"].append("rehandshake %r" % e2)
                return
    s.close()


t0 = time.time()
ts = [threading.Thread(target=worker) for _ in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("A2 split deflate=%s: %d cases ok, %d bad, %d errors, %d not run, %.1f s" % (
    deflate, results["ok"], len(results["bad"]), len(results["err"]), q.qsize(), time.time() - t0))
for b in results["bad"][:25]:
    print("  BAD", b)
for e in results["err"][:10]:
    print("  ERR", e)
if proc:
    print("  server alive:", proc.poll() is None, ws23.proc_status(proc.pid))
    proc.kill()
sys.exit(1 if results["bad"] or results["err"] else 0)
