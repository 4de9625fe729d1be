"""The attacks. Each is a function (target, params) -> notes, bounded in time
and in connections; attack/run.py measures the server around it."""
import collections
import errno
import os
import random
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import lib
from lib import mono, ws_frame, WsReader, summarize_times

REGISTRY = {}


def attack(doc, baseline=5.0, after=5.0, target=None, prepare=None, **params):
    def deco(fn):
        spec = dict(fn=fn, doc=doc, baseline=baseline, after=after,
                    target=target or {"mode": "demo"}, params=params)
        if prepare:
            spec["prepare"] = prepare
        REGISTRY[fn.__name__] = spec
        return fn
    return deco


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

class Flood:
    """Keeps `n` non-blocking connections writing `payload()` as fast as the
    kernel takes it (and reading whatever comes back), reconnecting when the
    server closes one. Records, per connection: bytes sent, first status seen,
    when it came, when the connection ended and how."""

    def __init__(self, port, n, opener, chunk, reconnect=True, read=True, path_bytes=b""):
        self.port, self.n, self.opener, self.chunk = port, n, opener, chunk
        self.reconnect, self.read = reconnect, read
        self.sel = selectors.DefaultSelector()
        self.ended = []  # dicts
        self.live = 0
        self.sent_total = 0
        self.recv_total = 0

    def _open(self):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        st = {"t0": mono(), "sent": 0, "buf": b"", "status": None, "t_status": None,
              "pending": self.opener(), "recv": 0}
        self.sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
        self.live += 1

    def _end(self, s, st, how):
        st["how"] = how
        st["t_end"] = mono()
        st.pop("pending", None)
        st.pop("buf", None)
        self.ended.append(st)
        self.sel.unregister(s)
        s.close()
        self.live -= 1

    def run(self, duration):
        for _ in range(self.n):
            self._open()
        end = mono() + duration
        while mono() < end:
            for key, ev in self.sel.select(0.05):
                s, st = key.fileobj, key.data
                if ev & selectors.EVENT_READ:
                    try:
                        d = s.recv(1 << 16)
                    except (ConnectionResetError, BrokenPipeError):
                        self._end(s, st, "rst")
                        continue
                    except BlockingIOError:
                        d = None
                    if d == b"":
                        self._end(s, st, "eof")
                        continue
                    if d:
                        st["recv"] += len(d)
                        self.recv_total += len(d)
                        if st["status"] is None:
                            st["buf"] += d
                            code = lib.status_of(st["buf"])
                            if code is not None:
                                st["status"] = code
                                st["t_status"] = mono()
                                st["sent_at_status"] = st["sent"]
                if ev & selectors.EVENT_WRITE:
                    if not st["pending"]:
                        st["pending"] = self.chunk
                    try:
                        k = s.send(st["pending"])
                        st["pending"] = st["pending"][k:]
                        st["sent"] += k
                        self.sent_total += k
                    except (ConnectionResetError, BrokenPipeError):
                        self._end(s, st, "rst")
                        continue
                    except BlockingIOError:
                        pass
                    except OSError as e:
                        self._end(s, st, f"err{e.errno}")
                        continue
            if self.reconnect:
                while self.live < self.n and mono() < end:
                    self._open()
        for key in list(self.sel.get_map().values()):
            self._end(key.fileobj, key.data, "ours")

    def report(self):
        ended = [e for e in self.ended if e["how"] != "ours"]
        statuses = collections.Counter(e["status"] for e in self.ended)
        hows = collections.Counter(e["how"] for e in self.ended)
        sent_at = [e["sent_at_status"] for e in self.ended if "sent_at_status" in e]
        life = [e["t_end"] - e["t0"] for e in ended]
        linger = [e["t_end"] - e["t_status"] for e in ended if e["t_status"]]
        return {
            "connections": len(self.ended),
            "closed_by_server": len(ended),
            "statuses": dict(statuses),
            "ends": dict(hows),
            "bytes_sent_total": self.sent_total,
            "bytes_sent_before_status": summarize_times(sent_at) if sent_at else None,
            "conn_lifetime_s": summarize_times(life),
            "status_to_close_s": summarize_times(linger),
        }


def open_many(port, n, first=b"", rcvbuf=None, timeout=5.0, pace=0):
    """Opens n blocking sockets (sending `first` on each); returns them."""
    socks = []
    for i in range(n):
        try:
            s = lib.connect(port, timeout, rcvbuf=rcvbuf)
            if first:
                s.sendall(first)
            socks.append(s)
        except OSError as e:
            print(f"open_many: {i}: {e}", file=sys.stderr)
            break
        if pace and i % pace == pace - 1:
            time.sleep(0.001)
    return socks


def watch_closes(socks, duration, t_ref, trickle=None, trickle_every=None, on_data=None,
                 stop_at_all_closed=True):
    """Waits up to `duration`, reading every socket, recording when each was
    closed by the server and the first status line / bytes it got.
    `trickle(i, sock)` is called for every open socket every `trickle_every`
    seconds. Returns per-socket results."""
    sel = selectors.DefaultSelector()
    info = {}
    for i, s in enumerate(socks):
        s.setblocking(False)
        info[s] = {"i": i, "data": b"", "t_first": None, "t_end": None, "how": None}
        sel.register(s, selectors.EVENT_READ, info[s])
    end = mono() + duration
    next_trickle = mono() + (trickle_every or 1e9)
    open_n = len(socks)
    while mono() < end and (open_n > 0 or not stop_at_all_closed):
        if trickle and mono() >= next_trickle:
            for s, st in info.items():
                if st["t_end"] is None:
                    try:
                        trickle(st["i"], s)
                    except (BlockingIOError, ConnectionError, OSError):
                        pass
            next_trickle += trickle_every
        for key, _ in sel.select(0.1):
            s, st = key.fileobj, key.data
            try:
                d = s.recv(65536)
            except BlockingIOError:
                continue
            except (ConnectionResetError, OSError):
                d = None
            if d:
                if st["t_first"] is None:
                    st["t_first"] = mono()
                if len(st["data"]) < 4096:
                    st["data"] += d[:4096]
                if on_data:
                    on_data(st, d)
                continue
            st["t_end"] = mono()
            st["how"] = "eof" if d == b"" else "rst"
            sel.unregister(s)
            open_n -= 1
    results = list(info.values())
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    return results


def close_summary(results, t_ref):
    ends = [r["t_end"] for r in results if r["t_end"] is not None]
    firsts = [r["t_first"] for r in results if r["t_first"] is not None]
    statuses = collections.Counter(lib.status_of(r["data"]) for r in results)
    return {
        "sockets": len(results),
        "closed_by_server": len(ends),
        "still_open_at_end": len(results) - len(ends),
        "close_time_s": summarize_times(ends, t_ref),
        "first_byte_time_s": summarize_times(firsts, t_ref),
        "statuses": {str(k): v for k, v in statuses.items()},
    }


# --------------------------------------------------------------------------
# 0. Control
# --------------------------------------------------------------------------

@attack("no attack (measures the harness: two quiet phases)", duration=10.0)
def idle(t, p):
    time.sleep(p["duration"])
    return {}


# --------------------------------------------------------------------------
# 1. Floods
# --------------------------------------------------------------------------

@attack("16 connections sending only CRLF at full speed (reconnecting)", conns=16, duration=30.0)
def crlf_flood(t, p):
    f = Flood(t.port, p["conns"], lambda: b"", b"\r\n" * 32768)
    f.run(p["duration"])
    return f.report()


@attack("1,000,000 pipelined GETs on one connection, read slowly then fast", requests=1_000_000,
        slow_s=30.0, fast_s=30.0, slow_rate=32768)
