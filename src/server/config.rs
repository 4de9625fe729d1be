//! The server's limits and timeouts, and what one poll did.

use std::time::Duration;

use crate::proto::http::HttpLimits;

/// Limits and timeouts of a [`Server`](crate::Server). Every value has a
/// documented default chosen for a desktop or server program; set only what
/// you need:
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
    pub(crate) closed_message_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_ip: Option<usize>,
    pub(crate) min_body_rate: u64,
    pub(crate) tcp_keepalive: Option<Duration>,
    pub(crate) send_buffer_size: Option<usize>,
    pub(crate) backlog: i32,
    pub(crate) reuse_port: bool,
    pub(crate) log_to_stderr: bool,
    pub(crate) max_inflated_bytes: usize,
    pub(crate) inflate_pause_timeout: Duration,
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
            closed_message_timeout: Duration::from_secs(10),
            max_connections: 16_384,
            max_connections_per_ip: None,
            min_body_rate: 1024,
            tcp_keepalive: Some(Duration::from_secs(60)),
            send_buffer_size: None,
            backlog: 1024,
            reuse_port: false,
            log_to_stderr: false,
            max_inflated_bytes: 64 << 20,
            inflate_pause_timeout: Duration::from_secs(2),
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
        /// Largest request body; `413` beyond it, before the body is read
        /// when its length is announced. Default 1 MiB. A route can set its
        /// own, larger or smaller, with
        /// [`Route::max_body_size`](crate::Route::max_body_size);
        /// [`Request::form`](crate::Request::form) follows whichever applies.
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
        /// Slowest average rate, in bytes per second, at which a request body
        /// may arrive: the whole body must be in by `body_timeout` plus one
        /// second per this many bytes received, so a client trickling a byte
        /// now and then (each pause shorter than `body_timeout`) cannot hold
        /// a connection for ever. `408` and close. 0 disables. Default 1024.
        min_body_rate: u64 => min_body_rate);
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
        /// How long the messages a WebSocket received before it closed wait
        /// for the program to [`receive`](crate::WsHandle::receive) them.
        /// Such a closed WebSocket holds no descriptor, has left its groups
        /// and does not count toward [`max_connections`](Self::max_connections);
        /// it keeps only its slot with the messages and how it ended. At most
        /// `max_connections` closed WebSockets are kept so (each held for
        /// this long, or for [`linger_timeout`](Self::linger_timeout) once
        /// it holds no message): past that the oldest is dropped, messages
        /// and all, and counted in
        /// [`ServerStats::closed_websockets_dropped`]. A program that
        /// drains [`Server::ws_ready`](crate::Server::ws_ready) after each
        /// poll takes them in the poll that saw the close. Default 10 s.
        closed_message_timeout: Duration => closed_message_timeout);
    setter!(
        /// Most open connections; further clients wait in the listen backlog.
        /// Closed WebSockets whose slots stay for the program (see
        /// [`closed_message_timeout`](Self::closed_message_timeout)) do not
        /// count. Default 16384.
        max_connections: usize => max_connections);
    setter!(
        /// Most connections open at once from one IP address; a client over
        /// it gets `503` and is closed (counted in [`Activity::refused`], and
        /// a warning, at most one per 10 s, goes to the log). Off (`None`)
        /// by default, since many clients can share one address behind NAT.
        /// Proxies named in [`Server::trust_proxies`](crate::Server::trust_proxies)
        /// are not capped: every client behind one arrives from its address,
        /// so cap clients in the proxy instead (nginx: `limit_conn`).
        max_connections_per_ip: Option<usize> => max_connections_per_ip);
    setter!(
        /// TCP keepalive on accepted sockets: probes after this long without
        /// traffic, so a peer that vanished without a FIN (power loss, a
        /// phone leaving the network) is found even on a connection that
        /// waits for nothing. On Linux, data left unacknowledged for
        /// `send_timeout` also ends the connection (`TCP_USER_TIMEOUT`).
        /// `None` disables both. Default 60 s.
        tcp_keepalive: Option<Duration> => tcp_keepalive);
    setter!(
        /// The kernel's send buffer of accepted sockets (`SO_SNDBUF`): how
        /// much of what a client has not read yet the kernel holds, beyond
        /// the server's own queue and its bounds. `None` (the default)
        /// leaves it to the kernel, which grows it as it sees fit: Linux
        /// up to the last value of `net.ipv4.tcp_wmem` (4 MiB by
        /// default), and on loopback at once. A server with thousands of
        /// clients that may stall (a dashboard broadcasting to every open
        /// page) bounds its kernel memory with a fixed size; a fast client
        /// far away needs about its bandwidth-delay product. Linux doubles
        /// the value for its bookkeeping.
        send_buffer_size: Option<usize> => send_buffer_size);
    setter!(
        /// Listen backlog passed to `listen(2)`. Default 1024.
        backlog: i32 => backlog);
    setter!(
        /// Sets `SO_REUSEPORT` (Unix) so several servers — one poll loop per
        /// core, each on its own thread — can listen on the same port; the
        /// kernel spreads new connections across them. Default off.
        reuse_port: bool => reuse_port);
    setter!(
        /// Writes the server's access log (one line per response, in
        /// `adafruit_httpserver`'s format), its start and stop lines, and
        /// its warnings and errors straight to stderr, with no logger
        /// installed: `adafruit_httpserver`'s `debug=True`. Off by default:
        /// the server then logs through the [`log`](https://docs.rs/log)
        /// facade, and shows nothing until the program installs a logger
        /// (such as `env_logger`).
        ///
        /// These lines go to stderr *instead of* through `log` (so a logger
        /// writing to stderr does not print them twice). Still through `log`
        /// only: `debug` lines, and what is logged outside the driver's
        /// bookkeeping — a handler's I/O error turned into a `500`, a
        /// refused response header, a static file that cannot be read, a
        /// handler that panicked (its `500` is in the access log, and Rust's
        /// panic hook prints the panic). A failed write (stderr closed, a
        /// full disk) is ignored: logging never stops the server.
        ///
        /// ```
        /// use pollserve::{Server, ServerConfig};
        /// let mut server = Server::<()>::with_config(ServerConfig::default().log_to_stderr(true));
        /// // stderr: pollserve listening on http://127.0.0.1:…
        /// server.start("127.0.0.1", 0)?;
        /// // Then, for each response: 127.0.0.1 -- "GET /" 78 -- "404 Not Found" 128 -- 0ms
        /// # Ok::<(), pollserve::Error>(())
        /// ```
        log_to_stderr: bool => log_to_stderr);

    setter!(
        /// Most bytes that inflating received permessage-deflate messages
        /// may make the server hold at once, over all connections: the
        /// compressed messages being inflated plus the inflated messages
        /// waiting for the program to [`receive`](crate::WsHandle::receive)
        /// them (shown as [`ServerStats::inflated_held`]). Compression lets
        /// a client make the server hold ~1,000 times what it sent; this
        /// bounds that across clients, where
        /// [`WsConfig::max_message_size`](crate::ws::WsConfig::max_message_size)
        /// bounds one message. Default 64 MiB.
        ///
        /// A connection that would inflate past it pauses (its socket is
        /// not read, its buffered input not inflated) until the program
        /// takes messages or connections close; one paused longer than
        /// [`inflate_pause_timeout`](Self::inflate_pause_timeout) is closed
        /// with 1013 (try again later). A compressed message larger than
        /// this budget is refused with 1009, as one over `max_message_size`
        /// is. Each connection also inflates at most 1 MiB per poll round, so
        /// a message that inflates to megabytes cannot take a whole round.
        ///
        /// Uncompressed messages are not counted: their bytes are the bytes
        /// the client sent, bounded by `max_message_size` and
        /// [`WsOptions::max_receive_buffer`](crate::ws::WsOptions::max_receive_buffer)
        /// per connection. What is counted is each message's length; the
        /// buffer holding it may be up to twice that (it grows by doubling)
        /// or a pooled buffer (up to 256 KiB) lent to it.
        max_inflated_bytes: usize => max_inflated_bytes);
    setter!(
        /// Longest time a connection may stay paused for want of room in
        /// [`max_inflated_bytes`](Self::max_inflated_bytes) (counted from its
        /// last progress) before it is closed with 1013 (try again later)
        /// and its partial message freed, so connections all paused in the
        /// middle of messages cannot wait on each other for ever. Default 2 s.
        inflate_pause_timeout: Duration => inflate_pause_timeout);

    /// The HTTP size limits.
    pub fn limits(&self) -> &HttpLimits {
        &self.limits
    }
}

