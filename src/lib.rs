//! pollserve: an HTTP/1.1 + WebSocket server that runs inside your program's
//! own main loop.
//!
//! Adafruit's CircuitPython `adafruit_httpserver` lets a program on a small board
//! call `server.poll()` between reading sensors. pollserve keeps that model —
//! your loop, your timing, objects you keep — and serves any number of
//! connections at once on one thread, with keep-alive, strict RFC 9112 and
//! RFC 6455 behaviour and no async runtime.
//!
//! # The server and the poll loop
//!
//! A [`Server<S>`](Server) owns the listening socket and every connection. `S`
//! is your application state: [`Server::poll`] takes `&mut S` and lends it to
//! each handler, so handlers change it without locks or `Rc<RefCell<…>>`.
//! `poll` waits at most `timeout` for network activity, then accepts, reads,
//! parses, routes, runs handlers and writes for **every** ready connection, and
//! returns an [`Activity`] count of what happened. A connection that sends
//! nothing never holds anybody else up.
//!
//! ```no_run
//! use pollserve::{Method, Response, Server};
//! use std::time::Duration;
//!
//! struct Sensors { temperature: f32 }
//!
//! let mut server = Server::<Sensors>::new();
//! server.route("/temperature", Method::GET, |_req, s: &mut Sensors| {
//!     Ok(Response::text(format!("{:.1} °C", s.temperature)))
//! })?;
//! server.start("0.0.0.0", 5000)?;
//! let mut sensors = Sensors { temperature: 21.5 };
//! loop {
//!     let activity = server.poll(&mut sensors, Duration::from_millis(50))?;
//!     if activity.handled > 0 { /* blink an LED */ }
//!     sensors.temperature += 0.01; // your own work between polls
//! }
//! # Ok::<(), pollserve::Error>(())
//! ```
//!
//! [`Server::serve_forever`] polls forever; [`Server::stop`] stops listening,
//! lets requests in flight finish, and [`Server::start`] may be called again.
//!
//! # Seeing what it does
//!
//! pollserve logs through the [`log`](https://docs.rs/log) facade, so it
//! prints nothing until the program installs a logger: with `env_logger`,
//! `env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init()`
//! at the start of `main` shows one access-log line per response (target
//! `pollserve::access`) and every warning, as the examples do. With no
//! logger, [`ServerConfig::log_to_stderr`] writes the access log and the
//! server's warnings to stderr (`adafruit_httpserver`'s `debug=True`).
//! A response that becomes a WebSocket, an event stream or a kept stream is
//! logged when its head goes out: the line's size and time are the head's.
//!
//! # Routes
//!
//! Patterns use `adafruit_httpserver`'s syntax: `<name>` captures one segment,
//! `...` matches exactly one segment, `....` one or more. The first registered
//! match wins; a path matched with the wrong method gets `405` with `Allow`.
//! Patterns are checked when registered.
//!
//! ```
//! use pollserve::{Method, Response, Route, Server};
//! let mut server = Server::<()>::new();
//! server.route("/users/<id>/posts/<post>", Method::GET, |req, _| {
//!     Ok(Response::text(format!("{} / {}", req.param("id").unwrap(), req.param("post").unwrap())))
//! })?;
//! server.add_routes([
//!     Route::new("/about", Method::GET, |_, _| Ok(Response::text("about"))).append_slash(true),
//!     Route::new("/files/....", [Method::GET, Method::HEAD], |req, _| Ok(Response::text(req.path()))),
//! ])?;
//! assert!(server.route("no-slash", Method::GET, |_, _| Ok(Response::text(""))).is_err());
//! # Ok::<(), pollserve::Error>(())
//! ```
//!
//! # Requests
//!
//! A handler runs once the whole request (head and body, de-chunked) has
//! arrived. [`Request`] gives the method, the decoded path, query parameters
//! (multi-valued, `+` as space), route parameters, case-insensitive headers with
//! `adafruit_httpserver`'s [`get_directive`](Headers::get_directive) /
//! [`get_parameter`](Headers::get_parameter), the body as bytes, text or JSON,
//! and the client address. Client input reflected into HTML must go through
//! [`html_escape`]. Forms: [`Request::form`] (urlencoded, multipart with
//! files, text/plain) and [`Request::cookies`]. Uploads too large to buffer
//! go to a route made with [`Route::streaming`], whose [`BodySink`] receives
//! the body as it arrives (to disk, through
//! [`form::MultipartParser`], or anywhere else). A handler reaches other
//! connections through [`Request::outbox`]: send to, close or broadcast to
//! WebSockets, event streams and kept streams, carried out as soon as it
//! returns.
//!
//! ```
//! use pollserve::{HttpError, Request, Response};
//! #[derive(serde::Deserialize)]
//! struct Colour { r: u8, g: u8, b: u8 }
//! fn set_colour(req: &Request) -> Result<Response, HttpError> {
//!     let c: Colour = req.json()?;                 // 400 with the parse error if invalid
//!     let name = req.query().get("name").unwrap_or("pixel");
//!     Ok(Response::text(format!("{name} = #{:02x}{:02x}{:02x}", c.r, c.g, c.b)))
//! }
//! ```
//!
//! # Responses
//!
//! [`Response`] builds text, HTML, bytes, JSON, redirects
//! ([`Response::redirect`] picks 301/302/307/308 like `adafruit_httpserver`), chunked
//! streams from any iterator, and files streamed from disk with ETag, 304 and
//! `Range` handled by the server (several ranges as `multipart/byteranges`).
//! A response the program feeds later from its own loop — a camera's frames,
//! a log — is a kept stream: [`Request::accept_stream`] gives the response
//! and a [`stream::StreamId`], and [`Server::stream`] sends chunks on it
//! between polls until [`end`](StreamHandle::end) (see [`stream`]). A handler returning `Err(HttpError)` sends
//! that status; a handler that panics sends `500` and the server keeps serving.
//! [`Server::default_header`] adds headers to every response (the handler's
//! own win). `HEAD` never gets a body.
//!
//! ```
//! use pollserve::{Response, StatusCode};
//! let page = Response::html("<h1>hi</h1>").with_header("Cache-Control", "no-store");
//! let moved = Response::redirect("/new", true, false);       // 301
//! let stream = Response::chunked("text/plain", (1..=3).map(|i| format!("line {i}\n")));
//! let teapot = Response::text("short and stout").with_status(StatusCode::IM_A_TEAPOT);
//! # let _ = (page, moved, stream, teapot);
//! ```
//!
//! # Static files
//!
//! [`Server::serve_files`] serves a directory for `GET`/`HEAD` requests no route
//! matched; `/` and `dir/` serve `index.html`. Paths are resolved safely: `..`,
//! encoded separators, backslashes, NUL and symlinks leaving the root are
//! refused, dotfiles are hidden. See [`files::StaticRoot`] for listings and
//! policies.
//!
//! # WebSockets
//!
//! A route handler accepts an upgrade with [`Request::accept_websocket`] (or
//! [`Request::websocket`] for subprotocols, an origin check and limits) and
//! keeps the returned [`ws::WsId`]. Between polls, [`Server::ws`] gives a handle
//! to [`receive`](crate::WsHandle::receive) complete messages — a fragmented
//! message is held until its last frame, pings are answered automatically and
//! never returned as data — and to send, ping and close. Limits default to
//! desktop values; [`ws::WsOptions::embedded`] gives `adafruit_httpserver`'s (4096 bytes,
//! 16 fragments, 5 s). [`Server::sender`] hands out a `Send` handle for
//! other threads, and [`Server::broadcast_text`] sends to a set of sockets.
//! Compression (permessage-deflate, feature `deflate`, on by default) is
//! accepted on an endpoint whose [`ws::WsOptions::deflate`] asks for it; see
//! [the `ws` module](ws#compression).
//!
//! # Broadcasting and groups
//!
//! [`Server::broadcast_text`], [`broadcast_binary`](Server::broadcast_binary),
//! [`broadcast_event`](Server::broadcast_event) and
//! [`broadcast_chunk`](Server::broadcast_chunk) encode a message once and
//! queue the very same bytes on every connection: memory for one broadcast
//! is one copy plus a small reference per connection, and each connection
//! writes its queue with vectored writes (a compressed WebSocket message is
//! compressed once per compression setting, for all sockets that keep no
//! compression context). Backpressure stays per
//! connection: a slow reader over its send bound is dropped and the others
//! go on. A [`group`] (topic, channel) keeps the set for the program —
//! WebSockets, event streams and kept streams alike, joined from a handler
//! through [`Request::outbox`] or from another thread through [`Sender`] —
//! and members leave by themselves when they close.
//! [`Server::ws_ready`] lists only the sockets with news after a poll, and
//! [`receive_into`](crate::WsHandle::receive_into) recycles message buffers, so a
//! busy loop allocates nothing per message. The module [`ws`] has a complete
//! echo example.
//!
//! # HTTPS and WSS
//!
//! With the `tls` feature, `Server::start_tls(host, port, tls)` listens for
//! HTTPS with a `tls::TlsConfig` made from PEM files (or bytes, or a
//! `rustls::ServerConfig`), beside or instead of a plain port; everything
//! above works the same over it, `wss://` included. The handshake runs
//! inside `poll` (rustls is sans-IO) and is bounded by the header timeout;
//! `Server::reload_tls` takes a renewed certificate without a restart, and
//! `Server::start_https_redirect` sends plain-HTTP clients to the HTTPS port.
//! See the `tls` module.
//!
//! # Limits
//!
//! Every limit is explicit and configurable through [`ServerConfig`]: request
//! line (8 KiB, `414`), head size (32 KiB, `431`), header count (100, `431`),
//! body size (1 MiB, `413`), header/body/keep-alive/send timeouts, and the
//! connection count. Bad input gets a precise status and, when the framing is
//! in doubt, the connection is closed.
//!
//! The body size is one limit: [`Route::max_body_size`] sets it for one
//! route (an upload form), [`Request::form`] follows it, and a `413` names
//! the setting to raise. [`Route::require_authentication`] guards one route
//! the way [`Server::require_authentication`] guards them all: checked when
//! the head arrives, so an unauthenticated upload gets `401` instead of
//! `100 Continue` and is never read.
//!
//! ```
//! use pollserve::{Authentication, Method, Response, Route, Server};
//! let mut server = Server::<()>::new();
//! server.add_route(
//!     Route::new("/upload", Method::POST, |req, _| {
//!         let form = req.form()?; // files up to the route's 64 MiB
//!         Ok(Response::text(format!("{} files", form.all_files().len())))
//!     })
//!     .max_body_size(64 << 20)
//!     .require_authentication(Authentication::new("uploads").basic("user", "passw0rd")),
//! )?;
//! # Ok::<(), pollserve::Error>(())
//! ```
//!
//! # Layers
//!
//! Three layers, each usable and testable on its own; dependencies point
//! downward only.
//!
//! - **Protocol** ([`proto`]): sans-IO state machines over byte slices —
//!   request heads and body framing, response heads, the WebSocket frame
//!   codec and session, event encoding. No sockets and no clock reads (the
//!   current time is an argument). This is where the fuzz targets and
//!   property tests point.
//! - **Application**: what handlers and the program work with — [`Request`],
//!   [`Response`], [`router`], [`headers`], [`url`], [`form`], [`cookies`],
//!   [`auth`], [`cors`], [`files`], [`mime`], [`escape`], [`outbox`] (what a
//!   handler asks of other connections), [`group`], and the ids, options and
//!   errors of [`ws`], [`sse`] and [`stream`]. None of it knows about sockets.
//! - **Driver** ([`server`]): the `mio` poll loop. It owns the listener and
//!   every connection, decides once per request (when its head is in) what
//!   answers it, and moves bytes between sockets and the protocol layer.
//!   The program acts on connections through [`Server`], [`WsHandle`],
//!   [`SseHandle`], [`StreamHandle`], [`GroupHandle`] and the cross-thread
//!   [`Sender`].
#![warn(missing_docs)]
// Three reviewed exceptions, each with a SAFETY note, all in `proto::ws`.
#![deny(unsafe_code)]

pub mod auth;
pub mod cookies;
pub mod cors;
pub mod error;
pub mod escape;
pub mod files;
pub mod form;
pub mod forwarded;
pub mod group;
pub mod headers;
pub mod method;
pub mod mime;
pub mod outbox;
pub mod pairs;
pub mod proto;
pub mod request;
pub mod response;
pub mod router;
pub mod server;
pub mod sse;
pub mod status;
pub mod stream;
#[cfg(feature = "tls")]
pub mod tls;
pub mod url;
pub mod ws;

pub use auth::{Authentication, Credentials};
pub use cookies::{Cookies, SameSite, SetCookie};
pub use cors::Cors;
pub use error::{Error, HttpError};
pub use escape::html_escape;
pub use form::{FormData, FormError, FormLimits, UploadedFile};
pub use headers::Headers;
pub use method::Method;
pub use pairs::Pairs;
pub use proto::http::Version;
pub use request::{ConnId, Request, RouteParams};
pub use response::Response;
pub use router::RouteError;
pub use server::{
    Activity, BodySink, GroupHandle, Handler, Route, Sender, Server, ServerConfig, ServerStats,
    SseHandle, StreamHandle, WsHandle,
};
pub use status::StatusCode;
