#!/usr/bin/env python3
"""A second normal client for the re-check after the issue-14 fixes (its own
process, so the attacker's GIL cannot delay it). Modes:

- `deflate`: a WebSocket that agreed permessage-deflate; each round trip
  sends a 200-byte JSON text compressed (fresh context) and checks the echo;
- `plain`: the same WebSocket without the extension, text sent plain;
- `http`: one `GET /` (a 404 from target14) per round trip on a new
  connection.

A WebSocket that is closed (1013 and so on) is counted by close code and
reopened, so the rate of refusals is measured, not only the first one.
Writes JSON: n, ok, fail, closes {code: count}, p50/p99/max ms.
"""
import argparse
import json
import os
import socket
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib14 import Reader, close_code_of, frame, pct, ws_open  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["deflate", "plain", "http"], default="deflate")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--path", default="/ws")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rtts, closes, errors = [], {}, []
    ok = fail = 0
    s = rd = None
    for i in range(a.n):
        body = json.dumps({"seq": i, "user": "probe", "text": "x" * 150})[:200].encode()
        t0 = time.monotonic()
        try:
            if a.mode == "http":
                c = socket.create_connection(("127.0.0.1", a.port), timeout=a.timeout)
                c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                got = b""
                while b"\r\n\r\n" not in got:
                    d = c.recv(4096)
                    if not d:
                        break
                    got += d
                c.close()
                if got.startswith(b"HTTP/1.1 "):
                    ok += 1
                    rtts.append((time.monotonic() - t0) * 1000)
                else:
                    fail += 1
            else:
                if s is None:
                    ext = "permessage-deflate; client_max_window_bits" if a.mode == "deflate" else None
                    s, agreed, rest = ws_open(a.port, a.path, ext=ext, timeout=a.timeout)
                    rd = Reader()
                    if rest:
                        rd.feed(rest)
                t0 = time.monotonic()
                if a.mode == "deflate":
                    c = zlib.compressobj(6, zlib.DEFLATED, -15)
                    pl = (c.compress(body) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
                    s.sendall(frame(1, pl, rsv=4))
                else:
                    s.sendall(frame(1, body))
                end = t0 + a.timeout
                res = None
                while res is None:
                    s.settimeout(max(0.01, end - time.monotonic()))
                    d = s.recv(1 << 16)
                    if not d:
                        res = "EOF"
                        break
                    for fin, rsv, op, pl in rd.feed(d):
                        if op == 8:
                            res = str(close_code_of(pl))
                            break
                        if op == 1:
                            data = zlib.decompressobj(-15).decompress(pl + b"\0\0\xff\xff") if rsv & 4 else pl
                            res = "ok" if data == body else "bad echo"
                            break
                if res == "ok":
                    ok += 1
                    rtts.append((time.monotonic() - t0) * 1000)
                else:
                    fail += 1
                    closes[res] = closes.get(res, 0) + 1
                    s.close()
                    s = None
        except (OSError, ConnectionError) as e:
            fail += 1
            k = type(e).__name__
            closes[k] = closes.get(k, 0) + 1
            if len(errors) < 5:
                errors.append(str(e))
            if s is not None:
                s.close()
            s = None
        left = a.interval - (time.monotonic() - t0)
        if left > 0:
            time.sleep(left)
    res = {"mode": a.mode, "n": a.n, "ok": ok, "fail": fail, "closes": closes, "errors": errors,
           "p50_ms": round(pct(rtts, 50), 2) if rtts else None,
           "p99_ms": round(pct(rtts, 99), 2) if rtts else None,
           "max_ms": round(max(rtts), 2) if rtts else None}
    with open(a.out, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main()