/// What one call of [`Server::poll`](crate::Server::poll) did, so the program
/// can react (`adafruit_httpserver`'s `REQUEST_HANDLED_RESPONSE_SENT` and
/// friends, counted). Activities add up (`total += activity`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Connections turned away at accept, over
    /// [`ServerConfig::max_connections_per_ip`].
    pub refused: usize,
}

impl std::ops::AddAssign for Activity {
    fn add_assign(&mut self, other: Activity) {
        self.accepted += other.accepted;
        self.responses += other.responses;
        self.handled += other.handled;
        self.closed += other.closed;
        self.timed_out += other.timed_out;
        self.refused += other.refused;
    }
}

impl std::ops::Add for Activity {
    type Output = Activity;
    fn add(mut self, other: Activity) -> Activity {
        self += other;
        self
    }
}

impl Activity {
    /// Whether nothing happened.
    pub fn is_idle(&self) -> bool {
        *self == Activity::default()
    }
}

/// What the server holds right now, from [`Server::stats`](crate::Server::stats):
/// for monitoring, and to check that memory follows what clients sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connection slots in use: open connections, plus closed WebSockets
    /// whose slot stays for the program (counted again below).
    pub connections: usize,
    /// Of those, closed WebSockets whose slot stays so the program can take
    /// their messages and read how they ended: no descriptor, no group, not
    /// counted toward [`ServerConfig::max_connections`], at most
    /// `max_connections` of them (see
    /// [`ServerConfig::closed_message_timeout`]).
    pub closed_websockets: usize,
    /// Closed WebSockets dropped with messages the program had not taken
    /// (lost) to keep `closed_websockets` within its bound, since the
    /// server was made. (Dropping ones that held no message loses nothing
    /// and is not counted.)
    pub closed_websockets_dropped: usize,
    /// Commands queued by [`Sender`](crate::Sender)s that the poll loop has
    /// not carried out yet (it runs a share of them per poll).
    pub sender_queued: usize,
    /// Bytes allocated for received input that connections hold between
    /// polls: partial requests and frames, request bodies, WebSocket
    /// messages the program has not received, partial TLS records. The read
    /// buffer the server shares between connections while it drives them is
    /// not counted. This is allocation, not content: a connection keeps a
    /// small buffer for reuse once drained (about 160 bytes for an idle
    /// WebSocket), so an idle server with open connections does not read 0.
    pub input_buffered: usize,
    /// Bytes queued for clients that have not taken them yet (response
    /// heads and bodies held in memory, WebSocket frames, events, encrypted
    /// TLS records), summed over the connections.
    pub output_queued: usize,
    /// Bytes allocated for that output. A broadcast's shared buffer counts
    /// once, however many connections it waits on (each of them counts it
    /// in full in `output_queued`), so this can be far less than
    /// `output_queued`. As for `input_buffered`, a connection keeps its
    /// write buffer for reuse once everything is sent (a keep-alive
    /// connection holds about its last small response's size, an idle
    /// WebSocket a few hundred bytes): `output_queued` is the one that
    /// returns to 0 when every client has taken its output.
    pub output_buffered: usize,
    /// Bytes inflated from received permessage-deflate messages that the
    /// server holds now (partial messages and messages waiting for the
    /// program; also counted in `input_buffered` once complete), bounded by
    /// [`ServerConfig::max_inflated_bytes`].
    pub inflated_held: usize,
}
