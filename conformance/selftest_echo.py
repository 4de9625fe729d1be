#!/usr/bin/env python3
"""Tiny WebSocket echo server, used ONLY to self-test the Autobahn tooling.

This is NOT the server under test (that is pollserve). It exists so that
conformance/autobahn.sh and conformance/check_report.py can be exercised
against a known-good peer (the `websockets` package, installed by
scripts/setup-python.sh).

Usage:
    .venv/bin/python conformance/selftest_echo.py [--host 127.0.0.1] [--port 9002]

Known result with websockets 17.4: everything in sections 1-10 passes except
7.1.5 (close frame in the middle of a fragmented message: websockets answers
1002 "incomplete fragmented message", Autobahn expects 1000) - handy as a
known FAILED case when checking that check_report.py really fails.

Accepts any request path (e.g. ws://127.0.0.1:9002/ws/echo) and echoes every
text/binary message back unchanged. Runs until SIGINT/SIGTERM, or for
--max-seconds if given (it always stops by itself eventually).
"""

import argparse
import asyncio
import os
import signal
import sys

# websockets >= 15 refuses messages of more than 4096 fragments (DoS guard,
# read at import time). Autobahn 9.3.x/9.4.x send 4 MiB in 64-byte fragments.
os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", str(1 << 20))

try:
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed
except ImportError:  # pragma: no cover
    sys.exit("selftest_echo.py needs the 'websockets' package (>= 13); "
             "run scripts/setup-python.sh and use .venv/bin/python")


async def echo(ws):
    try:
        async for message in ws:  # str for text frames, bytes for binary
            await ws.send(message)
    except ConnectionClosed:
        pass  # protocol errors are what Autobahn provokes; don't log tracebacks


async def main(host: str, port: int, max_seconds: float) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(
            sig, lambda: stop.done() or stop.set_result(None))
    async with serve(
        echo,
        host,
        port,
        compression=None,      # sections 12/13 (permessage-deflate) are excluded
        max_size=2 ** 25,      # section 9 sends messages up to 16 MiB
        max_queue=None,
        ping_interval=None,    # no unsolicited pings during the test run
        close_timeout=5,
    ):
        print(f"selftest_echo listening on ws://{host}:{port}/", flush=True)
        try:
            await asyncio.wait_for(stop, timeout=max_seconds)
        except asyncio.TimeoutError:
            print("selftest_echo: --max-seconds reached, exiting", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9002)
    ap.add_argument("--max-seconds", type=float, default=3600.0,
                    help="exit after this long even if not signalled (default 3600)")
    a = ap.parse_args()
    asyncio.run(main(a.host, a.port, a.max_seconds))
