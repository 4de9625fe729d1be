"""A8: WebSocket frames in the same segment as the upgrade request (and split inside it),
for plain and deflate; echoes must be exact. python3 a_pipelined_upgrade.py"""
import base64
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ws23  # noqa: E402

port = ws23.free_port()
proc = ws23.start_target(port, {"DEFLATE": "1"})
bad = 0
total = 0
for deflate in (False, True):
    for n in (0, 1, 125, 126, 200, 65536, 100000):
        for split in (None, "in_head", "after_head", "in_frame"):
            data = os.urandom(n)
            key = base64.b64encode(os.urandom(16))
            req = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n" +
                   (b"Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else b"") + b"\r\n")
            fr = ws23.frame(2, ws23.deflate_msg(data) if deflate else data, rsv1=deflate)
            fr += ws23.frame(9, b"pp")
            blob = req + fr
            cut = {None: None, "in_head": len(req) - 3, "after_head": len(req), "in_frame": len(req) + 7}[split]
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if cut is None:
                s.sendall(blob)
            else:
                s.sendall(blob[:cut])
                time.sleep(0.005)
                s.sendall(blob[cut:])
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, rest = buf.split(b"\r\n\r\n", 1)
            rd = ws23.Reader(s, rest)
            total += 1
            try:
                op, got, ctl, comp = rd.message()
                # the pong may come before or after the echo
                fin, rsv1, opc, payload, b0 = (None, None, None, None, None)
                if not ctl:
                    fin, rsv1, opc, payload, b0 = rd.frame()
                    ctl = [(opc, payload)]
                good = (b"101" in head.split(b"\r\n")[0] and op == 2 and got == data and ctl == [(10, b"pp")])
            except Exception as e:  # noqa: BLE001
                good = False
                got = repr(e).encode()
            if not good:
                bad += 1
                print("BAD deflate=%s n=%d split=%s head=%r got=%r" % (deflate, n, split, head[:20], got[:40]))
            s.close()
print("A8 pipelined upgrade: %d cases, %d bad; server alive %s" % (total, bad, proc.poll() is None))
proc.kill()
sys.exit(1 if bad else 0)
