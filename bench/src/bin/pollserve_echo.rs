//! pollserve WebSocket echo server for the benchmarks: the seed-style loop of
//! `examples/websocket.rs` (poll, then receive/send per kept id).
//!
//! `pollserve_echo PORT` — serves `ws://127.0.0.1:PORT/ws`.
use pollserve::ws::{Message, WsId};
use pollserve::{Method, Server, ServerConfig};
use std::time::Duration;

#[derive(Default)]
struct App {
    sockets: Vec<WsId>,
}

fn main() -> Result<(), pollserve::Error> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: pollserve_echo PORT");
    let mut server = Server::<App>::with_config(ServerConfig::default().max_connections(30_000));
    server.route("/ws", Method::GET, |req, app: &mut App| {
        let (response, ws) = req.accept_websocket()?;
        app.sockets.push(ws);
        Ok(response)
    })?;
    server.start("127.0.0.1", port)?;
    let mut app = App::default();
    loop {
        server.poll(&mut app, Duration::from_millis(100))?;
        for &id in &app.sockets {
            while let Some(message) = server.ws(id).receive() {
                match message {
                    Message::Text(text) => server.ws(id).send_text_quiet(&text),
                    Message::Binary(data) => server.ws(id).send_binary_quiet(&data),
                };
            }
        }
        app.sockets.retain(|&id| !server.ws(id).is_closed());
    }
}
