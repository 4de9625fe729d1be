//! A whole connection driven over an in-memory transport, for property
//! tests and the `connection` fuzz target: the driver's buffering, phases
//! and answers, with the socket replaced by byte queues the caller controls.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::{event::Source, Interest, Registry, Token};

use super::conn::{Conn, Readiness};
use super::transport::Transport;
use super::{BodySink, Route, Server};
use crate::error::HttpError;
use crate::method::Method;
use crate::response::Response;
use crate::ws::{WsId, WsOptions};

/// The two byte queues of an in-memory stream, seen from the server.
#[derive(Default)]
struct Pipe {
    /// Bytes the peer has sent that the server has not read.
    input: VecDeque<u8>,
    /// The peer closed its side.
    eof: bool,
    /// Everything the server wrote.
    output: Vec<u8>,
    /// Bytes the server may still write before it hears `WouldBlock`.
    room: usize,
    /// The server shut its write side.
    write_shut: bool,
}

struct MemTransport(Rc<RefCell<Pipe>>);

impl Source for MemTransport {
    fn register(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
        Ok(())
    }
    fn reregister(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
        Ok(())
    }
    fn deregister(&mut self, _: &Registry) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for MemTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut pipe = self.0.borrow_mut();
        if pipe.input.is_empty() {
            return if pipe.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(pipe.input.len());
        for (dst, src) in buf.iter_mut().zip(pipe.input.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut pipe = self.0.borrow_mut();
        if pipe.write_shut {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if pipe.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut written = 0;
        for b in bufs {
            let n = b.len().min(pipe.room);
            pipe.output.extend_from_slice(&b[..n]);
            pipe.room -= n;
            written += n;
            if n < b.len() {
                break;
            }
        }
        Ok(written)
    }

    fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if how != Shutdown::Read {
            self.0.borrow_mut().write_shut = true;
        }
        Ok(())
    }
}

/// Application state of the test server: the WebSockets to echo on.
#[derive(Default)]
struct Echo {
    sockets: Vec<WsId>,
}

struct CountingSink(usize);

impl BodySink for CountingSink {
    fn write(&mut self, chunk: &[u8]) -> Result<(), HttpError> {
        self.0 += chunk.len();
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<Response, HttpError> {
        Ok(Response::text(format!("{} bytes", self.0)))
    }
}

fn test_server() -> Server<Echo> {
    let mut server = Server::<Echo>::with_config(
        super::ServerConfig::default()
            .max_body_size(4096)
            .max_head_size(2048)
            .max_request_line(512),
    );
    let routes = [
        Route::new("/hello", Method::GET, |_, _| Ok(Response::text("hello"))),
        Route::new("/echo", [Method::POST, Method::PUT], |req, _| {
            Ok(Response::bytes("application/octet-stream", req.body()))
        }),
        Route::new("/item/<id>", Method::GET, |req, _| {
            Ok(Response::text(req.param("id").unwrap_or_default()))
        }),
        Route::new("/stream", Method::GET, |_, _| {
            Ok(Response::chunked(
                "text/plain",
                (0..3).map(|i| format!("part {i}\n")),
            ))
        }),
        Route::new("/ws", Method::GET, |req, app: &mut Echo| {
            let mut options = WsOptions::embedded();
            options.protocol.max_message_size = 1024;
            let (response, id) = req.websocket().options(options).accept()?;
            app.sockets.push(id);
            Ok(response)
        }),
        Route::new("/events", Method::GET, |req, _| Ok(req.accept_sse()?.0)),
        Route::new("/big", Method::GET, |_, _| {
            Ok(Response::bytes(
                "application/octet-stream",
                vec![b'b'; 4 << 20],
            ))
        }),
        Route::streaming("/upload", Method::POST, 8192, |_, _| {
            Ok(Box::new(CountingSink(0)))
        }),
    ];
    server.add_routes(routes).expect("valid routes");
    server
}

/// What [`run_connection_measured`] saw.
pub struct ConnectionRun {
    /// Every byte the server wrote.
    pub output: Vec<u8>,
    /// The largest the connection's write buffer grew (its capacity).
    pub peak_output_buffer: usize,
    /// The most bytes written in one poll round.
    pub peak_round_write: usize,
}

/// Runs one connection of a test server (routes `/hello`, `/echo`,
/// `/item/<id>`, `/stream`, `/big` (4 MiB), `/ws` echoing messages, `/events`,
/// streaming `/upload`) over memory: `pieces` arrive one per poll round,
/// the server may write `write_room` bytes per round, the peer closes after
/// the last piece, and the rounds go on until the connection ends (or
/// stops making progress, then its timeout is run).
/// Returns every byte the server wrote (`Date` is the Unix epoch, so
/// runs compare equal).
pub fn run_connection(pieces: &[&[u8]], write_room: usize) -> Vec<u8> {
    run_connection_measured(pieces, write_room).output
}

/// One poll round for the connection in slot `key` as the event loop runs
/// it: the round begins, the socket is ready both ways (and hung up when
/// `hangup`), the connection is driven.
fn drive_round<S>(server: &mut Server<S>, key: usize, app: &mut S, now: Instant, hangup: bool) {
    server.shared.end_round();
    server.shared.begin_round(std::time::SystemTime::UNIX_EPOCH);
    if let Some(conn) = server.conns.get_mut(key) {
        conn.on_ready(Readiness {
            readable: true,
            writable: true,
            hangup,
        });
    }
    server.drive(key, app, now);
}

/// A connection over memory (a [`Pipe`]) added to `server`: its slot and
/// its pipe.
fn attach_memory_connection<S>(server: &mut Server<S>) -> (usize, Rc<RefCell<Pipe>>) {
    let pipe = Rc::new(RefCell::new(Pipe::default()));
    let peer = "127.0.0.1:40000".parse().expect("address");
    let key = server.conns.insert(Conn::new(
        Box::new(MemTransport(pipe.clone())),
        peer,
        0,
        1,
        Instant::now(),
    ));
    (key, pipe)
}

/// [`run_connection`], also reporting the buffer peaks it saw.
pub fn run_connection_measured(pieces: &[&[u8]], write_room: usize) -> ConnectionRun {
    let mut peak_output_buffer = 0;
    let mut peak_round_write = 0;
    let mut server = test_server();
    let mut app = Echo::default();
    let now = Instant::now();
    let (key, pipe) = attach_memory_connection(&mut server);
    let mut pieces = pieces.iter();
    // Rounds after the last piece in which nothing was written.
    let mut idle_rounds = 0;
    while idle_rounds < 3 && server.conns.contains(key) {
        let written = pipe.borrow().output.len();
        {
            let mut p = pipe.borrow_mut();
            match pieces.next() {
                Some(piece) => p.input.extend(piece.iter()),
                None => p.eof = true,
            }
            p.room = write_room;
        }
        let hangup = pipe.borrow().eof;
        drive_round(&mut server, key, &mut app, now, hangup);
        if let Some(conn) = server.conns.get(key) {
            peak_output_buffer = peak_output_buffer.max(conn.output_buffered());
        }
        peak_round_write = peak_round_write.max(pipe.borrow().output.len() - written);
        for key in std::mem::take(&mut server.resume) {
            server.drive(key, &mut app, now);
        }
        // The program's loop: echo every message.
        for &id in &app.sockets {
            while let Some(message) = server.ws(id).receive() {
                let _ = server.ws(id).send(&message);
            }
        }
        app.sockets.retain(|&id| !server.ws(id).is_closed());
        let p = pipe.borrow();
        if p.eof && p.output.len() == written {
            idle_rounds += 1;
        }
    }
    // Whatever is left meets its timeout.
    if server.conns.contains(key) {
        pipe.borrow_mut().room = usize::MAX;
        server.sweep(now + Duration::from_secs(3600));
    }
    let output = std::mem::take(&mut pipe.borrow_mut().output);
    ConnectionRun {
        output,
        peak_output_buffer,
        peak_round_write,
    }
}

/// What [`run_drip_broadcast`] saw.
pub struct DripRun {
    /// Every byte the server wrote after the handshake's response head.
    pub output: Vec<u8>,
    /// The most bytes queued for the peer and not yet written.
    pub peak_queued: usize,
    /// The most output memory the connection held (its
    /// `output_buffered`: write buffer capacity, frame queue, transport).
    pub peak_output_buffer: usize,
    /// Broadcasts the socket did not take (it was dropped, or refused one).
    pub refused: usize,
}

/// A WebSocket with send bound `bound` that gets `per_round` broadcasts of
/// `payload` bytes each poll round (binary, every byte its round number),
/// while its peer reads nothing for `silent` rounds and then exactly what
/// the broadcasts add per round, for `rounds` rounds in all: a drip reader
/// with a steady backlog, over memory.
pub fn run_drip_broadcast(
    bound: usize,
    payload: usize,
    per_round: usize,
    silent: usize,
    rounds: usize,
) -> DripRun {
    let mut server = Server::<Echo>::new();
    server
        .route("/drip", Method::GET, move |req, app: &mut Echo| {
            let options = WsOptions {
                max_send_buffer: bound,
                ..WsOptions::default()
            };
            let (response, id) = req.websocket().options(options).accept()?;
            app.sockets.push(id);
            Ok(response)
        })
        .expect("valid route");
    let mut app = Echo::default();
    let now = Instant::now();
    let (key, pipe) = attach_memory_connection(&mut server);
    pipe.borrow_mut().input.extend(
        b"GET /drip HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    let drive = |server: &mut Server<Echo>, app: &mut Echo, room: usize| {
        pipe.borrow_mut().room = room;
        drive_round(server, key, app, now, false);
    };
    drive(&mut server, &mut app, usize::MAX);
    let head_len = {
        let p = pipe.borrow();
        let head = p.output.windows(4).position(|w| w == b"\r\n\r\n");
        head.map_or(p.output.len(), |at| at + 4)
    };
    let Some(&id) = app.sockets.first() else {
        return DripRun {
            output: Vec::new(),
            peak_queued: 0,
            peak_output_buffer: 0,
            refused: rounds * per_round,
        };
    };
    let wire = payload + if payload < 126 { 2 } else { 4 };
    let mut run = DripRun {
        output: Vec::new(),
        peak_queued: 0,
        peak_output_buffer: 0,
        refused: 0,
    };
    for round in 0..rounds {
        let data = vec![round as u8; payload];
        for _ in 0..per_round {
            if server.broadcast_binary(&[id], &data) != 1 {
                run.refused += 1;
            }
        }
        let room = if round < silent { 0 } else { per_round * wire };
        drive(&mut server, &mut app, room);
        if let Some(conn) = server.conns.get(key) {
            run.peak_queued = run.peak_queued.max(conn.output_queued());
            run.peak_output_buffer = run.peak_output_buffer.max(conn.output_buffered());
        }
    }
    run.output = pipe.borrow().output[head_len..].to_vec();
    run
}
