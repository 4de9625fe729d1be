"""Raw-socket WebSocket client pieces for the review-s23 attacks (stdlib only).

Everything talks to 127.0.0.1 only.
"""
import base64
import hashlib
import os
import random
import socket
import struct
import subprocess
import time
import zlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
TARGET23 = os.path.join(TARGET_DIR, "release", "target23")
TAIL = b"\x00\x00\xff\xff"


def mask_bytes(payload, mask):
    """XOR payload with the 4-byte mask (fast path through big ints)."""
    n = len(payload)
    if n == 0:
        return b""
    reps = (mask * (n // 4 + 1))[:n]
    x = int.from_bytes(payload, "little") ^ int.from_bytes(reps, "little")
    return x.to_bytes(n, "little")


def frame(opcode, payload, fin=True, rsv1=False, mask=None, rsv=0):
    """A client frame (always masked unless mask is False)."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | rsv | opcode
    n = len(payload)
    if mask is False:
        b1 = 0
        key = None
    else:
        key = mask if mask is not None else os.urandom(4)
        b1 = 0x80
    if n < 126:
        head = bytes([b0, b1 | n])
    elif n < 65536:
        head = bytes([b0, b1 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, b1 | 127]) + struct.pack(">Q", n)
    if key is None:
        return head + payload
    return head + key + mask_bytes(payload, key)


def handshake(port, path="/ws", deflate=None, timeout=10, extra=b"", sock=None):
    """Opens a WebSocket; returns (socket, leftover bytes, response head)."""
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16))
    req = (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n")
    if deflate:
        req += b"Sec-WebSocket-Extensions: " + deflate.encode() + b"\r\n"
    req += extra + b"\r\n"
    s.sendall(req)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise ConnectionError("closed during handshake: %r" % buf)
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError("handshake refused: %r" % head[:200])
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    if accept not in head:
        raise ConnectionError("bad accept")
    return s, rest, head


class Reader:
    """Incremental parser of server frames on a socket."""

    def __init__(self, sock, leftover=b""):
        self.s = sock
        self.buf = bytearray(leftover)

    def _fill(self, need):
        while len(self.buf) < need:
            d = self.s.recv(1 << 20)
            if not d:
                raise EOFError("peer closed with %d buffered" % len(self.buf))
            self.buf += d

    def frame(self):
        """Returns (fin, rsv1, opcode, payload)."""
        self._fill(2)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._fill(4)
            n = struct.unpack(">H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._fill(10)
            n = struct.unpack(">Q", self.buf[2:10])[0]
            pos = 10
        if b1 & 0x80:
            raise ValueError("server frame masked")
        self._fill(pos + n)
        payload = bytes(self.buf[pos:pos + n])
        del self.buf[:pos + n]
        return bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F, payload, b0

    def message(self, inflater=None, keep_ctx=False):
        """Next data message as (opcode, payload, control frames seen, compressed)."""
        controls = []
        parts = []
        op = None
        comp = False
        while True:
            fin, rsv1, opc, payload, b0 = self.frame()
            if opc >= 8:
                controls.append((opc, payload))
                if opc == 8:
                    return 8, payload, controls, False
                continue
            if op is None:
                op = opc
                comp = rsv1
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                if comp:
                    d = inflater if (inflater is not None and keep_ctx) else zlib.decompressobj(-15)
                    data = d.decompress(data + TAIL)
                return op, data, controls, comp


def parse_close(payload):
    if len(payload) == 0:
        return None, b""
    if len(payload) == 1:
        return -1, payload
    return struct.unpack(">H", payload[:2])[0], payload[2:]


def deflate_msg(data, level=6, wbits=15, comp=None):
    c = comp or zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    if out.endswith(TAIL):
        out = out[:-4]
    return out


def start_target(port, env=None, log=None):
    e = dict(os.environ)
    e["PORT"] = str(port)
    if env:
        e.update({k: str(v) for k, v in env.items()})
    out = open(log, "wb") if log else subprocess.DEVNULL
    p = subprocess.Popen(["nice", "-n", "10", TARGET23], env=e, stdout=out, stderr=out)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError("target did not start")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def pct(vals, q):
    if not vals:
        return float("nan")
    v = sorted(vals)
    return v[min(len(v) - 1, int(q * len(v)))]


def payload_for(n, seed):
    r = random.Random(seed)
    return r.randbytes(n)
