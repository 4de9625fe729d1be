"""Shared pieces of the attack scripts: the server under test, the probe
process, phase bookkeeping and statistics, raw HTTP and WebSocket helpers."""
import json
import os
import random
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.environ.get("POLLSERVE_BIN", os.path.join(ROOT, "target/release/pollserve"))
RESULTS = os.path.join(HERE, "results")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_fd_limit(n=20000):
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


def mono():
    return time.monotonic()


# --------------------------------------------------------------------------
# The server and the probe
# --------------------------------------------------------------------------

class Target:
    """A pollserve process (demo or serve) plus the probe/monitor process."""

    def __init__(self, mode="demo", serve_dir=None, nofile=None, extra=(), probe_path=None,
                 probe_timeout=3.0, tag="run", control=True):
        self.mode = mode
        self.port = free_port()
        args = [BIN, mode]
        if mode == "serve":
            args.append(serve_dir)
        args += ["--port", str(self.port), "--quiet", *extra]
        path = probe_path or ("/api/status" if mode == "demo" else "/")
        # A second, unattacked server of the same build with its own probe:
        # its latency shows what the machine's load (the attacker included)
        # costs any server, apart from what the attack does to the target.
        self.control = None
        if control:
            cport = free_port()
            cargs = [BIN, mode] + ([serve_dir] if mode == "serve" else []) + [
                "--port", str(cport), "--quiet", *extra]
            self.control = subprocess.Popen(cargs, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
            self.control_out = os.path.join(RESULTS, f"{tag}.control.jsonl")
            self._wait(cport)
            self.control_probe = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "probe.py"), "--port", str(cport),
                 "--pid", str(self.control.pid), "--out", self.control_out, "--path", path,
                 "--timeout", str(probe_timeout)])

        def limits():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.log_path = os.path.join(RESULTS, f"{tag}.server.log")
        os.makedirs(RESULTS, exist_ok=True)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log,
                                     preexec_fn=limits)
        self.pid = self.proc.pid
        self._wait(self.port)
        self.probe_out = os.path.join(RESULTS, f"{tag}.probe.jsonl")
        self.probe = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "probe.py"), "--port", str(self.port),
             "--pid", str(self.pid), "--out", self.probe_out, "--path", path,
             "--timeout", str(probe_timeout)])
        self.marks = {}
        self.t0 = mono()

    def _wait(self, port):
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def mark(self, name):
        self.marks[name] = mono()

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except FileNotFoundError:
            return None

    def rss(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except FileNotFoundError:
            return None

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        probes = [self.probe] + ([self.control_probe] if self.control else [])
        for pr in probes:
            pr.send_signal(signal.SIGTERM)
        for pr in probes:
            try:
                pr.wait(10)
            except subprocess.TimeoutExpired:
                pr.kill()
        if self.control:
            self.control.send_signal(signal.SIGTERM)
            try:
                self.control.wait(10)
            except subprocess.TimeoutExpired:
                self.control.kill()
        alive = self.alive()
        if alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return alive

    def records(self):
        with open(self.probe_out) as f:
            return [json.loads(l) for l in f if l.strip()]

    def control_records(self):
        if not self.control:
            return []
        with open(self.control_out) as f:
            return [json.loads(l) for l in f if l.strip()]


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))
    return xs[i]


def phase_stats(recs, t0, t1):
    p = [r for r in recs if r["k"] == "p" and t0 <= r["t"] < t1]
    m = [r for r in recs if r["k"] == "m" and t0 <= r["t"] < t1]
    fd = [r for r in recs if r["k"] == "fd" and t0 <= r["t"] < t1]
    lats = [r["lat"] * 1000 for r in p if r["lat"] is not None]
    fails = [r for r in p if r["lat"] is None or r["st"] != 200]
    out = {
        "secs": round(t1 - t0, 1),
        "probes": len(p),
        "fail": len(fails),
        "fail_examples": sorted({(r["err"] or str(r["st"])) for r in fails})[:3],
        "p50_ms": round(pct(lats, 50), 2) if lats else None,
        "p99_ms": round(pct(lats, 99), 2) if lats else None,
        "max_ms": round(max(lats), 2) if lats else None,
    }
    if m:
        rss = [r["rss"] for r in m]
        out["rss_start_mb"] = round(rss[0] / 1024, 1)
        out["rss_peak_mb"] = round(max(rss) / 1024, 1)
        out["rss_end_mb"] = round(rss[-1] / 1024, 1)
        dt = m[-1]["t"] - m[0]["t"]
        if dt > 0:
            out["cpu_pct"] = round(100 * (m[-1]["cpu"] - m[0]["cpu"]) / CLK_TCK / dt, 1)
            # Time the server was runnable but waiting for a CPU (schedstat):
            # high means the machine, not the server, is the bottleneck.
            out["runq_wait_pct"] = round(100 * (m[-1]["wait"] - m[0]["wait"]) / 1e9 / dt, 1)
    if fd:
        out["fds_start"] = fd[0]["n"]
        out["fds_peak"] = max(r["n"] for r in fd)
        out["fds_end"] = fd[-1]["n"]
    return out


