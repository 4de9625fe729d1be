//! The WebSocket transport of an upgraded connection: feeding received bytes
//! to the protocol session, the inbox the program receives from, sends, and
//! backpressure in both directions.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Conn, Phase};
use crate::proto::deflate::DeflateParams;
#[cfg(feature = "deflate")]
use crate::proto::deflate::{Compressor, Inflater};
use crate::proto::ws::{Event, Role, SendError, WsSession};
use crate::server::fanout::WsBroadcast;
use crate::server::shared::{after, Shared};
use crate::ws::{CloseCode, CloseStatus, WsError, WsEvent, WsId, WsOptions};

/// WebSocket messages from this size on are written from the caller's buffer
/// when the socket is idle (vectored write) rather than copied first.
const INLINE_WS: usize = 2048;

/// The server-wide budget of bytes produced by inflating received
/// permessage-deflate messages and still held: partial messages being
/// inflated and complete ones waiting in inboxes (see
/// [`ServerConfig::max_inflated_bytes`](crate::ServerConfig::max_inflated_bytes)).
/// A connection that would go over it pauses and is listed in `waiting`
/// until room frees. While any wait, only the one whose `turn` it is may
/// inflate: the one with the largest partial message, the closest to
/// completing (and so to being taken by the program); spreading the room
/// over many partial messages would leave them all stuck.
pub(crate) struct InflateBudget {
    /// The most bytes held at once.
    pub limit: usize,
    /// Bytes held now, summed over the connections' [`InflateCharge`]s
    /// (atomic only so the server stays `Send`; one thread updates it).
    held: Arc<AtomicUsize>,
    /// Slots of connections paused for want of room.
    pub waiting: Vec<usize>,
    /// The waiting connection that may inflate next.
    pub turn: Option<usize>,
}

impl InflateBudget {
    pub fn new(limit: usize) -> InflateBudget {
        InflateBudget {
            limit,
            held: Arc::default(),
            waiting: Vec::new(),
            turn: None,
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Bytes that may still be inflated before the budget is full.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.held())
    }

    #[cfg_attr(not(feature = "deflate"), allow(dead_code))]
    fn charge(&self, now: Instant) -> Box<InflateCharge> {
        Box::new(InflateCharge {
            held: Arc::clone(&self.held),
            amount: 0,
            partial_seen: 0,
            partial_grew: now,
        })
    }

    /// Room connection `key` may inflate into now: none while others
    /// wait for their turn.
    #[cfg_attr(not(feature = "deflate"), allow(dead_code))]
    fn room_for(&self, key: usize) -> usize {
        if self.waiting.is_empty() || self.turn == Some(key) {
            self.room()
        } else {
            0
        }
    }
}

/// One connection's share of the [`InflateBudget`]; what it holds is
/// given back when it is dropped (however the connection ends). Boxed, and
/// only on compressed sockets: a plain WebSocket carries 8 bytes for it.
struct InflateCharge {
    held: Arc<AtomicUsize>,
    amount: usize,
    /// Bytes of the partial compressed message at the last update, and
    /// when they last grew: a partial message that stops growing while
    /// others wait for room is the first to give its bytes back.
    partial_seen: usize,
    partial_grew: Instant,
}

impl InflateCharge {
    fn set(&mut self, amount: usize) {
        if amount > self.amount {
            self.held.fetch_add(amount - self.amount, Ordering::Relaxed);
        } else {
            self.held.fetch_sub(self.amount - amount, Ordering::Relaxed);
        }
        self.amount = amount;
    }
}

impl Drop for InflateCharge {
    fn drop(&mut self) {
        self.held.fetch_sub(self.amount, Ordering::Relaxed);
    }
}

/// Bytes inflation may produce for one connection in one poll round (four
/// times its share of wire bytes, `READS_PER_ROUND` × `READ_CHUNK`), so a
/// message that inflates to megabytes is spread over rounds with the other
/// connections served between them.
const INFLATED_PER_ROUND: usize = 1 << 20;

