//! tokio-tungstenite echo peer, over TCP or (`--tls`) behind `tokio-rustls`
//! with pollserve's own rustls configuration (`ring` provider).
//!
//! `tungstenite_echo PORT [st|mt] [--tls CERT KEY]` — `st` (default) is a
//! current-thread runtime.
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};

async fn handle<S>(stream: S) -> Result<(), tokio_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
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
    let args = pollserve_bench::peer_args("tungstenite_echo PORT [st|mt] [--tls CERT KEY]");
    match args.tls {
        None => pollserve_bench::serve_tcp(args.port, args.mt, |stream| async move {
            let _ = handle(stream).await;
        }),
        Some((cert, key)) => {
            let config = pollserve_bench::rustls_server_config(&cert, &key);
            pollserve_bench::serve_tls(args.port, args.mt, config, |stream| async move {
                let _ = handle(stream).await;
            })
        }
    }
}
