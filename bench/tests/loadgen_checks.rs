//! The load generator's checks can fail: `loadgen` must exit non-zero when a
//! server answers wrongly, and succeed against a correct one. Servers here are
//! small stand-ins on 127.0.0.1 (a canned HTTP responder, a pollserve echo
//! that can corrupt one byte), each run bounded to a fraction of a second.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pollserve::ws::Message;
use pollserve::{Method, Server};

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

/// A pollserve echo server on its own thread; with `corrupt`, the 50th
/// message it echoes has its first byte flipped.
fn echo_server(corrupt: bool) -> (String, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    // The server lives on its thread (it holds handlers that are not `Send`).
    let handle = std::thread::spawn(move || {
        let mut server = Server::<()>::new();
        server
            .route("/ws", Method::GET, |req, _| Ok(req.accept_websocket()?.0))
            .expect("route");
        let addr = server.start("127.0.0.1", 0).expect("start");
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

fn echo_run(addr: &str) -> Output {
    loadgen(&[
        "echo", "--addr", addr, "--conns", "4", "--size", "300", "--secs", "0.3", "--warmup",
        "0.05",
    ])
}

#[test]
fn echo_mode_verifies_every_echo() {
    let (addr, stop, handle) = echo_server(false);
    let out = echo_run(&addr);
    stop.store(true, Ordering::Relaxed);
    handle.join().expect("server thread");
    assert!(out.status.success(), "loadgen failed: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified=ok"));

    let (addr, stop, handle) = echo_server(true);
    let out = echo_run(&addr);
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