/// Most received bytes handed to the session at once (it accepts any
/// split of the stream): what it writes in answer is bounded by this.
const FEED_SLICE: usize = 16 * 1024;

/// The WebSocket state a connection carries after the upgrade.
pub(crate) struct WsConn {
    session: WsSession,
    /// Each event with the bytes of it charged to the inflate budget (the
    /// message's length if it arrived compressed, else 0).
    inbox: VecDeque<(WsEvent, usize)>,
    inbox_bytes: usize,
    /// Sum of the inbox's charges.
    inbox_inflated: usize,
    /// What this connection holds of the inflate budget (with deflate only).
    charge: Option<Box<InflateCharge>>,
    /// Inflating waits for room in the budget, since this instant.
    budget_paused: Option<Instant>,
    status: Option<CloseStatus>,
    max_send_buffer: usize,
    max_receive_buffer: usize,
    /// Feeding stopped before a frame that will fail the connection, so the
    /// program can first receive (and answer) the messages queued before it.
    deferred: bool,
    /// Something the program has not been told about through `ws_ready`:
    /// a message or pong arrived, or the socket ended.
    news: bool,
    /// What the handshake agreed for permessage-deflate.
    deflate: Option<DeflateParams>,
}

impl WsConn {
    pub fn new(
        options: WsOptions,
        deflate: Option<DeflateParams>,
        budget: &InflateBudget,
        now: Instant,
    ) -> WsConn {
        let mut session = WsSession::new(Role::Server, options.protocol);
        session.start_timers(now);
        #[cfg(feature = "deflate")]
        let charge = match (deflate, options.deflate) {
            (Some(params), Some(prefs)) => {
                session.enable_deflate(params, prefs.level, prefs.min_size);
                Some(budget.charge(now))
            }
            _ => None,
        };
        #[cfg(not(feature = "deflate"))]
        let charge = {
            let _ = budget;
            None
        };
        WsConn {
            session,
            inbox: VecDeque::new(),
            inbox_bytes: 0,
            inbox_inflated: 0,
            charge,
            budget_paused: None,
            status: None,
            max_send_buffer: options.max_send_buffer,
            max_receive_buffer: options.max_receive_buffer,
            deferred: false,
            news: false,
            deflate,
        }
    }

    /// The permessage-deflate parameters in effect, if negotiated.
    pub fn deflate(&self) -> Option<DeflateParams> {
        self.deflate
    }

    /// Whether input processing waits: for the program to receive, or
    /// for room in the inflate budget.
    fn paused(&self) -> bool {
        self.inbox_bytes >= self.max_receive_buffer
            || (self.deferred && !self.inbox.is_empty())
            || self.budget_paused.is_some()
    }

    /// `inflated`: bytes of it charged to the inflate budget.
    fn push(&mut self, event: WsEvent, inflated: usize) {
        self.news = true;
        self.inbox_bytes += event_len(&event);
        self.inbox_inflated += inflated;
        self.inbox.push_back((event, inflated));
    }

    fn pop(&mut self) -> Option<WsEvent> {
        let (e, inflated) = self.inbox.pop_front()?;
        self.inbox_bytes -= event_len(&e);
        self.inbox_inflated -= inflated;
        if self.inbox.is_empty() && self.inbox.capacity() > 64 {
            // A burst does not leave its queue's allocation behind.
            self.inbox = VecDeque::new();
        }
        self.update_charge();
        Some(e)
    }

    /// Brings this connection's share of the inflate budget up to date:
    /// the partial message being inflated and the inflated messages
    /// waiting in the inbox.
    fn update_charge(&mut self) {
        #[cfg(feature = "deflate")]
        let partial = self.session.inflating_len();
        #[cfg(not(feature = "deflate"))]
        let partial = 0;
        if let Some(c) = self.charge.as_mut() {
            c.set(partial + self.inbox_inflated);
            if partial > c.partial_seen {
                c.partial_grew = Instant::now();
            }
            c.partial_seen = partial;
        }
    }

