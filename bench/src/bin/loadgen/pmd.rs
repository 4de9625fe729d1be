//! `loadgen echo --deflate` and `loadgen idle --deflate`: the WebSocket echo
//! load of `main.rs` with permessage-deflate (RFC 7692), its own codec
//! (flate2, raw deflate), sharing no code with the server under test.
//!
//! The upgrade offers `permessage-deflate; client_no_context_takeover;
//! client_max_window_bits` (a browser's offer, plus the promise to keep no
//! compression context; with `--client-context`, a browser's offer as it
//! is, so the server may keep an inflate context for the client, which
//! still compresses each message alone, as any client may) and requires
//! the server to accept it. Messages are
//! JSON text of exactly `--size` bytes (telemetry records: nested readings,
//! numbers, names, a free-text note), 64 different ones made at start from a
//! fixed seed. As the client keeps no context, each is compressed once, at
//! start, with the client window the server asked for (one set per window
//! size met), and sent from those prepared, masked frames.
//!
//! Every echo is inflated and compared byte for byte with the message sent.
//! A server that answered `server_no_context_takeover` gets one inflater
//! shared by all connections, reset for each message; one that keeps its
//! context gets an inflater per connection, kept across messages (so an
//! echo that refers to an earlier message of the same connection decodes,
//! and a wrong choice fails the check). Inflaters use a 15-bit window, which
//! decodes any smaller window the server compresses with.
//!
//! Besides `echo`'s figures the result line reports the bytes on the wire
//! per echoed message, server to client (frame headers included:
//! `wire_bytes_per_msg=`) next to the size of the same message sent
//! uncompressed (`raw_frame_bytes=`), the client's compressed frame size
//! (`client_frame_bytes_per_msg=`), the share of echoes that came compressed
//! (`compressed_share=`) and what the first connection negotiated
//! (`negotiated=`, the response's parameters joined by `;`). `idle` adds
//! `negotiated=` to its line; each connection's inflater is dropped after
//! its one echo, so the load generator's memory stays small.
use std::io;
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::{
    connected, cpu_seconds, fail, masked_frame_with, own_cpu_seconds, read_some, report, rss_bytes,
    write_some, Args, MAX_PENDING,
};

/// The extension the client offers.
const OFFER: &str = "permessage-deflate; client_no_context_takeover; client_max_window_bits";
/// The offer with `--client-context`: Chromium's.
const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";
/// The empty stored block that ends a sync flush: the sender removes it from
/// each compressed message and the receiver appends it before inflating
/// (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Different JSON messages to send.
const MESSAGES: usize = 64;
/// The client's compression level (zlib's default, what browsers use).
const LEVEL: u32 = 6;
/// Smallest `--size`: a JSON record with one reading.
const MIN_SIZE: usize = 256;

/// permessage-deflate parameters of a server's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Negotiated {
    /// The server resets its compressor after every message.
    server_no_context_takeover: bool,
    /// The client must reset its compressor after every message (it does
    /// anyway; the server may say so or not).
    client_no_context_takeover: bool,
    /// The window the server compresses with (15 when not stated).
    server_bits: u8,
    /// The window the client must compress with (15 when not stated).
    client_bits: u8,
}

/// Parses a `Sec-WebSocket-Extensions` value of a server's `101`: exactly
/// one `permessage-deflate` with known parameters, none twice, window bits
/// 8–15 (RFC 7692 §7.1; a response's `client_max_window_bits` has a value).
/// The client cannot compress with an 8-bit window (zlib's raw deflate
/// starts at 9), so a server asking for one is refused.
fn parse_response(value: &str) -> Result<Negotiated, String> {
    let mut parts = value.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|n| n.eq_ignore_ascii_case("permessage-deflate"))
        || value.contains(',')
    {
        return Err(format!(
            "extension other than one permessage-deflate: {value:?}"
        ));
    }
    let mut n = Negotiated {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_bits: 15,
        client_bits: 15,
    };
    let mut seen = [false; 4];
    for p in parts {
        let (name, v) = match p.split_once('=') {
            Some((name, v)) => (name.trim(), Some(v.trim().trim_matches('"'))),
            None => (p, None),
        };
        let bits = || -> Result<u8, String> {
            v.and_then(|v| v.parse::<u8>().ok())
                .filter(|b| (8..=15).contains(b))
                .ok_or_else(|| format!("bad window bits in {p:?}"))
        };
        let k = match name {
            "server_no_context_takeover" if v.is_none() => {
                n.server_no_context_takeover = true;
                0
            }
            "client_no_context_takeover" if v.is_none() => {
                n.client_no_context_takeover = true;
                1
            }
            "server_max_window_bits" => {
                n.server_bits = bits()?;
                2
            }
            "client_max_window_bits" => {
                n.client_bits = bits()?;
                3
            }
            _ => return Err(format!("unknown or malformed parameter {p:?} in {value:?}")),
        };
        if std::mem::replace(&mut seen[k], true) {
            return Err(format!("parameter {name} twice in {value:?}"));
        }
    }
    if n.client_bits < 9 {
        return Err(
            "client_max_window_bits=8: zlib cannot compress raw deflate with an 8-bit window"
                .into(),
        );
    }
    Ok(n)
}

