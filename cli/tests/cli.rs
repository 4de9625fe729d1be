//! The `pollserve` command over loopback: `serve` (listing, --no-listing,
//! --auth, --header, the secrets warning), `demo` (status, colour, upload,
//! the bounded upload list), and both surviving closed stdout/stderr pipes.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::free_port;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Running {
    child: Child,
    addr: SocketAddr,
    stderr: Option<std::process::ChildStderr>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `pollserve ARGS --port P` and waits until it prints its URL.
fn run(args: &[&str]) -> Running {
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_pollserve"))
            .args(args)
            .args(["--port", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pollserve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while line.is_empty() && Instant::now() < deadline {
            if out.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
        }
        if line.contains(&format!("127.0.0.1:{port}")) {
            let stderr = child.stderr.take();
            return Running {
                child,
                addr: format!("127.0.0.1:{port}").parse().unwrap(),
                stderr,
            };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("pollserve {args:?} did not start");
}

#[test]
fn serve_lists_directories_and_serves_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.txt"), "bee").unwrap();
    std::fs::write(dir.path().join("a <x>.txt"), "ay").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join(".env"), "SECRET=1").unwrap();
    let d = dir.path().to_str().unwrap();
    let mut srv = run(&["serve", d, "--header", "X-Served-By: pollserve-test"]);
    let r = common::get(srv.addr, "/");
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(page.contains("href=\"b.txt\""), "{page}");
    assert!(page.contains("href=\"sub/\""), "{page}");
    assert!(
        page.contains("a &lt;x&gt;.txt"),
        "names are escaped: {page}"
    );
    assert!(
        page.contains("href=\"a%20%3Cx%3E.txt\""),
        "links are encoded: {page}"
    );
    assert!(!page.contains(".env"), "dotfiles are not listed");
    assert_eq!(r.header("x-served-by"), Some("pollserve-test"));
    // Sorting by size puts the 2-byte file before the 3-byte one.
    let by_size = common::get(srv.addr, "/?sort=size").text();
    assert!(by_size.find("b.txt").unwrap() > by_size.find("a &lt;x").unwrap());
    assert_eq!(common::get(srv.addr, "/b.txt").text(), "bee");
    assert_eq!(common::get(srv.addr, "/.env").status, 404);
    // The warning about a directory holding secrets.
    let mut warning = String::new();
    BufReader::new(srv.stderr.take().unwrap())
        .read_line(&mut warning)
        .unwrap();
    assert!(
        warning.contains("warning") && warning.contains(".env"),
        "{warning}"
    );

    let srv = run(&["serve", d, "--no-listing", "-q"]);
    assert_eq!(common::get(srv.addr, "/").status, 404);
    assert_eq!(common::get(srv.addr, "/b.txt").status, 200);
}

#[test]
fn serve_with_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>private</h1>").unwrap();
    let srv = run(&[
        "serve",
        dir.path().to_str().unwrap(),
        "--auth",
        "ada:lovelace",
        "-q",
    ]);
    let r = common::get(srv.addr, "/");
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic realm="));
    // "ada:lovelace" in base64.
    let ok = common::request(
        srv.addr,
        "GET / HTTP/1.1\r\nHost: t\r\nAuthorization: Basic YWRhOmxvdmVsYWNl\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((ok.status, ok.text().as_str()), (200, "<h1>private</h1>"));
}

#[test]
fn demo_status_colour_and_upload() {
    let srv = run(&["demo", "-q"]);
    let page = common::get(srv.addr, "/");
    assert!(page.text().contains("pollserve demo"));
    let body = "{\"color\": \"#FF8800\"}";
    let r = common::request(
        srv.addr,
        &format!("POST /api/color HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
    );
    assert_eq!(r.text(), "{\"color\":\"#ff8800\"}");
    let bad = common::request(
        srv.addr,
        "POST /api/color HTTP/1.1\r\nHost: t\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"color\":\"x\"}",
    );
    assert_eq!(bad.status, 400);
    let upload = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"n.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\x02\r\n--XyZ--\r\n";
    let r = common::request(
        srv.addr,
        &format!("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{upload}", upload.len()),
    );
    assert_eq!(r.text(), "{\"saved\":[{\"name\":\"n.bin\",\"size\":3}]}");
    let status: serde_json::Value =
        serde_json::from_slice(&common::get(srv.addr, "/api/status").body).unwrap();
    assert_eq!(status["color"], "#ff8800");
    assert_eq!(status["uploads"]["recent"][0]["name"], "n.bin");
    assert_eq!(status["uploads"]["count"], 1);
    assert_eq!(status["uploads"]["bytes"], 3);
}

/// Every dashboard viewer receives the status once a second, so what an
/// anonymous upload can put into it is bounded: 20 files with 7.8 KB names
/// made `/api/status` and every SSE `stats` event about 158 KB.
#[test]
fn demo_status_stays_small_after_uploads_with_long_names() {
    let srv = run(&["demo", "-q"]);
    // Two-byte characters, so a cut at a byte count could split one.
    let long = "aé".repeat(2600);
    let mut body = String::new();
    for i in 0..20 {
        body.push_str(&format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{i:02}-{long}\"\r\n\r\n{}\r\n",
            "x".repeat(i + 1)
        ));
    }
    body.push_str("--XyZ--\r\n");
    let r = common::request(
        srv.addr,
        &format!("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let raw = common::get(srv.addr, "/api/status").body;
    assert!(raw.len() < 2048, "/api/status is {} bytes", raw.len());
    let status: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let uploads = &status["uploads"];
    assert_eq!(uploads["count"], 20);
    assert_eq!(uploads["bytes"], (1..=20).sum::<u64>());
    let recent = uploads["recent"].as_array().unwrap();
    assert!(!recent.is_empty() && recent.len() <= 5, "{recent:?}");
    // Newest last, its name cut short (and marked so) but recognisable.
    let newest = recent.last().unwrap();
    assert_eq!(newest["size"], 20);
    let name = newest["name"].as_str().unwrap();
    assert!(name.starts_with("19-aéaé") && name.ends_with('…'), "{name}");
    assert!(name.chars().count() <= 64, "{name}");

    // The same status is what the once-a-second `stats` event carries.
    let mut events = common::connect(srv.addr);
    events
        .write_all(b"GET /events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let mut lines = BufReader::new(events).lines();
    let mut stats = None;
    let mut in_stats = false;
    for line in lines.by_ref().take(100) {
        let line = line.expect("read the event stream");
        if line == "event: stats" {
            in_stats = true;
        } else if let (true, Some(data)) = (in_stats, line.strip_prefix("data: ")) {
            stats = Some(data.len());
            break;
        }
    }
    let stats = stats.expect("a stats event");
    assert!(stats < 2048, "a stats event carries {stats} bytes");
}

/// Whether the process has not exited.
fn still_running(srv: &mut Running) -> bool {
    srv.child.try_wait().expect("try_wait").is_none()
}

/// After a failed request: waits up to 5 s for the child to exit and
/// describes how it ended, or says it is still running.
fn exit_of(srv: &mut Running) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match srv.child.try_wait().expect("try_wait") {
            Some(status) => return format!("pollserve exited ({status})"),
            None if Instant::now() >= deadline => return "pollserve is still running".into(),
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// `GET path` on a new connection; the status, or a panic that says whether
/// the process is gone (the common helpers only say "connection refused").
fn status_of(srv: &mut Running, path: &str) -> u16 {
    let attempt = || -> std::io::Result<String> {
        let mut s = TcpStream::connect(srv.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )?;
        let mut reply = Vec::new();
        s.read_to_end(&mut reply)?;
        Ok(String::from_utf8_lossy(&reply).into_owned())
    };
    match attempt() {
        Ok(reply) => match reply.split(' ').nth(1).and_then(|s| s.parse().ok()) {
            Some(status) => status,
            None => panic!("no HTTP response ({:?}); {}", reply, exit_of(srv)),
        },
        Err(e) => panic!("GET {path} failed: {e}; {}", exit_of(srv)),
    }
}

/// Reads `stderr` until a line contains `needle`, then closes the pipe's
/// read end; false if no such line came within 20 s (or before EOF). A
/// thread reads, so a silent process cannot hang the test.
fn await_line_then_close(stderr: std::process::ChildStderr, needle: String) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        // The reader (and with it the pipe) is dropped before the answer is sent.
        let found = BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains(&needle));
        let _ = tx.send(found);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(found) => {
            reader.join().unwrap();
            found
        }
        // The thread ends when the caller's `Running` kills the process.
        Err(_) => false,
    }
}

/// `pollserve serve DIR 2>&1 >/dev/null | head -n 3`: once the reader of the
/// log is gone, every access-log line meets EPIPE. `eprintln!` panicked on
/// it, so the first request after `head` exited ended the server (101).
#[test]
fn serve_survives_its_log_pipe_closing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "ay").unwrap();
    // `run` has read the URL line from stdout and closed that pipe.
    let mut srv = run(&["serve", dir.path().to_str().unwrap()]);
    let stderr = srv.stderr.take().unwrap();
    assert!(
        await_line_then_close(stderr, "listening on http://".into()),
        "pollserve logs that it is listening"
    );
    for i in 0..5 {
        assert_eq!(status_of(&mut srv, "/a.txt"), 200, "request {i}");
    }
    assert_eq!(status_of(&mut srv, "/missing"), 404);
    assert!(still_running(&mut srv));
    assert_eq!(status_of(&mut srv, "/a.txt"), 200);
}

