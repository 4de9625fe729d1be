//! Handlers reaching other connections through `Request::outbox`: closing
//! the previous WebSocket client when a new one connects
//! (`adafruit_httpserver`'s WebSocket example), broadcasting to WebSockets
//! and event streams from a plain HTTP handler, and events that cannot be
//! encoded refused at the call.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use common::ws::{frame, open, read_frame};
use common::*;
use pollserve::sse::{SseEvent, SseId};
use pollserve::ws::{CloseCode, WsId};
use pollserve::{Method, Response, ServerConfig};

#[derive(Default)]
struct App {
    /// The one WebSocket client, replaced by each new one.
    client: Option<WsId>,
    /// Clients the handler replaced.
    replaced: Vec<WsId>,
    sockets: Vec<WsId>,
    streams: Vec<SseId>,
    /// What `send_event` said about an event with a line break in its id.
    bad_event_refused: Option<bool>,
}

fn app_server() -> TestServer<App> {
    serve_loop(ServerConfig::default(), App::default(), idle, |server| {
        server
            .route("/single", Method::GET, |req, app: &mut App| {
                let (response, ws) = req.accept_websocket()?;
                if let Some(old) = app.client.replace(ws) {
                    app.replaced.push(old);
                    req.outbox()
                        .close(old, CloseCode::NORMAL, "replaced by a new client");
                }
                req.outbox().send_text(ws, "welcome");
                Ok(response)
            })
            .unwrap()
            .route("/ws", Method::GET, |req, app: &mut App| {
                let (response, ws) = req.accept_websocket()?;
                app.sockets.push(ws);
                Ok(response)
            })
            .unwrap()
            .route("/events", Method::GET, |req, app: &mut App| {
                let (response, id) = req.accept_sse()?;
                app.streams.push(id);
                Ok(response)
            })
            .unwrap()
            .route("/say", Method::POST, |req, app: &mut App| {
                let text = req.text()?;
                req.outbox().broadcast_text(&app.sockets, text);
                req.outbox()
                    .broadcast_event(&app.streams, &SseEvent::new(text).event("say"))
                    .expect("a valid event");
                let bad = SseEvent::new("x").id("line\nbreak");
                app.bad_event_refused = Some(
                    req.outbox()
                        .send_event(app.streams.first().copied().unwrap(), &bad)
                        .is_err(),
                );
                Ok(Response::text(format!(
                    "{} sockets, {} streams",
                    app.sockets.len(),
                    app.streams.len()
                )))
            })
            .unwrap()
            .route("/end", Method::POST, |req, app: &mut App| {
                for &id in &app.streams {
                    req.outbox().end_stream(id);
                }
                for &id in &app.sockets {
                    req.outbox().close(id, CloseCode::GOING_AWAY, "bye");
                }
                Ok(Response::text("ended"))
            })
            .unwrap();
    })
}

#[test]
fn a_new_client_closes_the_previous_one_from_inside_the_handler() {
    let server = app_server();
    let mut first = open(server.addr, "/single");
    let (_, op, payload) = read_frame(&mut first);
    assert_eq!((op, payload.as_slice()), (1, &b"welcome"[..]));

    let mut second = open(server.addr, "/single");
    // The old client is told why, with the code the handler chose...
    let (_, op, payload) = read_frame(&mut first);
    assert_eq!(op, 8, "a close frame");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1000);
    assert_eq!(&payload[2..], b"replaced by a new client");
    first.write_all(&frame(true, 8, &payload[..2])).unwrap();
    let mut rest = Vec::new();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    first.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the close: {rest:?}");
    // ... and the new one was greeted by the same handler call.
    let (_, op, payload) = read_frame(&mut second);
    assert_eq!((op, payload.as_slice()), (1, &b"welcome"[..]));
    // The server knows the first one is gone and the second one open.
    let (old_closed, new_open) = server.on_server(|server, app| {
        let old = app.replaced[0];
        let current = app.client.unwrap();
        (server.ws(old).is_closed(), !server.ws(current).is_closed())
    });
    assert!(old_closed && new_open);
}

#[test]
fn an_http_handler_broadcasts_to_websockets_and_event_streams() {
    let server = app_server();
    let mut sockets: Vec<_> = (0..3).map(|_| open(server.addr, "/ws")).collect();
    let mut stream = connect(server.addr);
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut events = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        events.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    // All four registered before the POST (each accept ran in a handler
    // that finished before its 101 or stream head was read above).
    let r = request(
        server.addr,
        "POST /say HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "3 sockets, 1 streams");
    for s in &mut sockets {
        let (fin, op, payload) = read_frame(s);
        assert!(fin);
        assert_eq!((op, payload.as_slice()), (1, &b"hello"[..]));
    }
    let mut got = String::new();
    for _ in 0..3 {
        events.read_line(&mut got).unwrap();
    }
    assert_eq!(got, "event: say\ndata: hello\n\n");
    assert_eq!(
        server.on_server(|_, app| app.bad_event_refused),
        Some(true),
        "an event with a line break in its id is refused when queued"
    );

    // Ending everything from a handler: the stream ends (EOF after what was
    // sent), each WebSocket gets 1001.
    let r = request(
        server.addr,
        "POST /end HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.text(), "ended");
    let mut rest = String::new();
    events.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "the refused event was never sent");
    for s in &mut sockets {
        assert_eq!(common::ws::expect_close(s), 1001);
    }
}

#[test]
fn a_sender_queue_is_bounded_and_a_dropped_server_refuses_it() {
    use pollserve::server::MAX_SENDER_QUEUE;
    use pollserve::ws::Message;
    use pollserve::{Error, Server};
    let mut server = Server::<()>::new();
    server.start("127.0.0.1", 0).unwrap();
    let sender = server.sender().unwrap();
    let group = server.new_group();
    // Nobody polls: 1 MiB messages queue up to the bound, then are refused.
    let mib = "x".repeat(1 << 20);
    let mut queued = 0;
    let refused = loop {
        match sender.group_send(group, Message::Text(mib.clone())) {
            Ok(()) => queued += 1,
            Err(e) => break e,
        }
        assert!(
            queued <= MAX_SENDER_QUEUE >> 20,
            "queued {queued} MiB past the bound"
        );
    };
    assert!(
        matches!(refused, Error::SenderQueueFull { limit, .. } if limit == MAX_SENDER_QUEUE),
        "{refused}"
    );
    assert!(
        queued >= (MAX_SENDER_QUEUE >> 20) - 1,
        "only {queued} MiB queued"
    );
    // A poll takes the queue: room again.
    server.poll(&mut (), Duration::from_millis(10)).unwrap();
    sender
        .group_send(group, Message::Text(mib.clone()))
        .unwrap();
    // Once the server is gone, every call says so.
    drop(server);
    let gone = sender.group_send(group, Message::Text("late".into()));
    assert!(matches!(gone, Err(Error::ServerGone)), "{gone:?}");
    let other = sender.clone();
    let gone = other.group_send(group, Message::Binary(vec![1]));
    assert!(matches!(gone, Err(Error::ServerGone)), "{gone:?}");
}
