//! The driver: a `mio` poll loop owning the listener and every connection.
//!
//! - [`config`](ServerConfig): limits and timeouts;
//! - `routes`: what a route runs ([`Route`], [`BodySink`]);
//! - `dispatch`: the one decision taken per request when its head is in;
//! - `event_loop`: [`Server::poll`], accepting, deadlines, closing;
//! - `conn`: one connection's transport, buffers and phases, with the
//!   HTTP exchange and the WebSocket and event-stream transports;
//! - `transport`: the byte stream under a connection (plain TCP);
//! - `tls`: TLS over it (feature `tls`);
//! - `handles`: [`WsHandle`], [`SseHandle`], [`StreamHandle`] and the
//!   cross-thread [`Sender`];
//! - `fanout`: broadcasts, encoded once and shared by the connections;
//! - `groups`: [`GroupHandle`] and who is in which group.

mod buf;
mod config;
mod conn;
mod console;
mod dispatch;
mod event_loop;
mod fanout;
mod groups;
mod handles;
mod routes;
mod shared;
#[cfg(feature = "tls")]
mod tls;
mod transport;

#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::error::{Error, HttpError};
use crate::files::StaticRoot;
use crate::request::Request;
use crate::response::Response;
use crate::router::{IntoMethodMask, Router};
use crate::sse::{SseEvent, SseId};
use crate::stream::StreamId;
use crate::ws::WsId;

pub use config::{Activity, ServerConfig, ServerStats};
pub use groups::GroupHandle;
pub use handles::{Sender, SseHandle, StreamHandle, WsHandle, MAX_SENDER_QUEUE};
pub use routes::{BodySink, Handler, Route, SinkOpener};

use conn::{Conn, Readiness};
use console::server_log;
use event_loop::{bind, display_addr, listener_token, MAX_LISTENERS, WAKER};
use handles::Remote;
use routes::RouteHandler;
use shared::Shared;

/// An HTTP/1.1 server driven by the program's own loop.
///
/// `S` is the application state passed to every handler by
/// [`poll`](Server::poll), so handlers can change it without locks or
/// `Rc<RefCell<…>>`. See the [crate documentation](crate) for a walk-through.
///
/// # Inside another event loop
///
/// A program whose loop already waits on descriptors of its own (a GUI
/// toolkit, `calloop`, tokio, plain `poll(2)`) does not need to call `poll`
/// on a timer: it waits on the server's descriptor (`Server` implements
/// `AsFd`/`AsRawFd` on Unix) together with its own, until
/// [`next_deadline`](Server::next_deadline), and then calls
/// `poll(&mut state, Duration::ZERO)`. Nothing busy-waits and no timeout
/// runs late. With `mio` as the host's poller:
///
/// ```no_run
/// use std::os::fd::AsRawFd;
/// use std::time::{Duration, Instant};
/// use mio::{unix::SourceFd, Events, Interest, Poll, Token};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut server = pollserve::Server::<()>::new();
/// server.start("127.0.0.1", 5000)?;
/// let mut host = Poll::new()?;
/// host.registry()
///     .register(&mut SourceFd(&server.as_raw_fd()), Token(0), Interest::READABLE)?;
/// // ... register the program's own descriptors too ...
/// let mut events = Events::with_capacity(16);
/// loop {
///     let timeout = server.next_deadline().map(|at| at.saturating_duration_since(Instant::now()));
///     host.poll(&mut events, timeout)?;
///     server.poll(&mut (), Duration::ZERO)?;
///     // ... handle the program's own events ...
/// }
/// # }
/// ```
///
/// `examples/host_loop.rs` adds the program's own input and timer;
/// `examples/start_and_poll_tokio.rs` does the same with tokio's `AsyncFd`.
pub struct Server<S = ()> {
    routes: Router<RouteHandler<S>>,
    shared: Shared,
    poll: Poll,
    events: Events,
    /// Listening sockets (none when stopped), at most one of each kind.
    listeners: Vec<Listener>,
    conns: Slab<Conn>,
    generation: u32,
    /// Accepting paused (connection limit or out of file descriptors).
    accept_paused: bool,
    /// The last poll took a full batch of events: more may be waiting.
    events_left: bool,
    /// The last poll accepted a listener's share of connections: more may
    /// be waiting.
    accept_more: bool,
    /// Readiness copied out of `events` for the current poll.
    ready: Vec<(Token, Readiness)>,
    /// Connections to drive at the next poll without waiting for an event
    /// (a WebSocket whose program made room by receiving).
    resume: Vec<usize>,
    /// Connections with readiness that a round left undriven because it had
    /// read its budget (`ROUND_READ_BUDGET`): driven first in the next.
    deferred: Vec<usize>,
    /// Commands from other threads, created with the first `sender()`.
    remote: Option<Arc<Remote>>,
    /// The last poll left commands of `remote` for the next one (it ran
    /// its share).
    remote_more: bool,
    /// The batch of `remote` commands being run (its allocation reused).
    remote_batch: Vec<Option<crate::outbox::Command>>,
    /// Open connections per client address, kept only when
    /// `max_connections_per_ip` is set.
    per_ip: HashMap<IpAddr, usize>,
    /// Holds back repeats of the "accept failed" warning.
    accept_warning: event_loop::Throttle,
    /// Holds back repeats of the "over the per-address cap" warning.
    cap_warning: event_loop::Throttle,
    /// The groups made by `new_group`.
    groups: groups::Groups,
    /// Where a broadcast event is encoded before it is shared.
    scratch: Vec<u8>,
    /// Closed WebSockets whose slots stay for the program, oldest first
    /// (entries whose slot has gone since are skipped when met).
    retired: std::collections::VecDeque<crate::request::ConnId>,
    /// How many slots of `conns` are such closed WebSockets.
    retired_count: usize,
    /// Closed WebSockets dropped early, with untaken messages, to keep
    /// `retired_count` within `max_connections`.
    retired_dropped: usize,
    /// When the inflate budget was last checked for a jam.
    jam_checked: Option<std::time::Instant>,
}

