//! What a server route runs: buffered handlers and streaming body sinks.

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

impl<S> RouteHandler<S> {
    /// The body limit of a streaming route; `None` for a buffered one (the
    /// server-wide limit applies).
    pub fn streaming_limit(&self) -> Option<u64> {
        match self {
            RouteHandler::Buffered(_) => None,
            RouteHandler::Streaming { max_body, .. } => Some(*max_body),
        }
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
