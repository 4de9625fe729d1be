//! `loadgen http`: HTTP/1.1 GET load, keep-alive or one request per
//! connection (`--close`), over TCP or TLS (`--tls`), every response checked.
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};

use super::tls::{Tls, TlsClient, SCRATCH};
use super::{
    connected, cpu_seconds, fail, own_cpu_seconds, read_some, report, write_some, Args, MAX_PENDING,
};

/// Read buffer per connection: large reads, so a 1 MiB body takes a few
/// system calls instead of wrk's 128.
const RBUF: usize = 256 * 1024;
/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

#[derive(PartialEq, Eq, Clone, Copy)]
enum State {
    Connecting,
    /// The TLS handshake (with `--tls`); the request goes out when it completes.
    Handshake,
    /// Waiting for (the rest of) the response head.
    Head,
    /// `left` body bytes still to come; `at` of them checked so far.
    Body {
        at: usize,
        left: usize,
    },
    /// `--close`: the response is complete; waiting for the server to end
    /// the connection.
    Closing,
}

struct Conn {
    stream: TcpStream,
    state: State,
    rbuf: Box<[u8]>,
    rend: usize,
    sent_at: Instant,
    writable: bool,
    /// Request bytes not yet written (only when the socket refused them).
    unsent: usize,
    /// The TLS session (with `--tls`); every byte then goes through it.
    tls: Option<Box<Tls>>,
}

struct Load<'a> {
    request: &'a [u8],
    expect: &'a [u8],
    measuring: bool,
    completed: u64,
    total: u64,
    latencies: Vec<u32>,
    addr: SocketAddr,
    /// `--close`: a new connection for every request.
    close: bool,
    tls: Option<TlsClient>,
    /// Where TLS records are read and decrypted (empty without `--tls`).
    scratch: Vec<u8>,
    /// What the first TLS connection negotiated.
    tls_info: Option<String>,
    /// Connections opened, the first ones included.
    opened: u64,
}

impl Load<'_> {
    /// A connection to the server, registered under `token`, not yet connected.
    fn open(&mut self, registry: &Registry, token: Token, rbuf: Box<[u8]>) -> Conn {
        let mut stream = TcpStream::connect(self.addr)
            .unwrap_or_else(|e| fail(format!("connect {}: {e}", self.addr)));
        registry
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .unwrap_or_else(|e| fail(format!("register: {e}")));
        self.opened += 1;
        Conn {
            stream,
            state: State::Connecting,
            rbuf,
            rend: 0,
            sent_at: Instant::now(),
            writable: false,
            unsent: 0,
            tls: self.tls.as_ref().map(|t| Box::new(t.session())),
        }
    }
}

pub fn run(args: Args) {
    let path = args
        .expect
        .as_deref()
        .unwrap_or_else(|| fail("http mode needs --expect FILE"));
    let expect = std::fs::read(path).unwrap_or_else(|e| fail(format!("read {path}: {e}")));
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: pollserve-loadgen\r\n{}\r\n",
        args.path,
        args.addr,
        if args.close {
            "Connection: close\r\n"
        } else {
            ""
        }
    );
    let tls = args
        .tls
        .as_deref()
        .map(|cert| TlsClient::new(cert, args.addr).unwrap_or_else(|e| fail(e)));
    let mut load = Load {
        request: request.as_bytes(),
        expect: &expect,
        measuring: false,
        completed: 0,
        total: 0,
        latencies: Vec::new(),
        addr: args.addr,
        close: args.close,
        scratch: if tls.is_some() {
            vec![0; SCRATCH]
        } else {
            Vec::new()
        },
        tls,
        tls_info: None,
        opened: 0,
    };
    let mut poll = Poll::new().unwrap_or_else(|e| fail(format!("poll: {e}")));
    let mut conns: Vec<Conn> = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        if i >= MAX_PENDING && i % MAX_PENDING == 0 {
            // Let the listener's backlog drain before opening more.
            std::thread::sleep(Duration::from_millis(20));
        }
        let rbuf = vec![0u8; RBUF].into_boxed_slice();
        conns.push(load.open(poll.registry(), Token(i), rbuf));
    }
    let mut events = Events::with_capacity(1024);
    let mut step = |load: &mut Load, conns: &mut [Conn], until: Instant| {
        while Instant::now() < until {
            if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(10))) {
                if e.kind() != io::ErrorKind::Interrupted {
                    fail(format!("poll: {e}"));
                }
            }
            for ev in events.iter() {
                let i = ev.token().0;
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                let writable = ev.is_writable() || ev.is_error();
                drive(load, poll.registry(), &mut conns[i], i, readable, writable);
            }
        }
    };
    let setup_end = Instant::now() + Duration::from_secs(10);
    step(
        &mut load,
        &mut conns,
        Instant::now() + Duration::from_secs_f64(args.warmup),
    );
    // Keep-alive connections are all set up before measuring (with
    // `--close`, opening connections is what is measured).
    while !args.close
        && conns
            .iter()
            .any(|c| matches!(c.state, State::Connecting | State::Handshake))
    {
        if Instant::now() > setup_end {
            fail("connections not established within 10 s");
        }
        step(
            &mut load,
            &mut conns,
            Instant::now() + Duration::from_millis(50),
        );
    }
    let cpu0 = (!args.pids.is_empty()).then(|| cpu_seconds(&args.pids));
    let own0 = own_cpu_seconds();
    load.measuring = true;
    let t0 = Instant::now();
    step(
        &mut load,
        &mut conns,
        t0 + Duration::from_secs_f64(args.secs),
    );
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = (!args.pids.is_empty()).then(|| cpu_seconds(&args.pids));
    let own = own_cpu_seconds() - own0;
    if load.total == 0 {
        fail("no response at all");
    }
    let mut extra = String::new();
    if args.close {
        extra += &format!(" conns_opened={}", load.opened);
    }
    if let Some(t) = &load.tls_info {
        extra += &format!(" tls={t}");
    }
    report(
        load.completed,
        elapsed,
        load.latencies,
        (cpu0, cpu1, own),
        &extra,
    );
}

