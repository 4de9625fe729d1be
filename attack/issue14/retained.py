#!/usr/bin/env python3
"""B2 reproducer: memory kept after near-limit bombs.

  python3 attack/issue14/retained.py [CONNS]        (default 100; needs gdb for the last step)

Starts `pollserve demo`, opens CONNS /ws/echo connections, sends each two
16 KB zero bombs that inflate to 16 MiB - 1 KiB, reads all echoes, then
prints the server's VmRSS: with the sockets idle, after closing them, and
after `malloc_trim(0)` called through gdb. Bounded: 60 s for the echoes.
"""
import os
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attacks14  # noqa: E402
from lib14 import Reader, Server, frame, mono, raise_fd_limit, ws_open  # noqa: E402

MiB = 1 << 20


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    raise_fd_limit()
    srv = Server("retained", as_limit_mb=8192)
    try:
        wire = frame(2, attacks14.bomb_bytes(16 * MiB - 1024), rsv=4) * 2
        socks = [ws_open(srv.port)[0] for _ in range(n)]
        t0 = mono()
        for s in socks:
            s.sendall(wire)
        got = {s: 0 for s in socks}
        readers = {s: Reader() for s in socks}
        while sum(got.values()) < 2 * n and mono() - t0 < 60:
            rl, _, _ = select.select(socks, [], [], 0.5)
            for s in rl:
                for f in readers[s].feed(s.recv(1 << 20)):
                    if f[2] in (1, 2):
                        got[s] += 1
        print(f"{sum(got.values())}/{2 * n} echoes in {mono() - t0:.1f} s; "
              f"HWM {srv.mem()[1] // 1024} MB")
        time.sleep(5)
        print(f"idle, {n} sockets open: RSS {srv.mem()[0] // 1024} MB")
        for s in socks:
            s.close()
        time.sleep(5)
        print(f"all closed: RSS {srv.mem()[0] // 1024} MB, VmSize {srv.mem()[2] // 1024} MB")
        subprocess.run(["gdb", "-p", str(srv.pid), "-batch", "-ex", "call (int)malloc_trim(0)"],
                       capture_output=True, timeout=120)
        print(f"after malloc_trim(0): RSS {srv.mem()[0] // 1024} MB")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