impl<S> Server<S> {
    /// A server with the default [`ServerConfig`].
    pub fn new() -> Server<S> {
        Server::with_config(ServerConfig::default())
    }

    /// A server with the given configuration.
    ///
    /// # Panics
    /// Only if the operating system refuses to create an epoll/kqueue instance,
    /// which happens when the process is out of file descriptors.
    pub fn with_config(config: ServerConfig) -> Server<S> {
        Server::try_with_config(config).expect("cannot create the poll instance")
    }

    /// Like [`with_config`](Self::with_config), returning the OS error instead of panicking.
    pub fn try_with_config(config: ServerConfig) -> Result<Server<S>, Error> {
        Ok(Server {
            routes: Router::new(),
            shared: Shared::new(config),
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            events_left: false,
            accept_more: false,
            listeners: Vec::new(),
            conns: Slab::new(),
            generation: 0,
            accept_paused: false,
            resume: Vec::new(),
            deferred: Vec::new(),
            ready: Vec::new(),
            remote: None,
            remote_more: false,
            remote_batch: Vec::new(),
            per_ip: HashMap::new(),
            accept_warning: event_loop::Throttle::default(),
            cap_warning: event_loop::Throttle::default(),
            groups: groups::Groups::default(),
            scratch: Vec::new(),
            retired: Default::default(),
            retired_count: 0,
            retired_dropped: 0,
            jam_checked: None,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Registers `handler` for `pattern` and the given method(s).
    ///
    /// Patterns use `adafruit_httpserver`'s syntax: `/item/<id>` captures a segment,
    /// `...` matches exactly one segment and `....` one or more. The first
    /// registered route that matches wins. A `GET` route also answers `HEAD`.
    ///
    /// ```
    /// use pollserve::{Method, Response, Server};
    /// let mut server = Server::<u32>::new();
    /// server.route("/count", Method::POST, |_req, hits: &mut u32| {
    ///     *hits += 1;
    ///     Ok(Response::text(hits.to_string()))
    /// })?;
    /// server.route("/item/<id>", [Method::GET, Method::PUT], |req, _| {
    ///     Ok(Response::text(req.param("id").unwrap_or_default()))
    /// })?;
    /// # Ok::<(), pollserve::Error>(())
    /// ```
    pub fn route<F>(
        &mut self,
        pattern: &str,
        methods: impl IntoMethodMask,
        handler: F,
    ) -> Result<&mut Self, Error>
    where
        F: FnMut(&Request, &mut S) -> Result<Response, HttpError> + 'static,
    {
        self.add_route(Route::new(pattern, methods, handler))
    }

    /// Registers a [`Route`] built beforehand (`adafruit_httpserver`'s `as_route`).
    pub fn add_route(&mut self, route: Route<S>) -> Result<&mut Self, Error> {
        self.routes.add(
            &route.pattern,
            route.methods,
            route.append_slash,
            route.handler,
        )?;
        Ok(self)
    }

    /// Registers several routes at once (`adafruit_httpserver`'s `add_routes`); stops at the
    /// first invalid pattern.
    pub fn add_routes(
        &mut self,
        routes: impl IntoIterator<Item = Route<S>>,
    ) -> Result<&mut Self, Error> {
        for r in routes {
            self.add_route(r)?;
        }
        Ok(self)
    }

    /// Serves files under `root` for `GET`/`HEAD` requests no route matched.
    ///
    /// Paths are resolved safely: `..`, encoded separators, backslashes, NUL and
    /// symlinks leaving the root are refused with 403/404, and dotfiles are not
    /// served. `/` and `dir/` serve `index.html`; `dir` without its slash is
    /// redirected (301, query kept). Another method on a path served here
    /// gets `405` with `Allow: GET, HEAD`.
    pub fn serve_files(&mut self, root: impl AsRef<Path>) -> Result<&mut Self, Error> {
        let root = root.as_ref();
        let static_root = StaticRoot::new(root).map_err(|source| Error::StaticRoot {
            path: root.to_path_buf(),
            source,
        })?;
        self.shared.site.static_root = Some(static_root);
        Ok(self)
    }

    /// Serves files from a [`StaticRoot`] configured beforehand (listing,
    /// dotfile policy, index file, MIME table).
    pub fn set_static_root(&mut self, root: StaticRoot) -> &mut Self {
        self.shared.site.static_root = Some(root);
        self
    }

    /// The static-file root, to change its MIME table or dotfile policy.
    pub fn static_root_mut(&mut self) -> Option<&mut StaticRoot> {
        self.shared.site.static_root.as_mut()
    }

    /// Requires these credentials for every request — routes, streaming
    /// routes and static files alike (`adafruit_httpserver`'s server-wide
    /// `require_authentication`). Others get `401` with a `WWW-Authenticate`
    /// challenge; a streaming route's opener never runs for them, and a
    /// client waiting on `Expect: 100-continue` gets the `401` before it sends
    /// the body. For one route only, use
    /// [`Route::require_authentication`](crate::Route::require_authentication),
    /// checked the same way when the head arrives;
    /// [`Authentication::require`](crate::auth::Authentication::require) in
    /// a handler runs only after the whole body has been read.
    pub fn require_authentication(&mut self, auth: crate::auth::Authentication) -> &mut Self {
        self.shared.site.auth = Some(auth);
        self
    }

    /// Answers CORS preflight (`OPTIONS`) requests for the configured origins
    /// and adds CORS headers to every response; see [`Cors`](crate::cors::Cors).
    /// Preflights are answered before authentication, as browsers send them
    /// without credentials.
    pub fn cors(&mut self, cors: crate::cors::Cors) -> &mut Self {
        self.shared.site.cors = Some(cors);
        self
    }

    /// Believes `Forwarded` / `X-Forwarded-For` from these proxies (and
    /// only from them) for the client's address:
    /// [`Request::client_ip`] and the access log. For a reverse proxy on the
    /// same machine, `TrustedProxies::loopback()`; see
    /// [`forwarded`](crate::forwarded).
    pub fn trust_proxies(&mut self, proxies: crate::forwarded::TrustedProxies) -> &mut Self {
        self.shared.site.proxies = proxies;
        self
    }

    /// Adds a header sent with every response unless the handler sets the same
    /// field itself (the handler's value wins). Invalid names and values,
    /// and the framing fields (`Content-Length`, `Transfer-Encoding`,
    /// `Connection`), are refused with an error in the log.
    pub fn default_header(&mut self, name: &str, value: &str) -> &mut Self {
        // The framing fields are the server's to write, per response.
        let framing = ["Content-Length", "Transfer-Encoding", "Connection"]
            .iter()
            .any(|f| f.eq_ignore_ascii_case(name));
        if framing {
            server_log!(
                self.shared.config.log_to_stderr,
                Error,
                "refusing default header {name:?}: the server writes it per response"
            );
        } else if crate::headers::is_valid_name(name) && crate::headers::is_valid_value(value) {
            self.shared.site.default_headers.set(name, value);
        } else {
            server_log!(
                self.shared.config.log_to_stderr,
                Error,
                "refusing invalid default header {name:?}: {value:?}"
            );
        }
        self
    }

    /// Starts listening on `host:port` (port 0 picks a free port; see
    /// [`local_addr`](Self::local_addr)). The socket gets `SO_REUSEADDR`, so a
    /// restart does not wait for old connections in `TIME_WAIT`. A server
    /// may listen on one plain port, one TLS port
    /// (`start_tls`, feature `tls`) and one redirect port
    /// ([`start_https_redirect`](Self::start_https_redirect)) at once.
    pub fn start(&mut self, host: &str, port: u16) -> Result<SocketAddr, Error> {
        self.listen(host, port, ListenerKind::Plain)
    }

    /// Starts listening for HTTPS (and WSS) on `host:port` with `tls`:
    /// everything works as on a plain port, on the same routes. The TLS
    /// handshake runs inside [`poll`](Self::poll) and never blocks it; it
    /// must complete within [`ServerConfig::header_timeout`] of the
    /// connection's accept. A plain-HTTP request on this port is answered
    /// `400` with a note that the port speaks HTTPS. Feature `tls`.
    ///
    /// ```
    /// use pollserve::{tls::TlsConfig, Server};
    /// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    /// let tls = TlsConfig::from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes())?;
    /// let mut server = Server::<()>::new();
    /// let https = server.start_tls("127.0.0.1", 0, tls)?;
    /// let http = server.start("127.0.0.1", 0)?;          // a plain port beside it
    /// assert_eq!(server.tls_local_addr(), Some(https));
    /// assert_eq!(server.local_addr(), Some(http));
    /// # Ok::<(), pollserve::Error>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn start_tls(
        &mut self,
        host: &str,
        port: u16,
        tls: crate::tls::TlsConfig,
    ) -> Result<SocketAddr, Error> {
        self.listen(host, port, ListenerKind::Tls(tls))
    }

    /// Swaps the TLS configuration (a renewed certificate) of the TLS
    /// listener: connections accepted from now on use `tls`, open ones keep
    /// the one they began with. Sessions stay resumable across the swap
    /// when both configurations were made from PEM by
    /// [`TlsConfig`](crate::tls::TlsConfig). Returns the number of
    /// listeners changed (0 when the server has no TLS listener). Feature `tls`.
    ///
    /// ```no_run
    /// # use pollserve::{tls::TlsConfig, Server};
    /// # let mut server = Server::<()>::new();
    /// match TlsConfig::from_pem_files("fullchain.pem", "privkey.pem") {
    ///     Ok(tls) => { server.reload_tls(tls); }
    ///     Err(e) => eprintln!("keeping the old certificate: {e}"),
    /// }
    /// ```
    #[cfg(feature = "tls")]
    pub fn reload_tls(&mut self, tls: crate::tls::TlsConfig) -> usize {
        let mut changed = 0;
        for listener in &mut self.listeners {
            if let ListenerKind::Tls(old) = &mut listener.kind {
                *old = tls.clone().carrying_sessions_of(old);
                changed += 1;
                server_log!(
                    self.shared.config.log_to_stderr,
                    Info,
                    "TLS configuration replaced for new connections on https://{}",
                    display_addr(listener.addr)
                );
            }
        }
        changed
    }

    /// The address of the TLS listener, once started. Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| matches!(l.kind, ListenerKind::Tls(_)))
            .map(|l| l.addr)
    }

    /// Listens on `host:port` for plain HTTP and answers every request with
    /// a redirect to the same host and target on `https_port`: `301` for
    /// `GET` and `HEAD`, `308` (method and body kept) for the others. No
    /// route, authentication or static file is consulted on this port.
    ///
    /// ```no_run
    /// # let mut server = pollserve::Server::<()>::new();
    /// server.start_https_redirect("0.0.0.0", 80, 443)?;   // http://host/x → https://host/x
    /// # Ok::<(), pollserve::Error>(())
    /// ```
    pub fn start_https_redirect(
        &mut self,
        host: &str,
        port: u16,
        https_port: u16,
    ) -> Result<SocketAddr, Error> {
        self.listen(host, port, ListenerKind::HttpsRedirect { https_port })
    }

    fn listen(&mut self, host: &str, port: u16, kind: ListenerKind) -> Result<SocketAddr, Error> {
        if let Some(same) = self.listeners.iter().find(|l| l.kind.same_kind(&kind)) {
            return Err(Error::AlreadyStarted(same.addr));
        }
        debug_assert!(self.listeners.len() < MAX_LISTENERS);
        let invalid = |reason: String| Error::InvalidAddress {
            addr: format!("{host}:{port}"),
            reason,
        };
        let host_trim = host.trim_start_matches('[').trim_end_matches(']');
        let addr = (host_trim, port)
            .to_socket_addrs()
            .map_err(|e| invalid(e.to_string()))?
            .next()
            .ok_or_else(|| invalid("no address found".into()))?;
        let std_listener =
            bind(addr, &self.shared.config).map_err(|source| Error::Bind { addr, source })?;
        let local = std_listener.local_addr()?;
        let mut socket = TcpListener::from_std(std_listener);
        let token = listener_token(self.listeners.len());
        self.poll
            .registry()
            .register(&mut socket, token, Interest::READABLE)?;
        let to_stderr = self.shared.config.log_to_stderr;
        match &kind {
            ListenerKind::HttpsRedirect { https_port } => server_log!(
                to_stderr,
                Info,
                "pollserve redirecting http://{} to HTTPS port {https_port}",
                display_addr(local)
            ),
            _ => server_log!(
                to_stderr,
                Info,
                "pollserve listening on {}://{}",
                kind.scheme(),
                display_addr(local)
            ),
        }
        self.listeners.push(Listener {
            socket,
            addr: local,
            kind,
        });
        self.shared.stopping = false;
        self.accept_paused = false;
        Ok(local)
    }

    /// The address the server listens on, once started: its plain port, or
    /// else the first it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| matches!(l.kind, ListenerKind::Plain))
            .or(self.listeners.first())
            .map(|l| l.addr)
    }

