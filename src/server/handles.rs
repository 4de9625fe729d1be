//! What the program holds on to: handles on one WebSocket, event stream or
//! kept stream (borrowed from the server for one operation), and the
//! cross-thread [`Sender`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::conn::{BufferPool, Conn, WsPop};
use super::Server;
use crate::error::Error;
use crate::group::{GroupId, Member};
use crate::outbox::Command;
use crate::sse::{SseError, SseEvent, SseId, SseSendError};
use crate::stream::{StreamId, StreamSendError};
use crate::ws::{CloseCode, CloseStatus, Message, WsError, WsEvent, WsId};

/// Access to one WebSocket, from [`Server::ws`]. Cheap to create: make one per
/// operation (`server.ws(id).send_text("hi")`).
pub struct WsHandle<'a, S> {
    pub(super) server: &'a mut Server<S>,
    pub(super) id: WsId,
}

impl<S> WsHandle<'_, S> {
    fn conn(&mut self) -> Option<&mut Conn> {
        self.server.conn_for(self.id.0)
    }

    /// The next complete message, if one has arrived; never blocks and never
    /// returns part of a fragmented message. Pongs are skipped (see
    /// [`receive_event`](Self::receive_event)).
    pub fn receive(&mut self) -> Option<Message> {
        loop {
            match self.receive_event()? {
                WsEvent::Message(m) => return Some(m),
                WsEvent::Pong(_) => continue,
            }
        }
    }

    /// Like [`receive`](Self::receive), but puts the message into `slot` and
    /// recycles the allocation `slot` held for a later message, on any
    /// WebSocket of this server. Returns false (leaving `slot` as it was)
    /// when no message is waiting. The server keeps recycled buffers of up to
    /// 256 KiB each, 8 MiB in all; larger ones are freed. A loop that
    /// receives into the same slot allocates nothing per message once warm:
    ///
    /// ```no_run
    /// # use pollserve::{Server, ws::Message};
    /// # use std::time::Duration;
    /// # fn main() -> Result<(), pollserve::Error> {
    /// # let mut server = Server::<()>::new();
    /// let mut slot = Message::Binary(Vec::new());
    /// loop {
    ///     server.poll(&mut (), Duration::from_millis(100))?;
    ///     for id in server.ws_ready().to_vec() {
    ///         while server.ws(id).receive_into(&mut slot) {
    ///             let _ = server.ws(id).send(&slot); // echo
    ///         }
    ///     }
    /// }
    /// # }
    /// ```
    pub fn receive_into(&mut self, slot: &mut Message) -> bool {
        let Some(message) = self.receive() else {
            return false;
        };
        let old = std::mem::replace(slot, message);
        self.server.shared.ws_pool.put(match old {
            Message::Text(text) => text.into_bytes(),
            Message::Binary(data) => data,
        });
        true
    }

    /// The next message or pong, if any.
    pub fn receive_event(&mut self) -> Option<WsEvent> {
        let key = self.id.0.slot as usize;
        let (event, after) = self.conn()?.ws_pop()?;
        match after {
            WsPop::Stay => {}
            WsPop::Resume => self.server.resume.push(key),
            WsPop::Release => {
                // The last message is taken: the socket leaves its groups,
                // and the slot stays only long enough for the program to
                // read how the socket ended.
                self.server.leave_all_groups(key);
                let at =
                    super::shared::after(Instant::now(), self.server.shared.config.linger_timeout);
                let Server { conns, shared, .. } = &mut *self.server;
                if let Some(conn) = conns.get_mut(key) {
                    conn.expire_by(at, shared);
                }
            }
        }
        event
    }

    /// Runs a send on the connection and applies the send policy: a peer
    /// that stopped reading (or a failed socket) loses its connection.
    fn send_with(
        &mut self,
        send: impl FnOnce(&mut Conn, &mut BufferPool) -> Result<(), WsError>,
    ) -> Result<(), WsError> {
        let key = self.id.0.slot as usize;
        let server = &mut *self.server;
        let conn = server
            .conns
            .get_mut(key)
            .filter(|c| c.id() == self.id.0)
            .ok_or(WsError::Closed)?;
        let result = send(conn, &mut server.shared.ws_pool);
        if matches!(result, Err(WsError::Backpressure | WsError::Io)) {
            self.server.close_conn(key);
        } else {
            self.server.after_send(key);
        }
        result
    }

    /// Sends a text message (split into frames of
    /// [`WsConfig::max_frame_size`](crate::ws::WsConfig::max_frame_size)).
    pub fn send_text(&mut self, text: &str) -> Result<(), WsError> {
        self.send_with(|c, pool| c.ws_send_data(pool, true, text.as_bytes()))
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), WsError> {
        self.send_with(|c, pool| c.ws_send_data(pool, false, data))
    }

    /// Sends a message of either kind.
    pub fn send(&mut self, message: &Message) -> Result<(), WsError> {
        match message {
            Message::Text(t) => self.send_text(t),
            Message::Binary(b) => self.send_binary(b),
        }
    }

    /// Sends a text message, ignoring failure (`adafruit_httpserver`'s
    /// `fail_silently=True`): returns whether it was sent.
    pub fn send_text_quiet(&mut self, text: &str) -> bool {
        self.send_text(text).is_ok()
    }

    /// Sends a binary message, ignoring failure; returns whether it was sent.
    pub fn send_binary_quiet(&mut self, data: &[u8]) -> bool {
        self.send_binary(data).is_ok()
    }

    /// Sends a ping (payload at most 125 bytes); the pong arrives as
    /// [`WsEvent::Pong`].
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), WsError> {
        self.send_with(|c, _| c.ws_ping(payload))
    }

    /// Starts the closing handshake with `code` and `reason` (truncated to 123
    /// bytes on a character boundary). Nothing more can be sent; messages that
    /// arrived before the peer's close can still be received.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), WsError> {
        self.send_with(|c, _| c.ws_close(code, reason))
    }

    /// Whether the WebSocket is closing or closed (or the id is stale): no
    /// more messages can be sent. Messages already received may still be
    /// waiting for [`receive`](Self::receive).
    pub fn is_closed(&mut self) -> bool {
        self.conn().is_none_or(|c| c.ws_is_closed())
    }

    /// How the WebSocket ended, once it has; `None` while open (or once the
    /// connection slot has been reused). It is set once, by the first of:
    /// the program's [`close`](Self::close) (`Local`, at once, before the
    /// peer answers), the peer's close frame (`Peer`), a protocol error or
    /// limit (`Failed`), or the connection ending without a close frame
    /// (`Abnormal`); a closing handshake that then fails does not change
    /// it.
    pub fn close_status(&mut self) -> Option<CloseStatus> {
        self.conn()?.ws_close_status()
    }

    /// The peer's address, while the connection exists.
    pub fn peer_addr(&mut self) -> Option<SocketAddr> {
        self.conn().map(|c| c.peer())
    }

    /// The permessage-deflate parameters this WebSocket negotiated
    /// (`None`: messages go uncompressed — the endpoint's
    /// [`WsOptions::deflate`](crate::ws::WsOptions::deflate) was `None`, or the
    /// client made no acceptable offer).
    pub fn deflate(&mut self) -> Option<crate::ws::DeflateParams> {
        self.conn()?.ws_deflate()
    }
}

