//! WebSocket behaviour over raw loopback sockets: handshake, every close code,
//! fragments, control frames between fragments, limits, backpressure, threads.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use common::ws::*;
use common::*;
use pollserve::ws::{CloseCode, CloseStatus, Message, WsConfig, WsId, WsOptions};
use pollserve::{Method, Server, ServerConfig};

#[derive(Default)]
struct App {
    sockets: Vec<WsId>,
}

/// An echo server like the seed's example; `/small` uses the seed's limits.
fn echo_server() -> TestServer<App> {
    serve_echo(ServerConfig::default())
}

fn serve_echo(config: ServerConfig) -> TestServer<App> {
    ws_server(config, |server, app| {
        for &id in &app.sockets {
            while let Some(m) = server.ws(id).receive() {
                if m.as_bytes() == b"close-me" {
                    let _ = server.ws(id).close(CloseCode::new(4001).unwrap(), "bye é");
                    continue;
                }
                let _ = server.ws(id).send(&m);
            }
        }
        app.sockets.retain(|&id| !server.ws(id).is_closed());
    })
}

/// A server with the WebSocket routes, running `work` after every poll.
fn ws_server(
    config: ServerConfig,
    work: impl FnMut(&mut Server<App>, &mut App) + Send + 'static,
) -> TestServer<App> {
    serve_loop(config, App::default(), work, ws_routes)
}

/// `/ws` (subprotocols `chat`, `superchat`), `/small` (the seed's limits and
/// a 300 ms fragment timeout) and `/origin` (only `http://good.example`).
fn ws_routes(server: &mut Server<App>) {
    server
        .route("/ws", Method::GET, |req, app: &mut App| {
            let (resp, id) = req.websocket().protocols(&["chat", "superchat"]).accept()?;
            app.sockets.push(id);
            Ok(resp)
        })
        .unwrap();
    server
        .route("/small", Method::GET, |req, app: &mut App| {
            let mut options = WsOptions::embedded();
            options.protocol.fragment_timeout = Some(Duration::from_millis(300));
            let (resp, id) = req.websocket().options(options).accept()?;
            app.sockets.push(id);
            Ok(resp)
        })
        .unwrap();
    server
        .route("/origin", Method::GET, |req, app: &mut App| {
            let (resp, id) = req
                .websocket()
                .check_origin(|o| o == Some("http://good.example"))
                .accept()?;
            app.sockets.push(id);
            Ok(resp)
        })
        .unwrap();
}

#[test]
fn handshake_accepts_and_refuses() {
    let srv = echo_server();
    let (_s, head) = handshake(
        srv.addr,
        "/ws",
        "Sec-WebSocket-Protocol: other, superchat\r\n",
    );
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Sec-WebSocket-Protocol: superchat\r\n"),
        "{head}"
    );
    assert!(head.contains("Connection: Upgrade\r\n"));

    let bad = |raw: &str| request(srv.addr, raw);
    let base = "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    let r = bad(&format!(
        "{base}Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: {KEY}\r\n\r\n"
    ));
    assert_eq!(
        (r.status, r.header("sec-websocket-version")),
        (426, Some("13"))
    );
    let r = bad(&format!(
        "{base}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n"
    ));
    assert_eq!(r.status, 400);
    let r = bad(&format!("{base}Sec-WebSocket-Version: 13\r\n\r\n"));
    assert_eq!(r.status, 400);
    let r = bad(&format!(
        "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n\r\n"
    ));
    assert_eq!(r.status, 400);
    let r = bad("GET /ws HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 400);
    // Origin hook.
    let (_, head) = handshake(srv.addr, "/origin", "Origin: http://evil.example\r\n");
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let (_, head) = handshake(srv.addr, "/origin", "Origin: http://good.example\r\n");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
}

