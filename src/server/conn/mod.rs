//! One connection: its transport, buffers, phase and deadline.
//!
//! This file holds the socket side (reading, writing, the phase machine and
//! timeouts). The HTTP request/response cycle is in [`exchange`], the
//! WebSocket, event-stream and kept-stream transports in [`websocket`],
//! [`event_stream`] and [`kept_stream`]. The rest of the driver changes a connection only
//! through the methods marked `pub(crate)`.

mod event_stream;
mod exchange;
mod kept_stream;
mod websocket;

use std::borrow::Cow;
use std::io::{self, IoSlice};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use super::buf::ReadBuf;
use super::console::server_log;
use super::dispatch::Decision;
use super::fanout::{SharedFrame, SharedOutput, COPY_BELOW, MAX_SLICES};
use super::groups::Membership;
use super::routes::{BodySink, RouteHandler};
use super::shared::{after, Shared};
use super::transport::{ReadHalf, Transport};
use crate::files::{FileBody, MultipartRanges};
use crate::proto::http::{write_chunk, BodyDecoder, RequestHead, LAST_CHUNK};
use crate::request::{ConnId, Request, RouteParams};
use crate::router::Router;
use crate::sse::SseId;
use crate::url::QueryParams;
use crate::ws::CloseStatus;

pub(crate) use event_stream::SseConn;
pub(crate) use kept_stream::StreamConn;
pub(crate) use websocket::{BufferPool, InflateBudget, WsConn, WsPop};

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 * 1024;
/// Reads one connection may do in one poll round (so at most 256 KiB of
/// input is parsed for it) before the other ready connections get their turn.
const READS_PER_ROUND: usize = 4;
/// Requests one connection may have answered in one poll round: 256 KiB
/// of tiny pipelined requests would otherwise run thousands of handlers
/// (and what they ask of other connections) before anyone else's turn.
pub(super) const REQUESTS_PER_ROUND: u32 = 32;
/// Pipelined requests are not parsed while this much output waits: a client
/// that sends but never reads cannot make the server buffer without bound.
const HIGH_WATER: usize = 256 * 1024;
/// A streamed body (file, chunked iterator) is pulled while less than this waits.
const LOW_WATER: usize = 64 * 1024;
/// Most bytes handed to one `sendfile` call.
const SENDFILE_CHUNK: usize = 1 << 20;
/// File bytes read per step of a streamed file (without `sendfile`).
const FILE_CHUNK: usize = 64 * 1024;
/// Bytes one connection may write in one poll round (one `sendfile` chunk),
/// so a fast reader of a large file cannot hold the loop for the others.
const WRITES_PER_ROUND: usize = SENDFILE_CHUNK;
/// The write buffer drops its written bytes once there are this many and
/// they are at least half of it (amortised: each byte moves at most once).
const COMPACT_AT: usize = 16 * 1024;
/// A connection with a send bound allocates at most the bound and a
/// quarter for its write buffer (unless its unsent bytes alone need more):
/// see `Conn::make_room`.
const MAX_WBUF_OF_BOUND_DIV: usize = 4;
/// Bodies up to this size are copied after the head and sent in one write;
/// larger ones are sent from where they are with a vectored write.
const INLINE_BODY: usize = 16 * 1024;

/// What the poller reported for a connection.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Readiness {
    pub readable: bool,
    pub writable: bool,
    /// The peer hung up (or the socket failed): read on to EOF.
    pub hangup: bool,
}

impl Readiness {
    pub fn of(event: &mio::event::Event) -> Readiness {
        Readiness {
            readable: event.is_readable() || event.is_read_closed() || event.is_error(),
            writable: event.is_writable() || event.is_write_closed() || event.is_error(),
            hangup: event.is_read_closed() || event.is_error(),
        }
    }
}

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
    /// A kept stream the program pushes chunks to; see `kept_stream`. Its
    /// end returns the connection to `Head` (or `Closing`).
    Stream,
}