/// Access to one event stream, from [`Server::sse`].
pub struct SseHandle<'a, S> {
    pub(super) server: &'a mut Server<S>,
    pub(super) id: SseId,
}

impl<S> SseHandle<'_, S> {
    /// Runs a send on the stream and applies the send policy: a client that
    /// stopped reading (or a failed socket) loses its connection.
    fn send_with(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), SseError>,
    ) -> Result<(), SseSendError> {
        let key = self.id.0.slot as usize;
        let conn = self
            .server
            .conn_for(self.id.0)
            .ok_or(SseSendError::Closed)?;
        let result = conn.sse_send(self.id.1, write);
        if matches!(result, Err(SseSendError::Backpressure | SseSendError::Io)) {
            self.server.close_conn(key);
        } else {
            self.server.after_send(key);
        }
        result
    }

    /// Sends one event.
    pub fn send(&mut self, event: &SseEvent<'_>) -> Result<(), SseSendError> {
        self.send_with(|out| event.encode(out))
    }

    /// Sends an event with only data (`adafruit_httpserver`'s `send_event(data)`).
    pub fn send_data(&mut self, data: &str) -> Result<(), SseSendError> {
        self.send(&SseEvent::new(data))
    }

    /// Sends an event, ignoring failure; returns whether it was sent.
    pub fn send_quiet(&mut self, event: &SseEvent<'_>) -> bool {
        self.send(event).is_ok()
    }

    /// Sends a comment line (ignored by clients; keeps proxies awake).
    pub fn comment(&mut self, text: &str) -> Result<(), SseSendError> {
        self.send_with(|out| {
            crate::proto::sse::encode_comment(text, out);
            Ok(())
        })
    }

    /// Ends the stream: what was sent is flushed, then the connection closes.
    /// A browser's `EventSource` reconnects unless told otherwise by the page.
    pub fn close(&mut self) {
        let linger = self.server.shared.config.linger_timeout;
        let Some(conn) = self.server.conn_for(self.id.0) else {
            return;
        };
        if !conn.sse_is(self.id.1) {
            return;
        }
        conn.sse_close(linger);
        let key = self.id.0.slot as usize;
        self.server.leave_ended_groups(key);
        self.server.after_send(key);
    }

    /// Whether the stream has ended (closed by either side) or the id is stale.
    pub fn is_closed(&mut self) -> bool {
        !self
            .server
            .conn_for(self.id.0)
            .is_some_and(|c| c.sse_open(self.id.1))
    }
}

