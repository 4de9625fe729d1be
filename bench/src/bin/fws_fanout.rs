//! fastwebsockets fan-out peer (hyper 1 upgrade): every binary message the
//! publisher sends on `/pub` goes to every WebSocket subscriber of `/sub`.
//!
//! `fws_fanout PORT [st|mt]` — `st` (default) is a current-thread runtime.
//!
//! The broadcast is a `tokio::sync::broadcast` channel of `Bytes`, the tool
//! tokio offers for "every message to every consumer": the publisher's task
//! sends each message once, whatever the number of subscribers, and each
//! subscriber's task clones a reference (no copy) and writes it with
//! `write_frame` (a vectored write of head and payload above 1 KiB; smaller
//! frames are copied into fastwebsockets' write buffer first). Per-connection
//! mpsc channels would make the publisher walk a locked registry of senders
//! per message instead. A subscriber subscribes before its `101` goes out,
//! so it misses no message sent after the client sees the handshake.
use fastwebsockets::{upgrade, FragmentCollector, Frame, OpCode, Payload, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::broadcast;

type Feed = broadcast::Sender<Bytes>;

/// A subscriber: writes every message of the channel; reads only to see
/// the client's close (subscribers send nothing else).
async fn subscriber(
    fut: upgrade::UpgradeFut,
    mut rx: broadcast::Receiver<Bytes>,
) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    loop {
        // What happened, taken out of `select!` so the socket is free to
        // write again (the read future borrows it).
        let message = tokio::select! {
            m = rx.recv() => match m {
                Ok(data) => data,
                // Lagged (the client fell a channel's length behind) or closed.
                Err(_) => break,
            },
            frame = ws.read_frame() => match frame {
                Ok(f) if f.opcode != OpCode::Close => continue,
                _ => break,
            },
        };
        ws.write_frame(Frame::binary(Payload::Borrowed(&message)))
            .await?;
    }
    Ok(())
}

/// The publisher: every binary message into the channel.
async fn publisher(fut: upgrade::UpgradeFut, feed: Feed) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Binary => {
                // Frozen without a copy when fastwebsockets read it into
                // its own buffer; one copy per published message otherwise.
                let data = match frame.payload {
                    Payload::Bytes(b) => b.freeze(),
                    other => Bytes::copy_from_slice(&other),
                };
                // No subscriber: nothing to deliver, not an error.
                let _ = feed.send(data);
            }
            _ => {}
        }
    }
    Ok(())
}

async fn route(
    mut req: Request<Incoming>,
    feed: Feed,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let path = req.uri().path().to_owned();
    if path != "/sub" && path != "/pub" {
        let mut not_found = Response::new(Empty::new());
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        return Ok(not_found);
    }
    let (response, fut) = upgrade::upgrade(&mut req)?;
    if path == "/sub" {
        let rx = feed.subscribe();
        tokio::spawn(async move {
            let _ = subscriber(fut, rx).await;
        });
    } else {
        tokio::spawn(async move {
            let _ = publisher(fut, feed).await;
        });
    }
    Ok(response)
}

fn main() {
    let (port, mt) = pollserve_bench::port_and_mode("fws_fanout PORT [st|mt]");
    let (feed, _) = broadcast::channel::<Bytes>(pollserve_bench::FANOUT_CHANNEL);
    pollserve_bench::serve_tcp(port, mt, move |stream| {
        let feed = feed.clone();
        async move {
            let _ = http1::Builder::new()
                .serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |req| route(req, feed.clone())),
                )
                .with_upgrades()
                .await;
        }
    });
}
