#!/usr/bin/env python3
"""The normal client, run as its own process: one /ws/echo WebSocket that
offers permessage-deflate as a browser does, then N round trips of a
200-byte JSON text message (compressed when the extension was agreed,
with a fresh context per message), `interval` s apart. Every reply is
inflated and compared with what was sent. Writes a JSON summary to --out:
handshake ms, p50/p99/max round-trip ms, ok/fail counts, errors.
"""
import argparse
import json
import os
import socket
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib14 import Reader, compress_msg, frame, mono, pct, ws_open  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--path", default="/ws/echo")
    ap.add_argument("--delay", type=float, default=0.0)
    a = ap.parse_args()
    time.sleep(a.delay)
    res = {"n": a.n, "ok": 0, "fail": 0, "errors": []}
    lats = []
    t0 = mono()
    try:
        s, ext, rest = ws_open(a.port, a.path, timeout=a.timeout)
    except (OSError, ConnectionError) as e:
        res["errors"].append(f"handshake: {e}")
        res["fail"] = a.n
        json.dump(res, open(a.out, "w"))
        return
    res["handshake_ms"] = round((mono() - t0) * 1000, 2)
    res["ext"] = ext
    compressed = ext is not None
    server_keeps = compressed and "server_no_context_takeover" not in ext
    dec = zlib.decompressobj(-15)
    r = Reader()
    r.feed(rest)
    for i in range(a.n):
        msg = json.dumps({"seq": i, "pad": "x" * 150, "t": "probe"}).encode()[:200]
        msg = msg + b" " * (200 - len(msg))
        payload = compress_msg(msg) if compressed else msg
        t1 = mono()
        try:
            s.sendall(frame(1, payload, rsv=4 if compressed else 0, mask=b"\x12\x34\x56\x78"))
            got = None
            end = t1 + a.timeout
            parts = []
            first_rsv = 0
            while got is None:
                s.settimeout(max(0.01, end - mono()))
                d = s.recv(1 << 16)
                if not d:
                    raise ConnectionError("EOF")
                for fin, rsv, op, p in r.feed(d):
                    if op in (9, 10):
                        if op == 9:
                            s.sendall(frame(10, p, mask=b"\x01\x02\x03\x04"))
                        continue
                    if op == 8:
                        raise ConnectionError(f"close {p[:2].hex()}")
                    if op in (1, 2):
                        first_rsv = rsv
                        parts = [p]
                    else:
                        parts.append(p)
                    if fin:
                        body = b"".join(parts)
                        if first_rsv & 4:
                            if not server_keeps:
                                dec = zlib.decompressobj(-15)
                            body = dec.decompress(body + b"\x00\x00\xff\xff")
                        got = body
            lat = mono() - t1
            if got != msg:
                res["fail"] += 1
                res["errors"].append(f"#{i}: wrong echo {got[:40]!r}")
            else:
                res["ok"] += 1
                lats.append(lat * 1000)
        except (OSError, ConnectionError, zlib.error) as e:
            res["fail"] += a.n - i
            res["errors"].append(f"#{i}: {type(e).__name__} {e}")
            break
        time.sleep(a.interval)
    try:
        s.close()
    except OSError:
        pass
    if lats:
        res["p50_ms"] = round(pct(lats, 50), 2)
        res["p99_ms"] = round(pct(lats, 99), 2)
        res["max_ms"] = round(max(lats), 2)
    res["secs"] = round(mono() - t0, 1)
    res["errors"] = res["errors"][:5]
    with open(a.out, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main()
