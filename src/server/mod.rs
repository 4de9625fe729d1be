//! The driver: a `mio` poll loop owning the listener and every connection.

mod buf;
mod conn;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::error::{Error, HttpError};
use crate::files::StaticRoot;
use crate::headers::Headers;
use crate::proto::http::HttpLimits;
use crate::request::Request;
use crate::response::Response;
use crate::router::{IntoMethodMask, Router};
use crate::sse::{SseEvent, SseId, SseSendError};
use crate::ws::{CloseCode, CloseStatus, Message, WsError, WsEvent, WsId};
use std::sync::{Arc, Mutex};

use conn::Conn;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// A request handler: borrows the request and the application state, returns a
/// response or an [`HttpError`]. Handlers run on the poll thread, one at a time.
pub type Handler<S> = Box<dyn FnMut(&Request, &mut S) -> Result<Response, HttpError>>;

/// Opens a [`BodySink`] for a request whose head has arrived (route params,
/// query and headers are available; the body is not).
pub type SinkOpener<S> = Box<dyn FnMut(&Request, &mut S) -> Result<Box<dyn BodySink>, HttpError>>;

/// Receives a request body piece by piece as it arrives, for uploads too large
/// to hold in memory: write them to disk, hash them, parse them with
/// [`MultipartParser`](crate::form::MultipartParser). Registered with
/// [`Route::streaming`]; the server's `max_body_size` does not apply, the
/// route's own limit does.
pub trait BodySink {
    /// The next piece of the (de-chunked) body. An error is sent as the
    /// response and the rest of the body is not read.
    fn write(&mut self, chunk: &[u8]) -> Result<(), HttpError>;
    /// The body is complete: the response to send.
    fn finish(self: Box<Self>) -> Result<Response, HttpError>;
}

/// What a route runs: a handler for a buffered request, or a body sink.
pub(crate) enum RouteHandler<S> {
    Buffered(Handler<S>),
    Streaming { open: SinkOpener<S>, max_body: u64 },
}

/// Limits and timeouts of a [`Server`]. Every value has a documented default
/// chosen for a desktop or server program; set only what you need:
///
/// ```
/// use pollserve::ServerConfig;
/// use std::time::Duration;
/// let config = ServerConfig::default()
///     .max_body_size(16 << 20)
///     .keep_alive_timeout(Duration::from_secs(5));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub(crate) limits: HttpLimits,
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) linger_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) backlog: i32,
    pub(crate) reuse_port: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: HttpLimits::default(),
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            keep_alive_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            linger_timeout: Duration::from_secs(2),
            max_connections: 16_384,
            backlog: 1024,
            reuse_port: false,
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty => $($field:ident).+) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$($field).+ = value;
            self
        }
    };
}

impl ServerConfig {
    setter!(
        /// Longest request line; `414` beyond it. Default 8 KiB.
        max_request_line: usize => limits.max_request_line);
    setter!(
        /// Largest request head; `431` beyond it. Default 32 KiB.
        max_head_size: usize => limits.max_head_size);
    setter!(
        /// Most header fields per request; `431` beyond it. Default 100.
        max_headers: usize => limits.max_headers);
    setter!(
        /// Largest request body; `413` beyond it. Default 1 MiB.
        max_body_size: u64 => limits.max_body_size);
    setter!(
        /// Time allowed for a whole request head to arrive, counted from its
        /// first byte and not extended by trickling bytes (slowloris defence);
        /// `408` and close when it passes. Default 30 s.
        header_timeout: Duration => header_timeout);
    setter!(
        /// Longest pause while reading a request body; `408` and close. Default 60 s.
        body_timeout: Duration => body_timeout);
    setter!(
        /// How long an idle keep-alive connection stays open. Default 60 s.
        keep_alive_timeout: Duration => keep_alive_timeout);
    setter!(
        /// Longest time a client may leave our response unread before the
        /// connection is dropped. Default 60 s.
        send_timeout: Duration => send_timeout);
    setter!(
        /// After a response that closes the connection, how long to keep
        /// draining the client's unread input so the response is not destroyed
        /// by a TCP reset. Default 2 s.
        linger_timeout: Duration => linger_timeout);
    setter!(
        /// Most open connections; further clients wait in the listen backlog.
        /// Default 16384.
        max_connections: usize => max_connections);
    setter!(
        /// Listen backlog passed to `listen(2)`. Default 1024.
        backlog: i32 => backlog);
    setter!(
        /// Sets `SO_REUSEPORT` (Unix) so several servers — one poll loop per
        /// core, each on its own thread — can listen on the same port; the
        /// kernel spreads new connections across them. Default off.
        reuse_port: bool => reuse_port);

