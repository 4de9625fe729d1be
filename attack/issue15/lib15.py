"""Harness of the issue-15 attacks: the target program (and an unattacked
control copy), the probe (attack/probe.py: HTTP latency, RSS, CPU), normal
subscribers (sub.py: broadcast latency, byte checks), phase marks and the
summary of each phase."""
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ATTACK = os.path.dirname(HERE)
ROOT = os.path.dirname(ATTACK)
BIN = os.environ.get("TARGET15_BIN", os.path.join(ROOT, "target/issue15/release/target15"))
RESULTS = os.path.join(HERE, "results")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_fd_limit(n=20000):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(n, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def r3(x):
    return None if x is None else round(x, 3)


class Server:
    """One target15 process with its probe and subscribers."""

    def __init__(self, name, tag, env, subs, probe_path="/hello"):
        os.makedirs(RESULTS, exist_ok=True)
        self.name = name
        self.base = os.path.join(RESULTS, f"{tag}.{name}")
        self.stats_path = self.base + ".stats.jsonl"
        if os.path.exists(self.stats_path):
            os.remove(self.stats_path)
        e = dict(os.environ)
        e.update({k: str(v) for k, v in env.items()})
        e["STATS_FILE"] = self.stats_path
        self.log = open(self.base + ".log", "w")
        self.proc = subprocess.Popen([BIN], env=e, stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline()
        info = json.loads(line)
        self.port = info["port"]
        self.tls_port = info["tls_port"]
        self.pid = self.proc.pid
        self.probe_out = self.base + ".probe.jsonl"
        self.probe = subprocess.Popen(
            [sys.executable, os.path.join(ATTACK, "probe.py"), "--port", str(self.port),
             "--pid", str(self.pid), "--out", self.probe_out, "--path", probe_path])
        self.subs = []
        for i, spec in enumerate(subs):
            self.add_sub(spec, i)

    def add_sub(self, spec, i=None):
        i = len(self.subs) if i is None else i
        out = f"{self.base}.sub{i}.jsonl"
        spec = dict(spec)
        port = self.tls_port if spec.pop("tls", False) else self.port
        args = [sys.executable, os.path.join(HERE, "sub.py"), "--port", str(port), "--out", out]
        if port == self.tls_port and port:
            args.append("--tls")
        for k, v in spec.items():
            if v is True:
                args.append(f"--{k}")
            elif v is not None and v is not False:
                args += [f"--{k}", str(v)]
        p = subprocess.Popen(args)
        self.subs.append((p, out, spec))
        return out

    def stats(self):
        rows = []
        try:
            with open(self.stats_path) as f:
                for line in f:
                    try:
                        rows.append(json.loads(line))
                    except ValueError:
                        pass
        except FileNotFoundError:
            pass
        return rows

    def last_stats(self):
        rows = self.stats()
        return rows[-1] if rows else {}

    def stop(self):
        for p, _, _ in self.subs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, _, _ in self.subs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.probe.poll() is None:
            self.probe.send_signal(signal.SIGTERM)
        try:
            self.probe.wait(10)
        except subprocess.TimeoutExpired:
            self.probe.kill()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()


def read_jsonl(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    except FileNotFoundError:
        pass
    return rows


class Run:
    """A target (and optionally an identical control nobody attacks), phase
    marks, and the summary of each phase."""

    def __init__(self, tag, env, subs=(), control=True, control_env=None):
        raise_fd_limit()
        self.tag = tag
        self.env = env
        self.marks = []
        self.notes = {}
        self.target = Server("target", tag, env, list(subs))
        self.control = Server("control", tag, control_env or env, list(subs)) if control else None
        time.sleep(1.0)

    def mark(self, name):
        self.marks.append((name, time.time(), time.monotonic()))
        print(f"[{time.strftime('%H:%M:%S')}] {self.tag}: {name}", flush=True)

    def note(self, key, value):
        self.notes[key] = value
        print(f"  {key}: {value}", flush=True)

    def phases(self):
        out = []
        for i, (name, t, m) in enumerate(self.marks[:-1]):
            out.append((name, t, m, self.marks[i + 1][1], self.marks[i + 1][2]))
        return out

    def summarize_server(self, srv):
        probe = read_jsonl(srv.probe_out)
        stats = srv.stats()
        subs = [(read_jsonl(out), spec) for _, out, spec in srv.subs]
        res = {}
        for name, t0, m0, t1, m1 in self.phases():
            ph = {}
            ps = [r for r in probe if r["k"] == "p" and m0 <= r["t"] < m1]
            lats = [r["lat"] * 1e3 for r in ps if r["lat"] is not None]
            ph["probe"] = {"n": len(ps), "fail": sum(1 for r in ps if r["lat"] is None),
                           "p50": r3(pct(lats, 50)), "p99": r3(pct(lats, 99)),
                           "max": r3(max(lats) if lats else None)}
            ms = [r for r in probe if r["k"] == "m" and m0 <= r["t"] < m1]
            if ms:
                rss = [r["rss"] for r in ms if r["rss"] is not None]
                dt = ms[-1]["t"] - ms[0]["t"]
                cpu = (ms[-1]["cpu"] - ms[0]["cpu"]) / CLK_TCK / dt * 100 if dt > 0 else None
                wait = (ms[-1]["wait"] - ms[0]["wait"]) / 1e9 / dt * 100 if dt > 0 else None
                ph["rss_kb"] = {"start": rss[0], "peak": max(rss), "end": rss[-1]}
                ph["cpu_pct"] = r3(cpu)
                ph["runq_wait_pct"] = r3(wait)
                ph["cpu_s"] = r3((ms[-1]["cpu"] - ms[0]["cpu"]) / CLK_TCK)
            st = [r for r in stats if t0 <= r["t"] < t1]
            if st:
                ph["stats"] = {
                    "conns": [st[0]["conns"], max(r["conns"] for r in st), st[-1]["conns"]],
                    "all": [st[0]["all"], max(r["all"] for r in st), st[-1]["all"]],
                    "out_buffered_max": max(r["output_buffered"] for r in st),
                    "out_queued_max": max(r["output_queued"] for r in st),
                    "out_buffered_end": st[-1]["output_buffered"],
                    "max_poll_ms": max(r["max_poll_ms"] for r in st),
                    "max_work_ms": max(r["max_work_ms"] for r in st),
                    "polls": st[-1]["polls"] - st[0]["polls"],
                    "closed": st[-1]["closed"] - st[0]["closed"],
                    "accepted_conns": st[-1]["accepted_conns"] - st[0]["accepted_conns"],
                    "groups_end": st[-1]["groups"],
                    "chat_end": st[-1]["chat"],
                    "seq": [st[0]["seq"], st[-1]["seq"]],
                    "sender_queued_end": st[-1]["sender_queued"],
                    "stats_call_ms_max": max(r.get("stats_call_ms", 0) for r in st),
                }
            for j, (rows, spec) in enumerate(subs):
                ws = [r for r in rows if not r.get("final") and t0 <= r["t"] < t1 + 0.5]
                lat = [x for r in ws for x in r["lat"]]
                ph[f"sub{j}"] = {"n": sum(r["n"] for r in ws), "p50": r3(pct(lat, 50)),
                                 "p99": r3(pct(lat, 99)), "max": r3(max(lat) if lat else None),
                                 "bad": sum(r["bad"] for r in ws),
                                 "gap": sum(r["gap"] for r in ws)}
            res[name] = ph
        finals = {}
        for j, (rows, spec) in enumerate(subs):
            f = [r for r in rows if r.get("final")]
            finals[f"sub{j}"] = {"spec": spec, **(f[-1] if f else {"final": "missing"})}
        res["subs_final"] = finals
        return res

    def finish(self):
        self.target.stop()
        if self.control:
            self.control.stop()
        result = {"tag": self.tag, "env": self.env, "notes": self.notes,
                  "target": self.summarize_server(self.target)}
        if self.control:
            result["control"] = self.summarize_server(self.control)
        path = os.path.join(RESULTS, f"{self.tag}.json")
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
        print_summary(result)
        return result


def fmt_lat(d):
    if not d or d.get("p50") is None:
        return "-"
    return f"{d['p50']}/{d['p99']}/{d['max']}"


def print_summary(result):
    print(f"== {result['tag']}")
    for who in ("target", "control"):
        if who not in result:
            continue
        for phase, ph in result[who].items():
            if phase == "subs_final":
                continue
            rss = ph.get("rss_kb", {})
            st = ph.get("stats", {})
            subs = " ".join(f"{k}={fmt_lat(v)}(n{v['n']},bad{v['bad']},gap{v['gap']})"
                            for k, v in ph.items() if k.startswith("sub"))
            print(f"  {who:7} {phase:9} probe {fmt_lat(ph['probe'])} fail {ph['probe']['fail']}/"
                  f"{ph['probe']['n']}  rss {rss.get('start')}->{rss.get('peak')}->{rss.get('end')} kB"
                  f"  cpu {ph.get('cpu_pct')}% wait {ph.get('runq_wait_pct')}%  {subs}")
            if st:
                print(f"          conns {st['conns']} all {st['all']} outbuf max {st['out_buffered_max']}"
                      f" outq max {st['out_queued_max']} poll max {st['max_poll_ms']} ms"
                      f" work max {st['max_work_ms']} ms stats() max {st['stats_call_ms_max']} ms"
                      f" closed {st['closed']} seq {st['seq']}")
        for k, v in result[who].get("subs_final", {}).items():
            v = dict(v)
            errs = v.pop("errors", [])
            print(f"  {who:7} {k} final {v}")
            for e in errs[:5]:
                print(f"            ! {e}")
    if result.get("notes"):
        print("  notes:", json.dumps(result["notes"])[:3000])
