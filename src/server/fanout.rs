//! Broadcasting: a message is encoded once and its bytes are shared by every
//! connection it goes to.
//!
//! A server WebSocket frame is never masked, an event is the same bytes on
//! every stream, and a chunk is framed the same way on every kept stream: a
//! broadcast to N connections needs one encoding, not N. The encoded bytes
//! live in one reference-counted [`SharedFrame`]; each connection queues a
//! [`Segment`] that points into it (32 bytes), behind whatever it had queued
//! of its own, and writes its own bytes and the shared frames in order with
//! vectored writes (see `Conn::flush_shared`). A broadcast of 4 KiB to
//! 10,000 clients holds one 4 KiB buffer, not 40 MiB.
//!
//! Connections may want different bytes for the same message (a WebSocket
//! compresses it with its negotiated settings; an HTTP/1.0 kept stream has
//! no chunk framing): each broadcast keeps a small cache of encodings keyed
//! by what a connection needs (its session's
//! [`SharedEncoding`](crate::proto::ws::SharedEncoding), the framing of a
//! kept stream), so each distinct encoding is made, and compressed, once. A
//! connection whose bytes depend on its own state (a compressor that keeps
//! context between messages) encodes the message itself, as for a send.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::conn::BufferPool;
use super::conn::Conn;
use super::Server;
use crate::proto::deflate::Compressor;
use crate::proto::http::{chunk_head, CHUNK_HEAD_MAX};
use crate::proto::ws::{SharedEncoding, WsSession};
use crate::request::ConnId;
use crate::sse::{SseEvent, SseId, SseSendError};
use crate::stream::{StreamId, StreamSendError};
use crate::ws::{WsError, WsId};

/// Most slices handed to one vectored write (Linux takes up to 1024): 64
/// queued frames leave in one system call.
pub(crate) const MAX_SLICES: usize = 64;

/// Frames shorter than this are copied into the connection's own write
/// buffer instead of being queued as a reference. Measured (release build,
/// 10,000 connections, queue then hand to a write and release; two runs on
/// a shared 2-core machine): a copy costs 6–23 ns per connection up to 256
/// bytes against 13–30 ns for a reference (an atomic increment, a 32-byte
/// segment, an atomic decrement once written); from 512 bytes on the
/// reference wins (1 KiB: copy 46–120 ns, reference 14–25 ns; 4 KiB:
/// 540–640 ns against 18–28 ns). A copied frame also goes out in one slice
/// with the connection's own bytes, and what it holds per connection is
/// at most 8 segments' worth.
pub(crate) const COPY_BELOW: usize = 256;

/// Bytes encoded once for a broadcast and queued, unchanged, on many
/// connections.
#[derive(Clone)]
pub(crate) struct SharedFrame(Arc<FrameBytes>);

/// A shared frame's bytes, counted in its server's [`FrameBytesTotal`] for
/// as long as they live.
struct FrameBytes {
    bytes: Box<[u8]>,
    total: FrameBytesTotal,
}

impl Drop for FrameBytes {
    fn drop(&mut self) {
        self.total
            .0
            .fetch_sub(allocated_for(self.bytes.len()), Ordering::Relaxed);
    }
}

/// Bytes a shared frame of `len` bytes allocates: the bytes, and the
/// reference-counted block that points to them.
fn allocated_for(len: usize) -> usize {
    len + 2 * std::mem::size_of::<usize>() + std::mem::size_of::<FrameBytes>()
}

/// Bytes of a server's shared frames alive now, kept as frames are made
/// and dropped, so [`Server::stats`] reads it instead of walking every
/// queued frame (which took 0.4 s with 10,000 stalled connections).
#[derive(Clone, Default)]
pub(crate) struct FrameBytesTotal(Arc<AtomicUsize>);