    /// The HTTP size limits.
    pub fn limits(&self) -> &HttpLimits {
        &self.limits
    }
}

/// What one call of [`Server::poll`] did, so the program can react (the seed
/// library's `REQUEST_HANDLED_RESPONSE_SENT` and friends, counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// Connections accepted.
    pub accepted: usize,
    /// Requests answered (by a handler, a static file or an error response).
    pub responses: usize,
    /// Of those, requests a route handler answered.
    pub handled: usize,
    /// Connections closed for any reason.
    pub closed: usize,
    /// Of those, connections closed because a timeout passed.
    pub timed_out: usize,
}

impl Activity {
    /// Whether nothing happened.
    pub fn is_idle(&self) -> bool {
        *self == Activity::default()
    }
}

/// Cached `Date` header value, formatted once per second.
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

/// Everything a connection needs from the server while it is driven, apart
/// from the routes (borrowed separately so handlers can be `FnMut`).
pub(crate) struct Shared {
    pub config: ServerConfig,
    /// Server-wide authentication, checked before routes and static files.
    pub auth: Option<crate::auth::Authentication>,
    /// Server-wide CORS: preflights answered, headers added to responses.
    pub cors: Option<crate::cors::Cors>,
    pub static_root: Option<StaticRoot>,
    pub default_headers: Headers,
    date: DateCache,
    /// Read buffer lent to whichever connection is being driven; a connection
    /// keeps a buffer of its own only while it holds a partial request.
    pub scratch: buf::ReadBuf,
    /// Message buffers recycled through `receive_into`.
    pub ws_pool: crate::ws::BufferPool,
    pub activity: Activity,
    /// Counts polls; a connection listed in `ws_ready` this poll carries it.
    pub epoch: u64,
    /// WebSockets that received a message or pong, or ended, in this poll.
    pub ws_ready: Vec<WsId>,
    /// No sweep of connection deadlines is needed before this instant.
    pub next_sweep: Option<Instant>,
    pub stopping: bool,
}

impl Shared {
    pub fn date(&self) -> &str {
        &self.date.text
    }

    pub fn schedule(&mut self, at: Instant) {
        // Deadlines closer together than this share one sweep, so a sweep over
        // all connections happens at most every SWEEP_GRAIN however many
        // connections have deadlines.
        const SWEEP_GRAIN: Duration = Duration::from_millis(50);
        let at = at + SWEEP_GRAIN;
        if self.next_sweep.is_none_or(|n| at < n) {
            self.next_sweep = Some(at);
        }
    }
}

/// An HTTP/1.1 server driven by the program's own loop.
///
/// `S` is the application state passed to every handler by
/// [`poll`](Server::poll), so handlers can change it without locks or
/// `Rc<RefCell<…>>`. See the [crate documentation](crate) for a walk-through.
pub struct Server<S = ()> {
    routes: Router<RouteHandler<S>>,
    shared: Shared,
    poll: Poll,
    events: Events,
    listener: Option<(TcpListener, SocketAddr)>,
    conns: Slab<Conn>,
    generation: u32,
    /// Accepting paused (connection limit or out of file descriptors).
    accept_paused: bool,
    /// Readiness copied out of `events` for the current poll.
    ready: Vec<(Token, bool, bool, bool)>,
    /// Connections to drive at the next poll without waiting for an event
    /// (a WebSocket whose program made room by receiving).
    resume: Vec<usize>,
    /// Commands from other threads, created with the first `sender()`.
    remote: Option<Arc<Remote>>,
}

/// The cross-thread mailbox: commands plus the waker that interrupts `poll`.
struct Remote {
    queue: Mutex<Vec<RemoteCommand>>,
    waker: mio::Waker,
}

