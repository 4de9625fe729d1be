//! pollserve: an HTTP/1.1 + WebSocket + Server-Sent-Events server that runs inside
//! your program's own main loop.
#![warn(missing_docs)]

pub mod error;
pub mod escape;
pub mod files;
pub mod headers;
pub mod method;
pub mod mime;
pub mod proto;
pub mod request;
pub mod response;
pub mod router;
pub mod server;
pub mod status;
pub mod url;
pub mod ws;

pub use error::{Error, HttpError};
pub use escape::html_escape;
pub use headers::Headers;
pub use method::Method;
pub use proto::http::Version;
pub use request::{ConnId, Request, RouteParams};
pub use response::Response;
pub use router::RouteError;
pub use server::{Activity, Handler, Route, Server, ServerConfig};
pub use status::StatusCode;