def pipeline_million(t, p):
    req = b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n"
    s = lib.connect(t.port)
    total = p["requests"]
    state = {"sent_reqs": 0, "err": None}
    stop = threading.Event()

    s.settimeout(None)  # blocking: the writer thread sendall()s, the reader select()s
    import select as _select

    def recv_upto(n, wait=0.5):
        r, _, _ = _select.select([s], [], [], wait)
        return s.recv(n) if r else b""

    def writer():
        batch = req * 2000
        try:
            while state["sent_reqs"] < total and not stop.is_set():
                n = min(2000, total - state["sent_reqs"])
                s.sendall(batch if n == 2000 else req * n)
                state["sent_reqs"] += n
        except OSError as e:
            state["err"] = str(e)

    w = threading.Thread(target=writer, daemon=True)
    w.start()
    got = 0
    marker = b"HTTP/1.1 200"
    tail = b""
    samples = []
    t_end_slow = mono() + p["slow_s"]
    while mono() < t_end_slow:
        d = recv_upto(p["slow_rate"] // 10)
        chunk = tail + d
        got += chunk.count(marker)
        tail = chunk[-16:]
        time.sleep(0.1)
        samples.append((round(mono() - t.marks["attack"], 1), got, state["sent_reqs"], t.rss()))
    slow_got = got
    slow_sent = state["sent_reqs"]
    t_fast = mono()
    t_end = t_fast + p["fast_s"]
    while mono() < t_end and got < total:
        d = recv_upto(1 << 20)
        if not d:
            continue
        chunk = tail + d
        got += chunk.count(marker)
        tail = chunk[-16:]
    fast_secs = mono() - t_fast
    stop.set()
    s.shutdown(socket.SHUT_RDWR)
    s.close()
    return {
        "slow_phase": {"responses_read": slow_got, "requests_sent": slow_sent,
                       "read_rate_Bps": p["slow_rate"]},
        "fast_phase": {"responses_read": got - slow_got, "secs": round(fast_secs, 1),
                       "responses_per_s": round((got - slow_got) / fast_secs)},
        "requests_sent_total": state["sent_reqs"],
        "writer_error": state["err"],
        "samples_t_got_sent_rssKB": samples[::30],
    }


def ws_reader_loop(socks, stop, stats, read=True):
    """Reads (and parses) every socket until `stop`; records close codes/times."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        st = {"r": WsReader(), "bytes": 0, "t_end": None, "how": None}
        stats.append(st)
        sel.register(s, selectors.EVENT_READ, st)
    while not stop.is_set() and sel.get_map():
        for key, _ in sel.select(0.1):
            st = key.data
            try:
                d = key.fileobj.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                d = None
            if d:
                st["bytes"] += len(d)
                st["r"].feed(d)
                continue
            st["t_end"] = mono()
            st["how"] = "eof" if d == b"" else "rst"
            sel.unregister(key.fileobj)


def ws_summary(stats, t_ref):
    return {
        "sockets": len(stats),
        "closed": sum(1 for s in stats if s["t_end"]),
        "close_time_s": summarize_times([s["t_end"] for s in stats if s["t_end"]], t_ref),
        "close_codes": dict(collections.Counter(s["r"].close_code for s in stats)),
        "ends": dict(collections.Counter(s["how"] for s in stats)),
        "frames_received": sum(s["r"].frames for s in stats),
        "bytes_received": sum(s["bytes"] for s in stats),
    }


def ws_blast(t, p, frame_bytes, conns, duration, read=True, path="/ws/echo", rcvbuf=None):
    """`conns` WebSockets each sending `frame_bytes` repeatedly, as fast as the
    kernel takes it, for `duration`; optionally reading everything back."""
    socks = [lib.ws_connect(t.port, path, rcvbuf=rcvbuf)[0] for _ in range(conns)]
    t0 = mono()
    stop = threading.Event()
    stats = []
    rt = None
    if read:
        rt = threading.Thread(target=ws_reader_loop, args=(socks, stop, stats), daemon=True)
        rt.start()
    batch = frame_bytes * max(1, 65536 // len(frame_bytes))
    sent = [0] * conns
    blocked_since = [None] * conns
    sel = selectors.DefaultSelector()
    wsocks = []
    for i, s in enumerate(socks):
        w = s.dup()
        w.setblocking(False)
        wsocks.append(w)
        sel.register(w, selectors.EVENT_WRITE, i)
    pend = [batch] * conns
    end = t0 + duration
    dead = set()
    while mono() < end and len(dead) < conns:
        for key, _ in sel.select(0.1):
            i = key.data
            try:
                k = key.fileobj.send(pend[i])
                sent[i] += k
                pend[i] = pend[i][k:] or batch
                blocked_since[i] = None
            except BlockingIOError:
                pass
            except OSError:
                dead.add(i)
                sel.unregister(key.fileobj)
    stop.set()
    if rt:
        rt.join(2)
    for w in wsocks:
        w.close()
    for s in socks:
        s.close()
    out = {"sent_bytes_per_conn": summarize_times(sent), "sender_errors": len(dead),
           "duration": round(mono() - t0, 1)}
    if read:
        out["read"] = ws_summary(stats, t0)
    return out


@attack("WebSocket ping flood on /ws/echo (4 conns, 125-byte pings, reading the pongs)",
        conns=4, duration=30.0)
def ws_ping_flood(t, p):
    return ws_blast(t, p, ws_frame(0x9, b"p" * 125, mask=b"abcd"), p["conns"], p["duration"])


@attack("WebSocket ping flood on /ws/echo, never reading the pongs (send bound + send timeout)",
        after=10.0, conns=4, duration=110.0)
def ws_ping_noread(t, p):
    socks = [lib.ws_connect(t.port, "/ws/echo", rcvbuf=4096)[0] for _ in range(p["conns"])]
    ping = ws_frame(0x9, b"p" * 125, mask=b"abcd") * 500
    t0 = mono()
    sent = [0] * len(socks)
    stalled_at = [None] * len(socks)
    closed_at = [None] * len(socks)
    pend = [ping] * len(socks)  # a partial send keeps its rest: frames stay whole
    for s in socks:
        s.setblocking(False)
    samples = []
    while mono() < t0 + p["duration"]:
        progress = False
        for i, s in enumerate(socks):
            if closed_at[i]:
                continue
            try:
                k = s.send(pend[i])
                sent[i] += k
                pend[i] = pend[i][k:] or ping
                stalled_at[i] = None
                progress = True
            except BlockingIOError:
                if stalled_at[i] is None:
                    stalled_at[i] = mono()
            except OSError:
                closed_at[i] = mono()
            # a closed socket shows as readable EOF/RST once the server gives up
            if not closed_at[i]:
                try:
                    d = s.recv(1, socket.MSG_PEEK)
                    if d == b"":
                        closed_at[i] = mono()
                except BlockingIOError:
                    pass
                except OSError:
                    closed_at[i] = mono()
        if len(samples) == 0 or mono() - samples[-1][0] - t0 > 5:
            samples.append((round(mono() - t0, 1), t.rss(), t.fds(), sum(sent)))
        if not progress:
            time.sleep(0.05)
    for s in socks:
        s.close()
    return {
        "sent_bytes": sent,
        "stalled_since_s": [round(x - t0, 1) if x else None for x in stalled_at],
        "closed_at_s": [round(x - t0, 1) if x else None for x in closed_at],
        "samples_t_rssKB_fds_sent": samples,
    }


@attack("tiny WebSocket fragments on /ws/echo (4 conns, empty continuation frames, reading)",
        conns=4, duration=30.0)
def ws_fragment_flood(t, p):
    # Each connection: one opening frame, then empty continuations for ever.
    cont = ws_frame(0x0, b"", fin=False, mask=b"abcd")
    res = {}
    socks = []
    for _ in range(p["conns"]):
        s, _ = lib.ws_connect(t.port)
        s.sendall(ws_frame(0x1, b"", fin=False, mask=b"abcd"))
        socks.append(s)
    t0 = mono()
    stop = threading.Event()
    stats = []
    rt = threading.Thread(target=ws_reader_loop, args=(socks, stop, stats), daemon=True)
    rt.start()
    batch = cont * 10000
    sent = [0] * len(socks)
    pend = [batch] * len(socks)
    wsocks = [s.dup() for s in socks]
    for w in wsocks:
        w.setblocking(False)
    dead = set()
    while mono() < t0 + p["duration"] and len(dead) < len(socks):
        progressed = False
        for i, w in enumerate(wsocks):
            if i in dead:
                continue
            try:
                k = w.send(pend[i])
                sent[i] += k
                pend[i] = pend[i][k:] or batch
                progressed = True
            except BlockingIOError:
                pass
            except OSError:
                dead.add(i)
        if not progressed:
            time.sleep(0.001)
    time.sleep(1)
    stop.set()
    rt.join(2)
    for w in wsocks:
        w.close()
    for s in socks:
        s.close()
    res["fragments_sent_per_conn"] = [x // len(cont) for x in sent]
    res["read"] = ws_summary(stats, t0)
    return res


@attack("flood of empty WebSocket messages on /ws/echo (4 conns, each echoed, reading)",
        conns=4, duration=30.0)
def ws_tiny_flood(t, p):
    return ws_blast(t, p, ws_frame(0x1, b"", mask=b"abcd"), p["conns"], p["duration"])


@attack("chat broadcast storm: N /ws/chat viewers reading at full speed, 1 sender of empty lines",
        viewers=50, duration=30.0, size=0)
def chat_storm(t, p):
    viewers = [lib.ws_connect(t.port, "/ws/chat")[0] for _ in range(p["viewers"])]
    sender, _ = lib.ws_connect(t.port, "/ws/chat")
    t0 = mono()
    stop = threading.Event()
    stats = []
    rt = threading.Thread(target=ws_reader_loop, args=(viewers + [sender], stop, stats),
                          daemon=True)
    rt.start()
    frame = ws_frame(0x1, b"x" * p["size"], mask=b"abcd")
    batch = frame * max(1, 65536 // len(frame))
    w = sender.dup()
    w.settimeout(10.0)
    sent = 0
    err = None
    samples = []
    while mono() < t0 + p["duration"]:
        try:
            w.sendall(batch)  # whole batches only: a torn frame would be a protocol error
            sent += len(batch)
        except OSError as e:
            err = str(e)
            break
        if not samples or mono() - t0 - samples[-1][0] > 5:
            closed = sum(1 for s in stats[:-1] if s["t_end"])
            samples.append((round(mono() - t0, 1), closed, t.rss()))
    time.sleep(1)
    stop.set()
    rt.join(2)
    w.close()
    for s in viewers + [sender]:
        s.close()
    vstats = stats[:-1]
    return {
        "messages_sent": sent // len(frame),
        "sender_error": err,
        "viewers": ws_summary(vstats, t0),
        "sender": ws_summary(stats[-1:], t0),
        "chat_lines_per_viewer": summarize_times([s["r"].texts for s in vstats]),
        "samples_t_viewersClosed_rssKB": samples,
    }


@attack("pipelined GETs on N connections, each read at a steady rate below what the server "
        "produces: the write buffer is never empty, so it is never compacted",
        after=8.0, conns=4, duration=45.0, rate=8_000_000, rcvbuf=65536)
def pipeline_steady_reader(t, p):
    import select as _select
    req = b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n"
    # A small receive buffer: the kernel cannot take all 256 KiB the server
    # keeps pending, so the server's write buffer never drains to empty.
    socks = [lib.connect(t.port, rcvbuf=p["rcvbuf"] or None) for _ in range(p["conns"])]
    for s in socks:
        s.settimeout(None)
    stop = threading.Event()
    sent = [0] * len(socks)

    def writer(i, s):
        batch = req * 2000
        try:
            while not stop.is_set():
                s.sendall(batch)
                sent[i] += 2000
        except OSError:
            pass

    for i, s in enumerate(socks):
        threading.Thread(target=writer, args=(i, s), daemon=True).start()
    got = [0] * len(socks)
    t0 = mono()
    per_tick = p["rate"] // 10
    samples = []
    while mono() < t0 + p["duration"]:
        tick = mono()
        for i, s in enumerate(socks):
            want = per_tick
            while want > 0:
                r, _, _ = _select.select([s], [], [], 0.05)
                if not r:
                    break
                d = s.recv(min(want, 1 << 20))
                if not d:
                    break
                got[i] += len(d)
                want -= len(d)
        if not samples or mono() - t0 - samples[-1][0] >= 5:
            samples.append((round(mono() - t0, 1), t.rss(), sum(got)))
        time.sleep(max(0.0, tick + 0.1 - mono()))
    stop.set()
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
    return {
        "bytes_read_per_conn": got,
        "requests_sent_per_conn": sent,
        "read_rate_per_conn_Bps": p["rate"],
        "samples_t_rssKB_bytesRead": samples,
    }


@attack("WebSocket echo at full speed, reading every echo (what a benchmark client does): "
        "N conns sending SIZE-byte binary messages", after=8.0, conns=1, duration=30.0,
        size=16384)
def ws_echo_steady(t, p):
    out = ws_blast(t, p, ws_frame(0x2, b"e" * p["size"], mask=b"abcd"), p["conns"],
                   p["duration"])
    return out


@attack("ping flood on one /ws/echo connection whose pongs are read at a steady RATE "
        "(bytes/s) below the ping rate: pending pongs stay at the send bound, and the write "
        "buffer grows by every byte the client reads", after=8.0, conns=1, duration=40.0,
        rate=10_000_000, path="/ws/echo")
def ws_ping_steady(t, p):
    import select as _select
    socks = [lib.ws_connect(t.port, p["path"])[0] for _ in range(p["conns"])]
    ping = ws_frame(0x9, b"p" * 125, mask=b"abcd") * 500
    stop = threading.Event()
    sent = [0] * len(socks)
    for s in socks:
        s.settimeout(None)

    def writer(i, s):
        try:
            while not stop.is_set():
                s.sendall(ping)
                sent[i] += len(ping)
        except OSError:
            pass

    for i, s in enumerate(socks):
        threading.Thread(target=writer, args=(i, s), daemon=True).start()
    got = [0] * len(socks)
    eof = [None] * len(socks)
    t0 = mono()
    per_tick = p["rate"] // 10
    samples = []
    while mono() < t0 + p["duration"]:
        tick = mono()
        for i, s in enumerate(socks):
            want = per_tick
            while want > 0 and eof[i] is None:
                r, _, _ = _select.select([s], [], [], 0.02)
                if not r:
                    break
                try:
                    d = s.recv(min(want, 1 << 20))
                except OSError:
                    d = b""
                if not d:
                    eof[i] = round(mono() - t0, 1)
                    break
                got[i] += len(d)
                want -= len(d)
        if not samples or mono() - t0 - samples[-1][0] >= 5:
            samples.append((round(mono() - t0, 1), t.rss(), sum(got), sum(sent)))
        time.sleep(max(0.0, tick + 0.1 - mono()))
    stop.set()
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
    return {
        "pong_bytes_read_per_conn": got,
        "ping_bytes_sent_per_conn": sent,
        "server_closed_at_s": eof,
        "samples_t_rssKB_read_sent": samples,
    }


# --------------------------------------------------------------------------
# 2. Stalls
# --------------------------------------------------------------------------

@attack("slowloris: N connections send a request line and Host, then one header byte every "
        "EVERY s (never finishing the head)", after=5.0, conns=2000, every=5.0, duration=45.0)
def slowloris(t, p):
    t0 = mono()
    socks = open_many(t.port, p["conns"], b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    opened = mono() - t0
    rss_open = t.rss()

    def trickle(i, s):
        s.send(b"a")

    res = watch_closes(socks, p["duration"] - opened, t0, trickle, p["every"])
    out = close_summary(res, t0)
    out["open_secs"] = round(opened, 1)
    out["server_rss_kB_all_open"] = rss_open
    return out


@attack("slowloris with big heads: N connections each send ~30 KB of valid header lines, then "
        "trickle one byte per connection round-robin as fast as possible (each byte makes the "
        "server copy and re-parse the whole head)", after=5.0, conns=300, prefix=30000,
        duration=40.0, budget=2600)
def slowloris_bigheads(t, p):
    line = b"X-Pad-%03d: " + b"v" * 300 + b"\r\n"
    head = b"GET /api/status HTTP/1.1\r\nHost: x\r\n"
    k = 0
    while len(head) < p["prefix"]:
        head += line % k
        k += 1
    head += b"X-Trickle: "
    t0 = mono()
    socks = open_many(t.port, p["conns"], head if p["prefix"] else head[:40])
    opened = mono() - t0
    for s in socks:
        s.setblocking(False)
    sent = [0] * len(socks)
    closed = [None] * len(socks)
    rounds = 0
    while mono() < t0 + p["duration"]:
        any_left = False
        for i, s in enumerate(socks):
            if closed[i] is not None or sent[i] >= p["budget"]:
                continue
            any_left = True
            try:
                s.send(b"a")
                sent[i] += 1
            except BlockingIOError:
                pass
            except OSError:
                closed[i] = mono() - t0
        rounds += 1
        if not any_left:
            time.sleep(0.1)
    res = watch_closes(socks, 0.5, t0)
    statuses = collections.Counter(lib.status_of(r["data"]) for r in res)
    return {"head_bytes_initial": len(head) if p["prefix"] else 40, "open_secs": round(opened, 1),
            "trickled_bytes_total": sum(sent), "client_rounds": rounds,
            "statuses_seen_at_end": {str(k): v for k, v in statuses.items()}}


@attack("slow bodies: N POSTs with Content-Length: 1000000, one body byte every EVERY s",
        after=5.0, conns=500, every=5.0, duration=80.0, path="/api/color")
def slow_body(t, p):
    t0 = mono()
    head = (f"POST {p['path']} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: 1000000\r\n\r\n{{").encode()
    socks = open_many(t.port, p["conns"], head)
    opened = mono() - t0

    def trickle(i, s):
        s.send(b" ")

    res = watch_closes(socks, p["duration"] - opened, t0, trickle, p["every"])
    out = close_summary(res, t0)
    out["open_secs"] = round(opened, 1)
    return out


def ws_watch(t, socks, duration, t0, trickle=None, every=None):
    """Reads WebSocket sockets, recording for each the first ping, the close
    frame (code) and the end of the connection."""
    def on_data(st, d):
        r = st.setdefault("ws", WsReader())
        for op, payload in r.feed(d):
            if op == 9 and "t_ping" not in st:
                st["t_ping"] = mono()
            if op == 8 and "t_close" not in st:
                st["t_close"] = mono()
                st["code"] = r.close_code

    res = watch_closes(socks, duration, t0, trickle, every, on_data=on_data)
    return ws_res_summary(res, t0)


def ws_res_summary(res, t0):
    return {
        "sockets": len(res),
        "pinged_at_s": summarize_times([r["t_ping"] for r in res if "t_ping" in r], t0),
        "close_frame_at_s": summarize_times([r["t_close"] for r in res if "t_close" in r], t0),
        "close_codes": {str(k): v for k, v in
                        collections.Counter(r.get("code") for r in res).items()},
        "connection_end_at_s": summarize_times([r["t_end"] for r in res if r["t_end"]], t0),
        "still_open_at_end": sum(1 for r in res if r["t_end"] is None),
    }


@attack("WebSocket handshake then silence (N conns on /ws/echo): expect a ping at 30 s and "
        "close 1001 at 60 s", after=5.0, conns=1000, duration=75.0)
def ws_silent(t, p):
    t0 = mono()
    socks = []
    for _ in range(p["conns"]):
        s, _ = lib.ws_connect(t.port)
        socks.append(s)
    opened = mono() - t0
    rss = t.rss()
    out = ws_watch(t, socks, p["duration"] - opened, t0)
    out["open_secs"] = round(opened, 1)
    out["server_rss_kB_all_open"] = rss
    return out


@attack("half a WebSocket frame then silence, three groups of N on /ws/echo: (A) 2 header "
        "bytes; (B) a header announcing a 16 MiB binary frame + 1 payload byte; (C) as B, "
        "then one more payload byte every 20 s", after=5.0, conns=300, duration=115.0)
def ws_half_frame(t, p):
    t0 = mono()
    rss0 = t.rss()
    a = []
    for _ in range(p["conns"]):
        s, _ = lib.ws_connect(t.port)
        s.sendall(b"\x82\xff")
        a.append(s)
    time.sleep(1)
    rss_a = t.rss()
    big = ws_frame(0x2, b"", mask=b"abcd", length=16 << 20) + b"x"
    b = []
    for _ in range(p["conns"]):
        s, _ = lib.ws_connect(t.port)
        s.sendall(big)
        b.append(s)
    time.sleep(1)
    rss_b = t.rss()
    c = []
    for _ in range(p["conns"]):
        s, _ = lib.ws_connect(t.port)
        s.sendall(big)
        c.append(s)
    time.sleep(1)
    rss_c = t.rss()
    opened = mono() - t0
    n = len(a)

    def trickle(i, s):
        if i >= 2 * n:
            s.send(b"y")

    def on_data(st, d):
        r = st.setdefault("ws", WsReader())
        for op, payload in r.feed(d):
            if op == 9 and "t_ping" not in st:
                st["t_ping"] = mono()
            if op == 8 and "t_close" not in st:
                st["t_close"] = mono()
                st["code"] = r.close_code

    res = watch_closes(a + b + c, p["duration"] - opened, t0, trickle, 20.0, on_data=on_data)
    return {
        "rss_kB": {"before": rss0, "after_A": rss_a, "after_B": rss_b, "after_C": rss_c},
        "rss_per_conn_A_bytes": round((rss_a - rss0) * 1024 / n),
        "rss_per_conn_B_bytes": round((rss_b - rss_a) * 1024 / n),
        "A_two_header_bytes": ws_res_summary(res[:n], t0),
        "B_header_plus_1_byte": ws_res_summary(res[n:2 * n], t0),
        "C_trickle_1_byte_per_20s": ws_res_summary(res[2 * n:], t0),
        "open_secs": round(opened, 1),
    }


def make_www(params=None):
    """A directory for `pollserve serve`: a small index and a 256 MiB file."""
    d = "/tmp/pollserve-attack-www"
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "index.html"), "w") as f:
        f.write("<h1>hello</h1>\n")
    big = os.path.join(d, "big.bin")
    if not os.path.exists(big) or os.path.getsize(big) != 256 << 20:
        with open(big, "wb") as f:
            f.truncate(256 << 20)
    return {"serve_dir": d}


SERVE = {"mode": "serve", "probe_path": "/index.html"}


@attack("readers that never read: N /events (SSE) and N /ws/chat clients with a 1 KiB receive "
        "buffer while colour changes are pushed to all of them as fast as one client can POST",
        after=5.0, conns=50, duration=100.0)
def noread_sse_ws(t, p):
    t0 = mono()
    sse = open_many(t.port, p["conns"], b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n", rcvbuf=1024)
    chat = [lib.ws_connect(t.port, "/ws/chat", rcvbuf=1024)[0] for _ in range(p["conns"])]
    rss_open = t.rss()
    stop = threading.Event()
    posts = [0]

    def poster():
        s = lib.connect(t.port)
        body = b'{"color": "#%06x"}'
        try:
            while not stop.is_set():
                batch = b"".join(
                    post(b"/api/color", body % random.randrange(1 << 24), b"application/json",
                         keep_alive=True)
                    for _ in range(50))
                s.sendall(batch)
                got = 0
                while got < 50:
                    d = s.recv(65536)
                    if not d:
                        return
                    got += d.count(b"HTTP/1.1 200")
                posts[0] += 50
        except OSError:
            pass

    th = threading.Thread(target=poster, daemon=True)
    th.start()
    # Closed sockets are seen as a drop of the server's descriptor count;
    # our side never reads, so poll the socket state instead (TCP_INFO state).
    samples = []
    closed_sse = {}
    closed_chat = {}
    while mono() < t0 + p["duration"]:
        for grp, socks, closed in (("sse", sse, closed_sse), ("chat", chat, closed_chat)):
            for i, s in enumerate(socks):
                if i in closed:
                    continue
                st = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
                if st != 1:  # not ESTABLISHED: the server sent FIN or RST
                    closed[i] = mono() - t0
        if not samples or mono() - t0 - samples[-1][0] >= 1:
            samples.append((round(mono() - t0, 1), t.rss(), t.fds(), len(server_conns(t.port)),
                            len(closed_sse), len(closed_chat), posts[0]))
        time.sleep(0.2)
    stop.set()
    for s in sse + chat:
        s.close()
    return {
        "note": "our receive windows are full, so a server FIN may never reach us: the "
                "server's descriptor count (samples) is the authority on closes",
        "colour_posts": posts[0],
        "server_rss_kB_all_open": rss_open,
        "sse_closed_at_s": summarize_times(list(closed_sse.values())),
        "sse_still_open": p["conns"] - len(closed_sse),
        "chat_closed_at_s": summarize_times(list(closed_chat.values())),
        "chat_still_open": p["conns"] - len(closed_chat),
        "estab_drops_t_count": estab_drops([(x[0], x[1], x[2], x[3]) for x in samples]),
        "samples_t_rssKB_fds_estab_sseClosed_chatClosed_posts": samples[::5],
    }


@attack("zero TCP window on a static download: N clients (1 KiB receive buffer) GET a 256 MiB "
        "file and never read; M slow readers read 4 KiB every 5 s", target=SERVE,
        prepare=make_www, after=5.0, conns=20, slow=5, duration=100.0)
def zero_window_static(t, p):
    t0 = mono()
    req = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    zero = open_many(t.port, p["conns"], req, rcvbuf=1024)
    slow = open_many(t.port, p["slow"], req, rcvbuf=4096)
    closed = {}
    slow_got = [0] * len(slow)
    for s in slow:
        s.setblocking(False)
    next_read = mono()
    samples = []
    while mono() < t0 + p["duration"]:
        for i, s in enumerate(zero):
            if i not in closed and s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != 1:
                closed[i] = mono() - t0
        if mono() >= next_read:
            next_read += 5
            for i, s in enumerate(slow):
                if ("slow", i) in closed:
                    continue
                try:
                    d = s.recv(4096)
                    if not d:
                        closed[("slow", i)] = mono() - t0
                    slow_got[i] += len(d)
                except BlockingIOError:
                    pass
                except OSError:
                    closed[("slow", i)] = mono() - t0
        if not samples or mono() - t0 - samples[-1][0] >= 1:
            samples.append((round(mono() - t0, 1), t.rss(), t.fds(), len(server_conns(t.port))))
        time.sleep(0.2)
    for s in zero + slow:
        s.close()
    zc = [v for k, v in closed.items() if not isinstance(k, tuple)]
    sc = [v for k, v in closed.items() if isinstance(k, tuple)]
    return {
        "zero_window_closed_at_s": summarize_times(zc),
        "zero_window_still_open": p["conns"] - len(zc),
        "slow_readers_closed_at_s": summarize_times(sc),
        "slow_readers_still_open": p["slow"] - len(sc),
        "slow_reader_bytes": slow_got,
        "note": "a server FIN cannot pass a full receive window: the server side's established "
                "count (estab_drops) is the authority on when it dropped connections",
        "estab_drops_t_count": estab_drops(samples),
        "samples_t_rssKB_fds_estab": samples[::10],
    }


# --------------------------------------------------------------------------
# 3. Half-sent input
# --------------------------------------------------------------------------

@attack("N connections that send 2 bytes (\"GE\") and stop: memory per connection, 408 at 30 s",
        after=5.0, conns=16000, duration=45.0)
def half_sent(t, p):
    t0 = mono()
    rss0 = t.rss()
    socks = open_many(t.port, p["conns"], b"GE", pace=200)
    opened = mono() - t0
    time.sleep(1.0)
    rss1 = t.rss()
    res = watch_closes(socks, p["duration"] - opened, t0)
    out = close_summary(res, t0)
    out.update(open_secs=round(opened, 1), server_rss_kB_before=rss0, server_rss_kB_all_open=rss1,
               rss_per_conn_bytes=round((rss1 - rss0) * 1024 / max(1, len(socks))))
    return out


@attack("heads and bodies cut short, N of each: (A) mid request line, (B) mid header field, "
        "(C) chunked body cut mid-size, (D) chunked body cut mid-data", after=5.0, conns=300,
        duration=75.0)
def cut_input(t, p):
    t0 = mono()
    cases = {
        "A_mid_request_line": b"GET /api/sta",
        "B_mid_header_field": b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Lo",
        "C_chunk_mid_size": b"POST /api/color HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                            b"\r\nContent-Type: application/json\r\n\r\n1f",
        "D_chunk_mid_data": b"POST /api/color HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                            b"\r\nContent-Type: application/json\r\n\r\n13\r\n{\"col",
    }
    groups = {k: open_many(t.port, p["conns"], v) for k, v in cases.items()}
    opened = mono() - t0
    allsocks = [s for g in groups.values() for s in g]
    res = watch_closes(allsocks, p["duration"] - opened, t0)
    out = {"open_secs": round(opened, 1)}
    i = 0
    for k, g in groups.items():
        out[k] = close_summary(res[i:i + len(g)], t0)
        i += len(g)
    return out


# --------------------------------------------------------------------------
# 4. Vanished peers
# --------------------------------------------------------------------------

CLIENT_DOWNLOAD = r'''
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
n = 0
while True:
    d = s.recv(65536)
    if not d: break
    n += len(d)
    time.sleep(0.01)
'''

CLIENT_WS = r'''
import socket, sys, time, struct
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET " + sys.argv[2].encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
s.recv(4096)
msg = b"hello"
frame = bytes([0x81, 0x80 | len(msg)]) + b"\0\0\0\0" + msg
while True:
    s.sendall(frame)
    s.recv(65536)
    time.sleep(0.05)
'''

CLIENT_SSE = r'''
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
while s.recv(65536): pass
'''


def spawn(code, *args):
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)])


def estab_drops(samples):
    """[(t, how many fewer established connections)] from samples whose last
    field is the established count."""
    out = []
    last = None
    for smp in samples:
        n = smp[-1]
        if last is not None and n < last:
            out.append((smp[0], last - n))
        last = n
    return out


def server_conns(port):
    """Established connections of the server port, from ss (state, recv-q, send-q)."""
    out = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    return [l.split() for l in out.splitlines() if l.strip()]


@attack("SIGSTOP a client mid-download (serve, 256 MiB file): expect the send timeout (60 s) to "
        "drop it", target=SERVE, prepare=make_www, after=5.0, clients=5, duration=90.0)
def sigstop_download(t, p):
    t0 = mono()
    procs = [spawn(CLIENT_DOWNLOAD, t.port) for _ in range(p["clients"])]
    try:
        return _sigstop_download(t, p, t0, procs)
    finally:
        for pr in procs:
            pr.kill()
            pr.wait()


def _sigstop_download(t, p, t0, procs):
    time.sleep(2)
    for pr in procs:
        pr.send_signal(signal.SIGSTOP)
    t_stop = mono()
    samples = []
    gone_at = None
    while mono() < t0 + p["duration"]:
        n = len(server_conns(t.port))
        samples.append((round(mono() - t_stop, 1), n, t.fds()))
        if n == 0 and gone_at is None:
            gone_at = mono() - t_stop
            break
        time.sleep(1)
    for pr in procs:
        pr.kill()
        pr.wait()
    return {"clients": p["clients"], "all_dropped_s_after_sigstop": round(gone_at, 1) if gone_at
            else None, "samples_t_estab_fds": samples[::5] + samples[-1:]}


@attack("SIGSTOP clients mid-WebSocket (/ws/echo and /ws/chat, sending and reading) and mid "
        "event stream: WS expect ping at 30 s, 1001 at 60 s; SSE: found when buffers fill",
        after=5.0, clients=5, duration=115.0)
def sigstop_ws_sse(t, p):
    t0 = mono()
    procs = ([spawn(CLIENT_WS, t.port, "/ws/echo") for _ in range(p["clients"])] +
             [spawn(CLIENT_WS, t.port, "/ws/chat") for _ in range(p["clients"])] +
             [spawn(CLIENT_SSE, t.port) for _ in range(p["clients"])])
    try:
        return _sigstop_ws_sse(t, p, t0, procs)
    finally:
        for pr in procs:
            pr.kill()
            pr.wait()


def _sigstop_ws_sse(t, p, t0, procs):
    time.sleep(3)
    base = len(server_conns(t.port))
    for pr in procs:
        pr.send_signal(signal.SIGSTOP)
    t_stop = mono()
    samples = []
    while mono() < t0 + p["duration"]:
        conns = server_conns(t.port)
        # `ss state established` leaves out the State column: Recv-Q Send-Q Local Peer
        samples.append((round(mono() - t_stop, 1), len(conns),
                        sum(int(c[0]) for c in conns), sum(int(c[1]) for c in conns)))
        time.sleep(1)
    for pr in procs:
        pr.kill()
        pr.wait()
    # when did the count of established server-side connections drop?
    drops = []
    last = base
    for tt, n, _, _ in samples:
        if n < last:
            drops.append((tt, last - n))
            last = n
    return {"connections_at_sigstop": base, "drops_t_count": drops,
            "established_at_end": samples[-1][1] if samples else None,
            "samples_t_estab_recvq_sendq": samples[::10]}


@attack("RST mid-download: 8 clients in a loop GET the 256 MiB file, read 1 MiB, reset",
        target=SERVE, prepare=make_www, after=5.0, clients=8, duration=30.0)
def rst_mid_download(t, p):
    t0 = mono()
    count = [0]
    errs = collections.Counter()

    def worker():
        while mono() < t0 + p["duration"]:
            try:
                s = lib.connect(t.port)
                s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                got = 0
                while got < (1 << 20):
                    d = s.recv(1 << 16)
                    if not d:
                        errs["eof"] += 1
                        break
                    got += len(d)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
                count[0] += 1
            except OSError as e:
                errs[type(e).__name__] += 1

    ths = [threading.Thread(target=worker) for _ in range(p["clients"])]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    time.sleep(1)
    return {"downloads_reset": count[0], "client_errors": dict(errs),
            "server_established_1s_later": len(server_conns(t.port)), "server_fds": t.fds()}


@attack("close during the 100-continue exchange: POST /upload with Expect: 100-continue, wait "
        "for 100, then close (FIN) or reset (RST), in a loop", after=5.0, clients=4,
        duration=20.0)
def close_during_continue(t, p):
    t0 = mono()
    stats = collections.Counter()

    def worker(k):
        j = 0
        while mono() < t0 + p["duration"]:
            try:
                s = lib.connect(t.port)
                s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                          b"Content-Type: multipart/form-data; boundary=XX\r\n"
                          b"Content-Length: 1000000\r\n\r\n")
                d = s.recv(4096)
                stats["got_100" if d.startswith(b"HTTP/1.1 100") else f"got {d[:12]!r}"] += 1
                if j % 2:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    stats["rst"] += 1
                else:
                    s.sendall(b"--XX\r\n")  # part of the body, then FIN
                    stats["fin"] += 1
                s.close()
                j += 1
            except OSError as e:
                stats[type(e).__name__] += 1

    ths = [threading.Thread(target=worker, args=(k,)) for k in range(p["clients"])]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    time.sleep(1)
    return {"exchanges": dict(stats), "server_established_1s_later": len(server_conns(t.port)),
            "server_fds_1s_later": t.fds()}


# --------------------------------------------------------------------------
# 5. Huge values
# --------------------------------------------------------------------------

def one_shot(port, data, timeout=20.0, ws_path=None, read_limit=1 << 20, sender=None):
    """Sends `data` on a fresh connection (after a WebSocket handshake when
    ws_path is set) and reads until close/timeout. Returns what came back."""
    t0 = mono()
    if ws_path:
        s, rest = lib.ws_connect(port, ws_path)
    else:
        s, rest = lib.connect(port, timeout), b""
    err = None
    try:
        if sender:
            sender(s)
        else:
            s.sendall(data)
    except OSError as e:
        err = f"send: {type(e).__name__}"
    buf = rest + lib.recv_all_until_close(s, timeout, read_limit)
    s.close()
    out = {"secs": round(mono() - t0, 2)}
    if err:
        out["send_error"] = err
    if ws_path:
        r = WsReader()
        r.feed(buf.replace(b"<EOF>", b"").replace(b"<RST>", b""))
        out["close_code"] = r.close_code
    else:
        out["status"] = lib.status_of(buf)
        out["first_line"] = buf.split(b"\r\n", 1)[0][:60].decode("latin1")
    out["end"] = "eof" if buf.endswith(b"<EOF>") else ("rst" if buf.endswith(b"<RST>") else
                                                       "open(timeout)")
    return out


def multipart(parts, boundary=b"XyZzY"):
    out = []
    for name, filename, data in parts:
        out.append(b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"" + name + b"\"")
        if filename is not None:
            out.append(b"; filename=\"" + filename + b"\"")
        out.append(b"\r\n\r\n" + data + b"\r\n")
    out.append(b"--" + boundary + b"--\r\n")
    return b"".join(out)


def post(path, body, ctype, extra=b"", keep_alive=False):
    if not keep_alive:
        extra = b"Connection: close\r\n" + extra
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype +
            b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


@attack("huge values, one connection each (demo): WebSocket lengths 2^63-1 and 2^63, "
        "Content-Length 99999999999999999999, chunk sizes, 1 MB request line, 100k headers, "
        "64 KB cookie, 16 MiB chat line, 1 MB upload filename, 32 MiB multipart of tiny parts, "
        "deep JSON", after=5.0, tiny_parts=500_000)
def huge_values(t, p):
    out = {}

    def case(name, *a, **kw):
        r0 = t.rss()
        res = one_shot(t.port, *a, **kw)
        res["rss_kB_before_after"] = (r0, t.rss())
        out[name] = res
        print(name, res, flush=True)

    case("ws_len_2^63-1", ws_frame(0x2, b"", mask=b"abcd", length=(1 << 63) - 1) + b"x" * 100,
         ws_path="/ws/echo")
    hdr = struct.pack("!BBQ", 0x82, 0xFF, 1 << 63) + b"abcd"
    case("ws_len_2^63_msb_set", hdr + b"x" * 100, ws_path="/ws/echo")
    hdr = struct.pack("!BBQ", 0x82, 0xFF, (1 << 64) - 1) + b"abcd"
    case("ws_len_2^64-1", hdr + b"x" * 100, ws_path="/ws/echo")
    case("content_length_20_digits", b"POST /api/color HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 99999999999999999999\r\n\r\n{}")
    case("content_length_2^64-1", b"POST /api/color HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 18446744073709551615\r\n\r\n{}")
    case("chunk_size_18_f", b"POST /api/color HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
         b"\r\n\r\nffffffffffffffffff\r\n")
    case("chunk_size_16_f", b"POST /api/color HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
         b"\r\n\r\nffffffffffffffff\r\n")
    case("request_line_1MB", b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    case("headers_100k", b"GET /api/status HTTP/1.1\r\nHost: x\r\n" + b"a: b\r\n" * 100000
         + b"\r\n")
    case("cookie_64KB", b"GET /api/status HTTP/1.1\r\nHost: x\r\nCookie: a=" + b"c" * 65536
         + b"\r\n\r\n")
    case("chat_line_16MiB_one_frame", ws_frame(0x1, b"a" * (16 << 20), mask=b"\0\0\0\0"),
         ws_path="/ws/chat")
    frags = [ws_frame(0x1 if i == 0 else 0x0, b"a" * 4096, fin=False) for i in range(4096)]
    case("chat_line_16MiB_4KiB_fragments", b"".join(frags), ws_path="/ws/chat")
    case("echo_message_16MiB+1", ws_frame(0x2, b"a" * ((16 << 20) + 1)), ws_path="/ws/echo")
    fname = b"f" * (1 << 20)
    case("upload_filename_1MB", post(b"/upload", multipart([(b"file", fname, b"data")]),
                                     b"multipart/form-data; boundary=XyZzY"), read_limit=4 << 20)
    tiny = multipart([(b"f", b"a", b"") for _ in range(p["tiny_parts"])])
    out["tiny_parts_body_bytes"] = len(tiny)
    peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], t.rss() or 0)
            time.sleep(0.05)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    case("upload_%d_tiny_file_parts_%dMB" % (p["tiny_parts"], len(tiny) >> 20),
         post(b"/upload", tiny, b"multipart/form-data; boundary=XyZzY"), timeout=60,
         read_limit=64 << 20)
    stop.set()
    th.join()
    out["tiny_parts_rss_peak_kB"] = peak[0]
    case("json_depth_1M", post(b"/api/color", b"[" * 1_000_000, b"application/json"))
    case("post_32MiB_plus_1", post(b"/api/color", b" " * ((32 << 20) + 1), b"application/json"))
    return out


@attack("huge values on `serve`: 10,000 Range parts, a Range of 2^64, 1 MB path of ../",
        target=SERVE, prepare=make_www, after=3.0)
def huge_values_serve(t, p):
    out = {}
    ranges = ",".join(f"{i * 10}-{i * 10 + 5}" for i in range(2700))
    for name, req in {
        "range_2700_parts": f"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes={ranges}\r\n\r\n",
        "range_2^64": "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=18446744073709551615-\r\n\r\n",
        "range_suffix_huge": "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-99999999999999999999\r\n\r\n",
        "path_8k_dotdot": "GET /" + "../" * 2700 + "etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    }.items():
        s = lib.connect(t.port)
        s.sendall(req.encode())
        st, head, body = lib.read_response(s, 10, max_body=0)
        s.close()
        cr = [l for l in head.split(b"\r\n") if l.lower().startswith((b"content-range",
                                                                       b"content-length"))]
        out[name] = {"status": st, "fields": [x.decode() for x in cr], "request_bytes": len(req)}
    return out


# --------------------------------------------------------------------------
# 6. Resource exhaustion
# --------------------------------------------------------------------------

@attack("descriptor exhaustion: server under nofile=1024; open N idle connections, hold them "
        "HOLD s, close them all; are new clients served again?", target={"mode": "demo",
        "nofile": 1024}, after=10.0, conns=1100, hold=20.0)
def fd_exhaustion(t, p):
    t0 = mono()
    socks = []
    for i in range(p["conns"]):
        try:
            socks.append(lib.connect(t.port, 2.0))
        except OSError as e:
            print("connect", i, e)
            break
    opened = mono() - t0
    time.sleep(2)
    fds_held = t.fds()
    # does a new client get an answer while we hold them?
    try:
        s = lib.connect(t.port, 3.0)
        s.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, _ = lib.read_response(s, 3.0)
        s.close()
        during = st
    except OSError as e:
        during = type(e).__name__
    time.sleep(max(0.0, p["hold"] - (mono() - t0)))
    t_close = mono()
    for s in socks:
        s.close()
    # first successful new request after the close
    served_after = None
    while mono() < t_close + 15:
        try:
            s = lib.connect(t.port, 1.0)
            s.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
            st, _, _ = lib.read_response(s, 1.0)
            s.close()
            if st == 200:
                served_after = mono() - t_close
                break
        except OSError:
            pass
        time.sleep(0.05)
    return {"connected": len(socks), "open_secs": round(opened, 1), "server_fds_while_held":
            fds_held, "new_client_while_held": during,
            "first_200_after_release_s": round(served_after, 2) if served_after else None}


@attack("reconnect storm: T threads connect, send a GET and close at once (unread answer: RST), "
        "or connect and close without a byte", after=5.0, threads=4, duration=30.0)
def reconnect_storm(t, p):
    t0 = mono()
    counts = collections.Counter()

    def worker(k):
        j = 0
        while mono() < t0 + p["duration"]:
            try:
                s = socket.socket()
                s.connect(("127.0.0.1", t.port))
                if j % 2:
                    s.send(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
                    counts["get_then_close"] += 1
                else:
                    counts["bare_close"] += 1
                s.close()
            except OSError as e:
                counts[type(e).__name__] += 1
                time.sleep(0.01)
            j += 1

    ths = [threading.Thread(target=worker, args=(k,)) for k in range(p["threads"])]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    time.sleep(2)
    return {"attempts": dict(counts), "rate_per_s": round(sum(counts.values()) / p["duration"]),
            "server_fds_2s_later": t.fds(), "server_established_2s_later":
            len(server_conns(t.port))}


# --------------------------------------------------------------------------
# 7. Memory kept after a request was answered
# --------------------------------------------------------------------------

@attack("memory kept by idle keep-alive connections after their request was answered: (A) N "
        "connections each POST a SIZE-byte JSON body to /api/color, then send a small GET every "
        "10 s; (B) M connections each send one 31 KB head, then idle", after=3.0, conns=20,
        size=20_000_000, heads=1000, duration=60.0)
def retained_after_response(t, p):
    t0 = mono()
    rss0 = t.rss()
    body = b'{"color": "#123456", "pad": "' + b"x" * (p["size"] - 32) + b'"}'
    req = post(b"/api/color", body, b"application/json", keep_alive=True)
    socks = []
    for i in range(p["conns"]):
        s = lib.connect(t.port, 30)
        s.sendall(req)
        st, _, _ = lib.read_response(s, 30)
        assert st == 200, st
        socks.append(s)
    time.sleep(1)
    rss_a = t.rss()
    pad = b"X-Pad-%03d: " + b"v" * 300 + b"\r\n"
    head = b"GET /api/status HTTP/1.1\r\nHost: x\r\n" + b"".join(pad % k for k in range(95)) + b"\r\n"
    hs = []
    for i in range(p["heads"]):
        s = lib.connect(t.port, 10)
        s.sendall(head)
        st, _, _ = lib.read_response(s, 10)
        hs.append(s)
    time.sleep(1)
    rss_b = t.rss()
    samples = [(round(mono() - t0, 1), rss_a, rss_b)]
    # keep group A alive with small requests; group B stays idle (keep-alive 60 s)
    while mono() < t0 + p["duration"]:
        time.sleep(10)
        for s in socks:
            s.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
            lib.read_response(s, 10)
        samples.append((round(mono() - t0, 1), t.rss()))
    for s in socks + hs:
        s.close()
    time.sleep(2)
    return {
        "rss_kB_before": rss0,
        "rss_kB_after_A_bodies_answered": rss_a,
        "A_kept_per_conn_MB": round((rss_a - rss0) / 1024 / p["conns"], 1),
        "A_body_bytes": len(body),
        "rss_kB_after_B_heads_answered": rss_b,
        "B_kept_per_conn_bytes": round((rss_b - rss_a) * 1024 / p["heads"]),
        "B_head_bytes": len(head),
        "samples_t_rssKB": samples,
        "rss_kB_2s_after_all_closed": t.rss(),
    }


@attack("one burst of empty WebSocket messages, then idle: N /ws/echo connections each send "
        "256 KiB of empty text frames (43,690 messages) at once, read the echoes, then stay idle",
        after=3.0, conns=200, duration=30.0)
def ws_burst_then_idle(t, p):
    t0 = mono()
    rss0 = t.rss()
    socks = [lib.ws_connect(t.port)[0] for _ in range(p["conns"])]
    time.sleep(1)
    rss_idle = t.rss()
    burst = ws_frame(0x1, b"", mask=b"abcd") * (262144 // 6)
    for s in socks:
        s.sendall(burst)
    # read the echoes (2 bytes each)
    want = 2 * (262144 // 6)
    for s in socks:
        got = 0
        s.settimeout(10)
        while got < want:
            d = s.recv(1 << 20)
            if not d:
                break
            got += len(d)
    time.sleep(2)
    rss_burst = t.rss()
    samples = []
    while mono() < t0 + p["duration"]:
        samples.append((round(mono() - t0, 1), t.rss()))
        time.sleep(5)
    for s in socks:
        s.close()
    time.sleep(3)
    return {
        "rss_kB_before": rss0,
        "rss_kB_idle_ws_open": rss_idle,
        "idle_ws_bytes_each": round((rss_idle - rss0) * 1024 / p["conns"]),
        "rss_kB_after_burst_idle": rss_burst,
        "kept_per_conn_after_burst_bytes": round((rss_burst - rss_idle) * 1024 / p["conns"]),
        "samples_t_rssKB_idle": samples,
        "rss_kB_3s_after_close": t.rss(),
    }


@attack("fast downloads: K clients download the 256 MiB file in a loop as fast as they can "
        "(does one sendfile loop hold the poll round?)", target=SERVE, prepare=make_www,
        after=3.0, clients=1, duration=30.0, pipeline=1)
def fast_download(t, p):
    """With pipeline=K the client sends K GETs at once, then reads K files."""
    t0 = mono()
    done = [0]
    total = [0]

    def worker():
        buf = bytearray(4 << 20)
        mv = memoryview(buf)
        s = lib.connect(t.port, 30)
        pending = b""
        while mono() < t0 + p["duration"]:
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n" * p["pipeline"])
            for _ in range(p["pipeline"]):
                head = pending
                while b"\r\n\r\n" not in head:
                    head += s.recv(4096)
                h, _, rest = head.partition(b"\r\n\r\n")
                pending = b""
                left = (256 << 20) - len(rest)
                if left < 0:
                    pending = rest[256 << 20:]
                    left = 0
                while left > 0:
                    n = s.recv_into(mv[:min(left, len(buf))])
                    if not n:
                        return
                    left -= n
                    total[0] += n
                done[0] += 1
        s.close()

    ths = [threading.Thread(target=worker) for _ in range(p["clients"])]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    secs = mono() - t0
    return {"downloads": done[0], "bytes": total[0], "MBps": round(total[0] / secs / 1e6)}


@attack("WebSocket churn under nofile=1024: T threads open a /ws/echo WebSocket, send one "
        "message and close, as fast as possible (a closed WebSocket keeps its descriptor for "
        "the linger time)", target={"mode": "demo", "nofile": 1024}, after=8.0, threads=4,
        duration=20.0, message=True, kind="ws")
def ws_churn(t, p):
    """kind=http: the same churn with plain GET /api/status requests (answer
    read, then close), for comparison."""
    t0 = mono()
    counts = collections.Counter()
    frame = ws_frame(0x1, b"hi", mask=b"abcd")
    fd_samples = []

    def worker():
        while mono() < t0 + p["duration"]:
            try:
                if p["kind"] == "http":
                    s = lib.connect(t.port, 2.0)
                    s.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
                    lib.read_response(s, 2.0)
                else:
                    s, _ = lib.ws_connect(t.port, timeout=2.0)
                    if p["message"]:
                        s.sendall(frame)
                s.close()
                counts["opened_closed"] += 1
            except (OSError, ConnectionError) as e:
                counts[type(e).__name__] += 1
                time.sleep(0.01)

    ths = [threading.Thread(target=worker, daemon=True) for _ in range(p["threads"])]
    for th in ths:
        th.start()
    while any(th.is_alive() for th in ths):
        fd_samples.append((round(mono() - t0, 1), t.fds()))
        time.sleep(1)
    time.sleep(3)
    return {"attempts": dict(counts), "rate_per_s": round(counts["opened_closed"] /
                                                          p["duration"]),
            "server_fds_samples": fd_samples, "server_fds_3s_later": t.fds()}


@attack("WebSocket echo with a standing backlog: one /ws/echo connection sends BACKLOG bytes of "
        "16 KiB messages, then sends and reads at the same steady RATE: the pending echoes "
        "stay under the send bound (no close), the write buffer is never empty, so it grows",
        after=8.0, duration=40.0, rate=10_000_000, backlog=16 << 20)
def ws_echo_backlog(t, p):
    import select as _select
    s, _ = lib.ws_connect(t.port, "/ws/echo")
    s.settimeout(None)
    msg = ws_frame(0x2, b"e" * 16384, mask=b"abcd")
    stop = threading.Event()
    sent = [0]

    def writer():
        try:
            burst = msg * (p["backlog"] // 16384)
            s.sendall(burst)
            sent[0] += len(burst)
            per_tick = max(1, p["rate"] // 10 // 16384)
            while not stop.is_set():
                tick = mono()
                s.sendall(msg * per_tick)
                sent[0] += len(msg) * per_tick
                time.sleep(max(0.0, tick + 0.1 - mono()))
        except OSError:
            pass

    threading.Thread(target=writer, daemon=True).start()
    t0 = mono()
    got = 0
    eof = None
    samples = []
    per_tick = p["rate"] // 10
    while mono() < t0 + p["duration"] and eof is None:
        tick = mono()
        want = per_tick
        while want > 0:
            r, _, _ = _select.select([s], [], [], 0.02)
            if not r:
                break
            d = s.recv(min(want, 1 << 20))
            if not d:
                eof = round(mono() - t0, 1)
                break
            got += len(d)
            want -= len(d)
        if not samples or mono() - t0 - samples[-1][0] >= 5:
            samples.append((round(mono() - t0, 1), t.rss(), got, sent[0]))
        time.sleep(max(0.0, tick + 0.1 - mono()))
    stop.set()
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
    return {"echo_bytes_read": got, "bytes_sent": sent[0], "server_closed_at_s": eof,
            "samples_t_rssKB_read_sent": samples}