/// Access to one kept stream, from [`Server::stream`]; see
/// [`stream`](crate::stream) for the framing and the send policy.
pub struct StreamHandle<'a, S> {
    pub(super) server: &'a mut Server<S>,
    pub(super) id: StreamId,
}

impl<S> StreamHandle<'_, S> {
    /// Queues `data` as one chunk (written at the next poll). An empty
    /// `data` sends nothing (it never ends the stream: that is
    /// [`end`](Self::end)). A client too far behind loses its stream
    /// ([`StreamSendError::Backpressure`]).
    ///
    /// ```no_run
    /// # use pollserve::{Server, stream::StreamId};
    /// # fn push(server: &mut Server<()>, id: StreamId, reading: f32) {
    /// match server.stream(id).send(format!("{reading:.1}\n").as_bytes()) {
    ///     Ok(()) => {}
    ///     Err(e) => eprintln!("stream ended: {e}"),
    /// }
    /// # }
    /// ```
    pub fn send(&mut self, data: &[u8]) -> Result<(), StreamSendError> {
        let key = self.id.0.slot as usize;
        let conn = self
            .server
            .conn_for(self.id.0)
            .ok_or(StreamSendError::Closed)?;
        let result = conn.stream_send(self.id.1, data);
        if matches!(result, Err(StreamSendError::Backpressure)) {
            self.server.close_conn(key);
        } else {
            self.server.after_send(key);
        }
        result
    }

    /// Sends a chunk, ignoring failure (`adafruit_httpserver`'s
    /// `fail_silently`); returns whether it was queued.
    pub fn send_quiet(&mut self, data: &[u8]) -> bool {
        self.send(data).is_ok()
    }

    /// Ends the stream: what was sent is written, then the terminating
    /// chunk; the connection then serves the client's next request
    /// (HTTP/1.1 keep-alive) or closes (HTTP/1.0, or the server is
    /// stopping). Does nothing on a stream that has already ended.
    pub fn end(&mut self) {
        let key = self.id.0.slot as usize;
        let stopping = self.server.shared.stopping;
        let Some(conn) = self.server.conn_for(self.id.0) else {
            return;
        };
        if conn.stream_end(self.id.1, stopping) {
            self.server.leave_ended_groups(key);
            self.server.after_send(key);
            // Driven at the next poll even with nothing left to write: the
            // connection closes, or reads requests the client sent meanwhile.
            self.server.resume.push(key);
        }
    }

    /// Whether the stream has ended (by either side), was never opened (a
    /// `HEAD` request), or the id is stale.
    pub fn is_closed(&mut self) -> bool {
        !self
            .server
            .conn_for(self.id.0)
            .is_some_and(|c| c.stream_open(self.id.1))
    }

    /// Bytes sent on the stream and not yet taken by the client, framing
    /// included (0 once closed). A program that would rather skip data for a
    /// slow client than lose the stream compares this with what it is about
    /// to send and [`StreamOptions::max_send_buffer`](crate::stream::StreamOptions::max_send_buffer).
    pub fn queued(&mut self) -> usize {
        self.server
            .conn_for(self.id.0)
            .map_or(0, |c| c.stream_queued(self.id.1))
    }

    /// The client's address, while its connection exists.
    pub fn peer_addr(&mut self) -> Option<SocketAddr> {
        self.server.conn_for(self.id.0).map(|c| c.peer())
    }
}

