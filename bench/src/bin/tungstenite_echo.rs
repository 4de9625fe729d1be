//! tokio-tungstenite echo peer.
//!
//! `tungstenite_echo PORT [st|mt]` — `st` (default) is a current-thread runtime.
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;

async fn handle(stream: TcpStream) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        if msg.is_text() || msg.is_binary() {
            ws.send(msg).await?;
        } else if msg.is_close() {
            break;
        }
    }
    Ok(())
}

fn main() {
    let (port, mt) = pollserve_bench::port_and_mode("tungstenite_echo PORT [st|mt]");
    pollserve_bench::serve_tcp(port, mt, |stream| async move {
        let _ = handle(stream).await;
    });
}
