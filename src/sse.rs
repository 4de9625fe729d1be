//! Server-Sent Events streams the program keeps, like `adafruit_httpserver`'s `SSEResponse`:
//! accept in a handler, keep the [`SseId`], push events between polls through
//! [`Server::sse`](crate::Server::sse).
//!
//! ```no_run
//! use pollserve::{Method, Server, sse::{SseEvent, SseId}};
//! use std::time::Duration;
//!
//! let mut server = Server::<Vec<SseId>>::new();
//! server.route("/events", Method::GET, |req, streams: &mut Vec<SseId>| {
//!     let resumed_after = req.last_event_id();      // a reconnecting client
//!     let (response, id) = req.accept_sse()?;
//!     streams.push(id);
//!     let _ = resumed_after;
//!     Ok(response)
//! })?;
//! server.start("127.0.0.1", 5000)?;
//! let mut streams = Vec::new();
//! let mut n = 0u64;
//! loop {
//!     server.poll(&mut streams, Duration::from_secs(1))?;
//!     n += 1;
//!     let id = n.to_string();
//!     server.broadcast_event(&streams, &SseEvent::new(&format!("tick {n}")).id(&id));
//!     streams.retain(|&s| !server.sse(s).is_closed());
//! }
//! # Ok::<(), pollserve::Error>(())
//! ```
//!
//! [`Server::broadcast_event`](crate::Server::broadcast_event) encodes the
//! event once and queues the same bytes on every stream (one copy in
//! memory, however many clients); a [`group`](crate::group) keeps the list
//! of streams for the program, dropping the ones that ended, and
//! [`Server::sse_ended`](crate::Server::sse_ended) lists after each poll the
//! streams that ended in it, for a program that keeps its own. A client too
//! slow for [`SseOptions::max_send_buffer`] loses its stream; the others go
//! on.
//!
//! On the wire the stream is the rest of the connection: the response has
//! neither `Content-Length` nor chunked coding (an event stream is read
//! until the connection ends, which browsers' `EventSource` and HTTP
//! clients expect), and the `GET`'s head says `Connection: close`. A client
//! reading raw bytes sees the head, a blank line, then the events as
//! `data: …` lines, each event ending with a blank line.

use std::time::Duration;

use crate::error::HttpError;
use crate::request::{ConnId, Request};
use crate::response::{Body, Response};
use crate::status::StatusCode;

pub use crate::proto::sse::{SseError, SseEvent};

/// Identifies one accepted event stream; small and `Copy`, like
/// [`WsId`](crate::ws::WsId). It names one response: the id a `HEAD`
/// request's handler got stays closed even if the connection goes on to
/// carry a stream.
///
/// Ids are ordered (`Ord`) in an arbitrary but fixed order, so they can key a
/// `BTreeMap` or be sorted and deduplicated; the order says nothing about
/// when the connections opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SseId(pub(crate) ConnId, pub(crate) u32);

impl SseId {
    /// The connection the stream is sent on: the id its request had
    /// ([`Request::conn_id`]).
    pub fn conn(&self) -> ConnId {
        self.0
    }
}

/// For logs: `sse#`, the connection's slot and generation (as its
/// [`ConnId`] prints them) and the number of the response on it, e.g.
/// `sse#12.3.1`. Two ids that ever named different streams print
/// differently.
impl std::fmt::Display for SseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.write_id(f, "sse", Some(self.1))
    }
}

/// Settings of one event stream.
#[derive(Debug, Clone)]
pub struct SseOptions {
    /// A comment line is sent after this long without an event, so proxies
    /// and browsers do not drop an idle stream. Default 15 s; `None` disables.
    pub heartbeat: Option<Duration>,
    /// Most unsent bytes queued for a client that does not read (its own
    /// events and the broadcast events queued on it, each counted in full);
    /// a send that would queue more closes the stream
    /// ([`SseSendError::Backpressure`]), and one event larger than this is
    /// refused ([`SseSendError::EventTooLarge`]). The memory this bounds is
    /// as for [`WsOptions::max_send_buffer`](crate::ws::WsOptions::max_send_buffer):
    /// a write buffer of at most 1.25 times this bound, plus 32 bytes per
    /// queued shared event. Default 1 MiB.
    pub max_send_buffer: usize,
}

impl Default for SseOptions {
    fn default() -> Self {
        SseOptions {
            heartbeat: Some(Duration::from_secs(15)),
            max_send_buffer: 1 << 20,
        }
    }
}

/// Why sending on an event stream failed. The transport outcomes match
/// [`WsError`](crate::ws::WsError)'s (see there why they are two types).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseSendError {
    /// The stream was closed (by the program or the client), or the id is stale.
    #[error("event stream is closed")]
    Closed,
    /// The id names a connection that is not an event stream.
    #[error("connection is not an event stream")]
    NotEventStream,
    /// The event cannot be encoded (line break in a field…).
    #[error(transparent)]
    Encode(#[from] SseError),
    /// The event would have made more than [`SseOptions::max_send_buffer`]
    /// bytes wait for a client that is not reading fast enough; the stream
    /// has been closed (nothing of the event was queued).
    #[error("client is not reading; stream closed")]
    Backpressure,
    /// The event alone, encoded, is larger than
    /// [`SseOptions::max_send_buffer`]: it was not sent, and the stream stays
    /// open. Raise the bound to send events this large.
    #[error("event of {len} bytes exceeds the send buffer bound of {limit} bytes")]
    EventTooLarge {
        /// The encoded event's size.
        len: usize,
        /// The stream's `max_send_buffer`.
        limit: usize,
    },
    /// The connection failed while writing.
    #[error("connection failed while sending")]
    Io,
}

impl Request {
    /// Answers with an event stream (`200`, `text/event-stream`) and returns
    /// the id to keep. Send events with [`Server::sse`](crate::Server::sse).
    ///
    /// A `HEAD` request gets the same head and no body; no stream is kept,
    /// the id reports closed at once, and the connection stays open for the
    /// client's next request.
    pub fn accept_sse(&self) -> Result<(Response, SseId), HttpError> {
        self.accept_sse_with(SseOptions::default())
    }

    /// [`accept_sse`](Self::accept_sse) with explicit options.
    pub fn accept_sse_with(&self, options: SseOptions) -> Result<(Response, SseId), HttpError> {
        let mut response = Response::new(StatusCode::OK)
            .with_header("Content-Type", "text/event-stream")
            .with_header("Cache-Control", "no-cache")
            // Asks buffering reverse proxies (nginx) to pass events through at once.
            .with_header("X-Accel-Buffering", "no");
        response.body = Body::Sse(Box::new(options));
        Ok((response, SseId(self.conn, self.exchange)))
    }

    /// The `Last-Event-ID` a reconnecting `EventSource` sends: the id of the
    /// last event it received, so the stream can resume after it.
    pub fn last_event_id(&self) -> Option<&str> {
        self.header("Last-Event-ID")
    }
}
