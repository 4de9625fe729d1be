"""TLS attack helpers: a real TLS 1.3/1.2 handshake done by Python's ssl
(OpenSSL) over memory BIOs on a raw socket, then the traffic keys taken from
the key log so that arbitrary records (1-byte records, padding, KeyUpdate,
alerts, partial records) can be crafted by hand with `cryptography`.
Only for 127.0.0.1 testing."""
import hashlib
import hmac
import os
import socket
import ssl
import struct
import tempfile
import threading
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

KEYLOG = os.path.join(tempfile.gettempdir(), f"tlsattack-keylog-{os.getpid()}.txt")
_keylog_lock = threading.Lock()


def hkdf_expand(h, secret, info, length):
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), h).digest()
        out += t
        i += 1
    return out[:length]


def expand_label(h, secret, label, context, length):
    full = b"tls13 " + label
    info = struct.pack(">H", length) + bytes([len(full)]) + full + bytes([len(context)]) + context
    return hkdf_expand(h, secret, info, length)


SUITES = {
    # name: (hash, key length, aead class)
    "TLS_AES_256_GCM_SHA384": (hashlib.sha384, 32, AESGCM),
    "TLS_AES_128_GCM_SHA256": (hashlib.sha256, 16, AESGCM),
    "TLS_CHACHA20_POLY1305_SHA256": (hashlib.sha256, 32, ChaCha20Poly1305),
}


class Dir:
    """One direction's TLS 1.3 traffic keys."""

    def __init__(self, suite, secret):
        self.h, self.klen, self.aead_cls = SUITES[suite]
        self.set(secret)

    def set(self, secret):
        self.secret = secret
        self.key = expand_label(self.h, secret, b"key", b"", self.klen)
        self.iv = expand_label(self.h, secret, b"iv", b"", 12)
        self.aead = self.aead_cls(self.key)
        self.seq = 0

    def update(self):
        self.set(expand_label(self.h, self.secret, b"traffic upd", b"", self.h().digest_size))

    def nonce(self):
        n = bytes(4) + struct.pack(">Q", self.seq)
        self.seq += 1
        return bytes(a ^ b for a, b in zip(self.iv, n))

    def seal(self, ctype, data, pad=0):
        inner = data + bytes([ctype]) + bytes(pad)
        ln = len(inner) + 16
        hdr = b"\x17\x03\x03" + struct.pack(">H", ln)
        return hdr + self.aead.encrypt(self.nonce(), inner, hdr)

    def open(self, record):
        hdr, body = record[:5], record[5:]
        pt = self.aead.decrypt(self.nonce(), body, hdr)
        pt = pt.rstrip(b"\0")
        return pt[-1], pt[:-1]


