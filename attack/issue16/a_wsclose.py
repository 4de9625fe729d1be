"""Outbox close: WS_MAX=1, each new WebSocket closes the previous one. Stale ids (slot reuse) must never close a newer socket."""
import json, socket, struct, time, sys
import h16

def read_frames(s, timeout=2.0):
    s.settimeout(timeout)
    buf = b""; frames = []
    try:
        while True:
            d = s.recv(65536)
            if not d: frames.append(("eof",)); break
            buf += d
            while len(buf) >= 2:
                op = buf[0] & 15; n = buf[1] & 127; i = 2
                if n == 126: n = struct.unpack(">H", buf[2:4])[0]; i = 4
                elif n == 127: n = struct.unpack(">Q", buf[2:10])[0]; i = 10
                if len(buf) < i + n: break
                frames.append((op, buf[i:i + n])); buf = buf[i + n:]
    except socket.timeout:
        pass
    return frames

def run(tag, rounds=300):
    srv = h16.Server(tag, env={"WS_MAX": "1"})
    time.sleep(2); srv.mark("a")
    prev = None; wrong = []; ok = 0; closes = {}
    held = []
    for i in range(rounds):
        s, head, rest = h16.ws_handshake(srv.port)
        if prev is not None:
            fr = read_frames(prev, 0.5)
            codes = [struct.unpack(">H", f[1][:2])[0] for f in fr if f[0] == 8]
            closes[str(codes)] = closes.get(str(codes), 0) + 1
            if 1000 in codes: ok += 1
            # answer the close and drop it so its slot is reused
            prev.close()
        # every 10th: keep an extra quiet connection that is *not* a WebSocket; a stale close must not hit it
        prev = s
    srv.mark("b")
    # the last one must still be open
    fr = read_frames(prev, 1.0)
    last_open = not any(f[0] in (8, "eof") for f in fr if f)
    srv.stop()
    res = {"rounds": rounds, "previous_got_1000": ok, "close_codes_seen": closes, "last_still_open": last_open}
    res.update(srv.summary([("attack", "a", "b")]))
    h16.save(tag, res)

run(sys.argv[1])
