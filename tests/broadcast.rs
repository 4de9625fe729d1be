//! Broadcasting (issue #15): one encoding shared by every connection, in
//! order with each connection's own output; per-connection backpressure;
//! memory of one copy per broadcast; groups that members leave by
//! themselves. Raw loopback clients check every byte; a few Python
//! `websockets` clients (when `POLLSERVE_TEST_PYTHON` is set) check that a
//! real client library reads the same messages.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::ws::{frame, handshake_on, open, read_frame};
use common::*;
use pollserve::group::{GroupId, Member};
use pollserve::sse::{SseEvent, SseId};
use pollserve::stream::StreamId;
use pollserve::ws::{CloseStatus, DeflateOptions, Message, WsId, WsOptions};
use pollserve::{Method, Server, ServerConfig};

// ---------------------------------------------------------------------------
// The server: routes that keep every id, and join `group` when it is set
// ---------------------------------------------------------------------------

#[derive(Default)]
struct App {
    ws: Vec<WsId>,
    sse: Vec<SseId>,
    streams: Vec<StreamId>,
    /// Joined by every accepted WebSocket and stream, from the handler.
    group: Option<GroupId>,
    /// Return values of the broadcasts the per-tick work made.
    returns: Vec<usize>,
}

/// `/ws`; `/bounded` (64 KiB send bound); `/frames` (`max_frame_size`
/// 4096); `/deflate` (permessage-deflate); `/events`; `/stream` (a kept
/// stream). Each joins `app.group`
/// through the outbox when the program set one.
fn routes(server: &mut Server<App>) {
    fn ws_route(server: &mut Server<App>, path: &str, options: WsOptions) {
        server
            .route(path, Method::GET, move |req, app: &mut App| {
                let (response, id) = req.websocket().options(options.clone()).accept()?;
                app.ws.push(id);
                if let Some(group) = app.group {
                    req.outbox().join(group, id);
                }
                Ok(response)
            })
            .unwrap();
    }
    ws_route(server, "/ws", WsOptions::default());
    let bounded = WsOptions {
        max_send_buffer: 64 << 10,
        ..WsOptions::default()
    };
    ws_route(server, "/bounded", bounded);
    let mut frames = WsOptions::default();
    frames.protocol.max_frame_size = 4096;
    ws_route(server, "/frames", frames);
    // permessage-deflate with the default options: no context takeover on
    // either side, so a broadcast is compressed once per settings.
    let deflate = WsOptions {
        deflate: Some(DeflateOptions::default()),
        ..WsOptions::default()
    };
    ws_route(server, "/deflate", deflate);
    server
        .route("/events", Method::GET, |req, app: &mut App| {
            let (response, id) = req.accept_sse()?;
            app.sse.push(id);
            if let Some(group) = app.group {
                req.outbox().join(group, id);
            }
            Ok(response)
        })
        .unwrap();
    server
        .route("/stream", Method::GET, |req, app: &mut App| {
            let (response, id) = req.accept_stream("text/plain")?;
            app.streams.push(id);
            if let Some(group) = app.group {
                req.outbox().join(group, id);
            }
            Ok(response)
        })
        .unwrap();
}

fn server(work: impl FnMut(&mut Server<App>, &mut App) + Send + 'static) -> TestServer<App> {
    serve_loop(ServerConfig::default(), App::default(), work, routes)
}

/// Kernel send buffers of accepted sockets (Linux doubles it): on loopback
/// the kernel would otherwise grow them to 4 MiB at once, and a client that
/// does not read would take megabytes before anything waits in the server.
const SNDBUF: usize = 16 << 10;

/// [`server`] whose sockets have [`SNDBUF`]: what a client with a small
/// receive buffer does not read waits in the server's queue.
fn tight_server(work: impl FnMut(&mut Server<App>, &mut App) + Send + 'static) -> TestServer<App> {
    // A dropped socket's slot (and so its close status) is kept for 60 s,
    // not the default 2 s, which a loaded machine can spend reading.
    let config = ServerConfig::default()
        .send_buffer_size(Some(SNDBUF))
        .linger_timeout(Duration::from_secs(60));
    serve_loop(config, App::default(), work, routes)
}

/// A server whose accepted clients join a group made at start; returns it
/// with the group's id.
fn group_server() -> (TestServer<App>, GroupId) {
    let (tx, rx) = mpsc::channel();
    let srv = serve_loop(ServerConfig::default(), App::default(), idle, move |s| {
        routes(s);
        tx.send(s.new_group()).unwrap();
    });
    let group = rx.recv().unwrap();
    srv.on_server(move |_, app| app.group = Some(group));
    (srv, group)
}

impl TestServer<App> {
    /// Waits (10 s at most) until `ready` holds on the server thread.
    fn wait_until(
        &self,
        what: &str,
        ready: impl Fn(&mut Server<App>, &mut App) -> bool + Clone + Send + 'static,
    ) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = ready.clone();
            if self.on_server(move |s, app| ready(s, app)) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn group_len(&self, group: GroupId) -> usize {
        self.on_server(move |s, _| s.group(group).len())
    }
}

// ---------------------------------------------------------------------------
// Expected bytes, and reading them
// ---------------------------------------------------------------------------

/// An unmasked server frame, written by hand (independently of the server).
fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n < 65536 => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// A chunk of a chunked body, written by hand.
fn chunk(data: &[u8]) -> Vec<u8> {
    [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat()
}

/// `len` bytes of a pattern that differs per `seed` and per position.
fn payload(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed * 31 + i * 7 + i / 251) as u8)
        .collect()
}

/// `len` bytes of ASCII text that differs per `seed`.
fn text(seed: usize, len: usize) -> String {
    (0..len)
        .map(|i| (b'a' + ((seed + i) % 26) as u8) as char)
        .collect()
}

/// Reads exactly `n` bytes (10 s read timeout per read).
fn read_n(s: &mut impl Read, n: usize) -> Vec<u8> {
    let mut got = vec![0; n];
    s.read_exact(&mut got)
        .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
    got
}

/// Asserts equal bytes, naming the first difference instead of printing
/// kilobytes.
fn assert_same(got: &[u8], expected: &[u8], what: &str) {
    if got != expected {
        let at = got
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        let around = |b: &[u8]| {
            let from = at.saturating_sub(16).min(b.len());
            String::from_utf8_lossy(&b[from..(at + 24).min(b.len())]).into_owned()
        };
        panic!(
            "{what}: {} bytes received, {} expected; first difference at byte {at}: \
             got {:?}, expected {:?}",
            got.len(),
            expected.len(),
            around(got),
            around(expected)
        );
    }
}