fn drive(
    load: &mut Load,
    registry: &Registry,
    c: &mut Conn,
    i: usize,
    readable: bool,
    writable: bool,
) {
    if writable {
        c.writable = true;
        if c.state == State::Connecting {
            if !connected(&c.stream, i) {
                return;
            }
            if c.tls.is_some() {
                // The ClientHello, queued when the session was made.
                c.state = State::Handshake;
                flush_tls(c, i);
            } else {
                c.state = State::Head;
                send(load, c, i);
            }
        } else if c.tls.is_some() {
            flush_tls(c, i);
        } else if c.unsent > 0 {
            send_rest(load, c, i);
        }
    }
    if !readable || c.state == State::Connecting {
        return;
    }
    if c.tls.is_some() {
        return read_tls(load, registry, c, i);
    }
    loop {
        let space = c.rbuf.len() - c.rend;
        let got = if c.state == State::Closing {
            super::read_now(&mut c.stream, &mut c.rbuf[c.rend..])
                .unwrap_or_else(|e| fail(format!("connection {i}: read: {e}")))
        } else {
            read_some(&mut c.stream, &mut c.rbuf[c.rend..], i)
        };
        let Some(n) = got else {
            return;
        };
        if n == 0 {
            // Only a `Closing` connection gets here (`read_some` fails on an end).
            return reopen(load, registry, c, i);
        }
        c.rend += n;
        consume(load, c, i);
        // Edge-triggered: a read that did not fill the space drained the
        // socket, and new data raises a new event. Not so for an end of
        // stream that arrived with the data: a `Closing` connection reads on
        // until it sees the end or `WouldBlock`.
        if n < space && c.state != State::Closing {
            return;
        }
    }
}

/// [`drive`]'s reading for a TLS connection: decrypted bytes until the
/// socket is drained; the request goes out when the handshake completes.
fn read_tls(load: &mut Load, registry: &Registry, c: &mut Conn, i: usize) {
    loop {
        let tls = c.tls.as_mut().expect("a TLS connection");
        let got = tls
            .read(&mut c.stream, &mut load.scratch, &mut c.rbuf[c.rend..])
            .unwrap_or_else(|e| fail(format!("connection {i}: {e}")));
        if c.state == State::Handshake && tls.ready() {
            if load.tls_info.is_none() {
                load.tls_info = Some(tls.describe());
            }
            c.state = State::Head;
            // Queued behind the client's Finished: one write for both.
            send(load, c, i);
        }
        match got {
            None => break,
            Some(0) if c.state == State::Closing => return reopen(load, registry, c, i),
            Some(0) => fail(format!("connection {i}: server closed the connection")),
            Some(n) => {
                c.rend += n;
                consume(load, c, i);
                if c.state == State::Closing {
                    // An end of stream that came with the response raises
                    // no new event: read on until it is seen or `WouldBlock`.
                    c.tls.as_mut().expect("a TLS connection").read_on();
                }
            }
        }
    }
    flush_tls(c, i);
}

/// Writes what the TLS session has queued.
fn flush_tls(c: &mut Conn, i: usize) {
    let tls = c.tls.as_mut().expect("a TLS connection");
    c.writable = tls
        .flush(&mut c.stream)
        .unwrap_or_else(|e| fail(format!("connection {i}: write: {e}")));
}

