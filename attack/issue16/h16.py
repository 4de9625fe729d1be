"""Harness for the issue-16 attacks: target process, probe process, phases, stats."""
import json, os, resource, signal, socket, subprocess, sys, time, statistics

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "target/release/target16")
CLI = os.path.join(HERE, "target-cli/release/pollserve")
RES = os.path.join(HERE, "results")
os.makedirs(RES, exist_ok=True)
CLK = os.sysconf("SC_CLK_TCK")


def raise_fd_limit(n=20000):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def mono():
    return time.monotonic()


def wait_port(port, proc=None):
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError("server exited")
            time.sleep(0.05)
    raise RuntimeError("server did not start")


class Server:
    def __init__(self, tag, env=None, cli=None, stderr=None, probe_path="/hello", probe=True,
                 www=os.path.join(HERE, "www"), control=False):
        raise_fd_limit()
        self.tag = tag
        self.port = free_port()
        self.stats_file = os.path.join(RES, f"{tag}.stats.json")
        e = dict(os.environ, STATS_FILE=self.stats_file)
        e.update(env or {})
        if cli:
            args = [CLI, cli[0]] + list(cli[1:]) + ["--port", str(self.port)]
        else:
            args = [TARGET, str(self.port), www]
        self.log_path = os.path.join(RES, f"{tag}.server.log")
        if stderr is None:
            stderr = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr, env=e,
                                     preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000)))
        self.pid = self.proc.pid
        wait_port(self.port, self.proc)
        self.marks = {"start": mono()}
        self.probe = None
        self.ctl = None
        if probe:
            self.probe_out = os.path.join(RES, f"{tag}.probe.jsonl")
            self.probe = subprocess.Popen([sys.executable, os.path.join(HERE, "..", "probe.py"), "--port", str(self.port),
                                           "--pid", str(self.pid), "--out", self.probe_out, "--path", probe_path])
        if control:
            # an unattacked twin, probed the same way: machine load
            self.ctl = Server(tag + ".control", env=env, cli=cli, probe_path=probe_path, www=www)

    def mark(self, name):
        self.marks[name] = mono()

    def rss(self):
        try:
            for line in open(f"/proc/{self.pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except FileNotFoundError:
            return None

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except FileNotFoundError:
            return None

    def stats(self):
        try:
            return json.load(open(self.stats_file))
        except Exception:
            return None

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.ctl:
            self.ctl.stop()
        if self.probe:
            self.probe.send_signal(signal.SIGTERM)
            try:
                self.probe.wait(5)
            except subprocess.TimeoutExpired:
                self.probe.kill()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill(); self.proc.wait()

    def summary(self, phases):
        """phases: list of (name, start_mark, end_mark). Returns dict."""
        out = {}
        recs = [json.loads(l) for l in open(self.probe_out)] if self.probe else []
        for name, a, b in phases:
            t0, t1 = self.marks[a], self.marks[b]
            ps = [r for r in recs if r["k"] == "p" and t0 <= r["t"] < t1]
            ms = [r for r in recs if r["k"] == "m" and t0 <= r["t"] < t1]
            fd = [r["n"] for r in recs if r["k"] == "fd" and t0 <= r["t"] < t1]
            lats = sorted(r["lat"] * 1000 for r in ps if r["lat"] is not None)
            fails = sum(1 for r in ps if r["lat"] is None)
            d = {"probes": len(ps), "fail": fails}
            if lats:
                d["p50"] = round(lats[len(lats) // 2], 2)
                d["p99"] = round(lats[min(len(lats) - 1, int(len(lats) * 0.99))], 2)
                d["max"] = round(lats[-1], 2)
            if ms:
                rss = [r["rss"] for r in ms if r["rss"]]
                d["rss_mb"] = [round(rss[0] / 1024, 1), round(max(rss) / 1024, 1), round(rss[-1] / 1024, 1)]
                dt = ms[-1]["t"] - ms[0]["t"]
                if dt > 0:
                    d["cpu%"] = round(100 * (ms[-1]["cpu"] - ms[0]["cpu"]) / CLK / dt, 1)
                    d["wait%"] = round(100 * (ms[-1]["wait"] - ms[0]["wait"]) / 1e9 / dt, 1)
            if fd:
                d["fds"] = [fd[0], max(fd), fd[-1]]
            out[name] = d
        if self.ctl:
            c = self.ctl.summary(phases_map(phases, self.marks, self.ctl))
            out["control"] = c
        return out


def phases_map(phases, marks, ctl):
    ctl.marks.update(marks)
    return phases


def fmt(d):
    s = []
    for k, v in d.items():
        if isinstance(v, dict):
            s.append(f"{k}: " + ", ".join(f"{a}={b}" for a, b in v.items()))
    return "\n".join(s)


def save(tag, result):
    with open(os.path.join(RES, f"{tag}.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


# ---------- raw helpers ----------
def conn(port, rcvbuf=None, timeout=10):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


def read_head(s, limit=1 << 20):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            break
        buf += d
        if len(buf) > limit:
            break
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin1"), rest


def request(port, raw, timeout=10, read_all=True, rcvbuf=None):
    """Send raw bytes, read until close (or timeout). Returns (bytes, seconds, error)."""
    s = conn(port, rcvbuf=rcvbuf, timeout=timeout)
    t0 = mono()
    s.sendall(raw)
    buf = b""
    err = None
    try:
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            buf += d
            if not read_all:
                break
    except socket.timeout:
        err = "timeout"
    except OSError as e:
        err = type(e).__name__
    s.close()
    return buf, mono() - t0, err


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except Exception:
        return None


def ws_handshake(port, path="/ws", timeout=10):
    import base64
    s = conn(port, timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head, rest = read_head(s)
    return s, head, rest


def ws_frame(payload, opcode=1):
    import struct
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        h = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        h = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack(">H", n)
    else:
        h = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack(">Q", n)
    return h + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
