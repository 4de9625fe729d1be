// Node `ws` echo server with permessage-deflate, the benchmark's Node peer
// (bench/run.sh, BENCH_ONLY=pmd).
//
//   node node_ws_echo.cjs PORT
//
// Serves ws://127.0.0.1:PORT/ (any path) and echoes every message with its
// type. `perMessageDeflate: true` takes ws's defaults: the server keeps its
// compression context (no server_no_context_takeover), 15-bit windows, zlib
// level 6 (Z_DEFAULT_COMPRESSION) and memLevel 8, a threshold of 1024 bytes
// (a message at least that long is compressed: the benchmark's 1 KiB
// messages are), at most 10 zlib jobs at a time. Node runs zlib on its
// libuv thread pool; bench/run.sh pins the whole process to one CPU like
// the other single-core servers, and counts the CPU time of every thread.
//
// `ws` comes from tests/node/node_modules (the version pinned in
// tests/node/package-lock.json): bench/run.sh sets NODE_PATH to it, which
// CommonJS `require` honours.
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node node_ws_echo.cjs PORT');
  process.exit(2);
}
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: true,
  clientTracking: false,
  // The idle rows open up to 256 connections at a time (Node's default 511).
  backlog: 4096,
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});
wss.on('error', (e) => {
  console.error(`node_ws_echo: ${e.message}`);
  process.exit(1);
});
