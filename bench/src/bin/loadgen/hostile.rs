//! `loadgen hostile`: the latency an ordinary client sees while hostile
//! connections run against the same server (see the doc comment of
//! `main.rs` for the flags and the result line).
//!
//! One thread and one mio loop hold both sides: the attack connections
//! (opened, kept going and reopened when the server closes them) and the
//! probe (one keep-alive connection, one GET at a time on a fixed schedule).
//! The blank-line flood keeps this loop busy, so between two flood writes
//! the loop looks at the probe's socket: the probe's answer waits for at
//! most one 16 KiB write, not for a whole turn of the loop.
use std::io::{self, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};

use super::http::parse_head;
use super::{connect_done, cpu_seconds, fail, read_now, rss_bytes, write_now, Args, MAX_PENDING};

/// Blank lines one flooding connection writes per turn of the loop.
const FLOOD_CHUNK: usize = 16 * 1024;
/// Pause before an attack connection the server closed (or refused) is
/// opened again: a server that closes at once meets a steady stream of new
/// connections rather than this loop spinning on connect.
const REOPEN_DELAY: Duration = Duration::from_millis(50);
/// `Content-Length` of the slow-body requests: below pollserve's and nginx's
/// default body limit (1 MiB), so the head is accepted and the body awaited.
const SLOW_BODY_LENGTH: usize = 1_000_000;
/// How often the attack connections' timers (trickled bytes, reopenings)
/// are looked at; they run in seconds, so this needs no precision.
const SCAN_EVERY: Duration = Duration::from_millis(10);
/// How often the server's VmRSS is read during the measured window.
const RSS_EVERY: Duration = Duration::from_millis(200);
/// Longest wait for every attack connection to be set up before measuring
/// anyway (the result line says how many were): on loopback a healthy
/// server sets up 1,000 in well under a second; one the flood has pinned
/// may never finish.
const SETUP_LIMIT: Duration = Duration::from_secs(3);
/// Bytes a slowloris connection trickles, one at a time: header lines that
/// never end the head (no empty line can form).
const SLOWLORIS_TRICKLE: &[u8] = b"X-a: b\r\n";
const PROBE: Token = Token(0);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Slowloris,
    SlowBody,
    Flood,
    Idle,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Slowloris, Kind::SlowBody, Kind::Flood, Kind::Idle];

    fn name(self) -> &'static str {
        match self {
            Kind::Slowloris => "slowloris",
            Kind::SlowBody => "slow_body",
            Kind::Flood => "flood",
            Kind::Idle => "idle",
        }
    }

    fn trickles(self) -> bool {
        matches!(self, Kind::Slowloris | Kind::SlowBody)
    }
}

struct Attacker {
    kind: Kind,
    /// `None` while waiting to be (re)opened at `due`.
    stream: Option<TcpStream>,
    connected: bool,
    writable: bool,
    /// Bytes of the kind's opening written so far.
    sent: usize,
    /// Idle connections: the server answered the opening request.
    answered: bool,
    /// When the next byte is trickled (slowloris, slow body) or, without a
    /// stream, when the connection is opened again.
    due: Instant,
    trickled: usize,
}

impl Attacker {
    fn established(&self) -> bool {
        self.connected && self.opening_sent() && (self.kind != Kind::Idle || self.answered)
    }

    fn opening_sent(&self) -> bool {
        self.sent == usize::MAX
    }
}

struct Attack {
    addr: SocketAddr,
    conns: Vec<Attacker>,
    /// First bytes each kind sends, indexed like `Kind::ALL`.
    openings: [Vec<u8>; 4],
    /// Status line prefix expected in answer to the idle kind's opening.
    idle_answer: &'static [u8],
    flood: Vec<u8>,
    flooders: Range<usize>,
    /// The flooding connections may be opened (once the others are set up).
    flood_on: bool,
    trickle: Duration,
    /// Connections whose connect is in flight.
    connecting: usize,
    closes: [u64; 4],
    connect_errors: u64,
    flood_bytes: u64,
    scratch: Vec<u8>,
    next_scan: Instant,
    rng: u64,
}