impl FrameBytesTotal {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl SharedFrame {
    /// `head`, `body` and `tail` one after the other, in one allocation,
    /// counted in `total` while it lives. Zero-filled, then copied into:
    /// measured 10–20× faster than collecting the bytes through a chained
    /// iterator (which copies byte by byte).
    pub fn concat(head: &[u8], body: &[u8], tail: &[u8], total: &FrameBytesTotal) -> SharedFrame {
        let len = head.len() + body.len() + tail.len();
        let mut bytes = vec![0u8; len].into_boxed_slice();
        let (h, rest) = bytes.split_at_mut(head.len());
        let (b, t) = rest.split_at_mut(body.len());
        h.copy_from_slice(head);
        b.copy_from_slice(body);
        t.copy_from_slice(tail);
        total.0.fetch_add(allocated_for(len), Ordering::Relaxed);
        SharedFrame(Arc::new(FrameBytes {
            bytes,
            total: total.clone(),
        }))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    pub fn len(&self) -> usize {
        self.0.bytes.len()
    }
}

/// A shared frame queued on one connection.
struct Segment {
    frame: SharedFrame,
    /// Bytes of it already written.
    written: usize,
    /// Bytes of the connection's own write buffer that go before it (after
    /// the previous segment): kept relative, so the write buffer can be
    /// compacted or reset without touching the queue.
    own_before: usize,
}

/// Most segment slots a connection keeps allocated once its queue is empty
/// (32 bytes each): a steady broadcast does not allocate per message, a
/// burst's queue is released.
const KEEP_SEGMENTS: usize = 16;

/// The shared frames queued on one connection, interleaved with its own
/// bytes. Empty (one pointer, no allocation) on a connection nobody
/// broadcast to, and the plain write path then does nothing more than
/// check that; the queue is allocated at the first broadcast and kept
/// (a steady broadcast does not allocate per message).
#[derive(Default)]
pub(crate) struct SharedOutput(Option<Box<Queue>>);

#[derive(Default)]
struct Queue {
    segments: VecDeque<Segment>,
    /// Sum of the segments' `own_before`.
    own: usize,
    /// Unwritten bytes of the segments.
    pending: usize,
}

impl SharedOutput {
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.segments.is_empty())
    }

    /// Unwritten bytes of the queued frames (each counted in full, as the
    /// send bounds count them).
    pub fn pending(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.pending)
    }

    /// Queues `frame` after everything queued so far; `own_pending` is the
    /// connection's own unwritten bytes, which all go before it.
    pub fn push(&mut self, frame: SharedFrame, own_pending: usize) {
        let q = self.0.get_or_insert_with(Box::default);
        let own_before = own_pending.saturating_sub(q.own);
        q.own += own_before;
        q.pending += frame.len();
        q.segments.push_back(Segment {
            frame,
            written: 0,
            own_before,
        });
    }

    /// Fills `slices` with what goes out next, in order, from `own` (the
    /// connection's unwritten bytes) and the queued frames, up to `budget`
    /// bytes; returns the number of slices used.
    pub fn slices<'a>(&'a self, own: &'a [u8], budget: usize, slices: &mut [IoSlice<'a>]) -> usize {
        let segments = self.0.as_ref().map(|q| &q.segments).into_iter().flatten();
        let mut count = 0;
        let mut total = 0;
        let mut at = 0;
        let mut push = |bytes: &'a [u8], count: &mut usize, total: &mut usize| -> bool {
            let take = bytes.len().min(budget - *total);
            if take > 0 {
                if let Some(slot) = slices.get_mut(*count) {
                    *slot = IoSlice::new(&bytes[..take]);
                    *count += 1;
                    *total += take;
                }
            }
            *count < slices.len() && *total < budget
        };
        for segment in segments {
            let end = (at + segment.own_before).min(own.len());
            if !push(&own[at.min(end)..end], &mut count, &mut total) {
                return count;
            }
            at = end;
            let rest = segment.frame.bytes().get(segment.written..).unwrap_or(&[]);
            if !push(rest, &mut count, &mut total) {
                return count;
            }
        }
        // The connection's bytes queued after the last frame.
        push(own.get(at..).unwrap_or(&[]), &mut count, &mut total);
        count
    }

    /// Takes `n` written bytes off the front, in the order of
    /// [`slices`](Self::slices); returns how many of them were the
    /// connection's own (its write position moves by that much).
    pub fn advance(&mut self, mut n: usize) -> usize {
        let Some(q) = self.0.as_deref_mut() else {
            return n;
        };
        let mut own = 0;
        while n > 0 {
            let Some(front) = q.segments.front_mut() else {
                // Own bytes after the last frame.
                own += n;
                break;
            };
            let before = n.min(front.own_before);
            front.own_before -= before;
            q.own -= before;
            own += before;
            n -= before;
            let rest = front.frame.len() - front.written;
            let taken = n.min(rest);
            front.written += taken;
            q.pending -= taken;
            n -= taken;
            if front.written == front.frame.len() && front.own_before == 0 {
                q.segments.pop_front();
            }
        }
        if q.segments.is_empty() && q.segments.capacity() > KEEP_SEGMENTS {
            q.segments = VecDeque::new();
        }
        own
    }

    /// Drops everything queued (the connection is closing without sending it).
    pub fn clear(&mut self) {
        *self = SharedOutput::default();
    }

    /// Bytes the queue itself allocates (not the frames, which are shared).
    pub fn allocated(&self) -> usize {
        self.0.as_ref().map_or(0, |q| {
            std::mem::size_of::<Queue>() + q.segments.capacity() * std::mem::size_of::<Segment>()
        })
    }
}

