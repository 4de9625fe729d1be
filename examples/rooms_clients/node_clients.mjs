// Chat clients for examples/rooms.rs with Node's `ws`: the protocol of
// py_clients.py (see there), for global indices G0..G1-1.
//
//   NODE_PATH=tests/node/node_modules node node_clients.mjs BASE N ROOMS K K2 EXPECT1 EXPECT2 G0 G1 [TIMEOUT]
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';

const require = createRequire(path.join(process.env.NODE_PATH || process.cwd(), '..', 'x.js'));
const WebSocket = require('ws');

const ALPHA = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const HUGE = (1 << 20) + 17;
const BINARY = 200000;

const [base, ...nums] = process.argv.slice(2);
const [N, ROOMS, K, K2, EXPECT1, EXPECT2, G0, G1] = nums.slice(0, 8).map(Number);
const timeout = (Number(nums[8]) || 180) * 1000;
const deadline = Date.now() + timeout;
const wsBase = base.replace('http://', 'ws://');

function payload(token, i, length) {
  const start = (token * 7 + i) % ALPHA.length;
  const rot = ALPHA.slice(start) + ALPHA.slice(0, start);
  return rot.repeat(Math.floor(length / rot.length) + 1).slice(0, length);
}
const lengthOf = (g, token, i) => (g % 100 === 0 && i === K - 1 ? HUGE : 20 + ((token * 7 + i * 13) % 200));
function binaryOf(token) {
  const b = Buffer.alloc(BINARY);
  b.writeBigUInt64BE(BigInt(token), 0);
  for (let j = 8; j < BINARY; j++) b[j] = (token + ((j - 8) % 251)) % 251;
  return b;
}
function members(room, pred = () => true) {
  let c = 0;
  for (let g = 0; g < N; g++) if (g % ROOMS === room && pred(g)) c++;
  return c;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function stats() {
  return new Promise((resolve, reject) => {
    http.get(base + '/stats', { timeout: 5000 }, (res) => {
      let s = '';
      res.on('data', (d) => (s += d));
      res.on('end', () => { try { resolve(JSON.parse(s)); } catch (e) { reject(e); } });
    }).on('error', reject);
  });
}
async function waitMembers(want) {
  for (;;) {
    const s = await stats();
    const sum = s.rooms.reduce((x, y) => x + y, 0);
    if (sum === want) return s;
    if (Date.now() > deadline) throw new Error(`/stats rooms sum ${sum}, want ${want}`);
    await sleep(100);
  }
}
let barrier1 = null, barrier2 = null;
const wait1 = () => (barrier1 ??= waitMembers(EXPECT1));
const wait2 = () => (barrier2 ??= waitMembers(EXPECT2));

async function client(g) {
  const room = g % ROOMS;
  const deflate = g % 3 === 0;
  const rep = { g, room, deflate, errors: [], lib: 'node', ticks: 0, news: 0 };
  const err = (m) => { if (rep.errors.length < 8) rep.errors.push(m); rep.error_count = (rep.error_count || 0) + 1; };
  const lastTick = {};
  let lastNews = null;
  const queue = [];
  let wake = null;
  let closed = null;
  try {
    const ws = new WebSocket(`${wsBase}/ws/${room}${deflate ? '?deflate=1' : ''}`, {
      perMessageDeflate: true, handshakeTimeout: 30000, maxPayload: 64 << 20,
    });
    ws.on('message', (data, isBinary) => { queue.push(isBinary ? data : data.toString()); if (wake) wake(); });
    ws.on('close', (code) => { closed = code; if (wake) wake(); });
    ws.on('error', (e) => { err(`error: ${e.message}`); });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    rep.ext = ws.extensions || null;
    if (deflate !== Boolean(rep.ext)) err(`extension ${rep.ext} with deflate=${deflate}`);
    const next = async () => {
      while (queue.length === 0) {
        if (closed !== null) throw new Error(`closed ${closed}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error('timeout');
        await new Promise((r) => { wake = r; setTimeout(r, Math.min(left, 1000)); });
        wake = null;
      }
      return queue.shift();
    };
    const welcome = (await next()).split(' ');
    if (welcome[0] !== 'welcome' || Number(welcome[2]) !== room) { err(`first message ${welcome.join(' ').slice(0, 60)}`); ws.terminate(); return rep; }
    const token = Number(welcome[1]);
    rep.token = token;
    const lastI = new Map();
    const st = { seq: null, chats: 0, bins: 0, hash: crypto.createHash('sha1'), first: null, huge: [] };
    const onMessage = (m) => {
      if (typeof m !== 'string') {
        if (m.length !== BINARY) err(`binary of ${m.length} bytes`);
        else { const t = Number(m.readBigUInt64BE(0)); if (!m.equals(binaryOf(t))) err(`binary from ${t} corrupted`); }
        st.bins++;
        return;
      }
      const sp = m.indexOf(' ');
      const kind = m.slice(0, sp), rest = m.slice(sp + 1);
      if (kind === 'chat') {
        const p = rest.split(' ', 3);
        const r = Number(p[0]), seq = Number(p[1]), tok = Number(p[2]);
        const text = rest.slice(p[0].length + p[1].length + p[2].length + 3);
        if (r !== room) { err(`chat of room ${r}`); return; }
        if (st.seq !== null && seq !== st.seq + 1) err(`chat seq ${seq} after ${st.seq}`);
        st.seq = seq;
        if (st.first === null) st.first = seq;
        const sp1 = text.indexOf(' '), sp2 = text.indexOf(' ', sp1 + 1);
        const i = Number(text.slice(sp1 + 1, sp2));
        const body = text.slice(sp2 + 1);
        const prev = lastI.has(tok) ? lastI.get(tok) : -1;
        if (prev + 1 !== i) err(`from ${tok}: line ${i} after ${prev}`);
        lastI.set(tok, i);
        if (body !== payload(tok, i, body.length)) err(`from ${tok}: line ${i} corrupted (${body.length} bytes)`);
        if (body.length >= HUGE - 1000) st.huge.push(seq);
        st.hash.update(`${seq}:${tok}:${i}:${Buffer.byteLength(body)}\n`);
        st.chats++;
      } else if (kind === 'tick') {
        const [r, n] = rest.split(' ').map(Number);
        if (r !== room) err(`tick of room ${r}`);
        else if (r in lastTick && n !== lastTick[r] + 1) err(`tick ${n} after ${lastTick[r]}`);
        lastTick[r] = n;
        rep.ticks++;
      } else if (kind === 'news') {
        const n = Number(rest);
        if (lastNews !== null && n !== lastNews + 1) err(`news ${n} after ${lastNews}`);
        lastNews = n;
        rep.news++;
      } else err(`unexpected ${m.slice(0, 60)}`);
    };
    const reader = async (wantChats, wantBins) => {
      while (st.chats < wantChats || st.bins < wantBins) {
        try { onMessage(await next()); } catch (e) { throw new Error(`${e.message}: ${st.chats}/${wantChats} chats, ${st.bins}/${wantBins} binaries`); }
      }
    };
    const send = (d) => new Promise((res, rej) => ws.send(d, (e) => (e ? rej(e) : res())));
    const sender = async (k, baseI) => {
      for (let i = baseI; i < baseI + k; i++) {
        await send(`m ${i} ` + payload(token, i, lengthOf(g, token, i)));
        await sleep((g * 31 + i * 17) % 50);
      }
      if (baseI === 0 && g % 50 === 1) await send(binaryOf(token));
    };
    await wait1();
    await Promise.all([sender(K, 0), reader(K * members(room), members(room, (x) => x % 50 === 1))]);
    rep.phase1 = { chats: st.chats, first_seq: st.first, last_seq: st.seq, hash: st.hash.digest('hex'), bins: st.bins, huge: st.huge };
    if (Math.floor(g / ROOMS) % 2 === 1) {
      ws.close(1000);
      rep.left = true;
      return rep;
    }
    st.hash = crypto.createHash('sha1'); st.chats = 0; st.first = null;
    await wait2();
    await Promise.all([sender(K2, K), reader(K2 * members(room, (x) => Math.floor(x / ROOMS) % 2 === 0), 0)]);
    rep.phase2 = { chats: st.chats, first_seq: st.first, last_seq: st.seq, hash: st.hash.digest('hex') };
    ws.close(1000);
  } catch (e) {
    err(`${e.name}: ${e.message}`);
  } finally {
    rep.last_tick = lastTick;
    rep.last_news = lastNews;
  }
  return rep;
}

const gs = [];
for (let g = G0; g < G1; g++) gs.push(g);
const reps = await Promise.all(gs.map(client));
for (const r of reps) console.log(JSON.stringify(r));
process.exit(0);
