//! Reaching other connections from inside a handler: [`Outbox`].
//!
//! A handler runs inside [`Server::poll`](crate::Server::poll), which holds
//! the server, so it cannot call [`Server::ws`](crate::Server::ws) itself.
//! Instead it asks [`Request::outbox`](crate::Request::outbox) to send to,
//! close or broadcast to WebSockets, event streams and kept streams; the server carries the
//! requests out, in order, once the handler's connection has been served
//! for this round, before it turns to any other connection. This is `adafruit_httpserver`'s
//! WebSocket example, where the handler that accepts a new client closes the
//! previous one:
//!
//! ```
//! use pollserve::{Method, Server, ws::{CloseCode, WsId}};
//!
//! #[derive(Default)]
//! struct App { client: Option<WsId> }
//!
//! let mut server = Server::<App>::new();
//! server.route("/connect-websocket", Method::GET, |req, app: &mut App| {
//!     let (response, ws) = req.accept_websocket()?;
//!     if let Some(old) = app.client.replace(ws) {
//!         req.outbox().close(old, CloseCode::NORMAL, "replaced by a new client");
//!     }
//!     req.outbox().send_text(ws, "welcome");
//!     Ok(response)
//! })?;
//! # Ok::<(), pollserve::Error>(())
//! ```

use std::sync::Mutex;

use crate::group::{GroupId, Member};
use crate::sse::{SseError, SseEvent, SseId};
use crate::stream::StreamId;
use crate::ws::{CloseCode, Message, WsId};

/// Sends, closes and broadcasts a handler asks for, carried out by the server
/// in order right after the handler's connection is served; get it with
/// [`Request::outbox`](crate::Request::outbox). See the [module
/// docs](self) for an example.
///
/// The calls cannot fail: what cannot be done when the server carries it out
/// (a closed or unknown id, a full send buffer) is skipped, as with the
/// `*_quiet` sends of [`WsHandle`](crate::WsHandle), and a client over its
/// send bound loses its connection, as with
/// [`WsHandle::send_text`](crate::WsHandle::send_text). The messages are
/// copied when queued. From another thread use
/// [`Sender`](crate::Sender) instead, which also wakes the poll loop.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Locked only by the handler's own calls (never contended: handlers run
    /// on the poll thread); the server drains it through `get_mut`, without
    /// locking. A `Mutex` rather than a `RefCell` keeps `Request` `Sync`.
    commands: Mutex<Vec<Command>>,
}

/// A request queued for the server by an [`Outbox`] or a
/// [`Sender`](crate::Sender).
#[derive(Debug)]
pub(crate) enum Command {
    Send(Vec<WsId>, Message),
    Close(WsId, CloseCode, String),
    /// An encoded event, the same bytes for every stream.
    Event(Vec<SseId>, Vec<u8>),
    EndStream(SseId),
    Chunk(StreamId, Vec<u8>),
    EndChunked(StreamId),
    Join(GroupId, Member),
    Leave(GroupId, Member),
    GroupSend(GroupId, Message),
    /// An encoded event for a group's event streams.
    GroupEvent(GroupId, Vec<u8>),
    GroupChunk(GroupId, Vec<u8>),
}

impl Command {
    /// Bytes this command holds, for the bound on a
    /// [`Sender`](crate::Sender)'s queue.
    pub(crate) fn weight(&self) -> usize {
        let ids = |n: usize| n * std::mem::size_of::<WsId>();
        std::mem::size_of::<Command>()
            + match self {
                Command::Send(to, m) => ids(to.len()) + m.len(),
                Command::Close(_, _, reason) => reason.len(),
                Command::Event(to, bytes) => ids(to.len()) + bytes.len(),
                Command::Chunk(_, bytes)
                | Command::GroupEvent(_, bytes)
                | Command::GroupChunk(_, bytes) => bytes.len(),
                Command::GroupSend(_, m) => m.len(),
                Command::EndStream(_)
                | Command::EndChunked(_)
                | Command::Join(..)
                | Command::Leave(..) => 0,
            }
    }
}

impl Outbox {
    fn push(&self, command: Command) {
        self.commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(command);
    }

    /// The queued commands, taken without locking (the server has the
    /// request to itself again once the handler returned).
    pub(crate) fn take_into(&mut self, into: &mut Vec<Command>) {
        let commands = self.commands.get_mut().unwrap_or_else(|p| p.into_inner());
        into.append(commands);
    }

    /// Sends a text message to the WebSocket `id`.
    pub fn send_text(&self, id: WsId, text: &str) {
        self.push(Command::Send(vec![id], Message::Text(text.to_owned())));
    }

