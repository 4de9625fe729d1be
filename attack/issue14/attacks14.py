"""The issue-14 attacks. Each is `fn(ctx)` registered in ATTACKS with its
default parameters; run14.py runs one against a fresh server while the probe
measures a normal client's echo latency. Every attack is bounded in time and
in connections; everything goes to 127.0.0.1."""
import collections
import multiprocessing as mp
import os
import random
import select
import socket
import struct
import threading
import time
import zlib

from lib14 import (BROWSER_OFFER, RESULTS, Reader, close_code_of, close_frame, compress_msg,
                   dynamic_one_literal_blocks, empty_fixed_blocks, empty_stored_blocks,
                   far_reference_bomb, final_empty_streams, fragments, frame, handshake_bytes,
                   mono, read_head, read_until_close, tiny_stored_blocks, ws_open, zero_bomb)

ATTACKS = {}
MiB = 1 << 20


def attack(**defaults):
    def reg(fn):
        ATTACKS[fn.__name__[4:]] = (fn, defaults)
        return fn
    return reg


class Ctx:
    def __init__(self, srv, p, path, takeover=False, env=None):
        self.srv = srv
        self.port = srv.port
        self.p = p
        self.path = path
        self.takeover = takeover
        self.env = env
        self.notes = collections.OrderedDict()
        self.probe = None

    def probe_running(self):
        return self.probe is not None and self.probe.proc.poll() is None

    def limit(self):
        """The echo endpoint's max_message_size."""
        if self.env is not None:
            return int(self.env.get("MAX_MSG", 16 * MiB))
        return 16 * MiB


_cache = {}


def cached(key, make):
    """Payloads are costly to build in Python: kept in results/cache."""
    if key in _cache:
        return _cache[key]
    d = os.path.join(RESULTS, "cache")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, key.replace("/", "_") + ".bin")
    if os.path.exists(path):
        with open(path, "rb") as f:
            v = f.read()
    else:
        v = make()
        with open(path, "wb") as f:
            f.write(v)
    _cache[key] = v
    return v


def bomb_bytes(size, level=9):
    return cached(f"zero_bomb_{size}_{level}", lambda: zero_bomb(size, level))


# --------------------------------------------------------------------------
# A flooding client process
# --------------------------------------------------------------------------

def _flood(port, path, wire, secs, max_msgs, read, rcvbuf, ext, q, inflated_per_msg,
           lockstep=False):
    """Sends the bytes `wire` (one or more complete frames = one message)
    again and again for `secs` (at most max_msgs times); reads and counts
    what comes back unless `read` is false. Reports via `q`."""
    res = {"sent_msgs": 0, "sent_bytes": 0, "echo_frames": 0, "echo_bytes": 0,
           "end": None, "end_at": None, "ext": None}
    try:
        s, neg, rest = ws_open(port, path, ext=ext, rcvbuf=rcvbuf)
    except (OSError, ConnectionError) as e:
        res["end"] = f"handshake {e}"
        q.put(res)
        return
    res["ext"] = neg
    t0 = mono()
    stop = threading.Event()
    echoed = threading.Semaphore(0)

    def reader():
        r = Reader()
        r.feed(rest)
        while not stop.is_set():
            try:
                s.settimeout(0.5)
                d = s.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError as e:
                res["end"] = res["end"] or f"recv {type(e).__name__}"
                res["end_at"] = res["end_at"] or round(mono() - t0, 2)
                stop.set()
                return
            if not d:
                res["end"] = res["end"] or "EOF"
                res["end_at"] = res["end_at"] or round(mono() - t0, 2)
                stop.set()
                return
            for fin, rsv, op, p in r.feed(d):
                if op == 8:
                    res["end"] = close_code_of(p)
                    res["end_at"] = round(mono() - t0, 2)
                    try:
                        s.sendall(close_frame(1000))
                    except OSError:
                        pass
                    stop.set()
                    return
                res["echo_frames"] += 1
                res["echo_bytes"] += len(p)
                if fin:
                    res["echo_msgs"] = res.get("echo_msgs", 0) + 1
                    echoed.release()

    th = None
    if read:
        th = threading.Thread(target=reader, daemon=True)
        th.start()
    end = t0 + secs
    s.settimeout(1.0)
    view = memoryview(wire)
    while mono() < end and res["sent_msgs"] < max_msgs and not stop.is_set():
        off = 0
        try:
            while off < len(view) and mono() < end and not stop.is_set():
                try:
                    off += s.send(view[off:])
                except socket.timeout:
                    continue
        except OSError as e:
            res["end"] = res["end"] or f"send {type(e).__name__}"
            res["end_at"] = res["end_at"] or round(mono() - t0, 2)
            break
        res["sent_bytes"] += off
        if off == len(view):
            res["sent_msgs"] += 1
            if lockstep:
                while not echoed.acquire(timeout=0.5):
                    if stop.is_set() or mono() >= end:
                        break
    res["secs"] = round(mono() - t0, 2)
    if th is not None:
        # Give the last echoes a moment, then stop reading.
        th.join(1.0)
        stop.set()
        th.join(2.0)
    else:
        # Non-reader: did the server close us? (peek without reading data)
        res["end"] = res["end"] or "open"
    res["inflated"] = res["sent_msgs"] * inflated_per_msg
    try:
        s.close()
    except OSError:
        pass
    q.put(res)


def flood(ctx, wire, conns=1, secs=15.0, max_msgs=10 ** 9, read=True, rcvbuf=None,
          ext=BROWSER_OFFER, inflated_per_msg=0, path=None, lockstep=False):
    """Runs `conns` flooding processes; returns their results and the
    server's CPU seconds during the flood."""
    q = mp.Queue()
    procs = [mp.Process(target=_flood, args=(ctx.port, path or ctx.path, wire, secs, max_msgs,
                                             read, rcvbuf, ext, q, inflated_per_msg,
                                             lockstep))
             for _ in range(conns)]
    c0 = ctx.srv.cpu()
    for pr in procs:
        pr.start()
    out = []
    deadline = mono() + secs + 30
    for _ in procs:
        try:
            out.append(q.get(timeout=max(1.0, deadline - mono())))
        except Exception:
            out.append({"end": "no report"})
    for pr in procs:
        pr.join(5)
        if pr.is_alive():
            pr.kill()
    c1 = ctx.srv.cpu()
    return out, (c1 - c0) if (c0 is not None and c1 is not None) else None