#[test]
fn echo_fragments_with_ping_between_and_split_code_point() {
    let srv = echo_server();
    let mut s = open(srv.addr, "/ws");
    s.write_all(&frame(true, 1, b"hello")).unwrap();
    assert_eq!(read_frame(&mut s), (true, 1, b"hello".to_vec()));
    // "é" is C3 A9: split it across two continuation frames, with a ping between.
    let mut raw = frame(false, 1, b"caf\xC3");
    raw.extend(frame(true, 9, b"are you there"));
    raw.extend(frame(false, 0, b"\xA9 "));
    raw.extend(frame(true, 0, b"au lait"));
    s.write_all(&raw).unwrap();
    assert_eq!(
        read_frame(&mut s),
        (true, 10, b"are you there".to_vec()),
        "pong first"
    );
    assert_eq!(
        read_frame(&mut s),
        (true, 1, "café au lait".as_bytes().to_vec())
    );
    // Binary, 70 KiB (64-bit length), delivered one byte per write.
    let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let raw = frame(true, 2, &data);
    for chunk in raw.chunks(1).take(64) {
        s.write_all(chunk).unwrap();
    }
    s.write_all(&raw[64..]).unwrap();
    assert_eq!(read_frame(&mut s), (true, 2, data));
    // Server-initiated close with a reason.
    s.write_all(&frame(true, 1, b"close-me")).unwrap();
    let (_, op, p) = read_frame(&mut s);
    assert_eq!(op, 8);
    assert_eq!(&p[..2], &4001u16.to_be_bytes());
    assert_eq!(&p[2..], "bye é".as_bytes());
}

#[test]
fn one_byte_per_write_everything() {
    let srv = echo_server();
    let mut s = open(srv.addr, "/ws");
    let mut raw = frame(false, 1, b"one ");
    raw.extend(frame(true, 9, b""));
    raw.extend(frame(true, 0, b"byte"));
    for b in &raw {
        s.write_all(&[*b]).unwrap();
        s.flush().unwrap();
    }
    assert_eq!(read_frame(&mut s).1, 10);
    assert_eq!(read_frame(&mut s), (true, 1, b"one byte".to_vec()));
    s.write_all(&frame(true, 8, &1000u16.to_be_bytes()))
        .unwrap();
    let (_, op, p) = read_frame(&mut s);
    assert_eq!((op, p), (8, 1000u16.to_be_bytes().to_vec()), "close echoed");
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap(),
        0,
        "server closes the socket"
    );
}

