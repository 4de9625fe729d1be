//! The poll loop: waiting for readiness, accepting, driving connections,
//! sweeping deadlines and closing.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use mio::{Interest, Token};

use super::config::{Activity, ServerConfig};
use super::conn::{Conn, Readiness};
use super::console::server_log;
use super::shared::after;
use super::transport::Transport;
use super::{ListenerKind, Server};
use crate::error::Error;
use crate::request::ConnId;

pub(super) const WAKER: Token = Token(usize::MAX - 1);
/// Listeners take the tokens below the waker's (connections take slab keys,
/// which count up from 0).
const FIRST_LISTENER: usize = usize::MAX - 2;
/// At most one plain, one TLS and one redirect listener.
pub(super) const MAX_LISTENERS: usize = 3;

/// The poll token of listener number `index`.
pub(super) fn listener_token(index: usize) -> Token {
    Token(FIRST_LISTENER - index)
}

/// The listener number of a token, if it is a listener's.
fn listener_index(token: Token) -> Option<usize> {
    let index = FIRST_LISTENER.checked_sub(token.0)?;
    (index < MAX_LISTENERS).then_some(index)
}

/// Connections accepted per poll round: a storm of new connections is taken
/// a share at a time, between the work of those already open.
const ACCEPTS_PER_ROUND: usize = 64;

#[cfg(test)]
mod tests {
    use super::Throttle;
    use std::time::{Duration, Instant};

    #[test]
    fn throttle_lets_one_warning_through_per_interval_and_counts_the_rest() {
        let t0 = Instant::now();
        let mut t = Throttle::default();
        assert_eq!(t.allow(t0), Some(0));
        for ms in (100..10_000).step_by(100) {
            assert_eq!(t.allow(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(t.allow(t0 + Duration::from_secs(10)), Some(99));
        assert_eq!(t.allow(t0 + Duration::from_secs(11)), None);
    }
}

/// Bytes a poll round reads from sockets before it leaves the connections
/// still to be driven for the next round (see `drive_within_budget`). One
/// connection's share of a round (`READS_PER_ROUND` reads) can take a
/// round past it; the check is between connections.
const ROUND_READ_BUDGET: usize = 256 * 1024;

impl<S> Server<S> {
    /// Waits up to `timeout` for network activity, then accepts, reads, parses,
    /// routes, runs handlers and writes for every connection that is ready, and
    /// returns what happened (since the previous poll returned: a connection
    /// a broadcast dropped in between counts in this poll's
    /// [`Activity::closed`]). `Duration::ZERO` never blocks. A signal that
    /// interrupts the wait is not an error: `poll` returns early with what it
    /// did (see [`shutdown`](Self::shutdown) for a Ctrl-C handler).
    ///
    /// One poll reads about 256 KiB from the sockets at most (each
    /// connection it starts gets its whole share of the round), so that the
    /// program handles what arrived while it is still in the processor's
    /// cache, and a poll returns in bounded time: connections left over are
    /// driven first by the next poll, which then does not wait
    /// ([`next_deadline`](Self::next_deadline) says it is due at once).
    pub fn poll(&mut self, state: &mut S, timeout: Duration) -> Result<Activity, Error> {
        let start = Instant::now();
        self.relieve_inflate_jam(start);
        self.wake_inflate_waiter();
        let mut wait = timeout;
        if self.has_work_now() {
            wait = Duration::ZERO;
        }
        if let Some(at) = self.shared.next_sweep {
            wait = wait.min(at.saturating_duration_since(start));
        }
        if let Err(e) = self.poll.poll(&mut self.events, Some(wait)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
        let now = Instant::now();
        self.shared.begin_round(SystemTime::now());
        // WebSockets listed between polls are listed once in this poll too.
        let epoch = self.shared.epoch;
        for id in &self.shared.ws_ready {
            if let Some(conn) = self.conns.get_mut(id.0.slot as usize) {
                if conn.id() == id.0 {
                    conn.listed_in(epoch);
                }
            }
        }

        // Connections left with work by the previous round (or woken by the
        // program) go after this round's events; ones this round leaves
        // with work wait for the next.
        let resumed = std::mem::take(&mut self.resume);
        // Connections the last round left for want of read budget go
        // first, in the order they were left.
        let deferred = std::mem::take(&mut self.deferred);
        for key in deferred {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.deferred = false;
            }
            self.drive_within_budget(key, state, now);
        }
        // Listeners with news, one bit each.
        let mut accept = 0u32;
        // Copy the readiness out first so each connection can be driven with
        // `self` borrowed mutably (the buffer is reused across polls).
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|ev| (ev.token(), Readiness::of(ev))));
        // A full batch may have left events in the poller, which a host
        // loop waiting on the descriptor edge would not hear of again.
        self.events_left = ready.len() == self.events.capacity();
        // Commands a Sender queued: this round's share, whether the waker
        // fired now or an earlier round left some.
        let mut remote_due = self.remote_more;
        for &(token, readiness) in &ready {
            match token {
                WAKER => remote_due = true,
                _ if listener_index(token).is_some() => {
                    accept |= 1 << listener_index(token).unwrap_or(0)
                }
                Token(key) => {
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.on_ready(readiness);
                    }
                    self.drive_within_budget(key, state, now)
                }
            }
        }
        self.ready = ready;
        if remote_due {
            self.run_remote_commands();
        }
        for key in resumed {
            if self
                .conns
                .get(key)
                .is_some_and(|c| !c.driven_in(self.shared.epoch))
            {
                self.drive_within_budget(key, state, now);
            }
        }
        if self.accept_more
            || (self.accept_paused && self.open_slots() < self.shared.config.max_connections)
        {
            // Some listener may hold more: try them all.
            accept = u32::MAX;
        }
        if accept != 0 {
            self.accept_all(accept, now);
        }
        if self.shared.next_sweep.is_some_and(|at| now >= at) {
            self.sweep(now);
        }
        Ok(self.shared.end_round())
    }