/// Reads a response head, up to its blank line.
fn read_head(s: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut b = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "closed inside the head");
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A WebSocket on `path` whose receive buffer is `rcvbuf` bytes (the
/// kernel's default when `None`).
fn open_with_rcvbuf(addr: SocketAddr, path: &str, rcvbuf: Option<usize>) -> TcpStream {
    let (s, head) = handshake_on(connect_with_buffers(addr, None, rcvbuf), path, "");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    s
}

/// Reads until the server ends the connection; panics if it does not.
fn expect_dropped(s: &mut TcpStream) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the connection was not dropped: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// WebSocket fan-out: identical bytes, in order with each socket's own
// ---------------------------------------------------------------------------

const PY_CLIENTS: &str = r#"
import asyncio, websockets
n, clients = int(args[0]), int(args[1])
def fnv(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h
async def one():
    async with websockets.connect(base, max_size=None) as ws:
        got = []
        for _ in range(n):
            m = await asyncio.wait_for(ws.recv(), 30)
            data = m.encode() if isinstance(m, str) else m
            got.append(["text" if isinstance(m, str) else "binary", len(data), fnv(data)])
        return got
async def main():
    print(json.dumps(await asyncio.gather(*[one() for _ in range(clients)])))
asyncio.run(main())
"#;

/// Rounds of the WebSocket fan-out test, each five frames per client.
const ROUNDS: usize = 12;

/// Per round: a message of the socket's own, a 64-byte broadcast (copied),
/// a 4 KiB binary broadcast (shared), a ping of the socket's own, and a
/// 4 KiB text broadcast (shared): queued in one go, written together.
fn fan_out_round(server: &mut Server<App>, ids: &[WsId], k: usize) -> Vec<usize> {
    let mut returns = Vec::new();
    for &id in ids {
        server.ws(id).send_text(&format!("own {k}")).unwrap();
    }
    returns.push(server.broadcast_text(ids, &text(k, 64)));
    returns.push(server.broadcast_binary(ids, &payload(k, 4096)));
    for &id in ids {
        server.ws(id).send_ping(format!("p{k}").as_bytes()).unwrap();
    }
    returns.push(server.broadcast_text(ids, &text(k + 100, 4096)));
    returns
}

/// The bytes a raw client must receive for [`fan_out_round`] `k`.
fn expected_round(k: usize) -> Vec<u8> {
    [
        server_frame(true, 1, format!("own {k}").as_bytes()),
        server_frame(true, 1, text(k, 64).as_bytes()),
        server_frame(true, 2, &payload(k, 4096)),
        server_frame(true, 9, format!("p{k}").as_bytes()),
        server_frame(true, 1, text(k + 100, 4096).as_bytes()),
    ]
    .concat()
}

#[test]
fn broadcast_to_many_websockets_delivers_identical_bytes_in_order() {
    const RAW: usize = 200;
    need_descriptors(2 * RAW as u64 + 200);
    let srv = tight_server(idle);
    // Python clients connect first and wait for their messages; they offer
    // permessage-deflate, so theirs are compressed (once, for all three).
    let url = format!("ws://{}/deflate", srv.addr);
    let py_clients = 3;
    let python = common::python("broadcast_to_many_websockets_delivers_identical_bytes_in_order");
    let py = python.map(|py| {
        let url = url.clone();
        std::thread::spawn(move || {
            run_python(
                &py,
                PY_CLIENTS,
                &url,
                &[&(4 * ROUNDS).to_string(), &py_clients.to_string()],
            )
        })
    });
    let expected_clients = RAW + if py.is_some() { py_clients } else { 0 };
    // Every other raw client has a small receive buffer: its frames wait in
    // the server's queue and leave in pieces as it reads.
    let mut clients: Vec<TcpStream> = (0..RAW)
        .map(|i| open_with_rcvbuf(srv.addr, "/ws", (i % 2 == 0).then_some(4096)))
        .collect();
    srv.wait_until("every client", move |_, app| {
        app.ws.len() == expected_clients
    });
    let returns = srv.on_server(|server, app| {
        let ids = app.ws.clone();
        (0..ROUNDS)
            .flat_map(|k| fan_out_round(server, &ids, k))
            .collect::<Vec<usize>>()
    });
    assert!(
        returns.iter().all(|&n| n == expected_clients),
        "every client took every broadcast: {returns:?}"
    );
    let expected: Vec<u8> = (0..ROUNDS).flat_map(expected_round).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let got = read_n(c, expected.len());
        assert_same(&got, &expected, &format!("raw client {i}"));
    }
    if let Some(py) = py {
        let got = py.join().unwrap();
        let messages: Vec<(&str, Vec<u8>)> = (0..ROUNDS)
            .flat_map(|k| {
                [
                    ("text", format!("own {k}").into_bytes()),
                    ("text", text(k, 64).into_bytes()),
                    ("binary", payload(k, 4096)),
                    ("text", text(k + 100, 4096).into_bytes()),
                ]
            })
            .collect();
        let want: Vec<serde_json::Value> = messages
            .iter()
            .map(|(kind, data)| serde_json::json!([kind, data.len(), fnv1a(data)]))
            .collect();
        for (i, client) in got.as_array().unwrap().iter().enumerate() {
            assert_eq!(client.as_array().unwrap(), &want, "python client {i}");
        }
    }
}

/// One whole server frame as it arrived (header and payload).
#[cfg(feature = "deflate")]
fn read_raw_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut f = read_n(s, 2);
    let len = match f[1] & 0x7f {
        126 => {
            let l = read_n(s, 2);
            f.extend_from_slice(&l);
            u16::from_be_bytes([l[0], l[1]]) as usize
        }
        127 => {
            let l = read_n(s, 8);
            f.extend_from_slice(&l);
            u64::from_be_bytes(l.try_into().unwrap()) as usize
        }
        n => n as usize,
    };
    f.extend_from_slice(&read_n(s, len));
    f
}

/// The payload of a compressed frame, inflated.
#[cfg(feature = "deflate")]
fn inflate_frame(f: &[u8]) -> Vec<u8> {
    assert_eq!(f[0] & 0xf0, 0xc0, "FIN and RSV1 (compressed)");
    let start = match f[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    let mut input = f[start..].to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 16);
    flate2::Decompress::new(false)
        .decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
        .expect("the frame inflates");
    out
}