enum RemoteCommand {
    Send(Vec<WsId>, Message),
    Close(WsId, CloseCode, String),
    Event(Vec<SseId>, OwnedEvent),
    EndStream(SseId),
}

/// An SSE event owned for crossing threads.
struct OwnedEvent {
    data: String,
    event: Option<String>,
    id: Option<String>,
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
            shared: Shared {
                config,
                auth: None,
                cors: None,
                static_root: None,
                default_headers: Headers::new(),
                date: DateCache {
                    secs: 0,
                    text: String::new(),
                },
                scratch: buf::ReadBuf::default(),
                ws_pool: Default::default(),
                activity: Activity::default(),
                epoch: 0,
                ws_ready: Vec::new(),
                next_sweep: None,
                stopping: false,
            },
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            listener: None,
            conns: Slab::new(),
            generation: 0,
            accept_paused: false,
            resume: Vec::new(),
            ready: Vec::new(),
            remote: None,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Registers `handler` for `pattern` and the given method(s).
    ///
    /// Patterns use the seed library's syntax: `/item/<id>` captures a segment,
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

    /// Registers a [`Route`] built beforehand (the seed's `as_route`).
    pub fn add_route(&mut self, route: Route<S>) -> Result<&mut Self, Error> {
        self.routes.add(
            &route.pattern,
            route.methods,
            route.append_slash,
            route.handler,
        )?;
        Ok(self)
    }

