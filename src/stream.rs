//! Byte streams the program keeps and pushes to, the response counterpart of
//! [`sse`](crate::sse): accept in a handler, keep the [`StreamId`], send
//! chunks between polls through [`Server::stream`](crate::Server::stream)
//! whenever the program has data (a camera frame, a log line, a sensor
//! reading), and [`end`](crate::StreamHandle::end) it when done.
//!
//! [`Response::chunked`](crate::Response::chunked) serves a body from an
//! iterator, which the server pulls as the client reads: it cannot wait for
//! data that does not exist yet. A kept stream can.
//!
//! ```no_run
//! use pollserve::{Method, Server, stream::StreamId};
//! use std::time::Duration;
//!
//! let mut server = Server::<Vec<StreamId>>::new();
//! server.route("/log", Method::GET, |req, streams: &mut Vec<StreamId>| {
//!     let (response, id) = req.accept_stream("text/plain; charset=utf-8")?;
//!     streams.push(id);
//!     Ok(response)
//! })?;
//! server.start("127.0.0.1", 5000)?;
//! let mut streams = Vec::new();
//! for n in 0.. {
//!     server.poll(&mut streams, Duration::from_secs(1))?;
//!     let line = format!("tick {n}\n");
//!     server.broadcast_chunk(&streams, line.as_bytes());
//!     if n % 10 == 9 {
//!         for &id in &streams {
//!             server.stream(id).end(); // the terminating chunk; the connection stays
//!         }
//!     }
//!     streams.retain(|&s| !server.stream(s).is_closed());
//! }
//! # Ok::<(), pollserve::Error>(())
//! ```
//!
//! # Framing
//!
//! An HTTP/1.1 client gets `Transfer-Encoding: chunked`, one chunk per
//! [`send`](crate::StreamHandle::send); after
//! [`end`](crate::StreamHandle::end) the terminating chunk is sent and the
//! connection goes back to keep-alive, serving the client's next request. An
//! HTTP/1.0 client gets the bytes unframed, and the connection closes at the
//! end. A `HEAD` request gets the head only: no stream is kept and the id
//! reports closed from the start.
//!
//! # Backpressure and deadlines
//!
//! The same policy as event streams. Sends are queued and written at the next
//! poll. A client that reads slower than the program sends lets unsent bytes
//! pile up to [`StreamOptions::max_send_buffer`]; the send that would go
//! over fails with [`StreamSendError::Backpressure`] and the stream is closed
//! (a partial body cannot be resumed). A program that prefers dropping data
//! for a slow client (a video frame) checks
//! [`queued`](crate::StreamHandle::queued) first. Bytes waiting for a
//! client that reads nothing end the connection after
//! [`ServerConfig::send_timeout`](crate::ServerConfig::send_timeout).
//!
//! An idle stream has no deadline of its own, like an event stream without
//! heartbeat: chunked coding has no no-op chunk that could serve as one.
//! A client that closes its connection is seen at once
//! ([`is_closed`](crate::StreamHandle::is_closed)); one that vanished
//! without closing is found by TCP keepalive
//! ([`ServerConfig::tcp_keepalive`](crate::ServerConfig::tcp_keepalive),
//! on by default) or when the next send times out. A program that wants
//! idle streams ended ends them itself.

use crate::error::HttpError;
use crate::request::{ConnId, Request};
use crate::response::{Body, Response};
use crate::status::StatusCode;

/// Identifies one accepted stream; small and `Copy`, like
/// [`SseId`](crate::sse::SseId). It names one response: once that stream
/// has ended, the id stays closed even if the connection serves more
/// requests (and more streams) afterwards.
///
/// Ids are ordered (`Ord`) in an arbitrary but fixed order, so they can key a
/// `BTreeMap` or be sorted and deduplicated; the order says nothing about
/// when the connections opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub(crate) ConnId, pub(crate) u32);