    /// The inflate budget is jammed when connections wait for room, next to
    /// none is left, and partial messages hold most of it: none may be able
    /// to finish (several large messages started at once), or some sit
    /// mid-message on purpose. Then the partial message that has gone
    /// longest without growing (not the one whose turn it is) gives its
    /// bytes back, its socket closed with 1013, so the others go on at
    /// once instead of after `inflate_pause_timeout`. At most one per
    /// `JAM_CHECK_EVERY`, so the scan over connections stays rare.
    fn relieve_inflate_jam(&mut self, now: Instant) {
        const JAM_ROOM: usize = 64 << 10;
        const JAM_CHECK_EVERY: Duration = Duration::from_millis(20);
        let budget = &self.shared.inflate;
        if budget.waiting.is_empty() || budget.room() >= JAM_ROOM {
            return;
        }
        if self
            .jam_checked
            .is_some_and(|t| now < after(t, JAM_CHECK_EVERY))
        {
            return;
        }
        self.jam_checked = Some(now);
        let turn = budget.turn;
        let mut partials = 0usize;
        let mut victim: Option<(Instant, usize)> = None;
        for (key, conn) in self.conns.iter() {
            if let Some((len, grew)) = conn.ws_partial() {
                partials = partials.saturating_add(len);
                if Some(key) != turn && victim.is_none_or(|(g, _)| grew < g) {
                    victim = Some((grew, key));
                }
            }
        }
        // Messages complete in inboxes free their room as the program
        // takes them: only partial ones can jam the budget.
        if partials < budget.limit / 2 {
            return;
        }
        let Some((_, key)) = victim else {
            return;
        };
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let keep = conn.ws_give_up_partial(now);
        conn.mark_ws_ready(&mut self.shared);
        if keep {
            self.resume.push(key);
        } else {
            self.close_conn(key);
        }
    }

    /// Connections paused for want of inflate budget go on once some of it
    /// is free (a message taken by the program, a connection gone): the one
    /// with the largest partial message first, the others after it.
    fn wake_inflate_waiter(&mut self) {
        let budget = &mut self.shared.inflate;
        if budget.waiting.is_empty() || budget.room() == 0 {
            return;
        }
        let conns = &self.conns;
        budget
            .waiting
            .retain(|&k| conns.get(k).is_some_and(|c| c.ws_budget_paused().is_some()));
        budget.turn = budget
            .waiting
            .iter()
            .max_by_key(|&&k| conns.get(k).and_then(|c| c.ws_budget_paused()))
            .copied();
        if let Some(k) = budget.turn {
            self.resume.push(k);
        }
    }