    /// Registers several routes at once (the seed's `add_routes`); stops at the
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
        self.shared.static_root = Some(static_root);
        Ok(self)
    }

    /// Serves files from a [`StaticRoot`] configured beforehand (listing,
    /// dotfile policy, index file, MIME table).
    pub fn set_static_root(&mut self, root: StaticRoot) -> &mut Self {
        self.shared.static_root = Some(root);
        self
    }

    /// The static-file root, to change its MIME table or dotfile policy.
    pub fn static_root_mut(&mut self) -> Option<&mut StaticRoot> {
        self.shared.static_root.as_mut()
    }

    /// Requires these credentials for every request — routes, streaming
    /// routes and static files alike (the seed's server-wide
    /// `require_authentication`). Others get `401` with a `WWW-Authenticate`
    /// challenge; a streaming route's opener never runs for them, and a
    /// client waiting on `Expect: 100-continue` gets the `401` before it sends
    /// the body. For one route only, call
    /// [`Authentication::require`](crate::auth::Authentication::require) in
    /// its handler instead.
    pub fn require_authentication(&mut self, auth: crate::auth::Authentication) -> &mut Self {
        self.shared.auth = Some(auth);
        self
    }

    /// Answers CORS preflight (`OPTIONS`) requests for the configured origins
    /// and adds CORS headers to every response; see [`Cors`](crate::cors::Cors).
    /// Preflights are answered before authentication, as browsers send them
    /// without credentials.
    pub fn cors(&mut self, cors: crate::cors::Cors) -> &mut Self {
        self.shared.cors = Some(cors);
        self
    }

    /// Adds a header sent with every response unless the handler sets the same
    /// field itself (the handler's value wins).
    pub fn default_header(&mut self, name: &str, value: &str) -> &mut Self {
        if crate::headers::is_valid_name(name) && crate::headers::is_valid_value(value) {
            self.shared.default_headers.set(name, value);
        } else {
            log::error!("refusing invalid default header {name:?}: {value:?}");
        }
        self
    }

    /// Starts listening on `host:port` (port 0 picks a free port; see
    /// [`local_addr`](Self::local_addr)). The socket gets `SO_REUSEADDR`, so a
    /// restart does not wait for old connections in `TIME_WAIT`.
    pub fn start(&mut self, host: &str, port: u16) -> Result<SocketAddr, Error> {
        if let Some((_, addr)) = &self.listener {
            return Err(Error::AlreadyStarted(*addr));
        }
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
        let mut listener = TcpListener::from_std(std_listener);
        self.poll
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        self.listener = Some((listener, local));
        self.shared.stopping = false;
        self.accept_paused = false;
        log::info!("pollserve listening on http://{}", display_addr(local));
        Ok(local)
    }

    /// The address the server listens on, once started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().map(|(_, a)| *a)
    }

    /// Whether the server is listening.
    pub fn is_listening(&self) -> bool {
        self.listener.is_some()
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Stops listening. Idle connections are closed now; requests in flight are
    /// answered (with `Connection: close`) by later calls of [`poll`](Self::poll).
    /// [`start`](Self::start) may be called again afterwards.
    pub fn stop(&mut self) {
        if let Some((mut l, addr)) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
            log::info!(
                "pollserve stopped listening on http://{}",
                display_addr(addr)
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
        self.shared.date.update(SystemTime::now());
        self.shared.activity = Activity::default();
        self.shared.epoch += 1;
        self.shared.ws_ready.clear();

        let mut accept = false;
        // Copy the readiness out first so each connection can be driven with
        // `self` borrowed mutably (the buffer is reused across polls).
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|ev| {
            (
                ev.token(),
                ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                ev.is_writable() || ev.is_write_closed() || ev.is_error(),
                ev.is_read_closed() || ev.is_error(),
            )
        }));
        for &(token, readable, writable, hangup) in &ready {
            match token {
                LISTENER => accept = true,
                WAKER => self.run_remote_commands(),
                Token(key) => {
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.hangup |= hangup;
                    }
                    self.drive(key, readable, writable, state, now)
                }
            }
        }
        self.ready = ready;
        for key in std::mem::take(&mut self.resume) {
            self.drive(key, false, false, state, now);
        }
        if accept || (self.accept_paused && self.conns.len() < self.shared.config.max_connections) {
            self.accept_all(now);
        }
        if self.shared.next_sweep.is_some_and(|at| now >= at) {
            self.sweep(now);
        }
        Ok(self.shared.activity)
    }

    /// Polls forever (the seed's `serve_forever`), returning only on a poll-loop
    /// error.
    pub fn serve_forever(&mut self, state: &mut S) -> Result<(), Error> {
        loop {
            self.poll(state, Duration::from_secs(3600))?;
        }
    }

    fn drive(&mut self, key: usize, readable: bool, writable: bool, state: &mut S, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.readable |= readable;
        conn.writable |= writable;
        let keep = conn.drive(&mut self.routes, &mut self.shared, state, now);
        if !keep {
            self.close_conn(key);
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
                    entry.insert(Conn::new(stream, peer, key as u32, self.generation, now));
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
        for (key, conn) in self.conns.iter_mut() {
            match conn.deadline {
                Some(d) if d <= now => expired.push(key),
                Some(d) if self.shared.next_sweep.is_none_or(|n| d < n) => {
                    self.shared.next_sweep = Some(d);
                }
                _ => {}
            }
        }
        for key in expired {
            let keep = match self.conns.get_mut(key) {
                Some(conn) if conn.dead => {
                    self.conns.remove(key);
                    continue;
                }
                Some(conn) => conn.on_timeout(&mut self.shared, now),
                None => continue,
            };
            if keep {
                self.conns[key].update_deadline(&mut self.shared);
            } else {
                self.shared.activity.timed_out += 1;
                self.close_conn(key);
            }
        }
        if self.accept_paused {
            self.shared.schedule(now + Duration::from_millis(100));
        }
    }

    fn close_conn(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.dead {
            conn.mark_ws_ready(&mut self.shared);
            self.shared.activity.closed += 1;
            if let Some(ws) = conn.ws.as_mut() {
                ws.set_status(CloseStatus::Abnormal);
                if !ws.inbox.is_empty() {
                    // Keep the slot (and its messages) until the program has
                    // received them, or for a keep-alive timeout at most; the
                    // socket itself is done with now.
                    let _ = self.poll.registry().deregister(&mut conn.stream);
                    let _ = conn.stream.shutdown(std::net::Shutdown::Both);
                    conn.dead = true;
                    conn.deadline = Some(Instant::now() + self.shared.config.keep_alive_timeout);
                    self.shared
                        .schedule(conn.deadline.unwrap_or_else(Instant::now));
                    return;
                }
            }
        }
        // Dropping the stream closes its descriptor, which also takes it
        // out of the epoll set: no deregister or shutdown call is needed.
        self.conns.remove(key);
    }

    fn conn_for(&mut self, id: crate::request::ConnId) -> Option<&mut Conn> {
        let conn = self.conns.get_mut(id.slot as usize)?;
        (conn.id() == id).then_some(conn)
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
    pub fn ws_ready(&self) -> &[WsId] {
        &self.shared.ws_ready
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

    /// Sends `event` to every stream in `ids`; returns how many accepted it.
    pub fn broadcast_event<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a SseId>,
        event: &SseEvent<'_>,
    ) -> usize {
        ids.into_iter()
            .filter(|&&id| self.sse(id).send(event).is_ok())
            .count()
    }

    /// Sends a text message to every WebSocket in `ids`; returns how many
    /// accepted it. Failures (closed connections) are skipped, as the seed's
    /// `fail_silently`.
    pub fn broadcast_text<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a WsId>,
        text: &str,
    ) -> usize {
        ids.into_iter()
            .filter(|&&id| self.ws(id).send_text(text).is_ok())
            .count()
    }

    /// Sends a binary message to every WebSocket in `ids`; returns how many
    /// accepted it.
    pub fn broadcast_binary<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a WsId>,
        data: &[u8],
    ) -> usize {
        ids.into_iter()
            .filter(|&&id| self.ws(id).send_binary(data).is_ok())
            .count()
    }

    /// A handle other threads can use to send to this server's WebSockets and
    /// event streams; each call wakes the poll loop, which performs the send.
    pub fn sender(&mut self) -> Result<Sender, Error> {
        let remote = match &self.remote {
            Some(r) => r.clone(),
            None => {
                let waker = mio::Waker::new(self.poll.registry(), WAKER)?;
                let r = Arc::new(Remote {
                    queue: Mutex::new(Vec::new()),
                    waker,
                });
                self.remote = Some(r.clone());
                r
            }
        };
        Ok(Sender { remote })
    }

    fn run_remote_commands(&mut self) {
        let Some(remote) = self.remote.clone() else {
            return;
        };
        let commands = std::mem::take(&mut *remote.queue.lock().unwrap_or_else(|p| p.into_inner()));
        for command in commands {
            match command {
                RemoteCommand::Send(ids, message) => {
                    for id in ids {
                        let _ = self.ws(id).send(&message);
                    }
                }
                RemoteCommand::Close(id, code, reason) => {
                    let _ = self.ws(id).close(code, &reason);
                }
                RemoteCommand::Event(ids, e) => {
                    let mut event = SseEvent::new(&e.data);
                    if let Some(t) = &e.event {
                        event = event.event(t);
                    }
                    if let Some(i) = &e.id {
                        event = event.id(i);
                    }
                    self.broadcast_event(&ids, &event);
                }
                RemoteCommand::EndStream(id) => self.sse(id).close(),
            }
        }
    }
}

