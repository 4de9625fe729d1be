//! pollserve fan-out server for the benchmarks, written the way a pollserve
//! dashboard is: the program keeps its subscribers' ids in a `Vec` and, when
//! the publisher's message arrives, hands it to `Server::broadcast_binary`
//! (WebSocket subscribers) or `Server::broadcast_event` (event streams).
//!
//! `pollserve_fanout PORT`, on 127.0.0.1:
//! - `GET /sub`: a WebSocket subscriber; it receives every binary message
//!   the publisher sends, as a binary message.
//! - `GET /events`: an event stream; it receives every text message the
//!   publisher sends as one event, `data: TEXT`.
//! - `GET /pub`: the publisher's WebSocket: a binary message goes to every
//!   WebSocket subscriber, a text message to every event stream.
//! - `GET /stats`: a WebSocket answered, for each message it sends, with
//!   one text message of `Server::stats()` (`connections=… input_buffered=…
//!   output_queued=… output_buffered=…`): how the memory row of
//!   `loadgen fanout-memory` shows that the broadcast sits in the server's
//!   queues.
use pollserve::sse::{SseEvent, SseId};
use pollserve::ws::{Message, WsId};
use pollserve::{Method, Server, ServerConfig};
use std::fmt::Write as _;
use std::time::Duration;

/// What the handlers record: the ids the loop acts on.
#[derive(Default)]
struct App {
    subs: Vec<WsId>,
    streams: Vec<SseId>,
    publishers: Vec<WsId>,
    stats: Vec<WsId>,
}

fn main() -> Result<(), pollserve::Error> {
    let (port, mt) = pollserve_bench::port_and_mode("pollserve_fanout PORT");
    if mt {
        eprintln!("pollserve_fanout has one poll loop: no st|mt mode");
        std::process::exit(2);
    }
    let mut server = Server::<App>::with_config(ServerConfig::default().max_connections(30_000));
    server.route("/sub", Method::GET, |req, app: &mut App| {
        let (response, id) = req.accept_websocket()?;
        app.subs.push(id);
        Ok(response)
    })?;
    server.route("/events", Method::GET, |req, app: &mut App| {
        let (response, id) = req.accept_sse()?;
        app.streams.push(id);
        Ok(response)
    })?;
    server.route("/pub", Method::GET, |req, app: &mut App| {
        let (response, id) = req.accept_websocket()?;
        app.publishers.push(id);
        Ok(response)
    })?;
    server.route("/stats", Method::GET, |req, app: &mut App| {
        let (response, id) = req.accept_websocket()?;
        app.stats.push(id);
        Ok(response)
    })?;
    server.start("127.0.0.1", port)?;

    let mut app = App::default();
    let mut ready: Vec<WsId> = Vec::new();
    let mut slot = Message::Binary(Vec::new());
    let mut line = String::new();
    loop {
        server.poll(&mut app, Duration::from_millis(100))?;
        ready.clear();
        ready.extend_from_slice(server.ws_ready());
        let mut ended = false;
        for &id in &ready {
            if app.publishers.contains(&id) {
                while server.ws(id).receive_into(&mut slot) {
                    // A send that fails (a subscriber gone) is skipped by
                    // the broadcast; fewer accepted than listed means some
                    // ids are stale.
                    let (sent, listed) = match &slot {
                        Message::Binary(data) => {
                            (server.broadcast_binary(&app.subs, data), app.subs.len())
                        }
                        Message::Text(text) => (
                            server.broadcast_event(&app.streams, &SseEvent::new(text)),
                            app.streams.len(),
                        ),
                    };
                    ended |= sent < listed;
                }
            } else if app.stats.contains(&id) {
                while server.ws(id).receive_into(&mut slot) {
                    let s = server.stats();
                    line.clear();
                    let _ = write!(
                        line,
                        "connections={} input_buffered={} output_queued={} output_buffered={}",
                        s.connections, s.input_buffered, s.output_queued, s.output_buffered
                    );
                    let _ = server.ws(id).send_text(&line);
                }
            } else {
                // A subscriber sends nothing but its close.
                while server.ws(id).receive_into(&mut slot) {}
            }
            ended |= server.ws(id).is_closed();
        }
        if ended {
            app.subs.retain(|&id| !server.ws(id).is_closed());
            app.streams.retain(|&id| !server.sse(id).is_closed());
            app.publishers.retain(|&id| !server.ws(id).is_closed());
            app.stats.retain(|&id| !server.ws(id).is_closed());
        }
    }
}
