"""Debug: which /g sockets get no group message within 10 s (churn_10k saw ~33 of 10,000)."""
import subprocess, sys, time, os, json, selectors
import lib15, ws15, a15
lib15.raise_fd_limit()
env = dict(os.environ, BCAST_MS="20", BCAST_SIZE="64", BCAST_WS="0", GROUP_BCAST="1", GROUPS="8",
           STATS_MS="250", STATS_FULL="0", STATS_FILE="/tmp/dbg15.stats")
p = subprocess.Popen([lib15.BIN], env=env, stdout=subprocess.PIPE)
port = json.loads(p.stdout.readline())["port"]
n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
t_open0 = time.time()
socks, fails = a15.open_many(port, n, "/g/<i>", rcvbuf=None)
t_open1 = time.time()
print("opened", len(socks), "fails", fails, "in", round(t_open1 - t_open0, 1), "s")
groups = [(i + 1) % 8 for i in range(n)]
done = set()
got, wrong, ex = a15.read_first_messages(socks, groups, timeout=10, done_out=done)
t_read = time.time()
print("got", got, "wrong", wrong, ex, "read loop ended", round(t_read - t_open1, 1), "s after the last open")
# which ones have nothing readable
import select
missing = []
for i, s in enumerate(socks):
    if s in done:
        continue
    try:
        d = s.recv(65536)
        if not d:
            continue
    except BlockingIOError:
        missing.append((i, groups[i], s.getsockname()[1]))
    except OSError as e:
        print("err", e)
print("missing now", len(missing), missing[:20])
if missing:
    ports = {m[2] for m in missing[:5]}
    out = subprocess.run(["ss", "-tni", "state", "established"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if any(f":{pp} " in line or line.endswith(f":{pp}") for pp in ports):
            print(line)
    time.sleep(5)
    still = 0
    for i, g, lp in missing:
        try:
            d = socks[i].recv(65536)
            ts = int(d[16:35]) / 1e9 if len(d) > 36 else 0
            print("later", i, g, len(d), d[:40], "first msg sent", round(ts - t_open1, 2), "s after last open; now", round(time.time() - t_open1, 2))
        except BlockingIOError:
            still += 1
    print("still nothing after 5 s more:", still)
print(open("/tmp/dbg15.stats").readlines()[-1])
p.kill()
