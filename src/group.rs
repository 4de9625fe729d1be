//! Groups (topics, channels): sets of WebSockets, event streams and kept
//! streams that the server keeps for the program, to broadcast to.
//!
//! A dashboard pushes each reading to every open page; a chat room sends
//! each line to everyone in it. Without groups the program keeps a
//! `Vec<WsId>` per channel and prunes it of closed sockets; with a group,
//! the server does that: a member leaves by itself when its connection
//! closes or its stream ends.
//!
//! [`Server::new_group`](crate::Server::new_group) makes a group and returns
//! its [`GroupId`] (small and `Copy`, like the ids of its members);
//! [`Server::group`](crate::Server::group) gives a
//! [`GroupHandle`](crate::GroupHandle) to join, leave and broadcast. A handler
//! joins the client it accepts through its
//! [`Outbox`](crate::outbox::Outbox) (the server is busy running the handler),
//! and other threads through a [`Sender`](crate::Sender).
//!
//! ```no_run
//! use pollserve::{group::GroupId, Method, Server, sse::SseEvent};
//! use std::time::Duration;
//!
//! struct App { viewers: GroupId }
//!
//! let mut server = Server::<App>::new();
//! let viewers = server.new_group();
//! server.route("/ws", Method::GET, |req, app: &mut App| {
//!     let (response, ws) = req.accept_websocket()?;
//!     req.outbox().join(app.viewers, ws);
//!     Ok(response)
//! })?;
//! server.route("/events", Method::GET, |req, app: &mut App| {
//!     let (response, sse) = req.accept_sse()?;
//!     req.outbox().join(app.viewers, sse);
//!     Ok(response)
//! })?;
//! server.start("127.0.0.1", 5000)?;
//! let mut app = App { viewers };
//! let mut reading = 0.0f32;
//! loop {
//!     server.poll(&mut app, Duration::from_millis(100))?;
//!     reading += 0.1;
//!     let text = format!("{reading:.1}");
//!     // One encoding for all WebSockets, one for all event streams.
//!     server.group(viewers).broadcast_text(&text);
//!     server.group(viewers).broadcast_event(&SseEvent::new(&text));
//! }
//! # Ok::<(), pollserve::Error>(())
//! ```
//!
//! A broadcast is encoded once and its bytes are shared by every member it
//! is queued on (see [`Server::broadcast_text`](crate::Server::broadcast_text)):
//! memory for one broadcast is one copy plus a small reference per member.
//! Each member keeps its own send bound; one that falls behind past it is
//! dropped, and the others go on. A member whose connection closes leaves
//! at once, even a WebSocket whose last messages the program has not taken
//! yet (it still can, by the socket's id): [`GroupHandle::len`](crate::GroupHandle::len)
//! counts members whose connections have not ended. (A WebSocket in its
//! closing handshake — `is_closed()` already true — counts until its
//! connection ends, moments later, when the handshake completes or its
//! linger time passes.)
//!
//! # What bounds a program's own fan-out
//!
//! The server gives each client a bounded share of each poll round, and
//! paces what [`Sender`](crate::Sender)s queue, but a broadcast the program
//! makes is its own work: a chat loop that sends every line it receives to
//! a group of 5,000 does 5,000 deliveries per line, and one client sending
//! 256 lines per round makes that 1.28 M deliveries per round, seconds of
//! work on a small machine. Bound it where the lines come in: take a
//! bounded number of messages from each socket per round (the rest stay
//! queued; the program keeps the ids it left messages in, as below), and coalesce what a round brought into one
//! broadcast (one delivery per member per round, whatever the senders do),
//! or rate-limit each sender:
//!
//! ```no_run
//! # use pollserve::{group::GroupId, ws::WsId, Server};
//! # use std::time::Duration;
//! # fn run(server: &mut Server<()>, room: GroupId) -> Result<(), pollserve::Error> {
//! // Sockets the last round left messages in: `ws_ready` lists a socket
//! // again only when more arrives, so the program keeps these itself.
//! let mut backlog: Vec<WsId> = Vec::new();
//! loop {
//!     // With a backlog, the next round must not wait for the network.
//!     let wait = if backlog.is_empty() { Duration::from_millis(100) } else { Duration::ZERO };
//!     server.poll(&mut (), wait)?;
//!     let mut visit = std::mem::take(&mut backlog);
//!     visit.extend_from_slice(server.ws_ready());
//!     visit.sort_unstable();
//!     visit.dedup();
//!     let mut batch = String::new();
//!     for id in visit {
//!         // At most 16 messages per client per round.
//!         let mut taken = 0;
//!         while taken < 16 {
//!             match server.ws(id).receive() {
//!                 Some(pollserve::ws::Message::Text(line)) => {
//!                     batch.push_str(&line);
//!                     batch.push('\n');
//!                 }
//!                 Some(_) => {}
//!                 None => break,
//!             }
//!             taken += 1;
//!         }
//!         if taken == 16 {
//!             backlog.push(id); // maybe more: visit it next round
//!         }
//!     }
//!     // One broadcast per round, whatever the senders did.
//!     if !batch.is_empty() {
//!         server.group(room).broadcast_text(&batch);
//!     }
//! }
//! # }
//! ```
//!
//! A sender's own lines come back to it through the broadcast and count
//! against its send bound like anyone's: a client that sends a burst
//! without reading what comes back can reach
//! [`WsOptions::max_send_buffer`](crate::ws::WsOptions::max_send_buffer) and
//! lose its connection (`CloseStatus::Abnormal`, no close frame, as for any
//! reader that stops reading). Coalescing as above keeps that to one
//! delivery per round.
//!
//! (A closed WebSocket's untaken messages can still be received: visit it
//! until `receive` returns `None` before forgetting its id, even though
//! `is_closed()` is already true.)
//!
//! A group lives until [`GroupHandle::remove`](crate::GroupHandle::remove)
//! (its members stay connected):
//!
//! ```
//! let mut server = pollserve::Server::<()>::new();
//! let room = server.new_group();
//! assert!(server.group(room).is_empty());
//! assert!(server.group(room).exists());
//! server.group(room).remove();
//! assert!(!server.group(room).exists());
//! assert_eq!(server.group(room).broadcast_text("nobody hears this"), 0);
//! ```