    /// Polls forever (`adafruit_httpserver`'s `serve_forever`), returning
    /// only on a poll-loop error.
    pub fn serve_forever(&mut self, state: &mut S) -> Result<(), Error> {
        loop {
            self.poll(state, Duration::from_secs(3600))?;
        }
    }

    /// Drives connection `key`, unless this round has read
    /// [`ROUND_READ_BUDGET`] bytes already: then the connection (its
    /// readiness kept) waits for the next round, which drives it first, and
    /// `poll` returns to the program with what was read so far. What a
    /// round reads is then handled by the program while it is still in the
    /// processor's cache (a round that read all of 200 busy sockets before
    /// the program echoed the first message worked from memory: 16 KiB
    /// echoes measured 18 % more messages per second with rounds this
    /// size), and a poll returns in bounded time however much arrives.
    fn drive_within_budget(&mut self, key: usize, state: &mut S, now: Instant) {
        if self.shared.round_read < ROUND_READ_BUDGET {
            self.drive(key, state, now);
            return;
        }
        // Deferred even if it was driven earlier in this round: the event
        // that brought it here (a socket writable again, more input) is an
        // edge that will not come again, so someone must act on it.
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.deferred {
                conn.deferred = true;
                self.deferred.push(key);
            }
        }
    }

    pub(super) fn drive(&mut self, key: usize, state: &mut S, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.is_dead() {
            return;
        }
        if !conn.drive(&mut self.routes, &mut self.shared, state, now) {
            self.close_conn(key);
        } else if conn.has_more() {
            self.resume.push(key);
        }
        if !self.shared.commands.is_empty() {
            self.run_outbox_commands();
        }
    }

    /// Accepts from the listeners whose bit is set in `which`, a share of
    /// each.
    fn accept_all(&mut self, which: u32, now: Instant) {
        self.accept_paused = false;
        self.accept_more = false;
        for index in 0..self.listeners.len() {
            if which & (1 << index) != 0 && !self.accept_from(index, now) {
                return;
            }
        }
    }

    /// Accepts up to a share of listener `index`'s waiting connections.
    /// Returns false when accepting is paused (no room or no descriptors).
    fn accept_from(&mut self, index: usize, now: Instant) -> bool {
        for _ in 0..ACCEPTS_PER_ROUND {
            if self.open_slots() >= self.shared.config.max_connections {
                self.accept_paused = true;
                return false;
            }
            let Some(listener) = self.listeners.get(index) else {
                return true;
            };
            match listener.socket.accept() {
                Ok((mut stream, peer)) => {
                    let config = &self.shared.config;
                    // A trusted proxy speaks for many clients: it is not
                    // capped (limit clients in the proxy itself).
                    let capped = config
                        .max_connections_per_ip
                        .filter(|_| !self.shared.site.proxies.contains(peer.ip()));
                    if let Some(cap) = capped {
                        if self.per_ip.get(&peer.ip()).is_some_and(|&n| n >= cap) {
                            if let Some(more) = self.cap_warning.allow(now) {
                                server_log!(
                                    config.log_to_stderr,
                                    Warn,
                                    "{peer}: turned away, over {cap} connections from its \
                                     address ({more} more turned away since the last warning)"
                                );
                            }
                            self.shared.activity.refused += 1;
                            refuse_over_cap(&mut stream);
                            continue;
                        }
                    }
                    configure_socket(&stream, config);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        server_log!(
                            config.log_to_stderr,
                            Warn,
                            "cannot register connection from {peer}: {e}"
                        );
                        continue;
                    }
                    let mut redirect = None;
                    let io: Box<dyn Transport> = match &listener.kind {
                        ListenerKind::Plain => Box::new(stream),
                        ListenerKind::HttpsRedirect { https_port } => {
                            redirect = Some(*https_port);
                            Box::new(stream)
                        }
                        #[cfg(feature = "tls")]
                        ListenerKind::Tls(tls) => {
                            match rustls::server::UnbufferedServerConnection::new(
                                tls.rustls.clone(),
                            ) {
                                Ok(session) => {
                                    Box::new(super::tls::TlsTransport::new(stream, session))
                                }
                                Err(e) => {
                                    server_log!(
                                        config.log_to_stderr,
                                        Warn,
                                        "{peer}: cannot start a TLS session: {e}"
                                    );
                                    continue;
                                }
                            }
                        }
                    };
                    if capped.is_some() {
                        *self.per_ip.entry(peer.ip()).or_default() += 1;
                    }
                    self.generation = self.generation.wrapping_add(1);
                    let mut conn = Conn::new(io, peer, key as u32, self.generation, now);
                    if let Some(port) = redirect {
                        conn.redirect_to_https(port);
                    }
                    entry.insert(conn);
                    self.shared.activity.accepted += 1;
                    self.shared
                        .schedule(after(now, self.shared.config.header_timeout));
                    // Data that arrived with the connection is read on the next
                    // readiness event, which epoll reports right after registration.
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: leave the client in the backlog and
                    // retry at the next sweep instead of spinning.
                    if let Some(repeats) = self.accept_warning.allow(now) {
                        server_log!(
                            self.shared.config.log_to_stderr,
                            Warn,
                            "accept failed: {e}; pausing accepts briefly \
                             ({repeats} more such failures since the last warning)"
                        );
                    }
                    self.accept_paused = true;
                    self.shared
                        .schedule(Instant::now() + Duration::from_millis(100));
                    return false;
                }
            }
        }
        // This round's share of new connections is taken; the listener will
        // not signal again for those still waiting, so the next poll goes on.
        self.accept_more = true;
        true
    }

    pub(super) fn sweep(&mut self, now: Instant) {
        self.shared.next_sweep = None;
        let mut expired = Vec::new();
        for (key, conn) in self.conns.iter() {
            match conn.deadline() {
                Some(d) if d <= now => expired.push(key),
                Some(d) if self.shared.next_sweep.is_none_or(|n| d < n) => {
                    self.shared.next_sweep = Some(d);
                }
                _ => {}
            }
        }
        for key in expired {
            let keep = match self.conns.get_mut(key) {
                Some(conn) if conn.is_dead() => {
                    self.remove_dead(key);
                    continue;
                }
                Some(conn) => conn.on_timeout(&mut self.shared, now),
                None => continue,
            };
            if keep {
                self.refresh_deadline(key);
                if self.conns.get(key).is_some_and(|c| c.has_more()) {
                    // It has input to go on with (after a 1013 for want of
                    // inflate budget: the rest of the peer's frames).
                    self.resume.push(key);
                }
            } else {
                self.shared.activity.timed_out += 1;
                self.close_conn(key);
            }
        }
        if self.accept_paused {
            self.shared.schedule(now + Duration::from_millis(100));
        }
    }

    /// Slots of connections whose socket is open: what
    /// [`ServerConfig::max_connections`] bounds (closed WebSockets kept for
    /// the program hold no descriptor and are bounded on their own).
    pub(super) fn open_slots(&self) -> usize {
        self.conns.len() - self.retired_count
    }

    /// Closes connection `key` (its slot stays a while when a WebSocket's
    /// received messages or its end wait for the program).
    pub(super) fn close_conn(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.is_dead() {
            return;
        }
        let ip = conn.peer().ip();
        let slot_stays = conn.retire(&mut self.shared, Instant::now());
        // Groups hold open members only: a closed WebSocket leaves now,
        // even with messages the program has not taken (it still finds
        // them through `ws_ready` or the id it keeps).
        self.leave_all_groups(key);
        if slot_stays {
            self.hold_retired(key);
        } else {
            // Dropping the stream closes its descriptor, which also takes
            // it out of the epoll set: no deregister or shutdown is needed.
            self.conns.remove(key);
        }
        self.forget_ip(ip);
    }

    /// Keeps the closed WebSocket `key` for the program, within the bound
    /// of `max_connections` such slots: past it the oldest goes first (a
    /// program that never receives cannot make closed sockets pile up).
    fn hold_retired(&mut self, key: usize) {
        let Some(id) = self.conns.get(key).map(|c| c.id()) else {
            return;
        };
        self.retired_count += 1;
        self.retired.push_back(id);
        while self.retired_count > self.shared.config.max_connections {
            let Some(oldest) = self.retired.pop_front() else {
                break;
            };
            if self.is_retired(oldest) {
                let slot = oldest.slot as usize;
                let lost = self.conns.get(slot).is_some_and(|c| c.ws_has_messages());
                self.remove_dead(slot);
                if lost {
                    self.retired_dropped += 1;
                }
            }
        }
        // Entries of slots freed meanwhile are skipped when met at the
        // front; the list is cleaned when they outnumber the live ones.
        if self.retired.len() > 2 * self.retired_count + 64 {
            let retired = std::mem::take(&mut self.retired);
            self.retired = retired
                .into_iter()
                .filter(|&id| self.is_retired(id))
                .collect();
        }
    }

    /// Whether `id` names a closed WebSocket's slot kept for the program.
    fn is_retired(&self, id: ConnId) -> bool {
        self.conns
            .get(id.slot as usize)
            .is_some_and(|c| c.id() == id && c.is_dead())
    }

    /// Frees the slot of a closed WebSocket whose time is up.
    pub(super) fn remove_dead(&mut self, key: usize) {
        if self.conns.get(key).is_some_and(|c| c.is_dead()) {
            self.leave_all_groups(key);
            self.conns.remove(key);
            self.retired_count -= 1;
            if self.retired_count == 0 {
                // Nothing is kept: the list's stale entries go too.
                self.retired.clear();
            }
        }
    }

    /// One connection fewer from `ip` (its socket is closed).
    fn forget_ip(&mut self, ip: std::net::IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// After the program sent on connection `key`: the output is written at
    /// the next poll (which then does not wait), and the deadline follows.
    pub(super) fn after_send(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if conn.queue_flush() {
                self.resume.push(key);
            }
            conn.update_deadline_after_send(&mut self.shared);
        }
    }

    /// Recomputes connection `key`'s deadline after the program acted on it.
    pub(super) fn refresh_deadline(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.update_deadline(&mut self.shared);
        }
    }

    /// The live connection `id` names (not a later one in the same slot).
    pub(super) fn conn_for(&mut self, id: ConnId) -> Option<&mut Conn> {
        let conn = self.conns.get_mut(id.slot as usize)?;
        (conn.id() == id).then_some(conn)
    }
}

