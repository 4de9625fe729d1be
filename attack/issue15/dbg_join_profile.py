"""Debug: where the target's CPU goes while 10,000 WebSockets join /g groups
(perf record for 10 s of the join phase)."""
import json, os, subprocess, sys, threading, time
import lib15, a15
lib15.raise_fd_limit()
env = dict(os.environ, BCAST_MS=sys.argv[1] if len(sys.argv) > 1 else "200", BCAST_SIZE="64",
           BCAST_WS="0", GROUP_BCAST="1", GROUPS="8", STATS_MS="250", STATS_FULL="0",
           WS_KEEPALIVE_S="0", STATS_FILE="/tmp/dbgjoin.stats")
p = subprocess.Popen([lib15.BIN], env=env, stdout=subprocess.PIPE)
port = json.loads(p.stdout.readline())["port"]
res = {}
th = threading.Thread(target=lambda: res.update(r=a15.open_many(port, 10000, "/g/<i>")))
th.start()
time.sleep(8)
subprocess.run(["perf", "record", "-g", "-p", str(p.pid), "-o", "/tmp/dbgjoin.perf", "--", "sleep", "10"],
               capture_output=True)
th.join()
print("opened", len(res["r"][0]))
out = subprocess.run(["perf", "report", "-i", "/tmp/dbgjoin.perf", "--no-children", "--stdio",
                      "--percent-limit", "2", "-g", "none"], capture_output=True, text=True).stdout
print("\n".join(l for l in out.splitlines() if l.strip() and not l.startswith("#"))[:4000])
p.kill()
