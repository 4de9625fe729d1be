"""Python `websockets` echo server with permessage-deflate, the benchmark's
Python peer (bench/run.sh, BENCH_ONLY=pmd).

    python websockets_echo.py PORT

Serves ws://127.0.0.1:PORT/ (any path) on asyncio's default event loop and
echoes every message with its type. `compression="deflate"` (websockets'
default, stated here) takes its default settings: the server keeps its
compression context (no server_no_context_takeover), server_max_window_bits
and client_max_window_bits 12, zlib memLevel 5 and level 6; every message
is compressed, whatever its size. Keepalive pings are off, so the idle
memory rows measure connections that only wait. The interpreter comes from
scripts/setup-python.sh (websockets pinned in
scripts/requirements-interop.txt).
"""

import asyncio
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        # The load generator ends its connections without a close frame.
        pass


async def main(port):
    async with serve(
        echo,
        "127.0.0.1",
        port,
        compression="deflate",
        ping_interval=None,
        max_size=None,
        # The idle rows open up to 256 connections at a time (asyncio's
        # default backlog is 100).
        backlog=4096,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        print("usage: python websockets_echo.py PORT", file=sys.stderr)
        sys.exit(2)
    asyncio.run(main(int(sys.argv[1])))
