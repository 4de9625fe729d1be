import h16, time, subprocess, socket, json
srv = h16.Server("range_noread_dbg", control=False)
time.sleep(2)
st = subprocess.Popen(["strace", "-p", str(srv.pid), "-f", "-tt", "-T", "-e", "trace=epoll_wait,epoll_pwait,accept4,openat,pread64,sendto,write,writev", "-o", "/tmp/rng_strace.txt"])
time.sleep(1)
t0 = time.monotonic()
socks = []
for i in range(1000):
    s = h16.conn(srv.port, rcvbuf=4096)
    s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-49999999,50000001-104857599\r\n\r\n")
    socks.append(s)
print("opened in", round(time.monotonic() - t0, 2))
for k in range(12):
    print(round(time.monotonic() - t0, 1), srv.rss(), srv.stats()["output_buffered"])
    time.sleep(1)
st.terminate(); st.wait()
for s in socks: s.close()
srv.stop()
