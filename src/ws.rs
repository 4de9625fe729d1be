//! WebSocket connections as the program sees them: accept an upgrade in a
//! route handler, keep the [`WsId`], then [`receive`](crate::WsHandle::receive) and
//! send through [`Server::ws`](crate::Server::ws) between polls.
//!
//! ```no_run
//! use pollserve::{Method, Server, ws::{Message, WsId}};
//! use std::time::Duration;
//!
//! #[derive(Default)]
//! struct App { sockets: Vec<WsId> }
//!
//! let mut server = Server::<App>::new();
//! server.route("/ws", Method::GET, |req, app: &mut App| {
//!     let (response, ws) = req.accept_websocket()?;   // 101, or 400/426
//!     app.sockets.push(ws);
//!     Ok(response)
//! })?;
//! server.start("127.0.0.1", 5000)?;
//! let mut app = App::default();
//! loop {
//!     server.poll(&mut app, Duration::from_millis(100))?;
//!     for &id in &app.sockets {
//!         while let Some(msg) = server.ws(id).receive() {
//!             if let Message::Text(text) = msg {
//!                 server.ws(id).send_text_quiet(&text.to_uppercase());
//!             }
//!         }
//!     }
//!     app.sockets.retain(|&id| !server.ws(id).is_closed());
//! }
//! # Ok::<(), pollserve::Error>(())
//! ```
//!
//! # Compression
//!
//! Browsers offer permessage-deflate (RFC 7692) on every WebSocket; an
//! endpoint accepts it when its options ask for it, and then every message
//! of at least [`DeflateOptions::min_size`] bytes goes compressed (JSON
//! readings shrink to a third or less). With the defaults neither side keeps
//! compression context between messages, so an idle socket holds no
//! compression state; [`WsHandle::deflate`](crate::WsHandle::deflate) tells
//! what a socket agreed.
//!
//! A compressed message can inflate to a thousand times its size on the
//! wire. [`WsConfig::max_message_size`] bounds one message (1009 beyond
//! it); [`ServerConfig::max_inflated_bytes`](crate::ServerConfig::max_inflated_bytes)
//! (64 MiB) bounds what inflating holds across all sockets, partial
//! messages and those waiting for the program to receive: a socket that
//! would go over it pauses until the program takes messages, and is closed
//! with 1013 (try again later) if it stays stuck. So receive promptly from
//! compressed sockets, or messages wait and others pause behind them.
//!
//! ```no_run
//! use pollserve::{Method, Server, ws::{DeflateOptions, WsOptions}};
//! # let mut server = Server::<()>::new();
//! server.route("/ws", Method::GET, |req, _| {
//!     let options = WsOptions { deflate: Some(DeflateOptions::default()), ..WsOptions::default() };
//!     let (response, _id) = req.websocket().options(options).accept()?;
//!     Ok(response)
//! })?;
//! # Ok::<(), pollserve::Error>(())
//! ```
//!
//! A busy server can do better than visiting every socket and allocating
//! each message: [`Server::ws_ready`](crate::Server::ws_ready) lists the
//! sockets that received something in the last poll, and
//! [`WsHandle::receive_into`](crate::WsHandle::receive_into) reuses one message buffer (see its example).
//!
//! To send one message to many sockets, use
//! [`Server::broadcast_text`](crate::Server::broadcast_text) (or a
//! [`group`](crate::group), which the server keeps free of closed sockets)
//! rather than a loop of sends: the frame is encoded once and every socket
//! queues a small reference to the same bytes, so a broadcast costs one
//! copy of the message in memory, not one per client. Each socket keeps
//! its own send bound ([`WsOptions::max_send_buffer`]); a client too slow
//! for it is dropped without holding up the others.

use crate::error::HttpError;
use crate::proto::extensions::negotiate;
use crate::proto::ws::{accept_key, is_valid_client_key, ProtocolError, SendError};
use crate::request::{ConnId, Request};
use crate::response::{Body, Response};
use crate::status::StatusCode;

pub use crate::proto::deflate::DeflateParams;
pub use crate::proto::extensions::DeflateOptions;
pub use crate::proto::ws::{CloseCode, Message, WsConfig};

/// Identifies one accepted WebSocket. Small and `Copy`: keep it in your
/// application state and act on the connection through
/// [`Server::ws`](crate::Server::ws). An id whose connection has closed stays
/// harmless: sends fail with [`WsError::Closed`] and `is_closed()` is true.
///
/// Ids are ordered (`Ord`) in an arbitrary but fixed order, so they can key a
/// `BTreeMap` or be sorted and deduplicated; the order says nothing about
/// when the connections opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WsId(pub(crate) ConnId);