/// A `Send + Clone` handle for sending to WebSockets, event streams, kept
/// streams and [groups](crate::group) from other threads, from [`Server::sender`]. Each call queues the message and
/// wakes the poll loop, which sends it; errors (closed sockets) are dropped as
/// with the `*_quiet` sends. Inside a handler, on the poll thread, use
/// [`Request::outbox`](crate::Request::outbox) instead: no channel, no wake-up.
///
/// A call fails with [`Error::ServerGone`] once the server was dropped, and
/// with [`Error::SenderQueueFull`] while more than [`MAX_SENDER_QUEUE`]
/// bytes (64 MiB) of commands wait for a poll loop that does not take them
/// (it is not polling, or the thread sends faster than it can be served):
/// the queue never grows without bound.
///
/// The poll loop carries out the queue a share per [`Server::poll`], in
/// the order queued: at most 64 commands, 256 KiB of them and 16,384
/// deliveries (a message queued on one connection) per poll, at least one
/// command; what is left waits for the next poll, which then does not wait
/// for the network ([`Server::next_deadline`] is now). A thread that floods
/// the queue so delays its own messages, not the server's clients; the
/// count waiting is [`ServerStats::sender_queued`](crate::ServerStats::sender_queued).
#[derive(Clone)]
pub struct Sender {
    pub(super) remote: Arc<Remote>,
}

/// The cross-thread mailbox: commands plus the waker that interrupts `poll`.
pub(super) struct Remote {
    pub queue: Mutex<RemoteQueue>,
    pub waker: mio::Waker,
}

/// What other threads queued for the poll loop.
#[derive(Default)]
pub(super) struct RemoteQueue {
    pub commands: std::collections::VecDeque<Command>,
    /// Bytes the commands not yet carried out hold (see
    /// [`Command::weight`]): those queued and those of the batch the poll
    /// loop is running, so a producer cannot queue another
    /// [`MAX_SENDER_QUEUE`] while a batch runs.
    pub bytes: usize,
    /// The server was dropped: nothing will take the commands.
    pub closed: bool,
}

/// Most bytes of commands a [`Sender`] queues for a poll loop that has not
/// carried them out yet (those of the batch it is running count too).
pub const MAX_SENDER_QUEUE: usize = 64 << 20;