impl Attack {
    fn new(args: &Args) -> Attack {
        let host = args.addr;
        let slowloris = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pollserve-bench-slowloris\r\n",
            args.path
        );
        let slow_body = format!(
            "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {SLOW_BODY_LENGTH}\r\n\r\n",
            args.path
        );
        let (idle, idle_answer): (String, &'static [u8]) = match args.idle.as_str() {
            "ws" => (
                format!(
                    "GET {} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                    args.ws_path
                ),
                b"HTTP/1.1 101 ",
            ),
            "http" => (
                format!("GET {} HTTP/1.1\r\nHost: {host}\r\n\r\n", args.path),
                b"HTTP/1.1 200 ",
            ),
            other => fail(format!("--idle {other}: ws or http expected")),
        };
        let flooders = args.flooders.min(args.attackers);
        let now = Instant::now();
        let conns = (0..args.attackers)
            .map(|i| Attacker {
                // Flooders last; the rest dealt out in turn.
                kind: if i >= args.attackers - flooders {
                    Kind::Flood
                } else {
                    [Kind::Slowloris, Kind::SlowBody, Kind::Idle][i % 3]
                },
                stream: None,
                connected: false,
                writable: false,
                sent: 0,
                answered: false,
                due: now,
                trickled: 0,
            })
            .collect();
        Attack {
            addr: args.addr,
            conns,
            openings: [
                slowloris.into_bytes(),
                slow_body.into_bytes(),
                Vec::new(),
                idle.into_bytes(),
            ],
            idle_answer,
            flood: b"\r\n".repeat(FLOOD_CHUNK / 2),
            flooders: args.attackers - flooders..args.attackers,
            flood_on: false,
            trickle: Duration::from_secs_f64(args.trickle_ms / 1000.0),
            connecting: 0,
            closes: [0; 4],
            connect_errors: 0,
            flood_bytes: 0,
            scratch: vec![0; 64 * 1024],
            next_scan: now,
            rng: 0x2545_F491_4F6C_DD1D,
        }
    }

    /// A point in the next `trickle` interval, so the trickled bytes of
    /// hundreds of connections do not arrive together.
    fn spread(&mut self, now: Instant) -> Instant {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        now + self.trickle.mul_f64((self.rng % 1000) as f64 / 1000.0)
    }

    fn open(&mut self, i: usize, registry: &Registry, now: Instant) {
        let mut stream = match TcpStream::connect(self.addr) {
            Ok(s) => s,
            Err(_) => {
                self.connect_errors += 1;
                self.conns[i].due = now + REOPEN_DELAY;
                return;
            }
        };
        registry
            .register(
                &mut stream,
                Token(i + 1),
                Interest::READABLE | Interest::WRITABLE,
            )
            .unwrap_or_else(|e| fail(format!("register: {e}")));
        let due = self.spread(now);
        let c = &mut self.conns[i];
        c.stream = Some(stream);
        c.connected = false;
        c.writable = false;
        c.sent = 0;
        c.answered = false;
        c.trickled = 0;
        c.due = due;
        self.connecting += 1;
    }

    /// Connection `i` ended: closed by the server (counted per kind) or, if
    /// it never connected, refused (counted as a connect error). It is
    /// opened again after `REOPEN_DELAY`.
    fn lost(&mut self, i: usize, now: Instant) {
        let c = &mut self.conns[i];
        if c.stream.take().is_none() {
            return;
        }
        if c.connected {
            self.closes[c.kind as usize] += 1;
        } else {
            self.connecting -= 1;
            self.connect_errors += 1;
        }
        c.connected = false;
        c.due = now + REOPEN_DELAY;
    }

    fn established(&self) -> usize {
        self.conns.iter().filter(|c| c.established()).count()
    }

    /// Opens connections that are due (at most `MAX_PENDING` connecting at
    /// once) and trickles the bytes that are due.
    fn scan(&mut self, registry: &Registry, now: Instant) {
        if now < self.next_scan {
            return;
        }
        self.next_scan = now + SCAN_EVERY;
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            if c.due > now {
                continue;
            }
            if c.stream.is_none() {
                if self.connecting < MAX_PENDING && (c.kind != Kind::Flood || self.flood_on) {
                    self.open(i, registry, now);
                }
            } else if c.kind.trickles() && c.opening_sent() {
                let byte = match c.kind {
                    Kind::Slowloris => SLOWLORIS_TRICKLE[c.trickled % SLOWLORIS_TRICKLE.len()],
                    _ => b'x',
                };
                let stream = self.conns[i].stream.as_mut().expect("checked above");
                match write_now(stream, &[byte]) {
                    // A full send buffer (the server reads nothing) skips
                    // this byte; the next one is tried an interval later.
                    Ok(_) => {}
                    Err(_) => {
                        self.lost(i, now);
                        continue;
                    }
                }
                let c = &mut self.conns[i];
                c.trickled += 1;
                c.due = now + self.trickle;
            }
        }
    }

    /// Readiness of attack connection `i`.
    fn ready(&mut self, i: usize, readable: bool, writable: bool, now: Instant) {
        let c = &self.conns[i];
        let Some(stream) = c.stream.as_ref() else {
            return; // an event of a connection closed earlier in this batch
        };
        if writable && !c.connected {
            match connect_done(stream) {
                Ok(true) => {
                    self.conns[i].connected = true;
                    self.connecting -= 1;
                }
                Ok(false) => return,
                Err(_) => return self.lost(i, now),
            }
        }
        let c = &mut self.conns[i];
        if !c.connected {
            return;
        }
        if writable {
            c.writable = true;
        }
        if c.writable && !c.opening_sent() {
            let opening = &self.openings[c.kind as usize];
            let stream = c.stream.as_mut().expect("checked above");
            match write_now(stream, &opening[c.sent..]) {
                Ok(n) => {
                    c.sent += n;
                    if c.sent == opening.len() {
                        c.sent = usize::MAX;
                    } else {
                        c.writable = false;
                    }
                }
                Err(_) => return self.lost(i, now),
            }
        }
        if readable {
            self.drain(i, now);
        }
    }

    /// Reads and drops whatever the server sent on connection `i` (answers
    /// to slow bodies, idle connections' one response); end of stream or an
    /// error means the server closed it.
    fn drain(&mut self, i: usize, now: Instant) {
        loop {
            let c = &mut self.conns[i];
            let Some(stream) = c.stream.as_mut() else {
                return;
            };
            match read_now(stream, &mut self.scratch) {
                Ok(None) => return,
                Ok(Some(0)) | Err(_) => return self.lost(i, now),
                Ok(Some(n)) => {
                    if c.kind == Kind::Idle && !c.answered {
                        let got = &self.scratch[..n];
                        if !got.starts_with(self.idle_answer) {
                            let line = got.split(|&b| b == b'\r').next().unwrap_or(got);
                            fail(format!(
                                "idle connection {i}: answered {:?}, expected {:?}",
                                String::from_utf8_lossy(line),
                                String::from_utf8_lossy(self.idle_answer).trim_end()
                            ));
                        }
                        c.answered = true;
                    }
                }
            }
        }
    }

    fn flooding(&self) -> bool {
        self.conns[self.flooders.clone()]
            .iter()
            .any(|c| c.connected && c.writable)
    }

    /// One write of blank lines on every flooding connection that can take
    /// it, with a look at the probe after each.
    fn flood(&mut self, probe: &mut Probe, registry: &Registry) {
        for i in self.flooders.clone() {
            let c = &mut self.conns[i];
            if !(c.connected && c.writable) {
                continue;
            }
            let stream = c.stream.as_mut().expect("connected");
            match stream.write(&self.flood) {
                Ok(n) => self.flood_bytes += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.lost(i, Instant::now()),
            }
            probe.check(registry, Instant::now());
        }
    }
}