/// The `Sec-WebSocket-Extensions` values of a response head, joined by `,`
/// (`None` when there is none).
fn extensions_header(head: &str) -> Option<String> {
    let values: Vec<&str> = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, v)| v.trim())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// A telemetry record as JSON text of exactly `size` bytes (`size` ≥
/// [`MIN_SIZE`]): a head (device, sequence, time, battery), readings while
/// they fit, and a note of words padding it to the size.
fn json_message(seq: usize, size: usize, rng: &mut u64) -> Vec<u8> {
    const DEVICES: [&str; 8] = [
        "greenhouse",
        "cellar",
        "attic",
        "garage",
        "hive",
        "pond",
        "barn",
        "porch",
    ];
    const SENSORS: [(&str, &str, f64); 10] = [
        ("temperature", "C", 40.0),
        ("humidity", "%", 100.0),
        ("pressure", "hPa", 1050.0),
        ("co2", "ppm", 2000.0),
        ("light", "lx", 20000.0),
        ("soil_moisture", "%", 100.0),
        ("wind_speed", "m/s", 30.0),
        ("voltage", "V", 5.0),
        ("current", "mA", 500.0),
        ("pm2_5", "ug/m3", 80.0),
    ];
    const WORDS: [&str; 16] = [
        "sensor",
        "reading",
        "stable",
        "calibrated",
        "window",
        "open",
        "closed",
        "fan",
        "pump",
        "running",
        "idle",
        "battery",
        "charging",
        "sunny",
        "cloudy",
        "rain",
    ];
    let mut r = || xorshift(rng);
    let frac = |v: u64, max: f64| (v % 100_000) as f64 / 100_000.0 * max;
    let mut m = format!(
        "{{\"type\":\"telemetry\",\"device\":\"{}-{:02}\",\"seq\":{},\"time\":\"2026-05-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"battery\":{:.2},\"rssi\":-{},\"status\":\"{}\",\"readings\":[",
        DEVICES[(r() % 8) as usize],
        r() % 64,
        1000 + seq * 7 + (r() % 5) as usize,
        1 + r() % 28,
        r() % 24,
        r() % 60,
        r() % 60,
        r() % 1000,
        3.0 + frac(r(), 1.2),
        40 + r() % 50,
        if r() % 5 == 0 { "warn" } else { "ok" },
    );
    let note_open = "],\"note\":\"";
    let close = "\"}";
    let mut first = true;
    loop {
        let (name, unit, max) = SENSORS[(r() % 10) as usize];
        let reading = format!(
            "{}{{\"sensor\":\"{name}\",\"index\":{},\"value\":{:.2},\"unit\":\"{unit}\",\"ok\":{}}}",
            if first { "" } else { "," },
            r() % 4,
            frac(r(), max),
            r() % 9 != 0
        );
        if m.len() + reading.len() + note_open.len() + close.len() + 16 > size {
            break;
        }
        m.push_str(&reading);
        first = false;
    }
    m.push_str(note_open);
    let end = size - close.len();
    while m.len() < end {
        let w = WORDS[(r() % 16) as usize];
        let room = end - m.len();
        m.push_str(&w[..w.len().min(room)]);
        if m.len() < end {
            m.push(' ');
        }
    }
    m.push_str(close);
    debug_assert_eq!(m.len(), size);
    m.into_bytes()
}

