#!/usr/bin/env python3
"""Re-check attacks on the issue-15 fixes (closed WebSockets kept for the
program, the `Sender` share per poll, the 16 KiB session feeding).
`python3 a15b.py --list`. Results go to results/TAG.json, like a15.py."""
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time

import a15
import lib15
import ws15

ATTACKS = {}


def attack(fn):
    ATTACKS[fn.__name__] = fn
    return fn


def last_row(run):
    return run.target.last_stats()


def ghost_sender(port, secs, size, batch, result, late=False):
    """Process body: `batch` WebSockets open, each sends one message of
    `size` bytes, then all close (FIN); repeated for `secs`. Counts the
    messages whose connection got its 101 (the server had them). `late`:
    the message goes after the 101, just before the FIN (both in one read
    of the server, so the slot is closed with the message untaken)."""
    sent = fails = 0
    payload = b"x" * size
    t_end = time.monotonic() + secs
    while time.monotonic() < t_end:
        socks = []
        for _ in range(batch):
            try:
                s = ws15.connect(port, timeout=10)
                s.sendall(ws15.upgrade_request("/ws")
                          + (b"" if late else ws15.fast_masked_frame(2, payload)))
                socks.append(s)
            except OSError:
                fails += 1
        for s in socks:
            try:
                st, _, _ = ws15.read_head(s, 10)
                if st == 101:
                    if late:
                        s.sendall(ws15.fast_masked_frame(2, payload))
                    sent += 1
                else:
                    fails += 1
            except (OSError, ValueError):
                fails += 1
        for s in socks:
            s.close()
    result.put((sent, fails))


@attack
def ghost_churn(p):
    """Closing sockets with one message each while the program receives
    slowly (RECEIVE_EVERY_MS/RECEIVE_BATCH) or promptly (every=0), with a
    small max_connections so the closed-WebSocket bound is hit: are the
    messages the program does not get all counted in
    closed_websockets_dropped (sent <= received + dropped)? Any panic?"""
    secs = float(p.get("secs", 20))
    every = int(p.get("every", 100))
    env = dict(BCAST_MS=0, STATS_MS=500, STATS_FULL=1, MAX_CONN=p.get("max_conn", 100),
               WS_KEEPALIVE_S=0, RECEIVE_EVERY_MS=every, RECEIVE_COUNT=1,
               RECEIVE_BATCH=p.get("batch", 20 if every else 1 << 40))
    run = lib15.Run(p.get("tag", "ghost_churn"), env, [], control=p.get("control", "0") == "1")
    run.mark("baseline")
    time.sleep(2)
    run.mark("attack")
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=ghost_sender,
                         args=(run.target.port, secs, int(p.get("size", 64)),
                               int(p.get("burst", 50)), q, p.get("late", "0") == "1"))
             for _ in range(int(p.get("procs", 2)))]
    for pr in procs:
        pr.start()
    res = [q.get(timeout=secs + 60) for _ in procs]
    for pr in procs:
        pr.join(10)
    run.mark("after")
    # Let the slow receiver work through its list and the kept slots expire.
    time.sleep(float(p.get("after", 15)))
    st = last_row(run)
    sent = sum(r[0] for r in res)
    out = {"sent": sent, "client_fails": sum(r[1] for r in res),
           "recv_msgs": st.get("recv_msgs"), "closed_ws_dropped": st.get("closed_ws_dropped"),
           "recv_empty": st.get("recv_empty"), "recv_closed_msgs": st.get("recv_closed_msgs"), "recv_pending": st.get("recv_pending"),
           "closed_ws_now": st.get("closed_ws"), "conns_now": st.get("conns"),
           "hwm_kb": st.get("hwm_kb"),
           "lost_unexplained": sent - (st.get("recv_msgs") or 0) - (st.get("closed_ws_dropped") or 0),
           "duplicated": max(0, (st.get("recv_msgs") or 0) - sent),
           "alive": run.target.proc.poll() is None}
    out["panic_in_log"] = "panicked" in open(run.target.base + ".log").read()
    run.note("accounting", out)
    run.mark("end")
    return run.finish()