#[test]
fn protocol_errors_close_with_the_right_code() {
    let srv = echo_server();
    let unmasked = {
        let mut f = vec![0x81, 2];
        f.extend_from_slice(b"hi");
        f
    };
    let mut huge_len = vec![0x82, 0x80 | 127];
    huge_len.extend_from_slice(&(1u64 << 63).to_be_bytes());
    huge_len.extend_from_slice(&[0, 0, 0, 0]);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", unmasked, 1002),
        (
            "rsv1",
            {
                let mut f = frame(true, 1, b"x");
                f[0] |= 0x40;
                f
            },
            1002,
        ),
        ("reserved opcode 3", frame(true, 3, b""), 1002),
        ("reserved opcode 0xB", frame(true, 0xB, b""), 1002),
        ("cont without start", frame(true, 0, b"x"), 1002),
        (
            "new data in fragmented",
            [frame(false, 1, b"a"), frame(true, 1, b"b")].concat(),
            1002,
        ),
        ("ping too long", frame(true, 9, &[0; 126]), 1002),
        ("fragmented ping", frame(false, 9, b""), 1002),
        ("64-bit length top bit", huge_len, 1002),
        ("bad utf-8", frame(true, 1, b"\xff"), 1007),
        (
            "bad utf-8 across fragments",
            [frame(false, 1, b"\xC3"), frame(true, 0, b"(")].concat(),
            1007,
        ),
        ("close length 1", frame(true, 8, b"\x03"), 1002),
        (
            "close code 1005",
            frame(true, 8, &1005u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 999",
            frame(true, 8, &999u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 2999",
            frame(true, 8, &2999u16.to_be_bytes()),
            1002,
        ),
        ("close bad reason", frame(true, 8, b"\x03\xe8\xff"), 1002),
    ];
    for (name, raw, code) in cases {
        let mut s = open(srv.addr, "/ws");
        s.write_all(&raw).unwrap();
        assert_eq!(expect_close(&mut s), code, "{name}");
    }
}

#[test]
fn fail_fast_inside_a_large_text_frame() {
    let srv = echo_server();
    let mut s = open(srv.addr, "/ws");
    // Announce 1 MiB of text, send only a bad prefix: the close must come
    // before the rest of the frame is sent.
    let mut payload = vec![b'a'; 1 << 20];
    payload[10] = 0xff;
    let raw = frame(true, 1, &payload);
    s.write_all(&raw[..4096]).unwrap();
    let (_, op, p) = read_frame(&mut s);
    assert_eq!((op, &p[..2]), (8, &1007u16.to_be_bytes()[..]));
}

#[test]
fn seed_limits_size_fragments_and_timeout() {
    let srv = echo_server();
    // 4096 bytes pass, 4097 are refused with 1009.
    let mut s = open(srv.addr, "/small");
    s.write_all(&frame(true, 2, &[1; 4096])).unwrap();
    assert_eq!(read_frame(&mut s).2.len(), 4096);
    s.write_all(&frame(true, 2, &[1; 4097])).unwrap();
    assert_eq!(expect_close(&mut s), 1009);
    // 16 fragments pass, 17 are refused with 1008.
    let mut s = open(srv.addr, "/small");
    let msg = |n: usize| {
        let mut raw = frame(false, 1, b"a");
        for _ in 0..n - 2 {
            raw.extend(frame(false, 0, b"b"));
        }
        raw.extend(frame(true, 0, b"c"));
        raw
    };
    s.write_all(&msg(16)).unwrap();
    assert_eq!(read_frame(&mut s).2.len(), 16);
    s.write_all(&msg(17)).unwrap();
    assert_eq!(expect_close(&mut s), 1008);
    // A fragmented message that stalls is closed with 1008.
    let mut s = open(srv.addr, "/small");
    s.write_all(&frame(false, 1, b"start")).unwrap();
    assert_eq!(expect_close(&mut s), 1008);
}

#[test]
fn slow_reader_is_disconnected_and_others_continue() {
    let srv = ws_server(ServerConfig::default(), |server, app| {
        // Push 16 KiB to every socket on every poll (a message must fit the
        // 64 KiB send bound of `/small` to be queued at all); nobody reads
        // one of them.
        for &id in &app.sockets {
            while server.ws(id).receive().is_some() {}
            let _ = server.ws(id).send_binary(&[7u8; 16384]);
        }
        app.sockets.retain(|&id| !server.ws(id).is_closed());
    });
    let stalled = open(srv.addr, "/small"); // 64 KiB send bound
    let mut fine = open(srv.addr, "/ws");
    let mut got = 0usize;
    while got < 4 << 20 {
        got += read_frame(&mut fine).2.len();
    }
    // The stalled client's socket is closed by the server: reading what is
    // buffered ends in EOF or reset rather than blocking forever.
    let mut stalled = stalled;
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stalled.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("stalled reader was not disconnected: {e}"),
        }
    }
}

#[test]
fn many_websockets_broadcast_and_cross_thread_sender() {
    let (tx, rx) = mpsc::channel();
    let srv = ws_server(ServerConfig::default(), move |server, app| {
        if app.sockets.len() == 50 {
            let sender = server.sender().unwrap();
            let ids = app.sockets.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                sender
                    .broadcast(&ids, Message::Text("from a thread".into()))
                    .unwrap();
                tx.send(()).unwrap();
            });
            server.broadcast_text(&app.sockets, "broadcast");
            app.sockets.push(app.sockets[0]); // only once
        }
    });
    let mut clients: Vec<TcpStream> = (0..50).map(|_| open(srv.addr, "/ws")).collect();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    for c in clients.iter_mut() {
        let mut got = vec![read_frame(c).2, read_frame(c).2];
        got.sort();
        assert_eq!(got, vec![b"broadcast".to_vec(), b"from a thread".to_vec()]);
    }
}