#[cfg(feature = "deflate")]
#[test]
fn a_compressed_broadcast_is_compressed_once_per_settings() {
    const CLIENTS: usize = 20;
    let srv = tight_server(idle);
    let offer = |extra: &str| {
        let (s, head) = handshake_on(
            connect(srv.addr),
            "/deflate",
            &format!("Sec-WebSocket-Extensions: {extra}\r\n"),
        );
        assert!(head.contains("permessage-deflate"), "{head}");
        s
    };
    let mut same: Vec<TcpStream> = (0..CLIENTS).map(|_| offer("permessage-deflate")).collect();
    // Smaller window: other settings, another encoding.
    let mut small_window = offer("permessage-deflate; server_max_window_bits=10");
    // No offer: plain frames.
    let mut plain = open(srv.addr, "/deflate");
    srv.wait_until("every client", |_, app| app.ws.len() == CLIENTS + 2);
    // Text that compresses, but not below the copy threshold.
    let message: String = (0..3000)
        .map(|i: u32| (b'a' + (i.wrapping_mul(2654435761) >> 27) as u8 % 26) as char)
        .collect();
    let (sent, grown) = srv.on_server({
        let message = message.clone();
        move |s, app| {
            let ids = app.ws.clone();
            let before = s.stats().output_buffered;
            let sent = s.broadcast_text(&ids, &message);
            (sent, s.stats().output_buffered - before)
        }
    });
    assert_eq!(sent, CLIENTS + 2);
    let first = read_raw_frame(&mut same[0]);
    assert_eq!(inflate_frame(&first), message.as_bytes());
    assert!(first.len() < 2500, "compressed: {} bytes", first.len());
    for (i, c) in same.iter_mut().enumerate().skip(1) {
        assert_same(
            &read_raw_frame(c),
            &first,
            &format!("compressed client {i}"),
        );
    }
    let other = read_raw_frame(&mut small_window);
    assert_eq!(inflate_frame(&other), message.as_bytes());
    assert_eq!(
        read_frame(&mut plain),
        (true, 1, message.clone().into_bytes())
    );
    // Three encodings (two compressed, one plain), each held once; the
    // clients' queues had no segment before, so each allocated its first
    // four slots (32 bytes each).
    let queues = (CLIENTS + 2) * 4 * 32;
    assert!(
        grown <= first.len() + other.len() + 3004 + 3 * 16 + queues,
        "a compressed broadcast to {} clients grew the output memory by {grown} bytes",
        CLIENTS + 2
    );
}

#[test]
fn a_socket_with_a_smaller_frame_limit_gets_its_own_fragmented_encoding() {
    let srv = server(idle);
    let mut plain = open(srv.addr, "/ws");
    let mut small = open(srv.addr, "/frames"); // max_frame_size 4096
    srv.wait_until("both sockets", |_, app| app.ws.len() == 2);
    let big = payload(1, 10_000);
    let n = srv.on_server({
        let big = big.clone();
        move |s, app| {
            let ids = app.ws.clone();
            s.broadcast_binary(&ids, &big) + s.broadcast_binary(&ids, b"short")
        }
    });
    assert_eq!(n, 4);
    assert_same(
        &read_n(&mut plain, 10_004 + 7),
        &[server_frame(true, 2, &big), server_frame(true, 2, b"short")].concat(),
        "plain socket",
    );
    let fragmented = [
        server_frame(false, 2, &big[..4096]),
        server_frame(false, 0, &big[4096..8192]),
        server_frame(true, 0, &big[8192..]),
        server_frame(true, 2, b"short"),
    ]
    .concat();
    assert_same(
        &read_n(&mut small, fragmented.len()),
        &fragmented,
        "socket with max_frame_size 4096",
    );
}

#[test]
fn pongs_the_session_writes_go_after_queued_broadcasts() {
    let srv = tight_server(idle);
    let mut c = open_with_rcvbuf(srv.addr, "/ws", Some(4096));
    srv.wait_until("the socket", |_, app| app.ws.len() == 1);
    // 256 KiB of shared frames wait for the client (its window is small);
    // then it pings, and the session's pong is queued behind them.
    srv.on_server(|s, app| {
        let ids = app.ws.clone();
        for k in 0..64 {
            assert_eq!(s.broadcast_binary(&ids, &payload(k, 4096)), 1);
        }
    });
    // A ping, then a message: once the message is in, the ping before it
    // has been answered.
    c.write_all(&[frame(true, 9, b"are you there"), frame(true, 1, b"marker")].concat())
        .unwrap();
    srv.wait_until("the ping answered", |s, app| {
        let id = app.ws[0];
        match s.ws(id).receive() {
            Some(m) => {
                assert_eq!(m, Message::Text("marker".into()));
                let queued = s.stats().output_queued;
                assert!(
                    queued > 64 << 10,
                    "the broadcasts are still queued behind the client's small \
                     window when the pong is written ({queued} bytes queued)"
                );
                true
            }
            None => false,
        }
    });
    for k in 0..64 {
        let (fin, op, data) = read_frame(&mut c);
        assert_eq!((fin, op), (true, 2), "frame {k}");
        assert_same(&data, &payload(k, 4096), &format!("broadcast {k}"));
    }
    assert_eq!(read_frame(&mut c), (true, 10, b"are you there".to_vec()));
}

// ---------------------------------------------------------------------------
// Event streams and kept streams
// ---------------------------------------------------------------------------