impl<S> Default for Server<S> {
    fn default() -> Self {
        Server::new()
    }
}

fn bind(addr: SocketAddr, config: &ServerConfig) -> io::Result<std::net::TcpListener> {
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

fn display_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => a.to_string(),
    }
}

/// A route built before registration (the seed's `Route` / `as_route`), for
/// [`Server::add_routes`].
pub struct Route<S> {
    pattern: String,
    methods: u16,
    append_slash: bool,
    handler: RouteHandler<S>,
}

impl<S> Route<S> {
    /// A route for `pattern` and `methods` served by `handler`.
    pub fn new<F>(pattern: &str, methods: impl IntoMethodMask, handler: F) -> Route<S>
    where
        F: FnMut(&Request, &mut S) -> Result<Response, HttpError> + 'static,
    {
        Route {
            pattern: pattern.to_owned(),
            methods: methods.into_method_mask(),
            append_slash: false,
            handler: RouteHandler::Buffered(Box::new(handler)),
        }
    }

    /// A route whose request body is not buffered but handed, as it arrives,
    /// to the [`BodySink`] that `open` returns once the head is in (return an
    /// `Err` to refuse the request before its body is read). Bodies up to
    /// `max_body` bytes are accepted (`413` beyond).
    ///
    /// ```
    /// use pollserve::{HttpError, Method, Response, Route, Server, server::BodySink};
    /// struct Count(u64);
    /// impl BodySink for Count {
    ///     fn write(&mut self, chunk: &[u8]) -> Result<(), HttpError> {
    ///         self.0 += chunk.len() as u64;
    ///         Ok(())
    ///     }
    ///     fn finish(self: Box<Self>) -> Result<Response, HttpError> {
    ///         Ok(Response::text(format!("{} bytes", self.0)))
    ///     }
    /// }
    /// let mut server = Server::<()>::new();
    /// server.add_route(Route::streaming("/upload", Method::PUT, 1 << 30, |_req, _| {
    ///     Ok(Box::new(Count(0)))
    /// }))?;
    /// # Ok::<(), pollserve::Error>(())
    /// ```
    pub fn streaming<F>(
        pattern: &str,
        methods: impl IntoMethodMask,
        max_body: u64,
        open: F,
    ) -> Route<S>
    where
        F: FnMut(&Request, &mut S) -> Result<Box<dyn BodySink>, HttpError> + 'static,
    {
        Route {
            pattern: pattern.to_owned(),
            methods: methods.into_method_mask(),
            append_slash: false,
            handler: RouteHandler::Streaming {
                open: Box::new(open),
                max_body,
            },
        }
    }

