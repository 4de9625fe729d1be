"""Targets (pollserve custom target, pollserve CLI demo/serve, nginx 1 worker),
probes, phases and statistics for the TLS attacks."""
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
CERTS = os.path.join(HERE, "certs")
WWW = os.path.join(HERE, "www")
TARGET_BIN = os.path.join(HERE, "target/release/tls-target")
CLI_BIN = os.path.join(HERE, "target/release/pollserve")
CLK = os.sysconf("SC_CLK_TCK")
mono = time.monotonic


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


def wait_port(port, n=200):
    for _ in range(n):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def cert_paths(cert):
    return os.path.join(CERTS, f"{cert}.pem"), os.path.join(CERTS, f"{cert}.key")


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 19000; }}
worker_rlimit_nofile 20000;
http {{
    access_log off;
    include /etc/nginx/mime.types;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {www};
        location = / {{ return 200 "hello over tls\\n"; }}
    }}
}}
"""


class Target:
    """kind: pt (custom pollserve target), demo, serve (pollserve CLI), nginx."""

    def __init__(self, kind="pt", cert="ec", tag="run", probes=("ka", "fresh"), extra=(),
                 cert_files=None, nofile=20000):
        raise_fd_limit()
        os.makedirs(RESULTS, exist_ok=True)
        self.kind, self.tag = kind, tag
        self.port = free_port()
        c, k = cert_files or cert_paths(cert)
        self.cert, self.key = c, k
        self.statsfile = None
        self.log_path = os.path.join(RESULTS, f"{tag}.server.log")
        log = open(self.log_path, "w")
        env = dict(os.environ)
        path = "/"
        if kind == "pt":
            self.statsfile = os.path.join(tempfile.gettempdir(), f"stats-{self.port}.json")
            args = [TARGET_BIN, str(self.port), c, k, WWW, self.statsfile]
        elif kind == "demo":
            args = [CLI_BIN, "demo", "--port", str(self.port), "--tls-cert", c, "--tls-key", k, *extra]
            path = "/api/status"
            env.setdefault("RUST_LOG", "info")
        elif kind == "serve":
            args = [CLI_BIN, "serve", WWW, "--port", str(self.port), "--tls-cert", c, "--tls-key", k, *extra]
            path = "/status.json"
            env.setdefault("RUST_LOG", "info")
        elif kind == "nginx":
            self.ngdir = tempfile.mkdtemp(prefix="ngx-")
            conf = os.path.join(self.ngdir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(dir=self.ngdir, port=self.port, cert=c, key=k, www=WWW))
            args = ["nginx", "-c", conf, "-p", self.ngdir]
        else:
            raise ValueError(kind)

        def limits():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, env=env,
                                     preexec_fn=limits)
        self.pid = self.proc.pid
        wait_port(self.port)
        time.sleep(0.2)
        self.path = path
        self.probes = []
        for i, mode in enumerate(probes):
            out = os.path.join(RESULTS, f"{tag}.probe-{mode}.jsonl")
            cmd = [sys.executable, os.path.join(HERE, "tls_probe.py"), "--port", str(self.port),
                   "--pid", str(self.pid), "--out", out, "--path", path, "--mode", mode]
            if i == 0:
                cmd.append("--monitor")
            self.probes.append((mode, out, subprocess.Popen(cmd)))
        if not probes:  # monitor only
            out = os.path.join(RESULTS, f"{tag}.monitor.jsonl")
            cmd = [sys.executable, os.path.join(HERE, "tls_probe.py"), "--port", str(self.port),
                   "--pid", str(self.pid), "--out", out, "--mode", "none", "--monitor",
                   "--interval", "3600"]
            self.probes.append(("none", out, subprocess.Popen(cmd)))
        self.stats = []
        self._stop = threading.Event()
        if self.statsfile:
            threading.Thread(target=self._stats_loop, daemon=True).start()
        self.marks = {"start": mono()}
        self.notes = {}

    def _stats_loop(self):
        while not self._stop.is_set():
            try:
                with open(self.statsfile) as f:
                    self.stats.append((mono(), json.load(f)))
            except (OSError, ValueError):
                pass
            self._stop.wait(0.2)

    def mark(self, name):
        self.marks[name] = mono()

    def note(self, k, v):
        self.notes[k] = v
        print(f"  note {k}: {v}", flush=True)

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

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except FileNotFoundError:
            return None

    def last_stats(self):
        return self.stats[-1][1] if self.stats else None

    def stop(self):
        self._stop.set()
        for _, _, p in self.probes:
            p.send_signal(signal.SIGTERM)
        for _, _, p in self.probes:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        alive = self.alive()
        if alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.kind == "nginx":
            shutil.rmtree(self.ngdir, ignore_errors=True)
        return alive

    # ---- statistics -----------------------------------------------------
    def summary(self):
        phases = []
        names = list(self.marks)
        ends = names[1:] + [None]
        for a, b in zip(names, ends):
            phases.append((a, self.marks[a], self.marks[b] if b else float("inf")))
        res = {"tag": self.tag, "kind": self.kind, "notes": self.notes, "phases": {}}
        recs = {}
        for mode, out, _ in self.probes:
            with open(out) as f:
                recs[mode] = [json.loads(line) for line in f if line.strip()]
        mon = [r for rs in recs.values() for r in rs if r["k"] == "m"]
        fds = [r for rs in recs.values() for r in rs if r["k"] == "fd"]
        for name, t0, t1 in phases:
            ph = {}
            for mode, rs in recs.items():
                ps = [r for r in rs if r["k"] == "p" and t0 <= r["t"] < t1]
                lats = sorted(r["lat"] * 1000 for r in ps if r["lat"] is not None)
                ph[mode] = {
                    "n": len(ps), "fail": sum(1 for r in ps if r["lat"] is None),
                    "p50": pct(lats, 50), "p99": pct(lats, 99), "max": lats[-1] if lats else None,
                    "errs": sorted({r["err"] for r in ps if r["err"]})[:3],
                }
            ms = [r for r in mon if t0 <= r["t"] < t1]
            if len(ms) >= 2:
                dt = ms[-1]["t"] - ms[0]["t"]
                ph["rss_kb"] = [ms[0]["rss"], max(r["rss"] for r in ms), ms[-1]["rss"]]
                ph["cpu_pct"] = round(100 * (ms[-1]["cpu"] - ms[0]["cpu"]) / CLK / dt, 1) if dt else None
                ph["wait_pct"] = round(100 * (ms[-1]["wait"] - ms[0]["wait"]) / 1e9 / dt, 1) if dt else None
            fs = [r["n"] for r in fds if t0 <= r["t"] < t1]
            if fs:
                ph["fds"] = [fs[0], max(fs), fs[-1]]
            st = [s for t, s in self.stats if t0 <= t < t1]
            if st:
                ph["stats_peak"] = {k: max(s[k] for s in st) for k in st[0]}
                ph["stats_end"] = st[-1]
            ph["secs"] = round(min(t1, mono()) - t0, 1)
            res["phases"][name] = ph
        return res


def pct(xs, q):
    if not xs:
        return None
    k = min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))
    return round(xs[k], 2)


def fmt(res):
    lines = [f"== {res['tag']} ({res['kind']})"]
    for name, ph in res["phases"].items():
        parts = [f"{name:>8} {ph['secs']:>5}s"]
        for mode in ("ka", "fresh"):
            if mode in ph:
                p = ph[mode]
                parts.append(f"{mode}: n={p['n']} fail={p['fail']} p50/p99/max={p['p50']}/{p['p99']}/{p['max']:.1f}"
                             if p["max"] is not None else f"{mode}: n={p['n']} fail={p['fail']}")
        if "rss_kb" in ph:
            r = ph["rss_kb"]
            parts.append(f"rss MB {r[0]/1024:.1f}->{r[1]/1024:.1f}->{r[2]/1024:.1f} cpu {ph['cpu_pct']}% wait {ph['wait_pct']}%")
        if "fds" in ph:
            parts.append(f"fds {ph['fds']}")
        if "stats_peak" in ph:
            parts.append(f"stats_peak {ph['stats_peak']}")
        lines.append(" | ".join(parts))
        for mode in ("ka", "fresh"):
            if mode in ph and ph[mode]["errs"]:
                lines.append(f"           {mode} errs: {ph[mode]['errs']}")
    lines.append(f"   notes: {json.dumps(res['notes'])}")
    return "\n".join(lines)


def run(tag, attack, kind="pt", cert="ec", baseline=5, after=5, probes=("ka", "fresh"), **kw):
    certdir = None
    if kw.pop("certcopy", 0):
        certdir = tempfile.mkdtemp(prefix="certs-")
        c, k = cert_paths(cert)
        shutil.copy(c, os.path.join(certdir, "cert.pem"))
        shutil.copy(k, os.path.join(certdir, "key.pem"))
        kw["cert_files"] = (os.path.join(certdir, "cert.pem"), os.path.join(certdir, "key.pem"))
    T = Target(kind=kind, cert=cert, tag=tag, probes=probes, extra=kw.pop("extra", ()),
               cert_files=kw.pop("cert_files", None))
    T.certdir = certdir
    print(f"--- {tag}: {kind} pid {T.pid} port {T.port}", flush=True)
    try:
        import inspect
        gen = None
        if inspect.isgeneratorfunction(attack):
            gen = attack(T, **kw)
            next(gen)  # preparation, before the baseline
            T.mark("baseline")
        time.sleep(baseline)
        T.mark("attack")
        if gen:
            next(gen, None)
        else:
            attack(T, **kw)
        T.mark("after")
        time.sleep(after)
        T.mark("end")
    finally:
        alive = T.stop()
    T.marks.pop("end", None)
    res = T.summary()
    res["server_alive_at_end"] = alive
    with open(os.path.join(RESULTS, f"{tag}.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(fmt(res), flush=True)
    return res
