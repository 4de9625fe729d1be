//! hyper 1 event-stream fan-out peer: every text message the publisher
//! sends on the WebSocket `/pub` goes to every event stream of `GET
//! /events` as one event, `data: TEXT`.
//!
//! `hyper_sse PORT [st|mt]` — `st` (default) is a current-thread runtime.
//!
//! Each event stream is a response body (`StreamBody`, chunked by hyper)
//! fed by a `tokio::sync::broadcast` channel of `Bytes`. The publisher's
//! task encodes each event once (`data: …\n\n`) and sends it once; every
//! stream yields a reference to those bytes, so no event is encoded or
//! copied per subscriber before hyper writes it. The stream subscribes
//! before its response head is sent, so it misses no event sent after the
//! client sees the head. The publisher speaks WebSocket through
//! fastwebsockets (on the same hyper upgrade as `fws_fanout`), the
//! publishing mechanism every fan-out server of the benchmark shares.
use std::convert::Infallible;

use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::broadcast;

type Feed = broadcast::Sender<Bytes>;
type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The publisher: every text message, encoded once as an event, into the channel.
async fn publisher(fut: upgrade::UpgradeFut, feed: Feed) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text => {
                // The one copy of the event: its encoding.
                let mut event = Vec::with_capacity(frame.payload.len() + 8);
                event.extend_from_slice(b"data: ");
                event.extend_from_slice(&frame.payload);
                event.extend_from_slice(b"\n\n");
                // No stream open: nothing to deliver, not an error.
                let _ = feed.send(Bytes::from(event));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The body of one event stream: the channel's events, until the stream
/// falls a channel's length behind (then the response ends, and the
/// client sees a cut stream) or the channel closes.
fn event_stream(rx: broadcast::Receiver<Bytes>) -> Body {
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await.ok()?;
        Some((Ok::<_, Infallible>(Frame::data(event)), rx))
    });
    BodyExt::boxed_unsync(StreamBody::new(events))
}

async fn route(mut req: Request<Incoming>, feed: Feed) -> Result<Response<Body>, WebSocketError> {
    match req.uri().path() {
        "/events" => {
            let rx = feed.subscribe();
            Ok(Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(event_stream(rx))
                .expect("response"))
        }
        "/pub" => {
            let (response, fut) = upgrade::upgrade(&mut req)?;
            tokio::spawn(async move {
                let _ = publisher(fut, feed).await;
            });
            Ok(response.map(|b| b.boxed_unsync()))
        }
        _ => {
            let mut not_found = Response::new(Empty::new().boxed_unsync());
            *not_found.status_mut() = StatusCode::NOT_FOUND;
            Ok(not_found)
        }
    }
}

fn main() {
    let (port, mt) = pollserve_bench::port_and_mode("hyper_sse PORT [st|mt]");
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
