"""Churn helper (A10): 4 threads of handshake offering permessage-deflate, one 200-byte
compressed text, read the echo, close (FIN); prints the number of cycles.
python3 churn_only.py PORT SECS [PATH]"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ws23  # noqa: E402

port = int(sys.argv[1])
secs = float(sys.argv[2])
path = sys.argv[3] if len(sys.argv) > 3 else "/ws"
END = time.time() + secs
msg = ws23.deflate_msg(json.dumps({"user": "x", "text": "hello " * 30}).encode()[:200])
n = [0]


def churn():
    while time.time() < END:
        s, left, head = ws23.handshake(port, path, "permessage-deflate; client_max_window_bits")
        s.sendall(ws23.frame(1, msg, rsv1=True))
        s.settimeout(3)
        ws23.Reader(s, left).message()
        s.close()
        n[0] += 1


ts = [threading.Thread(target=churn) for _ in range(4)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("cycles", n[0])
