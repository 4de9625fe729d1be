//! The load generator's checks can fail: `loadgen` must exit non-zero when a
//! server answers wrongly, and succeed against a correct one. Servers here are
//! small stand-ins on 127.0.0.1 (a canned HTTP responder, a pollserve echo
//! that can corrupt one byte, pollserve over TLS), each run bounded to a
//! fraction of a second.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pollserve::tls::TlsConfig;
use pollserve::ws::Message;
use pollserve::{Method, Response, Server};

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("run loadgen")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn expect_file(name: &str, body: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pollserve-loadgen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write expected body");
    path
}

/// Serves every request on every connection with `response` until `stop`.
fn canned_http(response: &'static [u8]) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stop2.load(Ordering::Relaxed) {
                return;
            }
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut have = Vec::new();
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    have.extend_from_slice(&buf[..n]);
                    while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                        have.drain(..end + 4);
                        if s.write_all(response).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, stop)
}

fn http_run(addr: &str, expect: &Path) -> Output {
    loadgen(&[
        "http",
        "--addr",
        addr,
        "--path",
        "/",
        "--expect",
        expect.to_str().expect("utf-8 path"),
        "--conns",
        "4",
        "--secs",
        "0.2",
        "--warmup",
        "0.05",
    ])
}

fn finish(addr: &str, stop: Arc<AtomicBool>) {
    stop.store(true, Ordering::Relaxed);
    let _ = TcpStream::connect(addr); // wakes the accept loop
}

#[test]
fn http_mode_accepts_the_right_body() {
    let (addr, stop) = canned_http(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    let out = http_run(&addr, &expect_file("right", b"hello"));
    finish(&addr, stop);
    assert!(out.status.success(), "loadgen failed: {}", stderr(&out));
    let line = String::from_utf8_lossy(&out.stdout);
    let msgs: u64 = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("msgs="))
        .and_then(|v| v.parse().ok())
        .expect("msgs= in the output");
    assert!(msgs > 0, "no request counted: {line}");
    assert!(line.contains("verified=ok"), "{line}");
}

#[test]
fn http_mode_fails_on_a_wrong_body_byte() {
    let (addr, stop) = canned_http(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhellO");
    let out = http_run(&addr, &expect_file("byte", b"hello"));
    finish(&addr, stop);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("body differs"), "{}", stderr(&out));
}

#[test]
fn http_mode_fails_on_a_wrong_length_or_status() {
    let (addr, stop) = canned_http(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nhell");
    let out = http_run(&addr, &expect_file("len", b"hello"));
    finish(&addr, stop);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("Content-Length"), "{}", stderr(&out));

    let (addr, stop) = canned_http(b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nhello");
    let out = http_run(&addr, &expect_file("status", b"hello"));
    finish(&addr, stop);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("status line"), "{}", stderr(&out));
}

/// A self-signed certificate for 127.0.0.1: its PEM file (what loadgen's
/// `--tls` pins) and the server's configuration.
fn certificate(name: &str) -> (PathBuf, TlsConfig) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("certificate");
    let pem = cert.cert.pem();
    let tls = TlsConfig::from_pem(pem.as_bytes(), cert.signing_key.serialize_pem().as_bytes())
        .expect("TLS configuration");
    (expect_file(name, pem.as_bytes()), tls)
}