/// A WebSocket message being broadcast, and the encodings of it made so far:
/// one per [`SharedEncoding`] met (what a connection's session would make of
/// the message: one plain frame, or compressed with given settings and no
/// context takeover), a handful at most, so a list.
pub(crate) struct WsBroadcast<'a> {
    pub text: bool,
    pub payload: &'a [u8],
    frames: Vec<(SharedEncoding, SharedFrame)>,
    /// Lent by the pool for compressed encodings, given back at the end.
    compressor: Option<Compressor>,
    /// Where an encoding is made before it is shared.
    scratch: Vec<u8>,
    /// Where the encodings are counted.
    total: FrameBytesTotal,
}

impl<'a> WsBroadcast<'a> {
    pub fn new(text: bool, payload: &'a [u8], scratch: Vec<u8>, total: FrameBytesTotal) -> Self {
        WsBroadcast {
            text,
            payload,
            frames: Vec::new(),
            compressor: None,
            scratch,
            total,
        }
    }

    /// The message as sessions with encoding `enc` send it, made the first
    /// time (with a compressor from `pool` when it is compressed).
    pub fn frame(&mut self, enc: SharedEncoding, pool: &mut BufferPool) -> &SharedFrame {
        if let Some(i) = self.frames.iter().position(|(e, _)| *e == enc) {
            return &self.frames[i].1;
        }
        #[cfg(feature = "deflate")]
        if let Some((level, bits)) = enc.compressor_settings() {
            // A pooled compressor of these settings (one of others goes
            // back rather than being replaced and dropped).
            if !self
                .compressor
                .as_ref()
                .is_some_and(|c| c.fits(level, bits))
            {
                if let Some(other) = self.compressor.take() {
                    pool.put_compressor(other);
                }
                self.compressor = pool.take_compressor(level, bits);
            }
        }
        #[cfg(not(feature = "deflate"))]
        let _ = pool;
        self.scratch.clear();
        WsSession::encode_shared(
            enc,
            self.text,
            self.payload,
            &mut self.compressor,
            &mut self.scratch,
        );
        // A second copy, once per broadcast and encoding: a compressed
        // message's size is known only once it is made.
        let frame = SharedFrame::concat(&self.scratch, &[], &[], &self.total);
        self.frames.push((enc, frame));
        &self.frames[self.frames.len() - 1].1
    }

    /// Gives back the compressor and the scratch buffer.
    fn finish(self, pool: &mut BufferPool) -> Vec<u8> {
        #[cfg(feature = "deflate")]
        if let Some(c) = self.compressor {
            pool.put_compressor(c);
        }
        #[cfg(not(feature = "deflate"))]
        let _ = pool;
        self.scratch
    }
}

