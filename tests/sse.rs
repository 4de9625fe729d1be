//! Server-Sent Events end to end: the stream head, event encoding, comments
//! and heartbeats, `Last-Event-ID` resume, closing from either side,
//! broadcast, the cross-thread sender, and large events on slow or closing
//! streams.
//!
//! One test reads the stream with Python `httpx`, from the interpreter named
//! by `POLLSERVE_TEST_PYTHON` (a venv made by `scripts/setup-python.sh`;
//! `./test.sh` always sets it); without the variable it prints `SKIPPED: …`
//! to stderr and returns, as in `tests/interop.rs`. The raw-socket tests
//! always run.
//!
//! The server runs the program's own loop on its own thread
//! ([`sse_server`], built on `common::serve_loop`): after every `poll` it
//! runs the test's per-tick work and any closures the test thread queued
//! with [`TestServer::on_server`], so tests can push events, close streams
//! and ask `is_closed()` between polls exactly as an application would.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use pollserve::sse::{SseError, SseEvent, SseId, SseOptions, SseSendError};
use pollserve::{Method, Response, Server, ServerConfig};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Server: the program's own loop, with work between polls
// ---------------------------------------------------------------------------

/// Application state of the test servers.
#[derive(Default)]
struct State {
    /// Event streams accepted by `/events`, with the `Last-Event-ID` each
    /// request carried, in order of arrival. Never pruned, so tests can
    /// refer to streams by index.
    streams: Vec<(SseId, Option<String>)>,
    /// How many entries of `streams` the per-tick work has dealt with.
    started: usize,
    /// What `Server::sse_ended` listed after each poll, in order (filled by
    /// [`note_ended`] only).
    ended: Vec<SseId>,
}

/// Per-tick work that records what each poll's `sse_ended` lists.
fn note_ended(server: &mut Server<State>, st: &mut State) {
    st.ended.extend_from_slice(server.sse_ended());
}

