//! WebSocket load generator: one thread, one mio poll loop, independent of the
//! server under test (frames are encoded and decoded here, not by pollserve).
//!
//! ```text
//! loadgen echo --addr 127.0.0.1:PORT [--path /ws] --conns N --size S --secs D
//!              [--warmup W] [--pid SERVER_PID] [--tls CERT.pem | --deflate]
//! loadgen idle --addr 127.0.0.1:PORT [--path /ws] --conns N --pid SERVER_PID
//!              [--tls CERT.pem | --deflate]
//! loadgen http --addr 127.0.0.1:PORT --path /file --expect FILE --conns N
//!              --secs D [--warmup W] [--pid SERVER_PID]... [--close]
//!              [--tls CERT.pem]
//! loadgen hostile --addr 127.0.0.1:PORT --path /file --expect FILE
//!              [--attackers N] [--flooders F] [--idle ws|http] [--ws-path /ws]
//!              [--rate R] [--timeout-ms T] [--trickle-ms P]
//!              --secs D [--warmup W] [--pid SERVER_PID]...
//! loadgen fanout --addr 127.0.0.1:PORT --conns N (--size S | --sizes S,S…)
//!              --secs D [--warmup W] [--window W] [--sse] [--sub-path P]
//!              [--pub-path P] [--pid SERVER_PID]...
//! loadgen fanout-memory --addr 127.0.0.1:PORT --conns N --size S
//!              --pid SERVER_PID [--fill F] [--stats-path /stats]
//! ```
//!
//! `fanout`, `fanout-memory`: one publisher, N subscribers, every delivery
//! checked; see `fanout.rs`.
//!
//! `echo`: N connections each send a masked binary message of S bytes, wait
//! for the echo, verify it byte for byte and repeat. After the warm-up it
//! measures for D seconds and prints one line of `key=value` pairs: messages
//! per second, p50/p99 round trip in microseconds and, with `--pid`, the
//! server's CPU time (utime+stime from /proc/PID/stat) per message.
//!
//! `http`: N keep-alive connections each send `GET PATH`, read the whole
//! response, check the status line (200), `Content-Length` and every body
//! byte against FILE, and send the next request: the keep-alive load `wrk`
//! makes, without `wrk`'s two `epoll_ctl` calls per request and with reads of
//! up to 256 KiB (`wrk` reads 8 KiB at a time), so the client is not what
//! saturates first. Prints the same line as `echo` (`msgs` are requests).
//! With `--close` every request says `Connection: close` and goes on a new
//! connection: connect, (TLS handshake,) request, the whole response, the
//! server's close, then the next connection; latency counts from the
//! connect, and `conns_opened=` says how many were opened.
//!
//! `--tls CERT.pem` (echo, idle, http): TLS 1.3 to the server, whose
//! certificate must be the first one in CERT.pem (see `tls.rs`: pinned
//! certificate, no session resumption, ciphertext decrypted in place). The
//! result line then says what was negotiated (`tls=`).
//!
//! `--deflate` (echo, idle): permessage-deflate, with JSON text messages
//! instead of binary ones; `--client-context` offers it as browsers do,
//! without `client_no_context_takeover`; see `pmd.rs`.
//!
//! `--pid` may be given more than once (nginx: master and worker); server CPU
//! is the on-CPU time of every thread of those processes
//! (`/proc/PID/task/*/schedstat`, nanoseconds).
//!
//! `hostile`: a probe client's latency while hostile connections run. First
//! N attack connections (default 0: a quiet run) are opened and set up: F of
//! them (default 16) flood the server with blank lines (`\r\n`, as fast as
//! the socket takes them), the rest are dealt out in turn to slowloris (a
//! partial `GET` head, then one more header byte every P ms, default 2000),
//! slow body (a complete `POST` head with `Content-Length: 1000000`, then one
//! body byte every P ms) and idle (`--idle ws`: a WebSocket upgrade to
//! `--ws-path`, then silence; `--idle http`: one `GET PATH`, then silence on
//! the kept-alive connection). A connection the server closes is counted
//! (per kind) and opened again 50 ms later. The flooding connections open
//! last, once the others are set up. Then the probe: its own keep-alive
//! connection, `GET PATH` on a schedule of R ticks per second (default 200),
//! one request at a time, every answer checked against FILE. A tick that
//! passes while the request before is still in flight is skipped and counted
//! as missed; latency counts from the request's start (its connect included
//! when it needs a new connection). A request not answered within T ms
//! (default 1000), refused, or answered with another status than 200 is a
//! failure, counted as T in the percentiles, and the next one opens a new
//! connection. After W seconds of warm-up, the ticks of the next D seconds
//! are the result: p50/p99/max, failures, missed ticks, the server's CPU
//! share (`busy`) and its largest VmRSS (summed over the `--pid`s, read every
//! 200 ms), the attack's closes and flood volume. Exits non-zero on a wrong
//! answer to the probe, or when no probe was answered in a run without
//! attackers.
//!
//! `idle`: reads the server's VmRSS, opens N WebSockets (each does one 20-byte
//! echo so the connection is fully set up), waits a second, reads VmRSS again
//! and prints the difference per connection.
//!
//! Any mismatched byte, unexpected frame, failed handshake or lost
//! connection makes the exit status non-zero.
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::exit;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Connection attempts allowed to be in flight (connecting or handshaking).
const MAX_PENDING: usize = 256;
const PATTERN_LEN: usize = 1 << 20;
/// Different prepared messages (payload offset and mask) to send from.
const FRAMES: usize = 64;