/// The probe in flight.
struct Current {
    seq: u64,
    /// When it was started (its connect included when it needed a new
    /// connection): its latency and its timeout count from here.
    began: Instant,
    /// The request is written (or being written) on the current connection.
    sent: bool,
}

struct Probe {
    addr: SocketAddr,
    request: Vec<u8>,
    expect: Vec<u8>,
    stream: Option<TcpStream>,
    connected: bool,
    writable: bool,
    /// Request bytes not yet written.
    unsent: usize,
    rbuf: Vec<u8>,
    rend: usize,
    interval: Duration,
    timeout: Duration,
    /// Time probe 0 is scheduled at; `None` until the probe starts.
    t0: Option<Instant>,
    next: u64,
    current: Option<Current>,
    /// Ticks of the measured window: probes started from its end on are not
    /// sent, and the ones skipped inside it are counted as missed.
    window: Range<u64>,
    latencies: Vec<u64>,
    failures: u64,
    /// Ticks of the window skipped because the probe before was still in
    /// flight: the server held this client below the rate.
    missed: u64,
    answered: u64,
    connects: u64,
}

impl Probe {
    fn new(args: &Args, expect: Vec<u8>) -> Probe {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: pollserve-bench-probe\r\n\r\n",
            args.path, args.addr
        );
        let rate = args.rate;
        let first = (args.warmup * rate).ceil() as u64;
        Probe {
            addr: args.addr,
            request: request.into_bytes(),
            rbuf: vec![0; (expect.len() + 16 * 1024).max(64 * 1024)],
            expect,
            stream: None,
            connected: false,
            writable: false,
            unsent: 0,
            rend: 0,
            interval: Duration::from_secs_f64(1.0 / rate),
            timeout: Duration::from_secs_f64(args.timeout_ms / 1000.0),
            t0: None,
            next: 0,
            current: None,
            window: first..first + (args.secs * rate).round() as u64,
            latencies: Vec::new(),
            failures: 0,
            missed: 0,
            answered: 0,
            connects: 0,
        }
    }

    fn scheduled(&self, seq: u64) -> Option<Instant> {
        Some(self.t0? + self.interval.mul_f64(seq as f64))
    }

    /// When the probe next needs the loop: its timeout, or the next start.
    fn deadline(&self) -> Option<Instant> {
        match &self.current {
            Some(c) => Some(c.began + self.timeout),
            None => self.scheduled(self.next),
        }
    }

    /// Every tick of the window has passed and its probe has an outcome.
    fn settled(&self) -> bool {
        self.next >= self.window.end && self.current.is_none()
    }

    /// Records the outcome, now, of the probe started at tick `seq`: it
    /// counts when it started before the window's end and ended after the
    /// window's start (so a probe that began in the warm-up and timed out
    /// in the window is one of the window's failures).
    fn record(&mut self, seq: u64, latency: Option<Duration>) {
        let opened = self.scheduled(self.window.start);
        if seq >= self.window.end || opened.is_none_or(|at| Instant::now() < at) {
            return;
        }
        match latency {
            Some(d) => self.latencies.push(d.as_nanos() as u64),
            None => self.failures += 1,
        }
    }

    /// The probe in flight failed (timeout, refused, closed, error status):
    /// recorded, and the connection dropped so the next probe gets a fresh one.
    fn failed(&mut self) {
        if let Some(c) = self.current.take() {
            self.record(c.seq, None);
        }
        self.stream = None;
    }

    /// Times out the probe in flight; with none in flight, starts a probe
    /// once a tick of the schedule has come: at the latest tick passed, the
    /// ones before it that went by while the previous probe was in flight
    /// counted as missed. No probe starts after the window.
    fn service(&mut self, registry: &Registry, now: Instant) {
        if self
            .current
            .as_ref()
            .is_some_and(|c| now >= c.began + self.timeout)
        {
            self.failed();
        }
        if self.current.is_some() || self.next >= self.window.end {
            return;
        }
        let (Some(t0), Some(at)) = (self.t0, self.scheduled(self.next)) else {
            return;
        };
        if at > now {
            return;
        }
        let latest = ((now - t0).as_secs_f64() / self.interval.as_secs_f64()) as u64;
        let seq = latest.max(self.next);
        let skipped = self.next.max(self.window.start)..seq.min(self.window.end);
        self.missed += skipped.end.saturating_sub(skipped.start);
        if seq >= self.window.end {
            self.next = self.window.end;
            return;
        }
        self.next = seq + 1;
        self.current = Some(Current {
            seq,
            began: now,
            sent: false,
        });
        self.send(registry);
    }

    fn send(&mut self, registry: &Registry) {
        if self.stream.is_none() {
            let mut stream = match TcpStream::connect(self.addr) {
                Ok(s) => s,
                Err(_) => return self.failed(),
            };
            registry
                .register(&mut stream, PROBE, Interest::READABLE | Interest::WRITABLE)
                .unwrap_or_else(|e| fail(format!("register: {e}")));
            self.stream = Some(stream);
            self.connected = false;
            self.writable = false;
            self.rend = 0;
            self.connects += 1;
        }
        if let Some(c) = self.current.as_mut() {
            if !c.sent {
                c.sent = true;
                self.unsent = self.request.len();
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        if !(self.connected && self.writable) || self.unsent == 0 {
            return;
        }
        let from = self.request.len() - self.unsent;
        let stream = self.stream.as_mut().expect("connected");
        match write_now(stream, &self.request[from..]) {
            Ok(n) => {
                self.unsent -= n;
                self.writable = self.unsent == 0;
            }
            Err(_) => self.failed(),
        }
    }

    /// A look at the probe from the flood loop: its timers, and a read if an
    /// answer is awaited.
    fn check(&mut self, registry: &Registry, now: Instant) {
        self.service(registry, now);
        if self.current.as_ref().is_some_and(|c| c.sent) && self.connected {
            self.ready(true, false);
        }
    }

    /// Readiness of the probe's connection.
    fn ready(&mut self, readable: bool, writable: bool) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        if writable && !self.connected {
            match connect_done(stream) {
                Ok(true) => self.connected = true,
                Ok(false) => return,
                Err(_) => return self.failed(),
            }
        }
        if writable {
            self.writable = true;
            self.flush();
        }
        if !readable || !self.connected {
            return;
        }
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            if self.rend == self.rbuf.len() {
                fail("probe: response larger than expected");
            }
            match read_now(stream, &mut self.rbuf[self.rend..]) {
                Ok(None) => return,
                Ok(Some(0)) | Err(_) => {
                    // Closed between probes (e.g. a keep-alive timeout): the
                    // next probe opens a new connection and nothing failed.
                    if self.current.as_ref().is_some_and(|c| c.sent) {
                        self.failed();
                    }
                    self.stream = None;
                    return;
                }
                Ok(Some(n)) => {
                    self.rend += n;
                    self.consume(Instant::now());
                }
            }
        }
    }

    /// Completes the probe in flight once its whole response is buffered.
    fn consume(&mut self, now: Instant) {
        let data = &self.rbuf[..self.rend];
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            return;
        };
        let head = std::str::from_utf8(&data[..end])
            .unwrap_or_else(|_| fail("probe: response head is not UTF-8"));
        let head = parse_head(head).unwrap_or_else(|e| fail(format!("probe: {e}")));
        let Some(current) = self.current.as_ref().filter(|c| c.sent) else {
            fail("probe: a response nobody asked for");
        };
        if head.status != 200 {
            // An overloaded server may refuse (503 and the like): a failure
            // of this probe, not of the harness.
            return self.failed();
        }
        if head.content_length != Some(self.expect.len()) || head.chunked {
            fail(format!(
                "probe: Content-Length {:?}, expected {}",
                head.content_length,
                self.expect.len()
            ));
        }
        let body = end + 4;
        if self.rend < body + self.expect.len() {
            return;
        }
        if self.rend > body + self.expect.len() {
            fail("probe: bytes after the response (nothing was requested)");
        }
        if self.rbuf[body..self.rend] != self.expect[..] {
            fail("probe: body differs from the expected file");
        }
        let latency = now - current.began;
        let seq = current.seq;
        self.current = None;
        self.rend = 0;
        self.answered += 1;
        self.record(seq, Some(latency));
        if head.close {
            self.stream = None;
        }
    }
}

