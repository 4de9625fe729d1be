"""Drives examples/rooms.rs with real clients and checks what each received.

  python run.py ROOMS_BINARY [N=500] [ROOMS=10] [K=10] [K2=5]

Starts the example, 4 `curl -N` event streams (two on /ticker, one each on
/ticker?room=0 and ?room=1), Python `websockets` clients (60 %, two
processes) and Node `ws` clients (40 %) running the protocol described in
py_clients.py; samples the server's CPU time and RSS; then checks that every
client of a room saw the same chat lines in the same order, exactly its
room's, with no gap or duplicate in ticks and news, that the event streams
got the same, and that the groups emptied as clients left.
Exit status 0 when everything matched.
"""
import collections, hashlib, json, os, re, signal, socket, subprocess, sys, threading, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NODE_MODULES = os.environ.get("NODE_MODULES", os.path.join(REPO, "tests/node/node_modules"))
if not os.path.isdir(NODE_MODULES):  # a git worktree: the main checkout has them
    NODE_MODULES = "/work/main/tests/node/node_modules"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stats(base):
    with urllib.request.urlopen(base + "/stats", timeout=5) as r:
        return json.loads(r.read())


def proc_sample(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return ticks / os.sysconf("SC_CLK_TCK"), rss


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    rooms = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    k = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    k2 = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    timeout = 240
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    out = os.environ.get("OUT", "/tmp/rooms-run")
    os.makedirs(out, exist_ok=True)
    server = subprocess.Popen([binary, str(port), str(rooms)], stderr=open(f"{out}/server.log", "w"),
                              env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn")))
    procs = []
    failures = []
    try:
        for _ in range(100):
            try:
                stats(base)
                break
            except OSError:
                time.sleep(0.05)
        cpu0, _ = proc_sample(server.pid)
        curls = []
        for name, path in [("t1", "/ticker"), ("t2", "/ticker"), ("r0", "/ticker?room=0"), ("r1", "/ticker?room=1")]:
            curls.append((name, path, subprocess.Popen(["curl", "-sN", "--max-time", str(timeout), base + path],
                                                       stdout=open(f"{out}/sse-{name}.txt", "wb"))))
        sse_room = 2
        expect1 = n + sse_room
        expect2 = sum(1 for g in range(n) if (g // rooms) % 2 == 0) + sse_room
        py = sys.executable
        n_py = n * 3 // 5
        ranges = [("py-a", 0, n_py // 2), ("py-b", n_py // 2, n_py), ("node", n_py, n)]
        common = [base, str(n), str(rooms), str(k), str(k2), str(expect1), str(expect2)]
        for name, g0, g1 in ranges:
            if name.startswith("py"):
                cmd = [py, os.path.join(HERE, "py_clients.py"), *common, str(g0), str(g1), str(timeout - 20)]
            else:
                cmd = ["node", os.path.join(HERE, "node_clients.mjs"), *common, str(g0), str(g1), str(timeout - 20)]
            procs.append((name, subprocess.Popen(cmd, stdout=open(f"{out}/{name}.jsonl", "w"),
                                                 stderr=open(f"{out}/{name}.err", "w"),
                                                 env=dict(os.environ, NODE_PATH=NODE_MODULES))))
        samples = []
        peak = {"rss": 0, "output_queued": 0, "output_buffered": 0, "connections": 0}
        t0 = time.monotonic()
        while any(p.poll() is None for _, p in procs):
            if time.monotonic() - t0 > timeout:
                failures.append("clients did not finish in time")
                break
            cpu, rss = proc_sample(server.pid)
            s = stats(base)
            samples.append((round(time.monotonic() - t0, 1), round(cpu - cpu0, 2), rss, sum(s["rooms"]),
                            s["connections"], s["output_queued"], s["output_buffered"]))
            peak["rss"] = max(peak["rss"], rss)
            for key in ("output_queued", "output_buffered", "connections"):
                peak[key] = max(peak[key], s[key])
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        cpu_clients, rss_end = proc_sample(server.pid)
        time.sleep(1.5)  # one housekeeping round of the example
        after = stats(base)
        # The event streams joined to rooms stay; everything else left.
        if after["rooms"] != [1 if r < sse_room else 0 for r in range(rooms)]:
            failures.append(f"rooms after the clients left: {after['rooms']}")
        if after["news"] != 0 or after["clients"] != 0:
            failures.append(f"news {after['news']} clients {after['clients']} after the clients left")
        if after["ticker"] != 4:
            failures.append(f"ticker group {after['ticker']} with 4 event streams open")
        time.sleep(1.0)  # a few more ticks for the streams
        for _, _, c in curls:
            c.send_signal(signal.SIGTERM)
            c.wait()
        time.sleep(1.5)
        final = stats(base)
        if sum(final["rooms"]) or final["ticker"] or final["news"] or final["streams"]:
            failures.append(f"groups not empty at the end: {final}")

        reports = []
        for name, p in procs:
            p.wait()
            with open(f"{out}/{name}.jsonl") as f:
                reports += [json.loads(l) for l in f if l.strip()]
            err = open(f"{out}/{name}.err").read().strip()
            if err:
                failures.append(f"{name} stderr: {err[:300]}")
        if len(reports) != n:
            failures.append(f"{len(reports)} client reports, want {n}")
        by_room = collections.defaultdict(list)
        for r in reports:
            by_room[r["room"]].append(r)
            if r["errors"]:
                failures.append(f"client {r['g']} ({r['lib']}, deflate={r['deflate']}): {r.get('error_count')} errors: {r['errors'][:3]}")
            if r["ticks"] == 0 or r["news"] == 0:
                failures.append(f"client {r['g']}: {r['ticks']} ticks {r['news']} news")
        room_hashes = {}
        for room, reps in sorted(by_room.items()):
            for phase in ("phase1", "phase2"):
                hs = collections.Counter(r[phase]["hash"] for r in reps if phase in r)
                if len(hs) > 1:
                    failures.append(f"room {room} {phase}: clients disagree: {dict(hs)}")
                if hs:
                    room_hashes[(room, phase)] = hs.most_common(1)[0][0]
                    seqs = {(r[phase]["first_seq"], r[phase]["last_seq"]) for r in reps if phase in r}
                    room_hashes[(room, phase, "seqs")] = seqs
                    room_hashes[(room, "huge")] = sorted({q for r in reps for q in r.get("phase1", {}).get("huge", [])})
        # Event streams: ticks without gaps; room streams saw the room's chat.
        for name, path, _ in curls:
            text = open(f"{out}/sse-{name}.txt", "rb").read().decode("utf-8", "replace")
            events = []
            for block in text.split("\n\n"):
                ev, data = "message", []
                for line in block.split("\n"):
                    if line.startswith("event: "):
                        ev = line[7:]
                    elif line.startswith("data: "):
                        data.append(line[6:])
                if data:
                    events.append((ev, "\n".join(data)))
            ticks = [int(d.split()[1]) for e, d in events if e == "tick"]
            gaps = [(a, b) for a, b in zip(ticks, ticks[1:]) if b != a + 1]
            if not ticks or gaps:
                failures.append(f"sse {name}: {len(ticks)} ticks, gaps {gaps[:5]}")
            if events[:1] and not events[0][1].startswith("hello "):
                failures.append(f"sse {name}: first event {events[0]}")
            chats = [d for e, d in events if e == "chat"]
            m = re.search(r"room=(\d+)", path)
            if m is None:
                if chats:
                    failures.append(f"sse {name}: {len(chats)} chat events without a room")
                continue
            room = int(m.group(1))
            h = hashlib.sha1()
            seqs = []
            phase_of_k = k * sum(1 for g in range(n) if g % rooms == room)
            hashes = {}
            for d in chats:
                _, r, seq, tok, text = d.split(" ", 4)
                _, i, body = text.split(" ", 2)
                if int(r) != room:
                    failures.append(f"sse {name}: chat of room {r}")
                seqs.append(int(seq))
                h.update(f"{seq}:{tok}:{i}:{len(body)}\n".encode())
                if int(seq) == phase_of_k:
                    hashes["phase1"] = h.hexdigest()
                    h = hashlib.sha1()
            hashes["phase2"] = h.hexdigest()
            missing = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
            print(f"sse {name}: {len(ticks)} ticks, {len(chats)} chat events, seq {seqs[:1]}..{seqs[-1:]}, missing {missing[:10]}")
            huge = room_hashes.get((room, "huge"), [])
            if missing and missing == huge:
                # One event over SseOptions::max_send_buffer (1 MiB): skipped
                # for that stream, which stays open. Reported, not a failure.
                print(f"sse {name}: the {len(huge)} chat lines over 1 MiB (seqs {huge}) were skipped, the stream stayed open")
                continue
            for phase in ("phase1", "phase2"):
                if (room, phase) not in room_hashes:
                    continue
                if hashes.get(phase) != room_hashes.get((room, phase)):
                    failures.append(f"sse {name}: {phase} chat differs from the room's WebSockets (missing seqs {missing[:10]})")
        # Summary.
        per_lib = collections.Counter((r["lib"], r["deflate"], bool(r.get("ext"))) for r in reports)
        print(f"{n} WebSocket clients in {rooms} rooms, {k}+{k2} lines each: {dict(per_lib)}")
        print(f"clients done in {elapsed:.1f} s; server CPU {cpu_clients - cpu0:.2f} s; peak RSS {peak['rss']} KiB, end RSS {rss_end} KiB; peaks {peak}")
        print("samples (t, cpu s, rss KiB, room members, conns, out queued, out buffered):")
        for s in samples[:: max(1, len(samples) // 25)]:
            print("  ", s)
        print(f"after: {after}\nfinal: {final}")
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.kill()
        server.send_signal(signal.SIGTERM)
        server.wait()
    if failures:
        print(f"{len(failures)} FAILURES:")
        for f in failures[:60]:
            print("  ", f)
        sys.exit(1)
    print("OK")


main()