    /// Whether the server is listening.
    pub fn is_listening(&self) -> bool {
        !self.listeners.is_empty()
    }

    /// What the server holds now: connections (closed WebSockets whose slot
    /// stays for the program to read how they ended count too) and the
    /// memory of their buffers. A broadcast's shared buffer counts once in
    /// `output_buffered`, however many connections it is queued on (a
    /// running total kept as shared buffers are made and freed). Costs one
    /// step per connection, not per queued frame: about a millisecond per
    /// 10,000 connections, so call it for monitoring, not on every poll of
    /// a busy server.
    pub fn stats(&self) -> ServerStats {
        let mut stats = ServerStats {
            connections: self.conns.len(),
            inflated_held: self.shared.inflate.held(),
            closed_websockets: self.retired_count,
            closed_websockets_dropped: self.retired_dropped,
            sender_queued: self.sender_queued(),
            ..ServerStats::default()
        };
        for (_, conn) in self.conns.iter() {
            stats.input_buffered += conn.input_buffered();
            stats.output_queued += conn.output_queued();
            stats.output_buffered += conn.output_buffered();
        }
        stats.output_buffered += self.shared.frame_bytes.get();
        stats
    }

    /// Number of connection slots in use: open connections, and closed
    /// WebSockets whose slot stays for the program (see
    /// [`ServerStats::closed_websockets`], which do not count toward
    /// [`ServerConfig::max_connections`]).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Stops listening. Idle connections are closed now; requests in flight are
    /// answered (with `Connection: close`) by later calls of [`poll`](Self::poll).
    /// [`start`](Self::start) may be called again afterwards.
    pub fn stop(&mut self) {
        for mut l in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut l.socket);
            server_log!(
                self.shared.config.log_to_stderr,
                Info,
                "pollserve stopped listening on {}://{}",
                l.kind.scheme(),
                display_addr(l.addr)
            );
        }
        self.shared.stopping = true;
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_idle())
            .map(|(k, _)| k)
            .collect();
        for key in idle {
            self.close_conn(key);
        }
    }

    /// Shuts down gracefully, for a program that is about to exit: stops
    /// listening (new clients are refused), closes idle connections, sends
    /// every WebSocket a close with code 1001 (going away) and ends every
    /// event stream, then keeps polling — so requests already in flight are
    /// read, handled and answered (with `Connection: close`) — until no
    /// connection is left or `grace` has passed. Connections still open then
    /// are dropped; their number is returned. Messages that WebSockets
    /// received before closing can still be taken with
    /// [`receive`](WsHandle::receive) afterwards.
    ///
    /// A connection whose response is out waits, for up to
    /// [`ServerConfig::linger_timeout`] (2 s), for its client to close or
    /// send what it still had in flight, so the response is not lost to a
    /// TCP reset: a client that keeps its socket open makes `shutdown` take
    /// that long, without counting as dropped.
    ///
    /// Shutting down on Ctrl-C or SIGTERM, with the `signal-hook` crate (a
    /// signal interrupts [`poll`](Self::poll), which then returns `Ok`):
    ///
    /// ```no_run
    /// use std::sync::{atomic::{AtomicBool, Ordering}, Arc};
    /// use std::time::Duration;
    /// # let mut server = pollserve::Server::<()>::new();
    /// let stop = Arc::new(AtomicBool::new(false));
    /// for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
    ///     signal_hook::flag::register(signal, stop.clone())?;
    /// }
    /// while !stop.load(Ordering::SeqCst) {
    ///     server.poll(&mut (), Duration::from_secs(1))?;
    ///     // ... the program's own work ...
    /// }
    /// let dropped = server.shutdown(&mut (), Duration::from_secs(5))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&mut self, state: &mut S, grace: Duration) -> Result<usize, Error> {
        let deadline = shared::after(Instant::now(), grace);
        self.stop();
        let linger = self.shared.config.linger_timeout;
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            if self.conns.get_mut(key).is_some_and(|c| c.go_away(linger)) {
                self.after_send(key);
            } else {
                self.close_conn(key);
            }
        }
        loop {
            let live = self.live_connections().count();
            let now = Instant::now();
            if live == 0 || now >= deadline {
                break;
            }
            self.poll(state, (deadline - now).min(Duration::from_millis(100)))?;
        }
        let left: Vec<usize> = self.live_connections().collect();
        for &key in &left {
            self.close_conn(key);
        }
        Ok(left.len())
    }

    /// When [`poll`](Self::poll) must run again even if no network activity
    /// arrives: the earliest timeout of any connection (request heads and
    /// bodies, keep-alive, WebSocket keepalive pings and fragment timeouts,
    /// event-stream heartbeats, lingering closes), or now, when a connection
    /// has work left from the last round (it had its share of that one), a
    /// WebSocket was resumed by `receive`, the last poll read its budget
    /// and left ready connections for the next, the last poll took a full
    /// batch of events (more may be waiting), or commands of [`Sender`]s
    /// wait beyond the share the last poll ran. `None`: only network activity
    /// (or a [`Sender`]) can give `poll` work.
    ///
    /// A program with a loop of its own waits until the server's descriptor
    /// (see [`AsFd`](std::os::fd::AsFd) on `Server`) is readable or this
    /// instant has come, and then calls `poll` with `Duration::ZERO`: it
    /// never busy-waits and never runs a timeout late. (`poll` itself
    /// already waits no longer than this.)
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.has_work_now() {
            return Some(Instant::now());
        }
        self.shared.next_sweep
    }

    /// Whether the next poll has work without waiting for the network (the
    /// cases [`next_deadline`](Self::next_deadline) lists as "now").
    fn has_work_now(&self) -> bool {
        !self.resume.is_empty()
            || !self.deferred.is_empty()
            || self.events_left
            || self.accept_more
            || self.remote_more
    }

    /// Keys of connections whose socket is still open.
    fn live_connections(&self) -> impl Iterator<Item = usize> + '_ {
        self.conns
            .iter()
            .filter(|(_, c)| !c.is_dead())
            .map(|(key, _)| key)
    }

    /// The WebSockets that received a message or pong, or ended, during the
    /// last [`poll`](Self::poll), each once. A loop serving many sockets can
    /// visit just these instead of every id it keeps:
    ///
    /// ```no_run
    /// # let mut server = pollserve::Server::<()>::new();
    /// # loop {
    /// server.poll(&mut (), std::time::Duration::from_millis(100))?;
    /// for id in server.ws_ready().to_vec() {
    ///     while let Some(message) = server.ws(id).receive() {
    ///         let _ = server.ws(id).send(&message);
    ///     }
    /// }
    /// # }
    /// # Ok::<(), pollserve::Error>(())
    /// ```
    ///
    /// Messages left unreceived stay queued but the id is listed again only
    /// when more arrive, so drain each listed socket.
    ///
    /// A socket that ended between two polls, because a send or a
    /// broadcast of the program's dropped it over its send bound, is listed
    /// by the next poll (and counted in that poll's
    /// [`Activity::closed`](crate::Activity::closed)), like one that ended
    /// during a poll.
    pub fn ws_ready(&self) -> &[WsId] {
        &self.shared.ws_ready
    }

    /// The event streams whose connection ended during the last
    /// [`poll`](Self::poll), each once: the client went away, the
    /// connection failed or timed out, it was dropped over its send bound,
    /// or the stream the program ended ([`SseHandle::close`]) finished
    /// sending. A program that keeps its own list of streams can drop these
    /// instead of asking every id it keeps whether it is closed
    /// ([`group`](crate::group)s drop them on their own):
    ///
    /// ```no_run
    /// # use pollserve::sse::{SseEvent, SseId};
    /// # let mut server = pollserve::Server::<()>::new();
    /// # let mut streams: Vec<SseId> = Vec::new();
    /// # loop {
    /// server.poll(&mut (), std::time::Duration::from_millis(100))?;
    /// for ended in server.sse_ended() {
    ///     if let Some(at) = streams.iter().position(|s| s == ended) {
    ///         streams.swap_remove(at);
    ///     }
    /// }
    /// server.broadcast_event(&streams, &SseEvent::new("tick"));
    /// # }
    /// # Ok::<(), pollserve::Error>(())
    /// ```
    ///
    /// A stream is listed when its connection has closed, which can be
    /// later than [`SseHandle::is_closed`] turns true (a stream the
    /// program ended first sends what it had queued). As for
    /// [`ws_ready`](Self::ws_ready), a stream whose connection a send or
    /// broadcast dropped between two polls is listed by the next poll. A
    /// `HEAD` request's id, which never carried a stream, is not listed.
    pub fn sse_ended(&self) -> &[SseId] {
        &self.shared.sse_ended
    }

    /// The WebSocket `id`, to receive from or send to. Works for any id, even
    /// one whose connection has closed (then it reports closed).
    pub fn ws(&mut self, id: WsId) -> WsHandle<'_, S> {
        WsHandle { server: self, id }
    }

    /// The event stream `id`, to send events on. Works for any id, even one
    /// whose stream has ended (then it reports closed).
    pub fn sse(&mut self, id: SseId) -> SseHandle<'_, S> {
        SseHandle { server: self, id }
    }

    /// The kept stream `id` (from [`Request::accept_stream`]), to send
    /// chunks on or end. Works for any id, even one whose stream has ended
    /// (then it reports closed).
    pub fn stream(&mut self, id: StreamId) -> StreamHandle<'_, S> {
        StreamHandle { server: self, id }
    }

    /// Sends `data` as one chunk to every kept stream in `ids`; returns how
    /// many accepted it. The chunk is framed once (once more for HTTP/1.0
    /// streams, which get it unframed) and its bytes are shared by every
    /// stream, as for [`broadcast_text`](Self::broadcast_text). Closed
    /// streams and chunks over a stream's bound are skipped, as with
    /// [`send_quiet`](StreamHandle::send_quiet); a slow reader over its
    /// bound ([`StreamOptions::max_send_buffer`](crate::stream::StreamOptions::max_send_buffer))
    /// loses its stream, as with [`StreamHandle::send`], and is counted out
    /// of the return value.
    pub fn broadcast_chunk<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a StreamId>,
        data: &[u8],
    ) -> usize {
        let out = self.fan_out_chunk(ids.into_iter().copied(), data);
        self.finish_fan_out(out)
    }

    /// Sends `event` to every stream in `ids`; returns how many accepted it
    /// (0 for an event that cannot be encoded). The event is encoded once
    /// and its bytes are shared by every stream, as for
    /// [`broadcast_text`](Self::broadcast_text). A slow reader over its
    /// bound ([`SseOptions::max_send_buffer`](crate::sse::SseOptions::max_send_buffer))
    /// loses its stream, as with [`SseHandle::send`], and is counted out of
    /// the return value.
    pub fn broadcast_event<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a SseId>,
        event: &SseEvent<'_>,
    ) -> usize {
        self.with_encoded_event(event, |server, bytes| {
            let out = server.fan_out_event(ids.into_iter().copied(), bytes);
            server.finish_fan_out(out)
        })
    }

    /// Sends a text message to every WebSocket in `ids`; returns how many
    /// accepted it. Closed connections are skipped, as `adafruit_httpserver`'s
    /// `fail_silently`.
    ///
    /// The message is encoded once: a server frame is never masked, so every
    /// client receives the very same bytes, which are kept in one shared
    /// buffer and queued on each connection as a small reference (frames
    /// under 256 bytes are copied instead, which measured cheaper). Memory for
    /// one broadcast is one copy plus a few dozen bytes per connection.
    /// Connections that negotiated permessage-deflate without context
    /// takeover (the default [`DeflateOptions`](crate::ws::DeflateOptions))
    /// share one compressed copy per compression settings; a message longer
    /// than [`WsConfig::max_frame_size`](crate::ws::WsConfig::max_frame_size)
    /// is shared split into frames, one copy per frame size. A connection
    /// whose compressor keeps context gets its own encoding, as for a send.
    ///
    /// Backpressure stays per connection: the shared bytes count in full
    /// against each connection's
    /// [`WsOptions::max_send_buffer`](crate::ws::WsOptions::max_send_buffer).
    /// A slow reader over its bound is dropped (its connection is closed,
    /// as [`WsHandle::send_text`] does, with
    /// [`CloseStatus::Abnormal`](crate::ws::CloseStatus::Abnormal)), and
    /// counted out of the return value; the others are not held up.
    pub fn broadcast_text<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a WsId>,
        text: &str,
    ) -> usize {
        let out = self.fan_out_ws(ids.into_iter().copied(), true, text.as_bytes());
        self.finish_fan_out(out)
    }

    /// Sends a binary message to every WebSocket in `ids`; returns how many
    /// accepted it. Encoded once and shared, with the backpressure policy of
    /// [`broadcast_text`](Self::broadcast_text).
    pub fn broadcast_binary<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a WsId>,
        data: &[u8],
    ) -> usize {
        let out = self.fan_out_ws(ids.into_iter().copied(), false, data);
        self.finish_fan_out(out)
    }

    /// A handle other threads can use to send to this server's WebSockets,
    /// event streams and kept streams; each call wakes the poll loop, which performs the send.
    pub fn sender(&mut self) -> Result<Sender, Error> {
        let remote = match &self.remote {
            Some(r) => r.clone(),
            None => {
                let waker = mio::Waker::new(self.poll.registry(), WAKER)?;
                let r = Arc::new(Remote {
                    queue: Mutex::new(Default::default()),
                    waker,
                });
                self.remote = Some(r.clone());
                r
            }
        };
        Ok(Sender { remote })
    }
}