#[test]
fn messages_received_before_the_peer_left_are_not_lost() {
    let (tx, rx) = mpsc::channel();
    let srv = ws_server(ServerConfig::default(), move |server, app| {
        // Receive only once the client is gone.
        for &id in &app.sockets {
            if server.ws(id).close_status().is_some() {
                let mut got = Vec::new();
                while let Some(m) = server.ws(id).receive() {
                    got.push(m);
                }
                tx.send((got, server.ws(id).close_status())).unwrap();
            }
        }
        app.sockets
            .retain(|&id| server.ws(id).close_status().is_none());
    });
    let mut s = open(srv.addr, "/ws");
    s.write_all(
        &[
            frame(true, 1, b"one"),
            frame(true, 2, b"two"),
            frame(true, 8, &1000u16.to_be_bytes()),
        ]
        .concat(),
    )
    .unwrap();
    let (got, status) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        got,
        vec![
            Message::Text("one".into()),
            Message::Binary(b"two".to_vec())
        ]
    );
    assert_eq!(
        status,
        Some(CloseStatus::Peer {
            code: Some(CloseCode::NORMAL),
            reason: String::new()
        })
    );
    let _ = WsConfig::default();
}

#[test]
fn ws_ready_lists_sockets_with_news_once_per_poll() {
    let (tx, rx) = mpsc::channel();
    let srv = ws_server(ServerConfig::default(), move |server, app| {
        let ready = server.ws_ready().to_vec();
        let mut unique = ready.clone();
        unique.dedup();
        assert_eq!(unique.len(), ready.len(), "listed once");
        for &id in &ready {
            assert!(app.sockets.contains(&id));
            while let Some(m) = server.ws(id).receive() {
                let _ = server.ws(id).send(&m);
            }
            if server.ws(id).close_status().is_some() {
                tx.send(id).unwrap();
            }
        }
    });
    let mut a = open(srv.addr, "/ws");
    let mut b = open(srv.addr, "/ws");
    // Several messages in one write: one listing, every message echoed.
    a.write_all(
        &[
            frame(true, 1, b"a1"),
            frame(true, 1, b"a2"),
            frame(true, 1, b"a3"),
        ]
        .concat(),
    )
    .unwrap();
    for want in [b"a1", b"a2", b"a3"] {
        assert_eq!(read_frame(&mut a).2, want.to_vec());
    }
    b.write_all(&frame(true, 2, b"b")).unwrap();
    assert_eq!(read_frame(&mut b).2, b"b".to_vec());
    // An ending socket is listed too.
    b.write_all(&frame(true, 8, &1000u16.to_be_bytes()))
        .unwrap();
    assert_eq!(read_frame(&mut b).1, 8);
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
}

/// A socket's end is news once: a peer's close and its EOF, or a message
/// over the size limit followed by the rest of its bytes, list the id in one
/// poll, not in every poll until the connection is gone.
#[test]
fn an_ending_socket_is_listed_once() {
    let (tx, rx) = mpsc::channel();
    let srv = ws_server(ServerConfig::default(), move |server, _| {
        for id in server.ws_ready().to_vec() {
            while server.ws(id).receive().is_some() {}
            let _ = tx.send((id, server.ws(id).close_status()));
        }
    });
    let listings = |rx: &mpsc::Receiver<_>| -> Vec<(pollserve::ws::WsId, Option<CloseStatus>)> {
        // Wait for the first listing, then for any more for a while.
        let mut all = vec![rx.recv_timeout(Duration::from_secs(10)).expect("listed")];
        while let Ok(more) = rx.recv_timeout(Duration::from_millis(300)) {
            all.push(more);
        }
        all
    };
    let mut a = open(srv.addr, "/ws");
    a.write_all(&frame(true, 8, &1000u16.to_be_bytes()))
        .unwrap();
    assert_eq!(expect_close(&mut a), 1000);
    drop(a);
    let seen = listings(&rx);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        matches!(seen[0].1, Some(CloseStatus::Peer { .. })),
        "{seen:?}"
    );
    // `/small` allows 4096-byte messages: a 1 MiB one fails the socket, and
    // the rest of its bytes, still arriving, are not news.
    let mut b = open(srv.addr, "/small");
    let big = frame(true, 2, &vec![7u8; 1 << 20]);
    let _ = b.write_all(&big);
    assert_eq!(expect_close(&mut b), 1009);
    let seen = listings(&rx);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        matches!(seen[0].1, Some(CloseStatus::Failed(_))),
        "{seen:?}"
    );
}

