//! pollserve WebSocket echo server for the benchmarks: the seed-style loop
//! (poll, then receive/send), visiting only the sockets that received
//! something (`Server::ws_ready`) instead of every id kept, and receiving
//! into one reused message (`receive_into`) so no message is allocated.
//!
//! `pollserve_echo PORT` — serves `ws://127.0.0.1:PORT/ws`.
use pollserve::ws::{Message, WsId};
use pollserve::{Method, Server, ServerConfig};
use std::time::Duration;

fn main() -> Result<(), pollserve::Error> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: pollserve_echo PORT");
    let mut server = Server::<()>::with_config(ServerConfig::default().max_connections(30_000));
    server.route("/ws", Method::GET, |req, _| Ok(req.accept_websocket()?.0))?;
    server.start("127.0.0.1", port)?;
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