impl StreamId {
    /// The connection the stream is sent on: the id its request had
    /// ([`Request::conn_id`](crate::Request::conn_id)).
    pub fn conn(&self) -> ConnId {
        self.0
    }
}

/// For logs: `stream#`, the connection's slot and generation (as its
/// [`ConnId`] prints them) and the number of the response on it, e.g.
/// `stream#12.3.2`. Two ids that ever named different streams print
/// differently.
impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.write_id(f, "stream", Some(self.1))
    }
}

/// Settings of one kept stream.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Most unsent bytes (chunk framing included) queued for a client that
    /// does not read; a send that would queue more closes the stream
    /// ([`StreamSendError::Backpressure`]), and one chunk larger than this
    /// is refused ([`StreamSendError::ChunkTooLarge`]). The memory this
    /// bounds is as for
    /// [`WsOptions::max_send_buffer`](crate::ws::WsOptions::max_send_buffer):
    /// a write buffer of at most 1.25 times this bound, plus 32 bytes per
    /// queued shared chunk. Default 1 MiB.
    pub max_send_buffer: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            max_send_buffer: 1 << 20,
        }
    }
}

/// Why sending on a kept stream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamSendError {
    /// The stream has ended (by the program or the client), was never
    /// opened (a `HEAD` request, or the handler answered with another
    /// response), or the id is stale.
    #[error("stream is closed")]
    Closed,
    /// The chunk would have made more than
    /// [`StreamOptions::max_send_buffer`] bytes wait for a client that is
    /// not reading fast enough; the stream has been closed (nothing of the
    /// chunk was queued).
    #[error("client is not reading; stream closed")]
    Backpressure,
    /// The chunk alone, framed, is larger than
    /// [`StreamOptions::max_send_buffer`]: it was not sent, and the stream
    /// stays open. Send it in smaller pieces, or raise the bound.
    #[error("chunk of {len} bytes exceeds the send buffer bound of {limit} bytes")]
    ChunkTooLarge {
        /// The framed chunk's size.
        len: usize,
        /// The stream's `max_send_buffer`.
        limit: usize,
    },
}

impl Request {
    /// Answers with a stream of `content_type` the program keeps (`200`,
    /// chunked on HTTP/1.1) and returns the id to keep. Send chunks with
    /// [`Server::stream`](crate::Server::stream); see [`stream`](crate::stream).
    ///
    /// A `content_type` that is not a valid header value (a line break) is
    /// a `500`.
    pub fn accept_stream(&self, content_type: &str) -> Result<(Response, StreamId), HttpError> {
        self.accept_stream_with(content_type, StreamOptions::default())
    }

    /// [`accept_stream`](Self::accept_stream) with explicit options.
    ///
    /// ```
    /// use pollserve::{Request, Response, HttpError, stream::{StreamId, StreamOptions}};
    /// fn camera(req: &Request, viewers: &mut Vec<StreamId>) -> Result<Response, HttpError> {
    ///     let options = StreamOptions { max_send_buffer: 4 << 20 };
    ///     let (response, id) = req.accept_stream_with("video/mp2t", options)?;
    ///     viewers.push(id);
    ///     Ok(response.with_header("Cache-Control", "no-store"))
    /// }
    /// ```
    pub fn accept_stream_with(
        &self,
        content_type: &str,
        options: StreamOptions,
    ) -> Result<(Response, StreamId), HttpError> {
        if !crate::headers::is_valid_value(content_type) {
            return Err(HttpError::internal(format!(
                "invalid stream content type {content_type:?}"
            )));
        }
        let mut response = Response::new(StatusCode::OK)
            .with_header("Content-Type", content_type)
            // Asks buffering reverse proxies (nginx) to pass chunks through at once.
            .with_header("X-Accel-Buffering", "no");
        response.body = Body::Push(Box::new(options));
        Ok((response, StreamId(self.conn, self.exchange)))
    }
}
