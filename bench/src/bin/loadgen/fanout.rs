//! `loadgen fanout` and `loadgen fanout-memory`: one publisher, many
//! subscribers, every delivered byte checked.
//!
//! **fanout.** N subscribers connect (a WebSocket to `--sub-path`, default
//! `/sub`; with `--sse` an event stream, `GET /events`), then one publisher
//! (a WebSocket to `--pub-path`, default `/pub`). The publisher sends
//! messages of S bytes (binary; with `--sse` text, which the server sends as
//! `data: TEXT` events) with a window: message i leaves only when every
//! subscriber has received message i − W (`--window`, default 8), so no
//! server is asked to queue without bound and slow delivery shows up as
//! fewer deliveries per second. Message i is its sequence number as 16 hex
//! digits followed by S − 16 bytes of a printable pattern starting at an
//! offset that depends on i; every subscriber checks every byte and the
//! order of the messages. A wrong byte, a frame or event of another kind,
//! a lost subscriber, or a window that does not move for 10 s fails the run.
//! The measured window begins when a message reaches its last subscriber
//! after the warm-up, and ends when one does after `--secs`: the result
//! line counts deliveries (messages received in the window, summed over
//! subscribers) per second of the window, the server's CPU per delivery
//! (`--pid`), and as latency each message's fan-out time (from its
//! publication to its arrival at the last subscriber). (Counting only the
//! messages completed in the window would be wrong by up to a window of
//! messages × subscribers in flight: 80,000 deliveries at 10,000.)
//!
//! **fanout-memory.** The server's memory while every subscriber has a
//! broadcast queued in the server: N WebSocket subscribers connect and then
//! stop reading; the server's VmRSS is read (each time once the server's
//! CPU time has stopped growing) before they connect, once they are idle
//! (`rss_idle`), after `--fill` messages of S bytes (`rss_filled`:
//! they fill the kernel's buffers of every connection, and what does not fit
//! waits in the server) and after one more message (`rss_queued`). Then the
//! subscribers read again and every message is checked, so a server that
//! dropped a queued message fails the run. With `--stats-path` (pollserve's
//! `/stats`), the server's own count of queued output bytes is read at the
//! same points (`output_queued_*`). The kernel's share must be small for the
//! numbers to mean anything: bench/run.sh runs this mode in a network
//! namespace whose TCP buffers are 4 KiB (see bench/README.md).
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::{
    connect_done, connected, cpu_seconds, fail, own_cpu_seconds, read_now, report_scaled,
    rss_bytes, write_now, write_some, Args, MAX_PENDING,
};

/// Bytes of the printable pattern messages are cut from.
const PATTERN: usize = 1 << 20;
/// Bytes of a message's sequence number (hex digits) at its start.
const SEQ_DIGITS: usize = 16;
/// The shared read buffer: more than a window of 4 KiB messages, so a read
/// usually drains a subscriber's socket.
const SCRATCH: usize = 64 * 1024;
/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// A window that does not move for this long fails the run.
const STALL: Duration = Duration::from_secs(10);

/// How subscribers receive: WebSocket frames or an event stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ws,
    Sse,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    /// The request is out (or going); the response head is being read.
    Head,
    Open,
}

/// Where a subscriber's WebSocket parser is.
#[derive(Clone, Copy)]
enum WsState {
    /// A frame head: `have` of its bytes in `head`.
    Head { head: [u8; 10], have: usize },
    /// `left` payload bytes of a frame; `data`: they belong to the message
    /// (a control frame's are skipped); `fin`: the frame ends the message.
    Payload { left: usize, data: bool, fin: bool },
}

/// Where a subscriber's chunked-body decoder is (event streams with
/// `Transfer-Encoding: chunked`).
#[derive(Clone, Copy)]
enum Chunk {
    Size { size: usize, ext: bool },
    SizeLf { size: usize },
    Data { left: usize },
    DataCr,
    DataLf,
}

/// Where a subscriber's event parser is.
#[derive(Clone, Copy)]
enum Sse {
    /// `at` bytes of `data: ` matched at the start of a line.
    Field { at: usize },
    /// A comment line (`:`), skipped to its end.
    Comment,
    /// The event's data, `got` bytes of the message checked (in `Sub::got`).
    Data,
    /// `at` bytes of the `\n\n` after the data.
    End { at: usize },
}

struct Sub {
    stream: TcpStream,
    phase: Phase,
    /// Request bytes written so far.
    sent: usize,
    writable: bool,
    /// The response head while it arrives.
    head: Vec<u8>,
    /// Sequence number of the message expected next.
    next: u64,
    /// Bytes of that message checked so far.
    got: usize,
    ws: WsState,
    /// `Some` for a chunked event stream.
    chunk: Option<Chunk>,
    sse: Sse,
}