#[test]
fn event_and_chunk_broadcasts_deliver_identical_bytes_in_order() {
    const SSE: usize = 60;
    const STREAMS: usize = 60;
    const HTTP10: usize = 4;
    need_descriptors(400);
    let srv = tight_server(idle);
    let mut sse: Vec<TcpStream> = (0..SSE)
        .map(|i| {
            let mut s = connect_with_buffers(srv.addr, None, (i % 2 == 0).then_some(4096));
            s.write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            assert!(read_head(&mut s).starts_with("HTTP/1.1 200"));
            s
        })
        .collect();
    let mut streams: Vec<(TcpStream, bool)> = (0..STREAMS + HTTP10)
        .map(|i| {
            let mut s = connect_with_buffers(srv.addr, None, (i % 2 == 0).then_some(4096));
            let chunked = i < STREAMS;
            let version = if chunked { "1.1" } else { "1.0" };
            write!(s, "GET /stream HTTP/{version}\r\nHost: t\r\n\r\n").unwrap();
            let head = read_head(&mut s);
            assert_eq!(head.contains("chunked"), chunked, "{head}");
            (s, chunked)
        })
        .collect();
    srv.wait_until("every stream", |_, app| {
        app.sse.len() == SSE && app.streams.len() == STREAMS + HTTP10
    });
    let returns = srv.on_server(|s, app| {
        let (events, kept) = (app.sse.clone(), app.streams.clone());
        let mut returns = Vec::new();
        for k in 0..ROUNDS {
            for &id in &events {
                s.sse(id).send_data(&format!("own {k}")).unwrap();
            }
            let id = k.to_string();
            let big = text(k, 4000);
            returns.push(s.broadcast_event(&events, &SseEvent::new(&big).event("big").id(&id)));
            for &id in &events {
                s.sse(id).comment("between").unwrap();
            }
            returns.push(s.broadcast_event(&events, &SseEvent::new("small")));
            returns.push(s.broadcast_chunk(&kept, &payload(k, 4096)));
            for &id in &kept {
                s.stream(id).send(format!("own {k}").as_bytes()).unwrap();
            }
            returns.push(s.broadcast_chunk(&kept, b"tiny"));
        }
        returns
    });
    let want: Vec<usize> = (0..ROUNDS)
        .flat_map(|_| [SSE, SSE, STREAMS + HTTP10, STREAMS + HTTP10])
        .collect();
    assert_eq!(returns, want);
    let expected_sse: Vec<u8> = (0..ROUNDS)
        .flat_map(|k| {
            let big = text(k, 4000);
            [
                format!("data: own {k}\n\n"),
                format!("event: big\nid: {k}\ndata: {big}\n\n"),
                ": between\n\n".to_string(),
                "data: small\n\n".to_string(),
            ]
            .concat()
            .into_bytes()
        })
        .collect();
    for (i, s) in sse.iter_mut().enumerate() {
        assert_same(
            &read_n(s, expected_sse.len()),
            &expected_sse,
            &format!("event stream {i}"),
        );
    }
    for (i, (s, chunked)) in streams.iter_mut().enumerate() {
        let pieces = |framed: fn(&[u8]) -> Vec<u8>| -> Vec<u8> {
            (0..ROUNDS)
                .flat_map(|k| {
                    [
                        framed(&payload(k, 4096)),
                        framed(format!("own {k}").as_bytes()),
                        framed(b"tiny"),
                    ]
                    .concat()
                })
                .collect()
        };
        let expected = if *chunked {
            pieces(chunk)
        } else {
            pieces(|d| d.to_vec())
        };
        assert_same(
            &read_n(s, expected.len()),
            &expected,
            &format!("kept stream {i} (chunked: {chunked})"),
        );
    }
}

// ---------------------------------------------------------------------------
// Memory: one copy per broadcast
// ---------------------------------------------------------------------------

#[test]
fn a_broadcast_to_a_thousand_stalled_clients_holds_one_copy() {
    const CLIENTS: usize = 1000;
    // Three: each client's queue of shared frames keeps the four slots it
    // first allocated, so the broadcast measured below adds no slot.
    const FILLERS: usize = 3;
    need_descriptors(2 * CLIENTS as u64 + 200);
    let srv = tight_server(idle);
    // Clients that never read, with small receive buffers.
    let _clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| open_with_rcvbuf(srv.addr, "/ws", Some(4096)))
        .collect();
    srv.wait_until("every client", |_, app| app.ws.len() == CLIENTS);
    // Fill the kernel's buffers: 192 KiB for each client, more than its
    // socket takes, so the rest stays queued in the server.
    srv.on_server(|s, app| {
        let ids = app.ws.clone();
        for k in 0..FILLERS {
            assert_eq!(s.broadcast_binary(&ids, &payload(k, 64 << 10)), CLIENTS);
        }
    });
    // The sockets take what they can over a few polls, then nothing moves.
    let mut last = 0;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(20));
        last = srv.on_server(|s, _| s.stats().output_queued);
    }
    assert!(
        last >= CLIENTS * (64 << 10),
        "the fillers stay queued in the server ({last} bytes queued)"
    );
    let (before, after) = srv.on_server(|s, app| {
        let ids = app.ws.clone();
        let before = s.stats();
        assert_eq!(s.broadcast_binary(&ids, &payload(99, 4096)), CLIENTS);
        (before, s.stats())
    });
    let frame = 4096 + 4;
    assert_eq!(
        after.output_queued - before.output_queued,
        CLIENTS * frame,
        "each client has the 4 KiB message queued"
    );
    let grown = after.output_buffered - before.output_buffered;
    // One copy and its reference-counted block (two counts, the pointer to
    // the bytes and to the server's running total of shared bytes: 40
    // bytes); the clients' queues had room.
    assert!(
        grown <= frame + 64,
        "a 4 KiB broadcast to {CLIENTS} clients grew the server's output memory by {grown} \
         bytes; one copy is {frame} (copies for every client would be {})",
        CLIENTS * frame
    );
    // Still one copy after polls that tried to write it.
    std::thread::sleep(Duration::from_millis(50));
    let later = srv.on_server(|s, _| s.stats());
    assert!(
        later.output_buffered <= after.output_buffered + 64 * 1024,
        "output memory after polling: {} bytes, {} right after the broadcast",
        later.output_buffered,
        after.output_buffered
    );
    assert!(
        later.output_buffered < CLIENTS * frame,
        "all {CLIENTS} clients' queues take less memory than one 4 KiB copy each \
         ({} bytes)",
        later.output_buffered
    );
}

// ---------------------------------------------------------------------------
// Backpressure
// ---------------------------------------------------------------------------

#[test]
fn a_slow_reader_over_its_bound_is_dropped_and_the_others_get_everything() {
    const FAST: usize = 3;
    const MESSAGES: usize = 128; // 2 MiB in all, far over the 64 KiB bound
    let srv = tight_server(|s, app| {
        // One 16 KiB broadcast per poll once everyone is connected.
        if app.ws.len() == FAST + 1 && app.returns.len() < MESSAGES {
            let k = app.returns.len();
            let n = s.broadcast_binary(&app.ws, &payload(k, 16 << 10));
            app.returns.push(n);
        }
    });
    let mut slow = open_with_rcvbuf(srv.addr, "/bounded", Some(4096));
    srv.wait_until("the slow client", |_, app| app.ws.len() == 1);
    let slow_id = srv.on_server(|_, app| app.ws[0]);
    let readers: Vec<_> = (0..FAST)
        .map(|_| {
            let mut c = open(srv.addr, "/ws");
            std::thread::spawn(move || {
                for k in 0..MESSAGES {
                    let (fin, op, data) = read_frame(&mut c);
                    assert_eq!((fin, op), (true, 2));
                    assert_same(&data, &payload(k, 16 << 10), &format!("message {k}"));
                }
            })
        })
        .collect();
    for r in readers {
        r.join().expect("a fast reader got every message");
    }
    expect_dropped(&mut slow);
    let (returns, status) =
        srv.on_server(move |s, app| (app.returns.clone(), s.ws(slow_id).close_status()));
    assert_eq!(returns.len(), MESSAGES);
    // The slow reader took the first messages, then was counted out.
    let dropped_at = returns
        .iter()
        .position(|&n| n == FAST)
        .expect("the slow reader was dropped");
    assert!(dropped_at > 0, "it took the first message: {returns:?}");
    assert!(
        returns[..dropped_at].iter().all(|&n| n == FAST + 1),
        "{returns:?}"
    );
    assert!(
        returns[dropped_at..].iter().all(|&n| n == FAST),
        "{returns:?}"
    );
    assert_eq!(status, Some(CloseStatus::Abnormal));
}