struct Hostile {
    poll: Poll,
    registry: Registry,
    events: Events,
    attack: Attack,
    probe: Probe,
}

impl Hostile {
    /// Sets up the attack: every connection but the flooding ones, then
    /// those (so a flood that pins the server does not keep the others from
    /// being set up), each step until done or `SETUP_LIMIT` has passed.
    /// Returns how many were set up.
    fn set_up(&mut self) -> usize {
        let others = self.attack.conns.len() - self.attack.flooders.len();
        for (want, flood_on) in [(others, false), (self.attack.conns.len(), true)] {
            self.attack.flood_on = flood_on;
            self.attack.next_scan = Instant::now();
            let end = Instant::now() + SETUP_LIMIT;
            while self.attack.established() < want && Instant::now() < end {
                self.turn(Instant::now() + SCAN_EVERY);
            }
        }
        self.attack.established()
    }

    /// One turn of the loop: timers, a poll (not waiting while a flooding
    /// connection can write), the events, one flood write per flooder.
    fn turn(&mut self, until: Instant) {
        let now = Instant::now();
        self.probe.service(&self.registry, now);
        self.attack.scan(&self.registry, now);
        let timeout = if self.attack.flooding() {
            Duration::ZERO
        } else {
            let wake = [self.probe.deadline(), Some(self.attack.next_scan)]
                .into_iter()
                .flatten()
                .fold(until, Instant::min);
            wake.saturating_duration_since(now)
        };
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                fail(format!("poll: {e}"));
            }
        }
        let now = Instant::now();
        for ev in self.events.iter() {
            let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
            let writable = ev.is_writable() || ev.is_error();
            match ev.token() {
                PROBE => self.probe.ready(readable, writable),
                Token(t) => self.attack.ready(t - 1, readable, writable, now),
            }
        }
        self.attack.flood(&mut self.probe, &self.registry);
    }
}

