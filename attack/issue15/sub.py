#!/usr/bin/env python3
"""A normal subscriber, run as its own process: K WebSocket (or event-stream)
connections that read everything, check every byte of every broadcast
message and measure its delivery latency (receive time - the send time in
its header; both CLOCK_REALTIME on this machine).

Writes JSON lines to --out: every 0.5 s {"t", "n", "lat": [ms,...], "bad",
"gap", "dup", "closed"}, and at the end {"final": true, ...totals, "errors"}.
Answers pings. `--read 1` reads one byte per recv (partial writes mid-frame);
`--ping-every S` sends a ping every S seconds and checks the pong.
"""
import argparse
import json
import selectors
import signal
import socket
import sys
import threading
import time

import ws15

stop = threading.Event()


class Sub:
    def __init__(self, a, i):
        self.a = a
        self.i = i
        self.sse = a.path.startswith("/events")
        self.sock = None
        self.parser = None
        self.sse_buf = bytearray()
        self.last_seq = {}
        self.closed = False
        self.pings = {}
        self.ping_n = 0

    def open(self):
        a = self.a
        if self.sse:
            s = ws15.connect(a.port, rcvbuf=a.rcvbuf, tls=a.tls)
            s.sendall(ws15.sse_request(a.path))
            status, _, rest = ws15.read_head(s)
            if status != 200:
                raise ConnectionError(f"sse status {status}")
            self.sse_buf += rest
        else:
            s, headers, rest = ws15.open_ws(a.port, a.path, rcvbuf=a.rcvbuf,
                                            extensions=a.deflate, tls=a.tls)
            ext = headers.get("sec-websocket-extensions", "")
            inflater = None
            if "permessage-deflate" in ext:
                inflater = ws15.Inflater(takeover="server_no_context_takeover" not in ext)
            self.ext = ext
            self.parser = ws15.FrameParser(inflater)
            self.pending = rest
        s.setblocking(False)
        self.sock = s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/ws")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--deflate", default=None, help="Sec-WebSocket-Extensions offer")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--rcvbuf", type=int, default=None)
    ap.add_argument("--read", type=int, default=262144, help="bytes per recv")
    ap.add_argument("--read-delay", type=float, default=0.0, help="sleep after each recv (s)")
    ap.add_argument("--ping-every", type=float, default=0.0)
    ap.add_argument("--tags", default="SF", help="message tags that are checked")
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=float, default=600)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    out = open(a.out, "w", buffering=1)
    subs = []
    errors = []
    for i in range(a.count):
        s = Sub(a, i)
        try:
            s.open()
            subs.append(s)
        except Exception as e:  # noqa: BLE001
            errors.append(f"open {i}: {type(e).__name__}: {e}")
    sel = selectors.DefaultSelector()
    for s in subs:
        sel.register(s.sock, selectors.EVENT_READ, s)
    tot = {"n": 0, "bad": 0, "gap": 0, "dup": 0, "closed": 0, "bytes": 0, "pongs_ok": 0,
           "pongs_bad": 0, "other": 0}
    win = {"n": 0, "lat": [], "bad": 0, "gap": 0, "dup": 0}
    tags = set(a.tags.encode())

    def on_message(s, data):
        tag, seq, ns, ok = ws15.check_message(data)
        if tag is None or tag[0] not in tags:
            tot["other"] += 1
            return
        tot["n"] += 1
        win["n"] += 1
        if not ok:
            tot["bad"] += 1
            win["bad"] += 1
            if len(errors) < 20:
                errors.append(f"bad bytes conn {s.i} seq {seq} len {len(data)}: {data[:48]!r}")
            return
        win["lat"].append(round((time.time_ns() - ns) / 1e6, 3))
        key = tag
        last = s.last_seq.get(key)
        if last is not None:
            if seq == last:
                tot["dup"] += 1
                win["dup"] += 1
            elif seq != last + 1 and tag != b"C":
                tot["gap"] += 1
                win["gap"] += 1
                if len(errors) < 20:
                    errors.append(f"gap conn {s.i} tag {tag} {last} -> {seq}")
        s.last_seq[key] = seq

    def handle(s, data):
        tot["bytes"] += len(data)
        if s.sse:
            s.sse_buf += data
            while True:
                at = s.sse_buf.find(b"\n\n")
                if at < 0:
                    break
                event = bytes(s.sse_buf[:at])
                del s.sse_buf[:at + 2]
                lines = [l for l in event.split(b"\n") if l.startswith(b"data:")]
                if not lines:
                    continue  # a comment (heartbeat)
                on_message(s, b"\n".join(l[5:].lstrip(b" ") for l in lines))
            return
        for op, payload in s.parser.feed(data):
            if op in (1, 2):
                on_message(s, payload)
            elif op == 9:
                try:
                    s.sock.setblocking(True)
                    s.sock.sendall(ws15.pong_for(payload))
                    s.sock.setblocking(False)
                except OSError:
                    pass
            elif op == 0xA:
                if payload in s.pings:
                    del s.pings[payload]
                    tot["pongs_ok"] += 1
                else:
                    tot["pongs_bad"] += 1
                    if len(errors) < 20:
                        errors.append(f"unexpected pong {payload!r}")
            elif op == 8:
                if len(errors) < 20:
                    errors.append(f"close from server conn {s.i}: {payload[:2].hex()} {payload[2:40]!r}")
        if s.parser.errors:
            errors.extend(s.parser.errors[:5])
            s.parser.errors.clear()

    for s in subs:
        if getattr(s, "pending", b""):
            handle(s, s.pending)
    t_end = time.monotonic() + a.duration
    next_flush = time.monotonic() + 0.5
    next_ping = time.monotonic() + a.ping_every if a.ping_every else None
    while not stop.is_set() and time.monotonic() < t_end and subs:
        for key, _ in sel.select(timeout=0.05):
            s = key.data
            try:
                d = s.sock.recv(a.read)
            except (BlockingIOError, ssl_want_read()):
                continue
            except OSError as e:
                d = b""
                if len(errors) < 20:
                    errors.append(f"recv conn {s.i}: {e}")
            if not d:
                tot["closed"] += 1
                sel.unregister(s.sock)
                s.sock.close()
                subs.remove(s)
                continue
            handle(s, d)
            if a.read_delay:
                time.sleep(a.read_delay)
        now = time.monotonic()
        if next_ping and now >= next_ping:
            next_ping = now + a.ping_every
            for s in subs:
                if s.sse:
                    continue
                s.ping_n += 1
                p = f"p{s.i}-{s.ping_n}".encode()
                s.pings[p] = now
                try:
                    s.sock.setblocking(True)
                    s.sock.sendall(ws15.client_frame(9, p))
                    s.sock.setblocking(False)
                except OSError:
                    pass
        if now >= next_flush:
            next_flush = now + 0.5
            out.write(json.dumps({"t": time.time(), **win}) + "\n")
            win = {"n": 0, "lat": [], "bad": 0, "gap": 0, "dup": 0}
    out.write(json.dumps({"t": time.time(), **win}) + "\n")
    tot["open_at_end"] = len(subs)
    tot["pings_unanswered"] = sum(len(s.pings) for s in subs)
    out.write(json.dumps({"final": True, "t": time.time(), **tot, "errors": errors[:20]}) + "\n")
    out.close()


def ssl_want_read():
    import ssl
    return ssl.SSLWantReadError


if __name__ == "__main__":
    sys.exit(main())
