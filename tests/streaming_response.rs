//! Kept streams (`Request::accept_stream`) end to end: chunks pushed by the
//! program between polls arrive in order and de-chunk correctly (raw
//! sockets, `curl` and Python `requests`), `end()` gives the connection back
//! to keep-alive, HTTP/1.0 gets a close-delimited body, a client that stops
//! reading hits the send bound without disturbing the others, `HEAD` keeps
//! no stream, and a handler's outbox and the cross-thread `Sender` reach
//! streams.
//!
//! The Python test runs the interpreter named by `POLLSERVE_TEST_PYTHON`
//! (see `tests/interop.rs`); without it, and the curl test without `curl`,
//! print `SKIPPED: …` and return. The raw-socket tests always run.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use pollserve::stream::{StreamId, StreamOptions, StreamSendError};
use pollserve::{Method, Response, Server, ServerConfig};

// ---------------------------------------------------------------------------
// Server: the program's own loop, with work between polls
// ---------------------------------------------------------------------------

#[derive(Default)]
struct State {
    /// Streams accepted, in order of arrival (never pruned: tests refer to
    /// them by index).
    streams: Vec<StreamId>,
    /// Streams the per-poll script feeds, with how many chunks each got.
    scripted: Vec<(StreamId, usize)>,
}

impl TestServer<State> {
    /// Waits until at least `n` streams were accepted; returns their ids.
    fn wait_streams(&self, n: usize) -> Vec<StreamId> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ids = self.on_server(|_, st| st.streams.clone());
            if ids.len() >= n {
                return ids;
            }
            assert!(Instant::now() < deadline, "only {} streams", ids.len());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn is_closed(&self, id: StreamId) -> bool {
        self.on_server(move |s, _| s.stream(id).is_closed())
    }

    fn wait_closed(&self, id: StreamId) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.is_closed(id) {
            assert!(Instant::now() < deadline, "stream never reported closed");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn send(&self, id: StreamId, data: &[u8]) -> Result<(), StreamSendError> {
        let data = data.to_vec();
        self.on_server(move |s, _| s.stream(id).send(&data))
    }

    fn end(&self, id: StreamId) {
        self.on_server(move |s, _| s.stream(id).end());
    }
}

/// The chunks the per-poll script sends on `/scripted`, one per poll.
const SCRIPT: [&str; 6] = [
    "first chunk\n",
    "second\n",
    "3\n",
    "a longer fourth chunk, with some more bytes in it\n",
    "five\n",
    "last\n",
];

/// After every poll: the next chunk of [`SCRIPT`] for every scripted
/// stream, then its end.
fn scripted(server: &mut Server<State>, st: &mut State) {
    for (id, sent) in &mut st.scripted {
        if *sent < SCRIPT.len() {
            server.stream(*id).send(SCRIPT[*sent].as_bytes()).unwrap();
            *sent += 1;
        } else if *sent == SCRIPT.len() {
            server.stream(*id).end();
            *sent += 1;
        }
    }
}

/// `/stream` (default options), `/small` (a 64 KiB send bound), `/scripted`
/// (fed by [`scripted`]), `/plain` and `/end-all` (ends every stream through
/// the handler's outbox).
fn stream_server(config: ServerConfig) -> TestServer<State> {
    serve_loop(config, State::default(), scripted, |server| {
        server
            .route("/stream", Method::GET, |req, st: &mut State| {
                let (response, id) = req.accept_stream("text/plain; charset=utf-8")?;
                st.streams.push(id);
                Ok(response)
            })
            .unwrap();
        server
            .route("/small", Method::GET, |req, st: &mut State| {
                let options = StreamOptions {
                    max_send_buffer: SMALL_BOUND,
                };
                let (response, id) = req.accept_stream_with("application/octet-stream", options)?;
                st.streams.push(id);
                Ok(response)
            })
            .unwrap();
        server
            .route("/scripted", Method::GET, |req, st: &mut State| {
                let (response, id) = req.accept_stream("text/plain; charset=utf-8")?;
                st.streams.push(id);
                st.scripted.push((id, 0));
                Ok(response)
            })
            .unwrap();
        server
            .route("/plain", Method::GET, |_, _| Ok(Response::text("plain")))
            .unwrap();
        // Says goodbye on every stream from inside a handler.
        server
            .route("/end-all", Method::POST, |req, st: &mut State| {
                for &id in &st.streams {
                    req.outbox().send_chunk(id, b"bye");
                    req.outbox().end_chunked(id);
                }
                Ok(Response::text("ended"))
            })
            .unwrap();
    })
}

// ---------------------------------------------------------------------------
// A raw client
// ---------------------------------------------------------------------------

/// A raw client reading a stream's bytes as they come.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn open(addr: std::net::SocketAddr, request: &str) -> Raw {
        let mut s = connect(addr);
        s.write_all(request.as_bytes()).unwrap();
        Raw { s, buf: Vec::new() }
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
            self.fill();
        }
    }

    /// Exactly `n` bytes.
    fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            self.fill();
        }
        self.buf.drain(..n).collect()
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.s.read(&mut chunk).expect("read");
        assert!(
            n > 0,
            "EOF; have {:?}",
            String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
        );
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The response head, as text.
    fn head(&mut self) -> String {
        String::from_utf8(self.read_until(b"\r\n\r\n")).unwrap()
    }

    /// Everything until the server closes.
    fn rest(&mut self) -> Vec<u8> {
        let mut all = std::mem::take(&mut self.buf);
        all.extend_from_slice(&read_to_close(&mut self.s));
        all
    }
}

fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The send bound of `/small`.
const SMALL_BOUND: usize = 64 * 1024;

const GET_STREAM: &str = "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n";

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn stream_chunks_pushed_across_polls_arrive_in_order_then_the_connection_is_reused() {
    let app = stream_server(ServerConfig::default());
    let mut c = Raw::open(app.addr, GET_STREAM);
    let head = c.head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(field(&head, "transfer-encoding"), Some("chunked"));
    assert_eq!(
        field(&head, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(field(&head, "content-length"), None);
    assert_eq!(field(&head, "connection"), None, "{head}");
    let id = app.wait_streams(1)[0];
    assert!(!app.is_closed(id));
    assert_eq!(
        app.on_server(move |s, _| s.stream(id).peer_addr()),
        Some(c.s.local_addr().unwrap())
    );

    // Each chunk is read before the next is sent: every one went out in a
    // poll of its own, framed exactly.
    let chunks: [&[u8]; 4] = [b"hello", b"", b"0123456789abcdef!", &[0u8; 300]];
    for chunk in chunks {
        app.send(id, chunk).unwrap();
        if chunk.is_empty() {
            continue; // an empty send is a no-op, never the terminator
        }
        let size = format!("{:x}\r\n", chunk.len());
        assert_eq!(c.read_exact(size.len()), size.as_bytes());
        assert_eq!(c.read_exact(chunk.len()), chunk);
        assert_eq!(c.read_exact(2), b"\r\n");
    }
    // Several sends between two polls leave in order.
    app.on_server(move |s, _| {
        for i in 0..50 {
            s.stream(id).send(format!("<{i}>").as_bytes()).unwrap();
        }
    });
    let mut expected = Vec::new();
    for i in 0..50 {
        let text = format!("<{i}>");
        expected.extend_from_slice(format!("{:x}\r\n{text}\r\n", text.len()).as_bytes());
    }
    assert_eq!(c.read_exact(expected.len()), expected);

    // The end: the terminating chunk, the id closed, the connection kept.
    app.end(id);
    assert_eq!(c.read_exact(5), b"0\r\n\r\n");
    app.wait_closed(id);
    assert_eq!(app.send(id, b"late"), Err(StreamSendError::Closed));
    app.end(id); // ending twice changes nothing
    c.s.write_all(b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut c.s, false);
    assert_eq!((r.status, r.text().as_str()), (200, "plain"));

    // A second stream on the same connection has an id of its own; the
    // first stays closed.
    c.s.write_all(GET_STREAM.as_bytes()).unwrap();
    let head = c.head();
    assert_eq!(field(&head, "transfer-encoding"), Some("chunked"));
    let ids = app.wait_streams(2);
    assert_ne!(ids[0], ids[1]);
    assert!(app.is_closed(ids[0]));
    assert_eq!(app.send(ids[0], b"old id"), Err(StreamSendError::Closed));
    app.send(ids[1], b"new").unwrap();
    app.end(ids[1]);
    assert_eq!(c.read_exact(13), b"3\r\nnew\r\n0\r\n\r\n");
}

#[test]
fn stream_requests_pipelined_behind_a_stream_are_answered_after_its_end() {
    let app = stream_server(ServerConfig::default());
    let mut c = Raw::open(
        app.addr,
        "GET /stream HTTP/1.1\r\nHost: t\r\n\r\nGET /plain HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let _ = c.head();
    let id = app.wait_streams(1)[0];
    app.send(id, b"data").unwrap();
    assert_eq!(c.read_exact(9), b"4\r\ndata\r\n");
    app.end(id);
    assert_eq!(c.read_exact(5), b"0\r\n\r\n");
    let head = c.head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(c.read_exact(5), b"plain");
}

#[test]
fn stream_read_by_a_raw_client_as_one_chunked_body() {
    let app = stream_server(ServerConfig::default());
    let mut s = connect(app.addr);
    s.write_all(b"GET /scripted HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), SCRIPT.concat());
    // Then the same connection serves another request.
    s.write_all(b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, false).text(), "plain");
}

#[test]
fn stream_read_by_curl() {
    if have_curl("stream_read_by_curl").is_none() {
        return;
    }
    let app = stream_server(ServerConfig::default());
    let url = app.url("/scripted");
    // Two URLs on one curl command: the second reuses the connection.
    let out = run(curl().args([
        "-N",
        "-w",
        "|%{http_code} %{num_connects}|",
        &url,
        &app.url("/plain"),
    ]));
    assert!(out.status.success(), "curl failed: {}", out.stderr);
    let text = out.stdout_text();
    assert_eq!(text, format!("{}|200 1|plain|200 0|", SCRIPT.concat()));
}

#[test]
fn stream_read_by_python_requests_with_stream_true() {
    let Some(py) = python("stream_read_by_python_requests_with_stream_true") else {
        return;
    };
    let app = stream_server(ServerConfig::default());
    let v = run_python(
        &py,
        r#"
import requests
with requests.Session() as s:
    r = s.get(base + "/scripted", stream=True, timeout=T)
    pieces = [p.decode() for p in r.iter_content(chunk_size=None)]
    after = s.get(base + "/plain", timeout=T).text
print(json.dumps({
    "status": r.status_code,
    "te": r.headers.get("transfer-encoding"),
    "body": "".join(pieces),
    "pieces": len(pieces),
    "after": after,
}))
"#,
        &app.url(""),
        &[],
    );
    assert_eq!(v["status"], 200);
    assert_eq!(v["te"], "chunked");
    assert_eq!(v["body"], SCRIPT.concat());
    assert!(v["pieces"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["after"], "plain");
}

#[test]
fn stream_to_http10_is_close_delimited() {
    let app = stream_server(ServerConfig::default());
    let mut c = Raw::open(app.addr, "GET /stream HTTP/1.0\r\nHost: t\r\n\r\n");
    let head = c.head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(field(&head, "transfer-encoding"), None, "{head}");
    assert_eq!(field(&head, "content-length"), None, "{head}");
    assert_eq!(field(&head, "connection"), Some("close"));
    let id = app.wait_streams(1)[0];
    app.send(id, b"unframed ").unwrap();
    assert_eq!(c.read_exact(9), b"unframed ");
    app.send(id, b"bytes").unwrap();
    app.send(id, b"").unwrap();
    app.end(id);
    assert_eq!(c.rest(), b"bytes");
    app.wait_closed(id);
}

#[test]
fn stream_head_request_keeps_no_stream() {
    let app = stream_server(ServerConfig::default());
    let mut s = connect(app.addr);
    s.write_all(b"HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let head_id = app.wait_streams(1)[0];
    assert!(app.is_closed(head_id));
    assert_eq!(app.send(head_id, b"x"), Err(StreamSendError::Closed));
    assert_eq!(app.on_server(move |s, _| s.stream(head_id).queued()), 0);
    app.end(head_id);
    // No body followed: the next response on the connection is the next
    // request's, and a stream opened there is not the HEAD's id.
    s.write_all(GET_STREAM.as_bytes()).unwrap();
    let mut c = Raw { s, buf: Vec::new() };
    let head = c.head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let id = app.wait_streams(2)[1];
    assert_ne!(id, head_id);
    assert!(app.is_closed(head_id));
    assert_eq!(app.send(head_id, b"x"), Err(StreamSendError::Closed));
    app.send(id, b"ok").unwrap();
    assert_eq!(c.read_exact(7), b"2\r\nok\r\n");
}

#[test]
fn stream_send_bound_hit_by_a_client_that_stops_reading() {
    let app = stream_server(ServerConfig::default());
    // A client that reads everything, and one that reads nothing (with a
    // small receive buffer, so the kernel takes little on its behalf).
    let mut reader = Raw::open(app.addr, "GET /small HTTP/1.1\r\nHost: t\r\n\r\n");
    let _ = reader.head();
    let reader_id = app.wait_streams(1)[0];
    let mut stalled = connect_with_buffers(app.addr, None, Some(4096));
    stalled
        .write_all(b"GET /small HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let stalled_id = app.wait_streams(2)[1];

    // One chunk larger than the bound (framed: 5 hex digits, 2 CRLFs) is
    // refused, and the stream stays.
    let err = app.send(stalled_id, &vec![b'x'; SMALL_BOUND]);
    assert_eq!(
        err,
        Err(StreamSendError::ChunkTooLarge {
            len: SMALL_BOUND + 9,
            limit: SMALL_BOUND
        })
    );
    assert!(!app.is_closed(stalled_id));

    // Two 16 KiB chunks per poll to each, until the non-reader's queue is
    // full; the reader takes each batch before the next.
    const CHUNK: usize = 16 * 1024;
    let mut batches = 0usize;
    let mut outcome = None;
    while outcome.is_none() && batches < 10_000 {
        let (a, b) = app.on_server(move |s, _| {
            let chunk = [b'y'; CHUNK];
            let a = (0..2).try_for_each(|_| s.stream(reader_id).send(&chunk));
            let b = (0..2).try_for_each(|_| s.stream(stalled_id).send(&chunk));
            (a, b)
        });
        a.unwrap();
        batches += 1;
        for _ in 0..2 {
            let framed = reader.read_exact(CHUNK + 8);
            assert!(framed.starts_with(b"4000\r\nyyy"));
            assert!(framed.ends_with(b"yyy\r\n"));
        }
        outcome = b.err();
    }
    assert_eq!(outcome, Some(StreamSendError::Backpressure), "{batches}");
    assert!(app.is_closed(stalled_id));
    assert_eq!(app.send(stalled_id, b"more"), Err(StreamSendError::Closed));
    // The other client is unaffected.
    assert!(!app.is_closed(reader_id));
    app.send(reader_id, b"still here").unwrap();
    app.end(reader_id);
    assert_eq!(reader.read_exact(20), b"a\r\nstill here\r\n0\r\n\r\n");
    // The closed stream's client finds its connection ended once it reads.
    let got = read_to_close(&mut stalled);
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[test]
fn stream_client_leaving_marks_the_stream_closed() {
    let app = stream_server(ServerConfig::default());
    let c = Raw::open(app.addr, GET_STREAM);
    let id = app.wait_streams(1)[0];
    assert!(!app.is_closed(id));
    drop(c);
    app.wait_closed(id);
    assert_eq!(app.send(id, b"gone"), Err(StreamSendError::Closed));
    assert!(!app.on_server(move |s, _| s.stream(id).send_quiet(b"gone")));
    assert_eq!(app.on_server(|s, _| s.connection_count()), 0);
}

#[test]
fn stream_broadcast_skips_closed_streams() {
    let app = stream_server(ServerConfig::default());
    let mut clients: Vec<Raw> = (0..3).map(|_| Raw::open(app.addr, GET_STREAM)).collect();
    for c in &mut clients {
        let _ = c.head();
    }
    let ids = app.wait_streams(3);
    app.end(ids[1]);
    let n = app.on_server(|s, st| s.broadcast_chunk(&st.streams, b"all"));
    assert_eq!(n, 2);
    assert_eq!(clients[0].read_exact(8), b"3\r\nall\r\n");
    assert_eq!(clients[1].read_exact(5), b"0\r\n\r\n");
    assert_eq!(clients[2].read_exact(8), b"3\r\nall\r\n");
}

#[test]
fn stream_sender_from_another_thread() {
    let app = stream_server(ServerConfig::default());
    let mut s = connect(app.addr);
    s.write_all(GET_STREAM.as_bytes()).unwrap();
    let id = app.wait_streams(1)[0];
    let sender = app.on_server(|s, _| s.sender().unwrap());
    std::thread::spawn(move || {
        for i in 0..20 {
            sender
                .send_chunk(id, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        sender.send_chunk(id, b"").unwrap();
        sender.end_chunked(id).unwrap();
        // After the end: dropped, as closed.
        sender.send_chunk(id, b"late").unwrap();
    })
    .join()
    .unwrap();
    let r = read_response(&mut s, false);
    let expected: String = (0..20).map(|i| format!("line {i}\n")).collect();
    assert_eq!(r.text(), expected);
    app.wait_closed(id);
    s.write_all(b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, false).text(), "plain");
}

#[test]
fn stream_ended_from_a_handler_through_its_outbox() {
    let app = stream_server(ServerConfig::default());
    let mut c = Raw::open(app.addr, GET_STREAM);
    let _ = c.head();
    let id = app.wait_streams(1)[0];
    let r = request(
        app.addr,
        "POST /end-all HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "ended"));
    assert_eq!(c.read_exact(13), b"3\r\nbye\r\n0\r\n\r\n");
    app.wait_closed(id);
}

#[test]
fn stream_ended_by_shutdown() {
    let app = stream_server(ServerConfig::default());
    let mut c = Raw::open(app.addr, GET_STREAM);
    let _ = c.head();
    let id = app.wait_streams(1)[0];
    // The client reads (and then closes) while the server shuts down.
    let client = std::thread::spawn(move || c.rest());
    let dropped = app.on_server(move |s, st| {
        s.stream(id).send(b"bye").unwrap();
        s.shutdown(st, Duration::from_secs(5)).unwrap()
    });
    assert_eq!(dropped, 0);
    assert_eq!(client.join().unwrap(), b"3\r\nbye\r\n0\r\n\r\n");
}
