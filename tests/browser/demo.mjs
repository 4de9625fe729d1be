// End-to-end test of `pollserve demo` in headless Chromium (Debian's package,
// driven by playwright-core): SSE ticks arrive, a chat message sent from one
// tab appears in a second tab, text echoes through /ws/echo, a colour picked
// in one tab reaches the other, the browser's permessage-deflate offer is
// accepted and compressed messages echo intact, and a screenshot is kept as an
// artifact.
//
// Usage: node demo.mjs http://127.0.0.1:PORT/ SCREENSHOT.png
//        (an https:// URL runs the same over HTTPS and wss://, accepting the
//        test's self-signed certificate)
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const fail = (msg) => { console.error("FAIL: " + msg); process.exit(1); };
const timer = setTimeout(() => fail("browser test timed out"), 60000);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         ...(url.startsWith("https:") ? ["--ignore-certificate-errors"] : [])],
});
try {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 900 },
    ignoreHTTPSErrors: url.startsWith("https:"),
  });
  const a = await context.newPage();
  const b = await context.newPage();
  const errors = [];
  for (const p of [a, b]) p.on("pageerror", (e) => errors.push(String(e)));
  await a.goto(url);
  await b.goto(url);

  // SSE: the tick counter keeps increasing.
  await a.waitForFunction(() => Number(document.getElementById("ticks").textContent) >= 2, null, { timeout: 10000 });
  const uptime = await a.textContent("#uptime");
  if (!/^\d+ s$/.test(uptime)) fail("uptime not shown: " + uptime);

  // Chat: wait until both tabs are connected (the status counts them), then
  // send from A and see it in B.
  await a.waitForFunction(() => /chat 2/.test(document.getElementById("sockets").textContent), null, { timeout: 10000 });
  const line = "hello from tab A " + Date.now();
  await a.fill("#chatinput", line);
  await a.click("#chatform button");
  await b.waitForFunction((l) => document.getElementById("chatlog").textContent.includes(l), line, { timeout: 10000 });

  // Echo console.
  await a.fill("#echoinput", "échø ✓");
  await a.click("#echoform button");
  await a.waitForFunction(() => document.getElementById("echolog").textContent.includes("← échø ✓"), null, { timeout: 10000 });

  // Compression: the browser's permessage-deflate offer is accepted on
  // /ws/echo, and messages that compress (and one that does not) echo intact,
  // as one frame and after many in a row (the inflate context carries over).
  const pmd = await a.evaluate(async () => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(scheme + "//" + location.host + "/ws/echo");
    await new Promise((ok, err) => { ws.onopen = ok; ws.onerror = () => err(new Error("ws error")); });
    const sent = [];
    let seed = 7;
    const noise = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed; };
    for (let i = 0; i < 40; i++) {
      sent.push(JSON.stringify({ seq: i, temperature: 20 + i / 10, readings: Array(50).fill(i) }));
    }
    sent.push("x".repeat(300000));
    sent.push(Array.from({ length: 5000 }, () => String.fromCharCode(32 + (noise() % 90))).join(""));
    const got = [];
    const done = new Promise((ok) => {
      ws.onmessage = (e) => { got.push(e.data); if (got.length === sent.length) ok(); };
    });
    for (const m of sent) ws.send(m);
    await Promise.race([done, new Promise((r) => setTimeout(r, 10000))]);
    ws.close();
    const intact = got.length === sent.length && got.every((m, i) => m === sent[i]);
    return { extensions: ws.extensions, intact, got: got.length, sent: sent.length };
  });
  if (!/^permessage-deflate(;|$)/.test(pmd.extensions)) fail("permessage-deflate not negotiated: '" + pmd.extensions + "'");
  if (!pmd.intact) fail(`compressed echoes not intact: ${pmd.got} of ${pmd.sent} messages back, or some differ`);

  // Colour picked in B is pushed to A.
  await b.evaluate(() => {
    const p = document.getElementById("picker");
    p.value = "#ff8800";
    p.dispatchEvent(new Event("input"));
  });
  await a.waitForFunction(() => document.getElementById("picker").value === "#ff8800", null, { timeout: 10000 });

  if (errors.length) fail("page errors: " + errors.join("; "));
  await a.screenshot({ path: screenshot, fullPage: true });
  console.log("browser e2e: ok (screenshot " + screenshot + ")");
} finally {
  clearTimeout(timer);
  await browser.close();
}
