"""Raw-socket WebSocket / SSE client pieces for the issue-15 attacks (standard
library only): handshakes, a frame parser that follows partial reads, masked
client frames, permessage-deflate inflation, and the check of the target's
broadcast messages (header `S<seq:10>T<unix ns:19>|` + a rotated filler)."""
import base64
import os
import socket
import ssl
import struct
import time
import zlib

ALPHA = b"abcdefghijklmnopqrstuvwxyz"
PATTERN = ALPHA * (70000 // 26 + 4)
HEAD = 32  # b"S" + 10 digits + b"T" + 19 digits + b"|"


def expected_filler(seq, n):
    rot = seq % 26
    return PATTERN[rot:rot + n]


def check_message(data):
    """(tag, seq, sent_ns, ok) for a broadcast message; ok means every byte
    matches what the target made. Messages of another shape give ok False."""
    if len(data) < HEAD or data[11:12] != b"T" or data[31:32] != b"|":
        return None, None, None, False
    tag = data[0:1]
    try:
        seq = int(data[1:11])
        ns = int(data[12:31])
    except ValueError:
        return tag, None, None, False
    body = data[HEAD:]
    ok = body == expected_filler(seq, len(body))
    return tag, seq, ns, ok


def client_frame(opcode, payload=b"", fin=True, rsv1=False):
    """A masked client frame."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack(">Q", n)
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload)) if payload else b""
    return head + mask + masked


def fast_masked_frame(opcode, payload):
    """Masked frame with a zero mask (allowed: any 32-bit key; XOR with 0 is
    identity), cheap to build for floods."""
    n = len(payload)
    b0 = 0x80 | opcode
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack(">Q", n)
    return head + b"\0\0\0\0" + payload


def upgrade_request(path, host="127.0.0.1", extensions=None):
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def sse_request(path, host="127.0.0.1"):
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()


def read_head(sock, timeout=10.0):
    """Reads a response head; returns (status, headers dict, leftover bytes)."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(4096)
        if not d:
            raise ConnectionError("eof in head")
        buf += d
        if len(buf) > 65536:
            raise ConnectionError("head too long")
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


def read_head_exact(sock, timeout=10.0):
    """Reads a response head one byte at a time (nothing past it is taken
    from the socket): for clients that must not read further."""
    sock.settimeout(timeout)
    buf = bytearray()
    while not buf.endswith(b"\r\n\r\n"):
        d = sock.recv(1)
        if not d:
            raise ConnectionError("eof in head")
        buf += d
        if len(buf) > 65536:
            raise ConnectionError("head too long")
    lines = bytes(buf[:-4]).decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, b""


def connect(port, rcvbuf=None, timeout=10.0, tls=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname="localhost")
    return s


def open_ws(port, path="/ws", rcvbuf=None, extensions=None, tls=False, exact=False, timeout=10.0):
    """A WebSocket after its 101; returns (sock, headers, leftover)."""
    s = connect(port, rcvbuf=rcvbuf, timeout=timeout, tls=tls)
    s.sendall(upgrade_request(path, extensions=extensions))
    status, headers, rest = (read_head_exact if exact else read_head)(s, timeout)
    if status != 101:
        s.close()
        raise ConnectionError(f"status {status}")
    return s, headers, rest


class Inflater:
    """permessage-deflate inflation for one connection (RFC 7692 7.2.2)."""

    def __init__(self, takeover):
        self.takeover = takeover
        self.d = zlib.decompressobj(-15)

    def message(self, data):
        if not self.takeover:
            self.d = zlib.decompressobj(-15)
        return self.d.decompress(data + b"\x00\x00\xff\xff")


class FrameParser:
    """Incremental parser of server frames: feed bytes, get messages.
    Returns (opcode, payload) of complete messages (fragments joined, the
    compressed ones inflated when an Inflater is set); control frames come
    out as they arrive."""

    def __init__(self, inflater=None):
        self.buf = bytearray()
        self.parts = []
        self.msg_opcode = None
        self.msg_rsv1 = False
        self.inflater = inflater
        self.errors = []

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            b = self.buf
            if len(b) < 2:
                break
            b0, b1 = b[0], b[1]
            if b1 & 0x80:
                self.errors.append("masked server frame")
            n = b1 & 0x7F
            at = 2
            if n == 126:
                if len(b) < 4:
                    break
                n = struct.unpack(">H", b[2:4])[0]
                at = 4
            elif n == 127:
                if len(b) < 10:
                    break
                n = struct.unpack(">Q", b[2:10])[0]
                at = 10
            if len(b) < at + n:
                break
            payload = bytes(b[at:at + n])
            del b[:at + n]
            fin = bool(b0 & 0x80)
            rsv1 = bool(b0 & 0x40)
            if b0 & 0x30:
                self.errors.append("rsv2/3 set")
            op = b0 & 0x0F
            if op >= 8:
                out.append((op, payload))
                continue
            if op != 0:
                if self.msg_opcode is not None:
                    self.errors.append("new message inside a fragmented one")
                self.msg_opcode = op
                self.msg_rsv1 = rsv1
                self.parts = [payload]
            else:
                if self.msg_opcode is None:
                    self.errors.append("continuation without a message")
                    continue
                self.parts.append(payload)
            if fin:
                data = b"".join(self.parts)
                if self.msg_rsv1:
                    if self.inflater is None:
                        self.errors.append("compressed frame without deflate")
                    else:
                        data = self.inflater.message(data)
                out.append((self.msg_opcode, data))
                self.msg_opcode = None
                self.parts = []
        return out


def pong_for(payload):
    return client_frame(0xA, payload)


def now_ns():
    return time.time_ns()
