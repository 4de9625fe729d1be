#!/usr/bin/env python3
"""Probe + monitor, run as its own process (so an attacker's GIL never delays it).

Every 100 ms: one fresh TCP connection, `GET PATH` (default /api/status),
the whole response read (Content-Length), latency recorded; a probe that
takes longer than --timeout counts as a failure.  Every 100 ms as well: the
server's VmRSS and utime+stime (/proc/PID/status, /proc/PID/stat); every
500 ms its open descriptor count (/proc/PID/fd).

Writes one JSON object per line to --out:
  {"t": .., "k": "p", "lat": seconds|null, "st": status|null, "err": str|null}
  {"t": .., "k": "m", "rss": kB, "cpu": ticks, "wait": ns runnable but not running}
  {"t": .., "k": "fd", "n": count}
Runs until SIGTERM or --duration.
"""
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

stop = threading.Event()


def now():
    return time.monotonic()


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
    cpu = int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)
    with open(f"/proc/{pid}/schedstat") as f:
        run_ns, wait_ns, _ = (int(x) for x in f.read().split())
    return rss, cpu, wait_ns


def probe_once(port, path, timeout):
    t0 = now()
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode())
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
        for l in lines[1:]:
            k, _, v = l.partition(b":")
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
        return now() - t0, status, None
    except Exception as e:  # noqa: BLE001 - every failure is data
        return None, None, f"{type(e).__name__}: {e}"[:120]
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--path", default="/api/status")
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--duration", type=float, default=600)
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

    threading.Thread(target=monitor, daemon=True).start()
    end = now() + a.duration
    nxt = now()
    while not stop.is_set() and now() < end:
        t = now()
        lat, st, err = probe_once(a.port, a.path, a.timeout)
        emit({"t": t, "k": "p", "lat": lat, "st": st, "err": err})
        nxt += a.interval
        if nxt < now():  # a slow probe: skip the slots it used up
            nxt = now()
        stop.wait(max(0.0, nxt - now()))
    out.close()


if __name__ == "__main__":
    sys.exit(main())