/// `--close`: the server ended connection `i` after its response; the next
/// request goes on a new connection under the same token.
fn reopen(load: &mut Load, registry: &Registry, c: &mut Conn, i: usize) {
    let _ = registry.deregister(&mut c.stream);
    let rbuf = std::mem::take(&mut c.rbuf);
    *c = load.open(registry, Token(i), rbuf);
}

/// Handles the buffered bytes of connection `i`: heads, bodies, and the next
/// request after each complete response.
fn consume(load: &mut Load, c: &mut Conn, i: usize) {
    let mut pos = 0;
    loop {
        match c.state {
            State::Connecting | State::Handshake => {
                unreachable!("no response before the request")
            }
            State::Closing => {
                if pos != c.rend {
                    fail(format!(
                        "connection {i}: bytes after the response (nothing was requested)"
                    ));
                }
                break;
            }
            State::Head => {
                let data = &c.rbuf[pos..c.rend];
                let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                    if data.len() > MAX_HEAD {
                        fail(format!(
                            "connection {i}: response head over {MAX_HEAD} bytes"
                        ));
                    }
                    break;
                };
                let head = std::str::from_utf8(&data[..end])
                    .unwrap_or_else(|_| fail(format!("connection {i}: head is not UTF-8")));
                check_head(head, load.expect.len(), load.close, i);
                pos += end + 4;
                c.state = State::Body {
                    at: 0,
                    left: load.expect.len(),
                };
            }
            State::Body { at, left } => {
                let n = left.min(c.rend - pos);
                if c.rbuf[pos..pos + n] != load.expect[at..at + n] {
                    fail(format!(
                        "connection {i}: body differs from the expected file near byte {at}"
                    ));
                }
                pos += n;
                if n < left {
                    c.state = State::Body {
                        at: at + n,
                        left: left - n,
                    };
                    break;
                }
                load.total += 1;
                if load.measuring {
                    load.completed += 1;
                    let rtt = c.sent_at.elapsed().as_nanos().min(u32::MAX as u128) as u32;
                    load.latencies.push(rtt);
                }
                if pos != c.rend {
                    fail(format!(
                        "connection {i}: bytes after the response (nothing was requested)"
                    ));
                }
                if load.close {
                    c.state = State::Closing;
                } else {
                    c.state = State::Head;
                    send(load, c, i);
                }
            }
        }
    }
    c.rbuf.copy_within(pos..c.rend, 0);
    c.rend -= pos;
}

/// What the load generators need from a response head.
pub struct ResponseHead {
    pub status: u16,
    pub content_length: Option<usize>,
    /// `Connection: close`: the server ends the connection after this response.
    pub close: bool,
    pub chunked: bool,
}

/// Parses a response head (without its final empty line); `Err` says what
/// is malformed.
pub fn parse_head(head: &str) -> Result<ResponseHead, String> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("status line {status_line:?}"))?;
    let mut parsed = ResponseHead {
        status,
        content_length: None,
        close: false,
        chunked: false,
    };
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.content_length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            parsed.close = true;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = true;
        }
    }
    Ok(parsed)
}

/// Status 200, `Content-Length` equal to the expected body, no `close`
/// unless the request asked for it (`close_asked`).
fn check_head(head: &str, want: usize, close_asked: bool, i: usize) {
    let parsed = parse_head(head).unwrap_or_else(|e| fail(format!("connection {i}: {e}")));
    if parsed.status != 200 {
        fail(format!(
            "connection {i}: status line {:?}",
            head.lines().next().unwrap_or("")
        ));
    }
    if parsed.close && !close_asked {
        fail(format!(
            "connection {i}: server ends the keep-alive connection"
        ));
    }
    if parsed.chunked {
        fail(format!(
            "connection {i}: chunked response (Content-Length expected)"
        ));
    }
    if parsed.content_length != Some(want) {
        fail(format!(
            "connection {i}: Content-Length {:?}, expected {want}",
            parsed.content_length
        ));
    }
}

/// Sends the request on connection `i`. Latency counts from here, or with
/// `--close` from the connect (the connection is part of each request).
fn send(load: &mut Load, c: &mut Conn, i: usize) {
    if !load.close {
        c.sent_at = Instant::now();
    }
    if let Some(tls) = &mut c.tls {
        tls.send(load.request)
            .unwrap_or_else(|e| fail(format!("connection {i}: {e}")));
        return flush_tls(c, i);
    }
    c.unsent = load.request.len();
    if c.writable {
        send_rest(load, c, i);
    }
}

fn send_rest(load: &mut Load, c: &mut Conn, i: usize) {
    let from = load.request.len() - c.unsent;
    c.unsent -= write_some(&mut c.stream, &load.request[from..], i);
    c.writable = c.unsent == 0;
}
