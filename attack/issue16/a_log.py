"""log_to_stderr / CLI logger with a stderr pipe nobody reads (blocked) and a closed one."""
import os, sys, time, threading, socket
import h16

def read_resp(s):
    head, rest = h16.read_head(s)
    clen = 0
    for l in head.split("\r\n")[1:]:
        k, _, v = l.partition(":")
        if k.strip().lower() == "content-length": clen = int(v)
    while len(rest) < clen:
        d = s.recv(65536)
        if not d: raise ConnectionError
        rest += d
    return head

PATH = {"lib": "/hello", "cli-serve": "/small.txt", "cli-demo": "/api/status"}

def flood(port, n, conc=4, path="/hello"):
    """n sequential keep-alive GETs split over conc connections, each with 2 s timeout."""
    done = [0]; errs = [0]
    def worker(k):
        try:
            s = h16.conn(port, timeout=2)
            for i in range(k):
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                read_resp(s)
                done[0] += 1
        except Exception:
            errs[0] += 1
    ts = [threading.Thread(target=worker, args=(n // conc,)) for _ in range(conc)]
    [t.start() for t in ts]; [t.join() for t in ts]
    return done[0], errs[0]

def run(tag, mode):
    r, w = os.pipe()
    if mode == "lib":
        srv = h16.Server(tag, env={"LOG": "1"}, stderr=w)
    elif mode == "cli-serve":
        srv = h16.Server(tag, cli=["serve", "/work/attack16/www"], stderr=w, probe_path="/small.txt")
    else:
        srv = h16.Server(tag, cli=["demo"], stderr=w, probe_path="/api/status")
    os.close(w)
    res = {"mode": mode}
    time.sleep(3); srv.mark("a")
    t0 = time.monotonic()
    done, errs = flood(srv.port, 4000, path=PATH[mode])
    res["flood_done"] = done; res["flood_errs"] = errs; res["flood_s"] = round(time.monotonic() - t0, 2)
    time.sleep(10)  # is the server stalled?
    srv.mark("b")
    # a fresh client now?
    resp, dt, err = h16.request(srv.port, f"GET {PATH[mode]} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(), timeout=3)
    res["fresh_get_while_pipe_full"] = {"status": h16.status_of(resp), "s": round(dt, 2), "err": err}
    # start reading the pipe: does it recover?
    drained = [0]
    def drain():
        while True:
            d = os.read(r, 65536)
            if not d: break
            drained[0] += len(d)
    threading.Thread(target=drain, daemon=True).start()
    time.sleep(5); srv.mark("c")
    resp, dt, err = h16.request(srv.port, f"GET {PATH[mode]} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(), timeout=3)
    res["fresh_get_after_drain"] = {"status": h16.status_of(resp), "s": round(dt, 2), "err": err}
    res["drained_bytes"] = drained[0]
    time.sleep(2); srv.mark("d")
    srv.stop()
    res.update(srv.summary([("baseline", "start", "a"), ("pipe_blocked", "a", "b"), ("after_drain", "c", "d")]))
    h16.save(tag, res)

def flood_path(port):
    return flood(port, 4000)

if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
