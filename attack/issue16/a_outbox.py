"""Outbox abuse: pipelined /notify requests whose handler broadcasts through the outbox to many WebSockets."""
import base64, json, os, selectors, socket, sys, threading, time
import h16

HS = ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: {k}\r\nSec-WebSocket-Version: 13\r\n\r\n")


def open_ws(port, n):
    socks = []
    for i in range(n):
        s = socket.socket()
        s.connect(("127.0.0.1", port))
        s.sendall(HS.format(k=base64.b64encode(os.urandom(16)).decode()).encode())
        socks.append(s)
    ok = 0
    for s in socks:
        s.settimeout(20)
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            if not d: break
            buf += d
        if buf.startswith(b"HTTP/1.1 101"): ok += 1
        s.setblocking(False)
    return socks, ok


class Drain(threading.Thread):
    def __init__(self, socks, read=True):
        super().__init__(daemon=True)
        self.sel = selectors.DefaultSelector()
        for s in socks: self.sel.register(s, selectors.EVENT_READ)
        self.bytes = 0; self.eofs = 0; self.stop = threading.Event(); self.read = read
    def run(self):
        while not self.stop.is_set():
            for key, _ in self.sel.select(0.2):
                try:
                    d = key.fileobj.recv(1 << 16)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    d = b""
                if not d:
                    self.eofs += 1; self.sel.unregister(key.fileobj)
                else:
                    self.bytes += len(d)


def open_http(port, n, path):
    socks = []
    for i in range(n):
        s = socket.socket(); s.connect(("127.0.0.1", port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        socks.append(s)
    ok = 0
    for s in socks:
        s.settimeout(20)
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            if not d: break
            buf += d
        if buf.startswith(b"HTTP/1.1 200"): ok += 1
        s.setblocking(False)
    return socks, ok


def run(tag, ws=10000, notifies=10000, conns=1, size=16, read=1, kind="ws"):
    srv = h16.Server(tag, env={"NOTIFY_SIZE": str(size), "STREAM_INTERVAL_MS": "100000"}, control=True)
    samples = []; stop = threading.Event()
    def sampler():
        while not stop.is_set():
            samples.append((round(time.monotonic() - srv.marks["start"], 1), round((srv.rss() or 0) / 1024, 1), srv.stats()))
            stop.wait(0.5)
    threading.Thread(target=sampler, daemon=True).start()
    t0 = time.monotonic()
    if kind == "ws":
        socks, ok = open_ws(srv.port, ws)
    else:
        socks, ok = open_http(srv.port, ws, "/stream" if kind == "stream" else "/events")
    t_ws = round(time.monotonic() - t0, 1)
    drain = Drain(socks); 
    if read: drain.start()
    time.sleep(4); srv.mark("a")
    req = b"GET /notify HTTP/1.1\r\nHost: x\r\n\r\n"
    per = notifies // conns
    answered = [0] * conns
    def attacker(k):
        s = h16.conn(srv.port, timeout=120)
        blob = req * per
        def reader():
            tail = b""
            try:
                while answered[k] < per:
                    d = s.recv(1 << 20)
                    if not d: break
                    buf = tail + d
                    answered[k] += buf.count(b"\r\n\r\nok\n")
                    tail = buf[-8:] if not buf.endswith(b"ok\n") else b""
            except Exception:
                pass
        r = threading.Thread(target=reader, daemon=True); r.start()
        s.sendall(blob)
        r.join(180)
    t1 = time.monotonic()
    ts = [threading.Thread(target=attacker, args=(k,)) for k in range(conns)]
    [t.start() for t in ts]; [t.join() for t in ts]
    t_done = round(time.monotonic() - t1, 1)
    srv.mark("b")
    # wait until the server has processed every notify
    while time.monotonic() - t1 < 200:
        st = srv.stats()
        if st and st["notified"] >= notifies: break
        time.sleep(0.5)
    time.sleep(3)
    srv.mark("c")
    st_end = srv.stats()
    drain.stop.set(); stop.set()
    for s in socks: s.close()
    time.sleep(3); srv.mark("d")
    srv.stop()
    res = {"ws": ws, "ws_ok": ok, "ws_open_s": t_ws, "notifies": notifies, "conns": conns, "size": size,
           "answered": sum(answered), "attack_seconds": t_done, "ws_bytes_read": drain.bytes, "ws_eofs": drain.eofs,
           "stats_end": st_end, "rss_peak_mb": max(x[1] for x in samples),
           "kind": kind, "timeline": [(x[0], x[1], x[2] and x[2]["notified"], x[2] and (x[2]["sockets"] + x[2]["viewers"] + x[2]["events"]), x[2] and x[2]["output_queued"]) for x in samples[::2]]}
    res.update(srv.summary([("baseline", "start", "a"), ("attack", "a", "b"), ("drain", "b", "c"), ("after", "c", "d")]))
    h16.save(tag, res)


if __name__ == "__main__":
    kw = {}
    for a in sys.argv[2:]:
        k, v = a.split("="); kw[k] = int(v) if v.isdigit() else v
    run(sys.argv[1], **kw)