use crate::request::ConnId;
use crate::sse::SseId;
use crate::stream::StreamId;
use crate::ws::WsId;

/// Identifies one group made by [`Server::new_group`](crate::Server::new_group).
/// Small and `Copy`; once the group is removed, the id stays harmless (it
/// names an empty group that nobody can join).
///
/// Ids are ordered (`Ord`) in an arbitrary but fixed order, so they can key a
/// `BTreeMap` or be sorted and deduplicated; the order says nothing about
/// when the connections opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// For logs: `group#` and the group's slot and generation, e.g.
/// `group#4.1`. Two ids that ever named different groups print
/// differently.
impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "group#{}.{}", self.slot, self.generation)
    }
}

/// A member of a group: a WebSocket, an event stream or a kept stream.
/// Made from their ids with `into()` (every method that takes a member
/// takes `impl Into<Member>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Member {
    /// A WebSocket: gets the group's text and binary messages.
    Ws(WsId),
    /// An event stream: gets the group's events.
    Sse(SseId),
    /// A kept stream: gets the group's chunks.
    Stream(StreamId),
}

/// For logs: as the member's own id prints (`ws#12.3`, `sse#12.3.1`,
/// `stream#12.3.2`).
impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Member::Ws(id) => id.fmt(f),
            Member::Sse(id) => id.fmt(f),
            Member::Stream(id) => id.fmt(f),
        }
    }
}

impl Member {
    /// The connection the member lives on.
    pub(crate) fn conn(&self) -> ConnId {
        match self {
            Member::Ws(id) => id.0,
            Member::Sse(id) => id.0,
            Member::Stream(id) => id.0,
        }
    }
}

impl From<WsId> for Member {
    fn from(id: WsId) -> Member {
        Member::Ws(id)
    }
}

impl From<SseId> for Member {
    fn from(id: SseId) -> Member {
        Member::Sse(id)
    }
}

impl From<StreamId> for Member {
    fn from(id: StreamId) -> Member {
        Member::Stream(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_prints_its_connection_numbers() {
        let conn = ConnId {
            slot: 12,
            generation: 3,
        };
        let ws = WsId(conn);
        let sse = SseId(conn, 1);
        let stream = StreamId(conn, 2);
        assert_eq!(conn.to_string(), "conn#12.3");
        assert_eq!(ws.to_string(), "ws#12.3");
        assert_eq!(sse.to_string(), "sse#12.3.1");
        assert_eq!(stream.to_string(), "stream#12.3.2");
        assert_eq!(Member::from(ws).to_string(), "ws#12.3");
        assert_eq!(Member::from(sse).to_string(), "sse#12.3.1");
        assert_eq!(Member::from(stream).to_string(), "stream#12.3.2");
        assert_eq!((ws.conn(), sse.conn(), stream.conn()), (conn, conn, conn));
        let group = GroupId {
            slot: 4,
            generation: 1,
        };
        assert_eq!(group.to_string(), "group#4.1");
    }
}