/// `receive_into` with one slot shared by every socket: allocations of earlier
/// messages (text and binary, small and large) carry no bytes into later ones,
/// kinds are kept, and fragmented messages assemble correctly in a recycled
/// buffer.
#[test]
fn receive_into_recycles_buffers_without_leaking_bytes() {
    let srv = ws_server(ServerConfig::default(), {
        let mut slot = Message::Text(String::new());
        move |server, _app| {
            for id in server.ws_ready().to_vec() {
                while server.ws(id).receive_into(&mut slot) {
                    let _ = server.ws(id).send(&slot);
                }
            }
        }
    });
    let mut a = open(srv.addr, "/ws");
    let mut b = open(srv.addr, "/ws");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mid = "é".repeat(40_000);
    let cases: Vec<(u8, Vec<u8>)> = vec![
        (2, big.clone()),
        (1, b"x".to_vec()),
        (1, mid.clone().into_bytes()),
        (2, Vec::new()),
        (2, vec![7; 126]),
        (1, "short ☺".into()),
        (2, big[..70_000].to_vec()),
        (2, b"y".to_vec()),
    ];
    for round in 0..3 {
        for (i, (op, payload)) in cases.iter().enumerate() {
            let s = if (i + round) % 2 == 0 { &mut a } else { &mut b };
            s.write_all(&frame(true, *op, payload)).unwrap();
            let (fin, got_op, got) = read_frame(s);
            assert!(fin);
            assert_eq!((got_op, got.len()), (*op, payload.len()), "case {i}");
            assert!(got == *payload, "case {i} round {round}: payload differs");
        }
        // Several messages in one write, one of them fragmented with a ping
        // between its fragments.
        a.write_all(
            &[
                frame(true, 2, &big[..1000]),
                frame(false, 1, "ab".as_bytes()),
                frame(true, 9, b"p"),
                frame(true, 0, "c☺".as_bytes()),
                frame(true, 2, b"z"),
            ]
            .concat(),
        )
        .unwrap();
        // The pong is written by the poll itself, ahead of the echoes the
        // program sends afterwards.
        let frames: Vec<_> = (0..4).map(|_| read_frame(&mut a)).collect();
        let (pongs, data): (Vec<_>, Vec<_>) = frames.into_iter().partition(|f| f.1 == 10);
        assert_eq!(pongs, vec![(true, 10, b"p".to_vec())]);
        assert_eq!(
            data,
            vec![
                (true, 2, big[..1000].to_vec()),
                (true, 1, "abc☺".as_bytes().to_vec()),
                (true, 2, b"z".to_vec())
            ]
        );
    }
}

