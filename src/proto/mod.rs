//! Sans-IO protocol layer: pure state machines over byte slices.
//!
//! Nothing here touches a socket, a thread or a clock; the driver in
//! [`server`](crate::server) feeds bytes in and writes the bytes that come out.
//! This is the layer the fuzz targets and the byte-level tests exercise.

pub mod deflate;
pub mod extensions;
pub mod http;
pub mod sse;
pub mod ws;