    /// Also match the path with a trailing slash (`/about` and `/about/`).
    pub fn append_slash(mut self, yes: bool) -> Route<S> {
        self.append_slash = yes;
        self
    }
}

/// Access to one WebSocket, from [`Server::ws`]. Cheap to create: make one per
/// operation (`server.ws(id).send_text("hi")`).
pub struct WsHandle<'a, S> {
    server: &'a mut Server<S>,
    id: WsId,
}

impl<S> WsHandle<'_, S> {
    fn conn(&mut self) -> Option<&mut Conn> {
        self.server.conn_for(self.id.0)
    }

    /// The next complete message, if one has arrived; never blocks and never
    /// returns part of a fragmented message. Pongs are skipped (see
    /// [`receive_event`](Self::receive_event)).
    pub fn receive(&mut self) -> Option<Message> {
        loop {
            match self.receive_event()? {
                WsEvent::Message(m) => return Some(m),
                WsEvent::Pong(_) => continue,
            }
        }
    }

    /// Like [`receive`](Self::receive), but puts the message into `slot` and
    /// recycles the allocation `slot` held for a later message, on any
    /// WebSocket of this server. Returns false (leaving `slot` as it was)
    /// when no message is waiting. The server keeps recycled buffers of up to
    /// 256 KiB each, 8 MiB in all; larger ones are freed. A loop that
    /// receives into the same slot allocates nothing per message once warm:
    ///
    /// ```no_run
    /// # use pollserve::{Server, ws::Message};
    /// # use std::time::Duration;
    /// # fn main() -> Result<(), pollserve::Error> {
    /// # let mut server = Server::<()>::new();
    /// let mut slot = Message::Binary(Vec::new());
    /// loop {
    ///     server.poll(&mut (), Duration::from_millis(100))?;
    ///     for id in server.ws_ready().to_vec() {
    ///         while server.ws(id).receive_into(&mut slot) {
    ///             let _ = server.ws(id).send(&slot); // echo
    ///         }
    ///     }
    /// }
    /// # }
    /// ```
    pub fn receive_into(&mut self, slot: &mut Message) -> bool {
        let Some(message) = self.receive() else {
            return false;
        };
        let old = std::mem::replace(slot, message);
        self.server.shared.ws_pool.put(match old {
            Message::Text(text) => text.into_bytes(),
            Message::Binary(data) => data,
        });
        true
    }

    /// The next message or pong, if any.
    pub fn receive_event(&mut self) -> Option<WsEvent> {
        let key = self.id.0.slot as usize;
        let conn = self.conn()?;
        let was_paused = conn.ws_paused();
        let event = conn.ws.as_mut()?.pop();
        let (dead, drained) = (
            conn.dead,
            conn.ws.as_ref().is_none_or(|ws| ws.inbox.is_empty()),
        );
        if dead && drained {
            self.server.conns.remove(key);
        } else if was_paused && !self.conn().is_some_and(|c| c.ws_paused()) {
            self.server.resume.push(key);
        }
        event
    }

    fn send_with(
        &mut self,
        send: impl FnOnce(
            &mut crate::proto::ws::WsSession,
            &mut Vec<u8>,
        ) -> Result<(), crate::proto::ws::SendError>,
    ) -> Result<(), WsError> {
        let key = self.id.0.slot as usize;
        let conn = self.conn().ok_or(WsError::Closed)?;
        let result = conn.ws_send(send);
        self.after_send(key, result)
    }

    fn send_data(&mut self, text: bool, payload: &[u8]) -> Result<(), WsError> {
        let key = self.id.0.slot as usize;
        let conn = self.conn().ok_or(WsError::Closed)?;
        let result = conn.ws_send_data(text, payload);
        self.after_send(key, result)
    }

    fn after_send(&mut self, key: usize, result: Result<(), WsError>) -> Result<(), WsError> {
        if matches!(result, Err(WsError::Backpressure | WsError::Io)) {
            self.server.close_conn(key);
        } else if let Some(conn) = self.server.conns.get_mut(key) {
            conn.update_deadline(&mut self.server.shared);
        }
        result
    }

    /// Sends a text message (split into frames of
    /// [`WsConfig::max_frame_size`](crate::ws::WsConfig::max_frame_size)).
    pub fn send_text(&mut self, text: &str) -> Result<(), WsError> {
        self.send_data(true, text.as_bytes())
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), WsError> {
        self.send_data(false, data)
    }

    /// Sends a message of either kind.
    pub fn send(&mut self, message: &Message) -> Result<(), WsError> {
        match message {
            Message::Text(t) => self.send_text(t),
            Message::Binary(b) => self.send_binary(b),
        }
    }

    /// Sends a text message, ignoring failure (the seed's `fail_silently=True`):
    /// returns whether it was sent.
    pub fn send_text_quiet(&mut self, text: &str) -> bool {
        self.send_text(text).is_ok()
    }

    /// Sends a binary message, ignoring failure; returns whether it was sent.
    pub fn send_binary_quiet(&mut self, data: &[u8]) -> bool {
        self.send_binary(data).is_ok()
    }

    /// Sends a ping (payload at most 125 bytes); the pong arrives as
    /// [`WsEvent::Pong`].
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), WsError> {
        self.send_with(|s, out| s.send_ping(payload, out))
    }

    /// Starts the closing handshake with `code` and `reason` (truncated to 123
    /// bytes on a character boundary). Nothing more can be sent; messages that
    /// arrived before the peer's close can still be received.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), WsError> {
        let now = Instant::now();
        let result = self.send_with(|s, out| s.close(code, reason, now, out));
        if result.is_ok() {
            if let Some(ws) = self.conn().and_then(|c| c.ws.as_mut()) {
                ws.set_status(CloseStatus::Local);
            }
        }
        result
    }

    /// Whether the WebSocket is closing or closed (or the id is stale): no
    /// more messages can be sent. Messages already received may still be
    /// waiting for [`receive`](Self::receive).
    pub fn is_closed(&mut self) -> bool {
        match self.conn() {
            None => true,
            Some(c) => c.dead || c.ws.as_ref().is_none_or(|ws| !ws.session.is_open()),
        }
    }

    /// How the WebSocket ended, once it has; `None` while open (or once the
    /// connection slot has been reused).
    pub fn close_status(&mut self) -> Option<CloseStatus> {
        self.conn()?.ws.as_ref()?.status.clone()
    }

    /// The peer's address, while the connection exists.
    pub fn peer_addr(&mut self) -> Option<SocketAddr> {
        self.conn().map(|c| c.peer())
    }
}

