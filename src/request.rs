//! The request a handler sees.

use std::net::{IpAddr, SocketAddr};

use crate::error::HttpError;
use crate::headers::Headers;
use crate::method::Method;
use crate::proto::http::{RequestHead, Version};
use crate::url::QueryParams;

/// Identifies one connection of a [`Server`](crate::Server): a slot number and a
/// generation, so an id kept after its connection closed never reaches the next
/// connection that reuses the slot.
///
/// Ids are ordered (`Ord`) in an arbitrary but fixed order, so they can key a
/// `BTreeMap` or be sorted and deduplicated; the order says nothing about
/// when the connections opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// For logs: `conn#` and the slot and generation, e.g. `conn#12.3`. The
/// ids of what the connection carries print the same two numbers
/// ([`WsId`](crate::ws::WsId) as `ws#12.3`, [`SseId`](crate::sse::SseId)
/// as `sse#12.3.1`), so a handler's log line (with
/// [`Request::conn_id`]) and the main loop's can be matched.
impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.write_id(f, "conn", None)
    }
}

impl ConnId {
    /// How every id of the crate prints: `kind#slot.generation`, then
    /// `.response` for the ids that name one response on the connection.
    pub(crate) fn write_id(
        &self,
        f: &mut std::fmt::Formatter<'_>,
        kind: &str,
        response: Option<u32>,
    ) -> std::fmt::Result {
        write!(f, "{kind}#{}.{}", self.slot, self.generation)?;
        match response {
            Some(n) => write!(f, ".{n}"),
            None => Ok(()),
        }
    }
}

/// An HTTP request, fully received (head and body) before the handler runs.
///
/// ```
/// # use pollserve::Request;
/// fn handler(req: &Request) -> String {
///     let name = req.query().get("name").unwrap_or("world");
///     format!("{} {} says hello to {name}", req.method(), req.path())
/// }
/// ```
#[derive(Debug)]
pub struct Request {
    pub(crate) head: RequestHead,
    pub(crate) path: String,
    pub(crate) query: QueryParams,
    pub(crate) params: RouteParams,
    pub(crate) body: Vec<u8>,
    pub(crate) peer: SocketAddr,
    /// The client's address: `peer`'s, or the one a trusted proxy forwarded.
    pub(crate) client_ip: IpAddr,
    /// The request arrived over TLS.
    pub(crate) tls: bool,
    pub(crate) conn: ConnId,
    /// What the handler asks the server to do to other connections.
    pub(crate) outbox: crate::outbox::Outbox,
    /// The body limit this request was admitted under.
    pub(crate) body_limit: BodyLimit,
    /// Counts the requests of the connection (wrapping): the ids of kept
    /// streams carry it, so an id from an earlier request on a keep-alive
    /// connection never names a later stream.
    pub(crate) exchange: u32,
}

/// The body size limit in force for a request, and the setting that chose
/// it, so that a `413` can say what to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyLimit {
    pub bytes: u64,
    pub set_by: BodyLimitSetting,
}

/// Which setting a [`BodyLimit`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLimitSetting {
    /// `ServerConfig::max_body_size`.
    Server,
    /// The route's `Route::max_body_size` (or `Route::streaming`'s limit).
    Route,
}

impl BodyLimit {
    /// The server-wide limit.
    pub fn server(bytes: u64) -> BodyLimit {
        BodyLimit {
            bytes,
            set_by: BodyLimitSetting::Server,
        }
    }

    /// A route's own limit.
    pub fn route(bytes: u64) -> BodyLimit {
        BodyLimit {
            bytes,
            set_by: BodyLimitSetting::Route,
        }
    }

    /// The `413` message for a body over this limit, naming the setting.
    pub fn exceeded(&self) -> String {
        let setting = match self.set_by {
            BodyLimitSetting::Server => {
                "ServerConfig::max_body_size; a route can set Route::max_body_size"
            }
            BodyLimitSetting::Route => "this route's Route::max_body_size",
        };
        format!("request body exceeds {} bytes ({setting})", self.bytes)
    }
}

impl Default for BodyLimit {
    /// [`ServerConfig`](crate::ServerConfig)'s default.
    fn default() -> BodyLimit {
        BodyLimit::server(crate::proto::http::HttpLimits::default().max_body_size)
    }
}

impl Request {
    /// Sends to, closes or broadcasts to WebSockets, event streams and kept streams from
    /// inside a handler; the server carries the calls out, in order, right
    /// after the handler's connection is served. See [`Outbox`](crate::outbox::Outbox).
    pub fn outbox(&self) -> &crate::outbox::Outbox {
        &self.outbox
    }

    /// The request method.
    pub fn method(&self) -> Method {
        self.head.method.unwrap_or(Method::GET)
    }

    /// The percent-decoded path, without the query string (`/a b` for `/a%20b?x`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The request target exactly as sent (`/a%20b?x=1`).
    pub fn target(&self) -> &str {
        &self.head.target
    }

    /// The raw query string after `?`, if any, not decoded.
    pub fn query_string(&self) -> Option<&str> {
        self.head.target.split_once('?').map(|(_, q)| q)
    }

