"""Route authentication and the per-route body limit."""
import base64, json, os, socket, statistics, sys, threading, time
import h16

GOOD = "admin:correct-horse-battery-staple"

def basic(up):
    return "Authorization: Basic " + base64.b64encode(up.encode()).decode() + "\r\n"


def timing(srv, n=20000):
    variants = {
        "right_user_prefix_28_of_29": basic("admin:correct-horse-battery-stapl3"),
        "right_user_wrong_same_len": basic("admin:" + "x" * len("correct-horse-battery-staple")),
        "wrong_user_right_pass": basic("root:correct-horse-battery-staple"),
        "right_user_1char_pass": basic("admin:c"),
        "no_header": "",
        "right": basic(GOOD),
    }
    s = h16.conn(srv.port, timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat = {k: [] for k in variants}
    reqs = {k: f"POST /upload HTTP/1.1\r\nHost: x\r\n{v}Content-Length: 0\r\n\r\n".encode() for k, v in variants.items()}
    keys = list(variants)
    for i in range(n):
        for k in keys:
            t0 = time.perf_counter_ns()
            s.sendall(reqs[k])
            buf = b""
            while b"\r\n\r\n" not in buf or not (buf.endswith(b"\n") ):
                buf += s.recv(65536)
                if b"Content-Length: " in buf:
                    h, _, b = buf.partition(b"\r\n\r\n")
                    cl = int(h.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                    if len(b) >= cl: break
            lat[k].append((time.perf_counter_ns() - t0) / 1000)
            if i == 0:
                lat[k + "_status"] = buf.split(b" ")[1].decode()
    out = {}
    for k in keys:
        v = sorted(lat[k])
        trimmed = v[len(v)//10: len(v)*9//10]
        out[k] = {"status": lat[k + "_status"], "median_us": round(v[len(v)//2], 2), "p10_us": round(v[len(v)//10], 2),
                  "trimmed_mean_us": round(statistics.mean(trimmed), 2)}
    s.close()
    return out


def rate(srv, n=200000):
    """How fast can one connection try passwords (pipelined)?"""
    s = h16.conn(srv.port, timeout=30)
    blob = b"".join(f"POST /upload HTTP/1.1\r\nHost: x\r\n{basic('admin:guess%06d' % i)}Content-Length: 0\r\n\r\n".encode() for i in range(n))
    t0 = time.monotonic()
    th = threading.Thread(target=s.sendall, args=(blob,)); th.start()
    got = 0; tail = b""
    while got < n:
        d = s.recv(1 << 20)
        if not d: break
        buf = tail + d
        got += buf.count(b"HTTP/1.1 401")
        tail = buf[-12:]
    dt = time.monotonic() - t0
    th.join(); s.close()
    return {"attempts": n, "answered_401": got, "seconds": round(dt, 2), "per_s": round(got / dt)}


def upload_unauth(srv, kind, size=50 << 20):
    """Unauthenticated upload; how much does the server read before refusing?"""
    s = h16.conn(srv.port, timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    if kind == "cl":
        head = f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
    elif kind == "cl_expect":
        head = f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\nExpect: 100-continue\r\n\r\n"
    elif kind == "chunked":
        head = "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    elif kind == "chunked_expect":
        head = "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    elif kind == "stream_route_small":
        head = "POST /upload-stream HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
        size = 100
    elif kind == "small_60k":
        head = "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n"
        size = 60000
    t0 = time.monotonic()
    s.sendall(head.encode())
    sent = 0; err = None
    chunk = b"x" * 65536
    if kind.startswith("chunked"):
        chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    resp = b""
    s.setblocking(False)
    while sent < size and time.monotonic() - t0 < 10:
        try:
            k = s.send(chunk[: min(len(chunk), size - sent)] if not kind.startswith("chunked") else chunk)
            sent += k
        except BlockingIOError:
            time.sleep(0.001)
        except OSError as e:
            err = type(e).__name__; break
        try:
            d = s.recv(65536)
            if d: resp += d
            elif d == b"": err = err or "EOF"; break
        except BlockingIOError:
            pass
        except OSError as e:
            err = type(e).__name__; break
    s.settimeout(2)
    try:
        while True:
            d = s.recv(65536)
            if not d: break
            resp += d
    except Exception:
        pass
    s.close()
    return {"kind": kind, "status_line": resp.split(b"\r\n")[0].decode(), "saw_100": b"100 Continue" in resp,
            "client_sent_before_stop": sent, "client_err": err, "seconds": round(time.monotonic() - t0, 2),
            "closes": b"Connection: close" in resp}


def raw_cases(srv):
    A = basic(GOOD)
    big = 50 << 20
    cases = {
        "auth_cl_limit_plus1": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Content-Length: {big + 1}\r\n\r\n",
        "auth_cl_limit_plus1_leading_zeros": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Content-Length: 000{big + 1}\r\n\r\n",
        "auth_cl_plus_sign": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Content-Length: +{big + 1}\r\n\r\n",
        "auth_cl_negative": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Content-Length: -1\r\n\r\n",
        "auth_cl_list_same": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Content-Length: 5, 5\r\n\r\nhello",
        "auth_cl_two_headers_differ": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Content-Length: 5\r\nContent-Length: {big + 1}\r\n\r\nhello",
        "auth_cl_and_te": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "auth_te_chunked_chunked": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Transfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "auth_te_identity_chunked": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Transfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "auth_te_gzip_chunked": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "auth_te_Chunked_case": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Transfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "auth_te_xchunked": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "auth_te_two_headers": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "auth_te_tab": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Transfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "auth_te_space_before_colon": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "auth_te_http10": f"POST /upload HTTP/1.0\r\nHost: x\r\n{A}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "auth_chunk_ext": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n",
        "auth_chunk_size_leading_zeros": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Transfer-Encoding: chunked\r\n\r\n0000000000000000005\r\nhello\r\n0\r\n\r\n",
        "auth_chunk_size_over_limit": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Transfer-Encoding: chunked\r\n\r\n{big + 1:x}\r\nhello",
        "auth_chunk_size_overflow": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff1\r\nhello",
        "auth_chunk_size_0x": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        "auth_chunk_negative": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        "auth_expect_over_limit": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Content-Length: {big + 1}\r\nExpect: 100-continue\r\n\r\n",
        "auth_expect_ok": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Content-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
        "two_auth_headers_good_first": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}{basic('admin:bad')}Content-Length: 0\r\n\r\n",
        "two_auth_headers_bad_first": f"POST /upload HTTP/1.1\r\nHost: x\r\n{basic('admin:bad')}{A}Content-Length: 0\r\n\r\n",
        "auth_lowercase_scheme": f"POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: basic {base64.b64encode(GOOD.encode()).decode()}\r\nContent-Length: 0\r\n\r\n",
        "path_trailing_slash_unauth": "POST /upload/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "path_dot_segment_unauth": "POST /./upload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "path_double_slash_unauth": "POST //upload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "path_encoded_unauth": "POST /%75pload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "path_dotdot_unauth": "POST /x/../upload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "path_case_unauth": "POST /UPLOAD HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "path_absolute_form_unauth": "POST http://x/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "path_query_unauth": "POST /upload?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "path_semicolon_unauth": "POST /upload;a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "method_lowercase_unauth": "post /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "pipelined_auth_then_unauth_big": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Content-Length: 5\r\n\r\nhelloPOST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {big}\r\n\r\n",
        "pipelined_auth_then_unauth_small": f"POST /upload HTTP/1.1\r\nHost: x\r\n{A}Content-Length: 5\r\n\r\nhelloPOST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "other_route_1mib_plus1": "POST /notify HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n",
        "stream_route_auth_over_route_limit": f"POST /upload-stream HTTP/1.1\r\nHost: x\r\n{A}Content-Length: {big + 1}\r\n\r\n",
        "stream_route_auth_ok": f"POST /upload-stream HTTP/1.1\r\nHost: x\r\n{A}Content-Length: 2000000\r\n\r\n" + "x" * 2000000,
    }
    out = {}
    for k, raw in cases.items():
        resp, dt, err = h16.request(srv.port, raw.encode(), timeout=3)
        lines = [l.split(b"\r\n")[0].decode() for l in resp.split(b"HTTP/1.")[1:]]
        out[k] = {"responses": lines, "ms": round(dt * 1000), "err": err}
        if b"got " in resp or b"streamed" in resp:
            out[k]["body"] = resp[resp.rfind(b"\r\n\r\n") + 4:].decode()[:60].strip()
    return out


def chunked_over_limit(srv, total=60 << 20):
    """Authenticated chunked body growing past 50 MB: when does 413 come, what RSS?"""
    s = h16.conn(srv.port, timeout=10)
    s.sendall(f"POST /upload HTTP/1.1\r\nHost: x\r\n{basic(GOOD)}Transfer-Encoding: chunked\r\n\r\n".encode())
    chunk = b"100000\r\n" + b"x" * (1 << 20) + b"\r\n"
    sent = 0; err = None; peak = 0
    s.setblocking(False); resp = b""
    t0 = time.monotonic()
    while sent < total and time.monotonic() - t0 < 20:
        try:
            sent += s.send(chunk[(sent % len(chunk)):])
        except BlockingIOError:
            time.sleep(0.001)
        except OSError as e:
            err = type(e).__name__; break
        try:
            d = s.recv(4096)
            if d: resp += d; break
        except BlockingIOError:
            pass
        peak = max(peak, srv.rss() or 0)
    s.close()
    return {"client_sent": sent, "status": resp.split(b"\r\n")[0].decode(), "err": err, "rss_peak_mb": round(peak / 1024, 1)}


def mass_unauth(srv, conns=1000, size=50 << 20):
    """1000 unauthenticated 50 MB uploads at once."""
    socks = []
    for i in range(conns):
        s = h16.conn(srv.port)
        s.sendall(f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
        s.setblocking(False)
        socks.append(s)
    sent = 0; t0 = time.monotonic(); blob = b"x" * 65536; peak = 0
    while time.monotonic() - t0 < 10:
        for s in socks:
            try:
                sent += s.send(blob)
            except (BlockingIOError, OSError):
                pass
        peak = max(peak, srv.rss() or 0)
    statuses = {}
    for s in socks:
        try:
            d = s.recv(200)
            k = d.split(b"\r\n")[0].decode() if d else "EOF"
        except BlockingIOError:
            k = "nothing"
        except OSError as e:
            k = type(e).__name__
        statuses[k] = statuses.get(k, 0) + 1
        s.close()
    return {"conns": conns, "client_sent_total_mb": sent >> 20, "statuses": statuses, "rss_peak_mb": round(peak / 1024, 1)}


def run(tag):
    srv = h16.Server(tag, control=True)
    res = {}
    time.sleep(2); srv.mark("a")
    res["raw_cases"] = raw_cases(srv)
    srv.mark("b")
    res["uploads_unauth"] = [upload_unauth(srv, k) for k in ("cl", "cl_expect", "chunked", "chunked_expect", "stream_route_small", "small_60k")]
    srv.mark("c")
    res["chunked_over_limit"] = chunked_over_limit(srv)
    srv.mark("d")
    res["mass_unauth"] = mass_unauth(srv)
    srv.mark("e")
    res["rate"] = rate(srv)
    srv.mark("f")
    res["timing"] = timing(srv, n=int(os.environ.get("TIMING_N", "20000")))
    srv.mark("g")
    srv.stop()
    res["phases"] = srv.summary([("raw", "a", "b"), ("uploads", "b", "c"), ("chunked_over", "c", "d"), ("mass_unauth", "d", "e"), ("rate", "e", "f"), ("timing", "f", "g")])
    h16.save(tag, res)

run(sys.argv[1])