/// A socket that a broadcast drops over its bound between two polls is
/// reported by the next poll like any other close: listed in `ws_ready`,
/// counted in its `Activity::closed` (the program's loop hears of it even
/// when it learns of closes only from those).
#[test]
fn a_socket_a_broadcast_drops_between_polls_is_reported_by_the_next_poll() {
    let config = ServerConfig::default()
        .send_buffer_size(Some(SNDBUF))
        .linger_timeout(Duration::from_secs(60));
    let mut server = Server::<App>::with_config(config);
    routes(&mut server);
    let addr = server.start("127.0.0.1", 0).unwrap();
    let mut app = App::default();
    // The client handshakes on its own thread (the server must poll
    // meanwhile), then reads nothing.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(open_with_rcvbuf(addr, "/bounded", Some(4096))));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut client = loop {
        server.poll(&mut app, Duration::from_millis(10)).unwrap();
        if let Ok(c) = rx.try_recv() {
            break c;
        }
        assert!(Instant::now() < deadline, "no handshake");
    };
    let id = app.ws[0];
    // Flush what the handshake left; nothing else happens to the socket.
    let quiet = server.poll(&mut app, Duration::ZERO).unwrap();
    assert_eq!(quiet.closed, 0);
    // Between polls: 16 KiB broadcasts, never written, until the 64 KiB
    // bound drops the socket.
    let mut sent = Vec::new();
    while sent.last() != Some(&0) {
        sent.push(server.broadcast_binary(&app.ws, &payload(sent.len(), 16 << 10)));
        assert!(
            sent.len() <= 8,
            "the 64 KiB bound never dropped it: {sent:?}"
        );
    }
    assert!(server.ws(id).is_closed());
    let next = server.poll(&mut app, Duration::ZERO).unwrap();
    assert_eq!(
        next.closed, 1,
        "the drop counts in the next poll's activity"
    );
    assert_eq!(server.ws_ready(), &[id], "and the socket is listed");
    assert_eq!(server.ws(id).close_status(), Some(CloseStatus::Abnormal));
    // Reported once: the poll after that has nothing more to say of it.
    let after = server.poll(&mut app, Duration::ZERO).unwrap();
    assert_eq!(after.closed, 0);
    assert!(server.ws_ready().is_empty());
    expect_dropped(&mut client);
}

// ---------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------

#[test]
fn members_leave_their_groups_when_their_connections_close() {
    const CLIENTS: usize = 60;
    let srv = server(idle);
    let mut clients: Vec<Option<TcpStream>> =
        (0..CLIENTS).map(|_| Some(open(srv.addr, "/ws"))).collect();
    srv.wait_until("every client", |_, app| app.ws.len() == CLIENTS);
    // Group `all` has everyone, `even` every other client.
    let (all, even, ids) = srv.on_server(|s, app| {
        let (all, even) = (s.new_group(), s.new_group());
        for (i, &id) in app.ws.iter().enumerate() {
            assert!(s.group(all).join(id));
            if i % 2 == 0 {
                assert!(s.group(even).join(id));
            }
        }
        assert!(s.group(all).join(app.ws[0]), "joining twice is harmless");
        (all, even, app.ws.clone())
    });
    assert_eq!(srv.group_len(all), CLIENTS);
    assert_eq!(srv.group_len(even), CLIENTS / 2);
    // Close in a scrambled order; after each, both groups hold exactly the
    // clients still open (their indexes stay right as members move).
    let mut order: Vec<usize> = (0..CLIENTS).collect();
    for i in 0..CLIENTS {
        order.swap(i, (i * 37 + 11) % CLIENTS);
    }
    let mut open_now: Vec<usize> = (0..CLIENTS).collect();
    for (n, &i) in order.iter().enumerate() {
        drop(clients[i].take());
        open_now.retain(|&j| j != i);
        let left = CLIENTS - n - 1;
        srv.wait_until("the closed client to leave", move |s, _| {
            s.group(all).len() == left
        });
        let ids = ids.clone();
        let open_now = open_now.clone();
        srv.on_server(move |s, _| {
            let mut members: Vec<Member> = s.group(all).members().to_vec();
            let mut want: Vec<Member> = open_now.iter().map(|&j| ids[j].into()).collect();
            members.sort_by_key(|m| format!("{m:?}"));
            want.sort_by_key(|m| format!("{m:?}"));
            assert_eq!(members, want, "group `all` after closing client {i}");
            let evens: Vec<WsId> = open_now
                .iter()
                .filter(|&&j| j % 2 == 0)
                .map(|&j| ids[j])
                .collect();
            assert_eq!(s.group(even).len(), evens.len());
            for &id in &evens {
                assert!(s.group(even).contains(id));
            }
            assert!(!s.group(all).contains(ids[i]));
            assert_eq!(s.group(all).broadcast_text("still here?"), open_now.len());
        });
    }
    assert!(srv.on_server(move |s, _| s.group(all).is_empty() && s.group(even).is_empty()));
}