impl WsId {
    /// The connection the WebSocket lives on: the id its upgrade request
    /// had ([`Request::conn_id`](crate::Request::conn_id)).
    pub fn conn(&self) -> ConnId {
        self.0
    }
}

/// For logs: `ws#` and the connection's slot and generation, e.g.
/// `ws#12.3` (its [`ConnId`] prints `conn#12.3`). Two ids that ever named
/// different connections print differently.
impl std::fmt::Display for WsId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.write_id(f, "ws", None)
    }
}

/// Something that arrived on a WebSocket, for programs that want more than
/// messages (see [`WsHandle::receive_event`](crate::WsHandle::receive_event)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A complete message (fragments already reassembled).
    Message(Message),
    /// A pong, in answer to [`WsHandle::send_ping`](crate::WsHandle::send_ping) or unsolicited.
    Pong(Vec<u8>),
}

/// Why a WebSocket operation failed.
///
/// [`SseSendError`](crate::sse::SseSendError) has variants of the same names
/// for the same transport outcomes (`Closed`, `Backpressure`, `Io`, and a
/// single message over the send bound), on purpose: the send policy is one
/// for both kinds of stream. They stay two types because the rest differs
/// (a ping payload limit here, an encoding error there), so each lists only
/// failures its sends can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// The WebSocket is closing or closed (either side sent a close, or the
    /// connection is gone).
    #[error("WebSocket is closed")]
    Closed,
    /// The id does not name a WebSocket (it names a plain HTTP connection).
    #[error("connection is not a WebSocket")]
    NotWebSocket,
    /// A ping payload over 125 bytes.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(usize),
    /// The message would have made more than
    /// [`WsOptions::max_send_buffer`] bytes wait for a peer that is not
    /// reading fast enough; the connection has been closed (nothing of the
    /// message was queued).
    #[error("peer is not reading; connection closed")]
    Backpressure,
    /// The message alone, as framed, is larger than
    /// [`WsOptions::max_send_buffer`]: it was not sent, and the connection
    /// stays open. Raise the bound to send messages this large.
    #[error("message of {len} bytes exceeds the send buffer bound of {limit} bytes")]
    MessageTooLarge {
        /// The payload's size.
        len: usize,
        /// The connection's `max_send_buffer`.
        limit: usize,
    },
    /// The connection failed while writing.
    #[error("connection failed while sending")]
    Io,
}

impl From<SendError> for WsError {
    fn from(e: SendError) -> WsError {
        match e {
            SendError::Closed => WsError::Closed,
            SendError::ControlTooLong(n) => WsError::ControlTooLong(n),
        }
    }
}

/// How a WebSocket ended, once it has: see [`WsHandle::close_status`](crate::WsHandle::close_status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseStatus {
    /// The peer sent a close frame with this code (`None`: no code) and reason.
    Peer {
        /// The peer's code.
        code: Option<CloseCode>,
        /// The peer's reason.
        reason: String,
    },
    /// We closed the connection because the peer broke the protocol or a limit;
    /// the peer was sent [`ProtocolError::close_code`].
    Failed(ProtocolError),
    /// We sent a close frame (the program called [`WsHandle::close`](crate::WsHandle::close)).
    Local,
    /// The TCP connection ended without a close frame (code 1006 in RFC terms),
    /// or was dropped for not reading.
    Abnormal,
}

