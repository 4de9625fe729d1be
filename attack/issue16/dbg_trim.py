import subprocess, time, sys, threading, os
import h16, a_outbox
srv = h16.Server("outbox_stream_trim", env={"NOTIFY_SIZE": "16", "STREAM_INTERVAL_MS": "100000", "NOTIFY_EACH": os.environ.get("NOTIFY_EACH", "0")}, probe=False)
socks, ok = (a_outbox.open_ws(srv.port, 1000) if os.environ.get("KIND") == "ws" else a_outbox.open_http(srv.port, 1000, "/stream"))
d = a_outbox.Drain(socks); d.start()
s = h16.conn(srv.port, timeout=60)
blob = b"GET /notify HTTP/1.1\r\nHost: x\r\n\r\n" * 20000
threading.Thread(target=s.sendall, args=(blob,), daemon=True).start()
while (srv.stats() or {}).get("notified", 0) < 20000: time.sleep(0.5)
time.sleep(3)
print("after attack, viewers open:", srv.rss() // 1024, "MB", srv.stats())
d.stop.set()
for x in socks: x.close()
s.close()
time.sleep(3)
for i in range(3):
    h16.request(srv.port, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); time.sleep(0.6)
print("after close:", srv.rss() // 1024, "MB", srv.stats())
out = subprocess.run(["gdb", "-p", str(srv.pid), "-batch", "-ex", "call (int)malloc_trim(0)"], capture_output=True, text=True)
time.sleep(1)
print("after malloc_trim(0):", srv.rss() // 1024, "MB", [l for l in out.stdout.splitlines() if l.startswith("$")])
srv.stop()