/// A WebSocket that closed with a message the program has not taken
/// leaves its groups at once (a group counts open members only); the
/// program can still take the message, then sees how it ended.
#[test]
fn a_closed_websocket_leaves_its_groups_at_once_and_its_messages_can_still_be_taken() {
    let (srv, group) = group_server();
    let mut c = open(srv.addr, "/ws");
    srv.wait_until("it joined", move |s, _| s.group(group).len() == 1);
    c.write_all(
        &[
            frame(true, 1, b"last words"),
            frame(true, 8, &1000u16.to_be_bytes()),
        ]
        .concat(),
    )
    .unwrap();
    drop(c);
    srv.wait_until("the socket to close", |s, app| {
        s.ws(app.ws[0]).close_status().is_some()
    });
    let (before, sent, got, status) = srv.on_server(move |s, app| {
        let id = app.ws[0];
        let before = (s.group(group).len(), s.group(group).contains(id));
        let sent = s.group(group).broadcast_text("too late");
        let got = s.ws(id).receive();
        (before, sent, got, s.ws(id).close_status())
    });
    assert_eq!(before, (0, false), "a closed socket is no member");
    assert_eq!(sent, 0, "nothing is sent to a closed socket");
    assert_eq!(got, Some(Message::Text("last words".into())));
    assert!(status.is_some());
}

/// Issue #15's ghosts (B3): a program that never receives, and clients
/// that each open a WebSocket, send one message and close. Their slots,
/// kept for the messages, hold no descriptor and do not count toward
/// `max_connections`; they leave their group at once; and at most
/// `max_connections` of them are kept, the oldest dropped first.
#[test]
fn closed_websockets_with_untaken_messages_hold_no_connection_slot() {
    const N: usize = 4;
    let config = ServerConfig::default()
        .max_connections(N)
        // Nothing expires during the test: only the bound drops slots.
        .closed_message_timeout(Duration::from_secs(600));
    let (tx, rx) = mpsc::channel();
    let srv = serve_loop(config, App::default(), idle, move |s| {
        routes(s);
        tx.send(s.new_group()).unwrap();
    });
    let group = rx.recv().unwrap();
    srv.on_server(move |_, app| app.group = Some(group));
    for i in 0..3 * N {
        let mut c = open(srv.addr, "/ws");
        c.write_all(
            &[
                frame(true, 1, format!("message {i}").as_bytes()),
                frame(true, 8, &1000u16.to_be_bytes()),
            ]
            .concat(),
        )
        .unwrap();
        // The server answers the close, then hangs up.
        assert_eq!(common::ws::expect_close(&mut c), 1000, "client {i}");
    }
    srv.wait_until("every socket closed", |s, app| {
        app.ws.len() == 3 * N && app.ws.iter().all(|&id| s.ws(id).is_closed())
    });
    srv.wait_until("every slot retired", move |s, _| {
        s.stats().closed_websockets + s.stats().closed_websockets_dropped == 3 * N
    });
    assert_eq!(srv.group_len(group), 0, "the group counts open members");
    let stats = srv.on_server(|s, _| s.stats());
    assert_eq!(stats.closed_websockets, N, "{stats:?}");
    assert_eq!(stats.closed_websockets_dropped, 2 * N, "{stats:?}");
    assert_eq!(
        stats.connections, N,
        "only the kept closed sockets: {stats:?}"
    );
    assert!(stats.input_buffered < N * 4096, "{stats:?}");
    // A new client is accepted and served although N slots are kept.
    let mut c = open(srv.addr, "/ws");
    srv.wait_until("the new client joined", move |s, _| {
        s.group(group).len() == 1
    });
    assert_eq!(
        srv.on_server(move |s, _| s.group(group).broadcast_text("hello")),
        1
    );
    assert_eq!(read_frame(&mut c), (true, 1, b"hello".to_vec()));
    // The newest closed sockets still hold their messages; the oldest were
    // dropped, messages and all.
    let got = srv.on_server(|s, app| {
        app.ws[..3 * N]
            .iter()
            .map(|&id| (s.ws(id).receive(), s.ws(id).close_status().is_some()))
            .collect::<Vec<_>>()
    });
    for (i, (message, ended)) in got.into_iter().enumerate() {
        if i < 2 * N {
            assert_eq!((message, ended), (None, false), "client {i}");
        } else {
            assert_eq!(message, Some(Message::Text(format!("message {i}"))));
            assert!(ended, "client {i}");
        }
    }
}

/// Ids print for logs (`Display`): `ws#slot.generation` and
/// `sse#slot.generation.response`, different for every connection, also
/// for a new connection in the slot of a closed one.
#[test]
fn ids_print_for_logs_and_differ_per_connection() {
    let srv = server(idle);
    let mut a = open(srv.addr, "/ws");
    let _b = open(srv.addr, "/ws");
    let mut e = TcpStream::connect(srv.addr).unwrap();
    e.write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    srv.wait_until("two sockets and a stream", |_, app| {
        app.ws.len() == 2 && app.sse.len() == 1
    });
    // The first socket goes; a new one may take its slot.
    a.write_all(&frame(true, 8, &1000u16.to_be_bytes()))
        .unwrap();
    let mut rest = Vec::new();
    let _ = a.read_to_end(&mut rest);
    srv.wait_until("first socket closed", |s, app| s.ws(app.ws[0]).is_closed());
    let _c = open(srv.addr, "/ws");
    srv.wait_until("third socket", |_, app| app.ws.len() == 3);
    let (shown, conns) = srv.on_server(|_, app| {
        let mut all: Vec<String> = app.ws.iter().map(|id| id.to_string()).collect();
        all.push(app.sse[0].to_string());
        let mut conns: Vec<String> = app.ws.iter().map(|id| id.conn().to_string()).collect();
        conns.push(app.sse[0].conn().to_string());
        (all, conns)
    });
    // Each id prints its connection's numbers, as its `ConnId` does.
    for (id, conn) in shown.iter().zip(&conns) {
        let numbers = conn.strip_prefix("conn#").unwrap();
        let own = id.split_once('#').unwrap().1;
        let on = own == numbers || own.starts_with(&format!("{numbers}."));
        assert!(on, "{id} is not on {conn}");
    }
    let numbers = |s: &str, prefix: &str| -> Vec<u32> {
        let rest = s
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{s:?} lacks {prefix:?}"));
        rest.split('.').map(|n| n.parse().unwrap()).collect()
    };
    for ws in &shown[..3] {
        assert_eq!(numbers(ws, "ws#").len(), 2, "{ws}");
    }
    assert_eq!(numbers(&shown[3], "sse#").len(), 3, "{}", shown[3]);
    let mut distinct = shown.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "every id prints differently: {shown:?}");
}

