//! What a server route runs: buffered handlers and streaming body sinks.

use crate::auth::Authentication;
use crate::error::HttpError;
use crate::request::Request;
use crate::response::Response;
use crate::router::IntoMethodMask;

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
///
/// A body that never completes — over the route's limit, a client that
/// disconnects or stalls past its deadline, a server shutting down, or a
/// `write` that returned an error — drops the sink without calling
/// [`finish`](Self::finish): undo partial work (a half-written temporary
/// file) in the sink's `Drop`. `examples/upload.rs` shows the whole pattern.
/// The sink has no access to the application state; carry what `finish`
/// needs in the sink itself (it may hold an `Rc<RefCell<_>>` of shared state).
pub trait BodySink {
    /// The next piece of the (de-chunked) body. An error is sent as the
    /// response and the rest of the body is not read.
    fn write(&mut self, chunk: &[u8]) -> Result<(), HttpError>;
    /// The body is complete: the response to send.
    fn finish(self: Box<Self>) -> Result<Response, HttpError>;
}

/// How a route takes its request: buffered for a handler, or streamed to a
/// body sink.
pub(crate) enum RouteKind<S> {
    Buffered(Handler<S>),
    Streaming(SinkOpener<S>),
}

/// What a route runs, and what it asks of a request before running it:
/// both are checked once, when the head is in.
pub(crate) struct RouteHandler<S> {
    pub kind: RouteKind<S>,
    /// The route's body limit, overriding the server's; always set for a
    /// streaming route.
    pub max_body: Option<u64>,
    /// Credentials this route requires (besides any server-wide ones).
    pub auth: Option<Authentication>,
}

impl<S> RouteHandler<S> {
    fn new(kind: RouteKind<S>, max_body: Option<u64>) -> RouteHandler<S> {
        RouteHandler {
            kind,
            max_body,
            auth: None,
        }
    }

    /// Whether the route hands its body to a sink.
    pub fn is_streaming(&self) -> bool {
        matches!(self.kind, RouteKind::Streaming(_))
    }
}

/// A route built before registration (`adafruit_httpserver`'s `Route` /
/// `as_route`), for [`Server::add_route`](crate::Server::add_route) and
/// [`Server::add_routes`](crate::Server::add_routes).
pub struct Route<S> {
    pub(crate) pattern: String,
    pub(crate) methods: u16,
    pub(crate) append_slash: bool,
    pub(crate) handler: RouteHandler<S>,
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
            handler: RouteHandler::new(RouteKind::Buffered(Box::new(handler)), None),
        }
    }

    /// A route whose request body is not buffered but handed, as it arrives,
    /// to the [`BodySink`] that `open` returns once the head is in (return an
    /// `Err` to refuse the request before its body is read). Bodies up to
    /// `max_body` bytes are accepted (`413` beyond, before the sink is
    /// fed); [`max_body_size`](Self::max_body_size) changes it later.
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
            handler: RouteHandler::new(RouteKind::Streaming(Box::new(open)), Some(max_body)),
        }
    }

    /// Also match the path with a trailing slash (`/about` and `/about/`).
    pub fn append_slash(mut self, yes: bool) -> Route<S> {
        self.append_slash = yes;
        self
    }

    /// The largest request body this route accepts, in place of
    /// [`ServerConfig::max_body_size`](crate::ServerConfig::max_body_size)
    /// (1 MiB by default), larger or smaller. A body announced larger is
    /// refused with `413` when the head arrives — before `100 Continue`,
    /// without reading it — and a chunked body once it grows past the
    /// limit; the message names the setting. [`Request::form`] follows
    /// this limit, so an upload form needs no separate
    /// [`FormLimits`](crate::FormLimits). On a [`streaming`](Self::streaming)
    /// route it replaces the limit given there.
    ///
    /// A buffered route holds the whole body, and [`Request::form`] copies
    /// its files out of it: an upload of N bytes takes about 2N of memory
    /// while its handler runs. For large files prefer a streaming route
    /// (`examples/upload.rs`: a few KiB whatever the size).
    ///
    /// ```
    /// use pollserve::{Method, Response, Route, Server};
    /// let mut server = Server::<()>::new();
    /// server.add_route(
    ///     Route::new("/upload", Method::POST, |req, _| {
    ///         let form = req.form()?; // up to 32 MiB, files included
    ///         Ok(Response::text(format!("{} files", form.all_files().len())))
    ///     })
    ///     .max_body_size(32 << 20),
    /// )?;
    /// # Ok::<(), pollserve::Error>(())
    /// ```
    pub fn max_body_size(mut self, bytes: u64) -> Route<S> {
        self.handler.max_body = Some(bytes);
        self
    }

    /// Requires these credentials for this route, checked when the request
    /// head arrives, as [`Server::require_authentication`](crate::Server::require_authentication)
    /// does for the whole server (a request must then pass both). Without
    /// them the client gets `401` with a `WWW-Authenticate` challenge and
    /// the handler does not run: a client waiting on `Expect: 100-continue`
    /// gets the `401` instead of `100 Continue`, a large or streamed body
    /// is never read (the connection closes after the `401`), a small one
    /// is read and dropped to keep the connection, and a streaming route's
    /// sink is never opened.
    ///
    /// The handler learns who it is from
    /// [`Credentials::from_headers`](crate::Credentials::from_headers)
    /// (`username()` for `Basic`).
    ///
    /// ```
    /// use pollserve::{Authentication, Method, Response, Route, Server};
    /// let mut server = Server::<()>::new();
    /// server.add_route(
    ///     Route::new("/upload", Method::POST, |req, _| {
    ///         Ok(Response::text(format!("{} bytes", req.body().len())))
    ///     })
    ///     .require_authentication(Authentication::new("uploads").basic("user", "passw0rd"))
    ///     .max_body_size(8 << 20),
    /// )?;
    /// # Ok::<(), pollserve::Error>(())
    /// ```
    pub fn require_authentication(mut self, auth: Authentication) -> Route<S> {
        self.handler.auth = Some(auth);
        self
    }
}