    /// The socket is gone: a message half received never completes, so its
    /// buffer (and its share of the inflate budget) goes now.
    pub fn discard_partial(&mut self) {
        self.session.discard_message();
        self.budget_paused = None;
        self.update_charge();
    }

    /// The connection is gone: the session's codecs go to the pool (or are
    /// freed), as nothing can be sent or received on it any more; what
    /// stays is its inbox and how it ended. (A session that keeps context
    /// holds a compressor and an inflater of several hundred KiB between
    /// messages; a closed slot kept them until it expired.)
    pub fn release_codecs(&mut self, pool: &mut BufferPool) {
        #[cfg(feature = "deflate")]
        {
            let (compressor, inflater) = self.session.release_codecs();
            if let Some(c) = compressor {
                pool.put_compressor(c);
            }
            if let Some(d) = inflater {
                pool.put_inflater(d);
            }
        }
        #[cfg(not(feature = "deflate"))]
        let _ = pool;
    }

    /// Bytes the inbox holds: its queue's allocation and the messages' bytes.
    pub fn inbox_allocated(&self) -> usize {
        self.inbox.capacity() * std::mem::size_of::<(WsEvent, usize)>() + self.inbox_bytes
    }

    /// Whether received messages wait for the program.
    pub fn has_messages(&self) -> bool {
        !self.inbox.is_empty()
    }

    /// Gives the partial compressed message's inflate budget back: the
    /// session closes with 1013 (try again later) into `wbuf` and drops the
    /// message, and the failure is recorded as how the socket ended.
    fn give_up_busy(&mut self, now: Instant, wbuf: &mut Vec<u8>) {
        self.budget_paused = None;
        let e = self.session.fail_busy(now, wbuf);
        self.update_charge();
        if let Event::Error(e) = e {
            self.set_status(CloseStatus::Failed(e));
        }
    }

    /// Records how the WebSocket ended, keeping the first cause. Its end is
    /// news for the program unless the program itself closed it.
    pub fn set_status(&mut self, status: CloseStatus) {
        if self.status.is_none() {
            self.news |= status != CloseStatus::Local;
            self.status = Some(status);
        }
    }
}

/// What an event held for the program counts against
/// `max_receive_buffer`: its payload and its place in the queue, so a flood
/// of empty messages fills the bound too.
fn event_len(e: &WsEvent) -> usize {
    std::mem::size_of::<WsEvent>()
        + match e {
            WsEvent::Message(m) => m.len(),
            WsEvent::Pong(p) => p.len(),
        }
}

/// Messages and pongs one connection may deliver in one poll round; the
/// rest waits for the next round, after the other connections (a round of
/// reads can hold tens of thousands of tiny frames).
const EVENTS_PER_ROUND: usize = 256;

/// What the server must do after the program took an event from a socket.
pub(crate) enum WsPop {
    /// Nothing.
    Stay,
    /// Reading had stopped for want of room, and now there is some: drive
    /// the connection at the next poll.
    Resume,
    /// The socket was already gone and this was its last message: free the slot.
    Release,
}

/// Allocations of received messages handed back by
/// [`WsHandle::receive_into`](crate::WsHandle::receive_into), lent to the
/// next message any WebSocket starts to assemble. Bounded in count of bytes
/// and in the size of one buffer, so a burst of large messages is not kept.
/// Also lends permessage-deflate codecs: a session that keeps no
/// compression context between messages hands its compressor (or inflater)
/// back after each one, so sockets that share settings share one codec
/// instead of holding hundreds of KiB each.
#[derive(Default)]
pub(crate) struct BufferPool {
    free: Vec<Vec<u8>>,
    bytes: usize,
    #[cfg(feature = "deflate")]
    compressors: Vec<Compressor>,
    #[cfg(feature = "deflate")]
    inflaters: Vec<Inflater>,
}

#[cfg(feature = "deflate")]
impl BufferPool {
    /// Codecs of each kind kept for lending. One poll loop uses one at a
    /// time per kind of settings (a session keeping no context hands its
    /// codec back after each message), so a few cover every mix of levels
    /// and window sizes in use.
    const MAX_CODECS: usize = 8;

