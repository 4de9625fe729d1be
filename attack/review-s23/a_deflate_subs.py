"""A9: group broadcasts of mixed sizes to subscribers with different permessage-deflate
settings at once (context kept: own encoding per socket; no server context: shared
compressed frames; small messages: shared plain frames, copied under 256 bytes; plain
subscribers), while the subscribers send pings (pongs are the socket's own bytes,
interleaved with the queued shared frames) and some read in small slow pieces so writes
stop mid-frame. Every message is inflated (with context where kept) and checked: sequence
contiguous, bytes exact; every pong matches its ping in order.

python3 a_deflate_subs.py [secs] [subs_per_kind]
"""
import os
import random
import socket
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ws23  # noqa: E402

secs = float(sys.argv[1]) if len(sys.argv) > 1 else 20
per = int(sys.argv[2]) if len(sys.argv) > 2 else 3
port = ws23.free_port()
proc = ws23.start_target(port, {"DEFLATE": "ctx", "BCAST_MS": 3, "WS_SEND_BUF": 64 << 20,
                                "BCAST_SIZES": "10,63,64,65,100,255,256,257,300,1000,4000,16384,70000,200000",
                                "BCAST_BIN": 0, "LOG_CLOSES": 1}, log=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "deflate_subs.server.log"))
OFFERS = {
    "ctx": "permessage-deflate",
    "ctx_w9": "permessage-deflate; server_max_window_bits=9",
    "noctx": "permessage-deflate; server_no_context_takeover",
    "noctx_w10": "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
    "noctx_cnct": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "plain": None,
}
PATTERN = bytes(97 + (i % 26) for i in range(300000))
res = {}
lock = threading.Lock()
END = time.time() + secs


def sub(name, offer, slow, idx):
    r = random.Random(idx)
    st = {"msgs": 0, "gaps": 0, "bad": 0, "pongs": 0, "bad_pongs": 0, "compressed": 0, "err": None, "closed": None}
    try:
        s, left, head = ws23.handshake(port, "/ws/sub", offer)
        ext = b"" if b"Sec-WebSocket-Extensions" not in head else head.split(b"Sec-WebSocket-Extensions:")[1].split(b"\r\n")[0]
        keep_ctx = offer is not None and b"server_no_context_takeover" not in ext
        wbits = 15
        if b"server_max_window_bits=" in ext:
            wbits = int(ext.split(b"server_max_window_bits=")[1].split(b";")[0].strip())
        st["ext"] = ext.decode().strip()
        inflater = zlib.decompressobj(-wbits)
        if slow:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)

        class SlowSock:
            def __init__(self, sock):
                self.s = sock

            def recv(self, n):
                if slow:
                    time.sleep(0.0002 if r.random() < 0.02 else 0)
                    return self.s.recv(r.choice([1, 7, 100, 1000, 16384]))
                return self.s.recv(n)

        rd = ws23.Reader(SlowSock(s), left)
        last = None
        pings = []
        next_ping = time.time()
        while time.time() < END:
            if time.time() >= next_ping:
                pl = os.urandom(r.randrange(0, 126))
                s.sendall(ws23.frame(9, pl))
                pings.append(pl)
                next_ping = time.time() + 0.05
            parts = []
            comp = None
            while True:
                fin, rsv1, opc, payload, b0 = rd.frame()
                if opc == 10:
                    exp = pings.pop(0) if pings else None
                    st["pongs"] += 1
                    if payload != exp:
                        st["bad_pongs"] += 1
                    continue
                if opc == 9:
                    s.sendall(ws23.frame(10, payload))
                    continue
                if opc == 8:
                    st["closed"] = ws23.parse_close(payload)
                    raise EOFError("close")
                if comp is None:
                    comp = rsv1
                parts.append(payload)
                if fin:
                    break
            data = b"".join(parts)
            if comp:
                st["compressed"] += 1
                if keep_ctx:
                    data = inflater.decompress(data + ws23.TAIL)
                else:
                    data = zlib.decompressobj(-wbits).decompress(data + ws23.TAIL)
            try:
                seq = int(data[1:11])
            except ValueError:
                st["bad"] += 1
                continue
            ok = data[:1] == b"S" and data[32:] == PATTERN[32:len(data)]
            if not ok:
                st["bad"] += 1
            if last is not None and seq != last + 1:
                st["gaps"] += 1
            last = seq
            st["msgs"] += 1
    except Exception as e:  # noqa: BLE001
        if st["closed"] is None:
            st["err"] = repr(e)[:100]
    with lock:
        res[name] = st


if os.environ.get("KINDS"):
    OFFERS = {k: v for k, v in OFFERS.items() if k in os.environ["KINDS"].split(",")}
ts = []
i = 0
for kind, offer in OFFERS.items():
    for k in range(per):
        slow = k % 2 == 1
        name = "%s_%s_%d" % (kind, "slow" if slow else "fast", k)
        t = threading.Thread(target=sub, args=(name, offer, slow, i))
        i += 1
        t.start()
        ts.append(t)
for t in ts:
    t.join()
badn = 0
for name in sorted(res):
    st = res[name]
    flag = "ok "
    if st["bad"] or st["gaps"] or st["bad_pongs"] or st["err"] or st["closed"]:
        flag = "BAD"
        badn += 1
    print(flag, name, st)
print("A9 deflate subscribers: %d subscribers, %d bad; server alive %s %s" % (
    len(res), badn, proc.poll() is None, ws23.proc_status(proc.pid)))
proc.kill()
sys.exit(1 if badn else 0)