/// A response body still being sent after its head.
enum OutBody {
    Bytes(Cow<'static, [u8]>, usize),
    File(FileBody),
    /// Several ranges of a file, read into the write buffer part by part.
    Ranges(Box<MultipartRanges>),
    Stream {
        iter: Box<dyn Iterator<Item = Vec<u8>>>,
        chunked: bool,
    },
}

/// Unprocessed input from which a connection is driven in its own buffer
/// instead of the server's scratch buffer (see `Conn::drive`).
const KEEP_OWN_INPUT: usize = 64 << 10;

pub(crate) struct Conn {
    io: Box<dyn Transport>,
    peer: SocketAddr,
    id: ConnId,
    rbuf: ReadBuf,
    wbuf: Vec<u8>,
    wpos: usize,
    /// Broadcast frames queued between (and after) the bytes of `wbuf`.
    shared: SharedOutput,
    out: Option<OutBody>,
    phase: Phase,
    /// Readiness not yet used up (edge-triggered: kept until a read or write
    /// says `WouldBlock`, or a short read shows the socket drained).
    ready: Readiness,
    peer_eof: bool,
    deadline: Option<Instant>,
    /// `Some(last_io)` while `deadline` is the send deadline counted from
    /// that `last_io` (output waiting): a further send that leaves both as
    /// they were cannot move it (see `update_deadline_after_send`).
    send_deadline_from: Option<Instant>,
    req: Request,
    /// What answers the current request, while its body is being read.
    decision: Option<Decision>,
    decoder: Option<BodyDecoder>,
    /// When the first byte of the current request arrived.
    request_start: Option<Instant>,
    /// When the current request's head was complete and its body began.
    body_start: Instant,
    /// Bytes of the current request (head and body) as received.
    request_size: usize,
    /// Last time bytes moved in either direction.
    last_io: Instant,
    /// WebSocket state once upgraded.
    ws: Option<Box<WsConn>>,
    /// Event-stream state once the response head is out.
    sse: Option<Box<SseConn>>,
    /// Kept-stream state while its response lasts.
    stream: Option<Box<StreamConn>>,
    /// The socket is gone but received messages wait for the program.
    dead: bool,
    /// The poll in which this connection was last listed in `ws_ready`.
    ready_epoch: u64,
    /// The poll in which this connection was last driven.
    driven_epoch: u64,
    /// Listed in the server's `deferred` (its readiness waits for the next
    /// round, as the round's read budget was spent).
    pub(super) deferred: bool,
    /// Where the body of the current request goes when its route streams it.
    sink: Option<Box<dyn BodySink>>,
    /// The last drive stopped at its share of the round with work left.
    more: bool,
    /// Requests still allowed in this poll round (see [`REQUESTS_PER_ROUND`]).
    round_requests: u32,
    /// The program queued output; the connection is listed to be driven at
    /// the next poll.
    flush_queued: bool,
    /// WebSocket messages and pongs delivered in the current drive.
    round_events: usize,
    /// Bytes inflated from permessage-deflate messages in the current drive.
    round_inflated: usize,
    /// When the connection was accepted, while its transport may still be
    /// opening (a TLS handshake, which the header timeout covers).
    opening: Option<Instant>,
    /// Accepted on a redirect listener: every request is answered with a
    /// redirect to HTTPS on this port.
    https_redirect: Option<u16>,
    /// The groups this connection's WebSocket or stream is a member of.
    pub(super) memberships: Vec<Membership>,
}

impl Conn {
    pub fn new(
        io: Box<dyn Transport>,
        peer: SocketAddr,
        slot: u32,
        generation: u32,
        now: Instant,
    ) -> Conn {
        let opening = io.is_handshaking().then_some(now);
        let tls = io.is_tls();
        let id = ConnId { slot, generation };
        Conn {
            io,
            peer,
            id,
            rbuf: ReadBuf::default(),
            wbuf: Vec::new(),
            wpos: 0,
            shared: SharedOutput::default(),
            out: None,
            phase: Phase::Head,
            ready: Readiness::default(),
            peer_eof: false,
            deadline: None,
            send_deadline_from: None,
            req: Request {
                head: RequestHead::default(),
                path: String::new(),
                query: QueryParams::default(),
                params: RouteParams::default(),
                body: Vec::new(),
                peer,
                client_ip: peer.ip(),
                tls,
                conn: id,
                outbox: Default::default(),
                body_limit: Default::default(),
                exchange: 0,
            },
            decision: None,
            decoder: None,
            request_start: None,
            body_start: now,
            request_size: 0,
            last_io: now,
            ws: None,
            sse: None,
            stream: None,
            dead: false,
            ready_epoch: 0,
            driven_epoch: 0,
            deferred: false,
            sink: None,
            more: false,
            round_requests: REQUESTS_PER_ROUND,
            flush_queued: false,
            round_events: 0,
            round_inflated: 0,
            opening,
            https_redirect: None,
            memberships: Vec::new(),
        }
    }