/// Bytes encoded already (an event), shared once a connection takes them.
pub(crate) struct EncodedBroadcast<'a> {
    pub bytes: &'a [u8],
    frame: Option<SharedFrame>,
    total: FrameBytesTotal,
}

impl<'a> EncodedBroadcast<'a> {
    pub fn new(bytes: &'a [u8], total: FrameBytesTotal) -> Self {
        EncodedBroadcast {
            bytes,
            frame: None,
            total,
        }
    }

    pub fn frame(&mut self) -> &SharedFrame {
        self.frame
            .get_or_insert_with(|| SharedFrame::concat(self.bytes, &[], &[], &self.total))
    }
}

/// A chunk being broadcast to kept streams: chunked (HTTP/1.1) or bare
/// (HTTP/1.0) framing, each made once when first needed.
pub(crate) struct ChunkBroadcast<'a> {
    pub data: &'a [u8],
    chunked: Option<SharedFrame>,
    bare: Option<SharedFrame>,
    total: FrameBytesTotal,
}

impl<'a> ChunkBroadcast<'a> {
    pub fn new(data: &'a [u8], total: FrameBytesTotal) -> Self {
        ChunkBroadcast {
            data,
            chunked: None,
            bare: None,
            total,
        }
    }

    /// The bytes a stream with this framing sends for the chunk.
    pub fn frame(&mut self, chunked: bool) -> &SharedFrame {
        let data = self.data;
        let total = &self.total;
        if chunked {
            self.chunked.get_or_insert_with(|| {
                let mut head = [0u8; CHUNK_HEAD_MAX];
                SharedFrame::concat(chunk_head(data.len(), &mut head), data, b"\r\n", total)
            })
        } else {
            self.bare
                .get_or_insert_with(|| SharedFrame::concat(data, &[], &[], total))
        }
    }
}

/// What one connection made of a broadcast.
pub(crate) enum Delivery {
    /// Queued.
    Sent,
    /// Not sent (closed, not that kind, too large for its bound); the
    /// connection is unchanged.
    Skipped,
    /// Over its send bound, or its socket failed: the connection is closed,
    /// as a send would close it.
    Drop,
}

impl From<Result<(), WsError>> for Delivery {
    fn from(r: Result<(), WsError>) -> Delivery {
        match r {
            Ok(()) => Delivery::Sent,
            Err(WsError::Backpressure | WsError::Io) => Delivery::Drop,
            Err(_) => Delivery::Skipped,
        }
    }
}

impl From<Result<(), SseSendError>> for Delivery {
    fn from(r: Result<(), SseSendError>) -> Delivery {
        match r {
            Ok(()) => Delivery::Sent,
            Err(SseSendError::Backpressure | SseSendError::Io) => Delivery::Drop,
            Err(_) => Delivery::Skipped,
        }
    }
}

impl From<Result<(), StreamSendError>> for Delivery {
    fn from(r: Result<(), StreamSendError>) -> Delivery {
        match r {
            Ok(()) => Delivery::Sent,
            Err(StreamSendError::Backpressure) => Delivery::Drop,
            Err(_) => Delivery::Skipped,
        }
    }
}

/// What a broadcast did: how many connections took it, and which ones went
/// over their bound (to be closed once the broadcast is done, so a group's
/// member list is not changed while it is being walked).
#[derive(Default)]
pub(crate) struct FanOut {
    pub accepted: usize,
    pub dropped: Vec<usize>,
}