def fmt_phase(name, s):
    parts = [f"{name:9s} {s['secs']:5.1f}s probes={s['probes']} fail={s['fail']}"]
    if s["p50_ms"] is not None:
        parts.append(f"lat p50={s['p50_ms']}ms p99={s['p99_ms']}ms max={s['max_ms']}ms")
    if "rss_peak_mb" in s:
        parts.append(f"RSS {s['rss_start_mb']}->{s['rss_peak_mb']}(peak)->{s['rss_end_mb']} MB")
    if "cpu_pct" in s:
        parts.append(f"CPU {s['cpu_pct']}% (runq wait {s['runq_wait_pct']}%)")
    if "fds_peak" in s:
        parts.append(f"fds {s['fds_start']}->{s['fds_peak']}->{s['fds_end']}")
    if s["fail_examples"]:
        parts.append(f"errors {s['fail_examples']}")
    return "  ".join(parts)


# --------------------------------------------------------------------------
# Raw HTTP
# --------------------------------------------------------------------------

def connect(port, timeout=5.0, rcvbuf=None, nonblocking=False):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    if nonblocking:
        s.setblocking(False)
    return s


def status_of(data):
    """Status code of the first response in `data`, or None."""
    if data.startswith(b"HTTP/1.1 "):
        try:
            return int(data[9:12])
        except ValueError:
            return None
    return None


def read_response(s, timeout=10.0, max_body=64 << 20):
    """Reads one response (head + Content-Length body, at most max_body bytes of
    it). Returns (status, head, body)."""
    end = mono() + timeout
    buf = b""
    while b"\r\n\r\n" not in buf:
        s.settimeout(max(0.01, end - mono()))
        d = s.recv(65536)
        if not d:
            return status_of(buf), buf, b""
        buf += d
    head, _, first = buf.partition(b"\r\n\r\n")
    clen = 0
    for l in head.split(b"\r\n")[1:]:
        k, _, v = l.partition(b":")
        if k.strip().lower() == b"content-length":
            clen = int(v.strip())
    body = bytearray(first)
    while len(body) < min(clen, max_body) and mono() < end:
        s.settimeout(max(0.01, end - mono()))
        d = s.recv(1 << 20)
        if not d:
            break
        body += d
    return status_of(head), head, bytes(body)


def recv_all_until_close(s, timeout=10.0, limit=1 << 24):
    end = mono() + timeout
    buf = bytearray()
    while mono() < end and len(buf) < limit:
        s.settimeout(max(0.01, end - mono()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            buf += b"<RST>"
            break
        if not d:
            buf += b"<EOF>"
            break
        buf += d
    return bytes(buf)


# --------------------------------------------------------------------------
# WebSocket
# --------------------------------------------------------------------------

HANDSHAKE = ("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n")


def ws_connect(port, path="/ws/echo", timeout=10.0, rcvbuf=None):
    s = connect(port, timeout, rcvbuf=rcvbuf)
    s.sendall(HANDSHAKE.format(path=path).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise ConnectionError("closed during handshake")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    if status_of(head) != 101:
        raise ConnectionError(f"handshake got {head[:40]!r}")
    return s, rest


def ws_frame(opcode, payload=b"", fin=True, mask=b"\0\0\0\0", length=None):
    """A client frame. `length` overrides the announced payload length."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    if mask != b"\0\0\0\0":
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + payload


class WsReader:
    """Incremental parser of server (unmasked) frames."""

    def __init__(self):
        self.buf = bytearray()
        self.frames = 0
        self.pings = 0
        self.close_code = None
        self.texts = 0

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            b = self.buf
            if len(b) < 2:
                break
            op = b[0] & 0x0F
            n = b[1] & 0x7F
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
            self.frames += 1
            if op == 9:
                self.pings += 1
            elif op == 8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            elif op == 1:
                self.texts += 1
            out.append((op, payload))
        return out


def summarize_times(ts, ref=0.0):
    """min/median/max of a list of seconds, relative to ref."""
    if not ts:
        return None
    ts = sorted(t - ref for t in ts)
    return {"n": len(ts), "min": round(ts[0], 1), "med": round(statistics.median(ts), 1),
            "max": round(ts[-1], 1)}


def rand_bytes(n):
    return random.randbytes(n)