    /// Lends a compressor of the settings `session` needs, if one is pooled.
    fn lend_compressor(&mut self, session: &mut WsSession) {
        for i in (0..self.compressors.len()).rev() {
            let c = self.compressors.swap_remove(i);
            match session.offer_compressor(c) {
                None => return,
                Some(back) => self.compressors.push(back),
            }
        }
    }

    /// A pooled compressor of these settings, if there is one (for a
    /// broadcast's compressed encoding).
    pub(crate) fn take_compressor(&mut self, level: u32, bits: u8) -> Option<Compressor> {
        let i = self.compressors.iter().position(|c| c.fits(level, bits))?;
        Some(self.compressors.swap_remove(i))
    }

    pub(crate) fn put_compressor(&mut self, c: Compressor) {
        if self.compressors.len() < Self::MAX_CODECS {
            self.compressors.push(c);
        }
    }

    /// Lends an inflater of the window `session` needs, if one is pooled.
    fn lend_inflater(&mut self, session: &mut WsSession) {
        for i in (0..self.inflaters.len()).rev() {
            let d = self.inflaters.swap_remove(i);
            match session.offer_inflater(d) {
                None => return,
                Some(back) => self.inflaters.push(back),
            }
        }
    }

    fn put_inflater(&mut self, d: Inflater) {
        if self.inflaters.len() < Self::MAX_CODECS {
            self.inflaters.push(d);
        }
    }
}

impl BufferPool {
    /// Most bytes of capacity kept across all pooled buffers.
    const MAX_BYTES: usize = 8 << 20;
    /// Buffers larger than this are freed instead of pooled.
    const MAX_BUFFER: usize = 256 << 10;

    pub fn put(&mut self, buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap > 0 && cap <= Self::MAX_BUFFER && self.bytes + cap <= Self::MAX_BYTES {
            self.bytes += cap;
            self.free.push(buf);
        }
    }

    fn take(&mut self) -> Option<Vec<u8>> {
        let buf = self.free.pop()?;
        self.bytes -= buf.capacity();
        Some(buf)
    }

    /// Lends a buffer to `session` if it has none for its next message.
    fn lend(&mut self, session: &mut WsSession) {
        if let Some(buf) = self.take() {
            if let Some(back) = session.offer_buffer(buf) {
                self.put(back);
            }
        }
    }
}

