//! The smallest pollserve program: one route, the poll loop.
//!
//! `cargo run --example hello` then open <http://127.0.0.1:5000/>.
use pollserve::{Method, Response, Server};
use std::time::Duration;

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<()>::new();
    server.route("/", Method::GET, |_req, _state| {
        Ok(Response::text("Hello from pollserve!\n"))
    })?;
    server.route("/echo", [Method::POST, Method::PUT], |req, _| {
        Ok(Response::bytes(
            "application/octet-stream",
            req.body().to_vec(),
        ))
    })?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    loop {
        // Anything else the program does goes here, between polls.
        server.poll(&mut (), Duration::from_millis(100))?;
    }
}