/// Per-endpoint WebSocket settings: protocol limits plus buffering bounds.
#[derive(Debug, Clone)]
pub struct WsOptions {
    /// Protocol limits (message size, fragments, fragment timeout, frame size
    /// for sending, close timeout); see [`WsConfig`].
    pub protocol: WsConfig,
    /// Most unsent bytes queued for a peer that does not read: the
    /// connection's own frames and the broadcast frames queued on it, each
    /// counted in full even when its bytes are shared. A send or broadcast
    /// that would queue more closes the connection
    /// ([`WsError::Backpressure`]); a single message larger than this is
    /// refused ([`WsError::MessageTooLarge`]). The pongs and close frame the
    /// server answers with on its own may pass it by what one read brings
    /// (16 KiB) and one control frame.
    ///
    /// What this bounds in memory: the connection's write buffer holds its
    /// unsent bytes in an allocation of at most twice them and at most 1.25
    /// times this bound (unless the unsent bytes alone need more); each
    /// queued broadcast frame of 256 bytes or more costs it 32 bytes more
    /// (smaller ones are copied into the write buffer), so at most 1/8 of
    /// this bound. The bytes of a shared broadcast frame are allocated once
    /// for all the connections it is queued on (see
    /// [`ServerStats::output_buffered`](crate::ServerStats::output_buffered)).
    /// Over TLS, the encrypted records not yet written come on top. Default
    /// 8 MiB.
    pub max_send_buffer: usize,
    /// Most bytes of received messages (each counted with a few dozen bytes
    /// of bookkeeping, so empty messages count too) held until the program calls
    /// [`WsHandle::receive`](crate::WsHandle::receive); beyond it the server stops reading the socket
    /// (TCP flow control slows the peer), so a program that falls behind never
    /// makes memory grow without bound. Default 4 MiB.
    pub max_receive_buffer: usize,
    /// permessage-deflate (RFC 7692): `Some` accepts a client's offer to
    /// compress messages, with these server preferences; `None` (the
    /// default) declines it. Browsers offer it on every WebSocket. Needs the
    /// crate feature `deflate` (on by default); without it offers are
    /// declined. [`WsHandle::deflate`](crate::WsHandle::deflate) tells what
    /// a connection negotiated.
    ///
    /// The message size limit ([`WsConfig::max_message_size`]) applies to
    /// the *inflated* size and is enforced while inflating, so a small
    /// compressed message that would inflate past it is closed with 1009
    /// after at most the limit was produced.
    pub deflate: Option<DeflateOptions>,
}

/// The server's deadlines for peers: a keepalive ping after 30 s without a
/// word from the peer, which then has 30 s to answer, and a message that
/// has begun must keep arriving at 1 KiB/s on average after its first
/// `fragment_timeout`.
fn with_keepalive(mut protocol: WsConfig) -> WsConfig {
    protocol.keepalive_interval = Some(std::time::Duration::from_secs(30));
    protocol.min_message_rate = 1024;
    protocol
}

impl Default for WsOptions {
    /// [`WsConfig::default`] with keepalive pings on (a ping after 30 s of
    /// silence, dropped 30 s later without an answer), a minimum message rate
    /// of 1 KiB/s, an 8 MiB send bound and a 4 MiB receive bound.
    fn default() -> Self {
        WsOptions {
            protocol: with_keepalive(WsConfig::default()),
            max_send_buffer: 8 << 20,
            max_receive_buffer: 4 << 20,
            deflate: None,
        }
    }
}

impl WsOptions {
    /// `adafruit_httpserver`'s limits (4096-byte messages, 16 fragments, 5 s between
    /// fragments) with buffers to match (64 KiB send bound, 16 KiB receive
    /// bound), for small devices; keepalive as in the default; no
    /// compression (with [`deflate`](Self::deflate) on, a socket that is
    /// sending or receiving borrows a compressor of ~245 KiB and an
    /// inflater of 46 KiB, shared by all sockets with the same settings
    /// when no context is kept; see [`DeflateOptions`]).
    pub fn embedded() -> WsOptions {
        WsOptions {
            protocol: with_keepalive(WsConfig::embedded()),
            max_send_buffer: 64 << 10,
            max_receive_buffer: 16 << 10,
            deflate: None,
        }
    }
}

/// What a `101` response carries to the connection: the endpoint's options
/// and the negotiated permessage-deflate parameters.
#[derive(Debug, Clone)]
pub(crate) struct Upgrade {
    pub options: WsOptions,
    pub deflate: Option<DeflateParams>,
}

type OriginCheck<'a> = Box<dyn Fn(Option<&str>) -> bool + 'a>;

/// Builder for accepting a WebSocket upgrade: subprotocols, origin check,
/// limits. Start it with [`Request::websocket`].
pub struct WsAccept<'r> {
    req: &'r Request,
    protocols: &'r [&'r str],
    origin: Option<OriginCheck<'r>>,
    options: WsOptions,
}

