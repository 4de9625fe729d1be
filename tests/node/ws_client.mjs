// Node `ws` client for pollserve's interop test: echoes a text, a binary, a
// large and a fragmented message through /ws, checks each, then closes.
// Usage: node ws_client.mjs ws://127.0.0.1:PORT/ws
import WebSocket from "ws";

const url = process.argv[2];
const ws = new WebSocket(url, { maxPayload: 64 << 20 });
const big = Buffer.alloc(3 << 20, 0).map((_, i) => (i * 31) % 251);
const expected = [
  ["text", "héllo from node"],
  ["binary", Buffer.from([0, 1, 2, 255])],
  ["binary", big],
  ["text", "fragmented message"],
];
let step = 0;
const fail = (msg) => { console.error("FAIL: " + msg); process.exit(1); };
setTimeout(() => fail("timeout"), 20000).unref();

ws.on("open", () => {
  ws.send(expected[0][1]);
  ws.send(expected[1][1]);
  ws.send(expected[2][1]);
  // A message in three frames: fin=false, false, true.
  ws.send("fragmented", { fin: false });
  ws.send(" ", { fin: false });
  ws.send("message", { fin: true });
  ws.ping("node-ping");
});
let pong = false;
ws.on("pong", (data) => { pong = data.toString() === "node-ping"; });
ws.on("message", (data, isBinary) => {
  const [kind, want] = expected[step];
  if ((kind === "binary") !== isBinary) fail(`message ${step}: wrong type`);
  const ok = kind === "binary" ? Buffer.compare(Buffer.from(data), want) === 0 : data.toString() === want;
  if (!ok) fail(`message ${step}: wrong content`);
  step += 1;
  if (step === expected.length) ws.close(1000, "done");
});
ws.on("close", (code) => {
  if (step !== expected.length) fail(`closed after ${step} messages (code ${code})`);
  if (code !== 1000) fail(`close code ${code}`);
  if (!pong) fail("no pong");
  console.log("node ws interop: ok");
  process.exit(0);
});
ws.on("error", (e) => fail(String(e)));