/// The publisher's connection.
struct Publisher {
    stream: TcpStream,
    phase: Phase,
    writable: bool,
    wbuf: Vec<u8>,
    wpos: usize,
    head: Vec<u8>,
}

/// What every subscriber shares: the messages in flight and the window.
struct Flow {
    kind: Kind,
    subs: usize,
    size: usize,
    window: u64,
    pattern: Vec<u8>,
    /// The last `ring` messages published, by sequence number modulo `ring`.
    ring: Vec<Vec<u8>>,
    /// Subscribers that received each of those messages.
    counts: Vec<usize>,
    /// When each was published.
    sent_at: Vec<Instant>,
    /// Messages published.
    published: u64,
    /// Messages received by every subscriber (always a prefix).
    done: u64,
    /// When a message last reached its last subscriber (or streaming
    /// began): the stall check and the measured window count from it.
    last_progress: Instant,
    /// Messages received, summed over subscribers.
    deliveries: u64,
    /// Fan-out times of the messages completed are recorded.
    measuring: bool,
    /// Those fan-out times, in microseconds.
    latencies: Vec<u32>,
    rng: u64,
}

impl Flow {
    fn slot(&self, seq: u64) -> usize {
        (seq % self.ring.len() as u64) as usize
    }

    /// Message `seq`: its number in hex, then the pattern from an offset
    /// that depends on it (so a message delivered twice or out of order
    /// differs from the one expected in more than its first bytes).
    fn fill_message(&self, seq: u64, out: &mut Vec<u8>) {
        out.clear();
        let _ = write!(out, "{seq:016x}");
        let body = self.size - SEQ_DIGITS;
        let off = (seq as usize).wrapping_mul(7919) % (PATTERN - body);
        out.extend_from_slice(&self.pattern[off..off + body]);
    }

    /// Builds message `published` into the ring and its masked frame into
    /// `wbuf` (binary, or text for the event streams).
    fn publish(&mut self, wbuf: &mut Vec<u8>) {
        let seq = self.published;
        let slot = self.slot(seq);
        let mut msg = std::mem::take(&mut self.ring[slot]);
        self.fill_message(seq, &mut msg);
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let mask = (self.rng as u32).to_ne_bytes();
        wbuf.push(if self.kind == Kind::Sse { 0x81 } else { 0x82 });
        let len = msg.len();
        if len < 126 {
            wbuf.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            wbuf.push(0x80 | 126);
            wbuf.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            wbuf.push(0x80 | 127);
            wbuf.extend_from_slice(&(len as u64).to_be_bytes());
        }
        wbuf.extend_from_slice(&mask);
        wbuf.extend(msg.iter().enumerate().map(|(j, b)| b ^ mask[j & 3]));
        self.ring[slot] = msg;
        self.counts[slot] = 0;
        self.sent_at[slot] = Instant::now();
        self.published += 1;
    }

    /// Checks `bytes`, the next ones of subscriber `i`'s current message.
    fn check(&self, sub: &mut Sub, i: usize, bytes: &[u8]) {
        if sub.next >= self.published {
            fail(format!(
                "subscriber {i}: data of message {} before it was published ({} published)",
                sub.next, self.published
            ));
        }
        let want = &self.ring[self.slot(sub.next)];
        let end = sub.got + bytes.len();
        if end > want.len() || want[sub.got..end] != *bytes {
            fail(format!(
                "subscriber {i}: message {} differs at or after byte {} ({} bytes arrived, {} expected in all)",
                sub.next,
                sub.got,
                bytes.len(),
                want.len()
            ));
        }
        sub.got = end;
    }

    /// Subscriber `i` has received its current message whole.
    fn delivered(&mut self, sub: &mut Sub, i: usize) {
        if sub.got != self.size {
            fail(format!(
                "subscriber {i}: message {} of {} bytes, {} expected",
                sub.next, sub.got, self.size
            ));
        }
        let seq = sub.next;
        sub.next += 1;
        sub.got = 0;
        let slot = self.slot(seq);
        self.counts[slot] += 1;
        self.deliveries += 1;
        if self.counts[slot] == self.subs {
            // Every subscriber receives in order, so the messages complete
            // in order too.
            if seq != self.done {
                fail(format!(
                    "message {seq} complete before message {}",
                    self.done
                ));
            }
            self.done += 1;
            self.last_progress = Instant::now();
            if self.measuring {
                let t = self.sent_at[slot].elapsed().as_micros();
                self.latencies.push(t.min(u32::MAX as u128) as u32);
            }
        }
    }