impl<S> Drop for Server<S> {
    /// Tells the [`Sender`]s that nothing will take their commands any more
    /// (their calls fail with [`Error::ServerGone`]) and frees what they queued.
    fn drop(&mut self) {
        if let Some(remote) = &self.remote {
            let mut queue = remote.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.closed = true;
            queue.bytes = 0;
            queue.commands = Default::default();
        }
    }
}

/// The poll instance's own descriptor (an epoll or kqueue descriptor), for
/// a program whose loop waits on descriptors of its own: it becomes
/// readable whenever [`Server::poll`] has network work. Wait for it *or*
/// [`Server::next_deadline`], whichever comes first, then call
/// `poll(&mut state, Duration::ZERO)`. It is the same open descriptor for
/// the server's whole life (from `Server::new` until it is dropped), as
/// registering it elsewhere (tokio's `AsyncFd`) requires.
#[cfg(unix)]
impl<S> std::os::fd::AsFd for Server<S> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.poll.registry().as_fd()
    }
}

/// See the [`AsFd`](std::os::fd::AsFd) implementation.
#[cfg(unix)]
impl<S> std::os::fd::AsRawFd for Server<S> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.poll.as_raw_fd()
    }
}

/// A listening socket and what its connections speak.
struct Listener {
    socket: TcpListener,
    addr: SocketAddr,
    kind: ListenerKind,
}

enum ListenerKind {
    Plain,
    /// HTTPS, with the configuration new connections get.
    #[cfg(feature = "tls")]
    Tls(crate::tls::TlsConfig),
    /// Plain HTTP answering every request with a redirect to HTTPS.
    HttpsRedirect {
        https_port: u16,
    },
}

impl ListenerKind {
    fn same_kind(&self, other: &ListenerKind) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    fn scheme(&self) -> &'static str {
        match self {
            #[cfg(feature = "tls")]
            ListenerKind::Tls(_) => "https",
            _ => "http",
        }
    }
}

impl<S> Default for Server<S> {
    fn default() -> Self {
        Server::new()
    }
}