/// Masked, compressed text frames of `messages`, each compressed alone (no
/// context) with a `bits` window, the sync flush's tail removed.
fn compressed_frames(messages: &[Vec<u8>], bits: u8, rng: &mut u64) -> Vec<Vec<u8>> {
    let mut c = Compress::new_with_window_bits(Compression::new(LEVEL), false, bits);
    let mut out = Vec::new();
    messages
        .iter()
        .map(|m| {
            c.reset();
            out.clear();
            out.reserve(m.len() + 64);
            let start = c.total_in();
            // A sync flush is complete when a call returns with output
            // room left.
            loop {
                let done = (c.total_in() - start) as usize;
                c.compress_vec(&m[done..], &mut out, FlushCompress::Sync)
                    .unwrap_or_else(|e| fail(format!("deflate: {e}")));
                if (c.total_in() - start) as usize == m.len() && out.len() < out.capacity() {
                    break;
                }
                out.reserve(4096);
            }
            if !out.ends_with(&TAIL) {
                fail("deflate: a sync flush did not end with 00 00 ff ff");
            }
            let body = &out[..out.len() - TAIL.len()];
            // FIN, RSV1 (compressed), text.
            masked_frame_with(0xC1, body, (xorshift(rng) as u32).to_ne_bytes())
        })
        .collect()
}

