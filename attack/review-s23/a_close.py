"""A3: close frames for every limit and malformed input I can trigger.

python3 a_close.py [--only NAME]
For each case: the server's close frame must be exactly one frame 0x88 (FIN, no RSV),
unmasked, payload 0 or 2..125 bytes, a code allowed on the wire, the reason valid UTF-8;
the expected code and reason (limit closes: their phrase; malformed input: no reason).
Nothing may follow the close frame; the socket must end (after our close reply or the
close timeout). Cases run in parallel; bounded to ~60 s.
"""
import os
import socket
import struct
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ws23  # noqa: E402

only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
port = ws23.free_port()
proc = ws23.start_target(port, {"DEFLATE": "1"})
port_b = ws23.free_port()
# A second server with a tiny inflate budget, for 1013.
proc_b = ws23.start_target(port_b, {"DEFLATE": "1", "MAX_INFLATED": "200000", "PAUSE_MS": "500"})

ALLOWED = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))
F = ws23.frame
results = []
lock = threading.Lock()


def comp(data):
    return ws23.deflate_msg(data)


def run_case(name, path, deflate, steps, exp_code, exp_reason, answer_pings=False, want_echo=None,
             server_port=None, deadline=12.0, reply_close=True):
    if name.startswith("budgetsrv_"):
        server_port = port_b
    """steps: list of bytes or float (sleep) or callables(sock)."""
    rec = {"name": name, "ok": False}
    try:
        s, left, head = ws23.handshake(server_port or port, path,
                                       "permessage-deflate" if deflate else None)
        if deflate and b"permessage-deflate" not in head:
            raise AssertionError("deflate not agreed")
        rd = ws23.Reader(s, left)
        for st in steps:
            if isinstance(st, float):
                time.sleep(st)
            elif callable(st):
                st(s)
            else:
                s.sendall(st)
        s.settimeout(0.3)
        end = time.time() + deadline
        frames = []
        close = None
        while time.time() < end:
            try:
                fin, rsv1, opc, payload, b0 = rd.frame()
            except socket.timeout:
                continue
            except (EOFError, ConnectionError) as e:
                frames.append(("EOF", repr(e)))
                break
            frames.append((b0, opc, len(payload)))
            if opc == 9 and answer_pings:
                s.sendall(F(10, payload))
            if opc == 8:
                close = (b0, payload)
                break
        rec["frames"] = frames[-6:]
        if close is None:
            raise AssertionError("no close frame in %.0f s; frames %r" % (deadline, frames[-5:]))
        b0, payload = close
        problems = []
        if b0 != 0x88:
            problems.append("first byte 0x%02x" % b0)
        if len(payload) > 125 or len(payload) == 1:
            problems.append("payload length %d" % len(payload))
        code, reason = ws23.parse_close(payload)
        rec["code"] = code
        rec["reason"] = reason
        if code is not None and code not in ALLOWED:
            problems.append("code %s not allowed on the wire" % code)
        try:
            reason.decode("utf-8")
        except UnicodeDecodeError:
            problems.append("reason not UTF-8 %r" % reason)
        if isinstance(exp_code, (set, tuple, list)):
            if code not in exp_code:
                problems.append("code %s, expected one of %s" % (code, sorted(exp_code)))
        elif code != exp_code:
            problems.append("code %s, expected %s" % (code, exp_code))
        if callable(exp_reason):
            msg = exp_reason(reason)
            if msg:
                problems.append(msg)
        elif exp_reason is not None and reason != exp_reason:
            problems.append("reason %r, expected %r" % (reason, exp_reason))
        # After the close: our reply, then nothing more but EOF.
        if reply_close:
            try:
                s.sendall(F(8, struct.pack(">H", 1000)))
            except OSError:
                pass
        s.settimeout(7)
        t_close = time.time()
        extra = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                extra += d
        except socket.timeout:
            problems.append("socket not ended 7 s after the close")
        except OSError:
            pass
        rec["end_s"] = round(time.time() - t_close, 3)
        if rd.buf or extra:
            problems.append("bytes after the close frame: %r" % (bytes(rd.buf) + extra)[:60])
        rec["problems"] = problems
        rec["ok"] = not problems
        s.close()
    except Exception as e:  # noqa: BLE001
        rec["problems"] = ["exception %r" % e]
    with lock:
        results.append(rec)


