"""A5: fan-out under hostile subscribers (SSE and WebSocket groups, broadcast_event /
broadcast_binary, the cross-thread Sender), measured.

python3 a_fanout.py ATTACK [key=value ...]
ATTACK: idle | stall | drip | rst | storm | mix
keys: n (attacking connections, default 2000), kind (sse|ws|both), secs (attack length, 30),
      bcast_ms (10), size (1000), sse_buf / ws_buf (send bounds), sndbuf (server SO_SNDBUF),
      rcvbuf (attacker SO_RCVBUF, 4096), sender_ms (Sender thread group_send period, 0=off),
      drip_bytes (64), drip_ms (100), procs (attacker processes, 2), tag (result name), bin (1)
Phases: baseline 5 s -> attack -> after 5 s. Probe (its own process): one SSE subscriber and one
/ws/sub subscriber measure broadcast delivery latency (timestamp in each message) and check
sequence gaps and bytes; one /ws echo client measures RTT of a 100-byte message every 20 ms; one
GET /hello every 100 ms. Server VmRSS/VmHWM/CPU sampled every 100 ms, Server::stats every 0.5 s,
kernel TCP memory (sockstat) every 0.5 s. Result: results/TAG.json and a printed summary.
"""
import json
import os
import random
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ws23  # noqa: E402

RES = os.path.join(HERE, "results")


def kv(argv):
    out = {}
    for a in argv:
        if "=" in a:
            k, v = a.split("=", 1)
            out[k] = v
    return out


def sse_req():
    return b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"


def ws_req(path="/ws/sub"):
    import base64
    key = base64.b64encode(os.urandom(16))
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")


# ---------------------------------------------------------------- attacker children
def open_many(port, n, kind, rcvbuf, nonblock=True):
    socks = []
    for i in range(n):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            time.sleep(0.05)
            continue
        k = kind if kind != "both" else ("sse" if i % 2 == 0 else "ws")
        s.sendall(sse_req() if k == "sse" else ws_req())
        if nonblock:
            s.setblocking(False)
        socks.append(s)
        if i % 200 == 199:
            time.sleep(0.02)
    return socks


def child_stall(port, n, kind, rcvbuf, secs):
    socks = open_many(port, n, kind, rcvbuf)
    print(json.dumps({"opened": len(socks)}), flush=True)
    time.sleep(secs)
    # Count how many the server dropped (EOF/RST once we drain).
    dead = 0
    for s in socks:
        try:
            s.setblocking(False)
            while True:
                d = s.recv(1 << 16)
                if not d:
                    dead += 1
                    break
        except BlockingIOError:
            pass
        except OSError:
            dead += 1
    print(json.dumps({"dropped_by_server": dead, "of": len(socks)}), flush=True)


def child_drip(port, n, kind, rcvbuf, secs, drip_bytes, drip_ms):
    socks = open_many(port, n, kind, rcvbuf)
    print(json.dumps({"opened": len(socks)}), flush=True)
    end = time.time() + secs
    dead = set()
    got = 0
    while time.time() < end:
        t = time.time()
        for i, s in enumerate(socks):
            if i in dead:
                continue
            try:
                d = s.recv(drip_bytes)
                if not d:
                    dead.add(i)
                got += len(d)
            except BlockingIOError:
                pass
            except OSError:
                dead.add(i)
        time.sleep(max(0, drip_ms / 1000 - (time.time() - t)))
    print(json.dumps({"dropped_by_server": len(dead), "of": len(socks), "bytes_read": got}), flush=True)


def child_rst(port, n, kind, rcvbuf, secs):
    """n subscribers that read for 0.1-1.5 s, then vanish with RST (unread data in flight), and reconnect."""
    sel = selectors.DefaultSelector()
    end = time.time() + secs
    r = random.Random(os.getpid())
    live = {}
    made = 0
    resets = 0

    def new():
        nonlocal made
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            return
        k = kind if kind != "both" else r.choice(["sse", "ws"])
        s.sendall(sse_req() if k == "sse" else ws_req())
        s.setblocking(False)
        live[s] = time.time() + r.uniform(0.1, 1.5)
        sel.register(s, selectors.EVENT_READ)
        made += 1

    for _ in range(n):
        new()
    while time.time() < end:
        for key, _ in sel.select(0.05):
            s = key.fileobj
            try:
                # read only part: leave data unread so the close is an RST with data pending
                s.recv(r.choice([100, 4096]))
            except OSError:
                pass
        now = time.time()
        for s, t in list(live.items()):
            if now >= t:
                sel.unregister(s)
                del live[s]
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
                resets += 1
                new()
    print(json.dumps({"subscriptions": made, "resets": resets}), flush=True)