/// Feeds `input` to `d`, its output into `out[*produced..]`; fails when the
/// data is invalid or inflates past `out` (longer than the message sent).
fn inflate(d: &mut Decompress, input: &[u8], out: &mut [u8], produced: &mut usize, i: usize) {
    let mut used = 0;
    while used < input.len() {
        let (in0, out0) = (d.total_in(), d.total_out());
        d.decompress(&input[used..], &mut out[*produced..], FlushDecompress::Sync)
            .unwrap_or_else(|e| fail(format!("connection {i}: invalid deflate data: {e}")));
        used += (d.total_in() - in0) as usize;
        *produced += (d.total_out() - out0) as usize;
        if *produced == out.len() {
            fail(format!(
                "connection {i}: echo inflates past the {} bytes sent",
                out.len() - 1
            ));
        }
        if d.total_in() == in0 && d.total_out() == out0 {
            fail(format!("connection {i}: inflater made no progress"));
        }
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Connecting,
    Handshake,
    Open,
}

/// The echo being received on a connection.
#[derive(Clone, Copy)]
enum Incoming {
    /// No frame of it yet.
    Start,
    /// Uncompressed (RSV1 clear): `got` bytes checked so far.
    Plain { got: usize },
    /// Compressed: `produced` bytes inflated into the shared output buffer;
    /// `own`: with the connection's inflater (else the shared one).
    Compressed { produced: usize, own: bool },
}

struct Conn {
    stream: TcpStream,
    phase: Phase,
    wbuf: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    writable: bool,
    /// What this connection negotiated (set by the handshake).
    deflate: Option<Negotiated>,
    /// The inflater of a server that keeps its context, kept across
    /// messages; or one for a fragmented message of a server that does not.
    inflater: Option<Box<Decompress>>,
    /// Index of the message in flight, whether one is, and when it left.
    msg: usize,
    in_flight: bool,
    sent_at: Instant,
    incoming: Incoming,
    /// Frame bytes (headers included) of the echo so far.
    wire: usize,
    /// Bytes of the frame sent for the message in flight.
    sent_bytes: usize,
    echoes: u64,
}

struct Pmd {
    args: Args,
    poll: Poll,
    conns: Vec<Conn>,
    messages: Vec<Vec<u8>>,
    /// Prepared frames by client window bits (index 9–15), made when a
    /// connection first negotiates that window.
    frames: Vec<Vec<Vec<u8>>>,
    rng: u64,
    measuring: bool,
    /// Idle mode: no message after the first echo.
    one_shot: bool,
    latencies: Vec<u32>,
    completed: u64,
    open: usize,
    echoed_once: usize,
    pending: usize,
    /// The inflater shared by the connections whose server keeps no context.
    shared: Decompress,
    /// Where echoes are inflated: one byte longer than a message, so a
    /// longer echo is seen.
    out: Vec<u8>,
    /// Measured echoes: server-to-client frame bytes, client frame bytes,
    /// how many came compressed.
    wire_in: u64,
    wire_out: u64,
    compressed: u64,
    /// What the first connection negotiated, as the response said it.
    negotiated: Option<String>,
}

impl Pmd {
    fn connect(&mut self) {
        let i = self.conns.len();
        let mut stream = TcpStream::connect(self.args.addr)
            .unwrap_or_else(|e| fail(format!("connect {}: {e}", self.args.addr)));
        self.poll
            .registry()
            .register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .unwrap_or_else(|e| fail(format!("register: {e}")));
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: {}\r\n\r\n",
            self.args.path,
            self.args.addr,
            if self.args.client_context {
                BROWSER_OFFER
            } else {
                OFFER
            }
        );
        self.conns.push(Conn {
            stream,
            phase: Phase::Connecting,
            wbuf: req.into_bytes(),
            wpos: 0,
            rbuf: Vec::new(),
            rstart: 0,
            rend: 0,
            writable: false,
            deflate: None,
            inflater: None,
            msg: 0,
            in_flight: false,
            sent_at: Instant::now(),
            incoming: Incoming::Start,
            wire: 0,
            sent_bytes: 0,
            echoes: 0,
        });
        self.pending += 1;
    }

    /// Sends a prepared compressed message on connection `i`.
    fn send_message(&mut self, i: usize) {
        let pick = (xorshift(&mut self.rng) % MESSAGES as u64) as usize;
        let bits = self.conns[i].deflate.map_or(15, |n| n.client_bits) as usize;
        let frame = &self.frames[bits][pick];
        let c = &mut self.conns[i];
        c.msg = pick;
        c.in_flight = true;
        c.incoming = Incoming::Start;
        c.wire = 0;
        c.sent_bytes = frame.len();
        c.sent_at = Instant::now();
        if c.wpos < c.wbuf.len() || !c.writable {
            c.wbuf.extend_from_slice(frame);
            return flush(c, i);
        }
        // Nothing queued: write straight from the prepared frame and keep
        // only what the socket did not take.
        let sent = write_some(&mut c.stream, frame, i);
        c.writable = sent == frame.len();
        c.wbuf.clear();
        c.wpos = 0;
        c.wbuf.extend_from_slice(&frame[sent..]);
    }

    fn drive(&mut self, i: usize, readable: bool, writable: bool) {
        if writable {
            self.conns[i].writable = true;
            if self.conns[i].phase == Phase::Connecting {
                if !connected(&self.conns[i].stream, i) {
                    return;
                }
                self.conns[i].phase = Phase::Handshake;
            }
            flush(&mut self.conns[i], i);
        }
        if !readable || self.conns[i].phase == Phase::Connecting {
            return;
        }
        loop {
            let c = &mut self.conns[i];
            if c.rend == c.rbuf.len() {
                // Full: move the unconsumed bytes to the front, or grow.
                if c.rstart > 0 {
                    c.rbuf.copy_within(c.rstart..c.rend, 0);
                    c.rend -= c.rstart;
                    c.rstart = 0;
                } else {
                    let len = (c.rbuf.len() * 2).max(4096);
                    c.rbuf.resize(len, 0);
                }
            }
            let Some(n) = read_some(&mut c.stream, &mut c.rbuf[c.rend..], i) else {
                break;
            };
            c.rend += n;
            self.process(i);
        }
    }

    /// Takes the `101` from connection `i`'s buffer, if complete: the
    /// server must have accepted permessage-deflate.
    fn handshake(&mut self, i: usize) -> bool {
        let c = &mut self.conns[i];
        let data = &c.rbuf[c.rstart..c.rend];
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&data[..end]);
        if !head.starts_with("HTTP/1.1 101") {
            fail(format!("connection {i}: handshake refused: {head:?}"));
        }
        let Some(ext) = extensions_header(&head) else {
            fail(format!(
                "connection {i}: the server declined permessage-deflate (no Sec-WebSocket-Extensions in {head:?})"
            ));
        };
        let n = parse_response(&ext).unwrap_or_else(|e| fail(format!("connection {i}: {e}")));
        if self.negotiated.is_none() {
            let params: String = ext
                .split(';')
                .map(str::trim)
                .skip(1)
                .collect::<Vec<_>>()
                .join(";");
            self.negotiated = Some(if params.is_empty() {
                "-".into()
            } else {
                params
            });
        }
        c.deflate = Some(n);
        c.rstart += end + 4;
        c.phase = Phase::Open;
        let bits = n.client_bits as usize;
        if self.frames[bits].is_empty() {
            self.frames[bits] = compressed_frames(&self.messages, n.client_bits, &mut self.rng);
        }
        self.pending -= 1;
        self.open += 1;
        true
    }

    /// Consumes the handshake response and complete frames from connection
    /// `i`'s buffer.
    fn process(&mut self, i: usize) {
        if self.conns[i].phase == Phase::Handshake {
            if !self.handshake(i) {
                return;
            }
            self.send_message(i);
        }
        loop {
            let Pmd {
                conns,
                messages,
                shared,
                out,
                ..
            } = self;
            let c = &mut conns[i];
            let data = &c.rbuf[c.rstart..c.rend];
            if data.len() < 2 {
                break;
            }
            let (b0, b1) = (data[0], data[1]);
            if b1 & 0x80 != 0 {
                fail(format!("connection {i}: server frame is masked"));
            }
            let (hlen, plen) = match b1 & 0x7F {
                126 if data.len() >= 4 => (4, u16::from_be_bytes([data[2], data[3]]) as usize),
                127 if data.len() >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&data[2..10]);
                    (10, u64::from_be_bytes(b) as usize)
                }
                126 | 127 => break,
                n => (2, n as usize),
            };
            if data.len() - hlen < plen {
                break;
            }
            let (fin, rsv1, opcode) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0F);
            if b0 & 0x30 != 0 {
                fail(format!("connection {i}: RSV2/RSV3 set ({b0:#04x})"));
            }
            let payload = &data[hlen..hlen + plen];
            let mut done = false;
            match opcode {
                0x1 | 0x0 => {
                    let first = matches!(c.incoming, Incoming::Start);
                    if !c.in_flight || (opcode == 0x1) != first {
                        fail(format!(
                            "connection {i}: unexpected data frame (opcode {opcode})"
                        ));
                    }
                    if rsv1 && !first {
                        fail(format!("connection {i}: RSV1 on a continuation frame"));
                    }
                    let want = &messages[c.msg];
                    if first {
                        c.incoming = if !rsv1 {
                            Incoming::Plain { got: 0 }
                        } else {
                            let n = c.deflate.unwrap_or_else(|| {
                                fail(format!("connection {i}: RSV1 without permessage-deflate"))
                            });
                            // A server that keeps its context needs this
                            // connection's inflater for good; one that
                            // does not, only for a fragmented message.
                            let own = !n.server_no_context_takeover || !fin;
                            if own {
                                let d = c
                                    .inflater
                                    .get_or_insert_with(|| Box::new(Decompress::new(false)));
                                if n.server_no_context_takeover {
                                    d.reset(false);
                                }
                            } else {
                                shared.reset(false);
                            }
                            Incoming::Compressed { produced: 0, own }
                        };
                    }
                    match &mut c.incoming {
                        Incoming::Plain { got } => {
                            if payload.len() > want.len() - *got
                                || payload != &want[*got..*got + payload.len()]
                            {
                                fail(format!(
                                    "connection {i}: uncompressed echo mismatch at message byte {got}"
                                ));
                            }
                            *got += payload.len();
                            if fin && *got != want.len() {
                                fail(format!(
                                    "connection {i}: echo of {got} bytes, sent {}",
                                    want.len()
                                ));
                            }
                        }
                        Incoming::Compressed { produced, own } => {
                            let d = match (*own, c.inflater.as_deref_mut()) {
                                (true, Some(d)) => d,
                                _ => &mut *shared,
                            };
                            inflate(d, payload, out, produced, i);
                            if fin {
                                inflate(d, &TAIL, out, produced, i);
                                if out[..*produced] != want[..] {
                                    let at = out[..*produced]
                                        .iter()
                                        .zip(want.iter())
                                        .position(|(a, b)| a != b)
                                        .unwrap_or(want.len().min(*produced));
                                    fail(format!(
                                        "connection {i}: echo mismatch at message byte {at} ({} bytes inflated, {} sent)",
                                        produced,
                                        want.len()
                                    ));
                                }
                            }
                        }
                        // Set from the first frame above.
                        Incoming::Start => {}
                    }
                    c.wire += hlen + plen;
                    done = fin;
                }
                0x9 | 0xA => {} // ping/pong: not expected from an echo server; ignore.
                0x8 => fail(format!("connection {i}: server sent close {payload:?}")),
                _ => fail(format!("connection {i}: unexpected opcode {opcode:#x}")),
            }
            c.rstart += hlen + plen;
            if c.rstart == c.rend {
                c.rstart = 0;
                c.rend = 0;
            }
            if done {
                self.on_echo(i);
            }
        }
    }

    fn on_echo(&mut self, i: usize) {
        let c = &mut self.conns[i];
        c.in_flight = false;
        c.echoes += 1;
        if c.echoes == 1 {
            self.echoed_once += 1;
        }
        if self.measuring {
            self.completed += 1;
            self.wire_in += c.wire as u64;
            self.wire_out += c.sent_bytes as u64;
            self.compressed += matches!(c.incoming, Incoming::Compressed { .. }) as u64;
            let rtt = c.sent_at.elapsed();
            self.latencies
                .push(rtt.as_nanos().min(u32::MAX as u128) as u32);
        }
        if self.one_shot {
            // Idle: no more messages, so no inflater to keep.
            c.inflater = None;
        } else {
            self.send_message(i);
        }
    }
}