impl Conn {
    /// Feeds buffered bytes to the WebSocket session while the program keeps
    /// up; queues messages for `receive` and records how the session ends.
    ///
    /// Inflating is bounded twice: by the room left in the server-wide
    /// `budget` (when it is full the connection pauses, listed in
    /// `budget.waiting`, until room frees or
    /// [`ServerConfig::inflate_pause_timeout`](crate::ServerConfig::inflate_pause_timeout)
    /// passes), and by [`INFLATED_PER_ROUND`] bytes per drive (then the
    /// rest waits for the next round, like the other per-round shares).
    pub(super) fn process_ws(
        &mut self,
        pool: &mut BufferPool,
        budget: &mut InflateBudget,
        now: Instant,
    ) -> bool {
        let key = self.id.slot as usize;
        let Some(ws) = self.ws.as_mut() else {
            return false;
        };
        let mut progress = false;
        ws.deferred = false;
        // Paused for the budget: try again (this drive was asked for when
        // room freed, or by other news); it pauses again if there is none
        // (or it is not its turn), keeping its place in `budget.waiting`.
        let was_budget_paused = ws.budget_paused.take();
        #[cfg(not(feature = "deflate"))]
        let _ = (budget, key, was_budget_paused);
        while !self.rbuf.is_empty()
            && !ws.paused()
            && self.wbuf.len() - self.wpos + self.shared.pending() < ws.max_send_buffer
        {
            if self.round_events >= EVENTS_PER_ROUND || self.round_inflated >= INFLATED_PER_ROUND {
                self.more = true;
                break;
            }
            if !ws.inbox.is_empty() && ws.session.next_frame_fails(self.rbuf.data()) {
                // Deliver what came before the bad frame first (Autobahn
                // 3.x/4.x/5.15 expect those echoes ahead of the close).
                ws.deferred = true;
                break;
            }
            pool.lend(&mut ws.session);
            #[cfg(feature = "deflate")]
            let (share, produced_before) = if ws.charge.is_some() {
                pool.lend_inflater(&mut ws.session);
                let share = INFLATED_PER_ROUND - self.round_inflated;
                ws.session
                    .set_inflate_bounds(budget.limit, budget.room_for(key).min(share));
                (share, ws.session.inflated_total())
            } else {
                (0, 0)
            };
            // The session answers pings (and a close) as it reads, at most
            // as many bytes as it reads plus one close frame: fed a slice
            // at a time, with room made for that first, its answers keep
            // the write buffer within its bound (see `Conn::make_room`).
            let n = self.rbuf.len().min(FEED_SLICE);
            super::make_room(&mut self.wbuf, &mut self.wpos, n + 127, ws.max_send_buffer);
            let feed = ws
                .session
                .feed(&mut self.rbuf.data_mut()[..n], now, &mut self.wbuf);
            #[cfg(feature = "deflate")]
            let inflated = if ws.charge.is_some() {
                let produced = ws.session.inflated_total() - produced_before;
                let produced = usize::try_from(produced).unwrap_or(usize::MAX);
                self.round_inflated = self.round_inflated.saturating_add(produced);
                if ws.session.inflate_stalled() && produced < share {
                    // Stopped by the budget, not by this round's share.
                    // The pause bound counts from the last progress.
                    let since = match was_budget_paused {
                        Some(t) if produced == 0 => t,
                        _ => now,
                    };
                    ws.budget_paused = Some(since);
                    if was_budget_paused.is_none() {
                        budget.waiting.push(key);
                    }
                }
                match &feed.event {
                    Some(Event::Message(m)) if ws.session.last_message_compressed() => m.len(),
                    _ => 0,
                }
            } else {
                0
            };
            #[cfg(not(feature = "deflate"))]
            let inflated = 0;
            if feed.consumed == 0 && feed.event.is_none() {
                ws.update_charge();
                if ws.budget_paused.is_none() && self.round_inflated >= INFLATED_PER_ROUND {
                    self.more = true;
                }
                break;
            }
            self.rbuf.consume(feed.consumed);
            progress = true;
            match feed.event {
                Some(Event::Message(m)) => {
                    self.round_events += 1;
                    ws.push(WsEvent::Message(m), inflated)
                }
                Some(Event::Pong(p)) => {
                    self.round_events += 1;
                    ws.push(WsEvent::Pong(p), 0)
                }
                Some(Event::Close { code, reason }) => {
                    ws.set_status(CloseStatus::Peer { code, reason })
                }
                Some(Event::Error(e)) => ws.set_status(CloseStatus::Failed(e)),
                None => {}
            }
            // Before the next feed takes its room: what was inflated, and
            // a completed message moved from the session to the inbox
            // (never counted in both places, nor in neither).
            ws.update_charge();
        }
        if let Some(buf) = ws.session.take_idle_buffer() {
            // Between messages the buffer goes back: idle sockets hold none.
            pool.put(buf);
        }
        #[cfg(feature = "deflate")]
        if ws.deflate.is_some() {
            // The session answers pings itself, but compresses nothing
            // while fed; its inflater goes back when it keeps no context.
            if let Some(d) = ws.session.take_idle_inflater() {
                pool.put_inflater(d);
            }
        }
        if ws.session.wants_shutdown() {
            // Flush the close frame, then shut the write side and drain.
            self.phase = Phase::Closing;
            progress = true;
        }
        progress
    }

    /// Whether the socket should be read: the program keeps up with what
    /// arrives, and the peer reads what we send.
    pub(super) fn ws_wants_read(&self) -> bool {
        self.ws
            .as_ref()
            .is_some_and(|ws| !ws.paused() && self.pending_len() < ws.max_send_buffer)
    }

