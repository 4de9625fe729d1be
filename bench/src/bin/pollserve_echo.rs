//! pollserve WebSocket echo server for the benchmarks: the seed-style loop
//! (poll, then receive/send), visiting only the sockets that received
//! something (`Server::ws_ready`) instead of every id kept, and receiving
//! into one reused message (`receive_into`) so no message is allocated.
//!
//! `pollserve_echo PORT [--tls CERT KEY]` — serves `ws://127.0.0.1:PORT/ws`,
//! or with `--tls` (PEM certificate chain and key) `wss://127.0.0.1:PORT/ws`.
use pollserve::ws::{Message, WsId};
use pollserve::{tls::TlsConfig, Method, Server, ServerConfig};
use std::time::Duration;

fn main() -> Result<(), pollserve::Error> {
    let args = pollserve_bench::peer_args("pollserve_echo PORT [--tls CERT KEY]");
    if args.mt {
        eprintln!("pollserve_echo has one poll loop: no st|mt mode");
        std::process::exit(2);
    }
    let mut server = Server::<()>::with_config(ServerConfig::default().max_connections(30_000));
    server.route("/ws", Method::GET, |req, _| Ok(req.accept_websocket()?.0))?;
    match args.tls {
        None => server.start("127.0.0.1", args.port)?,
        Some((cert, key)) => server.start_tls(
            "127.0.0.1",
            args.port,
            TlsConfig::from_pem_files(cert, key)?,
        )?,
    };
    let mut ready: Vec<WsId> = Vec::new();
    let mut slot = Message::Binary(Vec::new());
    loop {
        server.poll(&mut (), Duration::from_millis(100))?;
        ready.clear();
        ready.extend_from_slice(server.ws_ready());
        for &id in &ready {
            while server.ws(id).receive_into(&mut slot) {
                let _ = server.ws(id).send(&slot);
            }
        }
    }
}
