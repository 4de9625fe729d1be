//! One HTTP connection: buffers, the request/response cycle, timeouts.

use std::borrow::Cow;
use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use mio::net::TcpStream;

use super::buf::ReadBuf;
use super::{BodySink, RouteHandler, Shared};
use crate::files::{self, Condition, FileBody, FileError, Preconditions, RangeDecision, Resolved};
use crate::headers::Headers;
use crate::method::Method;
use crate::proto::http::{
    check_body_length, parse_request_head, BodyDecoder, BodyFraming, HttpLimits, RequestHead,
    Version,
};
use crate::proto::ws::Event;
use crate::request::{ConnId, Request, RouteParams};
use crate::response::{Body, Response};
use crate::router::{allow_header_value, RouteMatch, Router};
use crate::sse::{SseConn, SseSendError};
use crate::status::StatusCode;
use crate::url::{decode_path, split_target, QueryParams};
use crate::ws::{CloseStatus, WsConn, WsError, WsEvent};

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 * 1024;
/// Pipelined requests are not parsed while this much output waits: a client
/// that sends but never reads cannot make the server buffer without bound.
const HIGH_WATER: usize = 256 * 1024;
/// A streamed body (file, chunked iterator) is pulled while less than this waits.
const LOW_WATER: usize = 64 * 1024;
/// Most bytes handed to one `sendfile` call.
#[cfg(target_os = "linux")]
const SENDFILE_CHUNK: usize = 1 << 20;
/// File bytes read per step of a streamed file (without `sendfile`).
const FILE_CHUNK: usize = 64 * 1024;
/// WebSocket messages from this size on are written from the caller's buffer
/// when the socket is idle (vectored write) rather than copied first.
const INLINE_WS: usize = 2048;
/// Bodies up to this size are copied after the head and sent in one write;
/// larger ones are sent from where they are with a vectored write.
const INLINE_BODY: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Reading a request body.
    Body,
    /// The last response is being written; then the write side is shut.
    Closing,
    /// Write side shut; draining input until EOF or the linger deadline.
    Lingering(Instant),
    /// Upgraded to WebSocket; see `ws`.
    Ws,
    /// An event stream the program writes to; see `sse`.
    Sse,
}

/// A response body still being sent after its head.
enum OutBody {
    Bytes(Cow<'static, [u8]>, usize),
    File(FileBody),
    Stream {
        iter: Box<dyn Iterator<Item = Vec<u8>>>,
        chunked: bool,
    },
}

pub(crate) struct Conn {
    pub stream: TcpStream,
    peer: SocketAddr,
    id: ConnId,
    rbuf: ReadBuf,
    wbuf: Vec<u8>,
    wpos: usize,
    out: Option<OutBody>,
    phase: Phase,
    pub readable: bool,
    pub writable: bool,
    /// The poller reported the peer's hang-up (or an error): keep reading
    /// until `read` says EOF instead of stopping at a short read.
    pub hangup: bool,
    peer_eof: bool,
    pub deadline: Option<Instant>,
    req: Request,
    decoder: Option<BodyDecoder>,
    /// When the first byte of the current request arrived.
    request_start: Option<Instant>,
    /// Bytes of the current request (head and body) as received.
    request_size: usize,
    /// Last time bytes moved in either direction.
    last_io: Instant,
    /// WebSocket state once upgraded.
    pub ws: Option<Box<WsConn>>,
    /// Event-stream state once the response head is out.
    pub sse: Option<Box<SseConn>>,
    /// The socket is gone but received messages wait for the program.
    pub dead: bool,
    /// The poll in which this connection was last listed in `ws_ready`.
    ready_epoch: u64,
    /// Where the body of the current request goes when its route streams it.
    sink: Option<Box<dyn BodySink>>,
    /// Body size limit of the current request (the route's, for a sink).
    body_limit: u64,
}

impl Conn {
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        slot: u32,
        generation: u32,
        now: Instant,
    ) -> Conn {
        let id = ConnId { slot, generation };
        Conn {
            stream,
            peer,
            id,
            rbuf: ReadBuf::default(),
            wbuf: Vec::new(),
            wpos: 0,
            out: None,
            phase: Phase::Head,
            readable: false,
            writable: false,
            hangup: false,
            peer_eof: false,
            deadline: None,
            req: Request {
                head: RequestHead::default(),
                path: String::new(),
                query: QueryParams::default(),
                params: RouteParams::default(),
                body: Vec::new(),
                peer,
                conn: id,
            },
            decoder: None,
            request_start: None,
            request_size: 0,
            last_io: now,
            ws: None,
            sse: None,
            dead: false,
            ready_epoch: 0,
            sink: None,
            body_limit: 0,
        }
    }

