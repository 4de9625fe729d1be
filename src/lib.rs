//! pollserve: an HTTP/1.1 + WebSocket + Server-Sent-Events server that runs inside
//! your program's own main loop.
#![warn(missing_docs)]

pub mod method;

pub use method::Method;