def reason_max(maxlen, prefix=None):
    def check(r):
        if len(r) > maxlen:
            return "reason %d bytes > %d" % (len(r), maxlen)
        if prefix is not None and not prefix.startswith(r.decode("utf-8", "replace")):
            return "reason %r is not a prefix of what the program asked" % r[:40]
        if prefix is not None and len(prefix.encode()) > maxlen and len(r) < maxlen - 3:
            return "reason truncated more than needed (%d bytes)" % len(r)
        return None
    return check


X = 0x80  # FIN
cases = []
S = "/ws/small"  # 1000-byte messages, 4 fragments, 2 s fragment timeout, 1000 B/s, idle 6 s, keepalive 3 s + 2 s
# ---- limits, with reason ----
cases += [
    ("too_big_one_frame", S, False, [F(2, b"x" * 1001)], 1009, b"message too big"),
    ("too_big_header_only", S, False, [F(2, b"x" * 1001)[:8]], 1009, b"message too big"),
    ("too_big_fragments", S, False, [F(2, b"x" * 600, fin=False), F(0, b"y" * 401)], 1009, b"message too big"),
    ("too_big_text_64bit_len", S, False, [bytes([0x81, 0xFF]) + struct.pack(">Q", 1 << 40) + b"abcd"], 1009,
     b"message too big"),
    ("too_many_fragments", S, False, [F(2, b"a", fin=False)] + [F(0, b"b", fin=False)] * 4, 1008,
     b"too many fragments"),
    ("fragment_timeout", S, False, [F(1, b"ab", fin=False)], 1008, b"fragmented message timed out"),
    ("message_too_slow", S, False, [F(2, b"z" * 900)[:6 + 10]] + [0.4, F(2, b"z" * 900)[16:17]] * 10,
     1008, b"message arriving too slowly"),
    ("keepalive_no_answer", S, False, [], 1001, b"no answer to keepalive ping"),
    ("idle_timeout", S, False, [F(10, b"")], 1001, b"idle for too long"),
    ("deflate_bomb", S, True, [F(2, comp(b"\0" * 5000), rsv1=True)], 1009, b"message too big"),
    ("deflate_bomb_text", S, True, [F(1, comp(b"a" * 5000), rsv1=True)], 1009, b"message too big"),
    ("deflate_too_many_fragments", S, True,
     [F(2, comp(b"q" * 10)[:1], rsv1=True, fin=False)] + [F(0, b"", fin=False)] * 4, 1008,
     b"too many fragments"),
    ("deflate_fragment_timeout", S, True, [F(2, comp(b"q" * 10)[:2], rsv1=True, fin=False)], 1008,
     b"fragmented message timed out"),
    # the program's close, reasons over 123 bytes with multi-byte characters at the cut
    ("program_close_long_ascii", "/ws", False, [F(1, ("!close " + "r" * 300).encode())], 4000,
     reason_max(123, "r" * 300)),
    ("program_close_cut_in_emoji", "/ws", False, [F(1, ("!close " + "r" * 121 + "😀" * 10).encode())], 4000,
     reason_max(123, "r" * 121 + "😀" * 10)),
    ("program_close_cut_in_euro", "/ws", False, [F(1, ("!close " + "r" * 122 + "€" * 10).encode())], 4000,
     reason_max(123, "r" * 122 + "€" * 10)),
    ("program_close_exact_123", "/ws", False, [F(1, ("!close " + "é" * 61 + "r").encode())], 4000,
     ("é" * 61 + "r").encode()),
]
# keepalive_no_answer: silent; idle_timeout: pongs answered (set below)
# ---- malformed input: protocol error, no reason ----
bad = [
    ("reserved_opcode_3", [F(3, b"")], 1002),
    ("reserved_opcode_B", [F(0xB, b"")], 1002),
    ("unmasked", [F(1, b"hi", mask=False)], 1002),
    ("rsv2", [F(1, b"hi", rsv=0x20)], 1002),
    ("rsv3", [F(1, b"hi", rsv=0x10)], 1002),
    ("rsv1_no_deflate", [F(1, b"hi", rsv1=True)], 1002),
    ("ping_126", [bytes([0x89, 0xFE, 0, 126]) + b"mask" + b"p" * 126], 1002),
    ("ping_fragmented", [F(9, b"p", fin=False)], 1002),
    ("close_fragmented", [F(8, b"\x03\xe8", fin=False)], 1002),
    ("cont_first", [F(0, b"x")], 1002),
    ("text_inside_fragmented", [F(1, b"a", fin=False), F(1, b"b")], 1002),
    ("binary_inside_fragmented", [F(2, b"a", fin=False), F(2, b"b")], 1002),
    ("utf8_ff", [F(1, b"ok\xff")], 1007),
    ("utf8_overlong", [F(1, b"\xc0\x80")], 1007),
    ("utf8_surrogate", [F(1, b"\xed\xa0\x80")], 1007),
    ("utf8_above_10ffff", [F(1, b"\xf4\x90\x80\x80")], 1007),
    ("utf8_bad_across_fragments", [F(1, b"\xe2\x82", fin=False), F(0, b"\x28")], 1007),
    ("utf8_bad_across_segments", [F(1, b"abc\xe2\x82\x28")[:9], 0.05, F(1, b"abc\xe2\x82\x28")[9:]], 1007),
    ("utf8_truncated_at_end", [F(1, b"\xe2\x82")], 1007),
    ("utf8_truncated_end_of_fragments", [F(1, b"a", fin=False), F(0, b"\xf0\x9f\x98")], 1007),
    ("len_msb_set", [bytes([0x82, 0xFF]) + struct.pack(">Q", 1 << 63) + b"mask"], 1002),
    ("close_one_byte", [F(8, b"\x03")], 1002),
    ("close_code_1005", [F(8, struct.pack(">H", 1005))], 1002),
    ("close_code_1006", [F(8, struct.pack(">H", 1006))], 1002),
    ("close_code_999", [F(8, struct.pack(">H", 999))], 1002),
    ("close_code_1004", [F(8, struct.pack(">H", 1004))], 1002),
    ("close_code_1015", [F(8, struct.pack(">H", 1015))], 1002),
    ("close_code_5000", [F(8, struct.pack(">H", 5000))], 1002),
    ("close_code_65535", [F(8, struct.pack(">H", 65535))], 1002),
    ("close_bad_utf8_reason", [F(8, struct.pack(">H", 1000) + b"\xff")], (1002, 1007)),
]
for name, steps, code in bad:
    cases.append(("bad_" + name, "/ws", False, steps, set(code) if isinstance(code, tuple) else code, b""))