impl<'r> WsAccept<'r> {
    /// Subprotocols this endpoint speaks, in order of preference; the first
    /// one the client also offers is selected and sent back.
    pub fn protocols(mut self, protocols: &'r [&'r str]) -> Self {
        self.protocols = protocols;
        self
    }

    /// Refuses the upgrade with 403 unless `check(Origin header)` is true
    /// (browsers always send `Origin`; other clients may not).
    ///
    /// Check it on any endpoint that relies on cookies or HTTP
    /// authentication: a browser opening a WebSocket from *another* site's
    /// page sends the user's cookies and stored Basic credentials with the
    /// handshake (cross-site WebSocket hijacking), and only `Origin` tells
    /// the two apart. Compare the origin's host with the one you serve
    /// under; behind a proxy that rewrites `Host`, compare without the port.
    pub fn check_origin(mut self, check: impl Fn(Option<&str>) -> bool + 'r) -> Self {
        self.origin = Some(Box::new(check));
        self
    }

    /// Limits and buffer bounds for this connection.
    pub fn options(mut self, options: WsOptions) -> Self {
        self.options = options;
        self
    }

    /// Validates the handshake (RFC 6455 §4.2.1) and returns the `101`
    /// response to return from the handler, plus the id to keep.
    ///
    /// With [`WsOptions::deflate`] set, the client's permessage-deflate
    /// offers are negotiated (the first one the server can honour is
    /// accepted; see [`DeflateOptions`]) and the response carries the
    /// agreed `Sec-WebSocket-Extensions`.
    ///
    /// Errors: `400` for a request that is not a valid upgrade (wrong method or
    /// version, missing `Upgrade: websocket` or `Connection: upgrade`, bad
    /// key, a `Sec-WebSocket-Extensions` header that breaks its grammar), `426` with `Sec-WebSocket-Version: 13` for another protocol
    /// version, `403` when the origin check fails, `500` for
    /// [`DeflateOptions`] out of range (a program error).
    pub fn accept(self) -> Result<(Response, WsId), HttpError> {
        let req = self.req;
        let h = req.headers();
        if req.method() != crate::Method::GET {
            return Err(HttpError::bad_request("WebSocket upgrade must use GET"));
        }
        if req.version() != crate::Version::Http11 {
            return Err(HttpError::bad_request("WebSocket upgrade needs HTTP/1.1"));
        }
        if !h.has_token("Upgrade", "websocket") {
            return Err(HttpError::bad_request("expected Upgrade: websocket"));
        }
        if !h.has_token("Connection", "upgrade") {
            return Err(HttpError::bad_request("expected Connection: upgrade"));
        }
        match h.get("Sec-WebSocket-Version").map(str::trim) {
            Some("13") => {}
            _ => {
                return Err(HttpError::new(
                    StatusCode::UPGRADE_REQUIRED,
                    "unsupported WebSocket version; use 13",
                )
                .with_header("Sec-WebSocket-Version", "13"))
            }
        }
        let key = match h.get("Sec-WebSocket-Key").map(str::trim) {
            Some(k) if h.get_all("Sec-WebSocket-Key").count() == 1 && is_valid_client_key(k) => k,
            _ => {
                return Err(HttpError::bad_request(
                    "missing or invalid Sec-WebSocket-Key",
                ))
            }
        };
        if let Some(check) = &self.origin {
            if !check(h.get("Origin")) {
                return Err(HttpError::forbidden());
            }
        }
        let mut response = Response::new(StatusCode::SWITCHING_PROTOCOLS)
            .with_header("Upgrade", "websocket")
            .with_header("Sec-WebSocket-Accept", &accept_key(key));
        let offered: Vec<&str> = h
            .get_all("Sec-WebSocket-Protocol")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if let Some(p) = self.protocols.iter().find(|p| offered.contains(p)) {
            response.set_header("Sec-WebSocket-Protocol", p);
        }
        let deflate = match &self.options.deflate {
            Some(prefs) if cfg!(feature = "deflate") => {
                prefs.validate().map_err(|e| {
                    HttpError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("invalid WsOptions::deflate: {e}"),
                    )
                })?;
                let offers = h.get_all("Sec-WebSocket-Extensions");
                match negotiate(offers, prefs) {
                    Ok(Some(n)) => {
                        response.set_header("Sec-WebSocket-Extensions", &n.response);
                        Some(n.params)
                    }
                    Ok(None) => None,
                    Err(e) => return Err(HttpError::bad_request(e.to_string())),
                }
            }
            _ => None,
        };
        response.body = Body::Upgrade(Box::new(Upgrade {
            options: self.options,
            deflate,
        }));
        Ok((response, WsId(req.conn)))
    }
}

impl Request {
    /// Starts accepting a WebSocket upgrade with options; see [`WsAccept`].
    pub fn websocket(&self) -> WsAccept<'_> {
        WsAccept {
            req: self,
            protocols: &[],
            origin: None,
            options: WsOptions::default(),
        }
    }

    /// Accepts a WebSocket upgrade with default options: returns the `101`
    /// response for the handler to return and the id to keep.
    pub fn accept_websocket(&self) -> Result<(Response, WsId), HttpError> {
        self.websocket().accept()
    }

    /// Whether this request asks for a WebSocket upgrade.
    pub fn is_websocket_upgrade(&self) -> bool {
        self.headers().has_token("Upgrade", "websocket")
    }
}