/// Commands from [`Sender`]s carried out in one poll round at most: the
/// queue is worked through a share per round, like a connection's input
/// (32 requests answered), so
/// a thread that floods it cannot hold the loop for the clients.
const SENDER_COMMANDS_PER_ROUND: usize = 64;
/// Bytes of such commands (see [`Command::weight`]) carried out in one
/// round at most (at least one command runs, whatever its size): the 256
/// KiB a connection's reads may bring in one round.
const SENDER_BYTES_PER_ROUND: usize = 256 << 10;
/// Deliveries (a message queued on one connection) those commands may make
/// in one round: past it, the rest waits for the next round, so a flood of
/// group sends to a large group is paced too (at least one command runs).
const SENDER_DELIVERIES_PER_ROUND: usize = 16_384;

impl Sender {
    fn push(&self, command: Command) -> Result<(), Error> {
        let weight = command.weight();
        {
            let mut queue = self.remote.queue.lock().unwrap_or_else(|p| p.into_inner());
            if queue.closed {
                return Err(Error::ServerGone);
            }
            if queue.bytes.saturating_add(weight) > MAX_SENDER_QUEUE {
                return Err(Error::SenderQueueFull {
                    queued: queue.bytes,
                    limit: MAX_SENDER_QUEUE,
                });
            }
            queue.bytes += weight;
            queue.commands.push_back(command);
        }
        self.remote.waker.wake()?;
        Ok(())
    }

    /// Queues a text message for `id`.
    pub fn send_text(&self, id: WsId, text: &str) -> Result<(), Error> {
        self.push(Command::Send(vec![id], Message::Text(text.to_owned())))
    }

    /// Queues a binary message for `id`.
    pub fn send_binary(&self, id: WsId, data: &[u8]) -> Result<(), Error> {
        self.push(Command::Send(vec![id], Message::Binary(data.to_vec())))
    }

    /// Queues one message for every id in `ids`. The poll loop encodes it
    /// once and shares the bytes, as [`Server::broadcast_text`] does.
    pub fn broadcast(&self, ids: &[WsId], message: Message) -> Result<(), Error> {
        self.push(Command::Send(ids.to_vec(), message))
    }

    /// Queues `member` joining `group` (see [`GroupHandle::join`](crate::GroupHandle::join)).
    pub fn join(&self, group: GroupId, member: impl Into<Member>) -> Result<(), Error> {
        self.push(Command::Join(group, member.into()))
    }

    /// Queues `member` leaving `group`.
    pub fn leave(&self, group: GroupId, member: impl Into<Member>) -> Result<(), Error> {
        self.push(Command::Leave(group, member.into()))
    }

    /// Queues one message for every WebSocket member of `group` (encoded
    /// once, as [`GroupHandle::broadcast_text`](crate::GroupHandle::broadcast_text)
    /// and `broadcast_binary` do).
    ///
    /// ```no_run
    /// # use pollserve::{group::GroupId, ws::Message};
    /// # fn feed(sender: pollserve::Sender, prices: GroupId) {
    /// std::thread::spawn(move || {
    ///     for price in [101.5, 101.7] {
    ///         let _ = sender.group_send(prices, Message::Text(format!("{price}")));
    ///     }
    /// });
    /// # }
    /// ```
    pub fn group_send(&self, group: GroupId, message: Message) -> Result<(), Error> {
        self.push(Command::GroupSend(group, message))
    }

    /// Queues `event` for every event-stream member of `group`. An event
    /// that cannot be encoded (line break in its type or id) is dropped.
    pub fn group_event(&self, group: GroupId, event: &SseEvent<'_>) -> Result<(), Error> {
        let mut bytes = Vec::new();
        if event.encode(&mut bytes).is_err() {
            return Ok(());
        }
        self.push(Command::GroupEvent(group, bytes))
    }

    /// Queues one chunk for every kept-stream member of `group` (an empty
    /// `data` sends nothing).
    pub fn group_chunk(&self, group: GroupId, data: &[u8]) -> Result<(), Error> {
        self.push(Command::GroupChunk(group, data.to_vec()))
    }

