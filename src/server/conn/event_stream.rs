//! The event-stream transport: a response that stays open while the program
//! pushes events, with heartbeats and a send bound.

use std::net::Shutdown;
use std::time::{Duration, Instant};

use super::{Conn, Phase};
use crate::server::shared::after;
use crate::sse::{SseError, SseOptions, SseSendError};

/// The state of a connection that became an event stream.
pub(crate) struct SseConn {
    options: SseOptions,
}

impl SseConn {
    pub fn new(options: SseOptions) -> SseConn {
        SseConn { options }
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

    /// Appends what `write` produces to an event stream's queue (written at
    /// the next poll).
    pub(crate) fn sse_send(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), SseError>,
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
        let limit = sse.options.max_send_buffer;
        // Encoded in place, then measured: what does not fit is taken back,
        // so the queue never holds more than the bound.
        let before = self.wbuf.len();
        let was_idle = self.wpos == before;
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

    /// Whether the connection is an event stream that can still be written.
    pub(crate) fn sse_open(&self) -> bool {
        !self.dead && self.phase == Phase::Sse
    }
}
