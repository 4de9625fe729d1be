//! Error types: [`Error`] for the server's own operations, [`HttpError`] for
//! handlers that want to answer with an error status.

use std::io;
use std::net::SocketAddr;

use crate::status::StatusCode;

/// An error from starting, polling or configuring a [`Server`](crate::Server).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The host/port pair is not a valid socket address.
    #[error("invalid listen address {addr:?}: {reason}")]
    InvalidAddress {
        /// What was given.
        addr: String,
        /// Why it was refused.
        reason: String,
    },
    /// Binding the listening socket failed (address in use, permission denied…).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The server is already listening; call `stop()` first.
    #[error("server already listening on {0}")]
    AlreadyStarted(SocketAddr),
    /// A route pattern was refused when it was registered.
    #[error(transparent)]
    Route(#[from] crate::router::RouteError),
    /// A static-file root could not be used.
    #[error("static file root {path:?}: {source}")]
    StaticRoot {
        /// The directory given.
        path: std::path::PathBuf,
        /// Why it cannot be used.
        #[source]
        source: io::Error,
    },
    /// A TLS certificate or key could not be used (feature `tls`).
    #[cfg(feature = "tls")]
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A configuration value was refused.
    #[error("{0}")]
    InvalidArgument(String),
    /// A [`Sender`](crate::Sender)'s server was dropped: nothing will carry
    /// out its commands.
    #[error("the server this Sender belongs to is gone")]
    ServerGone,
    /// A [`Sender`](crate::Sender) has this many bytes of commands waiting
    /// for a poll loop that has not taken them; the command was not queued.
    #[error("{queued} bytes of commands wait for the poll loop (limit {limit}); not queued")]
    SenderQueueFull {
        /// Bytes queued.
        queued: usize,
        /// The bound ([`MAX_SENDER_QUEUE`](crate::server::MAX_SENDER_QUEUE)).
        limit: usize,
    },
    /// An I/O error of the poll loop itself (not of a single connection, whose
    /// errors only close that connection).
    #[error("poll loop I/O error: {0}")]
    Io(#[from] io::Error),
}

/// An error status returned by a handler, sent to the client as a plain-text
/// response with that status.
///
/// `?` on a `std::io::Error` inside a handler gives 404 for `NotFound`, 403 for
/// `PermissionDenied` and 500 otherwise (the I/O detail is logged, not sent).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct HttpError {
    /// The response status.
    pub status: StatusCode,
    /// The response body (plain text); keep it free of secrets.
    pub message: String,
    /// Extra header fields for the error response (`Allow`, `WWW-Authenticate`…).
    pub headers: crate::headers::Headers,
}

impl HttpError {
    /// An error with the given status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            message: message.into(),
            headers: crate::headers::Headers::new(),
        }
    }

    /// Adds a header field to the error response.
    pub fn with_header(mut self, name: &str, value: &str) -> HttpError {
        if crate::headers::is_valid_name(name) && crate::headers::is_valid_value(value) {
            self.headers.add(name, value);
        }
        self
    }

    /// `400 Bad Request` with a message.
    pub fn bad_request(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::BAD_REQUEST, message)
    }

    /// `404 Not Found`.
    pub fn not_found() -> HttpError {
        HttpError::new(StatusCode::NOT_FOUND, "Not Found")
    }

    /// `403 Forbidden`.
    pub fn forbidden() -> HttpError {
        HttpError::new(StatusCode::FORBIDDEN, "Forbidden")
    }

    /// `500 Internal Server Error` with a message.
    pub fn internal(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> HttpError {
        match e.kind() {
            io::ErrorKind::NotFound => HttpError::not_found(),
            io::ErrorKind::PermissionDenied => HttpError::forbidden(),
            _ => {
                log::error!("handler I/O error: {e}");
                HttpError::internal("Internal Server Error")
            }
        }
    }
}