    /// The session's next deadline (fragment or close timeout), or the end
    /// of the longest pause allowed while waiting for inflate budget.
    pub(super) fn ws_deadline(&self, pause: Duration) -> Option<Instant> {
        let ws = self.ws.as_ref()?;
        let paused = ws.budget_paused.map(|t| after(t, pause));
        match (ws.session.next_deadline(), paused) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A session deadline passed, or a pause for inflate budget lasted
    /// `pause`; returns whether to keep the connection.
    /// `room`: what the inflate budget has free now.
    pub(super) fn ws_timeout_due(&mut self, now: Instant, pause: Duration, room: usize) -> bool {
        let Some(ws) = self.ws.as_mut() else {
            return false;
        };
        if ws.budget_paused.is_some_and(|t| after(t, pause) <= now) && room > 0 {
            // Room freed meanwhile (another one just gave its bytes back):
            // the connections in line go on, and this one waits anew.
            ws.budget_paused = Some(now);
        } else if ws.budget_paused.is_some_and(|t| after(t, pause) <= now) {
            // Every holder of the budget may be paused mid-message, none
            // able to finish: this one gives its bytes back, with 1013
            // (try again later), so the others can go on.
            ws.give_up_busy(now, &mut self.wbuf);
            // Input after the close is read and discarded (waiting for
            // the peer's close), so the socket is read again.
            self.more = true;
        }
        if let Some(Event::Error(e)) = ws.session.on_timeout(now, &mut self.wbuf) {
            ws.set_status(CloseStatus::Failed(e));
        }
        self.ws_flush_or_end()
    }

    /// Writes what a timeout or a give-up just queued (a close frame, a
    /// ping); returns whether to keep the connection. When the session
    /// wants the socket shut (the peer is gone, or never answered our
    /// close) the frame is sent on the way out, best effort.
    fn ws_flush_or_end(&mut self) -> bool {
        self.ready.writable = true;
        let Some(ws) = self.ws.as_mut() else {
            return false;
        };
        if ws.session.wants_shutdown() {
            ws.set_status(CloseStatus::Abnormal);
            let _ = self.flush(usize::MAX);
            return false;
        }
        self.flush(usize::MAX).is_ok()
    }

    /// Lists this WebSocket in [`Server::ws_ready`](crate::Server::ws_ready)
    /// when something new happened to it (once per poll, however much).
    pub(crate) fn mark_ws_ready(&mut self, shared: &mut Shared) {
        let Some(ws) = self.ws.as_mut() else {
            return;
        };
        if std::mem::take(&mut ws.news) && self.ready_epoch != shared.epoch {
            self.ready_epoch = shared.epoch;
            shared.ws_ready.push(WsId(self.id));
        }
    }

    /// Takes the next received message or pong; `None` when this is not a
    /// WebSocket. Says what the server must do next.
    pub(crate) fn ws_pop(&mut self) -> Option<(Option<WsEvent>, WsPop)> {
        let dead = self.dead;
        let ws = self.ws.as_mut()?;
        let was_paused = ws.paused();
        let event = ws.pop();
        let after = if dead && ws.inbox.is_empty() {
            WsPop::Release
        } else if was_paused && !ws.paused() {
            WsPop::Resume
        } else {
            WsPop::Stay
        };
        Some((event, after))
    }

    /// The bytes of the compressed message this WebSocket is inflating
    /// (charged to the budget) and when they last grew; `None` when it
    /// inflates none.
    pub(crate) fn ws_partial(&self) -> Option<(usize, Instant)> {
        let ws = self.ws.as_ref()?;
        let c = ws.charge.as_ref()?;
        (c.partial_seen > 0).then_some((c.partial_seen, c.partial_grew))
    }

    /// Gives up this socket's partial compressed message to free inflate
    /// budget that others wait for: closed with 1013 (try again later), as
    /// when its pause outlasts `inflate_pause_timeout`. Returns whether to
    /// keep the connection (to finish the closing handshake).
    pub(crate) fn ws_give_up_partial(&mut self, now: Instant) -> bool {
        let Some(ws) = self.ws.as_mut() else {
            return false;
        };
        ws.give_up_busy(now, &mut self.wbuf);
        // Input after the close is read and discarded (waiting for the
        // peer's close), so the socket is read again.
        self.more = true;
        self.ws_flush_or_end()
    }

    /// Whether the WebSocket waits for room in the inflate budget, and the
    /// bytes of the message it has inflated so far.
    pub(crate) fn ws_budget_paused(&self) -> Option<usize> {
        let ws = self.ws.as_ref()?;
        ws.budget_paused?;
        #[cfg(feature = "deflate")]
        return Some(ws.session.inflating_len());
        #[cfg(not(feature = "deflate"))]
        Some(0)
    }

    /// Whether no more messages can be sent.
    pub(crate) fn ws_is_closed(&self) -> bool {
        self.dead || self.ws.as_ref().is_none_or(|ws| !ws.session.is_open())
    }

    /// The permessage-deflate parameters in effect, if negotiated.
    pub(crate) fn ws_deflate(&self) -> Option<DeflateParams> {
        self.ws.as_ref()?.deflate()
    }

    /// How the WebSocket ended, once it has.
    pub(crate) fn ws_close_status(&self) -> Option<CloseStatus> {
        self.ws.as_ref()?.status.clone()
    }

    /// Sends a data message. A large one going to an idle, writable socket
    /// is written straight from `payload` with one vectored write (header +
    /// payload), so only what the kernel does not take is copied.
    pub(crate) fn ws_send_data(
        &mut self,
        pool: &mut BufferPool,
        text: bool,
        payload: &[u8],
    ) -> Result<(), WsError> {
        self.ws_room(|session| session.message_wire_len(payload.len()))?;
        #[cfg(feature = "deflate")]
        if let Some(ws) = self.ws.as_mut() {
            if ws.deflate.is_some() {
                // Compressed (or possibly compressed): through the session,
                // with a compressor from the pool when it keeps no context.
                pool.lend_compressor(&mut ws.session);
                let result = self.ws_write(|s, out| {
                    if text {
                        s.send_text_bytes(payload, out)
                    } else {
                        s.send_binary(payload, out)
                    }
                });
                if let Some(ws) = self.ws.as_mut() {
                    if let Some(c) = ws.session.take_idle_compressor() {
                        pool.put_compressor(c);
                    }
                }
                return result;
            }
        }
        #[cfg(not(feature = "deflate"))]
        let _ = pool;
        let queue = |s: &mut WsSession, out: &mut Vec<u8>| {
            if text {
                s.send_text_bytes(payload, out)
            } else {
                s.send_binary(payload, out)
            }
        };
        let direct = self.ready.writable
            && self.pending_len() == 0
            && self.out.is_none()
            && payload.len() >= INLINE_WS;
        if !direct {
            return self.ws_write(queue);
        }
        let Some(ws) = self.ws.as_mut() else {
            return Err(WsError::NotWebSocket);
        };
        self.wbuf.clear();
        self.wpos = 0;
        if !ws
            .session
            .write_data_header(text, payload.len(), &mut self.wbuf)?
        {
            return self.ws_write(queue);
        }
        let head = self.wbuf.len();
        match self
            .io
            .write_vectored(&[IoSlice::new(&self.wbuf), IoSlice::new(payload)])
        {
            Ok(n) => {
                self.last_io = Instant::now();
                if n >= head {
                    self.wbuf.clear();
                    self.wbuf.extend_from_slice(&payload[n - head..]);
                } else {
                    self.wpos = n;
                    self.wbuf.extend_from_slice(payload);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.ready.writable = false;
                self.wbuf.extend_from_slice(payload);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                self.wbuf.extend_from_slice(payload)
            }
            Err(_) => return Err(self.ws_failed()),
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        Ok(())
    }

    /// Queues a broadcast message: the bytes `message` holds for this
    /// connection's [`SharedEncoding`](crate::proto::ws::SharedEncoding),
    /// made once and shared with the others that use it. A connection whose
    /// bytes depend on its own state (a compressor that keeps context, a
    /// `max_frame_size` below the message's size) sends the message as
    /// [`ws_send_data`](Self::ws_send_data) does. The send bound and its
    /// policy are the same as for a send.
    pub(crate) fn ws_broadcast(
        &mut self,
        message: &mut WsBroadcast<'_>,
        pool: &mut BufferPool,
        now: Instant,
    ) -> Result<(), WsError> {
        let len = message.payload.len();
        let encoding = self
            .ws
            .as_ref()
            .and_then(|ws| ws.session.shared_encoding(len));
        let Some(encoding) = encoding else {
            return self.ws_send_data(pool, message.text, message.payload);
        };
        self.ws_room(|session| session.message_wire_len(len))?;
        let was_idle = self.pending_len() == 0;
        let limit = self.ws.as_ref().map_or(usize::MAX, |ws| ws.max_send_buffer);
        self.queue_shared(message.frame(encoding, pool), limit);
        if was_idle {
            // The send timeout counts from this send.
            self.last_io = now;
        }
        Ok(())
    }

    /// The send bound, checked before anything is queued: `size` gives the
    /// wire size of what is about to be sent (0 for a control frame). A
    /// message that can never fit is refused; one that does not fit now
    /// means the peer is not reading, and the connection is to be closed.
    fn ws_room(&mut self, size: impl FnOnce(&WsSession) -> usize) -> Result<(), WsError> {
        if self.dead {
            return Err(WsError::Closed);
        }
        let pending = self.pending_len();
        let Some(ws) = self.ws.as_mut() else {
            return Err(WsError::NotWebSocket);
        };
        if !ws.session.is_open() {
            return Err(WsError::Closed);
        }
        let size = size(&ws.session);
        if size > ws.max_send_buffer {
            return Err(WsError::MessageTooLarge {
                len: size,
                limit: ws.max_send_buffer,
            });
        }
        if pending.saturating_add(size) > ws.max_send_buffer {
            ws.set_status(CloseStatus::Abnormal);
            return Err(WsError::Backpressure);
        }
        let limit = ws.max_send_buffer;
        // A control frame is at most 127 bytes.
        self.make_room(size.max(127), limit);
        Ok(())
    }

    /// Sends a ping (payload of at most 125 bytes).
    pub(crate) fn ws_ping(&mut self, payload: &[u8]) -> Result<(), WsError> {
        self.ws_room(|_| 0)?;
        self.ws_write(|s, out| s.send_ping(payload, out))
    }

    /// Starts the closing handshake.
    pub(crate) fn ws_close(&mut self, code: CloseCode, reason: &str) -> Result<(), WsError> {
        let now = Instant::now();
        self.ws_room(|_| 0)?;
        self.ws_write(|s, out| s.close(code, reason, now, out))?;
        if let Some(ws) = self.ws.as_mut() {
            ws.set_status(CloseStatus::Local);
        }
        Ok(())
    }

    /// Runs `send` against the session (after [`ws_room`](Self::ws_room)
    /// said it fits), queueing its bytes: the server writes them when it
    /// next drives the connection (at the next poll, see
    /// [`queue_flush`](Self::queue_flush)), so many messages sent in one
    /// turn of the program's loop leave in one write.
    fn ws_write(
        &mut self,
        send: impl FnOnce(&mut WsSession, &mut Vec<u8>) -> Result<(), SendError>,
    ) -> Result<(), WsError> {
        let was_idle = self.pending_len() == 0;
        let Some(ws) = self.ws.as_mut() else {
            return Err(WsError::NotWebSocket);
        };
        send(&mut ws.session, &mut self.wbuf)?;
        if ws.session.wants_shutdown() && self.phase == Phase::Ws {
            self.phase = Phase::Closing;
        }
        if was_idle {
            // The send timeout counts from this send.
            self.last_io = Instant::now();
        }
        Ok(())
    }

    /// The socket failed while sending.
    fn ws_failed(&mut self) -> WsError {
        if let Some(ws) = self.ws.as_mut() {
            ws.set_status(CloseStatus::Abnormal);
        }
        WsError::Io
    }
}
