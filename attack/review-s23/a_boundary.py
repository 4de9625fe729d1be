"""A7: frame headers placed at every offset around the server's internal slice
boundaries (the session is fed 16 KiB at a time; a socket with >= 64 KiB unprocessed
input is worked from its own buffer; a read takes up to 64 KiB), non-minimal length
encodings, and big pipelined bursts to a slow program (input piles up past 64 KiB).

python3 a_boundary.py [--deflate] [--slow]
Every echo compared byte for byte. Bounded to ~100 s.
"""
import os
import random
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ws23  # noqa: E402

deflate = "--deflate" in sys.argv
slow = "--slow" in sys.argv
port = ws23.free_port()
proc = ws23.start_target(port, {"DEFLATE": "1" if deflate else "0", "RECV_EVERY_MS": "150" if slow else "0"})
DEADLINE = time.time() + 100
r = random.Random(7)
s, left, head = ws23.handshake(port, "/ws", "permessage-deflate" if deflate else None)
s.settimeout(20)
rd = ws23.Reader(s, left)
bad = []
ok = 0


def msg_frame(data, op=2, k=1, mask=None):
    """data as k fragments (compressed when --deflate); returns wire bytes."""
    wire = ws23.deflate_msg(data) if deflate else data
    cuts = sorted(r.randrange(0, len(wire) + 1) for _ in range(k - 1))
    b = [0] + cuts + [len(wire)]
    out = b""
    for i in range(k):
        out += ws23.frame(op if i == 0 else 0, wire[b[i]:b[i + 1]], fin=i == k - 1, rsv1=deflate and i == 0,
                          mask=mask or os.urandom(4))
    return out


def pad_frame(total):
    """An uncompressed-length-exact binary frame of `total` wire bytes (header included)."""
    for hl in (6, 8, 14):
        n = total - hl
        if (hl == 6 and 0 <= n < 126) or (hl == 8 and 126 <= n < 65536) or (hl == 14 and n >= 65536):
            data = r.randbytes(n)
            return ws23.frame(2, data, mask=os.urandom(4)), data
    return None, None


def expect(datas, label):
    global ok
    for i, d in enumerate(datas):
        op, got, ctl, comp = rd.message()
        if op == 8 or got != d:
            bad.append((label, i, op, len(got), len(d)))
            return False
    ok += 1
    return True


# 1. header of the second frame at every offset around 16 KiB, 64 KiB and 128 KiB (plain pad frame first).
if not deflate:
    for edge in (16384, 32768, 65536, 131072, 262144):
        for o in range(edge - 16, edge + 3):
            if time.time() > DEADLINE:
                break
            f1, d1 = pad_frame(o)
            if f1 is None:
                continue
            d2 = r.randbytes(r.choice([1, 125, 126, 300, 70000]))
            f2 = msg_frame(d2)
            s.sendall(f1 + f2)
            expect([d1, d2], "edge %d o=%d" % (edge, o))

# 2. non-minimal length encodings (126-form for 0..125, 127-form for small): accepted or refused?
nonmin = []
for n in (0, 1, 5, 125):
    data = r.randbytes(n)
    key = os.urandom(4)
    f = bytes([0x82, 0x80 | 126]) + struct.pack(">H", n) + key + ws23.mask_bytes(data, key)
    nonmin.append((f, data, "126-form n=%d" % n))
    f = bytes([0x82, 0x80 | 127]) + struct.pack(">Q", n) + key + ws23.mask_bytes(data, key)
    nonmin.append((f, data, "127-form n=%d" % n))
if not deflate:
    for f, data, label in nonmin:
        # split at every byte
        for p in range(1, len(f)):
            s.sendall(f[:p])
            time.sleep(0.0005)
            s.sendall(f[p:])
            if not expect([data], label + " p=%d" % p):
                break

# 3. big pipelined bursts: 200-2000 messages of random sizes and fragment counts in one sendall.
for burst in range(40):
    if time.time() > DEADLINE:
        break
    datas = []
    blob = b""
    for _ in range(r.choice([200, 500, 2000])):
        d = r.randbytes(r.choice([0, 1, 3, 7, 125, 126, 127, 255, 256, 4095, 16383, 16384, 16385, 65535, 65536]))
        datas.append(d)
        blob += msg_frame(d, k=r.choice([1, 1, 2, 3]))
        if len(blob) > 1500000:
            break
    # interleave pings every so often
    s.sendall(blob)
    expect(datas, "burst %d (%d msgs, %d bytes)" % (burst, len(datas), len(blob)))

print("A7 boundaries deflate=%s slow=%s: %d groups ok, %d bad" % (deflate, slow, ok, len(bad)))
for b in bad[:20]:
    print("  BAD", b)
print("  server alive:", proc.poll() is None, ws23.proc_status(proc.pid))
proc.kill()
sys.exit(1 if bad else 0)