/// A pollserve echo server on its own thread (over TLS with `tls`); with
/// `corrupt`, the 50th message it echoes has its first byte flipped.
fn echo_server(
    corrupt: bool,
    tls: Option<TlsConfig>,
) -> (String, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    // The server lives on its thread (it holds handlers that are not `Send`).
    let handle = std::thread::spawn(move || {
        let mut server = Server::<()>::new();
        server
            .route("/ws", Method::GET, |req, _| Ok(req.accept_websocket()?.0))
            .expect("route");
        let addr = match tls {
            None => server.start("127.0.0.1", 0),
            Some(tls) => server.start_tls("127.0.0.1", 0, tls),
        }
        .expect("start");
        tx.send(addr.to_string()).expect("send address");
        let mut slot = Message::Binary(Vec::new());
        let mut echoed = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            server
                .poll(&mut (), Duration::from_millis(20))
                .expect("poll");
            for id in server.ws_ready().to_vec() {
                while server.ws(id).receive_into(&mut slot) {
                    echoed += 1;
                    if corrupt && echoed == 50 {
                        if let Message::Binary(b) = &mut slot {
                            b[0] ^= 0xFF;
                        }
                    }
                    let _ = server.ws(id).send(&slot);
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server address");
    (addr, stop, handle)
}

fn echo_run(addr: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "echo", "--addr", addr, "--conns", "4", "--size", "300", "--secs", "0.3", "--warmup",
        "0.05",
    ];
    args.extend_from_slice(extra);
    loadgen(&args)
}

#[test]
fn echo_mode_verifies_every_echo() {
    let (addr, stop, handle) = echo_server(false, None);
    let out = echo_run(&addr, &[]);
    stop.store(true, Ordering::Relaxed);
    handle.join().expect("server thread");
    assert!(out.status.success(), "loadgen failed: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified=ok"));

    let (addr, stop, handle) = echo_server(true, None);
    let out = echo_run(&addr, &[]);
    stop.store(true, Ordering::Relaxed);
    handle.join().expect("server thread");
    assert!(!out.status.success(), "a corrupted echo went unnoticed");
    assert!(stderr(&out).contains("echo mismatch"), "{}", stderr(&out));
}

fn hostile_run(addr: &str, expect: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "hostile",
        "--addr",
        addr,
        "--path",
        "/",
        "--expect",
        expect.to_str().expect("utf-8 path"),
        "--secs",
        "0.3",
        "--warmup",
        "0.05",
    ];
    args.extend_from_slice(extra);
    loadgen(&args)
}

/// The value of `key=` in loadgen's result line.
fn field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number for {key} in {line}"))
}