def client_context(tls13=True, alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls13:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        ctx.set_alpn_protocols(alpn)
    ctx.keylog_filename = KEYLOG
    return ctx


def client_hello(tls13=True, alpn=None, sni="localhost"):
    """The bytes of one ClientHello record (for replaying)."""
    ctx = client_context(tls13, alpn)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_side=False, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def recv_exact(sock, n):
    b = b""
    while len(b) < n:
        d = sock.recv(n - len(b))
        if not d:
            raise ConnectionError("eof")
        b += d
    return b


def read_record(sock):
    hdr = recv_exact(sock, 5)
    return hdr + recv_exact(sock, struct.unpack(">H", hdr[3:5])[0])


_KEYS = {}
_KEYLOG_POS = [0]


def _read_keylog():
    try:
        with open(KEYLOG) as f:
            f.seek(_KEYLOG_POS[0])
            data = f.read()
    except FileNotFoundError:
        return
    end = data.rfind("\n") + 1
    _KEYLOG_POS[0] += len(data[:end].encode())
    for line in data[:end].splitlines():
        p = line.split()
        if len(p) == 3:
            _KEYS.setdefault(p[1], {})[p[0]] = bytes.fromhex(p[2])


class Tls13:
    """A TLS 1.3 connection whose records after the handshake are made by hand."""

    def __init__(self, port, host="127.0.0.1", timeout=10, sni="localhost", sock=None):
        self.sock = sock or socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        ctx = client_context(True)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_side=False, server_hostname=sni)
        random = None
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                data = out.read()
                if data:
                    if random is None:
                        random = data[11:43]
                    self.sock.sendall(data)
                d = self.sock.recv(65536)
                if not d:
                    raise ConnectionError("eof in handshake")
                inc.write(d)
        data = out.read()
        if data:
            self.sock.sendall(data)  # client Finished
        self.extra_in = inc.read() if inc.pending else b""
        suite = obj.cipher()[0]
        secrets = self._secrets(random.hex())
        self.tx = Dir(suite, secrets["CLIENT_TRAFFIC_SECRET_0"])
        self.rx = Dir(suite, secrets["SERVER_TRAFFIC_SECRET_0"])
        self.suite = suite
        self.rbuf = b""

    def _secrets(self, rnd):
        for _ in range(200):
            _read_keylog()
            got = _KEYS.get(rnd, {})
            if "CLIENT_TRAFFIC_SECRET_0" in got and "SERVER_TRAFFIC_SECRET_0" in got:
                return _KEYS.pop(rnd)
            time.sleep(0.01)
        raise RuntimeError("secrets not in key log")

    # records
    def app(self, data, pad=0):
        return self.tx.seal(23, data, pad)

    def alert(self, level, desc):
        return self.tx.seal(21, bytes([level, desc]))

    def key_update(self, requested):
        rec = self.tx.seal(22, b"\x18\x00\x00\x01" + bytes([1 if requested else 0]))
        self.tx.update()
        return rec

    def send(self, data):
        self.sock.sendall(data)

    def recv_plain(self, timeout=5):
        """Decrypted (type, data) of the next record from the server."""
        self.sock.settimeout(timeout)
        rec = read_record(self.sock)
        if rec[0] != 0x17:
            return rec[0], rec[5:]
        t, d = self.rx.open(rec)
        if t == 22 and d[:1] == b"\x18":  # server KeyUpdate: its keys change
            self.rx.update()
        return t, d

    def read_http(self, timeout=5):
        """Reads application data until one HTTP response with Content-Length is complete."""
        buf = b""
        end = time.monotonic() + timeout
        while True:
            if b"\r\n\r\n" in buf:
                head, _, body = buf.partition(b"\r\n\r\n")
                cl = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        cl = int(v)
                if len(body) >= cl:
                    return head, body[:cl]
            t, d = self.recv_plain(max(0.01, end - time.monotonic()))
            if t == 23:
                buf += d
            elif t == 21:
                raise ConnectionError(f"alert {d.hex()}")


def parse_hello(record_bytes):
    """The ClientHello handshake message (from its records) split into parts."""
    msg = b""
    i = 0
    while i < len(record_bytes):
        ln = struct.unpack(">H", record_bytes[i + 3:i + 5])[0]
        msg += record_bytes[i + 5:i + 5 + ln]
        i += 5 + ln
    body = msg[4:]
    p = 2 + 32
    p += 1 + body[p]
    p += 2 + struct.unpack(">H", body[p:p + 2])[0]
    p += 1 + body[p]
    head = body[:p]
    ext_len = struct.unpack(">H", body[p:p + 2])[0]
    exts = []
    q = p + 2
    while q < p + 2 + ext_len:
        t, ln = struct.unpack(">HH", body[q:q + 4])
        exts.append((t, body[q + 4:q + 4 + ln]))
        q += 4 + ln
    return head, exts


def build_hello(head, exts):
    e = b"".join(struct.pack(">HH", t, len(d)) + d for t, d in exts)
    body = head + struct.pack(">H", len(e)) + e
    return b"\x01" + struct.pack(">I", len(body))[1:] + body


