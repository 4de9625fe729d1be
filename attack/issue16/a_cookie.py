"""Cookie decoding: huge/many percent-escapes, invalid UTF-8 escapes, 1,000 cookies, injection attempts."""
import json, sys, threading, time
import h16

def req(cookie_lines):
    h = "".join(f"Cookie: {c}\r\n" for c in cookie_lines)
    return f"GET /cookie HTTP/1.1\r\nHost: x\r\n{h}\r\n".encode("latin1")

def read_resp(s):
    head, rest = h16.read_head(s)
    clen = 0
    for l in head.split("\r\n")[1:]:
        k, _, v = l.partition(":")
        if k.strip().lower() == "content-length": clen = int(v)
    while len(rest) < clen:
        d = s.recv(1 << 20)
        if not d: raise ConnectionError
        rest += d
    return head, rest[:clen]

CASES = {
    "plain": ["session=abc123; theme=dark"],
    "escapes_32k_valid": ["echo=" + "%41" * 10800],
    "escapes_32k_utf8_multibyte": ["echo=" + "%E2%82%AC" * 3600],
    "escapes_32k_invalid_utf8": ["echo=" + "%ff" * 10800],
    "escapes_32k_invalid_last": ["echo=" + "%41" * 10790 + "%ff"],
    "bad_escapes_32k": ["echo=" + "%%4" * 10800],
    "cookies_1000": ["; ".join(f"c{i}=%41%42{i}" for i in range(1000))],
    "cookies_max_tiny": ["; ".join("a=b" for i in range(6500))],
    "cookie_headers_90": [f"c{i}=" + "%41" * 110 for i in range(90)],
    "injection": ["echo=a%0d%0aSet-Cookie:%20evil=1%0d%0a%0d%0a<script>; x%0d%0ay=1; inj=%00%0a%22%3b"],
    "raw_high_bytes": ["echo=\xe9t\xe9; raw=\xff\xfe"],
}

def run(tag):
    srv = h16.Server(tag, control=True)
    out = {}
    time.sleep(2)
    for name, lines in CASES.items():
        raw = req(lines)
        s = h16.conn(srv.port, timeout=10)
        n = 0; t0 = time.monotonic(); head = body = None; err = None
        try:
            while time.monotonic() - t0 < 2:
                s.sendall(raw)
                head, body = read_resp(s)
                n += 1
        except Exception as e:
            err = type(e).__name__
        dt = time.monotonic() - t0
        s.close()
        st = int(head.split(" ")[1]) if head else None
        setc = [l for l in (head or "").split("\r\n") if l.lower().startswith("set-cookie")]
        out[name] = {"req_bytes": len(raw), "status": st, "req_per_s": round(n / dt), "us_per_req": round(dt / max(n, 1) * 1e6),
                     "resp_head_bytes": len(head or ""), "set_cookie_headers": len(setc),
                     "body_first_line": (body or b"").split(b"\n")[0].decode("latin1"), "err": err}
        if name == "injection":
            out[name]["set_cookie"] = setc[:4]
            out[name]["header_names"] = [l.split(":")[0] for l in head.split("\r\n")[1:]]
            out[name]["body"] = body.decode("latin1")[:200]
        if name == "raw_high_bytes":
            out[name]["head"] = (head or "")[:300]
    # hammer with the costliest case for 20 s from 4 threads while the probe runs
    worst = max((k for k in out if out[k]["status"] == 200), key=lambda k: out[k]["us_per_req"])
    srv.mark("a")
    raw = req(CASES[worst]); cnt = [0]
    end = time.monotonic() + 20
    def w():
        s = h16.conn(srv.port, timeout=10)
        while time.monotonic() < end:
            s.sendall(raw); read_resp(s); cnt[0] += 1
    ts = [threading.Thread(target=w) for _ in range(4)]
    [t.start() for t in ts]; [t.join() for t in ts]
    srv.mark("b"); time.sleep(2); srv.mark("c")
    srv.stop()
    res = {"cases": out, "hammer_case": worst, "hammer_requests": cnt[0]}
    res.update(srv.summary([("baseline", "start", "a"), ("hammer", "a", "b"), ("after", "b", "c")]))
    h16.save(tag, res)

run(sys.argv[1])
