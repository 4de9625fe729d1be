#!/usr/bin/env python3
"""Re-check of the issue-14 fixes (inflate budget, pause timeout, per-round
share, plain fallback) against target14 (built from this tree).

  python3 attack/issue14/recheck14.py NAME [key=value ...]

NAME:
  many      `conns` sockets each send a zero bomb inflating to MAX_MSG - 1 KiB
            (whole, then a ping; partial=1: all but its last `keep` bytes,
            then silence). Each socket's end: pong (message complete), close
            code, or still waiting. inflated_held and RSS sampled; then all
            close (rst=1: half with RST) and the stats must return to 0.
  dos       `holders` sockets each park a partial near-limit bomb and keep it
            alive with `rate` B/s of empty stored blocks; `refill`=1 reopens
            one more holder whenever one is closed. Meanwhile probe2 runs
            deflate, plain and http clients (and the same three against an
            unattacked control copy).
  frag1     `conns` sockets send a bomb in 1-byte fragments (`nbytes` of it).
  slowprog  target14 with LAZY_MS: `conns` sockets send complete `size`-byte
            bombs; the program takes them only every LAZY_MS.
  context   correctness: compressible, incompressible and bomb messages
            interleaved on one socket (takeover=1: both contexts kept),
            while `press` other sockets keep the budget full; every echo
            inflated with the client's own (kept) inflater and compared.
Results: results/recheck_TAG.json.
"""
import collections
import json
import os
import random
import socket
import struct
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attacks14 import bomb_bytes  # noqa: E402
from lib14 import (HERE, RESULTS, ROOT, Reader, Server, close_code_of, frame, mono,  # noqa: E402
                   raise_fd_limit, ws_open)

MiB = 1 << 20
BIN = os.path.join(ROOT, "target/release/target14")
NOCTX = "permessage-deflate; client_max_window_bits; client_no_context_takeover"


def start(tag, env):
    return Server(tag, args=[BIN, "{port}"], env=env, as_limit_mb=4096)


def stats(srv, timeout=3.0):
    out = f"/tmp/target14-{srv.port}.stats"
    try:
        os.unlink(out)
    except FileNotFoundError:
        pass
    open(f"/tmp/target14-{srv.port}.ask", "w").close()
    end = mono() + timeout
    while mono() < end:
        try:
            with open(out) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(0.02)
    return None


def probes(port, tag, n, interval):
    ps = []
    for mode in ("deflate", "plain", "http"):
        out = os.path.join(RESULTS, f"recheck_{tag}.{mode}.json")
        ps.append((mode, out, subprocess.Popen(
            [sys.executable, os.path.join(HERE, "probe2.py"), "--port", str(port), "--mode", mode,
             "--n", str(n), "--interval", str(interval), "--out", out])))
    return ps


def probe_results(ps):
    r = {}
    for mode, out, p in ps:
        try:
            p.wait(180)
        except subprocess.TimeoutExpired:
            p.kill()
        try:
            with open(out) as f:
                r[mode] = json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            r[mode] = None
    return r


def empty_stored(n):
    # non-final stored blocks of length 0: 00 00 00 ff ff each (5 bytes)
    return b"\x00\x00\x00\xff\xff" * n


