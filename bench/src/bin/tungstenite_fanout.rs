//! tokio-tungstenite fan-out peer: every binary message the publisher sends
//! on `/pub` goes to every WebSocket subscriber of `/sub`.
//!
//! `tungstenite_fanout PORT [st|mt]` — `st` (default) is a current-thread runtime.
//!
//! The broadcast is a `tokio::sync::broadcast` channel of `Bytes` (see
//! `fws_fanout` for why rather than an mpsc channel per connection, the
//! pattern of tokio-tungstenite's chat example): one send per message, and
//! each subscriber's task hands its reference to `Message::Binary` (no
//! copy until tungstenite frames it into its write buffer). Each subscriber
//! splits its stream, as tokio-tungstenite's examples do, to see the
//! client's close while it waits for messages. Every connection subscribes
//! as it is accepted, before its handshake, so a subscriber misses no
//! message sent after its client sees the `101` (the publisher drops its
//! receiver).
use futures_util::{SinkExt, StreamExt};
use hyper::body::Bytes;
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Feed = broadcast::Sender<Bytes>;

async fn subscriber(ws: WebSocketStream<TcpStream>, mut rx: broadcast::Receiver<Bytes>) {
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Ok(data) => {
                    if sink.send(Message::Binary(data)).await.is_err() {
                        break;
                    }
                }
                // Lagged (the client fell a channel's length behind) or closed.
                Err(_) => break,
            },
            m = stream.next() => match m {
                Some(Ok(m)) if !m.is_close() => {}
                _ => break,
            },
        }
    }
}

async fn publisher(mut ws: WebSocketStream<TcpStream>, feed: Feed) {
    while let Some(Ok(message)) = ws.next().await {
        match message {
            // No subscriber: nothing to deliver, not an error.
            Message::Binary(data) => {
                let _ = feed.send(data);
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
}

// The handshake callback's error type is tungstenite's `ErrorResponse`.
#[allow(clippy::result_large_err)]
async fn serve(stream: TcpStream, feed: Feed) {
    let rx = feed.subscribe();
    let mut path = String::new();
    let callback = |req: &Request, response: Response| {
        path = req.uri().path().to_owned();
        Ok(response)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    match path.as_str() {
        "/sub" => subscriber(ws, rx).await,
        "/pub" => {
            drop(rx);
            publisher(ws, feed).await
        }
        _ => {}
    }
}

fn main() {
    let (port, mt) = pollserve_bench::port_and_mode("tungstenite_fanout PORT [st|mt]");
    let (feed, _) = broadcast::channel::<Bytes>(pollserve_bench::FANOUT_CHANNEL);
    pollserve_bench::serve_tcp(port, mt, move |stream| serve(stream, feed.clone()));
}