    /// Takes `bytes` of subscriber `i`'s WebSocket.
    fn ws_bytes(&mut self, sub: &mut Sub, i: usize, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut sub.ws {
                WsState::Head { head, have } => {
                    let need = |h: &[u8; 10], have: usize| match (have, h[1] & 0x7F) {
                        (0 | 1, _) => 2,
                        (_, 126) => 4,
                        (_, 127) => 10,
                        _ => 2,
                    };
                    while *have < need(head, *have) && !bytes.is_empty() {
                        head[*have] = bytes[0];
                        *have += 1;
                        bytes = &bytes[1..];
                    }
                    if *have < need(head, *have) {
                        return;
                    }
                    let (b0, b1) = (head[0], head[1]);
                    if b1 & 0x80 != 0 {
                        fail(format!("subscriber {i}: server frame is masked"));
                    }
                    let len = match b1 & 0x7F {
                        126 => u16::from_be_bytes([head[2], head[3]]) as usize,
                        127 => {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(&head[2..10]);
                            usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX)
                        }
                        n => n as usize,
                    };
                    let fin = b0 & 0x80 != 0;
                    let data = match b0 & 0x0F {
                        0x2 if sub.got == 0 => true,
                        0x0 if sub.got > 0 => true,
                        0x9 | 0xA => false,
                        0x8 => fail(format!("subscriber {i}: server sent a close frame")),
                        op => fail(format!(
                            "subscriber {i}: unexpected frame (opcode {op:#x}) at byte {} of message {}",
                            sub.got, sub.next
                        )),
                    };
                    if data && len > self.size - sub.got {
                        fail(format!(
                            "subscriber {i}: frame of {len} bytes at byte {} of a {}-byte message",
                            sub.got, self.size
                        ));
                    }
                    sub.ws = WsState::Payload {
                        left: len,
                        data,
                        fin,
                    };
                    if len == 0 {
                        self.ws_frame_end(sub, i);
                    }
                }
                WsState::Payload { left, data, .. } => {
                    let n = (*left).min(bytes.len());
                    *left -= n;
                    let (data, done) = (*data, *left == 0);
                    if data {
                        self.check(sub, i, &bytes[..n]);
                    }
                    bytes = &bytes[n..];
                    if done {
                        self.ws_frame_end(sub, i);
                    }
                }
            }
        }
    }

    fn ws_frame_end(&mut self, sub: &mut Sub, i: usize) {
        if let WsState::Payload {
            data: true,
            fin: true,
            ..
        } = sub.ws
        {
            self.delivered(sub, i);
        }
        sub.ws = WsState::Head {
            head: [0; 10],
            have: 0,
        };
    }

    /// Takes body bytes of subscriber `i`'s event stream (chunked or not).
    fn sse_body(&mut self, sub: &mut Sub, i: usize, mut bytes: &[u8]) {
        let Some(mut chunk) = sub.chunk else {
            return self.sse_bytes(sub, i, bytes);
        };
        while let Some((&b, rest)) = bytes.split_first() {
            chunk = match chunk {
                Chunk::Data { left } => {
                    let n = left.min(bytes.len());
                    self.sse_bytes(sub, i, &bytes[..n]);
                    bytes = &bytes[n..];
                    if n == left {
                        Chunk::DataCr
                    } else {
                        Chunk::Data { left: left - n }
                    }
                }
                other => {
                    bytes = rest;
                    match (other, b) {
                        (Chunk::Size { size, ext: false }, b) if b.is_ascii_hexdigit() => {
                            let d = (b as char).to_digit(16).unwrap_or(0) as usize;
                            if size > 1 << 32 {
                                fail(format!("subscriber {i}: chunk size too large"));
                            }
                            Chunk::Size {
                                size: size * 16 + d,
                                ext: false,
                            }
                        }
                        (Chunk::Size { size, .. }, b';') => Chunk::Size { size, ext: true },
                        (Chunk::Size { size, .. }, b'\r') => Chunk::SizeLf { size },
                        (Chunk::Size { size, ext: true }, _) => Chunk::Size { size, ext: true },
                        (Chunk::SizeLf { size: 0 }, b'\n') => {
                            fail(format!("subscriber {i}: the event stream ended"))
                        }
                        (Chunk::SizeLf { size }, b'\n') => Chunk::Data { left: size },
                        (Chunk::DataCr, b'\r') => Chunk::DataLf,
                        (Chunk::DataLf, b'\n') => Chunk::Size {
                            size: 0,
                            ext: false,
                        },
                        _ => fail(format!("subscriber {i}: bad chunked framing (byte {b:#x})")),
                    }
                }
            };
        }
        sub.chunk = Some(chunk);
    }

    /// Takes decoded bytes of subscriber `i`'s event stream: only `data: `
    /// events (one line each, then the blank line) and comments are expected.
    fn sse_bytes(&mut self, sub: &mut Sub, i: usize, mut bytes: &[u8]) {
        const FIELD: &[u8] = b"data: ";
        while let Some((&b, rest)) = bytes.split_first() {
            match sub.sse {
                Sse::Data => {
                    let n = (self.size - sub.got).min(bytes.len());
                    self.check(sub, i, &bytes[..n]);
                    bytes = &bytes[n..];
                    if sub.got == self.size {
                        sub.sse = Sse::End { at: 0 };
                    }
                    continue;
                }
                Sse::Field { at: 0 } if b == b':' => sub.sse = Sse::Comment,
                Sse::Field { at } if b == FIELD[at] => {
                    sub.sse = if at + 1 == FIELD.len() {
                        Sse::Data
                    } else {
                        Sse::Field { at: at + 1 }
                    };
                }
                Sse::Comment => {
                    if b == b'\n' {
                        sub.sse = Sse::Field { at: 0 };
                    }
                }
                Sse::End { at: 0 } if b == b'\n' => sub.sse = Sse::End { at: 1 },
                Sse::End { at: _ } if b == b'\n' => {
                    self.delivered(sub, i);
                    sub.sse = Sse::Field { at: 0 };
                }
                _ => fail(format!(
                    "subscriber {i}: unexpected byte {b:#x} in the event stream at byte {} of message {}",
                    sub.got, sub.next
                )),
            }
            bytes = rest;
        }
    }
}

