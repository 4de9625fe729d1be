//! pollserve: an HTTP/1.1 + WebSocket + Server-Sent-Events server that runs inside
//! your program's own main loop.
#![warn(missing_docs)]

pub mod headers;
pub mod method;
pub mod proto;
pub mod status;

pub use headers::Headers;
pub use method::Method;
pub use status::StatusCode;
