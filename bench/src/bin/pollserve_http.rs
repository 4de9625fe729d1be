//! pollserve HTTP server for the benchmarks: `GET /` answers the hello text,
//! anything else is served from the static directory.
//!
//! `pollserve_http PORT DIR`
use pollserve::{Method, Response, Server, ServerConfig};
use std::time::Duration;

fn main() -> Result<(), pollserve::Error> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .expect("usage: pollserve_http PORT DIR");
    let dir = args.next().expect("usage: pollserve_http PORT DIR");
    let mut server = Server::<()>::with_config(ServerConfig::default().max_connections(30_000));
    server.route("/", Method::GET, |_req, _| {
        Ok(Response::text(pollserve_bench::HELLO))
    })?;
    server.serve_files(&dir)?;
    server.start("127.0.0.1", port)?;
    loop {
        server.poll(&mut (), Duration::from_millis(100))?;
    }
}
