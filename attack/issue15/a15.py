#!/usr/bin/env python3
"""The issue-15 attacks. `python3 attack/issue15/a15.py NAME [key=value ...]`
(`--list` lists them). Each starts its own target (and control), runs a
quiet baseline, the attack, a quiet "after" phase, and writes
results/TAG.json (+ raw probe/subscriber/stats files)."""
import multiprocessing as mp
import os
import selectors
import socket
import sys
import time

import lib15
import ws15

ATTACKS = {}


def attack(fn):
    ATTACKS[fn.__name__] = fn
    return fn


def sleep_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)


# ---------------------------------------------------------------------------
# Client fleets
# ---------------------------------------------------------------------------

def open_many(port, n, path="/ws", rcvbuf=4096, batch=200, extensions=None, tls=False,
              deadline=120.0):
    """n WebSockets that read nothing past their 101 (the head is read byte
    by byte, so nothing of the first broadcasts is taken). Returns (socks,
    failures)."""
    socks, fails = [], 0
    t_end = time.monotonic() + deadline
    i = 0
    while i < n and time.monotonic() < t_end:
        group = []
        for _ in range(min(batch, n - i)):
            i += 1
            try:
                s = ws15.connect(port, rcvbuf=rcvbuf, timeout=20, tls=tls)
                s.sendall(ws15.upgrade_request(path if "<i>" not in path
                                               else path.replace("<i>", str(i)),
                                               extensions=extensions))
                group.append(s)
            except OSError:
                fails += 1
        for s in group:
            try:
                st, _, _ = ws15.read_head_exact(s, 20)
                if st == 101:
                    socks.append(s)
                else:
                    fails += 1
                    s.close()
            except (OSError, ValueError):
                fails += 1
                s.close()
    return socks, fails


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def tcp_mem_pages():
    """The machine's TCP memory in pages (/proc/net/sockstat) and
    net.ipv4.tcp_mem's pressure threshold."""
    mem = None
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                mem = int(parts[parts.index("mem") + 1])
    with open("/proc/sys/net/ipv4/tcp_mem") as f:
        pressure = int(f.read().split()[1])
    return mem, pressure


def sample_stats(run, key="all"):
    st = run.target.last_stats()
    out = {k: st.get(k) for k in ("conns", "all", "output_buffered", "output_queued", "rss_kb",
                                  "hwm_kb", "seq", "closed", "stats_call_ms", "closed_ws",
                                  "closed_ws_dropped", "srv_sender_queued", "conn_count",
                                  "max_poll_ms")}
    out["tcp_mem_pages"], out["tcp_pressure_pages"] = tcp_mem_pages()
    return out


# ---------------------------------------------------------------------------
# Attacks
# ---------------------------------------------------------------------------

@attack
def smoke(p):
    """Harness check: 1 WS + 1 SSE + 1 deflate subscriber, 4 KiB at 10/s."""
    env = dict(BCAST_MS=100, BCAST_SIZE=4096, BCAST_SSE=1)
    subs = [dict(path="/ws"), dict(path="/events"),
            dict(path="/ws?deflate=1", deflate="permessage-deflate")]
    run = lib15.Run(p.get("tag", "smoke"), env, subs, control=False)
    run.mark("baseline")
    time.sleep(float(p.get("duration", 5)))
    run.mark("end")
    return run.finish()


