//! pollserve HTTP server for the benchmarks: `GET /` answers the hello text,
//! `GET /ws` accepts a WebSocket and keeps it open without reading from it
//! (the idle WebSockets of the hostile-connections row), anything else is
//! served from the static directory.
//!
//! `pollserve_http PORT DIR [LOOPS]` — LOOPS poll loops (default 1), each on
//! its own thread, share the port through `SO_REUSEPORT`
//! (`ServerConfig::reuse_port`), the documented way to use several cores.
use pollserve::{Method, Response, Server, ServerConfig};
use std::time::Duration;

fn serve(port: u16, dir: &str) -> Result<(), pollserve::Error> {
    let config = ServerConfig::default()
        .max_connections(30_000)
        .reuse_port(true);
    let mut server = Server::<()>::with_config(config);
    server.route("/", Method::GET, |_req, _| {
        Ok(Response::text(pollserve_bench::HELLO))
    })?;
    server.route("/ws", Method::GET, |req, _| Ok(req.accept_websocket()?.0))?;
    server.serve_files(dir)?;
    server.start("127.0.0.1", port)?;
    loop {
        server.poll(&mut (), Duration::from_millis(100))?;
    }
}

fn main() -> Result<(), pollserve::Error> {
    let usage = "usage: pollserve_http PORT DIR [LOOPS]";
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).expect(usage);
    let dir = args.next().expect(usage);
    let loops: usize = args.next().map(|n| n.parse().expect(usage)).unwrap_or(1);
    let others: Vec<_> = (1..loops)
        .map(|_| {
            let dir = dir.clone();
            std::thread::spawn(move || serve(port, &dir))
        })
        .collect();
    let result = serve(port, &dir);
    drop(others);
    result
}
