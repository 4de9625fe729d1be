//! The poll loop: waiting for readiness, accepting, driving connections,
//! sweeping deadlines and closing.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use mio::{Interest, Token};

use super::config::{Activity, ServerConfig};
use super::conn::{Conn, Readiness};
use super::Server;
use crate::error::Error;
use crate::request::ConnId;

pub(super) const LISTENER: Token = Token(usize::MAX - 1);
pub(super) const WAKER: Token = Token(usize::MAX - 2);

impl<S> Server<S> {
    /// Waits up to `timeout` for network activity, then accepts, reads, parses,
    /// routes, runs handlers and writes for every connection that is ready, and
    /// returns what happened. `Duration::ZERO` never blocks.
    pub fn poll(&mut self, state: &mut S, timeout: Duration) -> Result<Activity, Error> {
        let start = Instant::now();
        let mut wait = timeout;
        if !self.resume.is_empty() {
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

        let mut accept = false;
        // Copy the readiness out first so each connection can be driven with
        // `self` borrowed mutably (the buffer is reused across polls).
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|ev| (ev.token(), Readiness::of(ev))));
        for &(token, readiness) in &ready {
            match token {
                LISTENER => accept = true,
                WAKER => self.run_remote_commands(),
                Token(key) => {
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.on_ready(readiness);
                    }
                    self.drive(key, state, now)
                }
            }
        }
        self.ready = ready;
        for key in std::mem::take(&mut self.resume) {
            self.drive(key, state, now);
        }
        if accept || (self.accept_paused && self.conns.len() < self.shared.config.max_connections) {
            self.accept_all(now);
        }
        if self.shared.next_sweep.is_some_and(|at| now >= at) {
            self.sweep(now);
        }
        Ok(self.shared.activity)
    }

    /// Polls forever (`adafruit_httpserver`'s `serve_forever`), returning
    /// only on a poll-loop error.
    pub fn serve_forever(&mut self, state: &mut S) -> Result<(), Error> {
        loop {
            self.poll(state, Duration::from_secs(3600))?;
        }
    }

    fn drive(&mut self, key: usize, state: &mut S, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.drive(&mut self.routes, &mut self.shared, state, now) {
            self.close_conn(key);
        } else if conn.has_more() {
            self.resume.push(key);
        }
    }

    fn accept_all(&mut self, now: Instant) {
        self.accept_paused = false;
        loop {
            if self.conns.len() >= self.shared.config.max_connections {
                self.accept_paused = true;
                return;
            }
            let Some((listener, _)) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("cannot register connection from {peer}: {e}");
                        continue;
                    }
                    self.generation = self.generation.wrapping_add(1);
                    entry.insert(Conn::new(
                        Box::new(stream),
                        peer,
                        key as u32,
                        self.generation,
                        now,
                    ));
                    self.shared.activity.accepted += 1;
                    self.shared
                        .schedule(now + self.shared.config.header_timeout);
                    // Data that arrived with the connection is read on the next
                    // readiness event, which epoll reports right after registration.
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: leave the client in the backlog and
                    // retry at the next sweep instead of spinning.
                    log::warn!("accept failed: {e}; pausing accepts briefly");
                    self.accept_paused = true;
                    self.shared
                        .schedule(Instant::now() + Duration::from_millis(100));
                    return;
                }
            }
        }
    }

    fn sweep(&mut self, now: Instant) {
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
                    self.conns.remove(key);
                    continue;
                }
                Some(conn) => conn.on_timeout(&mut self.shared, now),
                None => continue,
            };
            if keep {
                self.refresh_deadline(key);
            } else {
                self.shared.activity.timed_out += 1;
                self.close_conn(key);
            }
        }
        if self.accept_paused {
            self.shared.schedule(now + Duration::from_millis(100));
        }
    }

    /// Closes connection `key` (its slot stays while a WebSocket's received
    /// messages wait for the program).
    pub(super) fn close_conn(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.retire(&mut self.shared, self.poll.registry(), Instant::now()) {
            // Dropping the stream closes its descriptor, which also takes it
            // out of the epoll set: no deregister or shutdown call is needed.
            self.conns.remove(key);
        }
    }

    /// Frees the slot of a closed connection.
    pub(super) fn release(&mut self, key: usize) {
        if self.conns.contains(key) {
            self.conns.remove(key);
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
