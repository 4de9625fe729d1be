//! WebSocket echo and broadcast, `adafruit_httpserver`'s WebSocket example in pollserve's shape.
//!
//! `cargo run --example websocket [PORT]`, then connect to `ws://127.0.0.1:5000/ws`.
//! Every text or binary message is echoed back unchanged.
use pollserve::ws::{Message, WsId};
use pollserve::{Method, Server};
use std::time::Duration;

#[derive(Default)]
struct App {
    sockets: Vec<WsId>,
}

fn main() -> Result<(), pollserve::Error> {
    let mut server = Server::<App>::new();
    server.route("/ws", Method::GET, |req, app: &mut App| {
        let (response, ws) = req.accept_websocket()?;
        app.sockets.push(ws);
        Ok(response)
    })?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
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