# deflate malformed
cases += [
    ("bad_deflate_garbage", "/ws", True, [F(2, b"\xff\xff\xff\xff", rsv1=True)], 1007, b""),
    ("bad_deflate_rsv1_on_cont", "/ws", True, [F(2, comp(b"a"), rsv1=True, fin=False), F(0, b"", rsv1=True)],
     1002, b""),
    ("bad_deflate_rsv1_on_ping", "/ws", True, [F(9, b"", rsv1=True)], 1002, b""),
    ("bad_deflate_utf8", "/ws", True, [F(1, comp(b"ok\xff\xfe"), rsv1=True)], 1007, b""),
    ("bad_deflate_after_limit_close", S, True, [F(2, comp(b"\0" * 5000), rsv1=True), 0.1, F(3, b"")], 1009,
     b"message too big"),
]
CLOSE3000 = F(8, struct.pack(">H", 3000) + b"bye")
# on the server with a 200,000-byte inflate budget: a message larger than the budget
cases += [
    ("budgetsrv_message_over_budget", "/ws", True, [F(2, comp(b"\0" * 300000), rsv1=True)], 1009, b"message too big"),
    ("budgetsrv_text_over_budget_fragments", "/ws", True,
     [F(1, comp(b"a" * 300000)[:50], rsv1=True, fin=False), F(0, comp(b"a" * 300000)[50:])], 1009, b"message too big"),
]
# peer-initiated closes: the echo carries the code (no reason), an empty close gets an empty close
cases += [
    ("peer_close_1000_reason123", "/ws", False, [F(8, struct.pack(">H", 1000) + b"r" * 123)], 1000, b""),
    ("peer_close_4999", "/ws", False, [F(8, struct.pack(">H", 4999) + "é".encode())], 4999, b""),
    ("peer_close_empty", "/ws", False, [F(8, b"")], None, b""),
    ("peer_close_split_every", "/ws", False,
     [CLOSE3000[i:i + 1] for i in range(11)], 3000, b""),
]