def summarize_flood(ctx, out, cpu, in_per_msg, out_per_msg):
    msgs = sum(r.get("sent_msgs", 0) for r in out)
    sent = sum(r.get("sent_bytes", 0) for r in out)
    secs = max((r.get("secs", 0) for r in out), default=0) or 1
    ctx.notes["messages_sent"] = msgs
    ctx.notes["attacker_MB_sent"] = round(sent / MiB, 1)
    ctx.notes["attacker_MB_per_s"] = round(sent / MiB / secs, 1)
    done = sum(r.get("echo_msgs", 0) for r in out) or msgs
    ctx.notes["inflated_MB"] = round(done * out_per_msg / MiB, 1)
    ctx.notes["echo_MB_received"] = round(sum(r.get("echo_bytes", 0) for r in out) / MiB, 2)
    ctx.notes["echo_msgs"] = sum(r.get("echo_msgs", 0) for r in out)
    ctx.notes["server_cpu_s"] = round(cpu, 2) if cpu is not None else None
    if cpu and sent:
        ctx.notes["server_cpu_ns_per_wire_byte"] = round(cpu * 1e9 / sent, 2)
    if cpu and done and out_per_msg:
        # per message the server finished (echoed), when echoes were read
        ctx.notes["server_cpu_ns_per_inflated_byte"] = round(cpu * 1e9 / (done * out_per_msg), 3)
        ctx.notes["server_cpu_ms_per_message"] = round(cpu * 1e3 / done, 2)
    ctx.notes["ends"] = collections.Counter(str(r.get("end")) for r in out).most_common()
    ctx.notes["ext"] = out[0].get("ext") if out else None


# --------------------------------------------------------------------------
# The attacks
# --------------------------------------------------------------------------

@attack(secs=12.0)
def atk_quiet(ctx):
    """No attack: the probe alone (the baseline)."""
    end = mono() + 60
    while ctx.probe_running() and mono() < end:
        time.sleep(0.2)