    /// Makes this a connection of a redirect listener (see
    /// [`Server::start_https_redirect`](crate::Server::start_https_redirect)).
    pub fn redirect_to_https(&mut self, port: u16) {
        self.https_redirect = Some(port);
    }

    pub fn id(&self) -> ConnId {
        self.id
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// When this connection's timeout passes, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The socket is closed; the slot only holds messages for the program.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// The program queued output outside a drive: returns true when the
    /// connection must be listed for the next poll (it is not yet).
    pub fn queue_flush(&mut self) -> bool {
        !self.dead && self.has_output() && !std::mem::replace(&mut self.flush_queued, true)
    }

    /// Whether this is a WebSocket whose received messages wait for the
    /// program.
    pub fn ws_has_messages(&self) -> bool {
        self.ws.as_ref().is_some_and(|ws| ws.has_messages())
    }

    /// Records that this connection is listed in `ws_ready` for poll round
    /// `epoch` (it was listed between polls), so it is not listed twice.
    pub fn listed_in(&mut self, epoch: u64) {
        self.ready_epoch = epoch;
    }

    /// Whether this connection was driven in poll round `epoch`.
    pub fn driven_in(&self, epoch: u64) -> bool {
        self.driven_epoch == epoch
    }

    /// Whether the last [`drive`](Self::drive) left work for the next round
    /// (it used up its share of this one).
    pub fn has_more(&self) -> bool {
        self.more
    }

    /// Bytes allocated for input kept between polls: unprocessed bytes,
    /// the request body, WebSocket messages waiting for the program, and
    /// what the transport keeps (a partial TLS record).
    pub fn input_buffered(&self) -> usize {
        self.rbuf.capacity()
            + self.req.body.capacity()
            + self.ws.as_ref().map_or(0, |ws| ws.inbox_allocated())
            + self.io.held().0
    }

    /// Bytes allocated for output of this connection's own (the write
    /// buffer's capacity, the queue of shared frames, and the transport's:
    /// encrypted records not yet written). The shared frames themselves are
    /// not counted: the server keeps their total.
    pub fn output_buffered(&self) -> usize {
        self.wbuf.capacity() + self.shared.allocated() + self.io.held().2
    }

    /// Bytes queued for the peer and not yet written (encrypted bytes
    /// counted as they will go out).
    pub fn output_queued(&self) -> usize {
        self.pending_len() + self.io.held().1
    }

    /// Records what the poller reported; [`drive`](Self::drive) acts on it.
    pub fn on_ready(&mut self, r: Readiness) {
        self.ready.readable |= r.readable;
        self.ready.writable |= r.writable;
        self.ready.hangup |= r.hangup;
    }

    /// Idle: between requests with nothing buffered either way.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Head
            && self.rbuf.is_empty()
            && !self.has_output()
            && self.request_start.is_none()
    }

    /// Bytes queued and not yet written: the connection's own and the
    /// broadcast frames queued on it, each counted in full (the send bounds
    /// count what one connection holds back, shared or not).
    fn pending_len(&self) -> usize {
        self.wbuf.len() - self.wpos + self.shared.pending()
    }

    /// Queues a broadcast frame after everything queued so far. A small
    /// frame is copied into the write buffer (see [`COPY_BELOW`]), within
    /// the allocation bound that `limit` (the send bound) sets.
    fn queue_shared(&mut self, frame: &SharedFrame, limit: usize) {
        if frame.len() < COPY_BELOW {
            self.make_room(frame.len(), limit);
            self.wbuf.extend_from_slice(frame.bytes());
        } else {
            self.shared.push(frame.clone(), self.wbuf.len() - self.wpos);
        }
    }

