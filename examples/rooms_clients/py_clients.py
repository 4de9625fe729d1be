"""Chat clients for examples/rooms.rs, with the Python `websockets` library.

  python py_clients.py BASE N ROOMS K K2 EXPECT1 EXPECT2 G0 G1 [TIMEOUT]

Runs clients with global indices G0..G1-1 out of N (the Node client runs
the same protocol for other indices). Client g joins room g % ROOMS (with
permessage-deflate when g % 3 == 0), waits until /stats shows EXPECT1 room
members, sends K chat lines (one of 1 MiB + 17 when g % 100 == 0) and, when
g % 50 == 1, a 200,000-byte binary message; then reads until it has every
chat line and binary of its room. Clients with (g // ROOMS) odd then leave, half of each
room; the others wait for
/stats to show EXPECT2 members, send K2 more lines and read their room's.
Prints one JSON object per client; "errors" lists what was wrong.
"""
import asyncio, hashlib, json, sys, time, urllib.request

import websockets

ALPHA = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
HUGE = (1 << 20) + 17
BINARY = 200_000


def payload(token, i, length):
    start = (token * 7 + i) % len(ALPHA)
    rot = ALPHA[start:] + ALPHA[:start]
    return (rot * (length // len(rot) + 1))[:length]


def length_of(g, token, i, k):
    if g % 100 == 0 and i == k - 1:
        return HUGE
    return 20 + (token * 7 + i * 13) % 200


def binary_of(token):
    head = token.to_bytes(8, "big")
    body = bytes((token + j) % 251 for j in range(251))
    return (head + body * (BINARY // 251 + 1))[:BINARY]


def members(n, rooms, room, pred=lambda g: True):
    return sum(1 for g in range(n) if g % rooms == room and pred(g))


def stats(base):
    with urllib.request.urlopen(base + "/stats", timeout=5) as r:
        return json.loads(r.read())


async def wait_members(base, want, deadline):
    while True:
        s = await asyncio.to_thread(stats, base)
        if sum(s["rooms"]) == want:
            return s
        if time.monotonic() > deadline:
            raise TimeoutError(f"/stats rooms sum {sum(s['rooms'])}, want {want}")
        await asyncio.sleep(0.1)


class Barrier:
    """One /stats poller shared by every client of this process."""

    def __init__(self, base, want, deadline):
        self.task = asyncio.ensure_future(wait_members(base, want, deadline))

    async def wait(self):
        return await asyncio.shield(self.task)


async def client(g, a, barriers):
    room = g % a.rooms
    deflate = g % 3 == 0
    rep = {"g": g, "room": room, "deflate": deflate, "errors": [], "lib": "python"}
    errs = rep["errors"]

    def err(msg):
        if len(errs) < 8:
            errs.append(msg)
        rep["error_count"] = rep.get("error_count", 0) + 1

    url = f"{a.ws}/ws/{room}" + ("?deflate=1" if deflate else "")
    deadline = a.deadline
    last_tick = {}
    last_news = None
    rep["ticks"] = rep["news"] = 0
    try:
        async with websockets.connect(url, max_size=None, open_timeout=30,
                                      compression="deflate", ping_interval=None) as ws:
            rep["ext"] = ws.response.headers.get("Sec-WebSocket-Extensions")
            if deflate != bool(rep["ext"]):
                err(f"extension {rep['ext']!r} with deflate={deflate}")
            welcome = await asyncio.wait_for(ws.recv(), 30)
            parts = welcome.split()
            if parts[0] != "welcome" or int(parts[2]) != room:
                err(f"first message {welcome[:60]!r}")
                return rep
            token = int(parts[1])
            rep["token"] = token
            tokens_room = {}  # sender token -> last i
            state = {"seq": None, "chats": 0, "bins": 0, "hash": hashlib.sha1(), "huge": []}

            def on_message(m):
                nonlocal last_news
                if isinstance(m, bytes):
                    if len(m) != BINARY:
                        err(f"binary of {len(m)} bytes")
                    else:
                        t = int.from_bytes(m[:8], "big")
                        if m != binary_of(t):
                            err(f"binary from {t} corrupted")
                    state["bins"] += 1
                    return
                kind, _, rest = m.partition(" ")
                if kind == "chat":
                    r, seq, tok, text = rest.split(" ", 3)
                    r, seq, tok = int(r), int(seq), int(tok)
                    if r != room:
                        err(f"chat of room {r}")
                        return
                    if state["seq"] is not None and seq != state["seq"] + 1:
                        err(f"chat seq {seq} after {state['seq']}")
                    state["seq"] = seq
                    state.setdefault("first_seq", seq)
                    m_, i, body = text.split(" ", 2)
                    i = int(i)
                    if tokens_room.get(tok, -1) + 1 != i:
                        err(f"from {tok}: line {i} after {tokens_room.get(tok)}")
                    tokens_room[tok] = i
                    if body != payload(tok, i, len(body)):
                        err(f"from {tok}: line {i} corrupted ({len(body)} bytes)")
                    if len(body) >= HUGE - 1000:
                        state["huge"].append(seq)
                    state["hash"].update(f"{seq}:{tok}:{i}:{len(body)}\n".encode())
                    state["chats"] += 1
                elif kind == "tick":
                    r, n, _ = rest.split(" ")
                    r, n = int(r), int(n)
                    if r != room:
                        err(f"tick of room {r}")
                    elif r in last_tick and n != last_tick[r] + 1:
                        err(f"tick {n} after {last_tick[r]}")
                    last_tick[r] = n
                    rep["ticks"] += 1
                elif kind == "news":
                    n = int(rest)
                    if last_news is not None and n != last_news + 1:
                        err(f"news {n} after {last_news}")
                    last_news = n
                    rep["news"] += 1
                else:
                    err(f"unexpected {m[:60]!r}")

            async def reader(want_chats, want_bins):
                while state["chats"] < want_chats or state["bins"] < want_bins:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"{state['chats']}/{want_chats} chats, {state['bins']}/{want_bins} binaries")
                    on_message(await asyncio.wait_for(ws.recv(), left))

            async def sender(k, base_i):
                for i in range(base_i, base_i + k):
                    await ws.send(f"m {i} " + payload(token, i, length_of(g, token, i, a.k)))
                    await asyncio.sleep(((g * 31 + i * 17) % 50) / 1000)
                if base_i == 0 and g % 50 == 1:
                    await ws.send(binary_of(token))

            # Phase 1: everyone in, then everyone talks.
            await barriers[0].wait()
            want1 = a.k * members(a.n, a.rooms, room)
            bins1 = members(a.n, a.rooms, room, lambda x: x % 50 == 1)
            await asyncio.gather(sender(a.k, 0), reader(want1, bins1))
            rep["phase1"] = {"chats": state["chats"], "first_seq": state.get("first_seq"),
                             "last_seq": state["seq"], "hash": state["hash"].hexdigest(),
                             "bins": state["bins"], "huge": state["huge"]}
            if (g // a.rooms) % 2 == 1:
                await ws.close()
                rep["left"] = True
                return rep
            # Phase 2: the odd ones have gone; the rest talk again.
            state["hash"] = hashlib.sha1()
            state["chats"] = 0
            state.pop("first_seq", None)
            await barriers[1].wait()
            want2 = a.k2 * members(a.n, a.rooms, room, lambda x: (x // a.rooms) % 2 == 0)
            await asyncio.gather(sender(a.k2, a.k), reader(want2, 0))
            rep["phase2"] = {"chats": state["chats"], "first_seq": state.get("first_seq"),
                             "last_seq": state["seq"], "hash": state["hash"].hexdigest()}
            await ws.close()
    except Exception as e:  # reported, not raised: one bad client must not hide the others
        err(f"{type(e).__name__}: {e}")
    finally:
        rep["last_tick"] = last_tick
        rep["last_news"] = last_news
    return rep


class Args:
    pass


async def main():
    a = Args()
    a.base = sys.argv[1]
    a.ws = a.base.replace("http://", "ws://")
    a.n, a.rooms, a.k, a.k2, a.expect1, a.expect2, g0, g1 = map(int, sys.argv[2:10])
    timeout = float(sys.argv[10]) if len(sys.argv) > 10 else 180
    a.deadline = time.monotonic() + timeout
    barriers = [Barrier(a.base, a.expect1, a.deadline), None]
    # The second barrier starts polling only once this process needs it.
    class Lazy:
        async def wait(self):
            if barriers[2] is None:
                barriers[2] = Barrier(a.base, a.expect2, a.deadline)
            return await barriers[2].wait()
    barriers.append(None)
    barriers[1] = Lazy()
    reps = await asyncio.gather(*(client(g, a, barriers) for g in range(g0, g1)))
    for r in reps:
        print(json.dumps(r), flush=True)


asyncio.run(main())