def child_storm(port, kind, secs, threads=4):
    """connect/subscribe/close as fast as possible; half close with RST after reading the head."""
    end = time.time() + secs
    counts = [0, 0]
    lock = threading.Lock()

    def run(i):
        r = random.Random(i)
        while time.time() < end:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=3)
                k = kind if kind != "both" else r.choice(["sse", "ws"])
                s.sendall(sse_req() if k == "sse" else ws_req())
                if r.random() < 0.5:
                    s.recv(200)
                if r.random() < 0.5:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
                with lock:
                    counts[0] += 1
            except OSError:
                with lock:
                    counts[1] += 1
                time.sleep(0.01)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps({"cycles": counts[0], "errors": counts[1]}), flush=True)


# ---------------------------------------------------------------- probe child
def child_probe(port, out_path, secs, bin_ws):
    out = open(out_path, "w", buffering=1)
    lock = threading.Lock()
    end = time.time() + secs

    def rec(kind, **f):
        f["kind"] = kind
        f["t"] = time.time()
        with lock:
            out.write(json.dumps(f) + "\n")

    def check_body(body):
        # S<seq:10>T<ns:19>| then letters a..z by position
        try:
            seq = int(body[1:11])
            ns = int(body[12:31])
        except ValueError:
            return None, None, False
        ok = all(body[i] == 97 + (i % 26) for i in range(32, len(body)))
        return seq, ns, ok

    def sse():
        while time.time() < end:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(sse_req())
                buf = b""
                last = None
                while time.time() < end:
                    d = s.recv(1 << 16)
                    if not d:
                        rec("sse_eof")
                        break
                    buf += d
                    while b"\n\n" in buf:
                        ev, buf = buf.split(b"\n\n", 1)
                        for line in ev.split(b"\n"):
                            if line.startswith(b"data: S"):
                                body = line[6:]
                                seq, ns, ok = check_body(body)
                                lat = (time.time_ns() - ns) / 1e6
                                gap = (seq - last - 1) if last is not None and seq is not None else 0
                                last = seq
                                rec("sse", lat=lat, seq=seq, gap=gap, ok=ok)
            except OSError as e:
                rec("sse_err", err=repr(e)[:80])
                time.sleep(0.2)

    def wssub():
        while time.time() < end:
            try:
                s, left, _ = ws23.handshake(port, "/ws/sub")
                s.settimeout(5)
                rd = ws23.Reader(s, left)
                last = None
                while time.time() < end:
                    op, data, ctl, comp = rd.message()
                    for c in ctl:
                        if c[0] == 9:
                            s.sendall(ws23.frame(10, c[1]))
                    if op == 8:
                        rec("ws_close", code=ws23.parse_close(data)[0])
                        break
                    seq, ns, ok = check_body(data)
                    if seq is None:
                        continue  # our own echo? (subscribers are echoed too)
                    lat = (time.time_ns() - ns) / 1e6
                    gap = (seq - last - 1) if last is not None else 0
                    last = seq
                    rec("wssub", lat=lat, seq=seq, gap=gap, ok=ok)
            except (OSError, EOFError) as e:
                rec("wssub_err", err=repr(e)[:80])
                time.sleep(0.2)

    def echo():
        payload = b"e" * 100
        while time.time() < end:
            try:
                s, left, _ = ws23.handshake(port, "/ws")
                s.settimeout(3)
                rd = ws23.Reader(s, left)
                while time.time() < end:
                    t0 = time.perf_counter()
                    s.sendall(ws23.frame(2, payload))
                    op, data, ctl, comp = rd.message()
                    rtt = (time.perf_counter() - t0) * 1e3
                    rec("echo", lat=rtt, ok=(data == payload))
                    time.sleep(0.02)
            except (OSError, EOFError) as e:
                rec("echo_err", err=repr(e)[:80])
                time.sleep(0.2)

    def http():
        while time.time() < end:
            t0 = time.perf_counter()
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=3)
                s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                buf = b""
                while True:
                    d = s.recv(4096)
                    if not d:
                        break
                    buf += d
                s.close()
                rec("http", lat=(time.perf_counter() - t0) * 1e3, ok=buf.startswith(b"HTTP/1.1 200"))
            except OSError as e:
                rec("http_err", err=repr(e)[:80], lat=(time.perf_counter() - t0) * 1e3)
            time.sleep(0.1)

    ts = [threading.Thread(target=f, daemon=True) for f in (sse, wssub, echo, http)]
    for t in ts:
        t.start()
    time.sleep(secs)


