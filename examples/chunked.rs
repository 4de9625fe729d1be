//! A chunked response (`Transfer-Encoding: chunked`) — `adafruit_httpserver`'s
//! `httpserver_chunked.py` (`ChunkedResponse`).
//!
//! `Response::chunked` takes any iterator; each item becomes one chunk,
//! pulled only when the connection can take more, so a lazy generator never
//! builds the whole body in memory. `/chunked` sends the Python example's
//! five pieces; `/count` (added) generates a thousand lines on demand.
//!
//! `cargo run --example chunked [PORT]`, then
//! `curl --raw http://127.0.0.1:5000/chunked` or `/count`.
use pollserve::{Method, Response, Server};

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<()>::new();
    server.route("/chunked", Method::GET, |_req, _| {
        // Items may be anything that converts into bytes: &str, String, Vec<u8>.
        let parts: [&[u8]; 5] = [b"Adaf", b"ruit", b" Indus", b"tr", b"ies"];
        Ok(Response::chunked("text/plain; charset=utf-8", parts))
    })?;
    server.route("/count", Method::GET, |_req, _| {
        // Generated on demand, one line per chunk.
        let lines = (1..=1000).map(|i| format!("line {i}\n"));
        Ok(Response::chunked("text/plain; charset=utf-8", lines))
    })?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    server.serve_forever(&mut ())
}
