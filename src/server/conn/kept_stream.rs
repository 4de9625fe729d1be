//! The kept-stream transport: a response body the program pushes chunks to
//! between polls. It ends with the terminating chunk and gives the
//! connection back to keep-alive (or, on HTTP/1.0, closes it).

use std::net::Shutdown;
use std::time::{Duration, Instant};

use super::{Conn, Phase};
use crate::proto::http::{chunk_size, write_chunk, LAST_CHUNK};
use crate::server::fanout::ChunkBroadcast;
use crate::server::shared::after;
use crate::stream::{StreamOptions, StreamSendError};

/// Bytes of the client's next (pipelined) requests held while a stream
/// runs. The socket is read meanwhile only to see the client leave; once
/// this much is held it is not read until the stream ends.
pub(super) const STREAM_INPUT_HOLD: usize = 64 * 1024;

/// The state of a connection whose response is a kept stream.
pub(crate) struct StreamConn {
    options: StreamOptions,
    /// The request (its `Request::exchange`) the stream answers; ids of
    /// other requests on the connection do not name it.
    exchange: u32,
    /// Chunked coding (HTTP/1.1); otherwise the body ends at close.
    chunked: bool,
    /// The connection may serve another request after the stream.
    keep_alive: bool,
}

impl StreamConn {
    pub fn new(options: StreamOptions, exchange: u32, chunked: bool, keep_alive: bool) -> Self {
        StreamConn {
            options,
            exchange,
            chunked,
            keep_alive: keep_alive && chunked,
        }
    }
}

impl Conn {
    /// The open stream that answers request `exchange`, if there is one.
    fn stream_of(&self, exchange: u32) -> Option<&StreamConn> {
        if self.dead || self.phase != Phase::Stream {
            return None;
        }
        self.stream.as_deref().filter(|s| s.exchange == exchange)
    }

    /// Whether the stream of request `exchange` is open.
    pub(crate) fn stream_open(&self, exchange: u32) -> bool {
        self.stream_of(exchange).is_some()
    }

    /// Bytes queued on the stream of request `exchange` and not yet written
    /// (0 when it is not open).
    pub(crate) fn stream_queued(&self, exchange: u32) -> usize {
        match self.stream_of(exchange) {
            Some(_) => self.pending_len(),
            None => 0,
        }
    }

    /// Queues `data` as one chunk of the stream of request `exchange`
    /// (written at the next poll). The framing goes straight into the write
    /// buffer: nothing is allocated beyond growing it.
    pub(crate) fn stream_send(
        &mut self,
        exchange: u32,
        data: &[u8],
    ) -> Result<(), StreamSendError> {
        let Some(stream) = self.stream_of(exchange) else {
            return Err(StreamSendError::Closed);
        };
        if data.is_empty() {
            // An empty chunk would end a chunked body: nothing to send.
            return Ok(());
        }
        let chunked = stream.chunked;
        let limit = stream.options.max_send_buffer;
        let len = if chunked {
            chunk_size(data.len())
        } else {
            data.len()
        };
        if len > limit {
            return Err(StreamSendError::ChunkTooLarge { len, limit });
        }
        if self.pending_len().saturating_add(len) > limit {
            return Err(StreamSendError::Backpressure);
        }
        if self.pending_len() == 0 {
            // The send timeout counts from here.
            self.last_io = Instant::now();
        }
        self.make_room(len, limit);
        if chunked {
            write_chunk(&mut self.wbuf, data);
        } else {
            self.wbuf.extend_from_slice(data);
        }
        Ok(())
    }

    /// Queues a broadcast chunk (framed once per framing, shared with the
    /// other streams) on the stream of request `exchange`, with the checks
    /// and bound of [`stream_send`](Self::stream_send).
    pub(crate) fn stream_broadcast(
        &mut self,
        exchange: u32,
        chunk: &mut ChunkBroadcast<'_>,
        now: Instant,
    ) -> Result<(), StreamSendError> {
        let Some(stream) = self.stream_of(exchange) else {
            return Err(StreamSendError::Closed);
        };
        if chunk.data.is_empty() {
            // An empty chunk would end a chunked body: nothing to send.
            return Ok(());
        }
        let chunked = stream.chunked;
        let limit = stream.options.max_send_buffer;
        let len = if chunked {
            chunk_size(chunk.data.len())
        } else {
            chunk.data.len()
        };
        if len > limit {
            return Err(StreamSendError::ChunkTooLarge { len, limit });
        }
        let pending = self.pending_len();
        if pending.saturating_add(len) > limit {
            return Err(StreamSendError::Backpressure);
        }
        self.queue_shared(chunk.frame(chunked), limit);
        if pending == 0 {
            // The send timeout counts from here.
            self.last_io = now;
        }
        Ok(())
    }

    /// Ends the stream of request `exchange`: the terminating chunk is
    /// queued, and the connection then reads the client's next request, or
    /// closes (HTTP/1.0, `Connection: close`, or the server `stopping`).
    /// Returns false when that stream was not open.
    pub(crate) fn stream_end(&mut self, exchange: u32, stopping: bool) -> bool {
        if self.stream_of(exchange).is_none() {
            return false;
        }
        self.finish_stream(!stopping);
        true
    }

    /// The server is shutting down: the stream ends and the connection
    /// closes (what is queued is flushed first, as for an event stream).
    pub(super) fn stream_go_away(&mut self, linger: Duration) {
        if self.phase == Phase::Stream {
            self.finish_stream(false);
            if self.flush_outside_loop().is_ok() && !self.has_output() {
                let _ = self.io.shutdown(Shutdown::Write);
                self.phase = Phase::Lingering(after(Instant::now(), linger));
            }
        }
    }

    fn finish_stream(&mut self, keep_alive: bool) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        if stream.chunked {
            self.wbuf.extend_from_slice(LAST_CHUNK);
        }
        self.phase = if keep_alive && stream.keep_alive {
            Phase::Head
        } else {
            Phase::Closing
        };
    }
}