impl<S> Server<S> {
    /// The one loop of every broadcast: `send` runs on the live connection
    /// of each target; what it queued is written at the next poll.
    fn fan_out<T: Copy>(
        &mut self,
        targets: impl IntoIterator<Item = T>,
        conn_of: impl Fn(T) -> ConnId,
        mut send: impl FnMut(&mut Conn, &mut BufferPool, T, Instant) -> Delivery,
    ) -> FanOut {
        // One clock read per broadcast: the send timeout of a connection
        // that was idle counts from here.
        let now = Instant::now();
        let mut out = FanOut::default();
        for target in targets {
            let id = conn_of(target);
            let key = id.slot as usize;
            let Some(conn) = self.conns.get_mut(key).filter(|c| c.id() == id) else {
                continue;
            };
            match send(conn, &mut self.shared.ws_pool, target, now) {
                Delivery::Sent => {
                    out.accepted += 1;
                    self.after_send(key);
                }
                Delivery::Skipped => {}
                Delivery::Drop => out.dropped.push(key),
            }
        }
        out
    }

    /// Closes the connections a broadcast dropped; returns how many took it.
    pub(super) fn finish_fan_out(&mut self, out: FanOut) -> usize {
        for key in out.dropped {
            self.close_conn(key);
        }
        out.accepted
    }

    /// Sends one WebSocket message to `ids`, encoded once per encoding.
    pub(super) fn fan_out_ws(
        &mut self,
        ids: impl IntoIterator<Item = WsId>,
        text: bool,
        payload: &[u8],
    ) -> FanOut {
        let mut message = WsBroadcast::new(
            text,
            payload,
            std::mem::take(&mut self.scratch),
            self.shared.frame_bytes.clone(),
        );
        let out = self.fan_out(
            ids,
            |id| id.0,
            |conn, pool, _, now| conn.ws_broadcast(&mut message, pool, now).into(),
        );
        let scratch = message.finish(&mut self.shared.ws_pool);
        self.keep_scratch(scratch);
        out
    }

    /// Sends one encoded event to `ids`.
    pub(super) fn fan_out_event(
        &mut self,
        ids: impl IntoIterator<Item = SseId>,
        encoded: &[u8],
    ) -> FanOut {
        let mut event = EncodedBroadcast::new(encoded, self.shared.frame_bytes.clone());
        self.fan_out(
            ids,
            |id| id.0,
            |conn, _, id, now| conn.sse_broadcast(id.1, &mut event, now).into(),
        )
    }

    /// Sends one chunk to the kept streams `ids`.
    pub(super) fn fan_out_chunk(
        &mut self,
        ids: impl IntoIterator<Item = StreamId>,
        data: &[u8],
    ) -> FanOut {
        let mut chunk = ChunkBroadcast::new(data, self.shared.frame_bytes.clone());
        self.fan_out(
            ids,
            |id| id.0,
            |conn, _, id, now| conn.stream_broadcast(id.1, &mut chunk, now).into(),
        )
    }

    /// Encodes `event` into the server's scratch buffer (reused, so only a
    /// stream that takes the event makes its shared copy) and runs `send`
    /// with the bytes; 0 when it cannot be encoded (a line break in its
    /// type or id).
    pub(super) fn with_encoded_event(
        &mut self,
        event: &SseEvent<'_>,
        send: impl FnOnce(&mut Self, &[u8]) -> usize,
    ) -> usize {
        let mut bytes = std::mem::take(&mut self.scratch);
        bytes.clear();
        let accepted = match event.encode(&mut bytes) {
            Ok(()) => send(self, &bytes),
            Err(_) => 0,
        };
        self.keep_scratch(bytes);
        accepted
    }

    /// Takes the scratch buffer back (a large message's allocation is not
    /// kept).
    fn keep_scratch(&mut self, scratch: Vec<u8>) {
        if scratch.capacity() <= SCRATCH_KEEP {
            self.scratch = scratch;
        }
    }
}