    /// Makes room for `add` more bytes in the write buffer of a connection
    /// whose send bound is `limit`, so its allocation follows its unsent
    /// bytes, not what it wrote: a steady reader with a backlog (a drip
    /// reader of small broadcasts) used to keep up to twice its backlog in
    /// the buffer and its capacity doubled past that, 2–4 times the
    /// backlog. When the buffer is full, the written front goes first if
    /// that frees half of it; otherwise the unsent bytes move to a buffer
    /// twice their size (with `add`), but no larger than 1.25 × the bound
    /// (see [`MAX_WBUF_OF_BOUND_DIV`]), unless they need more. Each byte
    /// moves a bounded number of times per byte queued (at most 4, at the
    /// bound).
    fn make_room(&mut self, add: usize, limit: usize) {
        make_room(&mut self.wbuf, &mut self.wpos, add, limit);
    }

    /// Whether `flush` has something to write: buffered bytes, a large
    /// in-memory body, a file the transport sends itself, or bytes the
    /// transport holds (TLS records the socket did not take yet).
    fn has_output(&self) -> bool {
        self.wpos < self.wbuf.len()
            || !self.shared.is_empty()
            || matches!(self.out, Some(OutBody::Bytes(..)))
            || (self.io.sends_files()
                && matches!(self.out, Some(OutBody::File(_) | OutBody::Ranges(_))))
            || self.io.has_pending_output()
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
        // Reading and parsing happen in the server's one scratch buffer. A
        // connection keeps only the input it could not use yet, in a buffer
        // of exactly that size, so memory follows what each peer sent (a
        // half-sent head pins its few bytes, not a read-sized buffer).
        self.driven_epoch = shared.epoch;
        self.flush_queued = false;
        self.round_events = 0;
        self.round_inflated = 0;
        // A large backlog (a compressed message inflated a share per round,
        // input waiting for the program) stays in its own buffer: moving it
        // through the scratch buffer would copy all of it every round.
        let own_input = self.rbuf.len() >= KEEP_OWN_INPUT;
        if !own_input {
            std::mem::swap(&mut self.rbuf, &mut shared.scratch);
            if !shared.scratch.is_empty() {
                self.rbuf.append(shared.scratch.data());
                shared.scratch = ReadBuf::default();
            }
        }
        self.more = false;
        let keep = self.run(routes, shared, state, now);
        self.mark_ws_ready(shared);
        if own_input {
            // Memory still follows what is left: the buffer shrinks to it
            // once it is less than half (each byte copied once on average).
            if self.rbuf.is_empty() {
                self.rbuf = ReadBuf::default();
            } else if self.rbuf.len() * 2 < self.rbuf.capacity() {
                self.rbuf = self.rbuf.split_off_remaining();
            }
        } else {
            let rest = if self.rbuf.is_empty() {
                ReadBuf::default()
            } else {
                self.rbuf.split_off_remaining()
            };
            std::mem::swap(&mut self.rbuf, &mut shared.scratch);
            self.rbuf = rest;
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
        let mut reads = 0;
        let mut write_budget = WRITES_PER_ROUND;
        self.round_requests = REQUESTS_PER_ROUND;
        loop {
            let mut progress = false;
            if self.ready.writable && self.has_output() {
                if write_budget == 0 {
                    // Its share of the round is written: the rest goes at
                    // the next poll, after the others.
                    self.more = true;
                    break;
                }
                match self.flush(write_budget) {
                    Ok(n) => {
                        if n > 0 {
                            self.last_io = now;
                            progress = true;
                        }
                        write_budget = write_budget.saturating_sub(n);
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
                        server_log!(
                            shared.config.log_to_stderr,
                            Warn,
                            "{}: response body failed mid-stream: {e}",
                            self.peer
                        );
                        return false;
                    }
                }
            }
            if self.phase == Phase::Closing && !self.has_output() && self.out.is_none() {
                if self.peer_eof {
                    return false;
                }
                let _ = self.io.shutdown(Shutdown::Write);
                self.phase = Phase::Lingering(after(now, shared.config.linger_timeout));
                self.rbuf.clear();
                progress = true;
            }
            if matches!(self.phase, Phase::Head | Phase::Body) {
                progress |= self.process_input(routes, shared, state, now);
            }
            if self.phase == Phase::Ws
                && self.process_ws(&mut shared.ws_pool, &mut shared.inflate, now)
            {
                progress = true;
            }
            if self.ready.readable && !self.peer_eof && self.wants_read() {
                if reads == READS_PER_ROUND {
                    // This peer has had its share of the round: what it sent
                    // is answered and flushed, the others go next, and its
                    // socket is read again at the next poll.
                    self.more = true;
                    if progress {
                        continue;
                    }
                    break;
                }
                reads += 1;
                match self
                    .rbuf
                    .read_from(&mut ReadHalf(&mut *self.io), READ_CHUNK)
                {
                    Ok((0, _)) => {
                        self.peer_eof = true;
                        progress = true;
                    }
                    Ok((n, filled)) => {
                        shared.round_read += n;
                        self.last_io = now;
                        // Edge-triggered readiness: a short read drained the
                        // socket, and more data will raise a new event, so the
                        // read that would only say EAGAIN is skipped. A
                        // pending hang-up is not a new edge, nor is an end
                        // the transport has seen: read on to EOF.
                        if !filled && !self.ready.hangup && !self.io.has_buffered_input() {
                            self.ready.readable = false;
                        }
                        if matches!(self.phase, Phase::Lingering(_) | Phase::Sse) {
                            // Nothing is expected from the client; discard.
                            self.rbuf.clear();
                        }
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.ready.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => progress = true,
                    Err(e) if self.io.refused(&e) => {
                        log::debug!("{}: {e}", self.peer);
                        self.transport_refused();
                        progress = true;
                    }
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
                // The client left: a stream has no one to go to.
                Phase::Sse | Phase::Stream => return false,
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

    /// The transport refused the peer's input (a failed TLS handshake or
    /// session, plain HTTP on the TLS port): nothing more is answered; the
    /// transport's last word goes out, then a lingering close.
    fn transport_refused(&mut self) {
        self.rbuf.clear();
        self.wbuf.clear();
        self.wpos = 0;
        self.shared.clear();
        self.out = None;
        self.decoder = None;
        self.decision = None;
        self.sink = None;
        if let Some(ws) = self.ws.as_mut() {
            ws.set_status(CloseStatus::Abnormal);
        }
        self.phase = Phase::Closing;
    }

    fn wants_read(&self) -> bool {
        match self.phase {
            // Unparsed input waits for the next rounds' request shares: a
            // client pipelining faster than that is not read further.
            Phase::Head | Phase::Body => {
                self.out.is_none()
                    && self.pending_len() < HIGH_WATER
                    && self.rbuf.len() < READS_PER_ROUND * READ_CHUNK
            }
            Phase::Closing => false,
            Phase::Lingering(_) | Phase::Sse => true,
            // Read on to see the client leave, keeping what it sent (its
            // next requests) up to a bound.
            Phase::Stream => self.rbuf.len() < kept_stream::STREAM_INPUT_HOLD,
            Phase::Ws => self.ws_wants_read(),
        }
    }

    /// Writes what is queued when the program (not the poll loop) sent
    /// something. Progress restarts the send timeout, and for event streams
    /// the heartbeat interval ("after this long without an event").
    fn flush_outside_loop(&mut self) -> io::Result<()> {
        if self.ready.writable && self.flush(usize::MAX)? > 0 {
            self.last_io = Instant::now();
        }
        Ok(())
    }

    /// Writes queued output, at most about `budget` bytes (a connection's
    /// share of a poll round); returns how many bytes were written.
    fn flush(&mut self, budget: usize) -> io::Result<usize> {
        let mut written = 0;
        if self.io.has_pending_output() {
            // What the transport holds goes before anything new.
            match self.io.flush_pending() {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if self.io.has_pending_output() {
                self.ready.writable = false;
                return Ok(written);
            }
        }
        if !self.shared.is_empty() {
            // Broadcast frames are queued: they and the bytes around them
            // go first, and the plain path below takes over once they are
            // out (a response body in `out` always follows them).
            written += self.flush_shared(budget)?;
            if !self.shared.is_empty() || !self.ready.writable {
                self.compact_wbuf();
                return Ok(written);
            }
        }
        while written < budget {
            let share = budget - written;
            let pending = &self.wbuf[self.wpos..];
            let pending = &pending[..pending.len().min(share)];
            let result = match &mut self.out {
                Some(OutBody::Bytes(data, pos)) => {
                    let rest = &data[*pos..];
                    let rest = &rest[..rest.len().min(share - pending.len())];
                    if pending.is_empty() {
                        self.io.write_vectored(&[IoSlice::new(rest)])
                    } else {
                        self.io
                            .write_vectored(&[IoSlice::new(pending), IoSlice::new(rest)])
                    }
                }
                Some(OutBody::File(body)) if pending.is_empty() && self.io.sends_files() => {
                    match self.io.send_file(body, SENDFILE_CHUNK.min(share)) {
                        Ok(n) => {
                            written += n;
                            if body.is_done() {
                                self.out = None;
                                break;
                            }
                            continue;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.ready.writable = false;
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                }
                // Several ranges: each part's file bytes straight from the
                // file, as for one range; part heads through the buffer.
                Some(OutBody::Ranges(ranges)) if pending.is_empty() && self.io.sends_files() => {
                    let Some(body) = ranges.span() else {
                        ranges.advance(&mut self.wbuf);
                        if ranges.is_done() && self.wbuf.is_empty() {
                            self.out = None;
                            break;
                        }
                        continue;
                    };
                    match self.io.send_file(body, SENDFILE_CHUNK.min(share)) {
                        Ok(n) => {
                            written += n;
                            continue;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.ready.writable = false;
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                }
                // The head of a file response, sent ahead of the file itself
                // (the closing boundary of several ranges is the last word).
                Some(OutBody::Ranges(ranges)) if self.io.sends_files() && ranges.is_done() => {
                    self.io.write_vectored(&[IoSlice::new(pending)])
                }
                Some(OutBody::File(_) | OutBody::Ranges(_)) if self.io.sends_files() => {
                    self.io.write_more(pending)
                }
                _ if pending.is_empty() => break,
                _ => self.io.write_vectored(&[IoSlice::new(pending)]),
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    let from_buf = n.min(self.wbuf.len() - self.wpos);
                    self.wpos += from_buf;
                    if let Some(OutBody::Bytes(data, pos)) = &mut self.out {
                        *pos += n - from_buf;
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
                    self.ready.writable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.compact_wbuf();
        Ok(written)
    }

    /// Written bytes leave the buffer: a peer that reads steadily but keeps
    /// a backlog must not make the buffer grow by all it reads. (Queued
    /// broadcast frames count their place relative to the unwritten bytes,
    /// so they are unaffected.)
    fn compact_wbuf(&mut self) {
        if self.wpos >= COMPACT_AT && self.wpos * 2 >= self.wbuf.len() {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
    }

    /// Writes the connection's own bytes and the broadcast frames queued
    /// among them, in order, many slices per vectored write, until the
    /// frames are all out, the socket is full or about `budget` bytes are
    /// written; returns the bytes written. A partial write resumes inside
    /// the slice it stopped in.
    fn flush_shared(&mut self, budget: usize) -> io::Result<usize> {
        let mut written = 0;
        while written < budget && !self.shared.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let own = self.wbuf.get(self.wpos..).unwrap_or_default();
            let count = self.shared.slices(own, budget - written, &mut slices);
            if count == 0 {
                break;
            }
            match self.io.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    let own = self.shared.advance(n);
                    self.wpos = (self.wpos + own).min(self.wbuf.len());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ready.writable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        Ok(written)
    }

    /// Moves more of a streamed body into the write buffer.
    fn fill_body(&mut self) -> io::Result<bool> {
        let mut progress = false;
        match &mut self.out {
            None | Some(OutBody::Bytes(..)) => {}
            // `flush` hands files to the transport instead.
            Some(OutBody::File(_)) if self.io.sends_files() => {}
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
            Some(OutBody::Ranges(_)) if self.io.sends_files() => {}
            Some(OutBody::Ranges(body)) => {
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
                    let next =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| iter.next()));
                    progress = true;
                    match next {
                        Ok(Some(chunk)) => {
                            if chunked {
                                write_chunk(&mut self.wbuf, &chunk);
                            } else {
                                self.wbuf.extend_from_slice(&chunk);
                            }
                        }
                        Ok(None) => {
                            if chunked {
                                self.wbuf.extend_from_slice(LAST_CHUNK);
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

    /// [`update_deadline`](Self::update_deadline) after the program queued
    /// output: skipped when the deadline already is the send deadline counted
    /// from the same `last_io` (a broadcast of several messages in one round
    /// recomputes it once per connection, not once per message).
    pub fn update_deadline_after_send(&mut self, shared: &mut Shared) {
        if self.send_deadline_from == Some(self.last_io) && self.has_output() {
            return;
        }
        self.update_deadline(shared);
    }

    pub fn update_deadline(&mut self, shared: &mut Shared) {
        let c = &shared.config;
        self.send_deadline_from = None;
        let deadline = if self.has_output() || self.out.is_some() {
            self.send_deadline_from = Some(self.last_io);
            after(self.last_io, c.send_timeout)
        } else {
            match self.phase {
                Phase::Head => match (self.request_start, self.opening) {
                    (Some(t), _) => after(t, c.header_timeout),
                    // A TLS handshake is part of the first request's head.
                    (None, Some(t)) if self.io.is_handshaking() => after(t, c.header_timeout),
                    (None, _) => {
                        self.opening = None;
                        after(self.last_io, c.keep_alive_timeout)
                    }
                },
                Phase::Body => {
                    let pause = after(self.last_io, c.body_timeout);
                    if c.min_body_rate == 0 {
                        pause
                    } else {
                        // The whole body is due by `body_timeout` plus one
                        // second per `min_body_rate` bytes received.
                        let received = self.request_size.saturating_sub(self.req.head.head_len);
                        let allowance = received as f64 / c.min_body_rate as f64;
                        let allowance =
                            Duration::try_from_secs_f64(allowance).unwrap_or(Duration::MAX);
                        let whole =
                            after(self.body_start, c.body_timeout.saturating_add(allowance));
                        pause.min(whole)
                    }
                }
                Phase::Closing => after(self.last_io, c.send_timeout),
                Phase::Lingering(until) => until,
                Phase::Sse => match self.sse_heartbeat() {
                    Some(h) => after(self.last_io, h),
                    None => {
                        self.deadline = None;
                        return;
                    }
                },
                // Like an event stream without heartbeat: an idle stream
                // waits for the program; TCP keepalive finds a vanished
                // client (chunked coding has no no-op to send instead).
                Phase::Stream => {
                    self.deadline = None;
                    return;
                }
                Phase::Ws => match self.ws_deadline(c.inflate_pause_timeout) {
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

    /// The deadline passed. Returns whether to keep the connection; a request
    /// caught half-way gets a best-effort `408` first.
    pub fn on_timeout(&mut self, shared: &mut Shared, now: Instant) -> bool {
        let stalled = self.has_output() && after(self.last_io, shared.config.send_timeout) <= now;
        if !stalled {
            match self.phase {
                Phase::Sse => return self.sse_heartbeat_due(now),
                Phase::Stream => return true,
                Phase::Ws => {
                    let keep = self.ws_timeout_due(
                        now,
                        shared.config.inflate_pause_timeout,
                        shared.inflate.room(),
                    );
                    self.mark_ws_ready(shared);
                    return keep;
                }
                _ => {}
            }
        }
        if let Some(ws) = self.ws.as_mut() {
            ws.set_status(CloseStatus::Abnormal);
        }
        let partial = matches!(self.phase, Phase::Head | Phase::Body)
            && (self.request_start.is_some() || self.phase == Phase::Body);
        if partial && !self.has_output() && self.out.is_none() {
            self.respond_error(
                crate::status::StatusCode::REQUEST_TIMEOUT,
                "request not received in time",
                shared,
                now,
            );
            self.ready.writable = true;
            let _ = self.flush(usize::MAX);
        }
        log::debug!("{}: connection timed out", self.peer);
        false
    }

    /// The server is shutting down: a WebSocket is sent a close (1001), an
    /// event stream is ended; an HTTP exchange finishes on its own (the
    /// server answers with `Connection: close` while stopping). Returns
    /// false when the connection failed and must be closed now.
    pub fn go_away(&mut self, linger: Duration) -> bool {
        match self.phase {
            Phase::Ws => !matches!(
                self.ws_close(crate::ws::CloseCode::GOING_AWAY, "server shutting down"),
                Err(crate::ws::WsError::Backpressure | crate::ws::WsError::Io)
            ),
            Phase::Sse => {
                self.sse_close(linger);
                true
            }
            Phase::Stream => {
                self.stream_go_away(linger);
                true
            }
            _ => true,
        }
    }

    /// The connection is being closed (error, timeout, or the program's
    /// decision). Returns true when the slot must stay: a WebSocket's
    /// socket is shut and taken out of the poller, but the program can
    /// still take the messages that arrived (for
    /// [`closed_message_timeout`](crate::ServerConfig::closed_message_timeout))
    /// and read how it ended (for a linger timeout). The deadline is set
    /// afresh: an earlier pending one (a keepalive ping) does not cut the
    /// program's time short.
    pub fn retire(&mut self, shared: &mut Shared, now: Instant) -> bool {
        if self.dead {
            return false;
        }
        shared.activity.closed += 1;
        if let Some(sse) = &self.sse {
            shared.sse_ended.push(SseId(self.id, sse.exchange));
        }
        let Some(ws) = self.ws.as_mut() else {
            return false;
        };
        ws.set_status(CloseStatus::Abnormal);
        ws.discard_partial();
        ws.release_codecs(&mut shared.ws_pool);
        let messages = ws.has_messages();
        self.mark_ws_ready(shared);
        let keep = if messages {
            shared.config.closed_message_timeout
        } else {
            shared.config.linger_timeout
        };
        // Dropping the socket closes its descriptor (and takes it out of
        // the poller): a closed WebSocket's slot holds no descriptor.
        self.io = Box::new(super::transport::Closed);
        self.dead = true;
        self.rbuf = ReadBuf::default();
        self.wbuf = Vec::new();
        self.wpos = 0;
        self.shared.clear();
        self.memberships.shrink_to_fit();
        let at = after(now, keep);
        self.deadline = Some(at);
        self.send_deadline_from = None;
        shared.schedule(at);
        true
    }

    /// Brings a closed WebSocket's slot's end forward to `at` (the program
    /// has taken its last message).
    pub fn expire_by(&mut self, at: Instant, shared: &mut Shared) {
        let at = self.deadline.map_or(at, |d| d.min(at));
        self.deadline = Some(at);
        self.send_deadline_from = None;
        shared.schedule(at);
    }
}

/// [`Conn::make_room`] on a write buffer and its write position (for a
/// caller that holds another part of the connection borrowed).
fn make_room(wbuf: &mut Vec<u8>, wpos: &mut usize, add: usize, limit: usize) {
    let len = wbuf.len();
    if wbuf.capacity() - len >= add {
        return;
    }
    let unsent = len - *wpos;
    if unsent == 0 {
        // Nothing waits: the buffer grows as the bytes come (a large
        // message to an idle socket may not be copied at all).
        wbuf.clear();
        *wpos = 0;
        return;
    }
    let need = unsent.saturating_add(add);
    let ceiling = limit.saturating_add(limit / MAX_WBUF_OF_BOUND_DIV);
    let want = need.saturating_mul(2).min(ceiling).max(need);
    if *wpos * 2 >= len || want <= wbuf.capacity() {
        // Room enough once the written front is gone.
        wbuf.drain(..*wpos);
        *wpos = 0;
        if wbuf.capacity() - wbuf.len() >= add {
            return;
        }
    }
    let mut fresh = Vec::with_capacity(want);
    fresh.extend_from_slice(&wbuf[*wpos..]);
    *wbuf = fresh;
    *wpos = 0;
}