@attack
def sender_drop(p):
    """A thread floods `Sender::group_send` (4 KiB, as fast as it can) to a
    group of `members` readers; the program drops its `Server` in the middle
    (DROP_AT_MS): no panic or hang, the Sender's calls fail with
    ServerGone, the memory of the queued commands is freed."""
    members = int(p.get("members", 200))
    delay = 6000 if members else 2000
    env = dict(BCAST_MS=0, SENDER_COUNT=p.get("count", 3_000_000), SENDER_RATE=-1,
               SENDER_SIZE=p.get("size", 4096), SENDER_DELAY_MS=delay, STATS_MS=200,
               STATS_FULL=1, WS_KEEPALIVE_S=0, DROP_AT_MS=delay + int(p.get("flood_ms", 3000)),
               DROP_LINGER_MS=p.get("linger_ms", 3000))
    rows = []
    for rep in range(int(p.get("reps", 3))):
        tag = f"{p.get('tag', 'sender_drop')}_{rep}"
        srv = lib15.Server("target", tag, env, [])
        fleet = None
        if members:
            ctx = mp.get_context("fork")
            q = ctx.Queue()
            ready = ctx.Event()
            fleet = ctx.Process(target=a15.reader_fleet,
                                args=(srv.port, members, "/ws", 60, q, ready))
            fleet.start()
        t0 = time.monotonic()
        try:
            rc = srv.proc.wait(delay / 1000 + 60)
        except subprocess.TimeoutExpired:
            rc = "HANG"
        took = time.monotonic() - t0
        drop = [r for r in srv.stats() if r.get("dropped")]
        before = [r for r in srv.stats() if not r.get("dropped")]
        log = open(srv.base + ".log").read()
        row = {"rc": rc, "secs": round(took, 1), "panic": "panicked" in log,
               "drop": drop[-1] if drop else None,
               "rss_kb_before_drop": before[-1].get("rss_kb") if before else None,
               "srv_sender_queued_before": before[-1].get("srv_sender_queued") if before else None}
        print(json.dumps(row), flush=True)
        rows.append(row)
        srv.stop()
        if fleet:
            fleet.terminate()
    result = {"tag": p.get("tag", "sender_drop"), "env": env, "notes": {"reps": rows}}
    with open(os.path.join(lib15.RESULTS, result["tag"] + ".json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def ping_flooder(port, n, secs, size, result):
    """Process body: `n` WebSockets (rcvbuf 4 KiB) send pings of `size`
    bytes as fast as the socket takes them and never read."""
    socks, fails = a15.open_many(port, n, rcvbuf=4096)
    ping = ws15.fast_masked_frame(9, b"p" * size)
    burst = ping * 64
    for s in socks:
        s.setblocking(False)
    sent = 0
    # What each socket has left of its burst: a partial send must go on
    # where it stopped, or the frames are cut (a protocol error).
    left = [0] * len(socks)
    t_end = time.monotonic() + secs
    while time.monotonic() < t_end:
        progressed = False
        for i, s in enumerate(socks):
            try:
                k = s.send(burst[len(burst) - left[i]:] if left[i] else burst)
                left[i] = (left[i] or len(burst)) - k
                sent += k
                progressed = progressed or k > 0
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                pass
        if not progressed:
            time.sleep(0.01)
    # Read what each socket got (pongs, then maybe a close frame) to see
    # whether the server closed it and with what code.
    codes = {}
    pongs = 0
    for s in socks:
        s.setblocking(True)
        s.settimeout(0.5)
        data = b""
        try:
            while len(data) < (64 << 20):
                d = s.recv(1 << 20)
                if not d:
                    break
                data += d
        except OSError:
            pass
        i = 0
        while i + 2 <= len(data):
            op, ln, h = data[i] & 0x0F, data[i + 1] & 0x7F, 2
            if ln == 126:
                ln, h = int.from_bytes(data[i + 2:i + 4], "big"), 4
            elif ln == 127:
                ln, h = int.from_bytes(data[i + 2:i + 10], "big"), 10
            if op == 10:
                pongs += 1
            if op == 8:
                code = int.from_bytes(data[i + h:i + h + 2], "big")
                codes[code] = codes.get(code, 0) + 1
            i += h + ln
    result.put({"opened": len(socks), "fails": fails, "bytes_sent": sent, "pongs_read": pongs,
                "close_codes": codes})
    time.sleep(1)
    a15.close_all(socks)


@attack
def ping_flood(p):
    """`n` WebSockets flood pings (125 B) and never read the pongs, with a
    `sendbuf` bound (64 KiB): the backlog per connection (output_buffered /
    conns) against the bound, RSS, other clients' latency."""
    n = int(p.get("n", 500))
    secs = float(p.get("secs", 20))
    env = dict(BCAST_MS=p.get("bcast_ms", 100), BCAST_SIZE=64, WS_SEND_BUF=p.get("sendbuf", 65536), STATS_MS=1000,
               STATS_FULL=1, WS_KEEPALIVE_S=0, SNDBUF=p.get("sndbuf", 16384))
    run = lib15.Run(p.get("tag", f"ping_flood_{n}"), env, [dict(path="/ws")],
                    control=p.get("control", "1") == "1")
    run.mark("baseline")
    time.sleep(4)
    run.mark("attack")
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    pr = ctx.Process(target=ping_flooder,
                     args=(run.target.port, n, secs, int(p.get("size", 125)), q))
    pr.start()
    samples = []
    t_end = time.monotonic() + secs + 5
    while time.monotonic() < t_end:
        time.sleep(4)
        st = a15.sample_stats(run)
        conns = max(1, (st.get("conns") or 1))
        st["outbuf_per_conn"] = (st.get("output_buffered") or 0) // conns
        st["outq_per_conn"] = (st.get("output_queued") or 0) // conns
        samples.append(st)
    res = q.get(timeout=120)
    pr.join(10)
    run.note("flood", res)
    run.note("samples", samples)
    run.mark("end")
    return run.finish()


@attack
def close_with_unread(p):
    """`n` WebSockets each send one `size`-byte message and then all close
    at once. every=0: the program receives after each poll (no message may
    be lost); RECEIVE=0 (`receive=0`): nothing is taken, the closed slots
    hold the messages for closed_message_timeout, then RSS should fall."""
    n = int(p.get("n", 10000))
    size = int(p.get("size", 1024))
    receive = p.get("receive", "1") == "1"
    env = dict(BCAST_MS=100, BCAST_SIZE=64, STATS_MS=1000, STATS_FULL=1, WS_KEEPALIVE_S=0,
               RECEIVE=1 if receive else 0)
    if receive:
        env.update(RECEIVE_COUNT=1)
    run = lib15.Run(p.get("tag", f"close_unread_{n}"), env, [dict(path="/ws")],
                    control=p.get("control", "1") == "1")
    run.mark("baseline")
    time.sleep(3)
    run.mark("open")
    socks, fails = a15.open_many(run.target.port, n, rcvbuf=4096)
    run.note("opened", {"ok": len(socks), "fails": fails})
    frame = ws15.fast_masked_frame(2, b"m" * size)
    sent = 0
    for s in socks:
        try:
            s.sendall(frame)
            sent += 1
        except OSError:
            pass
    time.sleep(2)
    run.note("before_close", a15.sample_stats(run))
    run.mark("close")
    a15.close_all(socks)
    samples = []
    for _ in range(int(p.get("after", 16)) // 2):
        time.sleep(2)
        st = a15.sample_stats(run)
        row = last_row(run)
        st.update({k: row.get(k) for k in ("recv_msgs", "recv_closed_msgs", "recv_empty")})
        samples.append(st)
    run.note("after_close", samples)
    run.note("sent", sent)
    run.mark("end")
    return run.finish()


def main():
    if len(sys.argv) < 2 or sys.argv[1] == "--list":
        for name, fn in ATTACKS.items():
            print(f"{name:22} {(fn.__doc__ or '').strip().splitlines()[0]}")
        return
    params = dict(a.split("=", 1) for a in sys.argv[2:])
    ATTACKS[sys.argv[1]](params)


if __name__ == "__main__":
    main()
