"""Small functional/CPU checks: pipelined multi-range CPU, HEAD/HTTP-1.0 kept streams."""
import json, sys, threading, time
import h16

def pipelined(srv, rng, n=20000, path="/small.txt"):
    s = h16.conn(srv.port, timeout=60)
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\nRange: {rng}\r\n\r\n".encode()
    t0 = time.monotonic()
    th = threading.Thread(target=s.sendall, args=(req * n,)); th.start()
    got = 0; tail = b""; nbytes = 0
    while got < n:
        d = s.recv(1 << 20)
        if not d: break
        nbytes += len(d)
        buf = tail + d; got += buf.count(b"HTTP/1.1 20"); tail = buf[-12:]
    dt = time.monotonic() - t0
    s.close()
    return {"range": rng[:40], "n": n, "answered": got, "per_s": round(got / dt), "bytes_out": nbytes, "req_bytes": len(req)}

def run(tag):
    srv = h16.Server(tag, env={"STREAM_CHUNK": "8", "STREAM_INTERVAL_MS": "100", "STREAM_END_AFTER": "3"}, control=True)
    time.sleep(2)
    res = {}
    srv.mark("a")
    one = ",".join(f"{2*i}-{2*i}" for i in range(16))
    res["pipelined"] = [pipelined(srv, "bytes=0-0"), pipelined(srv, "bytes=0-0,2-2"), pipelined(srv, "bytes=" + one), pipelined(srv, "bytes=" + one + ",40-40")]
    srv.mark("b")
    # HEAD /stream then GET /hello on one connection
    r, dt, err = h16.request(srv.port, b"HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=3)
    res["head_stream_then_get"] = {"responses": [l.split(b"\r\n")[0].decode() for l in r.split(b"HTTP/1.1 ")[1:]], "ms": round(dt * 1000), "err": err, "raw_tail": r[-40:].decode("latin1")}
    # HTTP/1.0 stream: close-delimited, closes after end (3 chunks)
    r, dt, err = h16.request(srv.port, b"GET /stream HTTP/1.0\r\nHost: x\r\n\r\n", timeout=5)
    res["http10_stream"] = {"head": r.split(b"\r\n\r\n")[0].decode(), "body": r.split(b"\r\n\r\n", 1)[1].decode("latin1"), "s": round(dt, 2), "err": err}
    # HTTP/1.1 stream with Connection: close
    r, dt, err = h16.request(srv.port, b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5)
    res["http11_close_stream"] = {"body": r.split(b"\r\n\r\n", 1)[1].decode("latin1"), "s": round(dt, 2), "err": err}
    # pipelined after a stream
    r, dt, err = h16.request(srv.port, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5)
    res["two_streams_then_get"] = {"n_200": r.count(b"HTTP/1.1 200"), "terminators": r.count(b"\r\n0\r\n\r\n"), "ends_ok": r.endswith(b"ok\n"), "s": round(dt, 2), "err": err}
    srv.mark("c")
    srv.stop()
    res.update(srv.summary([("pipelined_ranges", "a", "b"), ("functional", "b", "c")]))
    h16.save(tag, res)

run(sys.argv[1])
