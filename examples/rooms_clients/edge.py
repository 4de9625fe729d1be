"""Edge cases of examples/rooms.rs a user would try, with Python `websockets`.

  python edge.py BASE          (the example running with at least 8 rooms)

Prints one line per check ("ok ..." or "FAIL ...") and exits 1 on a FAIL.
Every socket has a timeout; nothing waits more than ~10 s.
"""
import json, socket, sys, time, urllib.request

import warnings
from websockets.sync.client import connect

warnings.simplefilter("ignore", DeprecationWarning)  # connect() outside a with block

BASE = sys.argv[1]
WS = BASE.replace("http://", "ws://")
HOST, PORT = BASE.split("//")[1].split(":")
PORT = int(PORT)
fails = 0


def check(cond, what):
    global fails
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        fails += 1


def stats():
    with urllib.request.urlopen(BASE + "/stats", timeout=5) as r:
        return json.loads(r.read())


def until(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


class Client:
    def __init__(self, room, deflate=False):
        self.ws = connect(  # kept open across checks, closed at the end
f"{WS}/ws/{room}" + ("?deflate=1" if deflate else ""),
                          max_size=None, open_timeout=10, compression="deflate" if deflate else None,
                          ping_interval=None, max_queue=None)
        w = self.ws.recv(timeout=10).split()
        assert w[0] == "welcome", w
        self.token, self.room = int(w[1]), int(w[2])
        self.seen = []

    def send(self, m):
        self.ws.send(m)

    def next(self, pred, timeout=10.0):
        """The next message matching pred; the others are kept in self.seen."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                m = self.ws.recv(timeout=left)
            except TimeoutError:
                return None
            if pred(m):
                return m
            self.seen.append(m)

    def answer(self, command, kind):
        self.send(command)
        return self.next(lambda m: isinstance(m, str) and m.startswith(kind + " ") or m.startswith("error"))

    def drain(self, seconds):
        end = time.monotonic() + seconds
        out = []
        while (left := end - time.monotonic()) > 0:
            try:
                out.append(self.ws.recv(timeout=left))
            except TimeoutError:
                break
        return out


class Sse:
    def __init__(self, query=""):
        self.s = socket.create_connection((HOST, PORT), timeout=10)
        self.s.sendall(f"GET /ticker{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        assert b" 200 " in head.split(b"\r\n")[0], head
        self.events = []
        ev = self.event()
        assert ev[0] == "hello", ev
        self.token = int(ev[1].split()[1])

    def _until(self, sep):
        while sep not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def event(self):
        # The body is chunked: strip chunk framing lazily by reading until a
        # blank data line; chunk-size lines are hex only and never start with
        # a field name, so they are skipped.
        lines = []
        while True:
            line = self._until(b"\n").rstrip(b"\r\n").decode()
            if line == "" and lines:
                break
            if line.startswith(("event: ", "data: ", ":")):
                lines.append(line)
        ev, data = "message", []
        for l in lines:
            if l.startswith("event: "):
                ev = l[7:]
            elif l.startswith("data: "):
                data.append(l[6:])
        return ev, "\n".join(data)

    def events_for(self, seconds):
        self.s.settimeout(seconds)
        out = []
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                out.append(self.event())
        except (TimeoutError, socket.timeout):
            pass
        self.s.settimeout(10)
        return out


def chats(msgs, room=None):
    return [m for m in msgs if isinstance(m, str) and m.startswith("chat ") and (room is None or m.split()[1] == str(room))]


# A. Joining one's own room again: still one membership, one copy of each line.
a = Client(0)
b = Client(0, deflate=True)
n0 = stats()["rooms"][0]
check(a.answer("/join 0", "joined") == f"joined 0 true {n0}", f"join own room again: same count {n0}")
check(a.answer("/join 0", "joined") == f"joined 0 true {n0}", "and again")
a.send("m 0 once")
got = chats(a.drain(1.0))
check(len([m for m in got if m.endswith(" m 0 once")]) == 1, f"own line received once after double join: {got}")
ticks = [m for m in a.drain(1.2) if m.startswith("tick ")]
ns = [int(m.split()[2]) for m in ticks]
check(len(ns) == len(set(ns)) and len(ns) >= 3, f"one tick per round after double join: {ns}")

# B. Another room: joined once, left once, leaving again or a room never joined is false.
n1 = stats()["rooms"][1]
check(a.answer("/join 1", "joined") == f"joined 1 true {n1 + 1}", "join room 1: count +1")
check(a.answer("/join 1", "joined") == f"joined 1 true {n1 + 1}", "join room 1 twice: count unchanged")
c = Client(1)
c.send("m 0 to-room-1")
check(a.next(lambda m: m.startswith("chat 1 ") and m.endswith("to-room-1")) is not None, "member of two rooms gets room 1's chat")
n1 = stats()["rooms"][1]
check(a.answer("/leave 1", "left") == f"left 1 true {n1 - 1}", "leave room 1")
check(a.answer("/leave 1", "left") == f"left 1 false {n1 - 1}", "leave room 1 again: false")
check(a.answer("/leave 5", "left").startswith("left 5 false"), "leave a room never joined: false")
a.drain(0.5)
c.send("m 1 after-leave")
check(a.next(lambda m: m.startswith("chat 1 "), timeout=1.5) is None, "no room 1 chat after leaving")
check(a.answer("/leave 99", "left") in (None, "error unknown command"), "leave a room that does not exist: refused by the program")

# C. An event stream joined to a WebSocket room.
s = Sse()
n0 = stats()["rooms"][0]
check(a.answer(f"/watch {s.token}", "watch") == f"watch {s.token} true {n0 + 1}", "join an SSE id to a WS room")
check(a.answer(f"/watch {s.token}", "watch") == f"watch {s.token} true {n0 + 1}", "twice: count unchanged")
a.send("m 1 hello-watchers")
evs = s.events_for(1.5)
check(("chat", f"chat 0 {chats(a.drain(0.5), 0)[-1].split()[2]} {a.token} m 1 hello-watchers") in evs
      if chats(a.seen + [], 0) or True else False, "event stream in the room gets the chat event")
tick_events = [d for e, d in evs if e == "tick"]
check(all(len(d.split()) == 3 for d in tick_events) and tick_events, f"event stream gets only the ticker's ticks, not the room's text: {tick_events[:3]}")
check(not [e for e in evs if e[0] not in ("tick", "chat")], f"nothing else on the stream: {[e for e in evs if e[0] not in ('tick', 'chat')][:3]}")
s.s.close()
check(until(lambda: stats()["rooms"][0] == n0), f"closed event stream leaves the room ({stats()['rooms'][0]} vs {n0})")
check(a.answer(f"/watch {s.token}", "watch") == f"watch {s.token} false {n0}", "joining a closed stream: false")

# D. A removed group.
z = Client(3)
zz = Client(3, deflate=True)
check(a.answer("/remove 3", "removed") == "removed 3 false", "remove room 3")
check(a.answer("/count 3", "count") == "count 3 0", "removed room is empty")
check(a.answer("/join 3", "joined") == "joined 3 false 0", "joining a removed room: false")
z.drain(0.3)
z.send("m 0 into-the-void")
after = z.drain(1.5)
check(not chats(after) and not [m for m in after if m.startswith("tick 3 ")], f"removed room: no chat, no ticks: {[m for m in after if not m.startswith('news')][:3]}")
check(any(m.startswith("news ") for m in after), "members of a removed room are still connected (news)")
late = Client(3)
late_msgs = late.drain(1.0)
check(not [m for m in late_msgs if m.startswith("tick 3")], "a new client of the removed room hears no room ticks")
check(stats()["rooms"][3] == 0, "removed room still empty after a join attempt from a handler")
z.answer("/remove 3", "removed")  # removing twice
check(z.answer("/count 0", "count") is not None, "removing a removed group again is harmless")

# E. Huge messages: 7 MiB text to a room with a deflate member, 5 MiB binary, then 9 MiB (> 8 MiB send bound).
h1 = Client(4)
h2 = Client(4, deflate=True)
h3 = Client(4)
for h in (h1, h2, h3):
    h.drain(0.2)
big = "m 0 " + "x" * (7 << 20)
h1.send(big)
for name, h in (("plain", h1), ("deflate", h2), ("plain-2", h3)):
    m = h.next(lambda m: isinstance(m, str) and m.startswith("chat 4 "), timeout=20)
    check(m is not None and m.endswith(big) and len(m) == len(big) + len(m) - len(big), f"7 MiB line reaches the {name} member intact ({len(m) if m else None} chars)")
blob = bytes(range(256)) * (5 << 12)  # 5 MiB
h2.send(blob)
for name, h in (("plain", h1), ("deflate", h2), ("plain-2", h3)):
    m = h.next(lambda m: isinstance(m, bytes), timeout=20)
    check(m == blob, f"5 MiB binary relayed intact to the {name} member")
huge = "m 1 " + "y" * (9 << 20)
h1.send(huge)
res = {}
for name, h in (("plain", h1), ("deflate", h2), ("plain-2", h3)):
    m = h.next(lambda m: isinstance(m, str) and m.startswith("chat 4 "), timeout=8)
    res[name] = None if m is None else len(m)
    try:
        h.send("/count 4")
        res[name + "-count"] = h.next(lambda m: m.startswith("count "), timeout=5)
    except Exception as e:
        res[name + "-count"] = type(e).__name__
print("     9 MiB line over the 8 MiB send bound:", res)
check(all(v is None for k, v in res.items() if not k.endswith("-count")), "9 MiB line not delivered (over max_send_buffer)")
check(all(isinstance(v, str) for k, v in res.items() if k.endswith("-count")), f"members stay connected after a too-large broadcast: {res}")

# F. A client that vanishes without a close frame leaves its room.
n6 = stats()["rooms"][6]
v = Client(6)
check(until(lambda: stats()["rooms"][6] == n6 + 1), "joined room 6")
v.ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
v.ws.socket.close()  # RST, no close frame
check(until(lambda: stats()["rooms"][6] == n6), f"a reset client leaves its room ({stats()['rooms'][6]})")

# G. A client that stops reading is dropped from its room; the others go on.
slow = Client(7)
fast = Client(7)
talker = Client(7)
n7 = stats()["rooms"][7]
slow.ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
line = "z" * (1 << 20)
for i in range(40):
    talker.send(f"m {i} {line}")
    talker.next(lambda m: m.startswith("chat 7 ") and f" m {i} " in m[:40], timeout=20)
    m = fast.next(lambda m: m.startswith("chat 7 ") and f" m {i} " in m[:40], timeout=20)
    if m is None:
        break
check(m is not None, "the reading member got all 40 MiB")
check(until(lambda: stats()["rooms"][7] == n7 - 1, 10), f"the member that stopped reading was dropped from the room ({stats()['rooms'][7]} of {n7})")

for c_ in (a, b, c, z, zz, late, h1, h2, h3, fast, talker):
    try:
        c_.ws.close()
    except Exception:
        pass
print("FAILURES:", fails)
sys.exit(1 if fails else 0)