/// The whole load: subscribers, publisher, their shared flow.
struct Fan {
    addr: SocketAddr,
    poll: Poll,
    subs: Vec<Sub>,
    publisher: Option<Publisher>,
    flow: Flow,
    request: Vec<u8>,
    pub_request: Vec<u8>,
    scratch: Vec<u8>,
    pending: usize,
    open: usize,
    /// `fanout-memory`: subscribers do not read.
    paused: bool,
    /// Publish as the window allows (off while setting up and in memory mode).
    streaming: bool,
}

fn upgrade_request(path: &str, addr: SocketAddr) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

fn connect(addr: SocketAddr, poll: &Poll, token: usize) -> TcpStream {
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|e| fail(format!("connect {addr}: {e}")));
    poll.registry()
        .register(
            &mut stream,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        )
        .unwrap_or_else(|e| fail(format!("register: {e}")));
    stream
}

/// The end of a response head in `head`, if it is all there.
fn head_end(head: &[u8]) -> Option<usize> {
    head.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

impl Fan {
    fn connect_sub(&mut self) {
        let token = self.subs.len();
        let stream = connect(self.addr, &self.poll, token);
        self.subs.push(Sub {
            stream,
            phase: Phase::Connecting,
            sent: 0,
            writable: false,
            head: Vec::new(),
            next: 0,
            got: 0,
            ws: WsState::Head {
                head: [0; 10],
                have: 0,
            },
            chunk: None,
            sse: Sse::Field { at: 0 },
        });
        self.pending += 1;
    }

    fn connect_publisher(&mut self) {
        let stream = connect(self.addr, &self.poll, self.subs.len());
        self.publisher = Some(Publisher {
            stream,
            phase: Phase::Connecting,
            writable: false,
            wbuf: self.pub_request.clone(),
            wpos: 0,
            head: Vec::new(),
        });
    }

    fn poll_once(&mut self, events: &mut Events, timeout: Duration) {
        if let Err(e) = self.poll.poll(events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                fail(format!("poll: {e}"));
            }
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
            let writable = ev.is_writable() || ev.is_error();
            if i == self.subs.len() {
                self.drive_publisher(readable, writable);
            } else {
                self.drive_sub(i, readable, writable);
            }
        }
        if self.streaming {
            self.top_up();
        }
        if self.publisher.is_some()
            && self.flow.done < self.flow.published
            && self.flow.last_progress.elapsed() > STALL
        {
            fail(self.stalled());
        }
    }

    /// Why the window does not move: the first message some subscriber
    /// still waits for.
    fn stalled(&self) -> String {
        let slot = self.flow.slot(self.flow.done);
        let behind = self
            .subs
            .iter()
            .position(|s| s.next == self.flow.done)
            .unwrap_or(0);
        format!(
            "stalled: message {} reached {} of {} subscribers in {:.1} s (subscriber {behind} still waits for it)",
            self.flow.done,
            self.flow.counts[slot],
            self.flow.subs,
            self.flow.last_progress.elapsed().as_secs_f64()
        )
    }

    /// Streams until `until` has passed and then a message reaches its
    /// last subscriber (`Flow::last_progress` is that instant).
    fn run_until(&mut self, events: &mut Events, until: Instant) {
        while Instant::now() < until {
            self.poll_once(events, Duration::from_millis(10));
        }
        let done = self.flow.done;
        while self.flow.done == done {
            self.poll_once(events, Duration::from_millis(10));
        }
    }

    /// Publishes what the window allows.
    fn top_up(&mut self) {
        let Some(p) = self.publisher.as_mut().filter(|p| p.phase == Phase::Open) else {
            return;
        };
        let mut any = false;
        while self.flow.published < self.flow.done + self.flow.window {
            if p.wpos == p.wbuf.len() {
                p.wbuf.clear();
                p.wpos = 0;
            }
            self.flow.publish(&mut p.wbuf);
            any = true;
        }
        if any {
            flush_publisher(p);
        }
    }

    fn drive_publisher(&mut self, readable: bool, writable: bool) {
        let Some(p) = self.publisher.as_mut() else {
            return;
        };
        if writable {
            if p.phase == Phase::Connecting {
                match connect_done(&p.stream) {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => fail(format!("publisher: connect: {e}")),
                }
                p.phase = Phase::Head;
                self.flow.last_progress = Instant::now();
            }
            p.writable = true;
            flush_publisher(p);
        }
        if !readable || p.phase == Phase::Connecting {
            return;
        }
        loop {
            let n = match read_now(&mut p.stream, &mut self.scratch) {
                Ok(None) => break,
                Ok(Some(0)) => fail("publisher: the server closed the connection"),
                Ok(Some(n)) => n,
                Err(e) => fail(format!("publisher: read: {e}")),
            };
            if p.phase == Phase::Head {
                p.head.extend_from_slice(&self.scratch[..n]);
                if let Some(end) = head_end(&p.head) {
                    if !p.head.starts_with(b"HTTP/1.1 101") {
                        fail(format!(
                            "publisher: upgrade refused: {:?}",
                            String::from_utf8_lossy(&p.head[..end])
                        ));
                    }
                    p.phase = Phase::Open;
                    p.head = Vec::new();
                } else if p.head.len() > MAX_HEAD {
                    fail("publisher: response head too long");
                }
            }
            // Anything after the head (a keepalive ping) is not for us.
        }
    }

    fn drive_sub(&mut self, i: usize, readable: bool, writable: bool) {
        let sub = &mut self.subs[i];
        if writable {
            sub.writable = true;
            if sub.phase == Phase::Connecting {
                if !connected(&sub.stream, i) {
                    return;
                }
                sub.phase = Phase::Head;
            }
            if sub.sent < self.request.len() {
                sub.sent += write_some(&mut sub.stream, &self.request[sub.sent..], i);
            }
        }
        if !readable || sub.phase == Phase::Connecting {
            return;
        }
        if self.paused && sub.phase == Phase::Open {
            // Memory mode: read again by `run_memory` when it resumes.
            return;
        }
        self.read_sub(i);
    }

    /// Reads subscriber `i` until its socket is drained.
    fn read_sub(&mut self, i: usize) {
        loop {
            let sub = &mut self.subs[i];
            let n = match read_now(&mut sub.stream, &mut self.scratch) {
                Ok(None) => break,
                Ok(Some(0)) => fail(format!(
                    "subscriber {i}: the server closed the connection (at byte {} of message {})",
                    sub.got, sub.next
                )),
                Ok(Some(n)) => n,
                Err(e) => fail(format!("subscriber {i}: read: {e}")),
            };
            let mut start = 0;
            if sub.phase == Phase::Head {
                let before = sub.head.len();
                sub.head.extend_from_slice(&self.scratch[..n]);
                let Some(end) = head_end(&sub.head) else {
                    if sub.head.len() > MAX_HEAD {
                        fail(format!("subscriber {i}: response head too long"));
                    }
                    continue;
                };
                self.sub_head(i, end);
                start = end - before;
                if self.paused {
                    // Memory mode: the subscriber is set up; nothing more
                    // is expected before it reads again.
                    if start < n {
                        fail(format!("subscriber {i}: data before any was published"));
                    }
                    return;
                }
            }
            let sub = &mut self.subs[i];
            let bytes = &self.scratch[start..n];
            match self.flow.kind {
                Kind::Ws => self.flow.ws_bytes(sub, i, bytes),
                Kind::Sse => self.flow.sse_body(sub, i, bytes),
            }
            if n < self.scratch.len() {
                // A short read: the socket is drained (edge-triggered, a
                // new arrival raises a new event).
                break;
            }
        }
    }

    /// Checks subscriber `i`'s response head (`end` bytes long).
    fn sub_head(&mut self, i: usize, end: usize) {
        let sub = &mut self.subs[i];
        let head = String::from_utf8_lossy(&sub.head[..end]).to_ascii_lowercase();
        let ok = match self.flow.kind {
            Kind::Ws => head.starts_with("http/1.1 101"),
            Kind::Sse => {
                head.starts_with("http/1.1 200") && head.contains("content-type: text/event-stream")
            }
        };
        if !ok {
            fail(format!("subscriber {i}: refused: {head:?}"));
        }
        if self.flow.kind == Kind::Sse && head.contains("transfer-encoding: chunked") {
            sub.chunk = Some(Chunk::Size {
                size: 0,
                ext: false,
            });
        }
        sub.head = Vec::new();
        sub.phase = Phase::Open;
        self.pending -= 1;
        self.open += 1;
    }

    /// Opens every subscriber, at most `MAX_PENDING` handshakes at a time,
    /// then the publisher.
    fn set_up(&mut self, events: &mut Events, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.open < n {
            while self.subs.len() < n && self.pending < MAX_PENDING {
                self.connect_sub();
            }
            if Instant::now() > deadline {
                fail(format!(
                    "setup timed out: {} of {n} subscribers open",
                    self.open
                ));
            }
            self.poll_once(events, Duration::from_millis(50));
        }
        self.connect_publisher();
        while self
            .publisher
            .as_ref()
            .is_some_and(|p| p.phase != Phase::Open)
        {
            if Instant::now() > deadline {
                fail("setup timed out: the publisher's upgrade");
            }
            self.poll_once(events, Duration::from_millis(50));
        }
    }
}