#[test]
fn hostile_mode_answers_and_counts_every_probe() {
    let (addr, stop) = canned_http(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    // A generous timeout: a loaded test machine must not turn into failures.
    let out = hostile_run(
        &addr,
        &expect_file("hostile", b"hello"),
        &["--timeout-ms", "5000"],
    );
    finish(&addr, stop);
    assert!(out.status.success(), "loadgen failed: {}", stderr(&out));
    let line = String::from_utf8_lossy(&out.stdout);
    let probes = field(&line, "probes");
    assert!(probes > 0.0, "{line}");
    // Every probe of the window has an outcome, and a quiet, correct server
    // fails none.
    assert_eq!(field(&line, "answered"), probes, "{line}");
    assert_eq!(field(&line, "failures"), 0.0, "{line}");
    assert!(line.contains("verified=ok"), "{line}");
}

#[test]
fn hostile_mode_sets_up_its_attack_connections() {
    let (addr, stop) = canned_http(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    let out = hostile_run(
        &addr,
        &expect_file("hostile-attack", b"hello"),
        &["--attackers", "6", "--flooders", "0", "--idle", "http"],
    );
    finish(&addr, stop);
    assert!(out.status.success(), "loadgen failed: {}", stderr(&out));
    let line = String::from_utf8_lossy(&out.stdout);
    assert_eq!(field(&line, "setup_established"), 6.0, "{line}");
    assert_eq!(field(&line, "closes"), 0.0, "{line}");
}

#[test]
fn hostile_mode_fails_on_a_wrong_body_or_a_refused_upgrade() {
    let (addr, stop) = canned_http(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhellO");
    let out = hostile_run(&addr, &expect_file("hostile-byte", b"hello"), &[]);
    finish(&addr, stop);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("body differs"), "{}", stderr(&out));

    // Idle WebSockets against a server that does not upgrade: the attack
    // would silently be something else, so the run stops.
    let (addr, stop) = canned_http(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    let out = hostile_run(
        &addr,
        &expect_file("hostile-ws", b"hello"),
        &["--attackers", "3", "--flooders", "0", "--idle", "ws"],
    );
    finish(&addr, stop);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("idle connection"), "{}", stderr(&out));
}

/// A pollserve HTTP server on its own thread answering `GET /` with `body`,
/// over TLS with `tls`.
fn http_server(
    body: &'static str,
    tls: Option<TlsConfig>,
) -> (String, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut server = Server::<()>::new();
        server
            .route("/", Method::GET, move |_, _| Ok(Response::text(body)))
            .expect("route");
        let addr = match tls {
            None => server.start("127.0.0.1", 0),
            Some(tls) => server.start_tls("127.0.0.1", 0, tls),
        }
        .expect("start");
        tx.send(addr.to_string()).expect("send address");
        while !stop2.load(Ordering::Relaxed) {
            server
                .poll(&mut (), Duration::from_millis(20))
                .expect("poll");
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server address");
    (addr, stop, handle)
}

/// `loadgen http` against a server of [`http_server`], then stops it.
fn http_against(
    server: (String, Arc<AtomicBool>, std::thread::JoinHandle<()>),
    expect: &Path,
    extra: &[&str],
) -> Output {
    let (addr, stop, handle) = server;
    let mut args = vec![
        "http",
        "--addr",
        &addr,
        "--path",
        "/",
        "--expect",
        expect.to_str().expect("utf-8 path"),
        "--conns",
        "4",
        "--secs",
        "0.2",
        "--warmup",
        "0.05",
    ];
    args.extend_from_slice(extra);
    let out = loadgen(&args);
    stop.store(true, Ordering::Relaxed);
    handle.join().expect("server thread");
    out
}

#[test]
fn http_mode_over_tls_checks_every_byte() {
    let (pem, tls) = certificate("tls-http.pem");
    let pem = pem.to_str().expect("utf-8 path");
    let out = http_against(
        http_server("hello", Some(tls.clone())),
        &expect_file("tls-right", b"hello"),
        &["--tls", pem],
    );
    assert!(out.status.success(), "loadgen failed: {}", stderr(&out));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(field(&line, "msgs") > 0.0, "{line}");
    assert!(
        line.contains(" tls=TLSv1_3/TLS13_AES_128_GCM_SHA256/X25519 "),
        "{line}"
    );
    assert!(line.contains("verified=ok"), "{line}");

    let out = http_against(
        http_server("hellO", Some(tls)),
        &expect_file("tls-wrong", b"hello"),
        &["--tls", pem],
    );
    assert!(
        !out.status.success(),
        "a wrong byte over TLS went unnoticed"
    );
    assert!(stderr(&out).contains("body differs"), "{}", stderr(&out));
}

#[test]
fn tls_client_accepts_only_the_pinned_certificate() {
    let (_, tls) = certificate("tls-served.pem");
    let (other, _) = certificate("tls-other.pem");
    let out = http_against(
        http_server("hello", Some(tls)),
        &expect_file("tls-pin", b"hello"),
        &["--tls", other.to_str().expect("utf-8 path")],
    );
    assert!(!out.status.success(), "another certificate was accepted");
    assert!(
        stderr(&out).contains("invalid peer certificate"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn close_mode_opens_a_connection_per_request() {
    let (pem, tls) = certificate("tls-close.pem");
    let expect = expect_file("close", b"hello");
    for tls in [None, Some(tls)] {
        let over_tls = tls.is_some();
        let mut extra = vec!["--close"];
        if over_tls {
            extra.extend(["--tls", pem.to_str().expect("utf-8 path")]);
        }
        let out = http_against(http_server("hello", tls), &expect, &extra);
        assert!(
            out.status.success(),
            "loadgen failed (TLS: {over_tls}): {}",
            stderr(&out)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        let (msgs, opened) = (field(&line, "msgs"), field(&line, "conns_opened"));
        // Every request measured had a connection of its own (the ones
        // before and after the window too).
        assert!(msgs > 0.0 && opened >= msgs, "{line}");
        assert!(line.contains("verified=ok"), "{line}");
    }
}

#[test]
fn echo_mode_over_tls_verifies_every_echo() {
    let (pem, tls) = certificate("tls-echo.pem");
    let pem = pem.to_str().expect("utf-8 path");
    let (addr, stop, handle) = echo_server(false, Some(tls.clone()));
    let out = echo_run(&addr, &["--tls", pem]);
    stop.store(true, Ordering::Relaxed);
    handle.join().expect("server thread");
    assert!(out.status.success(), "loadgen failed: {}", stderr(&out));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.contains(" tls=TLSv1_3/") && line.contains("verified=ok"),
        "{line}"
    );

    let (addr, stop, handle) = echo_server(true, Some(tls));
    let out = echo_run(&addr, &["--tls", pem]);
    stop.store(true, Ordering::Relaxed);
    handle.join().expect("server thread");
    assert!(
        !out.status.success(),
        "a corrupted echo over TLS went unnoticed"
    );
    assert!(stderr(&out).contains("echo mismatch"), "{}", stderr(&out));
}

/// What the fan-out stand-in does wrong, to one subscriber (the second to
/// connect), from the 20th message on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// One byte of the 20th message flipped.
    Corrupt,
    /// The 20th message left out (what a lost message looks like).
    Skip,
    /// The subscriber closed instead of sent the 20th message.
    Drop,
}

/// A pollserve fan-out server on its own thread: WebSocket subscribers on
/// `/sub`, event streams on `/events`, the publisher on `/pub` (binary
/// messages to the WebSockets, text to the streams), each message sent to
/// each subscriber on its own so one can be treated differently (`fault`).
fn fanout_server(fault: Fault) -> (String, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    use pollserve::sse::{SseEvent, SseId};
    use pollserve::ws::WsId;
    #[derive(Default)]
    struct App {
        subs: Vec<WsId>,
        streams: Vec<SseId>,
        publishers: Vec<WsId>,
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut server = Server::<App>::new();
        server
            .route("/sub", Method::GET, |req, app: &mut App| {
                let (response, id) = req.accept_websocket()?;
                app.subs.push(id);
                Ok(response)
            })
            .expect("route");
        server
            .route("/events", Method::GET, |req, app: &mut App| {
                let (response, id) = req.accept_sse()?;
                app.streams.push(id);
                Ok(response)
            })
            .expect("route");
        server
            .route("/pub", Method::GET, |req, app: &mut App| {
                let (response, id) = req.accept_websocket()?;
                app.publishers.push(id);
                Ok(response)
            })
            .expect("route");
        let addr = server.start("127.0.0.1", 0).expect("start");
        tx.send(addr.to_string()).expect("send address");
        let mut app = App::default();
        let mut slot = Message::Binary(Vec::new());
        let mut published = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            server
                .poll(&mut app, Duration::from_millis(20))
                .expect("poll");
            for id in server.ws_ready().to_vec() {
                if !app.publishers.contains(&id) {
                    while server.ws(id).receive_into(&mut slot) {}
                    continue;
                }
                while server.ws(id).receive_into(&mut slot) {
                    published += 1;
                    let mut bytes = match &slot {
                        Message::Binary(b) => b.clone(),
                        Message::Text(t) => t.clone().into_bytes(),
                    };
                    let n = app.subs.len().max(app.streams.len());
                    for k in 0..n {
                        let odd = k == 1 && published == 20;
                        if odd && fault == Fault::Skip {
                            continue;
                        }
                        if odd && fault == Fault::Corrupt {
                            bytes[30] ^= 0x01;
                        }
                        if let Some(&ws) = app.subs.get(k) {
                            if odd && fault == Fault::Drop {
                                let _ = server.ws(ws).close(pollserve::ws::CloseCode::NORMAL, "");
                            } else {
                                let _ = server.ws(ws).send_binary(&bytes);
                            }
                        }
                        if let Some(&sse) = app.streams.get(k) {
                            if odd && fault == Fault::Drop {
                                server.sse(sse).close();
                            } else {
                                let text = String::from_utf8_lossy(&bytes);
                                let _ = server.sse(sse).send(&SseEvent::new(&text));
                            }
                        }
                        if odd && fault == Fault::Corrupt {
                            bytes[30] ^= 0x01;
                        }
                    }
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server address");
    (addr, stop, handle)
}

fn fanout_run(fault: Fault, extra: &[&str]) -> Output {
    let (addr, stop, handle) = fanout_server(fault);
    let mut args = vec![
        "fanout", "--addr", &addr, "--conns", "6", "--sizes", "64,300", "--secs", "0.2",
        "--warmup", "0.05",
    ];
    args.extend_from_slice(extra);
    let out = loadgen(&args);
    stop.store(true, Ordering::Relaxed);
    handle.join().expect("server thread");
    out
}

#[test]
fn fanout_mode_checks_every_delivery() {
    let out = fanout_run(Fault::None, &[]);
    assert!(out.status.success(), "loadgen failed: {}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "one line per size: {text}");
    for (line, size) in lines.iter().zip([64.0, 300.0]) {
        assert_eq!(field(line, "size"), size, "{line}");
        assert_eq!(field(line, "subs"), 6.0, "{line}");
        assert!(field(line, "msgs") > 0.0, "{line}");
        assert!(line.ends_with("verified=ok"), "{line}");
    }

    let out = fanout_run(Fault::Corrupt, &[]);
    assert!(!out.status.success(), "a corrupted delivery went unnoticed");
    assert!(
        stderr(&out).contains("message 19 differs"),
        "{}",
        stderr(&out)
    );

    // A lost message: the next one arrives where it was expected.
    let out = fanout_run(Fault::Skip, &[]);
    assert!(!out.status.success(), "a lost delivery went unnoticed");
    assert!(
        stderr(&out).contains("message 19 differs"),
        "{}",
        stderr(&out)
    );

    let out = fanout_run(Fault::Drop, &[]);
    assert!(!out.status.success(), "a dropped subscriber went unnoticed");
    assert!(stderr(&out).contains("close frame"), "{}", stderr(&out));
}

#[test]
fn fanout_mode_checks_every_event() {
    let out = fanout_run(Fault::None, &["--sse"]);
    assert!(out.status.success(), "loadgen failed: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);

    let out = fanout_run(Fault::Corrupt, &["--sse"]);
    assert!(!out.status.success(), "a corrupted event went unnoticed");
    assert!(
        stderr(&out).contains("message 19 differs"),
        "{}",
        stderr(&out)
    );

    let out = fanout_run(Fault::Drop, &["--sse"]);
    assert!(!out.status.success(), "an ended stream went unnoticed");
    assert!(stderr(&out).contains("subscriber 1"), "{}", stderr(&out));
}

#[test]
fn fanout_memory_mode_reads_back_every_queued_message() {
    let pid = std::process::id().to_string();
    for (fault, ok) in [(Fault::None, true), (Fault::Skip, false)] {
        let (addr, stop, handle) = fanout_server(fault);
        // 25 messages, so the stand-in's 20th is among them.
        let out = loadgen(&[
            "fanout-memory",
            "--addr",
            &addr,
            "--conns",
            "4",
            "--size",
            "4096",
            "--fill",
            "24",
            "--pid",
            &pid,
        ]);
        stop.store(true, Ordering::Relaxed);
        handle.join().expect("server thread");
        if ok {
            assert!(out.status.success(), "loadgen failed: {}", stderr(&out));
            let line = String::from_utf8_lossy(&out.stdout);
            assert_eq!(field(&line, "conns"), 4.0, "{line}");
            assert_eq!(field(&line, "fill"), 24.0, "{line}");
            assert!(line.contains("goal_ratio="), "{line}");
            assert!(line.trim_end().ends_with("verified=ok"), "{line}");
        } else {
            assert!(
                !out.status.success(),
                "a lost queued message went unnoticed"
            );
            assert!(
                stderr(&out).contains("message 19 differs"),
                "{}",
                stderr(&out)
            );
        }
    }
}