/// A poll round reads a bounded amount (256 KiB between connections) and
/// returns: ten sockets with a 40,000-byte message each already waiting are
/// not all read in one round (at most seven are), the next poll is due at
/// once (`next_deadline`), and the following rounds drive the sockets left
/// over, every message intact.
#[test]
fn a_poll_round_reads_a_bounded_amount_and_the_rest_follows_at_once() {
    const CLIENTS: usize = 10;
    const SIZE: usize = 40_000;
    let mut server = Server::<App>::new();
    ws_routes(&mut server);
    server.start("127.0.0.1", 0).unwrap();
    let addr = server.local_addr().unwrap();
    let (opened, all_open) = mpsc::channel();
    let (go, write) = mpsc::channel::<()>();
    let (written, all_written) = mpsc::channel();
    let clients = std::thread::spawn(move || {
        let mut socks: Vec<TcpStream> = (0..CLIENTS).map(|_| open(addr, "/ws")).collect();
        opened.send(()).unwrap();
        write.recv().unwrap();
        for (i, s) in socks.iter_mut().enumerate() {
            s.write_all(&frame(true, 2, &vec![i as u8; SIZE])).unwrap();
        }
        written.send(()).unwrap();
        socks
    });
    let mut app = App::default();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while all_open.try_recv().is_err() || app.sockets.len() < CLIENTS {
        assert!(std::time::Instant::now() < deadline, "handshakes");
        server.poll(&mut app, Duration::from_millis(5)).unwrap();
    }
    // Every message is in the server's socket buffers before the next poll.
    go.send(()).unwrap();
    all_written.recv_timeout(Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let mut got = vec![None; CLIENTS];
    let mut take = |server: &mut Server<App>, app: &App| -> usize {
        let mut n = 0;
        for id in server.ws_ready().to_vec() {
            while let Some(Message::Binary(data)) = server.ws(id).receive() {
                let i = app.sockets.iter().position(|&s| s == id).unwrap();
                got[i] = Some(data);
                n += 1;
            }
        }
        n
    };
    server.poll(&mut app, Duration::ZERO).unwrap();
    let first = take(&mut server, &app);
    assert!(
        (1..=7).contains(&first),
        "{first} of {CLIENTS} messages in the first round"
    );
    let due = server.next_deadline().expect("the rest is due at once");
    assert!(due <= std::time::Instant::now());
    let mut total = first;
    let mut rounds = 1;
    while total < CLIENTS {
        assert!(
            rounds < 20,
            "{total} of {CLIENTS} messages after {rounds} rounds"
        );
        // No waiting: the connections left over are driven at once.
        server.poll(&mut app, Duration::ZERO).unwrap();
        total += take(&mut server, &app);
        rounds += 1;
    }
    for (i, data) in got.iter().enumerate() {
        assert_eq!(
            data.as_deref(),
            Some(&vec![i as u8; SIZE][..]),
            "socket {i}"
        );
    }
    drop(clients.join().unwrap());
}

/// Many sockets echoing 16 KiB messages in bursts, with small socket
/// buffers: rounds run out of read budget and leave connections for the
/// next round, while echoes wait for their socket to take them, so
/// deferred connections meet readable and writable edges in every order.
/// No echo may be lost or stall. (The one such race found so far — an edge
/// arriving for a connection already driven in the same round — came from
/// the 500 × 16 KiB benchmark's setup; this test exercises the paths but
/// did not reproduce that race.)
#[test]
fn bursts_of_large_messages_on_many_sockets_are_all_echoed() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 100;
    const ROUNDS: usize = 6;
    const SIZE: usize = 16 * 1024;
    need_descriptors((THREADS * PER_THREAD * 2 + 64) as u64);
    // Small socket buffers on both sides: an echo does not fit at once,
    // so its socket turns writable again only as the client reads.
    let srv = serve_echo(ServerConfig::default().send_buffer_size(Some(4096)));
    let addr = srv.addr;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let mut socks: Vec<TcpStream> = (0..PER_THREAD)
                    .map(|_| {
                        let s = connect_with_buffers(addr, None, Some(4096));
                        let (s, head) = handshake_on(s, "/ws", "");
                        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
                        s
                    })
                    .collect();
                for s in &socks {
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                }
                for round in 0..ROUNDS {
                    // Everyone writes first, then everyone reads: the server
                    // gets a burst, and its echoes wait in full sockets.
                    for (i, s) in socks.iter_mut().enumerate() {
                        let fill = (t * 31 + i * 7 + round) as u8;
                        s.write_all(&frame(true, 2, &vec![fill; SIZE])).unwrap();
                    }
                    for (i, s) in socks.iter_mut().enumerate() {
                        let fill = (t * 31 + i * 7 + round) as u8;
                        let (_, op, data) = read_frame(s);
                        assert_eq!(op, 2);
                        assert!(data.len() == SIZE && data.iter().all(|&b| b == fill));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
