"""Memory of one broadcast above and below WsConfig::max_frame_size (1 MiB).

  python broadcast_memory.py BASE N SIZE[,SIZE...]

With examples/rooms.rs running: opens N raw WebSockets in room 0 that never
read (4 KiB receive buffers), then one client sends a chat line of each SIZE
(the example broadcasts it to the room) and prints /stats after each. On the
review machine (N=200, each SIZE given 7 times so the lines outgrow the
kernel buffers): 1,000,000-byte lines left
output_buffered at 3 MB (one shared copy); 1,100,000-byte lines at 880 MB
and the server's peak RSS at 758 MB (a copy per connection).
"""
import base64, json, os, socket, sys, time, urllib.request, warnings

warnings.simplefilter("ignore")
from websockets.sync.client import connect
BASE=sys.argv[1]; WS=BASE.replace("http://","ws://")
N=int(sys.argv[2]); SIZE=[int(x) for x in sys.argv[3].split(",")]; DEFLATE=sys.argv[4]=="1" if len(sys.argv)>4 else False
def stats():
    with urllib.request.urlopen(BASE+"/stats",timeout=5) as r: return json.loads(r.read())
# raw sockets that never read: handshake by hand
socks=[]
for i in range(N):
    s=socket.create_connection(("127.0.0.1",int(BASE.rsplit(":",1)[1])))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key=base64.b64encode(os.urandom(16)).decode()
    ext="Sec-WebSocket-Extensions: permessage-deflate\r\n" if DEFLATE else ""
    s.sendall(f"GET /ws/0{'?deflate=1' if DEFLATE else ''} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n".encode())
    buf=b""
    while b"\r\n\r\n" not in buf: buf+=s.recv(1)
    socks.append(s)
time.sleep(1.5); print("idle", N, stats())
t=connect(WS+"/ws/0", max_size=None, ping_interval=None, max_queue=None)
for size in SIZE:
    t.send("m 0 "+"q"*size)
    time.sleep(1.5)
    print("after", size, stats())
