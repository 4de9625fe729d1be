//! State every connection reads or updates while it is driven, apart from the
//! routes (borrowed separately so handlers can be `FnMut`).

use std::time::{Duration, Instant, SystemTime};

use super::buf::ReadBuf;
use super::config::{Activity, ServerConfig};
use super::conn::{BufferPool, InflateBudget};
use crate::auth::Authentication;
use crate::cors::Cors;
use crate::files::StaticRoot;
use crate::forwarded::TrustedProxies;
use crate::headers::Headers;
use crate::ws::WsId;

/// The request policy a server applies besides its routes: what
/// [`decide`](super::dispatch::decide) consults, and the headers added to
/// every response.
#[derive(Default)]
pub(crate) struct Site {
    /// Server-wide authentication, checked before routes and static files.
    pub auth: Option<Authentication>,
    /// Server-wide CORS: preflights answered, headers added to responses.
    pub cors: Option<Cors>,
    pub static_root: Option<StaticRoot>,
    pub default_headers: Headers,
    /// Proxies whose forwarding headers name the client.
    pub proxies: TrustedProxies,
}

pub(crate) struct Shared {
    pub config: ServerConfig,
    pub site: Site,
    date: DateCache,
    /// Read buffer lent to whichever connection is being driven; a connection
    /// keeps a buffer of its own only while it holds unprocessed input.
    pub scratch: ReadBuf,
    /// Message buffers recycled through `receive_into`.
    pub ws_pool: BufferPool,
    /// Bytes inflated from received permessage-deflate messages and still
    /// held, bounded server-wide.
    pub inflate: InflateBudget,
    pub activity: Activity,
    /// Counts polls; a connection listed in `ws_ready` this poll carries it.
    pub epoch: u64,
    /// Bytes read from sockets in this poll round (see
    /// `ROUND_READ_BUDGET`).
    pub round_read: usize,
    /// WebSockets that received a message or pong, or ended, in this poll.
    pub ws_ready: Vec<WsId>,
    /// Event streams whose connection ended in this poll (or since the
    /// last one returned).
    pub sse_ended: Vec<crate::sse::SseId>,
    /// What the last poll reported (see `end_round`).
    reported: Reported,
    /// No sweep of connection deadlines is needed before this instant.
    pub next_sweep: Option<Instant>,
    /// The server stopped listening: responses close their connections.
    pub stopping: bool,
    /// What handlers queued through [`Request::outbox`](crate::Request::outbox),
    /// carried out once their connection has been driven.
    pub commands: Vec<crate::outbox::Command>,
    /// Bytes of the shared broadcast frames alive now.
    pub frame_bytes: super::fanout::FrameBytesTotal,
}

impl Shared {
    pub fn new(config: ServerConfig) -> Shared {
        Shared {
            inflate: InflateBudget::new(config.max_inflated_bytes),
            config,
            site: Site::default(),
            date: DateCache::default(),
            scratch: ReadBuf::default(),
            ws_pool: BufferPool::default(),
            activity: Activity::default(),
            epoch: 0,
            round_read: 0,
            ws_ready: Vec::new(),
            sse_ended: Vec::new(),
            reported: Reported::default(),
            next_sweep: None,
            stopping: false,
            commands: Vec::new(),
            frame_bytes: Default::default(),
        }
    }

    /// The `Date` header value for responses sent in this poll.
    pub fn date(&self) -> &str {
        &self.date.text
    }

    /// Starts a new poll round at wall-clock time `now`. What the last
    /// poll returned (its `ws_ready` and activity, see
    /// [`end_round`](Self::end_round)) goes; what happened since, between
    /// polls (a broadcast or a send that dropped a socket over its bound),
    /// stays for this poll to report.
    pub fn begin_round(&mut self, now: SystemTime) {
        self.date.update(now);
        let seen = self.reported.ready.min(self.ws_ready.len());
        self.ws_ready.drain(..seen);
        let seen = self.reported.sse_ended.min(self.sse_ended.len());
        self.sse_ended.drain(..seen);
        let (a, r) = (&mut self.activity, &self.reported.activity);
        *a = Activity {
            accepted: a.accepted.saturating_sub(r.accepted),
            responses: a.responses.saturating_sub(r.responses),
            handled: a.handled.saturating_sub(r.handled),
            closed: a.closed.saturating_sub(r.closed),
            timed_out: a.timed_out.saturating_sub(r.timed_out),
            refused: a.refused.saturating_sub(r.refused),
        };
        self.reported = Reported::default();
        self.epoch += 1;
        self.round_read = 0;
    }

    /// Ends a poll round: what `ws_ready` and the activity hold now is
    /// what the poll reports, and the next round starts without it.
    pub fn end_round(&mut self) -> Activity {
        self.reported = Reported {
            ready: self.ws_ready.len(),
            sse_ended: self.sse_ended.len(),
            activity: self.activity,
        };
        self.activity
    }

    /// Makes sure a sweep of connection deadlines happens no later than
    /// shortly after `at`.
    pub fn schedule(&mut self, at: Instant) {
        // Deadlines closer together than this share one sweep, so a sweep over
        // all connections happens at most every SWEEP_GRAIN however many
        // connections have deadlines.
        const SWEEP_GRAIN: Duration = Duration::from_millis(50);
        let at = after(at, SWEEP_GRAIN);
        if self.next_sweep.is_none_or(|n| at < n) {
            self.next_sweep = Some(at);
        }
    }
}

/// What the last poll returned to the program.
#[derive(Default)]
pub(crate) struct Reported {
    /// Entries of `ws_ready` it listed.
    ready: usize,
    /// Entries of `sse_ended` it listed.
    sse_ended: usize,
    activity: Activity,
}

/// `t + d`, saturating: a configured timeout of `Duration::MAX` means
/// "practically never" instead of an overflow panic.
pub(crate) fn after(t: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    t.checked_add(d.min(CENTURY)).unwrap_or(t)
}

/// Cached `Date` header value, formatted once per second.
#[derive(Default)]
struct DateCache {
    secs: u64,
    text: String,
}

impl DateCache {
    fn update(&mut self, now: SystemTime) {
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if secs != self.secs || self.text.is_empty() {
            self.secs = secs;
            self.text = httpdate::fmt_http_date(now);
        }
    }
}