threads = []
for c in cases:
    name, path, defl, steps, code, reason = c
    if only and only not in name:
        continue
    kw = {}
    if name == "idle_timeout":
        kw["answer_pings"] = True
        kw["deadline"] = 10.0
    t = threading.Thread(target=run_case, args=(name, path, defl, steps, code, reason), kwargs=kw)
    t.start()
    threads.append(t)


# 1013: a holder fills the tiny budget mid-message, a second compressed client must wait.
def budget_case():
    if only and only not in "busy_1013":
        return
    rec = {"name": "busy_1013", "ok": False}
    try:
        holder, lh, _ = ws23.handshake(port_b, "/ws", "permessage-deflate")
        big = comp(os.urandom(1) * 190000)
        holder.sendall(F(2, big, rsv1=True, fin=False))
        time.sleep(0.3)
        waiters = []
        for _ in range(3):
            w, lw, _ = ws23.handshake(port_b, "/ws", "permessage-deflate")
            w.sendall(F(2, comp(b"w" * 150000), rsv1=True, fin=False))
            waiters.append((w, lw))
        closes = []
        for s, left in [(holder, lh)] + waiters:
            s.settimeout(3)
            rd = ws23.Reader(s, left)
            try:
                while True:
                    fin, rsv1, opc, payload, b0 = rd.frame()
                    if opc == 8:
                        code, reason = ws23.parse_close(payload)
                        ok = b0 == 0x88 and len(payload) <= 125
                        closes.append((code, reason, ok))
                        break
            except (socket.timeout, EOFError, OSError) as e:
                closes.append(("none", repr(e)[:60], True))
        rec["closes"] = closes
        busy = [c for c in closes if c[0] == 1013]
        problems = []
        if not busy:
            problems.append("no 1013 seen: %r" % closes)
        for c in busy:
            if c[1] != b"server busy, try again later" or not c[2]:
                problems.append("bad 1013 frame %r" % (c,))
        rec["problems"] = problems
        rec["ok"] = not problems
        rec["code"] = 1013 if busy else None
        rec["reason"] = busy[0][1] if busy else None
    except Exception as e:  # noqa: BLE001
        rec["problems"] = ["exception %r" % e]
    with lock:
        results.append(rec)


t = threading.Thread(target=budget_case)
t.start()
threads.append(t)
for t in threads:
    t.join()
nbad = 0
for r in sorted(results, key=lambda r: r["name"]):
    status = "ok " if r["ok"] else "BAD"
    if not r["ok"]:
        nbad += 1
    print("%s %-36s code=%s reason=%r end=%ss %s" % (status, r["name"], r.get("code"), r.get("reason"),
                                                   r.get("end_s"), "; ".join(r.get("problems", []))))
print("A3 close frames: %d cases, %d bad" % (len(results), nbad))
for p in (proc, proc_b):
    print("  server alive:", p.poll() is None, ws23.proc_status(p.pid))
    p.kill()
sys.exit(1 if nbad else 0)