/// Largest scratch buffer kept between broadcasts.
const SCRATCH_KEEP: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bytes: &[u8]) -> SharedFrame {
        SharedFrame::concat(bytes, &[], &[], &FrameBytesTotal::default())
    }

    /// Writes what `slices` hands out, `step` bytes at a time.
    fn drain(q: &mut SharedOutput, own: &[u8], wpos: &mut usize, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut slices = [IoSlice::new(&[]); 4];
            let n = q.slices(&own[*wpos..], step, &mut slices);
            let bytes: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
            if bytes.is_empty() {
                break;
            }
            assert!(bytes.len() <= step);
            out.extend_from_slice(&bytes);
            *wpos += q.advance(bytes.len());
        }
        out
    }

    #[test]
    fn own_bytes_and_frames_leave_in_queue_order_across_partial_writes() {
        for step in [1, 2, 3, 5, 7, 64] {
            let mut q = SharedOutput::default();
            let mut own = b"ab".to_vec();
            let mut wpos = 0;
            q.push(frame(b"XYZ"), own.len() - wpos);
            own.extend_from_slice(b"cd");
            q.push(frame(b"QR"), own.len() - wpos);
            q.push(frame(b"S"), own.len() - wpos);
            own.extend_from_slice(b"e");
            assert_eq!(q.pending(), 6);
            let out = drain(&mut q, &own, &mut wpos, step);
            assert_eq!(out, b"abXYZcdQRSe", "step {step}");
            assert!(q.is_empty());
            assert_eq!(
                (q.pending(), q.0.as_ref().map_or(0, |x| x.own), wpos),
                (0, 0, own.len())
            );
        }
    }

    #[test]
    fn a_compacted_write_buffer_keeps_the_order() {
        let mut q = SharedOutput::default();
        let mut own = b"0123456789".to_vec();
        let mut wpos = 0;
        q.push(frame(b"AB"), own.len());
        own.extend_from_slice(b"xy");
        let mut slices = [IoSlice::new(&[]); 4];
        let n = q.slices(&own[wpos..], 4, &mut slices);
        assert_eq!(n, 1);
        wpos += q.advance(4);
        // The written front leaves the buffer, as `Conn::flush` compacts it.
        own.drain(..wpos);
        wpos = 0;
        assert_eq!(drain(&mut q, &own, &mut wpos, 100), b"456789ABxy");
    }

    #[test]
    fn slices_stop_at_the_slice_count_and_the_budget() {
        let mut q = SharedOutput::default();
        for _ in 0..10 {
            q.push(frame(b"abcd"), 0);
        }
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(q.slices(&[], 1000, &mut slices), 4);
        assert_eq!(q.slices(&[], 6, &mut slices), 2);
        assert_eq!(slices[1].len(), 2);
    }

    /// The server's total of shared bytes (what `Server::stats` reads
    /// instead of walking every queued frame) counts each frame once, for
    /// as long as any connection holds it.
    #[test]
    fn the_shared_bytes_total_follows_frames_made_and_dropped() {
        let total = FrameBytesTotal::default();
        let a = SharedFrame::concat(&[7; 1000], &[], &[], &total);
        let one = total.get();
        assert!((1000..1100).contains(&one), "{one}");
        let mut queues: Vec<SharedOutput> = (0..100).map(|_| SharedOutput::default()).collect();
        for q in &mut queues {
            q.push(a.clone(), 0);
        }
        assert_eq!(total.get(), one, "queued 100 times, counted once");
        let b = SharedFrame::concat(b"head", &[1; 500], b"tail", &total);
        assert!(total.get() > one + 508);
        drop(b);
        assert_eq!(total.get(), one);
        drop(a);
        assert_eq!(total.get(), one, "still queued");
        for (i, q) in queues.iter_mut().enumerate() {
            if i % 2 == 0 {
                q.advance(1000);
            } else {
                q.clear();
            }
        }
        assert_eq!(total.get(), 0, "written or dropped everywhere");
    }

    #[test]
    fn chunk_framing_matches_write_chunk() {
        for len in [1, 15, 16, 255, 4096, 70_000] {
            let data = vec![b'x'; len];
            let mut expected = Vec::new();
            crate::proto::http::write_chunk(&mut expected, &data);
            let mut chunk = ChunkBroadcast::new(&data, FrameBytesTotal::default());
            assert_eq!(chunk.frame(true).bytes(), &expected[..], "len {len}");
            assert_eq!(chunk.frame(false).bytes(), &data[..]);
        }
    }
}
