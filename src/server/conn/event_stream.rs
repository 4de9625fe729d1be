//! The event-stream transport: a response that stays open while the program
//! pushes events, with heartbeats and a send bound.

use std::net::Shutdown;
use std::time::{Duration, Instant};

use super::{Conn, Phase};
use crate::server::fanout::EncodedBroadcast;
use crate::server::shared::after;
use crate::sse::{SseError, SseOptions, SseSendError};

/// The state of a connection that became an event stream.
pub(crate) struct SseConn {
    options: SseOptions,
    /// The request (its `Request::exchange`) the stream answers: an id
    /// from an earlier request on the connection (a `HEAD`) never names it.
    pub(super) exchange: u32,
}

impl SseConn {
    pub fn new(options: SseOptions, exchange: u32) -> SseConn {
        SseConn { options, exchange }
    }
}

impl Conn {
    /// How long the stream may stay silent before a heartbeat comment.
    pub(super) fn sse_heartbeat(&self) -> Option<Duration> {
        self.sse.as_ref()?.options.heartbeat
    }

    /// The heartbeat interval passed: sends a comment line. Returns whether
    /// to keep the connection.
    pub(super) fn sse_heartbeat_due(&mut self, now: Instant) -> bool {
        if self.has_output() {
            // The last heartbeat or event is still on its way: the send
            // timeout, not the heartbeat, governs now.
            return true;
        }
        crate::proto::sse::encode_comment("", &mut self.wbuf);
        self.last_io = now;
        self.ready.writable = true;
        self.flush(usize::MAX).is_ok()
    }

    /// The send bound of the open event stream answering request
    /// `exchange`, or why nothing can be queued on it.
    fn sse_send_bound(&self, exchange: u32) -> Result<usize, SseSendError> {
        let Some(sse) = self.sse.as_ref() else {
            return Err(SseSendError::NotEventStream);
        };
        if self.dead || self.phase != Phase::Sse || sse.exchange != exchange {
            return Err(SseSendError::Closed);
        }
        Ok(sse.options.max_send_buffer)
    }

    /// Appends what `write` produces to the queue of the event stream that
    /// answers request `exchange` (written at the next poll).
    pub(crate) fn sse_send(
        &mut self,
        exchange: u32,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), SseError>,
    ) -> Result<(), SseSendError> {
        let limit = self.sse_send_bound(exchange)?;
        // Encoded in place, then measured: what does not fit is taken back,
        // so the queue never holds more than the bound.
        // Room for a typical event within the buffer's bound (a larger one
        // grows the buffer as it is encoded).
        self.make_room(256, limit);
        let before = self.wbuf.len();
        let was_idle = self.pending_len() == 0;
        let encoded = write(&mut self.wbuf);
        let len = self.wbuf.len() - before;
        if encoded.is_err() || self.pending_len() > limit {
            self.wbuf.truncate(before);
            if self.wbuf.is_empty() {
                // Do not keep the capacity a refused event grew.
                self.wbuf = Vec::new();
                self.wpos = 0;
            }
            encoded?;
            return Err(if len > limit {
                SseSendError::EventTooLarge { len, limit }
            } else {
                SseSendError::Backpressure
            });
        }
        if was_idle {
            // The send timeout, and the heartbeat interval, count from here.
            self.last_io = Instant::now();
        }
        // Written when the server next drives the connection.
        Ok(())
    }

    /// Queues a broadcast event (encoded once, shared with the other
    /// streams) on the event stream that answers request `exchange`, with
    /// the checks and bound of [`sse_send`](Self::sse_send).
    pub(crate) fn sse_broadcast(
        &mut self,
        exchange: u32,
        event: &mut EncodedBroadcast<'_>,
        now: Instant,
    ) -> Result<(), SseSendError> {
        let limit = self.sse_send_bound(exchange)?;
        let len = event.bytes.len();
        if len > limit {
            return Err(SseSendError::EventTooLarge { len, limit });
        }
        let pending = self.pending_len();
        if pending.saturating_add(len) > limit {
            return Err(SseSendError::Backpressure);
        }
        self.queue_shared(event.frame(), limit);
        if pending == 0 {
            // The send timeout, and the heartbeat interval, count from here.
            self.last_io = now;
        }
        Ok(())
    }

    /// Ends an event stream: queued events are flushed, then the connection closes.
    pub(crate) fn sse_close(&mut self, linger: Duration) {
        if self.phase == Phase::Sse {
            self.phase = Phase::Closing;
            if self.flush_outside_loop().is_ok() && !self.has_output() {
                let _ = self.io.shutdown(Shutdown::Write);
                self.phase = Phase::Lingering(after(Instant::now(), linger));
            }
        }
    }

    /// Whether the connection is the event stream that answers request
    /// `exchange`, and can still be written.
    pub(crate) fn sse_open(&self, exchange: u32) -> bool {
        !self.dead && self.phase == Phase::Sse && self.sse_is(exchange)
    }

    /// Whether the connection's event stream (open or not) answers request
    /// `exchange`.
    pub(crate) fn sse_is(&self, exchange: u32) -> bool {
        self.sse.as_ref().is_some_and(|s| s.exchange == exchange)
    }
}