fn flush_publisher(p: &mut Publisher) {
    if !p.writable || p.phase == Phase::Connecting {
        return;
    }
    p.wpos += write_now(&mut p.stream, &p.wbuf[p.wpos..])
        .unwrap_or_else(|e| fail(format!("publisher: write: {e}")));
    if p.wpos < p.wbuf.len() {
        p.writable = false;
    } else {
        p.wbuf.clear();
        p.wpos = 0;
    }
}

/// Fails unless messages of `size` bytes can carry a sequence number and
/// fit the pattern.
fn check_size(size: usize) {
    if !(SEQ_DIGITS..=PATTERN / 2).contains(&size) {
        fail(format!(
            "message sizes between {SEQ_DIGITS} and {} for fanout",
            PATTERN / 2
        ));
    }
}

/// The load's state; `published` messages may be in flight at once
/// besides the window (the memory mode publishes without one).
fn new_fan(args: &Args, kind: Kind, size: usize, published: usize) -> Fan {
    check_size(size);
    if args.window == 0 {
        fail("--window at least 1");
    }
    // Printable, so the same messages can be event data.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let pattern = (0..PATTERN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x >> 58) as usize]
        })
        .collect();
    let ring = (2 * args.window + 2).max(published + 1);
    let sub_path = args.sub_path.clone().unwrap_or_else(|| {
        match kind {
            Kind::Ws => "/sub",
            Kind::Sse => "/events",
        }
        .into()
    });
    let request = match kind {
        Kind::Ws => upgrade_request(&sub_path, args.addr),
        Kind::Sse => format!(
            "GET {sub_path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            args.addr
        )
        .into_bytes(),
    };
    Fan {
        addr: args.addr,
        poll: Poll::new().unwrap_or_else(|e| fail(format!("poll: {e}"))),
        subs: Vec::with_capacity(args.conns),
        publisher: None,
        flow: Flow {
            kind,
            subs: args.conns,
            size,
            window: args.window as u64,
            pattern,
            ring: vec![Vec::new(); ring],
            counts: vec![0; ring],
            sent_at: vec![Instant::now(); ring],
            published: 0,
            done: 0,
            last_progress: Instant::now(),
            deliveries: 0,
            measuring: false,
            latencies: Vec::new(),
            rng: 0x2545_F491_4F6C_DD1D,
        },
        request,
        pub_request: upgrade_request(&args.pub_path, args.addr),
        scratch: vec![0; SCRATCH],
        pending: 0,
        open: 0,
        paused: false,
        streaming: false,
    }
}

