// Node `ws` client with permessage-deflate for pollserve's interop test:
// checks the extension was negotiated, then echoes compressible text, a large
// binary, a burst of JSON lines (the inflate context carries over) and a
// message in three compressed fragments through the given URL.
// Usage: node ws_deflate_client.mjs ws://127.0.0.1:PORT/ws
import WebSocket from "ws";

const url = process.argv[2];
const ws = new WebSocket(url, {
  maxPayload: 64 << 20,
  perMessageDeflate: { threshold: 0, clientMaxWindowBits: true },
});
const fail = (msg) => { console.error("FAIL: " + msg); process.exit(1); };
setTimeout(() => fail("timeout"), 20000).unref();

const big = Buffer.alloc(3 << 20, 0).map((_, i) => (i * 31) % 251);
const expected = [["text", "héllo from node ".repeat(40)], ["binary", big]];
for (let i = 0; i < 200; i++) expected.push(["text", JSON.stringify({ seq: i, celsius: 21.5, ok: true })]);
expected.push(["text", "fragmented ".repeat(30) + "message ".repeat(30) + "end"]);
let step = 0;

ws.on("open", () => {
  if (ws.extensions !== "permessage-deflate") {
    fail("permessage-deflate not negotiated: " + JSON.stringify(ws.extensions));
  }
  for (const [, m] of expected.slice(0, -1)) ws.send(m, { compress: true });
  // A compressed message in three frames: fin=false, false, true.
  ws.send("fragmented ".repeat(30), { fin: false, compress: true });
  ws.send("message ".repeat(30), { fin: false, compress: true });
  ws.send("end", { fin: true, compress: true });
});
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
  console.log("node ws deflate interop: ok");
  process.exit(0);
});
ws.on("error", (e) => fail(String(e)));
