"""One client pipelining multi-range requests: work per poll round (bounded in bytes, not in work)."""
import json, sys, threading, time
import h16

def pipelined(port, rng, seconds=15, path="/small.txt"):
    s = h16.conn(port, timeout=60)
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\n" + (f"Range: {rng}\r\n" if rng else "") + "\r\n"
    req = req.encode()
    stop = threading.Event(); sent = [0]
    def sender():
        blob = req * 2000
        while not stop.is_set():
            s.sendall(blob); sent[0] += 2000
    th = threading.Thread(target=sender, daemon=True); th.start()
    got = 0; tail = b""; t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        d = s.recv(1 << 20)
        if not d: break
        buf = tail + d; got += buf.count(b"HTTP/1.1 20"); tail = buf[-12:]
    stop.set()
    dt = time.monotonic() - t0
    s.close()
    return {"range": (rng or "none")[:50], "answered": got, "per_s": round(got / dt)}

def run(tag):
    srv = h16.Server(tag, control=True)
    time.sleep(3)
    res = {}
    one16 = "bytes=" + ",".join(f"{2*i}-{2*i}" for i in range(16))
    phases = []
    for name, rng in [("no_range", None), ("single", "bytes=0-0"), ("two", "bytes=0-0,2-2"), ("sixteen", one16)]:
        srv.mark(name + "_a")
        res[name] = pipelined(srv.port, rng)
        srv.mark(name + "_b")
        time.sleep(2)
        phases.append((name, name + "_a", name + "_b"))
    srv.stop()
    summ = srv.summary(phases)
    for name, _, _ in phases:
        res[name]["probe"] = summ[name]
        res[name]["control_probe"] = summ["control"][name]
    h16.save(tag, res)

run(sys.argv[1])