def hs_records(msg, frag=16384, ctype=22):
    out = []
    for i in range(0, len(msg), frag):
        part = msg[i:i + frag]
        out.append(bytes([ctype]) + b"\x03\x01" + struct.pack(">H", len(part)) + part)
    return out


def big_hello(pad=0, sni_len=None, alpn_n=None, psk_n=None, sni="localhost"):
    """A real OpenSSL ClientHello made larger: a padding extension of `pad`
    bytes, or an SNI of sni_len bytes, or an ALPN list of alpn_n entries."""
    head, exts = parse_hello(client_hello(sni=sni))
    if sni_len is not None:
        name = b"a" * sni_len
        ent = b"\x00" + struct.pack(">H", len(name)) + name
        exts = [(t, struct.pack(">H", len(ent)) + ent) if t == 0 else (t, d) for t, d in exts]
    if alpn_n is not None:
        lst = b"".join(bytes([len(p)]) + p for p in
                       [f"x{i:05d}".encode() for i in range(alpn_n - 1)] + [b"http/1.1"])
        exts = [e for e in exts if e[0] != 16] + [(16, struct.pack(">H", len(lst)) + lst)]
    if pad:
        exts.append((21, bytes(pad)))
    return build_hello(head, exts)


def psk_hello(n_ids=1, id_len=200, binder_len=48):
    """OpenSSL's TLS 1.3 ClientHello plus a pre_shared_key extension of
    n_ids garbage tickets (each id_len random bytes) and as many binders."""
    head, exts = parse_hello(client_hello())
    exts = [e for e in exts if e[0] not in (41, 21)]
    if not any(t == 45 for t, _ in exts):
        exts.append((45, b"\x01\x01"))
    ids = b"".join(struct.pack(">H", id_len) + os.urandom(id_len) + os.urandom(4) for _ in range(n_ids))
    binders = b"".join(bytes([binder_len]) + os.urandom(binder_len) for _ in range(n_ids))
    ext = struct.pack(">H", len(ids)) + ids + struct.pack(">H", len(binders)) + binders
    exts.append((41, ext))
    return build_hello(head, exts)


def prf_sha256(secret, label, seed, n):
    out, a = b"", label + seed
    while len(out) < n:
        a = hmac.new(secret, a, hashlib.sha256).digest()
        out += hmac.new(secret, a + label + seed, hashlib.sha256).digest()
    return out[:n]


class Tls12Chacha:
    """TLS 1.2 ECDHE-ECDSA-CHACHA20-POLY1305 connection whose records after
    the handshake are made by hand (ECDSA certificate only)."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        ctx = client_context(False)
        ctx.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_side=False, server_hostname="localhost")
        client_random = server_random = None
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                data = out.read()
                if data:
                    if client_random is None:
                        client_random = data[11:43]
                    self.sock.sendall(data)
                d = self.sock.recv(65536)
                if server_random is None:
                    server_random = d[11:43]
                inc.write(d)
        data = out.read()
        if data:
            self.sock.sendall(data)
        for _ in range(200):
            _read_keylog()
            ms = _KEYS.get(client_random.hex(), {}).get("CLIENT_RANDOM")
            if ms:
                break
            time.sleep(0.01)
        kb = prf_sha256(ms, b"key expansion", server_random + client_random, 88)
        self.ckey, self.skey, self.civ, self.siv = kb[:32], kb[32:64], kb[64:76], kb[76:88]
        self.caead = ChaCha20Poly1305(self.ckey)
        self.seq = 1  # the client Finished used 0

    def seal(self, ctype, data):
        n = bytes(a ^ b for a, b in zip(self.civ, bytes(4) + struct.pack(">Q", self.seq)))
        aad = struct.pack(">Q", self.seq) + bytes([ctype]) + b"\x03\x03" + struct.pack(">H", len(data))
        self.seq += 1
        ct = self.caead.encrypt(n, data, aad)
        return bytes([ctype]) + b"\x03\x03" + struct.pack(">H", len(ct)) + ct