/// Socket options of an accepted connection: no Nagle delay (responses
/// leave as soon as they are written), the configured send buffer, TCP keepalive and a bound on how long
/// sent data may stay unacknowledged, so a vanished peer is found.
fn configure_socket(stream: &mio::net::TcpStream, config: &ServerConfig) {
    let _ = stream.set_nodelay(true);
    if let Some(size) = config.send_buffer_size {
        let _ = socket2::SockRef::from(stream).set_send_buffer_size(size);
    }
    if let Some(idle) = config.tcp_keepalive {
        let socket = socket2::SockRef::from(stream);
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(Duration::from_secs(10));
        #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
        let keepalive = keepalive.with_retries(3);
        let _ = socket.set_tcp_keepalive(&keepalive);
        #[cfg(target_os = "linux")]
        let _ = socket.set_tcp_user_timeout(Some(config.send_timeout));
    }
}

/// Tells a client over the per-address cap why it is turned away (best
/// effort: one non-blocking write), then the connection is dropped.
fn refuse_over_cap(stream: &mut mio::net::TcpStream) {
    use std::io::Write;
    const BODY: &str = "too many connections from your address\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.write(response.as_bytes());
}

/// Lets a repeated warning through at most once per `INTERVAL`, counting
/// the ones held back, so a condition that recurs every few milliseconds
/// (out of descriptors) neither floods the log nor hides.
#[derive(Default)]
pub(super) struct Throttle {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    const INTERVAL: Duration = Duration::from_secs(10);

    /// `Some(number held back since the last one let through)` when the
    /// warning may be logged now.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(at) if now < at + Self::INTERVAL => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

pub(super) fn bind(addr: SocketAddr, config: &ServerConfig) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    if config.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(config.backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

pub(super) fn display_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => a.to_string(),
    }
}