/// stderr is a pipe that nobody reads for a while (a stopped `| less`, a
/// log collector that hangs): once the pipe is full, log lines are
/// dropped instead of blocking the poll loop, and the first line written
/// after the reader returns says how many were lost.
#[test]
fn serve_keeps_serving_while_nobody_reads_its_log_pipe() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "ay").unwrap();
    let mut srv = run(&["serve", dir.path().to_str().unwrap()]);
    let stderr = srv.stderr.take().unwrap(); // kept open, not read yet
    let mut s = common::connect(srv.addr);
    // ~100 bytes of access log per request: several times a pipe's 64 KiB.
    for i in 0..3000 {
        s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(
            common::read_response(&mut s, false).status,
            200,
            "request {i}"
        );
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("log lines dropped") {
                let _ = tx.send(line);
                break;
            }
        }
    });
    // The pipe is being read again: the next line reports the loss.
    let mut said = None;
    for _ in 0..50 {
        s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(common::read_response(&mut s, false).status, 200);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            said = Some(line);
            break;
        }
    }
    let said = said.expect("a line saying how many log lines were dropped");
    let dropped: u64 = said
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("a count");
    assert!(dropped > 0, "{said}");
}

/// stdout already closed when pollserve starts (`pollserve serve >&-`-like,
/// or a reader that exited early): the "Serving … on http://…" line meets
/// EPIPE, which `println!` turned into a panic before the first request.
#[test]
fn serve_and_demo_survive_a_closed_stdout() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "ay").unwrap();
    let d = dir.path().to_str().unwrap();
    for (args, path) in [(vec!["serve", d], "/a.txt"), (vec!["demo"], "/api/status")] {
        let mut srv = None;
        for _ in 0..5 {
            // A socket whose peer is gone: every write to it fails with EPIPE.
            let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
            drop(ours);
            let port = free_port();
            let mut child = Command::new(env!("CARGO_BIN_EXE_pollserve"))
                .args(&args)
                .args(["--port", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
                .stderr(Stdio::piped())
                .spawn()
                .expect("start pollserve");
            let stderr = child.stderr.take().unwrap();
            let listening = await_line_then_close(stderr, format!("127.0.0.1:{port}"));
            let running = Running {
                child,
                addr: format!("127.0.0.1:{port}").parse().unwrap(),
                stderr: None,
            };
            if listening {
                srv = Some(running);
                break;
            }
        }
        let mut srv = srv.unwrap_or_else(|| panic!("pollserve {args:?} did not start"));
        for i in 0..3 {
            assert_eq!(status_of(&mut srv, path), 200, "{args:?} request {i}");
        }
        assert!(still_running(&mut srv), "{args:?}");
    }
}

/// SIGTERM: the demo stops accepting, sends its WebSocket clients a close
/// with 1001 (going away), ends event streams, finishes a request whose body
/// is still arriving, and exits with success.
#[test]
fn demo_shuts_down_gracefully_on_sigterm() {
    use common::ws::{expect_close, open};
    let mut srv = run(&["demo", "--quiet"]);
    let mut ws = open(srv.addr, "/ws/echo");
    let mut events = TcpStream::connect(srv.addr).unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(events, "GET /events HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    events.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // A request in flight: head and half its body sent.
    let mut upload = TcpStream::connect(srv.addr).unwrap();
    upload
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = br##"{"color": "#123456"}"##;
    write!(
        upload,
        "POST /api/color HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    upload.write_all(&body[..5]).unwrap();
    // Let the server take the head before the signal.
    assert_eq!(status_of(&mut srv, "/api/status"), 200);

    let kill = Command::new("kill")
        .args(["-TERM", &srv.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert_eq!(expect_close(&mut ws), 1001);
    // The event stream ends with EOF (a read timeout would be an error).
    let mut rest = Vec::new();
    events
        .read_to_end(&mut rest)
        .expect("event stream ended by the server");
    upload.write_all(&body[5..]).unwrap();
    let mut reply = String::new();
    upload.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    assert!(reply.contains("Connection: close"), "{reply}");
    assert!(reply.ends_with(r##"{"color":"#123456"}"##), "{reply}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = srv.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "pollserve did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(TcpStream::connect(srv.addr).is_err(), "still accepting");
}

/// The certificate a new TLS connection to `addr` is served, after one
/// request on it succeeded.
#[cfg(feature = "tls")]
fn served_certificate(addr: SocketAddr) -> Vec<u8> {
    let mut s = common::tls::tls_connect(addr, &common::tls::tls13());
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = common::read_response(&mut s, false);
    assert_eq!((r.status, r.text().as_str()), (200, "over tls"));
    s.conn.peer_certificates().unwrap()[0].to_vec()
}

/// Waits (at most 20 s) until new connections are served `want`.
#[cfg(feature = "tls")]
fn await_certificate(addr: SocketAddr, want: &[u8]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if served_certificate(addr) == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[cfg(feature = "tls")]
#[test]
fn serve_over_tls_reloads_its_certificate_when_the_files_change_and_on_sighup() {
    let pki = common::tls::pki();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "over tls").unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let install = |pair: &common::tls::Pair| {
        std::fs::write(&cert, &pair.cert_pem).unwrap();
        std::fs::write(&key, &pair.key_pem).unwrap();
    };
    let first = pki.issue();
    install(&first);
    let d = dir.path().to_str().unwrap();
    let mut srv = run(&[
        "serve",
        d,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stderr = srv.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let await_log = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if line.contains(needle) {
                return true;
            }
        }
        false
    };
    assert_eq!(served_certificate(srv.addr), first.der.to_vec());
    // Plain HTTP on the port is told to use HTTPS.
    let r = common::get(srv.addr, "/a.txt");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("HTTPS"), "{}", r.text());

    // Renewed files are picked up without a signal.
    let second = pki.issue();
    install(&second);
    assert!(
        await_certificate(srv.addr, &second.der),
        "new files not served"
    );
    assert!(
        await_log("TLS certificate reloaded"),
        "no log line for the reload"
    );

    // A broken pair is refused with a log line; the old certificate stays.
    std::fs::write(&key, pki.issue().key_pem).unwrap();
    assert!(
        await_log("TLS reload failed"),
        "no log line for the failed reload"
    );
    assert_eq!(served_certificate(srv.addr), second.der.to_vec());

    // SIGHUP reloads at once.
    let third = pki.issue();
    install(&third);
    let hup = Command::new("kill")
        .args(["-HUP", &srv.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(
        await_certificate(srv.addr, &third.der),
        "SIGHUP did not reload"
    );
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "SIGHUP ended the server"
    );
}

#[cfg(feature = "tls")]
#[test]
fn demo_over_tls_serves_https_and_wss() {
    let pki = common::tls::pki();
    let redirect_port = common::free_port();
    let mut srv = run(&[
        "demo",
        "--tls-cert",
        pki.cert_file.to_str().unwrap(),
        "--tls-key",
        pki.key_file.to_str().unwrap(),
        "--redirect-port",
        &redirect_port.to_string(),
    ]);
    let _ = srv.stderr.take();
    // --redirect-port: plain HTTP there is sent to the HTTPS address.
    let r = common::request(
        std::net::SocketAddr::from(([127, 0, 0, 1], redirect_port)),
        "GET /api/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("https://localhost:{}/api/status", srv.addr.port()).as_str())
    );
    let mut s = common::tls::tls_connect(srv.addr, &common::tls::tls13());
    s.write_all(b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let r = common::read_response(&mut s, false);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("uptime"), "{}", r.text());
    // The same connection becomes a WebSocket (wss) and echoes.
    write!(
        s,
        "GET /ws/echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {}\r\n\r\n",
        common::ws::KEY
    )
    .unwrap();
    let head = common::read_response(&mut s, true);
    assert_eq!(head.status, 101);
    s.write_all(&common::ws::frame(true, 1, b"over wss"))
        .unwrap();
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    assert_eq!(h, [0x81, 8]);
    let mut p = [0u8; 8];
    s.read_exact(&mut p).unwrap();
    assert_eq!(&p, b"over wss");
}