    /// Queues a close of `id`.
    pub fn close(&self, id: WsId, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.push(Command::Close(id, code, reason.to_owned()))
    }

    /// Queues an event (data, optional type and id) for every stream in `ids`.
    /// An event that cannot be encoded (line break in the type or id) is dropped.
    /// [`broadcast_event`](Self::broadcast_event) takes a whole [`SseEvent`]
    /// (with `retry` and the other fields).
    pub fn send_event(
        &self,
        ids: &[SseId],
        data: &str,
        event: Option<&str>,
        id: Option<&str>,
    ) -> Result<(), Error> {
        let mut e = SseEvent::new(data);
        if let Some(t) = event {
            e = e.event(t);
        }
        if let Some(i) = id {
            e = e.id(i);
        }
        self.broadcast_event(ids, &e)
    }

    /// Queues `event` for every stream in `ids`: the poll loop sends it as
    /// [`Server::broadcast_event`] does (the bytes encoded once, here, and
    /// shared). An event that cannot be encoded (line break in its type or
    /// id) is dropped.
    ///
    /// ```no_run
    /// # use pollserve::sse::{SseEvent, SseId};
    /// # fn feed(sender: pollserve::Sender, tabs: Vec<SseId>) {
    /// std::thread::spawn(move || {
    ///     for (n, reading) in [20.5, 20.7].into_iter().enumerate() {
    ///         let id = n.to_string();
    ///         let data = format!("{reading}");
    ///         let event = SseEvent::new(&data).event("temperature").id(&id).retry(5_000);
    ///         let _ = sender.broadcast_event(&tabs, &event);
    ///     }
    /// });
    /// # }
    /// ```
    pub fn broadcast_event(&self, ids: &[SseId], event: &SseEvent<'_>) -> Result<(), Error> {
        let mut bytes = Vec::new();
        if event.encode(&mut bytes).is_err() {
            return Ok(());
        }
        self.push(Command::Event(ids.to_vec(), bytes))
    }

    /// Queues the end of the event stream `id`.
    pub fn end_stream(&self, id: SseId) -> Result<(), Error> {
        self.push(Command::EndStream(id))
    }

    /// Queues one chunk for the kept stream `id` (an empty `data` sends
    /// nothing). Chunks from one thread arrive in the order queued.
    ///
    /// ```no_run
    /// # use pollserve::stream::StreamId;
    /// # fn camera(sender: pollserve::Sender, id: StreamId) -> Result<(), pollserve::Error> {
    /// std::thread::spawn(move || -> Result<(), pollserve::Error> {
    ///     for n in 0..3 {
    ///         sender.send_chunk(id, format!("frame {n}\n").as_bytes())?;
    ///     }
    ///     sender.end_chunked(id)
    /// });
    /// # Ok(()) }
    /// ```
    pub fn send_chunk(&self, id: StreamId, data: &[u8]) -> Result<(), Error> {
        self.push(Command::Chunk(id, data.to_vec()))
    }

    /// Queues the end of the kept stream `id` (after the chunks queued before).
    pub fn end_chunked(&self, id: StreamId) -> Result<(), Error> {
        self.push(Command::EndChunked(id))
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sender")
    }
}

