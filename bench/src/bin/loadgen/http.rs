//! `loadgen http`: keep-alive HTTP/1.1 GET load, every response checked.
use std::io;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::{connected, cpu_seconds, fail, read_some, report, write_some, Args, MAX_PENDING};

/// Read buffer per connection: large reads, so a 1 MiB body takes a few
/// system calls instead of wrk's 128.
const RBUF: usize = 256 * 1024;
/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

#[derive(PartialEq, Eq, Clone, Copy)]
enum State {
    Connecting,
    /// Waiting for (the rest of) the response head.
    Head,
    /// `left` body bytes still to come; `at` of them checked so far.
    Body {
        at: usize,
        left: usize,
    },
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
}

struct Load<'a> {
    request: &'a [u8],
    expect: &'a [u8],
    measuring: bool,
    completed: u64,
    total: u64,
    latencies: Vec<u32>,
}

pub fn run(args: Args) {
    let path = args
        .expect
        .as_deref()
        .unwrap_or_else(|| fail("http mode needs --expect FILE"));
    let expect = std::fs::read(path).unwrap_or_else(|e| fail(format!("read {path}: {e}")));
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: pollserve-loadgen\r\n\r\n",
        args.path, args.addr
    );
    let mut load = Load {
        request: request.as_bytes(),
        expect: &expect,
        measuring: false,
        completed: 0,
        total: 0,
        latencies: Vec::new(),
    };
    let mut poll = Poll::new().unwrap_or_else(|e| fail(format!("poll: {e}")));
    let mut conns: Vec<Conn> = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        if i >= MAX_PENDING && i % MAX_PENDING == 0 {
            // Let the listener's backlog drain before opening more.
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut stream = TcpStream::connect(args.addr)
            .unwrap_or_else(|e| fail(format!("connect {}: {e}", args.addr)));
        poll.registry()
            .register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .unwrap_or_else(|e| fail(format!("register: {e}")));
        conns.push(Conn {
            stream,
            state: State::Connecting,
            rbuf: vec![0u8; RBUF].into_boxed_slice(),
            rend: 0,
            sent_at: Instant::now(),
            writable: false,
            unsent: 0,
        });
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
                drive(load, &mut conns[i], i, readable, writable);
            }
        }
    };
    let setup_end = Instant::now() + Duration::from_secs(10);
    step(
        &mut load,
        &mut conns,
        Instant::now() + Duration::from_secs_f64(args.warmup),
    );
    while conns.iter().any(|c| c.state == State::Connecting) {
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
    load.measuring = true;
    let t0 = Instant::now();
    step(
        &mut load,
        &mut conns,
        t0 + Duration::from_secs_f64(args.secs),
    );
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = (!args.pids.is_empty()).then(|| cpu_seconds(&args.pids));
    if load.total == 0 {
        fail("no response at all");
    }
    report(load.completed, elapsed, load.latencies, cpu0, cpu1);
}

fn drive(load: &mut Load, c: &mut Conn, i: usize, readable: bool, writable: bool) {
    if writable {
        c.writable = true;
        if c.state == State::Connecting {
            if !connected(&c.stream, i) {
                return;
            }
            c.state = State::Head;
            send(load, c, i);
        } else if c.unsent > 0 {
            send_rest(load, c, i);
        }
    }
    if !readable || c.state == State::Connecting {
        return;
    }
    loop {
        let space = c.rbuf.len() - c.rend;
        let Some(n) = read_some(&mut c.stream, &mut c.rbuf[c.rend..], i) else {
            return;
        };
        c.rend += n;
        consume(load, c, i);
        // Edge-triggered: a read that did not fill the space drained the
        // socket, and new data raises a new event.
        if n < space {
            return;
        }
    }
}

/// Handles the buffered bytes of connection `i`: heads, bodies, and the next
/// request after each complete response.
fn consume(load: &mut Load, c: &mut Conn, i: usize) {
    let mut pos = 0;
    loop {
        match c.state {
            State::Connecting => unreachable!("no reads before connecting"),
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
                check_head(head, load.expect.len(), i);
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
                c.state = State::Head;
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
                send(load, c, i);
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

/// Status 200, `Content-Length` equal to the expected body, no `close`.
fn check_head(head: &str, want: usize, i: usize) {
    let parsed = parse_head(head).unwrap_or_else(|e| fail(format!("connection {i}: {e}")));
    if parsed.status != 200 {
        fail(format!(
            "connection {i}: status line {:?}",
            head.lines().next().unwrap_or("")
        ));
    }
    if parsed.close {
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

fn send(load: &mut Load, c: &mut Conn, i: usize) {
    c.sent_at = Instant::now();
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