pub fn run(args: Args) {
    let path = args
        .expect
        .as_deref()
        .unwrap_or_else(|| fail("hostile mode needs --expect FILE"));
    let expect = std::fs::read(path).unwrap_or_else(|e| fail(format!("read {path}: {e}")));
    if !(args.rate > 0.0 && args.timeout_ms > 0.0 && args.trickle_ms > 0.0) {
        fail("--rate, --timeout-ms and --trickle-ms must be positive");
    }
    let poll = Poll::new().unwrap_or_else(|e| fail(format!("poll: {e}")));
    let registry = poll
        .registry()
        .try_clone()
        .unwrap_or_else(|e| fail(format!("poll registry: {e}")));
    let mut h = Hostile {
        poll,
        registry,
        events: Events::with_capacity(1024),
        attack: Attack::new(&args),
        probe: Probe::new(&args, expect),
    };

    let setup_established = h.set_up();

    // Then the probe: warm-up, then the measured window, then until every
    // probe scheduled in the window has its outcome.
    let t0 = Instant::now();
    h.probe.t0 = Some(t0);
    let window_start = t0 + Duration::from_secs_f64(args.warmup);
    let window_end = window_start + Duration::from_secs_f64(args.secs);
    while Instant::now() < window_start {
        h.turn(window_start);
    }
    let cpu0 = (!args.pids.is_empty()).then(|| cpu_seconds(&args.pids));
    let rss = |pids: &[u32]| pids.iter().map(|&p| rss_bytes(p)).sum::<u64>();
    let mut rss_max = rss(&args.pids);
    let mut next_rss = Instant::now() + RSS_EVERY;
    while Instant::now() < window_end {
        h.turn(window_end.min(next_rss));
        if Instant::now() >= next_rss {
            rss_max = rss_max.max(rss(&args.pids));
            next_rss += RSS_EVERY;
        }
    }
    let elapsed = (Instant::now() - window_start).as_secs_f64();
    let cpu1 = (!args.pids.is_empty()).then(|| cpu_seconds(&args.pids));
    rss_max = rss_max.max(rss(&args.pids));
    let established = h.attack.established();
    while !h.probe.settled() {
        h.turn(Instant::now() + SCAN_EVERY);
    }

    let p = &h.probe;
    if args.attackers == 0 && p.latencies.is_empty() {
        fail("no probe answered without any attacker");
    }
    if p.latencies.is_empty() && p.failures == 0 {
        fail("no probe ended in the measured window");
    }
    // Failures count as the timeout: a lower bound of what they would have
    // taken, so a p99 at the timeout means more than 1 % failed.
    let timeout_ns = p.timeout.as_nanos() as u64;
    let mut all = p.latencies.clone();
    all.extend(std::iter::repeat_n(timeout_ns, p.failures as usize));
    all.sort_unstable();
    let pct = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)] as f64 / 1000.0;
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => format!(" server_cpu_s={:.3} busy={:.3}", b - a, (b - a) / elapsed),
        _ => String::new(),
    };
    let a = &h.attack;
    let closes: String = Kind::ALL
        .iter()
        .map(|k| format!(" closes_{}={}", k.name(), a.closes[*k as usize]))
        .collect();
    println!(
        "probes={} answered={} failures={} p50_us={:.1} p99_us={:.1} max_us={:.1} timeout_us={:.0} \
         secs={elapsed:.3}{cpu} rss_kib={} attackers={} flooders={} setup_established={setup_established} \
         established={established} closes={}{closes} connect_errors={} flood_mib={:.1} probe_connects={} missed={} verified=ok",
        all.len(),
        p.latencies.len(),
        p.failures,
        pct(0.50),
        pct(0.99),
        all[all.len() - 1] as f64 / 1000.0,
        timeout_ns as f64 / 1000.0,
        rss_max / 1024,
        args.attackers,
        a.flooders.len(),
        a.closes.iter().sum::<u64>(),
        a.connect_errors,
        a.flood_bytes as f64 / (1 << 20) as f64,
        p.connects,
        p.missed,
    );
}