    /// The decoded query parameters (multi-valued, `+` read as space).
    ///
    /// Values come from the client: escape them with [`html_escape`](crate::html_escape)
    /// before reflecting them into HTML.
    pub fn query(&self) -> &QueryParams {
        &self.query
    }

    /// The value of the route parameter `name` (`<name>` in the route pattern).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    /// Every route parameter captured by the matched route.
    pub fn params(&self) -> &RouteParams {
        &self.params
    }

    /// The request header fields.
    pub fn headers(&self) -> &Headers {
        &self.head.headers
    }

    /// The first value of one header field (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.headers.get(name)
    }

    /// The request body (already de-chunked).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8 text, or 400 if it is not valid UTF-8.
    pub fn text(&self) -> Result<&str, HttpError> {
        std::str::from_utf8(&self.body)
            .map_err(|e| HttpError::bad_request(format!("request body is not UTF-8: {e}")))
    }

    /// The body parsed as JSON into `T`, or 400 naming what was wrong.
    ///
    /// The body is parsed whatever its `Content-Type` says (or without
    /// one), like `adafruit_httpserver`'s `request.json()`: a client that
    /// sends `text/plain` or no type at all is served the same. An API
    /// guarded by cookies or HTTP authentication should refuse anything but
    /// `application/json` (`req.headers().get_directive("Content-Type")`):
    /// a plain HTML form on another site can POST a JSON-looking
    /// `text/plain` body with the user's credentials, but cannot send
    /// `application/json` without a CORS preflight.
    ///
    /// ```
    /// use pollserve::{HttpError, Request, Response};
    /// fn api(req: &Request) -> Result<Response, HttpError> {
    ///     let content_type = req.headers().get_directive("Content-Type").unwrap_or("");
    ///     if !content_type.eq_ignore_ascii_case("application/json") {
    ///         return Err(HttpError::new(
    ///             pollserve::StatusCode::UNSUPPORTED_MEDIA_TYPE,
    ///             "send application/json",
    ///         ));
    ///     }
    ///     let value: serde_json::Value = req.json()?;
    ///     Response::json(&value)
    /// }
    /// ```
    pub fn json<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| HttpError::bad_request(format!("invalid JSON body: {e}")))
    }

    /// The largest body this request could have had: the route's
    /// [`Route::max_body_size`](crate::Route::max_body_size) if it set one,
    /// otherwise [`ServerConfig::max_body_size`](crate::ServerConfig::max_body_size).
    pub fn body_limit(&self) -> u64 {
        self.body_limit.bytes
    }

    /// The body parsed as a form: `application/x-www-form-urlencoded`,
    /// `multipart/form-data` (with files) or `text/plain`. Errors are 400,
    /// 413 or 415.
    ///
    /// There is one body limit: the form and each file in it may be as
    /// large as the body the server admitted ([`body_limit`](Self::body_limit),
    /// set with [`Route::max_body_size`](crate::Route::max_body_size) or
    /// [`ServerConfig::max_body_size`](crate::ServerConfig::max_body_size)).
    /// The other [`FormLimits`](crate::FormLimits) keep their defaults
    /// (1000 fields, 1 MiB per text field, 8 KiB of headers per part); for
    /// other limits call [`form_with_limits`](Self::form_with_limits).
    ///
    /// Field values come from the client: escape them with
    /// [`html_escape`](crate::html_escape) before reflecting them into HTML.
    pub fn form(&self) -> Result<crate::FormData, HttpError> {
        let limit = self.body_limit.bytes;
        self.form_with_limits(&crate::FormLimits {
            max_total_bytes: limit,
            max_file_bytes: limit,
            ..crate::FormLimits::default()
        })
    }

    /// [`form`](Self::form) with explicit limits, which replace the body
    /// limit there (the body itself was already held to it).
    pub fn form_with_limits(
        &self,
        limits: &crate::FormLimits,
    ) -> Result<crate::FormData, HttpError> {
        crate::FormData::from_headers(&self.body, &self.head.headers, limits)
            .map_err(HttpError::from)
    }

    /// The cookies sent with the request (every `Cookie` header).
    pub fn cookies(&self) -> crate::Cookies {
        crate::Cookies::from_headers(&self.head.headers)
    }

    /// The TCP peer's address: the client's, or, behind a reverse proxy,
    /// the proxy's. See [`client_ip`](Self::client_ip).
    pub fn client_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The client's IP address: the TCP peer's, unless the peer is a proxy
    /// the server trusts ([`Server::trust_proxies`](crate::Server::trust_proxies)),
    /// whose `Forwarded` / `X-Forwarded-For` header then names the client.
    /// The access log shows this address.
    pub fn client_ip(&self) -> IpAddr {
        self.client_ip
    }

    /// Whether the request arrived over TLS (a listener started with
    /// `Server::start_tls`): for a `Secure` cookie, an absolute URL with
    /// the right scheme, or `Strict-Transport-Security` on HTTPS answers
    /// only. Behind a reverse proxy that ends TLS this is `false`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The HTTP version of the request.
    pub fn version(&self) -> Version {
        self.head.version
    }

    /// The connection this request arrived on.
    pub fn conn_id(&self) -> ConnId {
        self.conn
    }
}

/// The parameters a route pattern captured (`<id>` in `/item/<id>`), by name.
pub type RouteParams = crate::pairs::Pairs;