struct Args {
    mode: String,
    addr: SocketAddr,
    path: String,
    conns: usize,
    size: usize,
    secs: f64,
    warmup: f64,
    pids: Vec<u32>,
    expect: Option<String>,
    attackers: usize,
    flooders: usize,
    idle: String,
    ws_path: String,
    rate: f64,
    timeout_ms: f64,
    trickle_ms: f64,
    /// `--tls CERT.pem`: speak TLS, pinning the first certificate of the file.
    tls: Option<String>,
    /// `--close` (http): one request per connection.
    close: bool,
    /// `--deflate` (echo, idle): offer permessage-deflate (`pmd.rs`).
    deflate: bool,
    /// `--client-context` (with `--deflate`): offer it without
    /// `client_no_context_takeover`, as browsers do.
    client_context: bool,
    /// `--sizes S,S…` (fanout): message sizes measured one after the
    /// other on the same subscribers (default: `--size`).
    sizes: Vec<usize>,
    /// `--window W` (fanout): messages in flight at most.
    window: usize,
    /// `--sse` (fanout): subscribers are event streams.
    sse: bool,
    /// `--sub-path` (fanout): where subscribers connect (default `/sub`,
    /// `/events` with `--sse`).
    sub_path: Option<String>,
    /// `--pub-path` (fanout): where the publisher connects.
    pub_path: String,
    /// `--stats-path` (fanout-memory): pollserve_fanout's stats WebSocket.
    stats_path: Option<String>,
    /// `--fill N` (fanout-memory): messages sent before the measured one.
    fill: usize,
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mode = it.next().unwrap_or_default();
    if !matches!(
        mode.as_str(),
        "echo" | "idle" | "http" | "hostile" | "fanout" | "fanout-memory"
    ) {
        eprintln!("usage: loadgen echo|idle|http|hostile|fanout|fanout-memory --addr HOST:PORT [--path /ws] --conns N [--size S] [--secs D] [--warmup W] [--pid PID]... [--expect FILE] [--close] [--tls CERT.pem] (hostile: see the doc comment of bench/src/bin/loadgen/main.rs; fanout: fanout.rs)");
        exit(2);
    }
    let mut a = Args {
        mode,
        addr: "127.0.0.1:9000".parse().expect("addr"),
        path: "/ws".into(),
        conns: 1,
        size: 20,
        secs: 3.0,
        warmup: 0.5,
        pids: Vec::new(),
        expect: None,
        attackers: 0,
        flooders: 16,
        idle: "ws".into(),
        ws_path: "/ws".into(),
        rate: 200.0,
        timeout_ms: 1000.0,
        trickle_ms: 2000.0,
        tls: None,
        close: false,
        deflate: false,
        client_context: false,
        sizes: Vec::new(),
        window: 8,
        sse: false,
        sub_path: None,
        pub_path: "/pub".into(),
        stats_path: None,
        fill: 2,
    };
    while let Some(flag) = it.next() {
        if flag == "--close" {
            a.close = true;
            continue;
        }
        if flag == "--deflate" {
            a.deflate = true;
            continue;
        }
        if flag == "--client-context" {
            a.client_context = true;
            continue;
        }
        if flag == "--sse" {
            a.sse = true;
            continue;
        }
        let v = it.next().unwrap_or_else(|| {
            eprintln!("missing value for {flag}");
            exit(2)
        });
        // The value parsed as whatever the field holds; a bad one ends the run.
        fn value<T: std::str::FromStr>(flag: &str, v: &str) -> T
        where
            T::Err: std::fmt::Display,
        {
            v.parse().unwrap_or_else(|e| {
                eprintln!("bad value for {flag}: {v} ({e})");
                exit(2)
            })
        }
        match flag.as_str() {
            "--addr" => a.addr = value(&flag, &v),
            "--path" => a.path = v.clone(),
            "--conns" => a.conns = value(&flag, &v),
            "--size" => a.size = value(&flag, &v),
            "--secs" => a.secs = value(&flag, &v),
            "--warmup" => a.warmup = value(&flag, &v),
            "--pid" => a.pids.push(value(&flag, &v)),
            "--expect" => a.expect = Some(v.clone()),
            "--attackers" => a.attackers = value(&flag, &v),
            "--flooders" => a.flooders = value(&flag, &v),
            "--idle" => a.idle = v.clone(),
            "--ws-path" => a.ws_path = v.clone(),
            "--rate" => a.rate = value(&flag, &v),
            "--timeout-ms" => a.timeout_ms = value(&flag, &v),
            "--trickle-ms" => a.trickle_ms = value(&flag, &v),
            "--tls" => a.tls = Some(v.clone()),
            "--window" => a.window = value(&flag, &v),
            "--sizes" => a.sizes = v.split(',').map(|s| value(&flag, s)).collect(),
            "--sub-path" => a.sub_path = Some(v.clone()),
            "--pub-path" => a.pub_path = v.clone(),
            "--stats-path" => a.stats_path = Some(v.clone()),
            "--fill" => a.fill = value(&flag, &v),
            _ => {
                eprintln!("unknown flag {flag}");
                exit(2)
            }
        }
    }
    if a.close && a.mode != "http" {
        eprintln!("--close is for http mode");
        exit(2);
    }
    if a.sse && a.mode != "fanout" {
        eprintln!("--sse is for fanout mode");
        exit(2);
    }
    if a.tls.is_some() && (a.mode == "hostile" || a.mode.starts_with("fanout")) {
        eprintln!("--tls is for echo, idle and http mode");
        exit(2);
    }
    if a.deflate && (a.tls.is_some() || !matches!(a.mode.as_str(), "echo" | "idle")) {
        eprintln!("--deflate is for echo and idle mode, without --tls");
        exit(2);
    }
    if a.client_context && !a.deflate {
        eprintln!("--client-context goes with --deflate");
        exit(2);
    }
    if a.size > PATTERN_LEN / 2 {
        eprintln!("--size at most {}", PATTERN_LEN / 2);
        exit(2);
    }
    a
}

