"""Kept-stream attacks."""
import json, os, socket, sys, threading, time
import h16

GET_STREAM = b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"


def tcp_mem_pages():
    for line in open("/proc/net/sockstat"):
        if line.startswith("TCP:"):
            f = line.split(); return int(f[f.index("mem") + 1])


def sampler(srv, out, stop, every=0.5):
    while not stop.is_set():
        out.append({"t": round(time.monotonic() - srv.marks["start"], 1), "rss_mb": round((srv.rss() or 0) / 1024, 1),
                    "fds": srv.fds(), "stats": srv.stats(), "tcp_mem_mb": round(tcp_mem_pages() * 4 / 1024)})
        stop.wait(every)


def good_viewer(port, stop, gaps):
    """Reads the stream; records the largest gap between receipts."""
    s = h16.conn(port, timeout=5)
    s.sendall(GET_STREAM)
    last = time.monotonic()
    total = 0
    try:
        while not stop.is_set():
            d = s.recv(65536)
            if not d:
                gaps.append(("eof", total)); return
            now = time.monotonic()
            gaps.append(now - last)
            last = now
            total += len(d)
    except Exception as e:
        gaps.append((type(e).__name__, total))


def noread(tag, viewers=1000, chunk=16384, attack=40, rcvbuf=4096, skip=0, control=1):
    srv = h16.Server(tag, env={"STREAM_CHUNK": str(chunk), "STREAM_INTERVAL_MS": "50", "STREAM_SKIP": str(skip)}, control=bool(control))
    samples, stop = [], threading.Event()
    threading.Thread(target=sampler, args=(srv, samples, stop), daemon=True).start()
    gaps = []; gstop = threading.Event()
    threading.Thread(target=good_viewer, args=(srv.port, gstop, gaps), daemon=True).start()
    time.sleep(5); srv.mark("a")
    socks = []
    for i in range(viewers):
        s = h16.conn(srv.port, rcvbuf=rcvbuf)
        s.sendall(GET_STREAM)
        socks.append(s)
    t_open = time.monotonic()
    time.sleep(15); srv.mark("a15")
    time.sleep(attack - 15); srv.mark("b")
    # who is still open (server side)? peek: a closed one gives EOF/RST after its buffered data
    st = srv.stats()
    for s in socks: s.close()
    time.sleep(5); srv.mark("c")
    gstop.set(); stop.set()
    srv.stop()
    g = sorted(x for x in gaps if isinstance(x, float))
    res = {"viewers": viewers, "chunk": chunk, "rcvbuf": rcvbuf, "skip": skip,
           "stats_at_end_of_attack": st,
           "good_viewer": {"receipts": len(g), "gap_p50_ms": round(g[len(g)//2]*1000, 1) if g else None,
                           "gap_p99_ms": round(g[int(len(g)*.99)]*1000, 1) if g else None,
                           "gap_max_ms": round(g[-1]*1000, 1) if g else None,
                           "ended": [x for x in gaps if not isinstance(x, float)]},
           "rss_peak_mb": max(x["rss_mb"] for x in samples),
           "timeline": [ {k: x[k] for k in ("t","rss_mb","fds","tcp_mem_mb")} | {"viewers": (x["stats"] or {}).get("viewers"), "oq": (x["stats"] or {}).get("output_queued"), "ob": (x["stats"] or {}).get("output_buffered")} for x in samples[::4]]}
    res.update(srv.summary([("baseline", "start", "a"), ("attack_first15s", "a", "a15"), ("attack", "a", "b"), ("after", "b", "c")]))
    h16.save(tag, res)


def pipeline_behind(tag, mbytes=10, end_after=100):
    """A viewer reads its stream but pipelines megabytes of GET /hello behind it."""
    srv = h16.Server(tag, env={"STREAM_CHUNK": "1024", "STREAM_INTERVAL_MS": "50", "STREAM_END_AFTER": str(end_after)})
    samples, stop = [], threading.Event()
    threading.Thread(target=sampler, args=(srv, samples, stop, 0.25), daemon=True).start()
    time.sleep(3); srv.mark("a")
    s = h16.conn(srv.port, timeout=30)
    s.sendall(GET_STREAM)
    req = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
    n = (mbytes << 20) // len(req)
    blob = req * n
    sent = [0]
    def sender():
        try:
            view = memoryview(blob)
            while sent[0] < len(blob):
                k = s.send(view[sent[0]:sent[0] + 65536])
                sent[0] += k
        except Exception as e:
            sent.append(type(e).__name__)
    th = threading.Thread(target=sender, daemon=True); th.start()
    got = bytearray(); t0 = time.monotonic(); oks = 0
    sent_at_end = None
    try:
        while True:
            d = s.recv(1 << 20)
            if not d: break
            got += d
            if sent_at_end is None and b"0\r\n\r\n" in got:
                sent_at_end = sent[0]
            oks = got.count(b"\r\n\r\nok\n")
            if oks >= n: break
            if time.monotonic() - t0 > 100: break
    except socket.timeout:
        pass
    srv.mark("b")
    stop.set()
    time.sleep(0.5)
    srv.stop()
    res = {"pipelined_requests": n, "pipelined_mb": mbytes, "client_sent_bytes_when_stream_ended": sent_at_end,
           "client_sent_total": sent[0], "answered_ok": oks, "seconds": round(time.monotonic() - t0, 1),
           "max_input_buffered_during_stream": max(((x["stats"] or {}).get("input_buffered", 0)) for x in samples if x["t"] < (sent_at_end and 1e9)),
           "rss_peak_mb": max(x["rss_mb"] for x in samples),
           "timeline": [{"t": x["t"], "rss": x["rss_mb"], "in": (x["stats"] or {}).get("input_buffered"), "oq": (x["stats"] or {}).get("output_queued")} for x in samples[::4]]}
    res.update(srv.summary([("baseline", "start", "a"), ("attack", "a", "b")]))
    h16.save(tag, res)


def many_pipeliners(tag, viewers=500):
    """Many viewers each pipelining 200 KiB behind a stream: held input per connection."""
    srv = h16.Server(tag, env={"STREAM_CHUNK": "64", "STREAM_INTERVAL_MS": "1000"})
    time.sleep(3); srv.mark("a")
    r0 = srv.rss()
    socks = []
    blob = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" * (200 * 1024 // 32)
    for i in range(viewers):
        s = h16.conn(srv.port)
        s.setblocking(False)
        s.send(GET_STREAM)
        socks.append([s, memoryview(blob), 0])
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15:
        for e in socks:
            try:
                k = e[0].send(e[1][e[2]:e[2] + 65536]); e[2] += k
            except BlockingIOError:
                pass
            try:
                e[0].recv(65536)
            except BlockingIOError:
                pass
        time.sleep(0.01)
    time.sleep(2)
    st = srv.stats(); r1 = srv.rss()
    srv.mark("b")
    sent = sorted(e[2] for e in socks)
    for e in socks: e[0].close()
    time.sleep(3); srv.mark("c")
    srv.stop()
    res = {"viewers": viewers, "rss_before_kb": r0, "rss_during_kb": r1, "per_conn_kb": round((r1 - r0) / viewers, 1),
           "stats": st, "input_buffered_per_conn": st and round(st["input_buffered"] / viewers),
           "client_sent_min_med_max": [sent[0], sent[len(sent)//2], sent[-1]]}
    res.update(srv.summary([("baseline", "start", "a"), ("attack", "a", "b"), ("after", "b", "c")]))
    h16.save(tag, res)


def slow_readers(tag, viewers=200, attack=100, skip=1):
    """Viewers with a tiny receive buffer reading one byte a minute."""
    srv = h16.Server(tag, env={"STREAM_CHUNK": "4096", "STREAM_INTERVAL_MS": "100", "STREAM_SKIP": str(skip)})
    samples, stop = [], threading.Event()
    threading.Thread(target=sampler, args=(srv, samples, stop, 1.0), daemon=True).start()
    time.sleep(3); srv.mark("a")
    socks = []
    for i in range(viewers):
        s = h16.conn(srv.port, rcvbuf=1024)
        s.sendall(GET_STREAM)
        socks.append(s)
    t0 = time.monotonic()
    closed_at = {}
    next_read = t0 + 60
    while time.monotonic() - t0 < attack:
        if time.monotonic() >= next_read:
            next_read += 60
            for i, s in enumerate(socks):
                if i in closed_at: continue
                s.setblocking(False)
                try:
                    d = s.recv(1)
                    if not d: closed_at[i] = round(time.monotonic() - t0, 1)
                except BlockingIOError:
                    pass
                except OSError:
                    closed_at[i] = round(time.monotonic() - t0, 1)
        time.sleep(0.5)
    srv.mark("b")
    # After the attack: server-side viewers count
    st = srv.stats()
    stop.set()
    for s in socks: s.close()
    time.sleep(2); srv.mark("c")
    srv.stop()
    res = {"viewers": viewers, "skip": skip,
           "server_viewers_timeline": [(x["t"], (x["stats"] or {}).get("viewers"), (x["stats"] or {}).get("connections"), x["rss_mb"]) for x in samples[::5]],
           "stats_end": st}
    res.update(srv.summary([("baseline", "start", "a"), ("attack", "a", "b"), ("after", "b", "c")]))
    h16.save(tag, res)


def churn(tag, threads=4, seconds=30, mode="close"):
    """Streams opened and closed as fast as possible. mode=close: connect, GET /stream, read the head, close.
    mode=keepalive: one connection per thread, /stream ended by the server after 1 chunk, then the next /stream."""
    env = {"STREAM_CHUNK": "16", "STREAM_INTERVAL_MS": "1"}
    if mode == "keepalive":
        env["STREAM_END_AFTER"] = "1"
    srv = h16.Server(tag, env=env)
    samples, stop = [], threading.Event()
    threading.Thread(target=sampler, args=(srv, samples, stop, 1.0), daemon=True).start()
    time.sleep(3); srv.mark("a")
    counts = [0] * threads; errs = [0] * threads; bad = [0] * threads
    end = time.monotonic() + seconds
    def worker(k):
        if mode == "close":
            while time.monotonic() < end:
                try:
                    s = h16.conn(srv.port, timeout=5)
                    s.sendall(GET_STREAM)
                    h, rest = h16.read_head(s)
                    if not h.startswith("HTTP/1.1 200"): bad[k] += 1
                    s.close(); counts[k] += 1
                except Exception:
                    errs[k] += 1
        else:
            s = h16.conn(srv.port, timeout=5)
            buf = b""
            while time.monotonic() < end:
                try:
                    s.sendall(GET_STREAM)
                    # read until the terminating chunk of this stream
                    while b"\r\n0\r\n\r\n" not in buf:
                        d = s.recv(65536)
                        if not d: raise ConnectionError("eof")
                        buf += d
                    i = buf.index(b"\r\n0\r\n\r\n") + 7
                    one, buf = buf[:i], buf[i:]
                    if not one.startswith(b"HTTP/1.1 200") or b"Transfer-Encoding: chunked" not in one: bad[k] += 1
                    counts[k] += 1
                except Exception as e:
                    errs[k] += 1
                    s = h16.conn(srv.port, timeout=5); buf = b""
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    [t.start() for t in ts]; [t.join() for t in ts]
    srv.mark("b")
    time.sleep(5); srv.mark("c")
    st = srv.stats()
    stop.set()
    srv.stop()
    res = {"mode": mode, "streams": sum(counts), "per_s": round(sum(counts) / seconds), "errors": sum(errs), "bad": sum(bad),
           "stats_after": st,
           "timeline": [(x["t"], x["rss_mb"], x["fds"], (x["stats"] or {}).get("viewers"), (x["stats"] or {}).get("connections")) for x in samples[::3]]}
    res.update(srv.summary([("baseline", "start", "a"), ("attack", "a", "b"), ("after", "b", "c")]))
    h16.save(tag, res)


if __name__ == "__main__":
    fn = globals()[sys.argv[1]]
    kw = {}
    for a in sys.argv[3:]:
        k, v = a.split("="); kw[k] = int(v) if v.lstrip("-").isdigit() else v
    fn(sys.argv[2], **kw)
