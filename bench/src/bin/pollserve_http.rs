//! pollserve HTTP server for the benchmarks: `GET /` answers the hello text,
//! `GET /ws` accepts a WebSocket and keeps it open without reading from it
//! (the idle WebSockets of the hostile-connections row), anything else is
//! served from the static directory.
//!
//! `pollserve_http PORT DIR [LOOPS] [--tls CERT KEY]` — LOOPS poll loops
//! (default 1), each on its own thread, share the port through
//! `SO_REUSEPORT` (`ServerConfig::reuse_port`), the documented way to use
//! several cores. With `--tls` (PEM certificate chain and key) the port
//! speaks HTTPS.
use pollserve::{tls::TlsConfig, Method, Response, Server, ServerConfig};
use std::time::Duration;

fn serve(port: u16, dir: &str, tls: Option<TlsConfig>) -> Result<(), pollserve::Error> {
    let config = ServerConfig::default()
        .max_connections(30_000)
        .reuse_port(true);
    let mut server = Server::<()>::with_config(config);
    server.route("/", Method::GET, |_req, _| {
        Ok(Response::text(pollserve_bench::HELLO))
    })?;
    server.route("/ws", Method::GET, |req, _| Ok(req.accept_websocket()?.0))?;
    server.serve_files(dir)?;
    match tls {
        None => server.start("127.0.0.1", port)?,
        Some(tls) => server.start_tls("127.0.0.1", port, tls)?,
    };
    loop {
        server.poll(&mut (), Duration::from_millis(100))?;
    }
}

fn main() -> Result<(), pollserve::Error> {
    let usage = "usage: pollserve_http PORT DIR [LOOPS] [--tls CERT KEY]";
    let mut args = std::env::args().skip(1).peekable();
    let port: u16 = args.next().and_then(|p| p.parse().ok()).expect(usage);
    let dir = args.next().expect(usage);
    let loops: usize = args
        .next_if(|a| a != "--tls")
        .map(|n| n.parse().expect(usage))
        .unwrap_or(1);
    let tls = match args.next().as_deref() {
        None => None,
        Some("--tls") => {
            let (cert, key) = (args.next().expect(usage), args.next().expect(usage));
            Some(TlsConfig::from_pem_files(cert, key)?)
        }
        Some(_) => panic!("{usage}"),
    };
    let others: Vec<_> = (1..loops)
        .map(|_| {
            let (dir, tls) = (dir.clone(), tls.clone());
            std::thread::spawn(move || serve(port, &dir, tls))
        })
        .collect();
    let result = serve(port, &dir, tls);
    drop(others);
    result
}