class Sock:
    def __init__(self, port, ext=NOCTX, rcvbuf=None):
        self.s, self.ext, rest = ws_open(port, "/ws", ext=ext, timeout=20, rcvbuf=rcvbuf)
        self.r = Reader()
        self.frames = self.r.feed(rest) if rest else []
        self.end = None  # "pong", close code, "EOF", "RST"
        self.t_end = None

    def poll(self):
        """Reads what is there (non-blocking); records the first end."""
        try:
            d = self.s.recv(1 << 20, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            self.set_end("RST")
            return
        if not d:
            self.set_end("EOF")
            return
        for fin, rsv, op, pl in self.r.feed(d):
            if op == 10:
                self.set_end("pong")
            elif op == 8:
                self.set_end(str(close_code_of(pl)))
            else:
                self.frames.append((fin, rsv, op, pl))

    def set_end(self, e):
        if self.end is None or (self.end == "pong" and e not in ("EOF",)):
            if self.end is None:
                self.end, self.t_end = e, mono()
            elif e not in ("EOF", "RST"):
                self.end = "pong+" + e

    def close(self, rst=False):
        if rst:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.s.close()


def sample(srv, rec, t0):
    m = srv.mem()
    st = stats(srv, 1.0)
    rec.append({"t": round(mono() - t0, 1), "rss_mb": round(m[0] / 1024, 1) if m else None,
                "hwm_mb": round(m[1] / 1024, 1) if m else None,
                "held_mb": round(st["inflated_held"] / MiB, 2) if st else None,
                "conns": st["connections"] if st else None,
                "closed_ws": st["closed_websockets"] if st else None})
    return st


def endcounts(socks):
    return dict(collections.Counter(s.end or "waiting" for s in socks).most_common())


def run_many(p, tag):
    env = {"MAX_MSG": str(p["max_msg"]), "RECV_BUF": str(p["recv_buf"]), "NO_ECHO": "1"}
    if p["takeover"]:
        env.update({"SNCT": "0", "CNCT": "0"})
    srv = start(tag, env)
    size = p["max_msg"] - 1024
    bomb = bomb_bytes(size)
    if p["frag1"]:
        body = bomb[:p["nbytes"]]
        wire = frame(2, body[:1], fin=False, rsv=4) + b"".join(
            frame(0, body[i:i + 1], fin=False) for i in range(1, len(body)))
    elif p["partial"]:
        wire = frame(2, b"", rsv=4, length=len(bomb), fin=True)[:-4] + b"\0\0\0\0" + bomb[:-p["keep"]]
    else:
        wire = frame(2, bomb, rsv=4) + frame(9, b"p")
    res = {"params": p, "attacker_bytes_per_conn": len(wire), "inflated_per_msg": size}
    socks = []
    for i in range(p["conns"]):
        socks.append(Sock(srv.port, ext="permessage-deflate" if p["takeover"] else NOCTX))
    idle = srv.mem()
    res["idle_rss_mb"] = round(idle[0] / 1024, 1)
    t0 = mono()
    rec = []
    for s in socks:
        s.s.setblocking(False)
    left = {s: memoryview(wire) for s in socks}
    while left and mono() < t0 + 60:
        for s in list(left):
            try:
                n = s.s.send(left[s])
                left[s] = left[s][n:]
            except BlockingIOError:
                pass
            except OSError:
                left[s] = b""
            if not left[s]:
                del left[s]
        for s in socks:
            s.poll()
    res["send_secs"] = round(mono() - t0, 2)
    res["unsent_conns"] = len(left)
    last = 0
    while mono() < t0 + p["secs"]:
        for s in socks:
            if s.end is None:
                s.poll()
        if mono() - last > 0.5:
            last = mono()
            sample(srv, rec, t0)
        if all(s.end is not None for s in socks):
            break
        time.sleep(0.02)
    res["all_ended_secs"] = round(mono() - t0, 1) if all(s.end for s in socks) else None
    res["ends"] = endcounts(socks)
    ts = sorted(s.t_end - t0 for s in socks if s.t_end)
    res["end_time_p50_max"] = [round(ts[len(ts) // 2], 1), round(ts[-1], 1)] if ts else None
    res["stats_before_close"] = sample(srv, rec, t0)
    for i, s in enumerate(socks):
        s.close(rst=p["rst"] and i % 2 == 0)
    time.sleep(3.0)
    res["stats_after_close"] = sample(srv, rec, t0)
    res["samples"] = rec
    res["peak_rss_mb"] = max(x["rss_mb"] or 0 for x in rec)
    res["peak_held_mb"] = max(x["held_mb"] or 0 for x in rec)
    res["hwm_mb"] = rec[-1]["hwm_mb"]
    res["rss_after_mb"] = rec[-1]["rss_mb"]
    res["server_died"] = srv.stop()
    return res


def run_race(p, tag):
    """Sockets send partial bombs, some pause (budget full); then they are
    closed or reset at spread-out moments while paused; held must be 0."""
    env = {"NO_ECHO": "1"}
    srv = start(tag, env)
    bomb = bomb_bytes(16 * MiB - 1024)
    rec = []
    t0 = mono()
    out = {"params": p, "rounds": []}
    for rnd in range(p["rounds"]):
        socks = [Sock(srv.port) for _ in range(p["conns"])]
        wire = frame(2, bomb, rsv=4)
        for s in socks:
            s.s.sendall(wire[:-p["keep"]] if rnd % 2 else wire)
        time.sleep(p["wait"])
        st = sample(srv, rec, t0)
        random.shuffle(socks)
        for i, s in enumerate(socks):
            s.close(rst=(i % 2 == 0))
            if i % 7 == 0:
                time.sleep(0.01)
        time.sleep(1.5)
        st2 = sample(srv, rec, t0)
        out["rounds"].append({"held_mb_paused": rec[-2]["held_mb"], "held_mb_after": rec[-1]["held_mb"],
                              "conns_after": st2 and st2["connections"]})
    time.sleep(2.5)
    out["final"] = sample(srv, rec, t0)
    out["samples"] = rec
    out["server_died"] = srv.stop()
    return out


def run_dos(p, tag):
    env = {"NO_ECHO": "0"}
    srv = start(tag, env)
    ctl = start(tag + ".control", env)
    bomb = bomb_bytes(p["bsize"])
    head = frame(2, b"", rsv=4, fin=True, length=4 * MiB)  # a long message announced
    t0 = mono()
    sent = 0
    opened = 0
    ends = collections.Counter()

    def holder():
        nonlocal sent, opened
        s = Sock(srv.port)
        w = head + bomb + b"\x00\x00\xff\xff"
        s.s.sendall(w)
        sent += len(w)
        opened += 1
        s.s.setblocking(False)
        return s

    holders = [holder() for _ in range(p["holders"])]
    time.sleep(p["settle"])
    ps = probes(srv.port, tag, p["n"], p["interval"])
    cps = probes(ctl.port, tag + ".control", p["n"], p["interval"])
    rec = []
    last_s = last_t = mono()
    chunk = empty_stored(max(1, p["rate"] // 5 // 10))  # ~rate B/s in 10 sends a second
    while any(x.poll() is None for _, _, x in ps):
        now = mono()
        if now - last_t >= 0.1:
            last_t = now
            for s in holders:
                try:
                    s.s.send(chunk)
                    sent += len(chunk)
                except OSError:
                    pass
        for s in holders:
            s.poll()
        dead = [s for s in holders if s.end]
        for s in dead:
            ends[s.end] += 1
            holders.remove(s)
            s.close()
            if p["refill"]:
                holders.append(holder())
        if now - last_s > 1.0:
            last_s = now
            sample(srv, rec, t0)
        time.sleep(0.01)
    secs = mono() - t0
    r = {"params": p, "attack_secs": round(secs, 1), "attacker_bytes": sent,
         "attacker_bytes_per_s": round(sent / secs), "holders_opened": opened,
         "holder_ends": dict(ends), "probes": probe_results(ps), "control": probe_results(cps),
         "samples": rec, "mon": srv.mon.window(t0, mono()), "control_mon": ctl.mon.window(t0, mono())}
    for s in holders:
        s.close()
    time.sleep(2.5)
    r["after_close"] = stats(srv)
    r["server_died"] = srv.stop()
    ctl.stop()
    return r


def run_slowprog(p, tag):
    env = {"LAZY_MS": str(p["lazy_ms"])}
    srv = start(tag, env)
    bomb = bomb_bytes(p["size"])
    socks = [Sock(srv.port) for _ in range(p["conns"])]
    t0 = mono()
    for s in socks:
        s.s.sendall((frame(2, bomb, rsv=4)) * p["msgs"])
        s.s.setblocking(False)
    ps = probes(srv.port, tag, p["n"], p["interval"])
    rec = []
    got = collections.Counter()
    last = 0
    while any(x.poll() is None for _, _, x in ps):
        for s in socks:
            s.poll()
            while s.frames:
                f = s.frames.pop()
                got[f[2]] += 1
        if mono() - last > 1:
            last = mono()
            sample(srv, rec, t0)
        time.sleep(0.02)
    r = {"params": p, "echoes_back": dict(got), "ends": endcounts(socks), "probes": probe_results(ps),
         "samples": rec, "mon": srv.mon.window(t0, mono())}
    for s in socks:
        s.close()
    time.sleep(2.5)
    r["after_close"] = stats(srv)
    r["server_died"] = srv.stop()
    return r


def run_context(p, tag):
    takeover = p["takeover"]
    env = {"MAX_INFLATED": str(p["budget"])}
    if takeover:
        env.update({"SNCT": "0", "CNCT": "0"})
    srv = start(tag, env)
    ext = "permessage-deflate; client_max_window_bits" if takeover else NOCTX
    s = Sock(srv.port, ext=ext)
    res = {"params": p, "agreed": s.ext}
    s.s.settimeout(30)
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    dec = zlib.decompressobj(-15)
    rnd = random.Random(7)
    press = []
    bomb = bomb_bytes(16 * MiB - 1024)
    # pressers: partial bombs that keep most of the budget held
    for _ in range(p["press"]):
        x = Sock(srv.port)
        x.s.sendall(frame(2, b"", rsv=4, length=4 * MiB) + bomb + b"\x00\x00\xff\xff")
        press.append(x)
    time.sleep(1.0)
    res["held_with_press"] = stats(srv)
    kinds = collections.Counter()
    bad = []
    for i in range(p["msgs"]):
        k = ["text", "random", "zeros", "random_small", "mixed"][i % 5]
        if k == "text":
            data = (f"message {i} " * rnd.randint(5, 200)).encode()
        elif k == "random":
            data = rnd.randbytes(rnd.randint(1000, 300000))
        elif k == "zeros":
            data = bytes(rnd.randint(1, 3) * MiB)
        elif k == "random_small":
            data = rnd.randbytes(rnd.randint(65, 400))
        else:
            data = rnd.randbytes(5000) + b"a" * 100000 + rnd.randbytes(5000)
        if takeover:
            pl = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
        else:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            pl = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
        s.s.sendall(frame(2, pl[:-4], rsv=4))
        # wait for the echo
        end = mono() + 30
        echo = None
        while echo is None and mono() < end:
            try:
                d = s.s.recv(1 << 20)
            except socket.timeout:
                break
            if not d:
                echo = ("EOF",)
                break
            for fin, rsv, op, epl in s.r.feed(d):
                if op == 8:
                    echo = ("close", close_code_of(epl))
                elif op == 2:
                    try:
                        if rsv & 4:
                            out = (dec if takeover else zlib.decompressobj(-15)).decompress(epl + b"\0\0\xff\xff")
                        else:
                            out = epl
                    except zlib.error as e:
                        out = f"zlib error {e}"
                    echo = ("rsv1" if rsv & 4 else "plain", out == data)
        kinds[(k, echo[0] if echo else "timeout", echo[1] if echo and len(echo) > 1 else None)] += 1
        if not echo or echo[0] in ("EOF", "close") or echo[1] is not True:
            bad.append((i, k, echo))
            if echo and echo[0] in ("EOF", "close"):
                break
    res["echoes"] = {f"{a}/{b}/{c}": n for (a, b, c), n in sorted(kinds.items())}
    res["bad"] = bad[:10]
    res["press_ends"] = [x.end for x in press]
    for x in press:
        x.poll()
        x.close()
    s.close()
    time.sleep(2.5)
    res["after_close"] = stats(srv)
    res["server_died"] = srv.stop()
    return res


DEFAULTS = {
    "many": (run_many, dict(conns=100, partial=False, keep=64, secs=60.0, rst=False,
                            max_msg=16 * MiB, recv_buf=4 * MiB, frag1=False, nbytes=4096,
                            takeover=False)),
    "race": (run_race, dict(conns=40, rounds=4, keep=64, wait=1.0)),
    "dos": (run_dos, dict(holders=5, bsize=16 * MiB - 1024, rate=1200, refill=True, settle=2.0, n=100, interval=0.1)),
    "slowprog": (run_slowprog, dict(lazy_ms=3000, conns=8, msgs=2, size=8 * MiB, n=100,
                                    interval=0.1)),
    "context": (run_context, dict(takeover=True, msgs=60, press=3, budget=64 * MiB)),
}


def main():
    raise_fd_limit()
    name = sys.argv[1]
    fn, d = DEFAULTS[name]
    p = dict(d)
    tag = name
    for kv in sys.argv[2:]:
        k, _, v = kv.partition("=")
        if k == "tag":
            tag = v
            continue
        t = type(p[k])
        p[k] = (v.lower() in ("1", "true")) if t is bool else t(v)
    r = fn(p, tag)
    path = os.path.join(RESULTS, f"recheck_{tag}.json")
    with open(path, "w") as f:
        json.dump(r, f, indent=1, default=str)
    short = {k: v for k, v in r.items() if k not in ("samples",)}
    print(json.dumps(short, indent=1, default=str)[:6000])


if __name__ == "__main__":
    main()