fn flush(c: &mut Conn, i: usize) {
    if c.phase == Phase::Connecting || !c.writable {
        return;
    }
    c.wpos += write_some(&mut c.stream, &c.wbuf[c.wpos..], i);
    if c.wpos < c.wbuf.len() {
        c.writable = false;
        return;
    }
    c.wbuf.clear();
    c.wpos = 0;
}

fn poll_once(g: &mut Pmd, events: &mut Events, timeout: Duration) {
    if let Err(e) = g.poll.poll(events, Some(timeout)) {
        if e.kind() != io::ErrorKind::Interrupted {
            fail(format!("poll: {e}"));
        }
    }
    for e in events.iter() {
        g.drive(
            e.token().0,
            e.is_readable() || e.is_read_closed() || e.is_error(),
            e.is_writable() || e.is_error(),
        );
    }
}

/// Size of an uncompressed server frame (unmasked) carrying `size` bytes.
fn frame_size(size: usize) -> usize {
    size + match size {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

/// Runs `echo --deflate` or `idle --deflate`.
pub(super) fn run(args: Args) {
    if args.size < MIN_SIZE {
        fail(format!(
            "--deflate needs --size {MIN_SIZE} or more (a JSON record)"
        ));
    }
    let idle = args.mode == "idle";
    let rss_before = match (idle, args.pids.first()) {
        (true, Some(&pid)) => rss_bytes(pid),
        (true, None) => fail("idle mode needs --pid"),
        _ => 0,
    };
    let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
    let messages = (0..MESSAGES)
        .map(|k| json_message(k, args.size, &mut rng))
        .collect();
    let mut g = Pmd {
        poll: Poll::new().unwrap_or_else(|e| fail(format!("poll: {e}"))),
        conns: Vec::with_capacity(args.conns),
        messages,
        frames: vec![Vec::new(); 16],
        rng,
        measuring: false,
        one_shot: idle,
        latencies: Vec::new(),
        completed: 0,
        open: 0,
        echoed_once: 0,
        pending: 0,
        shared: Decompress::new(false),
        out: vec![0; args.size + 1],
        wire_in: 0,
        wire_out: 0,
        compressed: 0,
        negotiated: None,
        args,
    };
    let mut events = Events::with_capacity(1024);
    let setup_deadline = Instant::now() + Duration::from_secs(60);
    while g.echoed_once < g.args.conns {
        while g.conns.len() < g.args.conns && g.pending < MAX_PENDING {
            g.connect();
        }
        if Instant::now() > setup_deadline {
            fail(format!(
                "setup timed out: {} of {} connections open, {} echoed once",
                g.open, g.args.conns, g.echoed_once
            ));
        }
        poll_once(&mut g, &mut events, Duration::from_millis(50));
    }
    let negotiated = g.negotiated.clone().unwrap_or_default();
    if idle {
        std::thread::sleep(Duration::from_secs(1));
        let rss_after = rss_bytes(g.args.pids[0]);
        let per = (rss_after as f64 - rss_before as f64) / g.args.conns as f64;
        println!(
            "conns={} rss_before={rss_before} rss_after={rss_after} bytes_per_conn={per:.0} negotiated={negotiated}",
            g.args.conns
        );
        return;
    }
    let warm_end = Instant::now() + Duration::from_secs_f64(g.args.warmup);
    while Instant::now() < warm_end {
        poll_once(&mut g, &mut events, Duration::from_millis(10));
    }
    let cpu0 = (!g.args.pids.is_empty()).then(|| cpu_seconds(&g.args.pids));
    let own0 = own_cpu_seconds();
    g.measuring = true;
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(g.args.secs);
    while Instant::now() < end {
        poll_once(&mut g, &mut events, Duration::from_millis(10));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = (!g.args.pids.is_empty()).then(|| cpu_seconds(&g.args.pids));
    let own = own_cpu_seconds() - own0;
    g.measuring = false;
    let n = g.completed.max(1) as f64;
    let extra = format!(
        " wire_bytes_per_msg={:.1} raw_frame_bytes={} client_frame_bytes_per_msg={:.1} compressed_share={:.3} negotiated={negotiated}",
        g.wire_in as f64 / n,
        frame_size(g.args.size),
        g.wire_out as f64 / n,
        g.compressed as f64 / n,
    );
    report(
        g.completed,
        elapsed,
        std::mem::take(&mut g.latencies),
        (cpu0, cpu1, own),
        &extra,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_json_of_the_exact_size() {
        let mut rng = 7;
        for size in [MIN_SIZE, 1024, 4000] {
            for k in 0..8 {
                let m = json_message(k, size, &mut rng);
                assert_eq!(m.len(), size);
                let v: serde_json::Value = serde_json::from_slice(&m).expect("valid JSON");
                assert_eq!(v["type"], "telemetry");
                assert!(!v["readings"].as_array().expect("readings").is_empty());
            }
        }
    }

    #[test]
    fn compressed_frames_inflate_to_the_messages() {
        let mut rng = 9;
        let msgs: Vec<Vec<u8>> = (0..4).map(|k| json_message(k, 1024, &mut rng)).collect();
        for bits in [9, 12, 15] {
            for (m, f) in msgs.iter().zip(compressed_frames(&msgs, bits, &mut rng)) {
                assert_eq!(f[0], 0xC1);
                let (hlen, plen) = match f[1] & 0x7F {
                    126 => (8, u16::from_be_bytes([f[2], f[3]]) as usize),
                    n => (6, n as usize),
                };
                assert_eq!(f.len(), hlen + plen);
                assert!(plen < m.len() / 2, "1 KiB JSON shrinks: {plen}");
                let mask = &f[hlen - 4..hlen];
                let mut body: Vec<u8> = f[hlen..]
                    .iter()
                    .enumerate()
                    .map(|(j, b)| b ^ mask[j & 3])
                    .collect();
                body.extend_from_slice(&TAIL);
                let mut d = Decompress::new_with_window_bits(false, bits);
                let mut out = vec![0; m.len() + 1];
                let mut produced = 0;
                inflate(&mut d, &body, &mut out, &mut produced, 0);
                assert_eq!(&out[..produced], &m[..]);
            }
        }
    }

    #[test]
    fn response_parameters() {
        let n = parse_response("permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=12").expect("valid");
        assert_eq!(
            n,
            Negotiated {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_bits: 15,
                client_bits: 12
            }
        );
        let n = parse_response("permessage-deflate; server_max_window_bits=\"10\"").expect("valid");
        assert_eq!((n.server_bits, n.client_bits), (10, 15));
        for bad in [
            "x-webkit-deflate-frame",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover=1",
        ] {
            assert!(parse_response(bad).is_err(), "{bad}");
        }
        assert_eq!(
            extensions_header("HTTP/1.1 101 x\r\nUpgrade: websocket\r\nsec-websocket-extensions: permessage-deflate").as_deref(),
            Some("permessage-deflate")
        );
        assert_eq!(
            extensions_header("HTTP/1.1 101 x\r\nUpgrade: websocket"),
            None
        );
    }
}