/// A `Send + Clone` handle for sending to WebSockets and event streams from
/// other threads, from [`Server::sender`]. Each call queues the message and
/// wakes the poll loop, which sends it; errors (closed sockets) are dropped as
/// with the `*_quiet` sends.
#[derive(Clone)]
pub struct Sender {
    remote: Arc<Remote>,
}

impl Sender {
    fn push(&self, command: RemoteCommand) -> Result<(), Error> {
        self.remote
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(command);
        self.remote.waker.wake()?;
        Ok(())
    }

    /// Queues a text message for `id`.
    pub fn send_text(&self, id: WsId, text: &str) -> Result<(), Error> {
        self.push(RemoteCommand::Send(
            vec![id],
            Message::Text(text.to_owned()),
        ))
    }

    /// Queues a binary message for `id`.
    pub fn send_binary(&self, id: WsId, data: &[u8]) -> Result<(), Error> {
        self.push(RemoteCommand::Send(
            vec![id],
            Message::Binary(data.to_vec()),
        ))
    }

    /// Queues one message for every id in `ids`.
    pub fn broadcast(&self, ids: &[WsId], message: Message) -> Result<(), Error> {
        self.push(RemoteCommand::Send(ids.to_vec(), message))
    }

    /// Queues a close of `id`.
    pub fn close(&self, id: WsId, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.push(RemoteCommand::Close(id, code, reason.to_owned()))
    }