@attack
def noread(p):
    """`n` WebSockets (rcvbuf 4 KiB) that never read while `size`-byte
    broadcasts go out every `ms` ms; then they all close. Memory vs N x size,
    drops at the bound, memory after."""
    n = int(p.get("n", 10000))
    size = int(p.get("size", 4096))
    ms = int(p.get("ms", 100))
    hold = float(p.get("hold", 30))
    env = dict(BCAST_MS=ms, BCAST_SIZE=size, WS_SEND_BUF=p.get("sendbuf", 8 << 20),
               SEND_TIMEOUT_S=p.get("send_timeout", 60), STATS_MS=p.get("stats_ms", 1000),
               STATS_FULL=p.get("stats_full", 1))
    if "sndbuf" in p:
        env["SNDBUF"] = p["sndbuf"]
    if "via" in p:
        env["BCAST_VIA"] = p["via"]
    path = p.get("path", "/ws")
    tls = p.get("tls", "0") == "1"
    if tls:
        env["TLS"] = 1
    if path.startswith("/events"):
        env["BCAST_SSE"] = 1
        env["BCAST_WS"] = 0
    run = lib15.Run(p.get("tag", f"noread_{n}_{size}"), env,
                    [dict(path="/events" if path.startswith("/events") else "/ws")],
                    control=p.get("control", "1") == "1")
    run.mark("baseline")
    time.sleep(5)
    run.note("before", sample_stats(run))
    run.mark("connect")
    t0 = time.monotonic()
    if path.startswith("/events"):
        socks, fails = open_many_sse(run.target.port, n, int(p.get("rcvbuf", 4096)))
    else:
        socks, fails = open_many(run.target.tls_port if tls else run.target.port, n, path,
                                 rcvbuf=int(p.get("rcvbuf", 4096)), tls=tls)
    run.note("connected", {"ok": len(socks), "fail": fails, "secs": round(time.monotonic() - t0, 1)})
    run.mark("hold")
    samples = []
    t_end = time.monotonic() + hold
    while time.monotonic() < t_end:
        time.sleep(2)
        samples.append(sample_stats(run))
    run.note("hold_samples", samples)
    run.mark("closing")
    close_all(socks)
    time.sleep(float(p.get("after", 10)))
    run.note("after", sample_stats(run))
    run.mark("end")
    return run.finish()


@attack
def drip(p):
    """`n` WebSockets (rcvbuf 4 KiB) read nothing for `lag` s, then read at
    the broadcast's byte rate, so their backlog stays just under the bound:
    memory (segments or copies per connection) and others' latency."""
    n = int(p.get("n", 2000))
    size = int(p.get("size", 256))
    ms = int(p.get("ms", 5))
    lag = float(p.get("lag", 15))
    hold = float(p.get("hold", 30))
    sendbuf = int(p.get("sendbuf", 1 << 20))
    env = dict(BCAST_MS=ms, BCAST_SIZE=size, WS_SEND_BUF=sendbuf, STATS_MS=p.get("stats_ms", 2000),
               STATS_FULL=p.get("stats_full", 1),
               SNDBUF=p.get("sndbuf", 16384))
    run = lib15.Run(p.get("tag", f"drip_{n}_{size}"), env, [dict(path="/ws")],
                    control=p.get("control", "1") == "1")
    run.mark("baseline")
    time.sleep(5)
    run.mark("connect")
    socks, fails = open_many(run.target.port, n, "/ws", rcvbuf=4096)
    run.note("connected", {"ok": len(socks), "fail": fails})
    run.mark("lag")
    time.sleep(lag)
    run.note("after_lag", sample_stats(run))
    run.mark("drip")
    # Wire bytes per message: payload + 2 or 4 bytes of frame head.
    rate = (size + (2 if size < 126 else 4)) * 1000.0 / ms
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
    got = 0
    eofs = 0
    alive = list(socks)
    t_end = time.monotonic() + hold
    last = time.monotonic()
    samples = []
    next_sample = time.monotonic() + 5
    while time.monotonic() < t_end and alive:
        time.sleep(0.05)
        now = time.monotonic()
        quota = int(rate * (now - last))
        last = now
        keep = []
        for s in alive:
            want = quota
            try:
                while want > 0:
                    d = s.recv(min(want, 65536))
                    if not d:
                        eofs += 1
                        s.close()
                        break
                    got += len(d)
                    want -= len(d)
                else:
                    keep.append(s)
                    continue
            except BlockingIOError:
                keep.append(s)
            except OSError:
                eofs += 1
        alive = keep
        if now >= next_sample:
            next_sample = now + 5
            samples.append(sample_stats(run))
    run.note("drip_samples", samples)
    run.note("drip", {"read_bytes": got, "eof": eofs, "alive": len(alive), "rate_per_conn": rate})
    run.mark("closing")
    close_all(socks)
    time.sleep(10)
    run.note("after", sample_stats(run))
    run.mark("end")
    return run.finish()