#[test]
fn join_leave_and_remove() {
    let srv = server(idle);
    let mut a = open(srv.addr, "/ws");
    let mut b = open(srv.addr, "/ws");
    srv.wait_until("both", |_, app| app.ws.len() == 2);
    let (room, sent) = srv.on_server(|s, app| {
        let room = s.new_group();
        let (a, b) = (app.ws[0], app.ws[1]);
        assert!(s.group(room).join(a) && s.group(room).join(b));
        assert!(s.group(room).leave(b));
        assert!(!s.group(room).leave(b), "not a member any more");
        assert_eq!(s.group(room).members(), &[Member::Ws(a)]);
        let sent = s.group(room).broadcast_text("only a");
        // Kinds that are not WebSockets get nothing from a text broadcast.
        assert_eq!(s.group(room).broadcast_event(&SseEvent::new("x")), 0);
        assert_eq!(s.group(room).broadcast_chunk(b"x"), 0);
        (room, sent)
    });
    assert_eq!(sent, 1);
    assert_eq!(read_frame(&mut a), (true, 1, b"only a".to_vec()));
    let still = srv.on_server(move |s, app| {
        s.group(room).remove();
        assert!(!s.group(room).exists());
        assert!(
            !s.group(room).join(app.ws[1]),
            "a removed group cannot be joined"
        );
        assert_eq!(s.group(room).broadcast_text("nobody"), 0);
        // The members stay connected.
        s.ws(app.ws[0]).send_text("after").is_ok() && s.ws(app.ws[1]).send_text("after").is_ok()
    });
    assert!(still);
    assert_eq!(read_frame(&mut a), (true, 1, b"after".to_vec()));
    assert_eq!(read_frame(&mut b), (true, 1, b"after".to_vec()));
}

#[test]
fn a_stream_that_ended_leaves_its_group_and_its_connection_serves_on() {
    let (srv, group) = group_server();
    let mut kept = connect(srv.addr);
    kept.write_all(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    read_head(&mut kept);
    let mut events = connect(srv.addr);
    events
        .write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    read_head(&mut events);
    srv.wait_until("both joined", move |s, _| s.group(group).len() == 2);
    let lens = srv.on_server(move |s, app| {
        assert_eq!(s.group(group).broadcast_chunk(b"one"), 1);
        s.stream(app.streams[0]).end();
        let after_end = s.group(group).len();
        assert!(!s.group(group).contains(app.streams[0]));
        s.sse(app.sse[0]).close();
        (after_end, s.group(group).len())
    });
    assert_eq!(lens, (1, 0));
    assert_same(
        &read_n(&mut kept, 8 + 5),
        &[&chunk(b"one")[..], b"0\r\n\r\n"].concat(),
        "the stream and its end",
    );
    // The connection is back to keep-alive and takes another request.
    kept.write_all(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    read_head(&mut kept);
    srv.wait_until("the new stream joined", move |s, _| {
        s.group(group).len() == 1
    });
    assert_eq!(
        srv.on_server(move |s, _| s.group(group).broadcast_chunk(b"two")),
        1
    );
    assert_same(&read_n(&mut kept, 8), &chunk(b"two"), "the second stream");
}

#[test]
fn a_group_of_mixed_kinds_joined_from_handlers() {
    let (srv, group) = group_server();
    let mut ws: Vec<TcpStream> = (0..3).map(|_| open(srv.addr, "/ws")).collect();
    let mut sse: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(srv.addr);
            s.write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            read_head(&mut s);
            s
        })
        .collect();
    let mut kept: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(srv.addr);
            s.write_all(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            read_head(&mut s);
            s
        })
        .collect();
    // Every handler joined its client through the outbox.
    srv.wait_until("all seven joined", move |s, _| s.group(group).len() == 7);
    let counts = srv.on_server(move |s, _| {
        let big = payload(5, 3000);
        [
            s.group(group).broadcast_text("hello"),
            s.group(group).broadcast_binary(&big),
            s.group(group)
                .broadcast_event(&SseEvent::new("tick").id("1")),
            s.group(group).broadcast_chunk(&big),
        ]
    });
    assert_eq!(counts, [3, 3, 2, 2]);
    let big = payload(5, 3000);
    let want_ws = [server_frame(true, 1, b"hello"), server_frame(true, 2, &big)].concat();
    for (i, c) in ws.iter_mut().enumerate() {
        assert_same(
            &read_n(c, want_ws.len()),
            &want_ws,
            &format!("WebSocket {i}"),
        );
    }
    let want_sse = b"id: 1\ndata: tick\n\n";
    for (i, c) in sse.iter_mut().enumerate() {
        assert_same(
            &read_n(c, want_sse.len()),
            want_sse,
            &format!("event stream {i}"),
        );
    }
    for (i, c) in kept.iter_mut().enumerate() {
        assert_same(
            &read_n(c, 3000 + 7),
            &chunk(&big),
            &format!("kept stream {i}"),
        );
    }
}

#[test]
fn another_thread_joins_leaves_and_broadcasts_to_a_group() {
    let srv = server(idle);
    let mut clients: Vec<TcpStream> = (0..4).map(|_| open(srv.addr, "/ws")).collect();
    let mut events = connect(srv.addr);
    events
        .write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    read_head(&mut events);
    srv.wait_until("all connected", |_, app| {
        app.ws.len() == 4 && app.sse.len() == 1
    });
    let (sender, group, ws, sse) = srv.on_server(|s, app| {
        (
            s.sender().unwrap(),
            s.new_group(),
            app.ws.clone(),
            app.sse[0],
        )
    });
    let thread = std::thread::spawn(move || {
        for &id in &ws {
            sender.join(group, id).unwrap();
        }
        sender.join(group, sse).unwrap();
        sender.leave(group, ws[3]).unwrap();
        sender
            .group_send(group, Message::Text("from a thread".into()))
            .unwrap();
        sender
            .group_send(group, Message::Binary(payload(7, 2000)))
            .unwrap();
        sender.group_event(group, &SseEvent::new("evt")).unwrap();
        sender
            .broadcast(&ws, Message::Text("to the list".into()))
            .unwrap();
    });
    thread.join().unwrap();
    let want = [
        server_frame(true, 1, b"from a thread"),
        server_frame(true, 2, &payload(7, 2000)),
        server_frame(true, 1, b"to the list"),
    ]
    .concat();
    for (i, c) in clients.iter_mut().take(3).enumerate() {
        assert_same(&read_n(c, want.len()), &want, &format!("member {i}"));
    }
    // The one that left gets only the list broadcast.
    assert_eq!(
        read_frame(&mut clients[3]),
        (true, 1, b"to the list".to_vec())
    );
    assert_same(&read_n(&mut events, 11), b"data: evt\n\n", "event stream");
    assert_eq!(srv.group_len(group), 4);
}