    /// Idle: between requests with nothing buffered either way.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Head
            && self.rbuf.is_empty()
            && !self.has_output()
            && self.request_start.is_none()
    }

    fn pending_len(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Whether `flush` has something to write: buffered bytes, a large
    /// in-memory body, or (on Linux, where it is sent with `sendfile`) a file.
    fn has_output(&self) -> bool {
        self.wpos < self.wbuf.len()
            || matches!(self.out, Some(OutBody::Bytes(..)))
            || (cfg!(target_os = "linux") && matches!(self.out, Some(OutBody::File(_))))
    }

    /// Does all the work the connection can do now. Returns false when it
    /// must be closed.
    pub fn drive<S>(
        &mut self,
        routes: &mut Router<RouteHandler<S>>,
        shared: &mut Shared,
        state: &mut S,
        now: Instant,
    ) -> bool {
        // Borrow the shared read buffer when this connection holds no partial
        // input: idle connections then own no buffer at all.
        let lent = self.rbuf.capacity() == 0;
        if lent {
            std::mem::swap(&mut self.rbuf, &mut shared.scratch);
        }
        let keep = self.run(routes, shared, state, now);
        if lent {
            let rest = if self.rbuf.is_empty() {
                ReadBuf::default()
            } else {
                self.rbuf.split_off_remaining()
            };
            std::mem::swap(&mut self.rbuf, &mut shared.scratch);
            self.rbuf = rest;
        } else if self.rbuf.is_empty() {
            self.rbuf = ReadBuf::default();
        }
        if self.wpos == self.wbuf.len() && self.wbuf.capacity() > 4 * INLINE_BODY {
            self.wbuf = Vec::new();
            self.wpos = 0;
        }
        if keep {
            self.update_deadline(shared);
        }
        keep
    }

    fn run<S>(
        &mut self,
        routes: &mut Router<RouteHandler<S>>,
        shared: &mut Shared,
        state: &mut S,
        now: Instant,
    ) -> bool {
        loop {
            let mut progress = false;
            if self.writable && self.has_output() {
                match self.flush() {
                    Ok(p) => {
                        if p {
                            self.last_io = now;
                        }
                        progress |= p;
                    }
                    Err(e) => {
                        log::debug!("{}: write failed: {e}", self.peer);
                        return false;
                    }
                }
            }
            if self.out.is_some() && self.pending_len() < LOW_WATER {
                match self.fill_body() {
                    Ok(p) => progress |= p,
                    Err(e) => {
                        log::warn!("{}: response body failed mid-stream: {e}", self.peer);
                        return false;
                    }
                }
            }
            if self.phase == Phase::Closing && !self.has_output() && self.out.is_none() {
                if self.peer_eof {
                    return false;
                }
                let _ = self.stream.shutdown(Shutdown::Write);
                self.phase = Phase::Lingering(now + shared.config.linger_timeout);
                self.rbuf.clear();
                progress = true;
            }
            if matches!(self.phase, Phase::Head | Phase::Body) {
                progress |= self.process_input(routes, shared, state, now);
            }
            if self.phase == Phase::Ws && self.process_ws(&mut shared.ws_pool, now) {
                progress = true;
                self.mark_ws_ready(shared);
            }
            if self.readable && !self.peer_eof && self.wants_read() {
                match self.rbuf.read_from(&mut self.stream, READ_CHUNK) {
                    Ok((0, _)) => {
                        self.peer_eof = true;
                        progress = true;
                    }
                    Ok((_, filled)) => {
                        self.last_io = now;
                        // Edge-triggered readiness: a short read drained the
                        // socket, and more data will raise a new event, so the
                        // read that would only say EAGAIN is skipped. A
                        // pending hang-up is not a new edge: read on to EOF.
                        if !filled && !self.hangup {
                            self.readable = false;
                        }
                        if matches!(self.phase, Phase::Lingering(_) | Phase::Sse) {
                            // Nothing is expected from the client; discard.
                            self.rbuf.clear();
                        }
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => progress = true,
                    Err(e) => {
                        log::debug!("{}: read failed: {e}", self.peer);
                        return false;
                    }
                }
            }
            if !progress {
                break;
            }
        }
        if self.peer_eof {
            match self.phase {
                Phase::Lingering(_) => return false,
                Phase::Ws => {
                    if let Some(ws) = self.ws.as_mut() {
                        ws.set_status(CloseStatus::Abnormal);
                    }
                    return false;
                }
                Phase::Sse => return false,
                Phase::Head | Phase::Body
                    if self.out.is_none() && self.pending_len() < HIGH_WATER =>
                {
                    // Everything complete has been answered; what is left can
                    // never become a request.
                    if !self.has_output() {
                        return false;
                    }
                    self.phase = Phase::Closing;
                }
                _ => {}
            }
        }
        true
    }

    fn wants_read(&self) -> bool {
        match self.phase {
            Phase::Head | Phase::Body => self.out.is_none() && self.pending_len() < HIGH_WATER,
            Phase::Closing => false,
            Phase::Lingering(_) | Phase::Sse => true,
            Phase::Ws => self
                .ws
                .as_ref()
                .is_some_and(|ws| !ws.paused() && self.pending_len() < ws.max_send_buffer),
        }
    }

    /// Feeds buffered bytes to the WebSocket session while the program keeps
    /// up; queues messages for `receive` and records how the session ends.
    fn process_ws(&mut self, pool: &mut crate::ws::BufferPool, now: Instant) -> bool {
        let Some(ws) = self.ws.as_mut() else {
            return false;
        };
        let mut progress = false;
        ws.deferred = false;
        while !self.rbuf.is_empty()
            && !ws.paused()
            && self.wbuf.len() - self.wpos < ws.max_send_buffer
        {
            if !ws.inbox.is_empty() && ws.session.next_frame_fails(self.rbuf.data()) {
                // Deliver what came before the bad frame first (Autobahn
                // 3.x/4.x/5.15 expect those echoes ahead of the close).
                ws.deferred = true;
                break;
            }
            pool.lend(&mut ws.session);
            let feed = ws.session.feed(self.rbuf.data_mut(), now, &mut self.wbuf);
            if feed.consumed == 0 && feed.event.is_none() {
                break;
            }
            self.rbuf.consume(feed.consumed);
            progress = true;
            match feed.event {
                Some(Event::Message(m)) => ws.push(WsEvent::Message(m)),
                Some(Event::Pong(p)) => ws.push(WsEvent::Pong(p)),
                Some(Event::Close { code, reason }) => {
                    ws.set_status(CloseStatus::Peer { code, reason })
                }
                Some(Event::Error(e)) => ws.set_status(CloseStatus::Failed(e)),
                None => {}
            }
        }
        if let Some(buf) = ws.session.take_idle_buffer() {
            // Between messages the buffer goes back: idle sockets hold none.
            pool.put(buf);
        }
        if ws.session.wants_shutdown() {
            // Flush the close frame, then shut the write side and drain.
            self.phase = Phase::Closing;
            progress = true;
        }
        progress
    }

    /// Lists this WebSocket in [`Server::ws_ready`] for the current poll, once.
    pub fn mark_ws_ready(&mut self, shared: &mut Shared) {
        if self.ws.is_some() && self.ready_epoch != shared.epoch {
            self.ready_epoch = shared.epoch;
            shared.ws_ready.push(crate::ws::WsId(self.id));
        }
    }

    /// Whether the WebSocket has stopped reading because the program has not
    /// taken its messages (it resumes when `receive` makes room).
    pub fn ws_paused(&self) -> bool {
        self.ws.as_ref().is_some_and(|ws| ws.paused())
    }

    /// Appends what `write` produces to an event stream and pushes it out.
    pub fn sse_send(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), crate::sse::SseError>,
    ) -> Result<(), SseSendError> {
        if self.dead || self.phase != Phase::Sse {
            return Err(match self.sse {
                Some(_) => SseSendError::Closed,
                None => SseSendError::NotEventStream,
            });
        }
        let Some(sse) = self.sse.as_ref() else {
            return Err(SseSendError::NotEventStream);
        };
        if self.pending_len() > sse.options.max_send_buffer {
            return Err(SseSendError::Backpressure);
        }
        write(&mut self.wbuf)?;
        self.flush_outside_loop().map_err(|_| SseSendError::Io)
    }

    /// Writes what is queued when the program (not the poll loop) sent
    /// something. Progress restarts the send timeout, and for event streams
    /// the heartbeat interval ("after this long without an event").
    fn flush_outside_loop(&mut self) -> io::Result<()> {
        if self.writable && self.flush()? {
            self.last_io = Instant::now();
        }
        Ok(())
    }

    /// Ends an event stream: queued events are flushed, then the connection closes.
    pub fn sse_close(&mut self, linger: std::time::Duration) {
        if self.phase == Phase::Sse {
            self.phase = Phase::Closing;
            if self.flush_outside_loop().is_ok() && !self.has_output() {
                let _ = self.stream.shutdown(Shutdown::Write);
                self.phase = Phase::Lingering(Instant::now() + linger);
            }
        }
    }

    /// Whether the connection is an event stream that can still be written.
    pub fn sse_open(&self) -> bool {
        !self.dead && self.phase == Phase::Sse
    }

    /// Sends a data message. A large one going to an idle, writable socket
    /// is written straight from `payload` with one vectored write (header +
    /// payload), so only what the kernel does not take is copied.
    pub fn ws_send_data(&mut self, text: bool, payload: &[u8]) -> Result<(), WsError> {
        let direct = self.writable
            && self.pending_len() == 0
            && self.out.is_none()
            && payload.len() >= INLINE_WS;
        if !direct || self.dead {
            return self.ws_send(|s, out| {
                if text {
                    s.send_text_bytes(payload, out)
                } else {
                    s.send_binary(payload, out)
                }
            });
        }
        let Some(ws) = self.ws.as_mut() else {
            return Err(WsError::NotWebSocket);
        };
        self.wbuf.clear();
        self.wpos = 0;
        if !ws
            .session
            .write_data_header(text, payload.len(), &mut self.wbuf)?
        {
            return self.ws_send(|s, out| {
                if text {
                    s.send_text_bytes(payload, out)
                } else {
                    s.send_binary(payload, out)
                }
            });
        }
        let head = self.wbuf.len();
        match self
            .stream
            .write_vectored(&[IoSlice::new(&self.wbuf), IoSlice::new(payload)])
        {
            Ok(n) => {
                self.last_io = Instant::now();
                if n >= head {
                    self.wbuf.clear();
                    self.wbuf.extend_from_slice(&payload[n - head..]);
                } else {
                    self.wpos = n;
                    self.wbuf.extend_from_slice(payload);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.writable = false;
                self.wbuf.extend_from_slice(payload);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                self.wbuf.extend_from_slice(payload)
            }
            Err(_) => {
                if let Some(ws) = self.ws.as_mut() {
                    ws.set_status(CloseStatus::Abnormal);
                }
                return Err(WsError::Io);
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        Ok(())
    }

    /// Runs `send` against the session and pushes the result to the socket.
    pub fn ws_send(
        &mut self,
        send: impl FnOnce(
            &mut crate::proto::ws::WsSession,
            &mut Vec<u8>,
        ) -> Result<(), crate::proto::ws::SendError>,
    ) -> Result<(), WsError> {
        if self.dead {
            return Err(WsError::Closed);
        }
        let pending = self.pending_len();
        let Some(ws) = self.ws.as_mut() else {
            return Err(WsError::NotWebSocket);
        };
        if pending > ws.max_send_buffer {
            ws.set_status(CloseStatus::Abnormal);
            return Err(WsError::Backpressure);
        }
        send(&mut ws.session, &mut self.wbuf)?;
        if ws.session.wants_shutdown() && self.phase == Phase::Ws {
            self.phase = Phase::Closing;
        }
        if self.flush_outside_loop().is_err() {
            if let Some(ws) = self.ws.as_mut() {
                ws.set_status(CloseStatus::Abnormal);
            }
            return Err(WsError::Io);
        }
        Ok(())
    }

    /// Parses and answers as many buffered requests as the output bound allows.
    fn process_input<S>(
        &mut self,
        routes: &mut Router<RouteHandler<S>>,
        shared: &mut Shared,
        state: &mut S,
        now: Instant,
    ) -> bool {
        let mut progress = false;
        while self.out.is_none() && self.pending_len() < HIGH_WATER && !self.rbuf.is_empty() {
            match self.phase {
                Phase::Head => {
                    self.request_start.get_or_insert(now);
                    match parse_request_head(
                        self.rbuf.data(),
                        &shared.config.limits,
                        &mut self.req.head,
                    ) {
                        Ok(None) => break,
                        Err(e) => {
                            self.rbuf.clear();
                            self.respond_error(e.status, e.reason, shared, now);
                            return true;
                        }
                        Ok(Some(n)) => {
                            progress = true;
                            self.rbuf.consume(n);
                            self.request_size = n;
                            self.req.body.clear();
                            self.sink = None;
                            self.body_limit = shared.config.limits.max_body_size;
                            if self.req.head.framing != BodyFraming::None {
                                if let Some(response) = self.answer_before_body(routes, shared) {
                                    // The body stays unread: the connection
                                    // closes after the answer.
                                    self.req.head.keep_alive = false;
                                    self.write_response(response, shared, now);
                                    return true;
                                }
                                if let Err(response) = self.open_sink(routes, state) {
                                    self.req.head.keep_alive = false;
                                    self.write_response(response, shared, now);
                                    return true;
                                }
                            }
                            if let Err(e) =
                                check_body_length(self.req.head.framing, self.body_limit)
                            {
                                self.rbuf.clear();
                                self.respond_error(e.status, e.reason, shared, now);
                                return true;
                            }
                            match BodyDecoder::new(self.req.head.framing) {
                                None => self.dispatch(routes, shared, state, now),
                                Some(d) => {
                                    if self.req.head.expect_continue && self.rbuf.is_empty() {
                                        self.wbuf
                                            .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                                    }
                                    self.decoder = Some(d);
                                    self.phase = Phase::Body;
                                }
                            }
                        }
                    }
                }
                Phase::Body => {
                    let Some(decoder) = self.decoder.as_mut() else {
                        self.phase = Phase::Head;
                        continue;
                    };
                    let limits = HttpLimits {
                        max_body_size: self.body_limit,
                        ..shared.config.limits
                    };
                    match decoder.decode(self.rbuf.data(), &mut self.req.body, &limits) {
                        Err(e) => {
                            self.rbuf.clear();
                            self.respond_error(e.status, e.reason, shared, now);
                            return true;
                        }
                        Ok((n, done)) => {
                            progress |= n > 0;
                            self.rbuf.consume(n);
                            self.request_size += n;
                            if let Err(response) = self.drain_to_sink() {
                                self.rbuf.clear();
                                self.decoder = None;
                                self.req.head.keep_alive = false;
                                self.write_response(response, shared, now);
                                return true;
                            }
                            if done {
                                self.decoder = None;
                                self.complete_request(routes, shared, state, now);
                            } else if n == 0 {
                                break;
                            }
                        }
                    }
                }
                Phase::Closing | Phase::Lingering(_) | Phase::Ws | Phase::Sse => break,
            }
        }
        // A body that completes with no bytes left (Content-Length reached at
        // the end of the buffer) is handled by the loop above; a head whose
        // body is all in flight waits here.
        if self.phase == Phase::Body {
            if let Some(BodyDecoder::Length(0)) = self.decoder {
                self.decoder = None;
                self.complete_request(routes, shared, state, now);
                progress = true;
            }
        }
        progress
    }

    /// For a route that streams its body: matches the route now (the head is
    /// in, the body is not), opens its sink and takes its body limit. `Err`
    /// is the response refusing the request before its body is read.
    /// The final answer to a request with a body that is due before the body
    /// is read, if any:
    /// - missing credentials (server-wide [`require_authentication`]) on a
    ///   streaming route, whose opener must not run for such a client;
    /// - for a client waiting on `Expect: 100-continue`, missing credentials,
    ///   an unknown path or a method the path does not allow: it gets `401`,
    ///   `404` or `405` instead of `100 Continue` and never sends the body.
    ///
    /// CORS preflights, `OPTIONS *` and paths that do not decode take the
    /// normal route (their answers come after the body).
    ///
    /// [`require_authentication`]: crate::Server::require_authentication
    fn answer_before_body<S>(
        &self,
        routes: &Router<RouteHandler<S>>,
        shared: &Shared,
    ) -> Option<Response> {
        let method = self.req.method();
        let headers = &self.req.head.headers;
        let waiting = self.req.head.expect_continue;
        let auth = shared.auth.as_ref().filter(|a| !a.check(headers));
        // The common case (credentials fine, nobody waiting) looks nothing up.
        if (auth.is_none() && !waiting)
            || self.req.head.target == "*"
            || shared
                .cors
                .as_ref()
                .is_some_and(|c| c.preflight(headers, method).is_some())
        {
            return None;
        }
        let (raw_path, _) = split_target(&self.req.head.target);
        let decoded = decode_path(raw_path).ok()?;
        let found = routes.find(method, decoded.segments(), decoded.trailing_slash());
        let streaming = matches!(
            found,
            RouteMatch::Found {
                handler: RouteHandler::Streaming { .. },
                ..
            }
        );
        let mut response = match (auth, found) {
            (Some(auth), _) if waiting || streaming => auth.unauthorized(),
            (Some(_), _) => return None,
            // From here on the client waits for `100 Continue`.
            (None, RouteMatch::Found { .. }) => return None,
            (None, RouteMatch::MethodNotAllowed { allow }) => {
                method_not_allowed(&allow_header_value(allow))
            }
            (None, RouteMatch::NotFound) => match (&shared.static_root, method) {
                // A GET or HEAD with a body for a static path: served as usual.
                (Some(_), Method::GET | Method::HEAD) => return None,
                (Some(root), _) if served_statically(root, &files::segments_of(&decoded)) => {
                    method_not_allowed("GET, HEAD")
                }
                _ => Response::error(StatusCode::NOT_FOUND, "Not Found"),
            },
        };
        if let Some(cors) = &shared.cors {
            cors.apply(headers, &mut response);
        }
        Some(response)
    }

    fn open_sink<S>(
        &mut self,
        routes: &mut Router<RouteHandler<S>>,
        state: &mut S,
    ) -> Result<(), Response> {
        let method = self.req.method();
        let (raw_path, query) = split_target(&self.req.head.target);
        let Ok(decoded) = decode_path(raw_path) else {
            return Ok(());
        };
        let RouteMatch::Found {
            handler: RouteHandler::Streaming { open, max_body },
            params,
            ..
        } = routes.find_mut(method, decoded.segments(), decoded.trailing_slash())
        else {
            return Ok(());
        };
        self.req.path = decoded.path();
        self.req.query = QueryParams::parse(query.unwrap_or(""));
        self.req.params.clear();
        for (name, value) in params.iter() {
            self.req.params.push(name, value);
        }
        self.body_limit = *max_body;
        let req = &self.req;
        match catch_unwind(AssertUnwindSafe(|| open(req, state))) {
            Ok(Ok(sink)) => {
                self.sink = Some(sink);
                Ok(())
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(panicked("body sink opener", method, raw_path)),
        }
    }

    /// Hands decoded body bytes to the sink, if the request has one.
    fn drain_to_sink(&mut self) -> Result<(), Response> {
        let Some(sink) = self.sink.as_mut() else {
            return Ok(());
        };
        if self.req.body.is_empty() {
            return Ok(());
        }
        let body = &self.req.body;
        let result = catch_unwind(AssertUnwindSafe(|| sink.write(body)));
        self.req.body.clear();
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.sink = None;
                Err(e.into())
            }
            Err(_) => {
                self.sink = None;
                Err(panicked(
                    "body sink",
                    self.req.method(),
                    &self.req.head.target,
                ))
            }
        }
    }

    /// The whole request is in: finish its sink, or route it to a handler.
    fn complete_request<S>(
        &mut self,
        routes: &mut Router<RouteHandler<S>>,
        shared: &mut Shared,
        state: &mut S,
        now: Instant,
    ) {
        let Some(sink) = self.sink.take() else {
            return self.dispatch(routes, shared, state, now);
        };
        shared.activity.handled += 1;
        let response = match catch_unwind(AssertUnwindSafe(|| sink.finish())) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => e.into(),
            Err(_) => panicked("body sink", self.req.method(), &self.req.head.target),
        };
        self.write_response(response, shared, now);
    }

    /// Routes a complete request and queues its response.
    fn dispatch<S>(
        &mut self,
        routes: &mut Router<RouteHandler<S>>,
        shared: &mut Shared,
        state: &mut S,
        now: Instant,
    ) {
        let method = self.req.method();
        let preflight = shared
            .cors
            .as_ref()
            .and_then(|c| c.preflight(&self.req.head.headers, method));
        let mut response = if let Some(r) = preflight {
            r
        } else if let Some(auth) = shared
            .auth
            .as_ref()
            .filter(|a| !a.check(&self.req.head.headers))
        {
            auth.unauthorized()
        } else if self.req.head.target == "*" {
            // `OPTIONS *` asks about the server as a whole (RFC 9110 §9.3.7).
            let mut r = Response::new(StatusCode::OK);
            r.set_header("Allow", &allow_header_value(u16::MAX));
            r
        } else {
            self.route(routes, shared, state, method)
        };
        if let Some(cors) = &shared.cors {
            cors.apply(&self.req.head.headers, &mut response);
        }
        self.write_response(response, shared, now);
    }

    fn route<S>(
        &mut self,
        routes: &mut Router<RouteHandler<S>>,
        shared: &mut Shared,
        state: &mut S,
        method: Method,
    ) -> Response {
        let (raw_path, query) = split_target(&self.req.head.target);
        let decoded = match decode_path(raw_path) {
            Ok(d) => d,
            Err(e) => {
                return Response::error(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid request path: {e}"),
                )
            }
        };
        self.req.path = decoded.path();
        self.req.query = QueryParams::parse(query.unwrap_or(""));
        match routes.find_mut(method, decoded.segments(), decoded.trailing_slash()) {
            RouteMatch::Found {
                handler, params, ..
            } => {
                self.req.params.clear();
                for (name, value) in params.iter() {
                    self.req.params.push(name, value);
                }
                shared.activity.handled += 1;
                let req = &self.req;
                let result = catch_unwind(AssertUnwindSafe(|| match handler {
                    RouteHandler::Buffered(h) => h(req, state),
                    // A streaming route reached without a body: open and
                    // finish its sink at once.
                    RouteHandler::Streaming { open, .. } => open(req, state)?.finish(),
                }));
                match result {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => e.into(),
                    Err(_) => panicked("handler", method, raw_path),
                }
            }
            RouteMatch::MethodNotAllowed { allow } => {
                method_not_allowed(&allow_header_value(allow))
            }
            RouteMatch::NotFound => match (&shared.static_root, method) {
                (Some(root), Method::GET | Method::HEAD) => {
                    serve_static(root, &files::segments_of(&decoded), &self.req)
                }
                // Another method on something the static root serves: the
                // resource exists but only answers GET and HEAD.
                (Some(root), _) if served_statically(root, &files::segments_of(&decoded)) => {
                    method_not_allowed("GET, HEAD")
                }
                _ => Response::error(StatusCode::NOT_FOUND, "Not Found"),
            },
        }
    }

    fn respond_error(
        &mut self,
        status: StatusCode,
        reason: &str,
        shared: &mut Shared,
        now: Instant,
    ) {
        self.decoder = None;
        self.req.head.keep_alive = false;
        let r = Response::error(status, reason);
        self.write_response(r, shared, now);
    }

    /// Serialises the head into the write buffer and queues the body.
    fn write_response(&mut self, response: Response, shared: &mut Shared, now: Instant) {
        let Response {
            mut status,
            mut headers,
            body,
        } = response;
        let head = &self.req.head;
        let is_head = head.method == Some(Method::HEAD);
        let mut keep_alive =
            head.keep_alive && !shared.stopping && !headers.has_token("Connection", "close");

        let mut body = body;
        if let Body::File(src) = &mut body {
            if let Some(r) =
                file_validators(&mut status, &mut headers, src, &head.headers, head.method)
            {
                body = r;
            }
        }

        let w = &mut self.wbuf;
        // Written piece by piece: `write!` costs more than the rest of the
        // head for a small response.
        w.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(w, u64::from(status.as_u16()));
        w.push(b' ');
        w.extend_from_slice(status.reason().as_bytes());
        w.extend_from_slice(b"\r\nDate: ");
        w.extend_from_slice(shared.date().as_bytes());
        w.extend_from_slice(b"\r\n");
        for (name, value) in shared.default_headers.iter() {
            if !headers.contains(name) {
                write_field(w, name, value);
            }
        }
        for (name, value) in headers.iter() {
            if !(name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("transfer-encoding")
                || name.eq_ignore_ascii_case("connection"))
            {
                write_field(w, name, value);
            }
        }
        let no_body = status.forbids_body();
        let mut body_len: Option<u64> = None;
        match &body {
            _ if no_body => {}
            Body::Empty | Body::Upgrade(_) => body_len = Some(0),
            Body::Bytes(b) => body_len = Some(b.len() as u64),
            Body::File(f) => body_len = Some(f.len),
            // The stream lasts until either side closes: close-delimited.
            Body::Sse(_) => keep_alive = false,
            Body::Stream(_) => {
                if head.version == Version::Http11 {
                    w.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                } else {
                    // HTTP/1.0 has no chunked coding: the body ends at close.
                    keep_alive = is_head && keep_alive;
                }
            }
        }
        if let Some(n) = body_len {
            w.extend_from_slice(b"Content-Length: ");
            push_decimal(w, n);
            w.extend_from_slice(b"\r\n");
        }
        let upgrade = matches!(body, Body::Upgrade(_)) && status == StatusCode::SWITCHING_PROTOCOLS;
        if upgrade {
            w.extend_from_slice(b"Connection: Upgrade\r\n");
        } else if !keep_alive {
            w.extend_from_slice(b"Connection: close\r\n");
        } else if head.version == Version::Http10 {
            w.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        w.extend_from_slice(b"\r\n");
        let head_bytes = self.wbuf.len() - self.wpos;

        if let (true, Body::Upgrade(options)) = (upgrade, &body) {
            self.ws = Some(Box::new(WsConn::new((**options).clone())));
        }
        if let (false, false, Body::Sse(options)) = (is_head, no_body, &body) {
            self.sse = Some(Box::new(SseConn {
                options: (**options).clone(),
            }));
        }
        if !is_head && !no_body {
            match body {
                Body::Empty | Body::Upgrade(_) | Body::Sse(_) => {}
                Body::Bytes(b) if b.len() <= INLINE_BODY => self.wbuf.extend_from_slice(&b),
                Body::Bytes(b) => self.out = Some(OutBody::Bytes(b, 0)),
                // A small file is read after the head: head and body leave
                // in one write, cheaper than a second syscall for sendfile.
                Body::File(f) if f.len <= INLINE_BODY as u64 => {
                    let want = f.len as usize;
                    let read = FileBody::new(f.file, f.start, f.len)
                        .and_then(|mut b| b.fill(&mut self.wbuf, want));
                    if !matches!(read, Ok(n) if n == want) {
                        // Truncated or unreadable: the length promised in
                        // the head cannot be met, so the connection ends.
                        log::error!("{}: file body short: {read:?} of {want} bytes", self.peer);
                        keep_alive = false;
                    }
                }
                Body::File(f) => match FileBody::new(f.file, f.start, f.len) {
                    Ok(b) => self.out = Some(OutBody::File(b)),
                    Err(e) => {
                        // The head promised a length; the body cannot follow.
                        log::error!("{}: cannot seek file: {e}", self.peer);
                        keep_alive = false;
                    }
                },
                Body::Stream(iter) => {
                    self.out = Some(OutBody::Stream {
                        iter,
                        chunked: self.req.head.version == Version::Http11,
                    })
                }
            }
        }

        let elapsed = self
            .request_start
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default();
        let target = &self.req.head.target;
        let path = target.split('?').next().unwrap_or("");
        log::info!(
            target: "pollserve::access",
            "{} -- \"{} {}\" {} -- \"{} {}\" {} -- {}ms",
            self.peer.ip(),
            self.req.head.method.map(|m| m.as_str()).unwrap_or("-"),
            path,
            self.request_size,
            status.as_u16(),
            status.reason(),
            head_bytes as u64 + if is_head { 0 } else { body_len.unwrap_or(0) },
            elapsed.as_millis()
        );
        shared.activity.responses += 1;
        self.request_start = None;
        self.request_size = 0;
        self.phase = if self.sse.is_some() {
            self.req.body = Vec::new();
            self.req.head = RequestHead::default();
            Phase::Sse
        } else if self.ws.is_some() {
            // The HTTP request buffers are not needed any more.
            self.req.body = Vec::new();
            self.req.head = RequestHead::default();
            Phase::Ws
        } else if keep_alive {
            Phase::Head
        } else {
            Phase::Closing
        };
    }

    /// Writes queued output; returns whether any byte was written.
    fn flush(&mut self) -> io::Result<bool> {
        let mut progress = false;
        loop {
            let pending = &self.wbuf[self.wpos..];
            let result = match &mut self.out {
                Some(OutBody::Bytes(data, pos)) => {
                    let rest = &data[*pos..];
                    if pending.is_empty() {
                        self.stream.write(rest)
                    } else {
                        self.stream
                            .write_vectored(&[IoSlice::new(pending), IoSlice::new(rest)])
                    }
                }
                #[cfg(target_os = "linux")]
                Some(OutBody::File(body)) if pending.is_empty() => {
                    match body.send_to(&self.stream, SENDFILE_CHUNK) {
                        Ok(_) => {
                            progress = true;
                            if body.is_done() {
                                self.out = None;
                                break;
                            }
                            continue;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.writable = false;
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                }
                // The head of a file response: MSG_MORE lets the kernel put
                // it in one segment with the file's first bytes.
                #[cfg(target_os = "linux")]
                Some(OutBody::File(_)) => {
                    rustix::net::send(&self.stream, pending, rustix::net::SendFlags::MORE)
                        .map_err(io::Error::from)
                }
                _ if pending.is_empty() => break,
                _ => self.stream.write(pending),
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    progress = true;
                    let from_buf = n.min(self.wbuf.len() - self.wpos);
                    self.wpos += from_buf;
                    n -= from_buf;
                    if let Some(OutBody::Bytes(data, pos)) = &mut self.out {
                        *pos += n;
                        if *pos == data.len() {
                            self.out = None;
                        }
                    }
                    if self.wpos == self.wbuf.len() {
                        self.wbuf.clear();
                        self.wpos = 0;
                        if self.out.is_none() {
                            break;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(progress)
    }

    /// Moves more of a streamed body into the write buffer.
    fn fill_body(&mut self) -> io::Result<bool> {
        let mut progress = false;
        match &mut self.out {
            None | Some(OutBody::Bytes(..)) => {}
            // On Linux `flush` sends files with sendfile instead.
            Some(OutBody::File(_)) if cfg!(target_os = "linux") => {}
            Some(OutBody::File(body)) => {
                if !body.is_done() {
                    body.fill(&mut self.wbuf, FILE_CHUNK)?;
                    progress = true;
                }
                if body.is_done() {
                    self.out = None;
                    progress = true;
                }
            }
            Some(OutBody::Stream { iter, chunked }) => {
                let chunked = *chunked;
                while self.wbuf.len() - self.wpos < LOW_WATER {
                    let next = catch_unwind(AssertUnwindSafe(|| iter.next()));
                    progress = true;
                    match next {
                        Ok(Some(chunk)) => {
                            if chunk.is_empty() {
                                continue;
                            }
                            if chunked {
                                let _ = write!(self.wbuf, "{:x}\r\n", chunk.len());
                            }
                            self.wbuf.extend_from_slice(&chunk);
                            if chunked {
                                self.wbuf.extend_from_slice(b"\r\n");
                            }
                        }
                        Ok(None) => {
                            if chunked {
                                self.wbuf.extend_from_slice(b"0\r\n\r\n");
                            }
                            self.out = None;
                            break;
                        }
                        Err(_) => {
                            return Err(io::Error::other("chunk iterator panicked"));
                        }
                    }
                }
            }
        }
        Ok(progress)
    }

    pub fn update_deadline(&mut self, shared: &mut Shared) {
        let c = &shared.config;
        let deadline = if self.has_output() || self.out.is_some() {
            self.last_io + c.send_timeout
        } else {
            match self.phase {
                Phase::Head => match self.request_start {
                    Some(t) => t + c.header_timeout,
                    None => self.last_io + c.keep_alive_timeout,
                },
                Phase::Body => self.last_io + c.body_timeout,
                Phase::Closing => self.last_io + c.send_timeout,
                Phase::Lingering(until) => until,
                Phase::Sse => match self.sse.as_ref().and_then(|s| s.options.heartbeat) {
                    Some(h) => self.last_io + h,
                    None => {
                        self.deadline = None;
                        return;
                    }
                },
                Phase::Ws => match self.ws.as_ref().and_then(|ws| ws.session.next_deadline()) {
                    Some(d) => d,
                    None => {
                        self.deadline = None;
                        return;
                    }
                },
            }
        };
        self.deadline = Some(deadline);
        shared.schedule(deadline);
    }

    /// The deadline passed. Returns whether to keep the connection (never, for
    /// now; a request caught half-way gets a best-effort `408` first).
    pub fn on_timeout(&mut self, shared: &mut Shared, now: Instant) -> bool {
        if self.phase == Phase::Sse && !self.has_output() {
            crate::proto::sse::encode_comment("", &mut self.wbuf);
            self.last_io = now;
            self.writable = true;
            return self.flush().is_ok();
        }
        if self.phase == Phase::Ws
            && !(self.has_output() && self.last_io + shared.config.send_timeout <= now)
        {
            let Some(ws) = self.ws.as_mut() else {
                return false;
            };
            if let Some(Event::Error(e)) = ws.session.on_timeout(now, &mut self.wbuf) {
                ws.set_status(CloseStatus::Failed(e));
            }
            if ws.session.wants_shutdown() {
                ws.set_status(CloseStatus::Abnormal);
                return false;
            }
            self.writable = true;
            return self.flush().is_ok();
        }
        if let Some(ws) = self.ws.as_mut() {
            ws.set_status(CloseStatus::Abnormal);
        }
        let partial = matches!(self.phase, Phase::Head | Phase::Body)
            && (self.request_start.is_some() || self.phase == Phase::Body);
        if partial && !self.has_output() && self.out.is_none() {
            self.respond_error(
                StatusCode::REQUEST_TIMEOUT,
                "request not received in time",
                shared,
                now,
            );
            self.writable = true;
            let _ = self.flush();
        }
        log::debug!("{}: connection timed out", self.peer);
        false
    }

    pub fn id(&self) -> ConnId {
        self.id
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

/// The 500 for user code that panicked (the panic message itself went to
/// stderr through the panic hook).
fn panicked(what: &str, method: Method, target: &str) -> Response {
    let path = target.split('?').next().unwrap_or("");
    log::error!("{what} for {method} {path} panicked");
    Response::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// Answers a GET/HEAD that no route matched from the static-file root.
/// `405 Method Not Allowed` listing the methods the resource answers.
fn method_not_allowed(allow: &str) -> Response {
    let mut r = Response::error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    r.set_header("Allow", allow);
    r
}

/// Whether a GET of this path would be answered from the static root (a
/// file, a directory redirect, or a listing), so another method gets 405.
fn served_statically(root: &files::StaticRoot, segments: &[&str]) -> bool {
    match root.resolve_entry(segments) {
        Ok(Resolved::File(_)) | Err(FileError::Redirect(_)) => true,
        Ok(Resolved::Directory(_)) => root.listing(),
        Err(_) => false,
    }
}

fn serve_static(root: &files::StaticRoot, segments: &[&str], req: &Request) -> Response {
    match root.resolve_entry(segments) {
        Ok(Resolved::File(f)) => f.into(),
        Ok(Resolved::Directory(dir)) if root.listing() => {
            let sort = req.query().get("sort").unwrap_or("name");
            match root.directory_listing(&dir, req.path(), sort) {
                Ok(page) => Response::html(page),
                Err(e) => {
                    log::error!("listing {}: {e}", dir.display());
                    Response::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                }
            }
        }
        Ok(Resolved::Directory(_)) | Err(FileError::NotFound) => {
            Response::error(StatusCode::NOT_FOUND, "Not Found")
        }
        Err(FileError::Redirect(mut location)) => {
            // `/docs?page=2` goes to `docs/?page=2`: the query survives.
            if let Some(query) = req.query_string() {
                location.push('?');
                location.push_str(query);
            }
            Response::redirect_with_status(&location, StatusCode::MOVED_PERMANENTLY)
        }
        Err(FileError::Forbidden) => Response::error(StatusCode::FORBIDDEN, "Forbidden"),
        Err(FileError::Io(e)) => {
            log::error!("static file {}: {e}", req.path());
            Response::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// Appends `n` in decimal.
fn push_decimal(w: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    w.extend_from_slice(&digits[i..]);
}

fn write_field(w: &mut Vec<u8>, name: &str, value: &str) {
    w.extend_from_slice(name.as_bytes());
    w.extend_from_slice(b": ");
    w.extend_from_slice(value.as_bytes());
    w.extend_from_slice(b"\r\n");
}

/// Adds `ETag`/`Last-Modified`/`Accept-Ranges` to a file response and applies
/// the request's conditional and range headers; returns a replacement body when
/// the answer is 304, 412 or 416.
fn file_validators(
    status: &mut StatusCode,
    headers: &mut Headers,
    src: &mut crate::response::FileSource,
    req: &Headers,
    method: Option<Method>,
) -> Option<Body> {
    let mtime = src.modified?;
    let mut etag_buf = [0u8; files::ETAG_MAX];
    let etag = files::etag_in(&mut etag_buf, src.len, mtime);
    headers.set("ETag", etag);
    let mut date_buf = [0u8; 29];
    headers.set("Last-Modified", files::http_date_in(&mut date_buf, mtime));
    if *status != StatusCode::OK {
        return None;
    }
    headers.set("Accept-Ranges", "bytes");
    let conditions = Preconditions {
        if_match: req.get("If-Match"),
        if_none_match: req.get("If-None-Match"),
        if_modified_since: req.get("If-Modified-Since"),
        if_unmodified_since: req.get("If-Unmodified-Since"),
    };
    let get_or_head = matches!(method, Some(Method::GET | Method::HEAD));
    match files::evaluate_preconditions(get_or_head, &conditions, etag, mtime) {
        Condition::Proceed => {}
        Condition::NotModified => {
            *status = StatusCode::NOT_MODIFIED;
            return Some(Body::Empty);
        }
        Condition::PreconditionFailed => {
            *status = StatusCode::PRECONDITION_FAILED;
            headers.remove("Content-Type");
            return Some(Body::Empty);
        }
    }
    if !get_or_head {
        return None;
    }
    let decision = files::parse_range(req.get("Range"), req.get("If-Range"), etag, mtime, src.len);
    if let Some(range) = decision.content_range(src.len) {
        headers.set("Content-Range", &range);
    }
    match decision {
        RangeDecision::Full => None,
        RangeDecision::Partial {
            start,
            end_inclusive,
        } => {
            *status = StatusCode::PARTIAL_CONTENT;
            src.start = start;
            src.len = end_inclusive - start + 1;
            None
        }
        RangeDecision::Unsatisfiable => {
            *status = StatusCode::RANGE_NOT_SATISFIABLE;
            headers.remove("Content-Type");
            Some(Body::Empty)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn push_decimal_matches_display() {
        for n in [0, 1, 9, 10, 99, 100, 204, 1024, 65535, 1 << 40, u64::MAX] {
            let mut w = b"x".to_vec();
            super::push_decimal(&mut w, n);
            assert_eq!(w, format!("x{n}").into_bytes());
        }
    }
}