# ---------------------------------------------------------------- harness
def tcp_mem_pages():
    try:
        for line in open("/proc/net/sockstat"):
            if line.startswith("TCP:"):
                p = line.split()
                return int(p[p.index("mem") + 1])
    except OSError:
        pass
    return 0


def runq_wait(pid):
    try:
        return int(open("/proc/%d/schedstat" % pid).read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def summarize(vals):
    if not vals:
        return None
    return [round(ws23.pct(vals, 0.5), 2), round(ws23.pct(vals, 0.99), 2), round(max(vals), 2), len(vals)]


def main():
    attack = sys.argv[1]
    o = kv(sys.argv[2:])
    n = int(o.get("n", 2000))
    kind = o.get("kind", "both")
    secs = float(o.get("secs", 30))
    procs = int(o.get("procs", 2))
    rcvbuf = int(o.get("rcvbuf", 4096))
    tag = o.get("tag", attack)
    base, after = 5.0, float(o.get("after", 5))
    os.makedirs(RES, exist_ok=True)
    port = ws23.free_port()
    stats_path = os.path.join(RES, tag + ".stats.jsonl")
    env = {"BCAST_MS": o.get("bcast_ms", 10), "BCAST_SIZE": o.get("size", 1000), "STATS_FILE": stats_path,
           "BCAST_BIN": o.get("bin", 1), "SENDER_MS": o.get("sender_ms", 0)}
    for k, v in o.items():
        if k.startswith("env_"):
            env[k[4:]] = v
    if "sse_buf" in o:
        env["SSE_SEND_BUF"] = o["sse_buf"]
    if "ws_buf" in o:
        env["WS_SEND_BUF"] = o["ws_buf"]
    if "sndbuf" in o:
        env["SNDBUF"] = o["sndbuf"]
    proc = ws23.start_target(port, env, log=os.path.join(RES, tag + ".server.log"))
    probe_path = os.path.join(RES, tag + ".probe.jsonl")
    total = base + secs + after
    probe = subprocess.Popen(["nice", "-n", "10", sys.executable, __file__, "child-probe", str(port), probe_path,
                              str(total), o.get("bin", "1")])
    samples = []
    t_start = time.time()
    marks = {"attack": t_start + base, "after": t_start + base + secs}
    children = []
    started = False
    while time.time() < t_start + total:
        now = time.time()
        if not started and now >= marks["attack"]:
            started = True
            per = max(1, n // procs)
            for i in range(procs):
                if attack == "idle":
                    break
                if attack == "mix":
                    sub = ["stall", "drip", "rst", "storm"][i % 4]
                else:
                    sub = attack
                args = [sys.executable, __file__, "child-" + sub, str(port), str(per), kind, str(rcvbuf), str(secs),
                        o.get("drip_bytes", "64"), o.get("drip_ms", "100")]
                children.append((sub, subprocess.Popen(["nice", "-n", "10"] + args, stdout=subprocess.PIPE)))
        st = ws23.proc_status(proc.pid)
        samples.append({"t": now, "rss": st.get("VmRSS", 0), "hwm": st.get("VmHWM", 0),
                        "cpu": ws23.cpu_seconds(proc.pid), "tcp_mem": tcp_mem_pages(), "wait": runq_wait(proc.pid)})
        if proc.poll() is not None:
            print("SERVER DIED rc", proc.returncode)
            break
        time.sleep(0.1)
    child_out = []
    for sub, c in children:
        try:
            outp, _ = c.communicate(timeout=30)
            child_out.append((sub, outp.decode().strip().splitlines()))
        except subprocess.TimeoutExpired:
            c.kill()
            child_out.append((sub, ["timeout"]))
    probe.wait(timeout=30)
    alive = proc.poll() is None
    proc.kill()
    # phases
    recs = [json.loads(line) for line in open(probe_path)]
    stats = []
    try:
        stats = [json.loads(line) for line in open(stats_path)]
    except (OSError, ValueError):
        pass

    def phase(t):
        if t < marks["attack"]:
            return "baseline"
        if t < marks["after"]:
            return "attack"
        return "after"

    summary = {"attack": attack, "params": o, "server_alive": alive, "children": child_out, "phases": {}}
    for ph in ("baseline", "attack", "after"):
        pr = [r for r in recs if phase(r["t"]) == ph]
        sm = [s for s in samples if phase(s["t"]) == ph]
        ss = [s for s in stats if phase(s["t"] / 1000) == ph]
        d = {}
        for k in ("sse", "wssub", "echo", "http"):
            vals = [r["lat"] for r in pr if r["kind"] == k]
            d[k] = summarize(vals)
        d["gaps"] = {k: sum(r.get("gap", 0) for r in pr if r["kind"] == k) for k in ("sse", "wssub")}
        d["bad_bytes"] = sum(1 for r in pr if r["kind"] in ("sse", "wssub", "echo") and not r.get("ok", True))
        d["errors"] = [r for r in pr if r["kind"].endswith("_err") or r["kind"] in ("sse_eof", "ws_close")][:5]
        d["n_errors"] = sum(1 for r in pr if r["kind"].endswith("_err") or r["kind"] in ("sse_eof", "ws_close"))
        if sm:
            d["rss_mb"] = [round(sm[0]["rss"] / 1024, 1), round(max(s["rss"] for s in sm) / 1024, 1),
                           round(sm[-1]["rss"] / 1024, 1)]
            d["hwm_mb"] = round(max(s["hwm"] for s in sm) / 1024, 1)
            dt = sm[-1]["t"] - sm[0]["t"]
            d["cpu_pct"] = round(100 * (sm[-1]["cpu"] - sm[0]["cpu"]) / dt, 1) if dt > 0 else None
            d["tcp_mem_pages_max"] = max(s["tcp_mem"] for s in sm)
            d["runq_wait_pct"] = round(100 * (sm[-1]["wait"] - sm[0]["wait"]) / dt, 1) if dt > 0 else None
        if ss:
            d["conns_max"] = max(s["conns"] for s in ss)
            d["out_q_max_mb"] = round(max(s["out_q"] for s in ss) / 2**20, 1)
            d["out_buf_max_mb"] = round(max(s["out_buf"] for s in ss) / 2**20, 1)
            d["in_buf_max_mb"] = round(max(s["in_buf"] for s in ss) / 2**20, 2)
            d["poll_ms_max"] = max(s["poll_ms"] for s in ss)
            d["work_ms_max"] = max(s["work_ms"] for s in ss)
            d["members_max"] = [max(s["sse_members"] for s in ss), max(s["ws_members"] for s in ss)]
            d["sender_q_max"] = max(s["sender_q"] for s in ss)
        summary["phases"][ph] = d
    with open(os.path.join(RES, tag + ".json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("== %s  %s  server alive: %s" % (tag, " ".join(sys.argv[2:]), alive))
    for sub, lines in child_out:
        print("  child %s: %s" % (sub, " ".join(lines)))
    for ph, d in summary["phases"].items():
        print("  %-8s sse %s wssub %s echo %s http %s | gaps %s bad %d err %d" % (
            ph, d["sse"], d["wssub"], d["echo"], d["http"], d["gaps"], d["bad_bytes"], d["n_errors"]))
        print("           rss %s MB hwm %s cpu %s%% wait %s%% tcp_mem %s | conns %s out_q %s MB out_buf %s MB in %s MB "
              "poll %s ms work %s ms members %s sender_q %s" % (
                  d.get("rss_mb"), d.get("hwm_mb"), d.get("cpu_pct"), d.get("runq_wait_pct"), d.get("tcp_mem_pages_max"),
                  d.get("conns_max"), d.get("out_q_max_mb"), d.get("out_buf_max_mb"), d.get("in_buf_max_mb"),
                  d.get("poll_ms_max"), d.get("work_ms_max"), d.get("members_max"), d.get("sender_q_max")))
        if d["errors"]:
            print("           errors:", d["errors"][:3])


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "child-probe":
        child_probe(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5] == "1")
    elif cmd.startswith("child-"):
        a = sys.argv[2:]
        port, n, kind, rcvbuf, secs = int(a[0]), int(a[1]), a[2], int(a[3]), float(a[4])
        sub = cmd[6:]
        if sub == "stall":
            child_stall(port, n, kind, rcvbuf, secs)
        elif sub == "drip":
            child_drip(port, n, kind, rcvbuf, secs, int(a[5]), float(a[6]))
        elif sub == "rst":
            child_rst(port, n, kind, rcvbuf, secs)
        elif sub == "storm":
            child_storm(port, kind, secs)
    else:
        main()
