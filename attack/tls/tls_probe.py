#!/usr/bin/env python3
"""HTTPS probe + monitor (own process).

--mode ka:    one TLS connection opened at the start (fresh, not shared with
              any attacker), kept alive; every --interval a GET on it, the
              whole response read; latency = request sent -> response read.
              On failure the connection is reopened (outside the timing).
--mode fresh: every --interval a new TCP connection + full TLS handshake +
              GET (Connection: close); latency includes the handshake.
--monitor:    also samples VmRSS / utime+stime / run-queue wait of --pid
              every 100 ms, and descriptors every 500 ms.
JSON lines as attack/probe.py: {"t","k":"p","lat","st","err"} / {"k":"m",...}.
"""
import argparse
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time

stop = threading.Event()
now = time.monotonic


def read_proc(pid):
    rss = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
                break
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    cpu = int(fields[11]) + int(fields[12])
    with open(f"/proc/{pid}/schedstat") as f:
        _, wait_ns, _ = (int(x) for x in f.read().split())
    return rss, cpu, wait_ns


CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE


def connect(port, timeout):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s = CTX.wrap_socket(raw, server_hostname="localhost")
    s.settimeout(timeout)
    return s


def get(s, path, t0, timeout, close=False):
    conn = "close" if close else "keep-alive"
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: {conn}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        rest = timeout - (now() - t0)
        if rest <= 0:
            raise socket.timeout("head")
        s.settimeout(rest)
        d = s.recv(65536)
        if not d:
            raise ConnectionError("eof in head")
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    clen = 0
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            clen = int(v.strip())
    while len(body) < clen:
        rest = timeout - (now() - t0)
        if rest <= 0:
            raise socket.timeout("body")
        s.settimeout(rest)
        d = s.recv(65536)
        if not d:
            raise ConnectionError("eof in body")
        body += d
    return status


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--out", required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument("--mode", default="ka")
    ap.add_argument("--monitor", action="store_true")
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--duration", type=float, default=900)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    out = open(a.out, "w", buffering=1)
    lock = threading.Lock()

    def emit(obj):
        with lock:
            out.write(json.dumps(obj) + "\n")

    def monitor():
        k = 0
        while not stop.is_set():
            t = now()
            try:
                rss, cpu, wait = read_proc(a.pid)
                emit({"t": t, "k": "m", "rss": rss, "cpu": cpu, "wait": wait})
                if k % 5 == 0:
                    emit({"t": t, "k": "fd", "n": len(os.listdir(f"/proc/{a.pid}/fd"))})
            except (FileNotFoundError, ProcessLookupError):
                emit({"t": t, "k": "gone"})
                stop.set()
                return
            k += 1
            stop.wait(max(0.0, t + 0.1 - now()))

    if a.monitor:
        threading.Thread(target=monitor, daemon=True).start()
    end = now() + a.duration
    nxt = now()
    s = None
    while not stop.is_set() and now() < end:
        t = now()
        lat = st = err = None
        try:
            if a.mode == "ka":
                if s is None:
                    s = connect(a.port, a.timeout)
                    t = now()  # the reconnect is not timed
                st = get(s, a.path, t, a.timeout)
            else:
                c = connect(a.port, a.timeout)
                try:
                    st = get(c, a.path, t, a.timeout, close=True)
                finally:
                    c.close()
            lat = now() - t
        except Exception as e:  # noqa: BLE001
            err = f"{type(e).__name__}: {e}"[:120]
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
                s = None
        emit({"t": t, "k": "p", "lat": lat, "st": st, "err": err})
        nxt += a.interval
        if nxt < now():
            nxt = now()
        stop.wait(max(0.0, nxt - now()))
    out.close()


if __name__ == "__main__":
    sys.exit(main())