/// Issue #15's B4: a thread floods a group with sends while the program
/// polls. One poll carries out a bounded share of the queue (the rest waits
/// for the next poll, which does not wait for the network); every send is
/// either refused with `SenderQueueFull` or arrives, in the order queued.
#[test]
fn a_sender_flood_is_carried_out_a_share_per_poll_in_order() {
    const BEFORE: usize = 10_000;
    const DURING: usize = 100_000;
    let mut server = Server::<App>::new();
    routes(&mut server);
    let group = server.new_group();
    let mut app = App {
        group: Some(group),
        ..App::default()
    };
    let addr = server.start("127.0.0.1", 0).unwrap();
    // The one member reads everything on its own thread until "end".
    let reader = std::thread::spawn(move || {
        let mut c = open(addr, "/ws");
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut got = Vec::new();
        loop {
            let (_, op, p) = read_frame(&mut c);
            assert_eq!(op, 1);
            if p == b"end" {
                return got;
            }
            got.push(String::from_utf8(p).unwrap());
        }
    });
    let poll = |server: &mut Server<App>, app: &mut App| {
        server.poll(app, Duration::from_millis(5)).unwrap();
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.group(group).is_empty() {
        poll(&mut server, &mut app);
        assert!(Instant::now() < deadline, "the member joined");
    }
    let sender = server.sender().unwrap();
    // Queued while the loop does not poll: one poll runs a share of it.
    let flood = sender.clone();
    std::thread::spawn(move || {
        for i in 0..BEFORE {
            flood
                .group_send(group, Message::Text(format!("m{i}")))
                .unwrap();
        }
    })
    .join()
    .unwrap();
    assert_eq!(server.stats().sender_queued, BEFORE);
    poll(&mut server, &mut app);
    let left = server.stats().sender_queued;
    assert!(left > 0 && BEFORE - left <= 64, "{left} of {BEFORE} left");
    assert!(server
        .next_deadline()
        .is_some_and(|at| at <= Instant::now()));
    // Then a flood while the loop polls.
    let flood = sender.clone();
    let producer = std::thread::spawn(move || {
        let mut accepted = Vec::new();
        let mut refused = 0;
        for i in BEFORE..BEFORE + DURING {
            match flood.group_send(group, Message::Text(format!("m{i}"))) {
                Ok(()) => accepted.push(i),
                Err(pollserve::Error::SenderQueueFull { .. }) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        (accepted, refused)
    });
    let mut largest_share = 0;
    while !producer.is_finished() || server.stats().sender_queued > 0 {
        let before = server.stats().sender_queued;
        poll(&mut server, &mut app);
        let after = server.stats().sender_queued;
        largest_share = largest_share.max(before.saturating_sub(after));
        assert!(Instant::now() < deadline, "{after} commands left");
    }
    let (accepted, refused) = producer.join().unwrap();
    assert!(largest_share <= 64, "{largest_share} commands in one poll");
    sender
        .group_send(group, Message::Text("end".into()))
        .unwrap();
    while !reader.is_finished() {
        poll(&mut server, &mut app);
        assert!(Instant::now() < deadline, "the reader got everything");
    }
    let got = reader.join().unwrap();
    let want: Vec<String> = (0..BEFORE)
        .chain(accepted.iter().copied())
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(got.len(), want.len(), "{refused} refused");
    assert!(got == want, "the messages arrived in the order queued");
}

/// The [`MAX_SENDER_QUEUE`](pollserve::MAX_SENDER_QUEUE) bound counts every
/// command not yet carried out: one poll frees only the share it ran.
#[test]
fn the_sender_queue_bound_frees_only_what_a_poll_ran() {
    let mut server = Server::<()>::new();
    let nobody = server.new_group();
    let sender = server.sender().unwrap();
    let big = "x".repeat(1 << 20);
    let mut queued = 0;
    let full = loop {
        match sender.group_send(nobody, Message::Text(big.clone())) {
            Ok(()) => queued += 1,
            Err(e) => break e,
        }
        assert!(queued <= 64, "the bound let {queued} MiB in");
    };
    assert!(
        matches!(full, pollserve::Error::SenderQueueFull { .. }),
        "{full}"
    );
    assert!(queued >= 60, "{queued}");
    server.poll(&mut (), Duration::ZERO).unwrap();
    // A 1 MiB command is over a round's 256 KiB: one ran, one fits again.
    assert_eq!(server.stats().sender_queued, queued - 1);
    assert!(sender
        .group_send(nobody, Message::Text(big.clone()))
        .is_ok());
    assert!(sender.group_send(nobody, Message::Text(big)).is_err());
    let mut polls = 0;
    while server.stats().sender_queued > 0 {
        server.poll(&mut (), Duration::ZERO).unwrap();
        polls += 1;
    }
    assert_eq!(polls, queued, "one 1 MiB command per poll");
}

// ---------------------------------------------------------------------------
// Over TLS: many frames per vectored write
// ---------------------------------------------------------------------------

#[cfg(feature = "tls")]
#[test]
fn broadcast_over_tls_delivers_every_frame_in_order() {
    use common::tls::{pki, tls13, tls_connect};
    const CLIENTS: usize = 20;
    let (tx, rx) = mpsc::channel();
    let tls = pki().server.tls();
    let srv = serve_loop(ServerConfig::default(), App::default(), idle, move |s| {
        routes(s);
        tx.send(s.start_tls("127.0.0.1", 0, tls).unwrap()).unwrap();
    });
    let https = rx.recv().unwrap();
    let config = tls13();
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut s = tls_connect(https, &config);
            write!(
                s,
                "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {}\r\n\r\n",
                common::ws::KEY
            )
            .unwrap();
            s.flush().unwrap();
            assert!(read_head(&mut s).starts_with("HTTP/1.1 101"));
            s
        })
        .collect();
    srv.wait_until("every client", |_, app| app.ws.len() == CLIENTS);
    // Frames of 300 bytes, 4 KiB and 64 bytes, own and shared, 200 per
    // client queued at once: vectored writes of many slices each.
    srv.on_server(|s, app| {
        let ids = app.ws.clone();
        for k in 0..ROUNDS {
            for r in fan_out_round(s, &ids, k) {
                assert_eq!(r, CLIENTS);
            }
            assert_eq!(s.broadcast_binary(&ids, &payload(k, 300)), CLIENTS);
        }
    });
    let expected: Vec<u8> = (0..ROUNDS)
        .flat_map(|k| [expected_round(k), server_frame(true, 2, &payload(k, 300))].concat())
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        assert_same(
            &read_n(c, expected.len()),
            &expected,
            &format!("wss client {i}"),
        );
    }
}
