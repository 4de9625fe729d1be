//! pollserve in a program that already has an event loop of its own, with
//! no runtime: the host waits on the server's descriptor, its own input
//! (stdin here; a sensor, a serial port or a pipe in practice) and its own
//! timer, all at once, with `mio` (plain `poll(2)` works the same way).
//!
//! The host never picks a polling interval for the server: it sleeps until
//! the server's descriptor is readable, its own input arrives, or the
//! earlier of its own next tick and [`Server::next_deadline`] comes. An idle
//! program uses no CPU, and no server timeout runs late.
//!
//! Type a line on stdin: it becomes the message `/` shows and is pushed to
//! every open event stream (`/events`). The host's own timer counts ticks
//! once a second.
//!
//! `cargo run --example host_loop [PORT]`, then open
//! <http://127.0.0.1:5000/> and `curl -N http://127.0.0.1:5000/events`.
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use pollserve::sse::{SseEvent, SseId};
use pollserve::{Method, Response, Server};

const SERVER: Token = Token(0);
const STDIN: Token = Token(1);

#[derive(Default)]
struct Board {
    message: String,
    ticks: u64,
    streams: Vec<SseId>,
}

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<Board>::new();
    server.route("/", Method::GET, |_req, board: &mut Board| {
        Ok(Response::text(format!(
            "message: {}\nticks: {}\n",
            board.message, board.ticks
        )))
    })?;
    server.route("/events", Method::GET, |req, board: &mut Board| {
        let (response, id) = req.accept_sse()?;
        board.streams.push(id);
        Ok(response)
    })?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;

    // The host's own poll instance: the server's descriptor and stdin.
    let mut host = Poll::new()?;
    host.registry().register(
        &mut SourceFd(&server.as_raw_fd()),
        SERVER,
        Interest::READABLE,
    )?;
    let stdin_fd = std::io::stdin().as_raw_fd();
    set_nonblocking(&std::io::stdin())?;
    let mut stdin_open = host
        .registry()
        .register(&mut SourceFd(&stdin_fd), STDIN, Interest::READABLE)
        .is_ok(); // a file or /dev/null cannot be polled: no input then
    let mut board = Board {
        message: "(nothing typed yet)".into(),
        ..Board::default()
    };
    let mut events = Events::with_capacity(8);
    let mut line = Vec::new();
    let mut next_tick = Instant::now() + Duration::from_secs(1);
    loop {
        // Sleep until whichever comes first.
        let wake_at = server
            .next_deadline()
            .map_or(next_tick, |d| d.min(next_tick));
        host.poll(
            &mut events,
            Some(wake_at.saturating_duration_since(Instant::now())),
        )?;

        // The server: whatever is ready, without blocking.
        server.poll(&mut board, Duration::ZERO)?;

        // The host's own input.
        if stdin_open && events.iter().any(|e| e.token() == STDIN) {
            stdin_open = read_lines(&mut line, |text| {
                board.message = text.to_owned();
                server.broadcast_event(&board.streams, &SseEvent::new(text));
            });
            if !stdin_open {
                host.registry().deregister(&mut SourceFd(&stdin_fd))?;
            }
        }

        // The host's own timer.
        if Instant::now() >= next_tick {
            board.ticks += 1;
            next_tick += Duration::from_secs(1);
        }
        board.streams.retain(|&id| !server.sse(id).is_closed());
    }
}

/// Reads what stdin has (it is non-blocking) and calls `on_line` for each
/// complete line; returns false at end of input.
fn read_lines(line: &mut Vec<u8>, mut on_line: impl FnMut(&str)) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match std::io::stdin().lock().read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                for &b in &buf[..n] {
                    if b == b'\n' {
                        on_line(String::from_utf8_lossy(line).trim());
                        line.clear();
                    } else if line.len() < 1024 {
                        line.push(b);
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Makes stdin non-blocking, so reading it never stalls the loop.
fn set_nonblocking(fd: &impl std::os::fd::AsFd) -> std::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}