/// `loadgen fanout`: one result line per size of `--sizes` (or `--size`),
/// measured one after the other on the same subscribers.
pub fn run(args: Args) {
    let kind = if args.sse { Kind::Sse } else { Kind::Ws };
    let sizes = if args.sizes.is_empty() {
        vec![args.size]
    } else {
        args.sizes.clone()
    };
    let mut fan = new_fan(&args, kind, sizes[0], 0);
    let mut events = Events::with_capacity(1024);
    let setup = Instant::now();
    fan.set_up(&mut events, args.conns);
    let setup = setup.elapsed().as_secs_f64();
    for &size in &sizes {
        if fan.flow.published > 0 {
            // The next size: every message of the last one delivered first.
            fan.streaming = false;
            while fan.flow.done < fan.flow.published {
                fan.poll_once(&mut events, Duration::from_millis(10));
            }
        }
        check_size(size);
        fan.flow.size = size;
        fan.streaming = true;
        fan.flow.last_progress = Instant::now();
        fan.top_up();
        // The window starts and ends as a message reaches its last
        // subscriber: a server that delivers in bursts (several messages to
        // a subscriber per write, as a poll loop does when the client lags)
        // is then measured over whole bursts, not over a slice of one.
        let warm_end = Instant::now() + Duration::from_secs_f64(args.warmup);
        fan.run_until(&mut events, warm_end);
        let cpu0 = (!args.pids.is_empty()).then(|| cpu_seconds(&args.pids));
        let ticks0 = user_kernel_ticks(&args.pids);
        let own0 = own_cpu_seconds();
        let (published0, done0, deliveries0) =
            (fan.flow.published, fan.flow.done, fan.flow.deliveries);
        let t0 = fan.flow.last_progress;
        fan.flow.measuring = true;
        fan.run_until(&mut events, t0 + Duration::from_secs_f64(args.secs));
        let elapsed = (fan.flow.last_progress - t0).as_secs_f64();
        let cpu1 = (!args.pids.is_empty()).then(|| cpu_seconds(&args.pids));
        let ticks1 = user_kernel_ticks(&args.pids);
        let own = own_cpu_seconds() - own0;
        fan.flow.measuring = false;
        let completed = fan.flow.done - done0;
        let extra = format!(
            " subs={} size={size} window={} published={} completed={completed} setup_s={setup:.2}",
            args.conns,
            args.window,
            fan.flow.published - published0,
        ) + &kernel_share(ticks0, ticks1);
        report_scaled(
            fan.flow.deliveries - deliveries0,
            elapsed,
            std::mem::take(&mut fan.flow.latencies),
            1000.0,
            (cpu0, cpu1, own),
            &extra,
        );
    }
}