@attack(size=1 << 30, frag=0, frag_bytes=65536, max_rounds=40)
def atk_bomb_one(ctx):
    """One connection at a time sends a zero bomb (default 1 GiB inflated,
    1 MB compressed) as one frame (frag=N: N-byte fragments); repeated on
    fresh connections while the probe runs. Expect 1009 after <= limit."""
    p = ctx.p
    bomb = bomb_bytes(p["size"])
    if p["frag"]:
        body = bomb[:p["frag_bytes"]]
        wire = fragments(2, body, p["frag"])
    else:
        wire = frame(2, bomb, rsv=4)
    ctx.notes["compressed_bytes"] = len(bomb)
    ctx.notes["wire_bytes"] = len(wire)
    codes = collections.Counter()
    times = []
    rounds = 0
    while rounds < p["max_rounds"] and (ctx.probe_running() or rounds == 0):
        rounds += 1
        s, ext, rest = ws_open(ctx.port, ctx.path)
        if rounds == 1:
            ctx.notes["ext"] = ext
        t0 = mono()

        def send():
            try:
                s.sendall(wire)
            except OSError:
                pass
        th = threading.Thread(target=send, daemon=True)
        th.start()
        r = read_until_close(s, timeout=30)
        codes[str(r["end"])] += 1
        times.append(round(mono() - t0, 3))
        th.join(5)
        s.close()
    ctx.notes["rounds"] = rounds
    ctx.notes["close_codes"] = codes.most_common()
    ctx.notes["secs_to_close"] = {"min": min(times), "max": max(times),
                                  "med": sorted(times)[len(times) // 2]}


@attack(conns=1000, size=1 << 30, send=65536, batch=100)
def atk_bomb_many(ctx):
    """`conns` connections open, then each sends the first `send` bytes of
    a 1 GiB zero bomb (its frame header announces the whole bomb) as fast
    as possible; every close code is read. Expect 1009 each."""
    p = ctx.p
    bomb = bomb_bytes(p["size"])
    head = frame(2, b"", rsv=4, length=len(bomb))
    wire = head + bomb[:p["send"]]
    socks = []
    t_open = mono()
    for i in range(p["conns"]):
        try:
            s, ext, rest = ws_open(ctx.port, ctx.path, timeout=20)
            socks.append(s)
        except (OSError, ConnectionError) as e:
            ctx.notes.setdefault("open_errors", []).append(str(e))
            break
    ctx.notes["opened"] = len(socks)
    ctx.notes["open_secs"] = round(mono() - t_open, 1)
    rss0 = ctx.srv.mem()
    t0 = mono()
    for s in socks:
        s.setblocking(False)
    # Send to all, round-robin, until each has sent its part or failed.
    left = {s: memoryview(wire) for s in socks}
    end = t0 + 60
    while left and mono() < end:
        _, w, _ = select.select([], list(left)[:1000], [], 1.0)
        for s in w:
            try:
                n = s.send(left[s])
            except BlockingIOError:
                continue
            except OSError:
                del left[s]
                continue
            left[s] = left[s][n:]
            if not left[s]:
                del left[s]
    ctx.notes["send_secs"] = round(mono() - t0, 2)
    codes = collections.Counter()
    readers = {s: Reader() for s in socks}
    done = set()
    end = mono() + 60
    while len(done) < len(socks) and mono() < end:
        rl, _, _ = select.select([s for s in socks if s not in done][:1000], [], [], 1.0)
        for s in rl:
            try:
                d = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                codes["RST"] += 1
                done.add(s)
                continue
            if not d:
                codes["EOF"] += 1
                done.add(s)
                continue
            for fin, rsv, op, pl in readers[s].feed(d):
                if op == 8:
                    codes[str(close_code_of(pl))] += 1
                    done.add(s)
                    try:
                        s.send(close_frame(1000))
                    except OSError:
                        pass
                    break
    codes["no answer"] += len(socks) - len(done)
    ctx.notes["close_codes"] = codes.most_common()
    ctx.notes["all_closed_secs"] = round(mono() - t0, 2)
    ctx.notes["rss_before_bombs_mb"] = round(rss0[0] / 1024, 1) if rss0 else None
    for s in socks:
        s.close()


@attack(conns=100, msgs=2, under=1024, hold=10.0, read=False)
def atk_near_limit_many(ctx):
    """`conns` connections each send `msgs` zero bombs that inflate to
    limit - `under` bytes (16 KB compressed each), sent all at once; the
    echoes are not read (read=1: read them). Memory the server needs is
    sampled; held `hold` s, then closed."""
    p = ctx.p
    size = ctx.limit() - p["under"]
    bomb = bomb_bytes(size)
    wire = frame(2, bomb, rsv=4) * p["msgs"]
    ctx.notes["inflated_per_msg"] = size
    ctx.notes["attacker_bytes_per_conn"] = len(wire)
    socks = []
    for i in range(p["conns"]):
        try:
            s, ext, rest = ws_open(ctx.port, ctx.path, timeout=20)
            socks.append(s)
        except (OSError, ConnectionError) as e:
            ctx.notes["open_error"] = str(e)
            break
    ctx.notes["opened"] = len(socks)
    rss0 = ctx.srv.mem()
    t0 = mono()
    for s in socks:
        try:
            s.sendall(wire)
        except OSError as e:
            ctx.notes["send_error"] = str(e)
    ctx.notes["send_secs"] = round(mono() - t0, 2)
    peak = 0
    end = mono() + p["hold"]
    got = collections.Counter()
    readers = {s: Reader() for s in socks}
    while mono() < end:
        m = ctx.srv.mem()
        if m is None:
            ctx.notes["server_gone_at"] = round(mono() - t0, 2)
            break
        peak = max(peak, m[0])
        if p["read"]:
            rl, _, _ = select.select(socks, [], [], 0.1)
            for s in rl:
                try:
                    d = s.recv(1 << 20)
                except OSError:
                    continue
                for fin, rsv, op, pl in readers[s].feed(d):
                    got[op] += 1
        else:
            time.sleep(0.1)
    ctx.notes["rss_before_mb"] = round(rss0[0] / 1024, 1) if rss0 else None
    ctx.notes["rss_peak_sampled_mb"] = round(peak / 1024, 1)
    ctx.notes["per_conn_peak_mb"] = round((peak - (rss0[0] if rss0 else 0)) / 1024 / max(1, len(socks)), 1)
    if p["read"]:
        ctx.notes["frames_back"] = dict(got)
    for s in socks:
        s.close()


@attack(conns=1, secs=15.0, under=1024, max_msgs=100000)
def atk_near_limit_repeat(ctx):
    """`conns` connections send zero bombs inflating to limit - `under`
    again and again for `secs`, reading the (compressed) echoes: CPU per
    byte sent, memory kept afterwards."""
    p = ctx.p
    size = ctx.limit() - p["under"]
    bomb = bomb_bytes(size)
    wire = frame(2, bomb, rsv=4)
    out, cpu = flood(ctx, wire, conns=p["conns"], secs=p["secs"], max_msgs=p["max_msgs"],
                     inflated_per_msg=size)
    summarize_flood(ctx, out, cpu, len(wire), size)


def cpu_payload(kind, msg):
    """(frame bytes, inflated bytes per message, rsv1?) for a ~`msg`-byte
    compressed message of the given kind."""
    if kind == "empty_fixed":
        n = msg * 8 // 10
        w = empty_fixed_blocks(n)
        w.bits(0, 1)
        w.bits(0, 2)
        w.align()
        body = cached(f"empty_fixed_{n}", lambda: w.getvalue() + b"\x00\x00\xff\xff")[:-4]
        return body, 0
    if kind == "empty_stored":
        return empty_stored_blocks(msg // 5), 0
    if kind == "tiny_stored":
        return tiny_stored_blocks(msg // 6), msg // 6
    if kind == "dyn":
        n = msg // 13

        def make():
            w = dynamic_one_literal_blocks(n)
            w.bits(0, 1)
            w.bits(0, 2)
            w.align()
            return w.getvalue() + b"\x00\x00\xff\xff"
        return cached(f"dyn_{n}", make)[:-4], n
    if kind == "final_streams":
        return final_empty_streams(msg // 2), 0
    if kind == "far_refs":
        raise ValueError("far_refs is sized by its output")
    raise ValueError(kind)


@attack(kind="dyn", conns=1, secs=15.0, msg=1 << 20, out=16 * MiB - 1024, level=6,
        lockstep=False)
def atk_cpu_flood(ctx):
    """`conns` connections send ~`msg`-byte compressed messages of one
    costly kind for `secs`, reading the echoes. Kinds: empty_fixed (empty
    fixed-Huffman blocks, 10 bits each, nothing out), empty_stored (5-byte
    empty stored blocks), tiny_stored (6 bytes in, 1 out), dyn (a fresh
    dynamic Huffman table per literal, ~13 bytes in per byte out),
    final_streams (2-byte complete streams: an inflater restart each),
    far_refs (length-258 copies from 32 KiB back, `out` bytes out), zero
    (zero bomb of `out` bytes), comp_random (random data compressed at
    `level`: a normal heavy user), plain_random (random data sent
    uncompressed: the server only compresses the echo), nodeflate_random
    (no extension offered)."""
    p = ctx.p
    kind = p["kind"]
    ext = BROWSER_OFFER
    rsv = 4
    if kind == "far_refs":
        body, outlen = far_reference_bomb(min(p["out"], ctx.limit() - 1024))
    elif kind == "zero":
        outlen = min(p["out"], ctx.limit() - 1024)
        body = bomb_bytes(outlen)
    elif kind in ("comp_random", "plain_random", "nodeflate_random"):
        data = random.Random(14).randbytes(p["msg"])
        outlen = len(data)
        if kind == "comp_random":
            body = compress_msg(data, p["level"])
        else:
            body = data
            rsv = 0
            if kind == "nodeflate_random":
                ext = None
    else:
        body, outlen = cpu_payload(kind, p["msg"])
    wire = frame(2, body, rsv=rsv)
    ctx.notes["wire_bytes_per_msg"] = len(wire)
    ctx.notes["inflated_per_msg"] = outlen
    out, cpu = flood(ctx, wire, conns=p["conns"], secs=p["secs"], inflated_per_msg=outlen,
                     ext=ext, lockstep=p["lockstep"])
    summarize_flood(ctx, out, cpu, len(wire), outlen)


@attack(kind="fixed", max_mb=60.0, frag=8)
def atk_empty_cap(ctx):
    """One compressed message of empty fixed-Huffman blocks (10 bits each,
    nothing out) that never ends: does the compressed-byte cap
    (deflate_bound(limit) + 8 per frame) stop it? kind=fixed: 640 KiB
    continuation frames; kind=frags: `frag`-byte frames (the cap grows by
    8 per frame), until max_fragments or max_mb."""
    p = ctx.p
    total = int(p["max_mb"] * MiB)
    s, ext, rest = ws_open(ctx.port, ctx.path)
    ctx.notes["ext"] = ext
    # 524288 blocks = 655360 bytes: a whole number of blocks, so the piece
    # can be repeated and split anywhere that keeps the bytes in order.
    unit = cached("empty_fixed_unit", lambda: _empty_fixed_bytes(8 * 65536))
    sent = [0, 0]
    t0 = mono()
    stop = threading.Event()

    def sender():
        try:
            if p["kind"] == "fixed":
                piece = unit
                batch0 = frame(2, piece, fin=False, rsv=4)
                cont = frame(0, piece, fin=False)
            else:
                piece = unit[:40960]   # 32768 blocks
                f = p["frag"]
                batch0 = (frame(2, piece[:f], fin=False, rsv=4) +
                          b"".join(frame(0, piece[i:i + f], fin=False)
                                   for i in range(f, len(piece), f)))
                cont = b"".join(frame(0, piece[i:i + f], fin=False)
                                for i in range(0, len(piece), f))
            s.sendall(batch0)
            sent[0] += len(batch0)
            sent[1] += len(piece)
            while sent[0] < total and not stop.is_set():
                s.sendall(cont)
                sent[0] += len(cont)
                sent[1] += len(piece)
        except OSError as e:
            ctx.notes["send_end"] = type(e).__name__
    th = threading.Thread(target=sender, daemon=True)
    th.start()
    r = read_until_close(s, timeout=120)
    stop.set()
    th.join(5)
    ctx.notes["result"] = r["end"]
    ctx.notes["reason"] = r.get("reason")
    ctx.notes["secs"] = round(mono() - t0, 2)
    ctx.notes["wire_MB_sent_before_close"] = round(sent[0] / MiB, 2)
    ctx.notes["deflate_MB_sent_before_close"] = round(sent[1] / MiB, 2)
    s.close()


def _empty_fixed_bytes(n):
    w = empty_fixed_blocks(n)
    return w.getvalue(pad=False)


@attack(conns=10000, plain=False, send=True, hold=5.0)
def atk_idle_memory(ctx):
    """`conns` /ws/echo connections negotiate permessage-deflate (plain=1:
    offer nothing), each sends one 200-byte compressed text message and
    reads its echo (send=0: nothing sent), then all stay idle: RSS and
    HWM per connection."""
    p = ctx.p
    rss0 = ctx.srv.mem()
    ext = None if p["plain"] else BROWSER_OFFER
    socks = []
    msg = (b'{"hello":"' + b"world " * 40)[:190] + b'"}'
    errors = collections.Counter()
    t0 = mono()
    for i in range(p["conns"]):
        try:
            s, neg, rest = ws_open(ctx.port, ctx.path, ext=ext, timeout=20)
        except (OSError, ConnectionError) as e:
            errors[str(e)[:60]] += 1
            if len(errors) > 5 or sum(errors.values()) > 50:
                break
            continue
        if i == 0:
            ctx.notes["ext"] = neg
        if p["send"]:
            if neg:
                s.sendall(frame(1, compress_msg(msg), rsv=4, mask=b"\x11\x22\x33\x44"))
            else:
                s.sendall(frame(1, msg, mask=b"\x11\x22\x33\x44"))
            r = Reader()
            r.feed(rest)
            got = None
            end = mono() + 20
            while got is None and mono() < end:
                s.settimeout(max(0.01, end - mono()))
                d = s.recv(65536)
                if not d:
                    break
                for fin, rsv, op, pl in r.feed(d):
                    if op in (1, 2):
                        got = pl if not rsv else zlib.decompressobj(-15).decompress(
                            pl + b"\x00\x00\xff\xff")
            if got != msg:
                errors["wrong or no echo"] += 1
        socks.append(s)
    ctx.notes["opened"] = len(socks)
    ctx.notes["open_secs"] = round(mono() - t0, 1)
    time.sleep(p["hold"])
    m = ctx.srv.mem()
    ctx.notes["rss_before_kb"] = rss0[0]
    ctx.notes["rss_idle_kb"] = m[0]
    ctx.notes["hwm_kb"] = m[1]
    ctx.notes["bytes_per_conn_rss"] = round((m[0] - rss0[0]) * 1024 / max(1, len(socks)))
    ctx.notes["bytes_per_conn_hwm"] = round((m[1] - rss0[0]) * 1024 / max(1, len(socks)))
    ctx.notes["errors"] = errors.most_common(5)
    for s in socks:
        s.close()


atk_idle_memory.no_probe = True


@attack(conns=1, secs=30.0, under=1024, rcvbuf=4096, size=0)
def atk_noread_echo(ctx):
    """`conns` connections (receive buffer `rcvbuf`) send compressible
    messages (zero bombs of limit - `under`, or `size` bytes) as fast as the
    server takes them and never read the echoes: how much does the server
    queue and compute before the send bound or send timeout stops it?"""
    p = ctx.p
    size = p["size"] or (ctx.limit() - p["under"])
    bomb = bomb_bytes(size)
    wire = frame(2, bomb, rsv=4)
    out, cpu = flood(ctx, wire, conns=p["conns"], secs=p["secs"], read=False, rcvbuf=p["rcvbuf"],
                     inflated_per_msg=size)
    summarize_flood(ctx, out, cpu, len(wire), size)


@attack(viewers=200, secs=20.0, line=4000, rcvbuf=1024, compressible=True, plain=False)
def atk_chat_slow(ctx):
    """`viewers` /ws/chat connections (receive buffer `rcvbuf`) negotiate
    compression and never read; one sender sends `line`-byte chat lines
    (compressible, or random letters) as fast as it can, reading what comes
    back: memory per viewer, when viewers are closed, CPU."""
    p = ctx.p
    path = "/ws/chat" if ctx.env is None else "/ws/bcast"
    viewers = []
    for i in range(p["viewers"]):
        try:
            s, ext, rest = ws_open(ctx.port, path, rcvbuf=p["rcvbuf"], timeout=20,
                                   ext=None if p["plain"] else BROWSER_OFFER)
            viewers.append(s)
        except (OSError, ConnectionError) as e:
            ctx.notes["open_error"] = str(e)
            break
    ctx.notes["viewers"] = len(viewers)
    if p["compressible"]:
        text = ("hello chat " * (p["line"] // 11 + 1))[:p["line"]].encode()
    else:
        rnd = random.Random(3)
        text = bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(p["line"]))
    if p["plain"]:
        # nobody offers compression (the comparison row)
        wire = frame(1, text)
    else:
        wire = frame(1, compress_msg(text), rsv=4)
    out, cpu = flood(ctx, wire, conns=1, secs=p["secs"], inflated_per_msg=len(text), path=path,
                     ext=None if p["plain"] else BROWSER_OFFER)
    summarize_flood(ctx, out, cpu, len(wire), len(text))
    # Which viewers did the server close? (EOF or RST after draining)
    closed = collections.Counter()
    for s in viewers:
        s.setblocking(False)
        state = "open"
        try:
            while True:
                d = s.recv(1 << 20)
                if not d:
                    state = "EOF"
                    break
        except BlockingIOError:
            pass
        except OSError as e:
            state = type(e).__name__
        closed[state] += 1
    ctx.notes["viewer_states"] = closed.most_common()
    for s in viewers:
        s.close()


# --------------------------------------------------------------------------
# Negotiation abuse
# --------------------------------------------------------------------------

def _neg_cases():
    big = 30000
    c = collections.OrderedDict()
    c["plain_offer"] = [BROWSER_OFFER]
    c["many_invalid_offers"] = [("permessage-deflate; foo, " * (big // 25)).rstrip(", ")]
    c["many_invalid_then_valid"] = [("permessage-deflate; foo, " * (big // 25 - 2))
                                    + "permessage-deflate; client_max_window_bits=10"]
    c["many_other_extensions"] = [("x-webkit-deflate-frame; a=1, " * (big // 29)).rstrip(", ")]
    c["dup_param_x3000"] = ["permessage-deflate" + "; client_max_window_bits=10" * (big // 27)]
    c["unknown_params_x4000"] = ["permessage-deflate" + "; a=b" * (big // 5)]
    c["flag_params_x1100"] = ["permessage-deflate" + "; server_no_context_takeover" * (big // 28)]
    c["deep_quoting_token"] = ['permessage-deflate; x="' + "\\a" * (big // 2) + '"']
    c["deep_quoting_window"] = ['permessage-deflate; client_max_window_bits="' + "\\1" * (big // 2) + '"']
    c["quoted_separators"] = ['permessage-deflate; x="' + ",;" * (big // 2) + '"']
    c["quote_escape_end"] = ['permessage-deflate; x="' + "a" * 100 + '\\"']
    c["many_quotes"] = ['permessage-deflate; ' + '; '.join(f'p{i}="v"' for i in range(big // 10))]
    c["long_ext_name"] = ["x" * big]
    c["long_param_name"] = ["permessage-deflate; " + "y" * big]
    c["commas_only"] = ["," * big]
    c["semicolons"] = ["permessage-deflate" + ";" * 1000]
    c["dup_headers_99_invalid"] = ["permessage-deflate; foo"] * 95
    c["dup_headers_first_valid"] = ["permessage-deflate; client_max_window_bits=9",
                                    "permessage-deflate; client_max_window_bits=12"]
    c["dup_headers_after_invalid"] = ["permessage-deflate; server_max_window_bits=16",
                                      "permessage-deflate; server_max_window_bits=10"]
    c["bits_08"] = ["permessage-deflate; server_max_window_bits=08"]
    c["bits_8.0"] = ["permessage-deflate; server_max_window_bits=8.0"]
    c["bits_quoted_15"] = ['permessage-deflate; server_max_window_bits="15"']
    c["bits_space"] = ["permessage-deflate; server_max_window_bits = 15"]
    c["bits_empty_quoted"] = ['permessage-deflate; client_max_window_bits=""']
    c["bits_8"] = ["permessage-deflate; server_max_window_bits=8; client_max_window_bits=8"]
    c["bits_huge"] = ["permessage-deflate; server_max_window_bits=" + "9" * 1000]
    c["bits_negative"] = ["permessage-deflate; client_max_window_bits=-15"]
    c["upper_case"] = ["PERMESSAGE-DEFLATE; CLIENT_MAX_WINDOW_BITS=10; SERVER_NO_CONTEXT_TAKEOVER"]
    c["tabs"] = ["permessage-deflate\t;\tclient_max_window_bits\t=\t10\t"]
    c["non_ascii"] = ["permessage-deflate; x=\u00e9"]
    c["non_ascii_name"] = ["perméssage-deflate"]
    c["nul_byte"] = ["permessage-deflate\x00; client_max_window_bits"]
    c["empty_value"] = [""]
    c["trailing_semicolon"] = ["permessage-deflate;"]
    c["lone_semicolon"] = [";"]
    c["value_on_flag"] = ["permessage-deflate; server_no_context_takeover=1"]
    c["unterminated_quote"] = ['permessage-deflate; x="abc']
    c["obs_fold"] = ["permessage-deflate;\r\n client_max_window_bits"]
    c["head_over_32k"] = ["permessage-deflate; foo, " * 1400]
    return c


@attack(reps=200)
def atk_negotiation(ctx):
    """Handshakes with abusive Sec-WebSocket-Extensions headers (each case
    once: status, extension answered, time), then the costliest case
    `reps` times to measure the server's CPU per handshake."""
    p = ctx.p
    res = collections.OrderedDict()
    worst = (0, None)
    for name, values in _neg_cases().items():
        extra = "".join(f"Sec-WebSocket-Extensions: {v}\r\n" for v in values)
        req = handshake_bytes(ctx.path, None, extra)
        t0 = mono()
        try:
            s = socket.create_connection(("127.0.0.1", ctx.port), timeout=10)
            s.sendall(req.decode("latin-1").encode("utf-8") if any(ord(ch) > 255 for ch in extra)
                      else req.decode("latin-1").encode("latin-1"))
            status, hdrs, rest = read_head(s, 10)
            ms = round((mono() - t0) * 1000, 2)
            ext = hdrs.get("sec-websocket-extensions")
            s.close()
            res[name] = {"status": status, "ext": ext[0] if ext else None, "ms": ms,
                         "req_bytes": len(req)}
            if ms > worst[0] and status == 101:
                worst = (ms, name)
        except (OSError, ConnectionError) as e:
            res[name] = {"error": f"{type(e).__name__}: {e}"}
        if not ctx.srv.alive():
            res[name]["server"] = "DIED"
            break
    ctx.notes["cases"] = res
    for name in ("many_invalid_offers", "dup_param_x3000", "deep_quoting_token", "many_quotes"):
        values = _neg_cases()[name]
        extra = "".join(f"Sec-WebSocket-Extensions: {v}\r\n" for v in values)
        req = handshake_bytes(ctx.path, None, extra)
        c0 = ctx.srv.cpu()
        t0 = mono()
        for _ in range(p["reps"]):
            s = socket.create_connection(("127.0.0.1", ctx.port), timeout=10)
            s.sendall(req)
            read_head(s, 10)
            s.close()
        c1 = ctx.srv.cpu()
        ctx.notes[f"cpu_us_per_handshake_{name}"] = round((c1 - c0) * 1e6 / p["reps"], 1)
        ctx.notes[f"wall_ms_per_handshake_{name}"] = round((mono() - t0) * 1000 / p["reps"], 2)
    # the same count of plain handshakes, for comparison
    req = handshake_bytes(ctx.path, BROWSER_OFFER)
    c0 = ctx.srv.cpu()
    for _ in range(p["reps"]):
        s = socket.create_connection(("127.0.0.1", ctx.port), timeout=10)
        s.sendall(req)
        read_head(s, 10)
        s.close()
    ctx.notes["cpu_us_per_handshake_plain_offer"] = round((ctx.srv.cpu() - c0) * 1e6 / p["reps"], 1)


atk_negotiation.no_probe = True


# --------------------------------------------------------------------------
# Protocol edges
# --------------------------------------------------------------------------

def _fixed_literals(data, final=False, eob=True):
    """A fixed-Huffman block of literals (no sync flush, maybe no EOB)."""
    from lib14 import BitWriter, fixed_lit
    w = BitWriter()
    w.bits(1 if final else 0, 1)
    w.bits(1, 2)
    for b in data:
        fixed_lit(w, b)
    if eob:
        fixed_lit(w, 256)
    return w


def _reference_at_start():
    """A fixed block whose first symbol copies 3 bytes from 1 back: nothing
    is there yet (zlib: invalid distance too far back)."""
    from lib14 import fixed_lit
    w = _fixed_literals(b"", eob=False)
    fixed_lit(w, 257)       # length 3
    w.code(0, 5)            # distance code 0: distance 1
    fixed_lit(w, 256)
    return w.getvalue()


def _edge_cases(takeover):
    """name -> (ext offered, list of frames to send, expectation, note).
    Expectation: ('echo', [messages]) or ('close', code)."""
    H = b"\xf3\x48\xcd\xc9\xc9\x07\x00"        # "Hello" in a final fixed block (RFC 7692 7.2.3.4)
    c = collections.OrderedDict()
    hello = compress_msg(b"Hello")
    c["rsv1_on_continuation"] = (BROWSER_OFFER, [frame(1, hello[:2], fin=False, rsv=4),
                                                 frame(0, hello[2:], rsv=4)], ("close", 1002))
    c["rsv1_on_ping"] = (BROWSER_OFFER, [frame(9, b"x", rsv=4)], ("close", 1002))
    c["rsv1_on_pong"] = (BROWSER_OFFER, [frame(10, b"x", rsv=4)], ("close", 1002))
    c["rsv1_on_close"] = (BROWSER_OFFER, [frame(8, compress_msg(struct.pack("!H", 1000)), rsv=4)],
                          ("close", 1002))
    c["compressed_ping_payload_no_rsv"] = (BROWSER_OFFER, [frame(9, compress_msg(b"ping!")),
                                                           frame(1, hello, rsv=4)],
                                           ("echo", [b"Hello"]))
    c["rsv1_without_negotiation"] = (None, [frame(1, hello, rsv=4)], ("close", 1002))
    c["rsv2"] = (BROWSER_OFFER, [frame(1, hello, rsv=2)], ("close", 1002))
    c["rsv3"] = (BROWSER_OFFER, [frame(1, hello, rsv=1)], ("close", 1002))
    c["rsv1+rsv2"] = (BROWSER_OFFER, [frame(1, hello, rsv=6)], ("close", 1002))
    c["invalid_deflate"] = (BROWSER_OFFER, [frame(1, b"\xff\xff\xff", rsv=4)], ("close", 1007))
    c["invalid_after_valid_fragment"] = (BROWSER_OFFER, [
        frame(2, compress_msg(b"x" * 1000)[:-1], fin=False, rsv=4),
        frame(0, b"\xff\xff\xff\xff")], ("close", 1007))
    c["invalid_distance_too_far"] = (BROWSER_OFFER, [frame(2, _reference_at_start(), rsv=4)],
                                     ("close", 1007))
    c["bfinal_hello_then_tail"] = (BROWSER_OFFER, [frame(1, H, rsv=4)], ("echo", [b"Hello"]))
    c["bfinal_hello_plus_header_byte"] = (BROWSER_OFFER, [frame(1, H + b"\x00", rsv=4)],
                                          ("echo", [b"Hello"]))
    c["bfinal_then_new_stream"] = (BROWSER_OFFER, [frame(1, H + compress_msg(b" world"), rsv=4)],
                                   ("echo", [b"Hello world"]))
    c["bfinal_then_garbage"] = (BROWSER_OFFER, [frame(1, H + b"\xff", rsv=4)], ("close", 1007))
    c["bfinal_x3_then_next_msg"] = (BROWSER_OFFER, [frame(1, H + H + H, rsv=4),
                                                    frame(1, hello, rsv=4)],
                                    ("echo", [b"HelloHelloHello", b"Hello"]))
    c["client_kept_tail"] = (BROWSER_OFFER, [frame(1, hello + b"\x00\x00\xff\xff", rsv=4)],
                             ("echo", [b"Hello"]))
    c["empty_compressed_payload"] = (BROWSER_OFFER, [frame(1, b"", rsv=4)], ("echo", [b""]))
    c["single_00_payload"] = (BROWSER_OFFER, [frame(1, b"\x00", rsv=4)], ("echo", [b""]))
    c["one_byte_fragments"] = (BROWSER_OFFER, [fragments(1, compress_msg(b"fragmented " * 30), 1)],
                               ("echo", [b"fragmented " * 30]))
    stored = b"stored block payload " * 20
    c["stored_blocks_1_byte_fragments"] = (BROWSER_OFFER, [fragments(1, compress_msg(stored, 0), 1)],
                                           ("echo", [stored]))
    dyn = random.Random(9).randbytes(300) + b"dynamic huffman " * 100
    c["dynamic_blocks_1_byte_fragments"] = (BROWSER_OFFER, [fragments(2, compress_msg(dyn, 9), 1)],
                                            ("echo", [dyn]))
    c["bfinal_1_byte_fragments"] = (BROWSER_OFFER, [fragments(1, H + H + b"\x00", 1),
                                                    frame(1, hello, rsv=4)],
                                    ("echo", [b"HelloHello", b"Hello"]))
    c["empty_fragments_between"] = (BROWSER_OFFER, [
        frame(1, b"", fin=False, rsv=4)] + [frame(0, b"", fin=False)] * 1000 +
        [frame(0, hello)], ("echo", [b"Hello"]))
    c["ping_between_compressed_fragments"] = (BROWSER_OFFER, [
        frame(1, hello[:3], fin=False, rsv=4), frame(9, b"p"), frame(0, hello[3:])],
        ("echo", [b"Hello"]))
    e = "é".encode()
    c["utf8_split_across_fragments"] = (BROWSER_OFFER, [
        frame(1, (lambda z: z)(compress_msg(b"caf" + e + b"!" * 100)), rsv=4)],
        ("echo", [b"caf" + e + b"!" * 100]))
    big = b"a" * (8 * MiB) + b"\xff" + b"a" * (7 * MiB)
    c["invalid_utf8_deep_in_text"] = (BROWSER_OFFER, [frame(1, compress_msg(big, 9), rsv=4)],
                                      ("close", 1007))
    c["invalid_utf8_truncated_at_end"] = (BROWSER_OFFER, [frame(1, compress_msg(b"abc" + e[:1]), rsv=4)],
                                          ("close", 1007))
    c["exact_limit"] = (BROWSER_OFFER, [frame(2, bomb_bytes(16 * MiB), rsv=4)],
                        ("echo_len", 16 * MiB))
    c["limit_plus_1"] = (BROWSER_OFFER, [frame(2, bomb_bytes(16 * MiB + 1), rsv=4)], ("close", 1009))
    c["uncompressed_then_compressed"] = (BROWSER_OFFER, [frame(1, b"plain text here"),
                                                         frame(1, hello, rsv=4)],
                                         ("echo", [b"plain text here", b"Hello"]))
    # The client keeps its context although the server asked it not to
    # (default mode): the second message refers back into the first.
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    m1 = compress_msg(b"repeat me please " * 4, comp=comp)
    m2 = compress_msg(b"repeat me please " * 4, comp=comp)
    exp = ("echo", [b"repeat me please " * 4] * 2) if takeover else ("close", 1007)
    c["client_keeps_context"] = (BROWSER_OFFER, [frame(1, m1, rsv=4), frame(1, m2, rsv=4)], exp)
    # client_max_window_bits=8 agreed, then a reference 20000 bytes back
    rnd = random.Random(5).randbytes(20000)
    c["window_8_then_far_reference"] = ("permessage-deflate; client_max_window_bits=8",
                                        [frame(2, compress_msg(rnd + rnd, 6, 15), rsv=4)],
                                        ("echo", [rnd + rnd]))
    # A message that ends inside a block (no sync flush): the tail is then
    # read as part of that block.
    w = _fixed_literals(b"abc", eob=False)
    c["ends_mid_block"] = (BROWSER_OFFER, [frame(1, w.getvalue(), rsv=4), frame(1, hello, rsv=4)],
                           ("any", None))
    c["server_window_8"] = ("permessage-deflate; server_max_window_bits=8",
                            [frame(2, compress_msg(rnd[:300] * 40), rsv=4)],
                            ("echo_window8", rnd[:300] * 40))
    return c


@attack(only="")
def atk_edges(ctx):
    """Protocol edge cases, each on a fresh connection: misplaced RSV
    bits, invalid deflate, BFINAL blocks, ends mid-block, UTF-8 in
    compressed text, limits, window bits. Expected close codes or echoes."""
    res = collections.OrderedDict()
    for name, (ext, frames, exp) in _edge_cases(ctx.takeover).items():
        if ctx.p["only"] and name not in ctx.p["only"].split(","):
            continue
        t0 = mono()
        try:
            s, neg, rest = ws_open(ctx.port, ctx.path, ext=ext)
        except (OSError, ConnectionError) as e:
            res[name] = {"error": str(e)}
            continue
        keeps = neg is not None and "server_no_context_takeover" not in neg
        wbits = 15
        if neg and "server_max_window_bits=8" in neg:
            wbits = 8
        dec = zlib.decompressobj(-wbits)
        try:
            s.sendall(b"".join(frames))
        except OSError:
            pass
        r = Reader()
        r.feed(rest)
        msgs = []
        parts = []
        rsv1 = False
        end = mono() + 30
        outcome = None
        while outcome is None and mono() < end:
            s.settimeout(max(0.01, end - mono()))
            try:
                d = s.recv(1 << 20)
            except socket.timeout:
                outcome = "timeout"
                break
            except OSError as e:
                outcome = type(e).__name__
                break
            if not d:
                outcome = "EOF"
                break
            for fin, rsv, op, pl in r.feed(d):
                if op == 8:
                    outcome = close_code_of(pl)
                    try:
                        s.sendall(close_frame(1000))
                    except OSError:
                        pass
                    break
                if op in (9, 10):
                    continue
                if op in (1, 2):
                    parts = [pl]
                    rsv1 = bool(rsv & 4)
                else:
                    parts.append(pl)
                if fin:
                    body = b"".join(parts)
                    if rsv1:
                        if not keeps:
                            dec = zlib.decompressobj(-wbits)
                        try:
                            body = dec.decompress(body + b"\x00\x00\xff\xff")
                        except zlib.error as e:
                            body = f"<client inflate failed: {e}>".encode()
                    msgs.append(body)
            kind = exp[0]
            if kind == "echo" and len(msgs) >= len(exp[1]):
                outcome = "echo"
            elif kind in ("echo_len", "echo_window8", "any") and msgs:
                outcome = "echo"
        ms = round((mono() - t0) * 1000, 1)
        s.close()
        kind, want = exp
        if kind == "close":
            ok = outcome == want
        elif kind == "echo":
            ok = outcome == "echo" and msgs[:len(want)] == want
        elif kind == "echo_len":
            ok = outcome == "echo" and len(msgs[0]) == want and not msgs[0].strip(b"\0")
        elif kind == "echo_window8":
            ok = outcome == "echo" and msgs[0] == want
        else:
            ok = None
        res[name] = {"ok": ok, "outcome": outcome, "ms": ms, "ext": neg,
                     "msgs": [m[:40] if len(m) < 1000 else f"<{len(m)} bytes>" for m in msgs[:3]]}
        if not ctx.srv.alive():
            res[name]["server"] = "DIED"
            break
    ctx.notes["cases"] = res
    ctx.notes["failed"] = [n for n, v in res.items() if v.get("ok") is False]


atk_edges.no_probe = True


@attack(sizes="1000000,7000000,7400000,7800000,8388000")
def atk_send_bound_edge(ctx):
    """Echo of compressible messages whose size is near the send bound
    (library default max_send_buffer 8 MiB; run with --target14): the
    bound is checked against deflate_bound(size), ~1.14 x size, not the
    compressed size. Each size once compressed (extension agreed) and once
    without the extension."""
    res = collections.OrderedDict()
    for size in [int(x) for x in ctx.p["sizes"].split(",")]:
        data = bytes(size)
        for mode in ("deflate", "plain"):
            ext = BROWSER_OFFER if mode == "deflate" else None
            s, neg, rest = ws_open(ctx.port, ctx.path, ext=ext)
            if neg:
                s.sendall(frame(2, bomb_bytes(size), rsv=4))
            else:
                s.sendall(frame(2, data))
            r = read_until_close(s, timeout=5, answer_close=True)
            res[f"{size}_{mode}"] = {"echo_bytes_on_wire": r["data"], "end": r["end"],
                                     "ext": neg}
            s.close()
    ctx.notes["cases"] = res


atk_send_bound_edge.no_probe = True


@attack(secs=10.0, batch=1000, size=100)
def atk_small_batches(ctx):
    """One connection sends batches of `batch` `size`-byte text messages
    (compressed when agreed; run with --server-args=--no-deflate or on
    both modes for comparison) and reads every echo before the next batch:
    server CPU per echoed message (codec resets, framing)."""
    p = ctx.p
    text = (b'{"type":"chat","text":"' + b"hello there " * (p["size"] // 12 + 1))[:p["size"] - 2] + b'"}'
    s, neg, rest = ws_open(ctx.port, ctx.path)
    one = frame(1, compress_msg(text), rsv=4) if neg else frame(1, text)
    wire = one * p["batch"]
    r = Reader()
    r.feed(rest)
    c0 = ctx.srv.cpu()
    t0 = mono()
    echoed = 0
    while mono() - t0 < p["secs"]:
        s.sendall(wire)
        got = 0
        while got < p["batch"]:
            s.settimeout(10)
            d = s.recv(1 << 20)
            if not d:
                raise ConnectionError("EOF")
            for fin, rsv, op, pl in r.feed(d):
                if op in (1, 2):
                    got += 1
        echoed += got
    cpu = ctx.srv.cpu() - c0
    ctx.notes["ext"] = neg
    ctx.notes["wire_bytes_per_msg"] = len(one)
    ctx.notes["echoed"] = echoed
    ctx.notes["msgs_per_s"] = round(echoed / (mono() - t0))
    ctx.notes["server_cpu_us_per_message"] = round(cpu * 1e6 / echoed, 2)
    s.close()