def reader_fleet(port, n, path, seconds, result, ready, rcvbuf=None):
    """Process body: n WebSockets on `path` that read and discard
    everything for `seconds`; puts (opened, bytes read, eofs) in result."""
    lib15.raise_fd_limit()
    socks, fails = open_many(port, n, path, rcvbuf=rcvbuf)
    ready.set()
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    got = eof = 0
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        for key, _ in sel.select(0.1):
            try:
                d = key.fileobj.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            if not d:
                eof += 1
                sel.unregister(key.fileobj)
                key.fileobj.close()
                continue
            got += len(d)
    result.put((len(socks), fails, got, eof))
    close_all(socks)


def chat_message(seq, size=40):
    m = b"C%010dT%019d|" % (seq, time.time_ns())
    return m + ws15.expected_filler(seq, size - len(m))


@attack
def chat(p):
    """`readers` /chat members that read everything (2 processes) + one
    attacker sending `size`-byte chat lines as fast as its socket takes
    them (at most `count`, for `secs`), each broadcast by the loop to the
    whole group; a /ws subscriber measures the loop's own 10/s broadcast and
    a /chat subscriber the chat lines' latency."""
    readers = int(p.get("readers", 5000))
    size = int(p.get("size", 40))
    secs = float(p.get("secs", 20))
    count = int(p.get("count", 2_000_000))
    env = dict(BCAST_MS=100, BCAST_SIZE=64, WS_SEND_BUF=p.get("sendbuf", 256 << 10),
               STATS_MS=1000, STATS_FULL=0, SNDBUF=p.get("sndbuf", 65536),
               WS_KEEPALIVE_S=p.get("keepalive", 0))
    subs = [dict(path="/ws"), dict(path="/chat", tags="C")]
    run = lib15.Run(p.get("tag", f"chat_{readers}"), env, subs,
                    control=p.get("control", "1") == "1")
    run.mark("baseline")
    time.sleep(5)
    run.mark("connect")
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = []
    total_time = secs + 40
    for k in range(2):
        ready = ctx.Event()
        pr = ctx.Process(target=reader_fleet,
                         args=(run.target.port, readers // 2, "/chat", total_time, q, ready))
        pr.start()
        procs.append((pr, ready))
    for pr, ready in procs:
        ready.wait(120)
    time.sleep(3)
    run.note("after_connect", sample_stats(run))
    run.mark("quiet_members")
    time.sleep(5)
    run.mark("attack")
    s, _, _ = ws15.open_ws(run.target.port, "/chat")
    import threading
    stop = threading.Event()
    got = [0]

    def drain():
        s2 = s.dup()
        s2.settimeout(0.2)
        while not stop.is_set():
            try:
                d = s2.recv(1 << 20)
                if not d:
                    break
                got[0] += len(d)
            except socket.timeout:
                continue
            except OSError:
                break
        s2.close()

    th = threading.Thread(target=drain, daemon=True)
    th.start()
    s.settimeout(5)
    sent = 0
    t_end = time.monotonic() + secs
    err = None
    batch = 500
    while time.monotonic() < t_end and sent < count:
        frames = b"".join(ws15.fast_masked_frame(1, chat_message(sent + i, size))
                          for i in range(batch))
        try:
            s.sendall(frames)
        except OSError as e:
            err = f"{type(e).__name__}: {e}"
            break
        sent += batch
    stop.set()
    run.note("attacker", {"sent": sent, "read_back": got[0], "error": err,
                          "rate_per_s": round(sent / secs)})
    run.note("at_attack_end", sample_stats(run))
    s.close()
    run.mark("after")
    time.sleep(10)
    run.note("after", sample_stats(run))
    run.mark("end")
    res = run.finish()
    for pr, _ in procs:
        pr.terminate()
    fleet = []
    while not q.empty():
        fleet.append(q.get())
    print("fleet", fleet)
    return res


def read_first_messages(socks, groups, timeout=10.0, done_out=None):
    """Reads from each socket until one whole message arrived (or timeout);
    checks that every message names the socket's own group. Returns
    (with a message, wrong-group messages, examples)."""
    sel = selectors.DefaultSelector()
    parsers = {}
    for s, g in zip(socks, groups):
        s.setblocking(False)
        parsers[s] = (ws15.FrameParser(), g)
        sel.register(s, selectors.EVENT_READ)
    done = set()
    wrong = 0
    examples = []
    t_end = time.monotonic() + timeout
    while len(done) < len(socks) and time.monotonic() < t_end:
        for key, _ in sel.select(0.1):
            s = key.fileobj
            try:
                d = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            parser, g = parsers[s]
            if not d:
                sel.unregister(s)
                done.add(s)
                continue
            for op, payload in parser.feed(d):
                if op == 1:
                    if not payload.startswith(b"g%d:" % g):
                        wrong += 1
                        if len(examples) < 5:
                            examples.append(f"group {g} got {payload[:40]!r}")
                    if s not in done:
                        done.add(s)
                        sel.unregister(s)
                        break
    sel.close()
    if done_out is not None:
        done_out.update(done)
    return len(done), wrong, examples


def hard_close(s, how):
    try:
        if how == 0:
            s.setblocking(True)
            s.settimeout(1)
            s.sendall(ws15.client_frame(8, b"\x03\xe8bye"))
        elif how == 2:
            import struct as st
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, st.pack("ii", 1, 0))
        s.close()
    except OSError:
        s.close()


@attack
def churn(p):
    """`rounds` x: `n` WebSockets join groups /g/<i % 8> (group broadcasts
    every 20 ms), each checks it gets only its group's messages, then all
    leave (1/3 close frame, 1/3 FIN, 1/3 RST). Group sizes after each round
    (must return to the `steady` members), CPU per join and per close,
    wrong-group deliveries (stale ids). `steady` members of group 0 stay
    throughout (a large group: is leaving O(1)?)."""
    n = int(p.get("n", 10000))
    rounds = int(p.get("rounds", 5))
    steady = int(p.get("steady", 0))
    env = dict(BCAST_MS=p.get("ms", 200), BCAST_SIZE=64, BCAST_WS=0, GROUP_BCAST=1, GROUPS=8,
               STATS_MS=250, STATS_FULL=0, RECEIVE=p.get("receive", 1),
               WS_KEEPALIVE_S=p.get("keepalive", 0))
    run = lib15.Run(p.get("tag", f"churn_{n}_s{steady}"), env, [dict(path="/ws")],
                    control=p.get("control", "0") == "1")
    procs = []
    if steady:
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        ready = ctx.Event()
        pr = ctx.Process(target=reader_fleet,
                         args=(run.target.port, steady, "/g/0", 3600, q, ready))
        pr.start()
        procs.append(pr)
        ready.wait(120)
        time.sleep(2)
    run.mark("baseline")
    time.sleep(3)
    base = run.target.last_stats()
    run.note("base_groups", base.get("groups"))
    rows = []
    for r in range(rounds):
        run.mark(f"join{r}")
        t0 = time.monotonic()
        cpu0 = proc_cpu(run.target.pid)
        socks, fails = open_many(run.target.port, n, "/g/<i>", rcvbuf=None)
        groups = [(i + 1) % 8 for i in range(n)]
        # open_many numbers paths 1..n in order; failures shift nothing
        # only if none failed (checked below).
        t_join = time.monotonic() - t0
        cpu_join = proc_cpu(run.target.pid) - cpu0
        got, wrong, examples = read_first_messages(socks, groups[:len(socks)], timeout=30)
        st_full = run.target.last_stats()
        run.mark(f"leave{r}")
        cpu1 = proc_cpu(run.target.pid)
        t1 = time.monotonic()
        for k, s in enumerate(socks):
            hard_close(s, k % 3)
        t_close = time.monotonic() - t1
        time.sleep(4)
        cpu_close = proc_cpu(run.target.pid) - cpu1
        st = run.target.last_stats()
        row = {"round": r, "opened": len(socks), "fail": fails, "join_s": round(t_join, 1),
               "got_msg": got, "wrong_group": wrong, "examples": examples,
               "groups_full": st_full.get("groups"), "conns_full": st_full.get("conns"),
               "groups_after": st.get("groups"), "conns_after": st.get("conns"),
               "cpu_ms_per_join": round(cpu_join * 1000 / max(1, len(socks)), 4),
               "cpu_ms_per_close": round(cpu_close * 1000 / max(1, len(socks)), 4),
               "rss_kb": st.get("rss_kb")}
        rows.append(row)
        print("  ", row, flush=True)
    run.note("rounds", rows)
    time.sleep(3)
    run.note("final", {k: run.target.last_stats().get(k) for k in ("groups", "conns", "rss_kb")})
    run.mark("end")
    res = run.finish()
    for pr in procs:
        pr.terminate()
    return res


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / lib15.CLK_TCK


def ghost_worker(port, secs, path, send, result):
    """Process body: connect, handshake, send one message (if `send`),
    close; as fast as possible for `secs`."""
    n = fails = 0
    t_end = time.monotonic() + secs
    msg = ws15.fast_masked_frame(1, b"hello from a ghost")
    while time.monotonic() < t_end:
        try:
            s = ws15.connect(port, timeout=5)
            s.sendall(ws15.upgrade_request(path) + (msg if send else b""))
            st, _, _ = ws15.read_head(s, 5)
            s.close()
            n += 1 if st == 101 else 0
            fails += 0 if st == 101 else 1
        except OSError:
            fails += 1
    result.put((n, fails))


@attack
def ghosts(p):
    """A program that broadcasts but never calls receive() (RECEIVE=0):
    `procs` processes open a WebSocket, send one message and close, as fast
    as they can for `secs`. Each closed socket with an untaken message keeps
    its slot (and its group membership) for keep_alive_timeout (60 s): do
    the slots run out (max_connections) and do probes fail?"""
    secs = float(p.get("secs", 30))
    procs_n = int(p.get("procs", 4))
    env = dict(BCAST_MS=100, BCAST_SIZE=64, RECEIVE=0, STATS_MS=500, STATS_FULL=1,
               MAX_CONN=p.get("max_conn", 16384))
    run = lib15.Run(p.get("tag", "ghosts"), env, [dict(path="/ws")],
                    control=p.get("control", "1") == "1")
    run.mark("baseline")
    time.sleep(5)
    run.mark("attack")
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=ghost_worker,
                         args=(run.target.port, secs, "/ws", p.get("send", "1") == "1", q))
             for _ in range(procs_n)]
    for pr in procs:
        pr.start()
    samples = []
    t_end = time.monotonic() + secs
    while time.monotonic() < t_end:
        time.sleep(5)
        samples.append(sample_stats(run))
    for pr in procs:
        pr.join(30)
    res = [q.get() for _ in procs if not q.empty()]
    run.note("ghosts", {"handshakes": sum(r[0] for r in res), "fails": sum(r[1] for r in res)})
    run.note("attack_samples", samples)
    run.mark("after")
    samples = []
    for _ in range(int(p.get("after", 70)) // 5):
        time.sleep(5)
        samples.append(sample_stats(run))
    run.note("after_samples", samples)
    run.mark("end")
    return run.finish()


@attack
def sender_flood(p):
    """A thread of the target floods `Sender::group_send` (`count` messages
    of `size` bytes, `rate`/s, -1 = as fast as it can) to group `all`, which
    has `members` reading WebSockets (+ the /ws subscriber): is the
    cross-thread queue bounded, what does it cost in memory and latency?"""
    count = int(p.get("count", 5_000_000))
    members = int(p.get("members", 0))
    delay = 8000 if members == 0 else 20000
    env = dict(BCAST_MS=0, SENDER_COUNT=count, SENDER_RATE=p.get("rate", -1),
               SENDER_SIZE=p.get("size", 64), SENDER_DELAY_MS=delay, STATS_MS=500,
               STATS_FULL=p.get("stats_full", 1), WS_KEEPALIVE_S=0,
               WS_SEND_BUF=p.get("sendbuf", 8 << 20))
    if "stall_ms" in p:
        env.update(STALL_AT_MS=delay + 2000, STALL_MS=p["stall_ms"])
    run = lib15.Run(p.get("tag", f"sender_flood_{members}"), env, [dict(path="/ws")],
                    control=False)
    t_start = time.monotonic()
    procs = []
    if members:
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        ready = ctx.Event()
        pr = ctx.Process(target=reader_fleet,
                         args=(run.target.port, members, "/ws", 600, q, ready))
        pr.start()
        procs.append(pr)
        ready.wait(120)
    run.mark("baseline")
    sleep_until(t_start + delay / 1000 - 1)
    run.mark("flood")
    samples = []
    t_end = time.monotonic() + float(p.get("secs", 60))
    last = None
    while time.monotonic() < t_end:
        time.sleep(2)
        st = run.target.last_stats()
        samples.append({k: st.get(k) for k in ("sender_queued", "sender_refused", "rss_kb", "conns", "all",
                                               "max_poll_ms", "polls", "srv_sender_queued", "hwm_kb")})
        if st.get("sender_queued") == count and last == count:
            break
        last = st.get("sender_queued")
    run.note("flood_samples", samples)
    run.mark("after")
    time.sleep(float(p.get("after", 15)))
    run.note("after", sample_stats(run))
    run.mark("end")
    res = run.finish()
    for pr in procs:
        pr.terminate()
    return res


def holder(port, n, path, tls, rcvbuf, opened, release, result):
    """Process body: opens n non-reading WebSockets, reports, holds them
    until `release` is set, then closes them."""
    lib15.raise_fd_limit()
    socks, fails = open_many(port, n, path, rcvbuf=rcvbuf, tls=tls, deadline=300)
    result.put((len(socks), fails))
    opened.set()
    release.wait(600)
    close_all(socks)


@attack
def tls_noread(p):
    """`n` wss:// clients (rcvbuf 4 KiB, opened by `procs` processes in
    parallel) that never read, while `size`-byte broadcasts go out every
    `ms` ms, held `hold` s: memory per TLS connection (encrypted records
    kept for each, on top of the shared plaintext frames), drops, latency."""
    n = int(p.get("n", 5000))
    procs_n = int(p.get("procs", 8))
    size = int(p.get("size", 65536))
    ms = int(p.get("ms", 100))
    hold = float(p.get("hold", 20))
    env = dict(TLS=1, BCAST_MS=ms, BCAST_SIZE=size, WS_SEND_BUF=p.get("sendbuf", 8 << 20),
               STATS_MS=p.get("stats_ms", 2000), STATS_FULL=p.get("stats_full", 1),
               WS_KEEPALIVE_S=0)
    if "sndbuf" in p:
        env["SNDBUF"] = p["sndbuf"]
    run = lib15.Run(p.get("tag", f"tls_noread_{n}_{size}"), env, [dict(path="/ws", tls=True)],
                    control=p.get("control", "0") == "1")
    run.mark("baseline")
    time.sleep(5)
    run.mark("connect")
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    release = ctx.Event()
    ps = []
    t0 = time.monotonic()
    for _ in range(procs_n):
        opened = ctx.Event()
        pr = ctx.Process(target=holder, args=(run.target.tls_port, n // procs_n, "/ws", True,
                                              int(p.get("rcvbuf", 4096)), opened, release, q))
        pr.start()
        ps.append((pr, opened))
    for pr, opened in ps:
        opened.wait(300)
    res = [q.get() for _ in ps]
    run.note("connected", {"ok": sum(r[0] for r in res), "fail": sum(r[1] for r in res),
                           "secs": round(time.monotonic() - t0, 1)})
    run.mark("hold")
    samples = []
    t_end = time.monotonic() + hold
    while time.monotonic() < t_end:
        time.sleep(2)
        samples.append(sample_stats(run))
    run.note("hold_samples", samples)
    run.mark("closing")
    release.set()
    for pr, _ in ps:
        pr.join(60)
    time.sleep(8)
    run.note("after", sample_stats(run))
    run.mark("end")
    return run.finish()


DEFLATE_VARIANTS = {
    "plain": ("/ws", None),
    "default": ("/ws?deflate=1", "permessage-deflate"),
    "win10": ("/ws?deflate=1", "permessage-deflate; server_max_window_bits=10"),
    "clientbits": ("/ws?deflate=1", "permessage-deflate; client_max_window_bits"),
    "level1": ("/ws?deflate=1&level=1", "permessage-deflate"),
    "ctx": ("/ws?deflate=1&ctx=1", "permessage-deflate"),
}


@attack
def deflate_mix(p):
    """Compressed (several settings, one keeping context) and plain
    WebSockets in one broadcast of 4 KiB of random letters: each subscriber
    inflates and checks every byte; `n` non-readers per setting show the
    memory per setting (one shared copy) and per context-keeping socket."""
    n = int(p.get("n", 500))
    hold = float(p.get("hold", 12))
    env = dict(BCAST_MS=100, BCAST_SIZE=p.get("size", 4096), BCAST_RANDOM=1, STATS_FULL=1,
               STATS_MS=1000, SNDBUF=16384, WS_KEEPALIVE_S=0)
    subs = [dict(path=path, deflate=ext) for path, ext in DEFLATE_VARIANTS.values()]
    run = lib15.Run(p.get("tag", "deflate_mix"), env, subs, control=False)
    run.mark("baseline")
    time.sleep(5)
    run.note("base", sample_stats(run))
    phases = [("shared", ["plain", "default", "win10", "level1"]), ("ctx", ["ctx"]),
              ("plain_only", ["plain"])]
    for name, variants in phases:
        run.mark(name)
        socks = []
        for v in variants:
            path, ext = DEFLATE_VARIANTS[v]
            ss, fails = open_many(run.target.port, n, path, rcvbuf=4096, extensions=ext)
            socks += ss
        t_end = time.monotonic() + hold
        samples = []
        while time.monotonic() < t_end:
            time.sleep(2)
            samples.append(sample_stats(run))
        run.note(f"{name}_samples", samples[-2:])
        close_all(socks)
        time.sleep(4)
    run.mark("end")
    return run.finish()


@attack
def byte_reader(p):
    """Subscribers that read 1 byte per recv (rcvbuf 2 KiB, server SNDBUF
    4 KiB, so writes stop mid-frame all the time) while broadcasts cycle
    through sizes on both sides of the copy/share threshold (100, 255, 256,
    257, 4096, 70000) and the clients ping 5 times a second (pongs are the
    connection's own bytes, queued among shared frames): plain, deflate and
    TLS. Every byte and every pong is checked."""
    secs = float(p.get("secs", 60))
    env = dict(BCAST_MS=p.get("ms", 200), BCAST_SIZES=p.get("sizes", "100,255,256,257,4096,70000"),
               BCAST_RANDOM=1, BCAST_SSE=1, SNDBUF=4096, TLS=1, STATS_MS=1000, STATS_FULL=1,
               WS_KEEPALIVE_S=0)
    slow = dict(read=1, rcvbuf=2048)
    subs = [dict(path="/ws", **{"ping-every": 0.2}, **slow),
            dict(path="/ws?deflate=1", deflate="permessage-deflate", **{"ping-every": 0.2}, **slow),
            dict(path="/ws", tls=True, **{"ping-every": 0.2}, **slow),
            dict(path="/ws"),
            dict(path="/events", **slow)]
    run = lib15.Run(p.get("tag", "byte_reader"), env, subs, control=False)
    run.mark("run")
    time.sleep(secs)
    run.mark("end")
    return run.finish()


@attack
def sndbuf_latency(p):
    """No attack: one reading subscriber's latency for `size`-byte
    broadcasts with the default kernel send buffer, then with
    send_buffer_size(16 KiB) (the setting these runs use for 10,000
    stalled clients)."""
    for label, extra in (("default", {}), ("sndbuf16k", {"SNDBUF": 16384})):
        env = dict(BCAST_MS=100, BCAST_SIZE=p.get("size", 65536), **extra)
        run = lib15.Run(f"sndbuf_latency_{label}", env, [dict(path="/ws")], control=False)
        run.mark("run")
        time.sleep(float(p.get("secs", 10)))
        run.mark("end")
        run.finish()


def open_many_sse(port, n, rcvbuf, batch=200):
    socks, fails = [], 0
    i = 0
    while i < n:
        group = []
        for _ in range(min(batch, n - i)):
            i += 1
            try:
                s = ws15.connect(port, rcvbuf=rcvbuf, timeout=20)
                s.sendall(ws15.sse_request("/events"))
                group.append(s)
            except OSError:
                fails += 1
        for s in group:
            try:
                st, _, _ = ws15.read_head_exact(s, 20)
                if st == 200:
                    socks.append(s)
                else:
                    fails += 1
            except OSError:
                fails += 1
    return socks, fails


def main():
    if len(sys.argv) < 2 or sys.argv[1] == "--list":
        for name, fn in ATTACKS.items():
            print(f"{name:22} {(fn.__doc__ or '').strip().splitlines()[0]}")
        return
    name = sys.argv[1]
    params = dict(a.split("=", 1) for a in sys.argv[2:])
    ATTACKS[name](params)


if __name__ == "__main__":
    main()
