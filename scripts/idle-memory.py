#!/usr/bin/env python3
"""Memory per idle connection of a running server, plain or TLS.

Opens N connections to URL (http:// or https://), sends one keep-alive
`GET /` on each and reads its answer (so a TLS connection has finished its
handshake and received its session tickets), then measures how much the
server process's resident memory (VmRSS of PID) grew, and prints it per
connection. The connections are held while measuring, then closed.

    python3 scripts/idle-memory.py PID URL [N] [CAFILE]

For example, with the HTTPS example (`cargo run --release --features tls
--example https -- 5443 cert.pem key.pem`) and its redirect port for plain:

    python3 scripts/idle-memory.py $(pgrep -n https) https://127.0.0.1:5443/ 2000 cert.pem
    python3 scripts/idle-memory.py $(pgrep -n https) http://127.0.0.1:5444/ 2000

TLS_VERSION=1.2 in the environment caps the client at TLS 1.2.

The figure includes the allocator's overhead and whatever the first
connections made the server allocate once (pools, slab growth); a larger N
makes those weigh less.
"""
import os
import resource
import socket
import ssl
import sys
import time
from urllib.parse import urlparse


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS for pid %s" % pid)


def main():
    pid = int(sys.argv[1])
    url = urlparse(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    cafile = sys.argv[4] if len(sys.argv) > 4 else None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 64)), hard))
    ctx = None
    if url.scheme == "https":
        ctx = ssl.create_default_context(cafile=cafile)
        if os.environ.get("TLS_VERSION") == "1.2":
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    host, port = url.hostname, url.port or (443 if ctx else 80)
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    time.sleep(0.5)
    before = rss_kib(pid)
    conns = []
    for _ in range(n):
        s = socket.create_connection((host, port))
        if ctx:
            s = ctx.wrap_socket(s, server_hostname=host)
        s.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        conns.append(s)
    time.sleep(1.0)  # let the server finish its round and settle
    after = rss_kib(pid)
    per = (after - before) * 1024 / n
    print(f"{url.scheme}: {n} idle connections, RSS {before} KiB -> {after} KiB: "
          f"{per:.0f} bytes per connection")
    for s in conns:
        s.close()


main()