    /// Sends a binary message to the WebSocket `id`.
    pub fn send_binary(&self, id: WsId, data: &[u8]) {
        self.push(Command::Send(vec![id], Message::Binary(data.to_vec())));
    }

    /// Sends one text message to every WebSocket in `ids` (one copy of the
    /// text is queued, whatever the number of ids, and the server encodes it
    /// once, as [`Server::broadcast_text`](crate::Server::broadcast_text)).
    pub fn broadcast_text(&self, ids: &[WsId], text: &str) {
        self.push(Command::Send(ids.to_vec(), Message::Text(text.to_owned())));
    }

    /// Sends one binary message to every WebSocket in `ids`.
    pub fn broadcast_binary(&self, ids: &[WsId], data: &[u8]) {
        self.push(Command::Send(ids.to_vec(), Message::Binary(data.to_vec())));
    }

    /// Starts the closing handshake of the WebSocket `id` with `code` and
    /// `reason` (at most 123 bytes are sent, cut at a character boundary).
    pub fn close(&self, id: WsId, code: CloseCode, reason: &str) {
        self.push(Command::Close(id, code, reason.to_owned()));
    }

    /// Sends `event` to the event stream `id`. The event is encoded now: an
    /// event that cannot be encoded (a line break in its type or id) is an
    /// `Err` here and nothing is queued.
    pub fn send_event(&self, id: SseId, event: &SseEvent<'_>) -> Result<(), SseError> {
        self.broadcast_event(&[id], event)
    }

    /// Sends `event` to every event stream in `ids`, encoded once.
    pub fn broadcast_event(&self, ids: &[SseId], event: &SseEvent<'_>) -> Result<(), SseError> {
        let mut bytes = Vec::new();
        event.encode(&mut bytes)?;
        self.push(Command::Event(ids.to_vec(), bytes));
        Ok(())
    }

    /// Ends the event stream `id` (what was sent is flushed first).
    pub fn end_stream(&self, id: SseId) {
        self.push(Command::EndStream(id));
    }

    /// Sends `data` as one chunk of the kept stream `id` (see
    /// [`stream`](crate::stream); an empty `data` sends nothing).
    pub fn send_chunk(&self, id: StreamId, data: &[u8]) {
        self.push(Command::Chunk(id, data.to_vec()));
    }

    /// Ends the kept stream `id` after what was sent on it.
    pub fn end_chunked(&self, id: StreamId) {
        self.push(Command::EndChunked(id));
    }

    /// Adds `member` to `group` (see [`GroupHandle::join`](crate::GroupHandle::join)).
    /// A handler that accepts a WebSocket or a stream can join it at once:
    /// the server carries this out after the response, when the member is
    /// open.
    ///
    /// ```
    /// use pollserve::{group::GroupId, Method, Server};
    /// struct App { chat: GroupId }
    /// let mut server = Server::<App>::new();
    /// let chat = server.new_group();
    /// server.route("/chat", Method::GET, |req, app: &mut App| {
    ///     let (response, ws) = req.accept_websocket()?;
    ///     req.outbox().join(app.chat, ws);
    ///     req.outbox().group_text(app.chat, "someone joined");
    ///     Ok(response)
    /// })?;
    /// # Ok::<(), pollserve::Error>(())
    /// ```
    pub fn join(&self, group: GroupId, member: impl Into<Member>) {
        self.push(Command::Join(group, member.into()));
    }

    /// Takes `member` out of `group`.
    pub fn leave(&self, group: GroupId, member: impl Into<Member>) {
        self.push(Command::Leave(group, member.into()));
    }

    /// Sends one text message to every WebSocket member of `group`
    /// ([`GroupHandle::broadcast_text`](crate::GroupHandle::broadcast_text)).
    pub fn group_text(&self, group: GroupId, text: &str) {
        self.push(Command::GroupSend(group, Message::Text(text.to_owned())));
    }

    /// Sends one binary message to every WebSocket member of `group`.
    pub fn group_binary(&self, group: GroupId, data: &[u8]) {
        self.push(Command::GroupSend(group, Message::Binary(data.to_vec())));
    }

    /// Sends `event` to every event-stream member of `group`, encoded now:
    /// an event that cannot be encoded is an `Err` and nothing is queued.
    pub fn group_event(&self, group: GroupId, event: &SseEvent<'_>) -> Result<(), SseError> {
        let mut bytes = Vec::new();
        event.encode(&mut bytes)?;
        self.push(Command::GroupEvent(group, bytes));
        Ok(())
    }

    /// Sends `data` as one chunk to every kept-stream member of `group`.
    pub fn group_chunk(&self, group: GroupId, data: &[u8]) {
        self.push(Command::GroupChunk(group, data.to_vec()));
    }
}