    /// Queues an event (data, optional type and id) for every stream in `ids`.
    /// An event that cannot be encoded (line break in the type or id) is dropped.
    pub fn send_event(
        &self,
        ids: &[SseId],
        data: &str,
        event: Option<&str>,
        id: Option<&str>,
    ) -> Result<(), Error> {
        self.push(RemoteCommand::Event(
            ids.to_vec(),
            OwnedEvent {
                data: data.to_owned(),
                event: event.map(str::to_owned),
                id: id.map(str::to_owned),
            },
        ))
    }

    /// Queues the end of the event stream `id`.
    pub fn end_stream(&self, id: SseId) -> Result<(), Error> {
        self.push(RemoteCommand::EndStream(id))
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sender")
    }
}

/// Access to one event stream, from [`Server::sse`].
pub struct SseHandle<'a, S> {
    server: &'a mut Server<S>,
    id: SseId,
}

impl<S> SseHandle<'_, S> {
    fn send_with(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), crate::sse::SseError>,
    ) -> Result<(), SseSendError> {
        let key = self.id.0.slot as usize;
        let conn = self
            .server
            .conn_for(self.id.0)
            .ok_or(SseSendError::Closed)?;
        let result = conn.sse_send(write);
        if matches!(result, Err(SseSendError::Backpressure | SseSendError::Io)) {
            self.server.close_conn(key);
        } else if let Some(conn) = self.server.conns.get_mut(key) {
            conn.update_deadline(&mut self.server.shared);
        }
        result
    }

    /// Sends one event.
    pub fn send(&mut self, event: &SseEvent<'_>) -> Result<(), SseSendError> {
        self.send_with(|out| event.encode(out))
    }

    /// Sends an event with only data (the seed's `send_event(data)`).
    pub fn send_data(&mut self, data: &str) -> Result<(), SseSendError> {
        self.send(&SseEvent::new(data))
    }

    /// Sends an event, ignoring failure; returns whether it was sent.
    pub fn send_quiet(&mut self, event: &SseEvent<'_>) -> bool {
        self.send(event).is_ok()
    }

    /// Sends a comment line (ignored by clients; keeps proxies awake).
    pub fn comment(&mut self, text: &str) -> Result<(), SseSendError> {
        self.send_with(|out| {
            crate::proto::sse::encode_comment(text, out);
            Ok(())
        })
    }

    /// Ends the stream: what was sent is flushed, then the connection closes.
    /// A browser's `EventSource` reconnects unless told otherwise by the page.
    pub fn close(&mut self) {
        if self.server.conn_for(self.id.0).is_none() {
            return;
        }
        let Server { conns, shared, .. } = &mut *self.server;
        let conn = &mut conns[self.id.0.slot as usize];
        conn.sse_close(shared.config.linger_timeout);
        conn.update_deadline(shared);
    }

    /// Whether the stream has ended (closed by either side) or the id is stale.
    pub fn is_closed(&mut self) -> bool {
        !self
            .server
            .conn_for(self.id.0)
            .is_some_and(|c| c.sse_open())
    }
}