/// The servers' user and kernel CPU time so far, in clock ticks
/// (`/proc/PID/stat` fields 14 and 15, every thread of the process).
fn user_kernel_ticks(pids: &[u32]) -> Option<(u64, u64)> {
    if pids.is_empty() {
        return None;
    }
    let mut sum = (0, 0);
    for pid in pids {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces: count after its `)`.
        let rest = &text[text.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace().skip(11);
        sum.0 += fields.next()?.parse::<u64>().ok()?;
        sum.1 += fields.next()?.parse::<u64>().ok()?;
    }
    Some(sum)
}

/// ` server_kernel_share=S`: the share of the servers' CPU time spent in
/// the kernel over the window (TCP sends, wake-ups of the subscribers on
/// loopback), from 10 ms ticks: coarse, meaningful over windows of a
/// second or more. Empty without both samples or with no tick counted.
fn kernel_share(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> String {
    match (before, after) {
        (Some((u0, k0)), Some((u1, k1))) if u1 + k1 > u0 + k0 => {
            let (user, kernel) = (u1.saturating_sub(u0), k1.saturating_sub(k0));
            format!(
                " server_kernel_share={:.3}",
                kernel as f64 / (user + kernel) as f64
            )
        }
        _ => String::new(),
    }
}

/// A blocking WebSocket client of pollserve_fanout's `/stats`.
struct StatsClient {
    stream: std::net::TcpStream,
}

impl StatsClient {
    fn open(addr: SocketAddr, path: &str) -> StatsClient {
        let mut stream = std::net::TcpStream::connect(addr)
            .unwrap_or_else(|e| fail(format!("stats: connect {addr}: {e}")));
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        stream
            .write_all(&upgrade_request(path, addr))
            .unwrap_or_else(|e| fail(format!("stats: {e}")));
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        // Byte by byte, so nothing after the head is taken (one head, once).
        while head_end(&head).is_none() {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => fail("stats: no upgrade response"),
            }
            if head.len() > MAX_HEAD {
                fail("stats: response head too long");
            }
        }
        if !head.starts_with(b"HTTP/1.1 101") {
            fail(format!(
                "stats: upgrade refused: {:?}",
                String::from_utf8_lossy(&head)
            ));
        }
        StatsClient { stream }
    }

    /// The server's `output_queued` now.
    fn output_queued(&mut self) -> u64 {
        // A masked text frame "stats" (mask 0: the payload as is).
        let frame = [0x81, 0x85, 0, 0, 0, 0, b's', b't', b'a', b't', b's'];
        self.stream
            .write_all(&frame)
            .unwrap_or_else(|e| fail(format!("stats: {e}")));
        let mut head = [0u8; 2];
        self.stream
            .read_exact(&mut head)
            .unwrap_or_else(|e| fail(format!("stats: {e}")));
        let len = match head[1] & 0x7F {
            n @ 0..=125 => n as usize,
            126 => {
                let mut l = [0u8; 2];
                self.stream
                    .read_exact(&mut l)
                    .unwrap_or_else(|e| fail(format!("stats: {e}")));
                u16::from_be_bytes(l) as usize
            }
            _ => fail("stats: reply too long"),
        };
        let mut text = vec![0u8; len];
        self.stream
            .read_exact(&mut text)
            .unwrap_or_else(|e| fail(format!("stats: {e}")));
        let text = String::from_utf8_lossy(&text);
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix("output_queued="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| fail(format!("stats: no output_queued in {text:?}")))
    }
}

/// `loadgen fanout-memory`.
pub fn run_memory(args: Args) {
    let Some(&pid) = args.pids.first() else {
        fail("fanout-memory needs --pid");
    };
    let mut fan = new_fan(&args, Kind::Ws, args.size, args.fill + 1);
    let mut events = Events::with_capacity(1024);
    // Waits until the server has done what the last step gave it: at
    // least 0.5 s, then until its CPU time grows by less than 2 ms in
    // 200 ms (on a loaded machine a broadcast to 10,000 connections can
    // take longer than any fixed wait).
    let pids = args.pids.clone();
    let settle = |fan: &mut Fan, events: &mut Events| {
        let start = Instant::now();
        let (mut mark, mut cpu) = (start, cpu_seconds(&pids));
        loop {
            fan.poll_once(events, Duration::from_millis(20));
            if mark.elapsed() < Duration::from_millis(200) {
                continue;
            }
            let now = cpu_seconds(&pids);
            if now - cpu < 0.002 && start.elapsed() >= Duration::from_millis(500) {
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                fail("the server was still busy 30 s after the last step");
            }
            (mark, cpu) = (Instant::now(), now);
        }
    };
    let rss_before = rss_bytes(pid);
    fan.paused = true;
    fan.set_up(&mut events, args.conns);
    let mut stats = args
        .stats_path
        .as_deref()
        .map(|path| StatsClient::open(args.addr, path));
    settle(&mut fan, &mut events);
    let rss_idle = rss_bytes(pid);
    let queued_idle = stats.as_mut().map(StatsClient::output_queued);
    // The fill, then the measured message: each published whole, the
    // window ignored (the subscribers are not reading).
    let publish = |fan: &mut Fan, events: &mut Events, count: usize| {
        let p = fan.publisher.as_mut().expect("publisher set up");
        for _ in 0..count {
            fan.flow.publish(&mut p.wbuf);
        }
        flush_publisher(p);
        settle(fan, events);
    };
    publish(&mut fan, &mut events, args.fill);
    let rss_filled = rss_bytes(pid);
    let queued_filled = stats.as_mut().map(StatsClient::output_queued);
    publish(&mut fan, &mut events, 1);
    let rss_queued = rss_bytes(pid);
    let queued_last = stats.as_mut().map(StatsClient::output_queued);
    if fan.publisher.as_ref().is_some_and(|p| !p.wbuf.is_empty()) {
        fail("the publisher's messages did not all leave within a second");
    }
    // Every subscriber reads again: every queued message must arrive whole.
    fan.paused = false;
    for i in 0..fan.subs.len() {
        fan.read_sub(i);
    }
    fan.flow.last_progress = Instant::now();
    let total = fan.flow.published;
    while fan.flow.done < total {
        fan.poll_once(&mut events, Duration::from_millis(20));
    }
    let n = args.conns as f64;
    let per = |a: u64, b: u64| (a as f64 - b as f64) / n;
    let copies = (total as usize * args.size) as f64;
    let mut line = format!(
        "conns={} size={} fill={} rss_before={rss_before} rss_idle={rss_idle} rss_filled={rss_filled} \
         rss_queued={rss_queued} idle_bytes_per_conn={:.0} queued_bytes_per_conn={:.0} \
         last_bytes_per_conn={:.0} goal_ratio={:.3}",
        args.conns,
        args.size,
        args.fill,
        per(rss_idle, rss_before),
        per(rss_queued, rss_idle),
        per(rss_queued, rss_filled),
        (rss_queued as f64 - rss_before as f64) / (rss_idle as f64 - rss_before as f64 + copies),
    );
    if let (Some(i), Some(f), Some(q)) = (queued_idle, queued_filled, queued_last) {
        line += &format!(
            " output_queued_idle={i} output_queued_filled={f} output_queued={q} \
             stats_filled_per_conn={:.0} stats_last_per_conn={:.0}",
            per(f, i),
            per(q, f)
        );
    }
    println!("{line} verified=ok");
}