impl<S> Server<S> {
    /// Carries out this round's share of what other threads queued through
    /// their [`Sender`]s (see [`Sender`]), in order; sets `remote_more`
    /// when some is left for the next round.
    pub(super) fn run_remote_commands(&mut self) {
        self.remote_more = false;
        let Some(remote) = self.remote.clone() else {
            return;
        };
        let mut batch = std::mem::take(&mut self.remote_batch);
        {
            let mut queue = remote.queue.lock().unwrap_or_else(|p| p.into_inner());
            let mut bytes = 0;
            while batch.len() < SENDER_COMMANDS_PER_ROUND {
                let Some(next) = queue.commands.front() else {
                    break;
                };
                let weight = next.weight();
                if !batch.is_empty() && bytes + weight > SENDER_BYTES_PER_ROUND {
                    break;
                }
                bytes += weight;
                batch.push(queue.commands.pop_front());
            }
        }
        // Run outside the lock, so producers are not held up meanwhile;
        // their weight stays counted until they have run.
        let mut deliveries = 0;
        let mut done = 0;
        let mut ran = 0;
        for command in batch.iter_mut() {
            if ran > 0 && deliveries >= SENDER_DELIVERIES_PER_ROUND {
                break;
            }
            let Some(command) = command.take() else {
                continue;
            };
            done += command.weight();
            deliveries += self.run_command(command);
            ran += 1;
        }
        let mut queue = remote.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.bytes = queue.bytes.saturating_sub(done);
        // What the delivery budget left goes back to the front, in order.
        for command in batch.drain(ran..).rev().flatten() {
            queue.commands.push_front(command);
        }
        if queue.closed {
            queue.commands.clear();
        }
        self.remote_more = !queue.commands.is_empty();
        if queue.commands.is_empty() && queue.commands.capacity() > 4 * SENDER_COMMANDS_PER_ROUND {
            // A flood's queue is released once worked through.
            queue.commands = Default::default();
        }
        drop(queue);
        batch.clear();
        self.remote_batch = batch;
    }

    /// Commands from [`Sender`]s waiting to be carried out.
    pub(super) fn sender_queued(&self) -> usize {
        self.remote.as_ref().map_or(0, |r| {
            r.queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .commands
                .len()
        })
    }

    /// Carries out what handlers queued through their requests' outboxes.
    pub(super) fn run_outbox_commands(&mut self) {
        let mut commands = std::mem::take(&mut self.shared.commands);
        self.run_commands(commands.drain(..));
        // A small queue's allocation is kept for the next handler that uses
        // it; a burst's is released.
        if commands.capacity() <= 64 {
            self.shared.commands = commands;
        }
    }

    /// Carries out queued commands in order; failures are skipped as with
    /// the `*_quiet` sends.
    pub(super) fn run_commands(&mut self, commands: impl IntoIterator<Item = Command>) {
        for command in commands {
            self.run_command(command);
        }
    }

    /// Carries out one command; returns the deliveries it made (1 for one
    /// that is not a send), the measure of its work.
    fn run_command(&mut self, command: Command) -> usize {
        match command {
            Command::Send(ids, message) => match ids[..] {
                [id] => {
                    let _ = self.ws(id).send(&message);
                    1
                }
                // One encoding for all of them.
                _ => {
                    let text = matches!(message, Message::Text(_));
                    let out = self.fan_out_ws(ids, text, message.as_bytes());
                    self.finish_fan_out(out).max(1)
                }
            },
            Command::Close(id, code, reason) => {
                let _ = self.ws(id).close(code, &reason);
                1
            }
            Command::Event(ids, bytes) => match ids[..] {
                [id] => {
                    let _ = self.sse(id).send_with(|out| {
                        out.extend_from_slice(&bytes);
                        Ok(())
                    });
                    1
                }
                _ => {
                    let out = self.fan_out_event(ids, &bytes);
                    self.finish_fan_out(out).max(1)
                }
            },
            Command::EndStream(id) => {
                self.sse(id).close();
                1
            }
            Command::Chunk(id, data) => {
                let _ = self.stream(id).send(&data);
                1
            }
            Command::EndChunked(id) => {
                self.stream(id).end();
                1
            }
            Command::Join(group, member) => {
                self.group_join(group, member);
                1
            }
            Command::Leave(group, member) => {
                self.group_leave(group, member);
                1
            }
            Command::GroupSend(group, message) => {
                let text = matches!(message, Message::Text(_));
                self.group_send(group, text, message.as_bytes()).max(1)
            }
            Command::GroupEvent(group, bytes) => self.group_event(group, &bytes).max(1),
            Command::GroupChunk(group, data) => self.group_chunk(group, &data).max(1),
        }
    }
}