fn fail(msg: impl AsRef<str>) -> ! {
    eprintln!("loadgen: FAIL: {}", msg.as_ref());
    exit(1)
}

/// Server CPU seconds: on-CPU time of every thread of every process in
/// `pids`, from `/proc/PID/task/TID/schedstat` (first field, nanoseconds;
/// `/proc/PID/stat`'s utime+stime only counts 10 ms ticks).
fn cpu_seconds(pids: &[u32]) -> f64 {
    let mut ns: u64 = 0;
    for pid in pids {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap_or_else(|e| fail(format!("server {pid} gone: {e}")));
        for task in tasks.flatten() {
            // A thread may end between listing and reading: it then counts 0.
            if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
                ns += text
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    ns as f64 / 1e9
}

/// This process's own CPU seconds (every thread), as [`cpu_seconds`] counts.
fn own_cpu_seconds() -> f64 {
    cpu_seconds(&[std::process::id()])
}

/// Resident set size in bytes from /proc/PID/status.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| fail(format!("server {pid} gone: {e}")));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| fail("no VmRSS"))
}

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum Phase {
    Connecting,
    /// The TLS handshake (with `--tls`); the upgrade request waits in `wbuf`.
    Tls,
    /// The WebSocket handshake.
    Handshake,
    Open,
}

struct Conn {
    stream: TcpStream,
    phase: Phase,
    wbuf: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Offset in the pattern of the message in flight.
    msg_off: usize,
    /// Payload bytes of the echo received so far.
    got: usize,
    sent_at: Instant,
    in_flight: bool,
    seq: usize,
    writable: bool,
    /// The TLS session (with `--tls`); every byte then goes through it.
    tls: Option<Box<Tls>>,
}

struct Gen {
    args: Args,
    poll: Poll,
    conns: Vec<Conn>,
    pattern: Vec<u8>,
    /// Prepared masked frames: (offset of the payload in `pattern`, frame).
    frames: Vec<(usize, Vec<u8>)>,
    rng: u64,
    measuring: bool,
    /// Stop sending new messages (idle mode after the first echo).
    one_shot: bool,
    latencies: Vec<u32>,
    completed: u64,
    open: usize,
    echoed_once: usize,
    pending: usize,
    tls: Option<TlsClient>,
    /// Where TLS records are read and decrypted (empty without `--tls`).
    scratch: Vec<u8>,
    /// What the first TLS connection negotiated.
    tls_info: Option<String>,
}

impl Gen {
    fn next_rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

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
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self.args.path, self.args.addr
        );
        self.conns.push(Conn {
            stream,
            phase: Phase::Connecting,
            wbuf: req.into_bytes(),
            wpos: 0,
            rbuf: Vec::new(),
            rstart: 0,
            rend: 0,
            msg_off: 0,
            got: 0,
            sent_at: Instant::now(),
            in_flight: false,
            seq: i,
            writable: false,
            tls: self.tls.as_ref().map(|t| Box::new(t.session())),
        });
        self.pending += 1;
    }

    /// Sends the next masked binary message on connection `i`: one of the
    /// frames prepared at start (`FRAMES` different payloads and masks), so
    /// the load generator spends its time on the network, not on masking and
    /// copying; the server cannot tell.
    fn send_message(&mut self, i: usize) {
        let pick = (self.next_rand() % self.frames.len() as u64) as usize;
        let (off, ref frame) = self.frames[pick];
        let c = &mut self.conns[i];
        c.seq = c.seq.wrapping_add(1);
        c.msg_off = off;
        c.got = 0;
        c.in_flight = true;
        c.sent_at = Instant::now();
        if let Some(tls) = &mut c.tls {
            tls.send(frame)
                .unwrap_or_else(|e| fail(format!("connection {i}: {e}")));
            return flush(c, i);
        }
        if c.wpos < c.wbuf.len() || !c.writable {
            c.wbuf.extend_from_slice(frame);
            return flush(c, i);
        }
        // Nothing queued: write straight from the prepared frame and keep only
        // what the socket did not take.
        let sent = write_some(&mut c.stream, frame, i);
        c.writable = sent == frame.len();
        c.wbuf.clear();
        c.wpos = 0;
        c.wbuf.extend_from_slice(&frame[sent..]);
    }

    /// Handles readiness on connection `i`.
    fn drive(&mut self, i: usize, readable: bool, writable: bool) {
        if writable {
            self.conns[i].writable = true;
            if self.conns[i].phase == Phase::Connecting {
                if !connected(&self.conns[i].stream, i) {
                    return;
                }
                let tls = self.conns[i].tls.is_some();
                self.conns[i].phase = if tls { Phase::Tls } else { Phase::Handshake };
            }
            flush(&mut self.conns[i], i);
        }
        if !readable || self.conns[i].phase == Phase::Connecting {
            return;
        }
        if self.conns[i].tls.is_some() {
            return self.read_tls(i);
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

    /// [`drive`](Self::drive)'s reading for a TLS connection: decrypted
    /// bytes into the connection's buffer until the socket is drained; the
    /// upgrade request goes out when the TLS handshake completes.
    fn read_tls(&mut self, i: usize) {
        loop {
            let c = &mut self.conns[i];
            if c.rend == c.rbuf.len() {
                if c.rstart > 0 {
                    c.rbuf.copy_within(c.rstart..c.rend, 0);
                    c.rend -= c.rstart;
                    c.rstart = 0;
                } else {
                    let len = (c.rbuf.len() * 2).max(4096);
                    c.rbuf.resize(len, 0);
                }
            }
            let tls = c.tls.as_mut().expect("a TLS connection");
            let got = tls
                .read(&mut c.stream, &mut self.scratch, &mut c.rbuf[c.rend..])
                .unwrap_or_else(|e| fail(format!("connection {i}: {e}")));
            if c.phase == Phase::Tls && tls.ready() {
                c.phase = Phase::Handshake;
                if self.tls_info.is_none() {
                    self.tls_info = Some(tls.describe());
                }
                tls.send(&std::mem::take(&mut c.wbuf))
                    .unwrap_or_else(|e| fail(format!("connection {i}: {e}")));
            }
            match got {
                None => break,
                Some(0) => fail(format!("connection {i}: server closed the connection")),
                Some(n) => {
                    c.rend += n;
                    self.process(i);
                }
            }
        }
        flush(&mut self.conns[i], i);
    }

    /// Consumes complete handshake responses and frames from connection `i`'s buffer.
    fn process(&mut self, i: usize) {
        if self.conns[i].phase == Phase::Handshake {
            let c = &mut self.conns[i];
            let data = &c.rbuf[c.rstart..c.rend];
            let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            if !data.starts_with(b"HTTP/1.1 101") {
                fail(format!(
                    "connection {i}: handshake refused: {:?}",
                    String::from_utf8_lossy(&data[..end])
                ));
            }
            c.rstart += end + 4;
            c.phase = Phase::Open;
            self.pending -= 1;
            self.open += 1;
            self.send_message(i);
        }
        loop {
            let c = &mut self.conns[i];
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
            if data.len() < hlen + plen {
                break;
            }
            let opcode = b0 & 0x0F;
            let fin = b0 & 0x80 != 0;
            let payload = &data[hlen..hlen + plen];
            match opcode {
                0x2 | 0x0 => {
                    if !c.in_flight || (opcode == 0x2) != (c.got == 0) {
                        fail(format!(
                            "connection {i}: unexpected data frame (opcode {opcode})"
                        ));
                    }
                    let want = &self.pattern[c.msg_off + c.got..];
                    if payload.len() > self.args.size - c.got || payload != &want[..payload.len()] {
                        fail(format!(
                            "connection {i}: echo mismatch at message byte {} ({} payload bytes, {} expected in total)",
                            c.got,
                            payload.len(),
                            self.args.size
                        ));
                    }
                    c.got += plen;
                    if fin {
                        if c.got != self.args.size {
                            fail(format!(
                                "connection {i}: echo of {} bytes, sent {}",
                                c.got, self.args.size
                            ));
                        }
                        c.in_flight = false;
                    }
                }
                0x9 | 0xA => {} // ping/pong: not expected from an echo server; ignore.
                0x8 => fail(format!("connection {i}: server sent close {:?}", payload)),
                _ => fail(format!("connection {i}: unexpected opcode {opcode:#x}")),
            }
            c.rstart += hlen + plen;
            if c.rstart == c.rend {
                c.rstart = 0;
                c.rend = 0;
            }
            if !self.conns[i].in_flight {
                self.on_echo(i);
            }
        }
    }

    fn on_echo(&mut self, i: usize) {
        let rtt = self.conns[i].sent_at.elapsed();
        if self.conns[i].seq == i + 1 {
            self.echoed_once += 1;
        }
        if self.measuring {
            self.completed += 1;
            self.latencies
                .push(rtt.as_nanos().min(u32::MAX as u128) as u32);
        }
        if !self.one_shot {
            self.send_message(i);
        }
    }
}

/// A final, masked binary frame carrying `payload`.
fn masked_frame(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    masked_frame_with(0x82, payload, mask)
}

/// A masked frame with first byte `b0` (FIN, RSV bits, opcode) carrying `payload`.
fn masked_frame_with(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let size = payload.len();
    let mut f = Vec::with_capacity(size + 14);
    f.push(b0);
    if size < 126 {
        f.push(0x80 | size as u8);
    } else if size <= 0xFFFF {
        f.push(0x80 | 126);
        f.extend_from_slice(&(size as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(size as u64).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(j, b)| b ^ mask[j & 3]));
    f
}

fn flush(c: &mut Conn, i: usize) {
    if c.phase == Phase::Connecting {
        return;
    }
    if let Some(tls) = &mut c.tls {
        // Records the socket refused stay queued in the session.
        c.writable = tls
            .flush(&mut c.stream)
            .unwrap_or_else(|e| fail(format!("connection {i}: write: {e}")));
        return;
    }
    if !c.writable {
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

/// Whether a non-blocking connect has completed (then `TCP_NODELAY` is
/// set); `Err` when it failed.
fn connect_done(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => {
            let _ = stream.set_nodelay(true);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// [`connect_done`] for connection `i`, where a failed connect is fatal.
fn connected(stream: &TcpStream, i: usize) -> bool {
    connect_done(stream).unwrap_or_else(|e| fail(format!("connection {i}: {e}")))
}

/// One read into `buf` (retried when interrupted): `Ok(None)` when the
/// socket has nothing now, `Ok(Some(0))` at end of stream.
fn read_now(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match stream.read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// [`read_now`] for connection `i`, where end of stream or an error is
/// fatal (servers under test never close first).
fn read_some(stream: &mut TcpStream, buf: &mut [u8], i: usize) -> Option<usize> {
    match read_now(stream, buf) {
        Ok(Some(0)) => fail(format!("connection {i}: server closed the connection")),
        Ok(n) => n,
        Err(e) => fail(format!("connection {i}: read: {e}")),
    }
}

/// Writes as much of `data` as the socket takes and returns how much that
/// was (less than all of it when the socket would block).
fn write_now(stream: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    let mut sent = 0;
    while sent < data.len() {
        match stream.write(&data[sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// [`write_now`] for connection `i`, where a failed write is fatal.
fn write_some(stream: &mut TcpStream, data: &[u8], i: usize) -> usize {
    write_now(stream, data).unwrap_or_else(|e| fail(format!("connection {i}: write: {e}")))
}

fn main() {
    let args = parse_args();
    let mut pattern = vec![0u8; PATTERN_LEN];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in pattern.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    let idle = args.mode == "idle";
    if idle {
        let want = args.conns as u64 + 64;
        let _ = rlimit_raise(want);
    }
    if args.mode == "http" {
        http::run(args);
        return;
    }
    if args.mode == "hostile" {
        let _ = rlimit_raise(args.attackers as u64 + 64);
        hostile::run(args);
        return;
    }
    if args.mode.starts_with("fanout") {
        let _ = rlimit_raise(args.conns as u64 + 64);
        if args.mode == "fanout" {
            fanout::run(args);
        } else {
            fanout::run_memory(args);
        }
        return;
    }
    if args.deflate {
        pmd::run(args);
        return;
    }
    let rss_before = match (idle, args.pids.first()) {
        (true, Some(&pid)) => rss_bytes(pid),
        (true, None) => fail("idle mode needs --pid"),
        _ => 0,
    };
    let tls = args
        .tls
        .as_deref()
        .map(|cert| TlsClient::new(cert, args.addr).unwrap_or_else(|e| fail(e)));
    let mut g = Gen {
        scratch: if tls.is_some() {
            vec![0; tls::SCRATCH]
        } else {
            Vec::new()
        },
        tls,
        tls_info: None,
        poll: Poll::new().expect("poll"),
        conns: Vec::with_capacity(args.conns),
        frames: Vec::new(),
        pattern,
        rng: 0x2545_F491_4F6C_DD1D,
        measuring: false,
        one_shot: idle,
        latencies: Vec::new(),
        completed: 0,
        open: 0,
        echoed_once: 0,
        pending: 0,
        args,
    };
    g.frames = (0..FRAMES)
        .map(|k| {
            let off = (k * 4093 + 17) % (PATTERN_LEN - g.args.size);
            let mask = (g.next_rand() as u32).to_ne_bytes();
            (off, masked_frame(&g.pattern[off..off + g.args.size], mask))
        })
        .collect();
    let mut events = Events::with_capacity(1024);
    let setup_deadline = Instant::now() + Duration::from_secs(60);
    // Open every connection, at most MAX_PENDING handshakes at a time.
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
    if idle {
        std::thread::sleep(Duration::from_secs(1));
        let pid = g.args.pids[0];
        let rss_after = rss_bytes(pid);
        let per = (rss_after as f64 - rss_before as f64) / g.args.conns as f64;
        println!(
            "conns={} rss_before={} rss_after={} bytes_per_conn={:.0}{}",
            g.args.conns,
            rss_before,
            rss_after,
            per,
            g.tls_info
                .as_deref()
                .map_or(String::new(), |t| format!(" tls={t}"))
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
    let extra = g
        .tls_info
        .as_deref()
        .map_or(String::new(), |t| format!(" tls={t}"));
    report(
        g.completed,
        elapsed,
        std::mem::take(&mut g.latencies),
        (cpu0, cpu1, own),
        &extra,
    );
}

/// Prints the result line of `echo` and `http` mode: with the server's CPU
/// seconds at the window's start and end (`--pid`), and the load
/// generator's own CPU seconds in the window (`client_busy=`, its share of
/// one core: near 1, it may be what limits the rate); `extra` (`key=value`
/// pairs, each after a space) goes before `verified=ok`. Latencies in
/// nanoseconds.
fn report(
    completed: u64,
    elapsed: f64,
    lat: Vec<u32>,
    cpu: (Option<f64>, Option<f64>, f64),
    extra: &str,
) {
    report_scaled(completed, elapsed, lat, 1.0, cpu, extra);
}

/// [`report`] with latencies in units of `ns_per_unit` nanoseconds
/// (`fanout`: microseconds, as a message's fan-out can take seconds, past
/// what `u32` nanoseconds hold). Without a latency `p50_us` and `p99_us`
/// are `-`.
fn report_scaled(
    completed: u64,
    elapsed: f64,
    mut lat: Vec<u32>,
    ns_per_unit: f64,
    (cpu0, cpu1, own): (Option<f64>, Option<f64>, f64),
    extra: &str,
) {
    if completed == 0 {
        fail("nothing completed in the measurement window");
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        let i = ((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1));
        lat.get(i).map_or("-".into(), |&v| {
            format!("{:.1}", v as f64 * ns_per_unit / 1000.0)
        })
    };
    let rate = completed as f64 / elapsed;
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => format!(
            " server_cpu_s={:.3} cpu_us_per_msg={:.3}",
            b - a,
            (b - a) * 1e6 / completed as f64
        ),
        _ => String::new(),
    };
    println!(
        "msgs={} secs={:.3} msgs_per_s={:.1} p50_us={} p99_us={}{} client_busy={:.2}{} verified=ok",
        completed,
        elapsed,
        rate,
        pct(0.50),
        pct(0.99),
        cpu,
        own / elapsed,
        extra
    );
}

mod fanout;
mod hostile;
mod http;
mod pmd;
mod tls;

use tls::{Tls, TlsClient};

fn poll_once(g: &mut Gen, events: &mut Events, timeout: Duration) {
    if let Err(e) = g.poll.poll(events, Some(timeout)) {
        if e.kind() != io::ErrorKind::Interrupted {
            fail(format!("poll: {e}"));
        }
    }
    let ready: VecDeque<(usize, bool, bool)> = events
        .iter()
        .map(|e| {
            (
                e.token().0,
                e.is_readable() || e.is_read_closed() || e.is_error(),
                e.is_writable() || e.is_error(),
            )
        })
        .collect();
    for (i, r, w) in ready {
        g.drive(i, r, w);
    }
}

/// Raises this process's open-file soft limit towards `want` (up to the hard limit).
fn rlimit_raise(want: u64) -> io::Result<()> {
    // Read the limits from /proc/self/limits; raising needs setrlimit, which
    // the shell's `ulimit -n` in bench/run.sh does for us. Just check here.
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    if let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) {
        let soft: u64 = line
            .split_whitespace()
            .nth(3)
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX);
        if soft < want {
            fail(format!(
                "open-file limit {soft} is below the {want} needed: run `ulimit -n {want}` first"
            ));
        }
    }
    Ok(())
}