impl TestServer<State> {
    /// Waits until `/events` has accepted at least `n` streams; returns their ids.
    fn wait_streams(&self, n: usize) -> Vec<SseId> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ids: Vec<SseId> = self.on_server(|_, st| st.streams.iter().map(|s| s.0).collect());
            if ids.len() >= n {
                return ids;
            }
            assert!(Instant::now() < deadline, "only {} streams", ids.len());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until `server.sse(id).is_closed()` is true.
    fn wait_closed(&self, id: SseId) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.on_server(move |s, _| s.sse(id).is_closed()) {
            assert!(Instant::now() < deadline, "stream never reported closed");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Starts a server: `setup` registers routes (the `/events` routes are added
/// first; see [`events_route`]), `after_poll` runs after every poll.
fn sse_server(
    config: ServerConfig,
    setup: impl FnOnce(&mut Server<State>) + Send + 'static,
    after_poll: impl FnMut(&mut Server<State>, &mut State) + Send + 'static,
) -> TestServer<State> {
    serve_loop(config, State::default(), after_poll, |server| {
        events_route(server, SseOptions::default());
        setup(server);
    })
}

/// `/events`: accepts an event stream with `options` and records its id and
/// `Last-Event-ID`. `/events-hb` is the same with a 200 ms heartbeat, and
/// room for the 8 MiB events some tests send.
fn events_route(server: &mut Server<State>, options: SseOptions) {
    let hb = SseOptions {
        heartbeat: Some(Duration::from_millis(200)),
        max_send_buffer: 16 << 20,
    };
    for (path, options) in [("/events", options), ("/events-hb", hb)] {
        server
            .route(path, Method::GET, move |req, st: &mut State| {
                let last = req.last_event_id().map(str::to_owned);
                let (response, id) = req.accept_sse_with(options.clone())?;
                st.streams.push((id, last));
                Ok(response)
            })
            .unwrap();
    }
}

// ---------------------------------------------------------------------------
// Server-Sent Events with a real client library
// ---------------------------------------------------------------------------

/// What `/events-hb` streams: a fresh client gets three events and then
/// only heartbeats; a client resuming after id `2` gets one more event, then
/// the server ends the stream.
fn scripted_events(server: &mut Server<State>, st: &mut State) {
    while st.started < st.streams.len() {
        let (id, last) = st.streams[st.started].clone();
        st.started += 1;
        let mut sse = server.sse(id);
        match last.as_deref() {
            None => {
                sse.send(
                    &SseEvent::new("line one\nline two\r\nline three")
                        .event("update")
                        .id("0")
                        .retry(1500),
                )
                .unwrap();
                sse.send(&SseEvent::new("plain data, no type")).unwrap();
                sse.send(&SseEvent::new("{\"n\": 2}").event("json").id("2"))
                    .unwrap();
            }
            Some(after) => {
                let resumed = format!("resumed after {after}");
                sse.send(&SseEvent::new(&resumed).event("resume").id("3"))
                    .unwrap();
                sse.close();
            }
        }
    }
}

#[test]
fn sse_consumed_by_httpx_with_heartbeat_and_last_event_id_resume() {
    let Some(py) = python("sse_consumed_by_httpx_with_heartbeat_and_last_event_id_resume") else {
        return;
    };
    let app = sse_server(ServerConfig::default(), |_| {}, scripted_events);
    let v = run_python(
        &py,
        r#"
import httpx, time

def consume(client, headers, stop_after_heartbeat):
    """Reads one stream as the HTML standard's EventSource parser does."""
    events, comments = [], []
    state = {"last_id": headers.get("Last-Event-ID", ""), "retry": None}
    data, etype = [], ""
    t0 = time.monotonic()
    first_event_at = heartbeat_at = None
    ended_by = "eof"
    with client.stream("GET", base + "/events-hb", headers=headers) as r:
        head = {"status": r.status_code,
                "content_type": r.headers.get("content-type"),
                "content_length": r.headers.get("content-length"),
                "cache_control": r.headers.get("cache-control")}
        for line in r.iter_lines():
            if line == "":
                if data:
                    events.append({"type": etype or "message", "data": "\n".join(data),
                                   "last_id": state["last_id"]})
                    first_event_at = first_event_at or time.monotonic()
                data, etype = [], ""
                if stop_after_heartbeat and comments and any(e["type"] == "json" for e in events):
                    ended_by = "client"
                    break
                continue
            if line.startswith(":"):
                comments.append(line)
                heartbeat_at = heartbeat_at or time.monotonic()
                continue
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "data":
                data.append(value)
            elif field == "event":
                etype = value
            elif field == "id" and "\0" not in value:
                state["last_id"] = value
            elif field == "retry" and value.isdigit():
                state["retry"] = int(value)
    gap = None
    if first_event_at and heartbeat_at:
        gap = heartbeat_at - first_event_at
    return {"head": head, "events": events, "comments": comments, "retry": state["retry"],
            "last_id": state["last_id"], "ended_by": ended_by, "heartbeat_gap": gap}

out = {}
with httpx.Client(timeout=T) as client:
    first = consume(client, {}, True)
    out["first"] = first
    out["second"] = consume(client, {"Last-Event-ID": first["last_id"]}, False)
print(json.dumps(out))
"#,
        &app.url(""),
        &[],
    );
    let first = &v["first"];
    assert_eq!(first["head"]["status"], 200, "{first}");
    assert_eq!(first["head"]["content_type"], "text/event-stream");
    assert_eq!(first["head"]["content_length"], Value::Null);
    assert_eq!(first["head"]["cache_control"], "no-cache");
    assert_eq!(
        first["events"],
        json!([
            {"type": "update", "data": "line one\nline two\nline three", "last_id": "0"},
            {"type": "message", "data": "plain data, no type", "last_id": "0"},
            {"type": "json", "data": "{\"n\": 2}", "last_id": "2"},
        ]),
        "{first}"
    );
    assert_eq!(first["retry"], 1500);
    assert_eq!(first["ended_by"], "client");
    let comments = first["comments"].as_array().unwrap();
    assert!(!comments.is_empty(), "{first}");
    assert!(comments
        .iter()
        .all(|c| c.as_str().unwrap().starts_with(':')));
    // The heartbeat came after ~200 ms of silence, not at once and not after 15 s.
    let gap = first["heartbeat_gap"].as_f64().unwrap();
    assert!((0.15..5.0).contains(&gap), "heartbeat after {gap} s");

    let second = &v["second"];
    assert_eq!(second["head"]["status"], 200, "{second}");
    assert_eq!(
        second["events"],
        json!([{"type": "resume", "data": "resumed after 2", "last_id": "3"}]),
        "{second}"
    );
    // The server closed the stream: the client saw EOF.
    assert_eq!(second["ended_by"], "eof");

    let seen: Vec<Option<String>> =
        app.on_server(|_, st| st.streams.iter().map(|s| s.1.clone()).collect());
    assert_eq!(seen, [None, Some("2".to_owned())]);
    // The first stream ended when httpx closed it.
    let ids = app.wait_streams(2);
    app.wait_closed(ids[0]);
    app.wait_closed(ids[1]);
}

// ---------------------------------------------------------------------------
// Server-Sent Events over raw sockets
// ---------------------------------------------------------------------------

/// A raw event-stream client.
struct RawSse {
    s: TcpStream,
    buf: Vec<u8>,
    head: String,
}

impl RawSse {
    fn open(addr: SocketAddr, path: &str, extra: &str) -> RawSse {
        let mut s = connect(addr);
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n{extra}\r\n"
        )
        .unwrap();
        let mut sse = RawSse {
            s,
            buf: Vec::new(),
            head: String::new(),
        };
        let head = sse.read_until(b"\r\n\r\n");
        sse.head = String::from_utf8(head).unwrap();
        sse
    }

    /// Bytes up to and including the first `delim`, reading as needed.
    fn read_until(&mut self, delim: &[u8]) -> Vec<u8> {
        let mut from = 0;
        loop {
            if let Some(i) = self.buf[from..]
                .windows(delim.len())
                .position(|w| w == delim)
            {
                return self.buf.drain(..from + i + delim.len()).collect();
            }
            from = self.buf.len().saturating_sub(delim.len() - 1);
            let mut chunk = [0u8; 65536];
            let n = self.s.read(&mut chunk).expect("read");
            if n == 0 {
                let shown = String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)]);
                panic!(
                    "EOF while waiting for {delim:?}; have {} bytes: {shown:?}…",
                    self.buf.len()
                );
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next event block (ending with the blank line), as text.
    fn next_block(&mut self) -> String {
        String::from_utf8(self.read_until(b"\n\n")).unwrap()
    }

    /// Reads until the server closes; returns what was left.
    fn read_to_eof(&mut self) -> String {
        let rest = read_to_close(&mut self.s);
        self.buf.extend_from_slice(&rest);
        String::from_utf8(std::mem::take(&mut self.buf)).unwrap()
    }

    fn head_field(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

#[test]
fn sse_raw_head_events_and_server_close() {
    let app = sse_server(ServerConfig::default(), |_| {}, idle);
    let mut c = RawSse::open(app.addr, "/events", "Last-Event-ID: 0\r\n");
    assert!(c.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", c.head);
    assert_eq!(c.head_field("content-type"), Some("text/event-stream"));
    assert_eq!(c.head_field("cache-control"), Some("no-cache"));
    assert_eq!(c.head_field("content-length"), None, "{}", c.head);
    assert_eq!(c.head_field("transfer-encoding"), None, "{}", c.head);
    assert_eq!(c.head_field("connection"), Some("close"));
    // Nothing but the head yet.
    assert!(c.buf.is_empty());

    let id = app.wait_streams(1)[0];
    // `id: 0` is a real id: the handler saw it and it is sent back.
    assert_eq!(
        app.on_server(|_, st| st.streams[0].1.clone()),
        Some("0".to_owned())
    );
    app.on_server(move |s, _| {
        s.sse(id)
            .send(&SseEvent::new("a\nb").event("tick").id("0").retry(250))
    })
    .unwrap();
    assert_eq!(
        c.next_block(),
        "event: tick\nid: 0\nretry: 250\ndata: a\ndata: b\n\n"
    );
    app.on_server(move |s, _| s.sse(id).comment("still here"))
        .unwrap();
    assert_eq!(c.next_block(), ": still here\n\n");
    app.on_server(move |s, _| s.sse(id).send_data("")).unwrap();
    assert_eq!(c.next_block(), "data: \n\n");

    // An id with a line break is refused and nothing at all is written.
    let err = app.on_server(move |s, _| {
        let mut sse = s.sse(id);
        let bad = sse.send(&SseEvent::new("injected").id("1\ndata: evil"));
        let bad_type = sse.send(&SseEvent::new("x").event("a\rb"));
        let ok = sse.send(&SseEvent::new("after").id("2"));
        (bad, bad_type, ok, sse.is_closed())
    });
    assert_eq!(err.0, Err(SseSendError::Encode(SseError::LineBreak("id"))));
    assert_eq!(
        err.1,
        Err(SseSendError::Encode(SseError::LineBreak("event type")))
    );
    assert_eq!(err.2, Ok(()));
    assert!(!err.3, "a refused event must not end the stream");
    assert_eq!(c.next_block(), "id: 2\ndata: after\n\n");

    // Closing from the program flushes what was queued, then EOF.
    app.on_server(move |s, _| {
        s.sse(id).send_data("last").unwrap();
        s.sse(id).close();
        s.sse(id).is_closed()
    });
    assert_eq!(c.read_to_eof(), "data: last\n\n");
    app.wait_closed(id);
    assert_eq!(
        app.on_server(move |s, _| s.sse(id).send_data("late")),
        Err(SseSendError::Closed)
    );
}

#[test]
fn sse_client_disconnect_marks_stream_closed() {
    let app = sse_server(ServerConfig::default(), |_| {}, idle);
    let c = RawSse::open(app.addr, "/events", "");
    let id = app.wait_streams(1)[0];
    assert!(!app.on_server(move |s, _| s.sse(id).is_closed()));
    drop(c);
    app.wait_closed(id);
    assert_eq!(
        app.on_server(move |s, _| s.sse(id).send_data("gone")),
        Err(SseSendError::Closed)
    );
    // The server goes on serving new streams.
    let mut c2 = RawSse::open(app.addr, "/events", "");
    let id2 = app.wait_streams(2)[1];
    assert_ne!(id, id2);
    app.on_server(move |s, _| s.sse(id2).send_data("hi"))
        .unwrap();
    assert_eq!(c2.next_block(), "data: hi\n\n");
}

#[test]
fn sse_broadcast_to_several_streams_skips_closed_ones() {
    let app = sse_server(ServerConfig::default(), |_| {}, idle);
    let mut clients: Vec<RawSse> = (0..4)
        .map(|_| RawSse::open(app.addr, "/events", ""))
        .collect();
    let ids = app.wait_streams(4);
    let n = app.on_server(|s, st| {
        let ids: Vec<SseId> = st.streams.iter().map(|x| x.0).collect();
        s.broadcast_event(&ids, &SseEvent::new("to all").event("news").id("10"))
    });
    assert_eq!(n, 4);
    for c in &mut clients {
        assert_eq!(c.next_block(), "event: news\nid: 10\ndata: to all\n\n");
    }
    // One client leaves, the program closes another: two remain.
    drop(clients.remove(0));
    app.wait_closed(ids[0]);
    let closed = ids[1];
    app.on_server(move |s, _| s.sse(closed).close());
    assert_eq!(clients[0].read_to_eof(), "");
    let n = app.on_server(|s, st| {
        let ids: Vec<SseId> = st.streams.iter().map(|x| x.0).collect();
        s.broadcast_event(&ids, &SseEvent::new("second"))
    });
    assert_eq!(n, 2);
    for c in &mut clients[1..] {
        assert_eq!(c.next_block(), "data: second\n\n");
    }
    // An event that cannot be encoded reaches nobody.
    let n = app.on_server(|s, st| {
        let ids: Vec<SseId> = st.streams.iter().map(|x| x.0).collect();
        s.broadcast_event(&ids, &SseEvent::new("x").id("bad\r\nid"))
    });
    assert_eq!(n, 0);
    let n = app.on_server(|s, st| {
        let ids: Vec<SseId> = st.streams.iter().map(|x| x.0).collect();
        s.broadcast_event(&ids, &SseEvent::new("third"))
    });
    assert_eq!(n, 2);
    for c in &mut clients[1..] {
        assert_eq!(c.next_block(), "data: third\n\n");
    }
}

#[test]
fn sse_sender_from_another_thread_reaches_streams() {
    let app = sse_server(ServerConfig::default(), |_| {}, idle);
    let mut a = RawSse::open(app.addr, "/events", "");
    let mut b = RawSse::open(app.addr, "/events", "");
    let ids = app.wait_streams(2);
    let sender = app.on_server(|s, _| s.sender().unwrap());
    let ids2 = ids.clone();
    std::thread::spawn(move || {
        sender
            .send_event(
                &ids2,
                "from a thread\nsecond line",
                Some("remote"),
                Some("0"),
            )
            .unwrap();
        sender.send_event(&ids2[1..], "only b", None, None).unwrap();
        // A whole event, retry included.
        let event = SseEvent::new("with retry").retry(5_000);
        sender.broadcast_event(&ids2[1..], &event).unwrap();
        sender
            .broadcast_event(&ids2, &SseEvent::new("dropped too").id("x\ny"))
            .unwrap();
        // Undeliverable (line break in the id): dropped, nothing sent.
        sender
            .send_event(&ids2, "dropped", None, Some("x\ny"))
            .unwrap();
        sender.send_event(&ids2[..1], "only a", None, None).unwrap();
        sender.end_stream(ids2[0]).unwrap();
    })
    .join()
    .unwrap();
    let both = "event: remote\nid: 0\ndata: from a thread\ndata: second line\n\n";
    assert_eq!(a.next_block(), both);
    assert_eq!(b.next_block(), both);
    assert_eq!(b.next_block(), "data: only b\n\n");
    assert_eq!(b.next_block(), "retry: 5000\ndata: with retry\n\n");
    assert_eq!(a.read_to_eof(), "data: only a\n\n");
    app.wait_closed(ids[0]);
    assert!(!app.on_server({
        let id = ids[1];
        move |s, _| s.sse(id).is_closed()
    }));
    // Nothing else (the dropped event) arrived on b.
    b.s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    match b.s.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("unexpected bytes on b: {other:?} {:?}", &buf),
    }
}

#[test]
fn sse_heartbeat_comment_on_an_idle_stream() {
    let app = sse_server(ServerConfig::default(), |_| {}, idle);
    let mut c = RawSse::open(app.addr, "/events-hb", "");
    let id = app.wait_streams(1)[0];
    let t0 = Instant::now();
    assert_eq!(c.next_block(), ": \n\n");
    let first = t0.elapsed();
    assert!(first >= Duration::from_millis(100), "{first:?}");
    assert_eq!(c.next_block(), ": \n\n");
    // An event postpones the next heartbeat; the stream stays open.
    app.on_server(move |s, _| s.sse(id).send_data("e")).unwrap();
    assert_eq!(c.next_block(), "data: e\n\n");
    assert_eq!(c.next_block(), ": \n\n");
    assert!(!app.on_server(move |s, _| s.sse(id).is_closed()));
}

#[test]
fn sse_head_request_and_non_stream_ids() {
    let app = sse_server(
        ServerConfig::default(),
        |s| {
            s.route("/plain", Method::GET, |_, _| Ok(Response::text("plain")))
                .unwrap();
        },
        idle,
    );
    // HEAD of an event stream: the head only, and the connection is not a stream.
    let mut s = connect(app.addr);
    s.write_all(b"HEAD /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let id = app.wait_streams(1)[0];
    let got = app.on_server(move |srv, _| srv.sse(id).send_data("x"));
    assert!(got.is_err(), "{got:?}");
    assert!(app.on_server(move |srv, _| srv.sse(id).is_closed()));
}

/// `sse_ended` lists each stream once, after its connection ends: a client
/// that left, a stream the program ended, one dropped over its send bound
/// by a broadcast between polls; never an open stream nor a `HEAD`'s id.
#[test]
fn sse_ended_lists_each_ended_stream_once() {
    let small = SseOptions {
        heartbeat: None,
        max_send_buffer: 4096,
    };
    let app = sse_server(
        ServerConfig::default().send_buffer_size(Some(4096)),
        move |s| {
            s.route("/small", Method::GET, move |req, st: &mut State| {
                let (response, id) = req.accept_sse_with(small.clone())?;
                st.streams.push((id, None));
                Ok(response)
            })
            .unwrap();
        },
        note_ended,
    );
    let mut head = connect(app.addr);
    head.write_all(b"HEAD /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut head, true).status, 200);
    let head_id = app.wait_streams(1)[0];
    let leaver = RawSse::open(app.addr, "/events", "");
    let leaver_id = app.wait_streams(2)[1];
    let mut ended_by_program = RawSse::open(app.addr, "/events", "");
    let program_id = app.wait_streams(3)[2];
    let _stalled = RawSse::open(app.addr, "/small", "");
    let stalled_id = app.wait_streams(4)[3];
    let mut open = RawSse::open(app.addr, "/events", "");
    let open_id = app.wait_streams(5)[4];

    drop(leaver);
    app.on_server(move |s, _| s.sse(program_id).close());
    assert_eq!(ended_by_program.read_to_eof(), "");
    // A reader that stopped: broadcasts between polls fill its bound (the
    // kernel's buffers first) and drop it.
    let data = "x".repeat(1000);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.on_server(move |s, _| s.sse(stalled_id).is_closed()) {
        assert!(
            Instant::now() < deadline,
            "the stalled stream was never dropped"
        );
        let data = data.clone();
        app.on_server(move |s, _| s.broadcast_event(&[stalled_id], &SseEvent::new(&data)));
    }
    let want = [leaver_id, program_id, stalled_id];
    let deadline = Instant::now() + Duration::from_secs(10);
    let ended = loop {
        let ended = app.on_server(|_, st| st.ended.clone());
        if want.iter().all(|id| ended.contains(id)) || Instant::now() > deadline {
            break ended;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    for id in want {
        let times = ended.iter().filter(|&&e| e == id).count();
        assert_eq!(times, 1, "{id} listed {times} times in {ended:?}");
    }
    assert!(!ended.contains(&open_id), "{ended:?}");
    assert!(!ended.contains(&head_id), "{ended:?}");
    // A few more polls list nothing again; the open stream still works.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(app.on_server(|_, st| st.ended.len()), 3);
    app.on_server(move |s, _| s.sse(open_id).send_data("still here"))
        .unwrap();
    assert_eq!(open.next_block(), "data: still here\n\n");
}

/// `HEAD` of an event stream keeps no stream and leaves the connection
/// usable: the next request on it can open a real stream, which the id the
/// `HEAD`'s handler got never names.
#[test]
fn sse_head_request_keeps_the_connection_and_its_id_stays_closed() {
    let app = sse_server(ServerConfig::default(), |_| {}, idle);
    let mut s = connect(app.addr);
    s.write_all(b"HEAD /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("connection"), None, "{r:?}");
    let head_id = app.wait_streams(1)[0];
    assert!(app.on_server(move |srv, _| srv.sse(head_id).is_closed()));
    assert_eq!(app.on_server(|srv, _| srv.connection_count()), 1);

    s.write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut c = RawSse {
        s,
        buf: Vec::new(),
        head: String::new(),
    };
    c.head = String::from_utf8(c.read_until(b"\r\n\r\n")).unwrap();
    assert!(c.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", c.head);
    let id = app.wait_streams(2)[1];
    assert_ne!(id, head_id);
    let (old, new, old_closed) = app.on_server(move |srv, _| {
        let old = srv.sse(head_id).send_data("to the HEAD's id");
        srv.sse(head_id).close();
        let new = srv.sse(id).send_data("to the stream");
        (old, new, srv.sse(head_id).is_closed())
    });
    assert!(old.is_err(), "{old:?}");
    assert_eq!(new, Ok(()));
    assert!(old_closed);
    assert_eq!(c.next_block(), "data: to the stream\n\n");
    assert!(!app.on_server(move |srv, _| srv.sse(id).is_closed()));
}

/// A stream without heartbeat, open longer than `send_timeout`, then one
/// event larger than the socket buffers: the client must get all of it
/// (the send timeout counts from the send, not from when the stream opened).
#[test]
fn sse_large_event_on_a_long_quiet_stream_is_delivered_whole() {
    let app = sse_server(
        // Long enough for a client on a loaded machine to read 8 MiB.
        ServerConfig::default().send_timeout(Duration::from_millis(1500)),
        |s| {
            s.route("/quiet", Method::GET, |req, st: &mut State| {
                let (response, id) = req.accept_sse_with(SseOptions {
                    heartbeat: None,
                    max_send_buffer: 16 << 20,
                })?;
                st.streams.push((id, None));
                Ok(response)
            })
            .unwrap();
        },
        idle,
    );
    let mut c = RawSse::open(app.addr, "/quiet", "");
    let id = app.wait_streams(1)[0];
    std::thread::sleep(Duration::from_millis(2000));
    let data = "x".repeat(8 << 20);
    let sent = app.on_server(move |s, _| s.sse(id).send_data(&data));
    assert_eq!(sent, Ok(()));
    // Read at a modest pace, well within the send timeout between reads.
    std::thread::sleep(Duration::from_millis(100));
    let block = c.next_block();
    assert_eq!(block.len(), "data: \n\n".len() + (8 << 20));
    assert!(!app.on_server(move |s, _| s.sse(id).is_closed()));
}

/// "A comment line is sent after this long without an event": events sent
/// more often than the heartbeat interval leave no room for heartbeats.
#[test]
fn sse_events_postpone_the_heartbeat() {
    let app = sse_server(ServerConfig::default(), |_| {}, idle);
    let mut c = RawSse::open(app.addr, "/events-hb", "");
    let id = app.wait_streams(1)[0];
    let mut last_event = Instant::now();
    for i in 0..15 {
        let text = format!("e{i}");
        app.on_server(move |s, _| s.sse(id).send_data(&text))
            .unwrap();
        let sent = Instant::now();
        loop {
            let block = c.next_block();
            if block == ": \n\n" {
                // Only a real 200 ms silence (a slow machine) may explain it.
                let idle = last_event.elapsed();
                assert!(
                    idle >= Duration::from_millis(180),
                    "heartbeat {idle:?} after event {i}"
                );
                continue;
            }
            assert_eq!(block, format!("data: e{i}\n\n"));
            break;
        }
        last_event = sent;
        std::thread::sleep(Duration::from_millis(60));
    }
    // Then silence: a heartbeat follows.
    assert_eq!(c.next_block(), ": \n\n");
}

/// Closing a stream with a large event still queued: the client gets all of
/// it, then EOF, even though the heartbeat interval passes meanwhile.
#[test]
fn sse_close_with_a_large_event_queued_flushes_it_all() {
    let app = sse_server(
        ServerConfig::default().send_timeout(Duration::from_millis(700)),
        |_| {},
        idle,
    );
    let mut c = RawSse::open(app.addr, "/events-hb", "");
    let id = app.wait_streams(1)[0];
    // Open (with heartbeats only) for longer than the send timeout.
    std::thread::sleep(Duration::from_millis(1000));
    let data = "y".repeat(8 << 20);
    app.on_server(move |s, _| {
        s.sse(id).send_data(&data).unwrap();
        s.sse(id).close();
    });
    // Leave it unread for longer than the 200 ms heartbeat.
    std::thread::sleep(Duration::from_millis(400));
    let all = c.read_to_eof();
    let rest = all.trim_start_matches(": \n\n");
    assert!(all.len() > rest.len(), "heartbeats came first");
    assert_eq!(rest.len(), "data: \n\n".len() + (8 << 20));
    assert!(rest.ends_with("yyy\n\n"));
    app.wait_closed(id);
}
