//! Hostile clients against the `pollserve` binary (`pollserve serve`), over
//! raw loopback sockets: the attacks of the security review that are
//! measured on the process itself. The others, which drive a `Server` in
//! the test process, are in the library's `tests/hostile.rs`, which says
//! what each attack did to the old code.
//!
//! - `blank_line_flood_gets_400_and_close`: a client sending nothing but
//!   CRLF forever was buffered without bound (85 MB in 30 s) and kept the
//!   loop busy. Leading empty lines now count against `max_request_line`:
//!   the client gets `400` and a close long before 1 MiB.
//!   `blank_lines_before_a_request_are_still_skipped`: the few empty lines
//!   RFC 9112 §2.2 tells servers to ignore still are.
//! - `half_sent_heads_do_not_grow_the_server_process`: a connection that
//!   sent 2 bytes of a head in two reads pinned a 64 KiB buffer (16,000
//!   such connections: 1 GB); the process now grows by what the connection
//!   state costs (the library's `half_sent_heads_hold_only_their_bytes`
//!   checks the same through `Server::stats`).
//!
//! These tests run `$POLLSERVE_BIN` when it is set, to check them against
//! another build, else the binary built with them.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

/// A `pollserve serve` process on 127.0.0.1 (a port it picks), killed on drop.
struct ServeProcess {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl ServeProcess {
    /// Serves a temporary directory whose `index.html` says `hello`.
    fn start() -> ServeProcess {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "hello").unwrap();
        let bin = std::env::var_os("POLLSERVE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pollserve")));
        let mut child = Command::new(&bin)
            .arg("serve")
            .arg(dir.path())
            .args(["--port", "0", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let stdout = child.stdout.take().unwrap();
        let mut process = ServeProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            _dir: dir,
        };
        // "Serving DIR on http://127.0.0.1:PORT/", read on a thread so a
        // silent process cannot hang the test; later output is drained.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut out = BufReader::new(stdout);
            let mut line = String::new();
            let _ = out.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("pollserve printed its address");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        process.addr = addr;
        process
    }

    /// The process's resident set size, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {status}"))
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Blank-line flood
// ---------------------------------------------------------------------------

/// Streams CRLFs (up to 1 MiB, in 4 KiB writes) and checks for an answer
/// after every write. The client's send buffer is fixed and small, so it can
/// run ahead of the server's reading by at most that plus the server's
/// receive window: a server that refuses the flood at `max_request_line`
/// (8 KiB) has answered long before half the budget is sent; one that keeps
/// buffering never answers.
#[test]
fn blank_line_flood_gets_400_and_close() {
    const BUDGET: usize = 1 << 20;
    let srv = ServeProcess::start();
    let mut s = connect_with_buffers(srv.addr, Some(16 << 10), None);
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let chunk = b"\r\n".repeat(2048);
    let mut sent = 0;
    let mut answer = Vec::new();
    let mut closed = false;
    let mut write_error = None;
    while sent < BUDGET && answer.is_empty() && !closed {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) => {
                write_error = Some(e);
                break;
            }
        }
        s.set_nonblocking(true).unwrap();
        closed = read_available(&mut s, &mut answer);
        s.set_nonblocking(false).unwrap();
    }
    assert!(
        !answer.is_empty() || closed || write_error.is_some(),
        "the server took all {sent} bytes of blank lines without answering or closing: \
         it buffers them without bound"
    );
    if !closed {
        answer.extend(read_to_close(&mut s));
    }
    assert_eq!(
        status_of(&answer),
        Some(400),
        "after {sent} bytes of blank lines (write error: {write_error:?}): {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        sent <= BUDGET / 2,
        "the 400 came only after {sent} bytes of blank lines"
    );
}

#[test]
fn blank_lines_before_a_request_are_still_skipped() {
    let srv = ServeProcess::start();
    let raw = format!(
        "{}GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "\r\n".repeat(100)
    );
    let r = request(srv.addr, &raw);
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
}

// ---------------------------------------------------------------------------
// Half-sent heads
// ---------------------------------------------------------------------------

/// Sequential round trips on new connections: each needs a poll of its own
/// after the previous one, so `n` of them mean `n` polls of the server (each
/// reports up to 1024 ready connections) since the last write of the test.
fn round_trips(addr: SocketAddr, n: usize) {
    for _ in 0..n {
        assert_eq!(get(addr, "/").status, 200);
    }
}

/// The same attack on the `pollserve` binary, measured as the process sees
/// it: 2,000 connections that each sent a head in two 1-byte writes may add
/// only what their connection state costs, not 64 KiB each (128 MiB on the
/// old code).
#[test]
fn half_sent_heads_do_not_grow_the_server_process() {
    const CLIENTS: usize = 2000;
    const GROWTH_LIMIT_KIB: u64 = 24 << 10;
    need_descriptors(3 * CLIENTS as u64 + 256);
    let srv = ServeProcess::start();
    round_trips(srv.addr, 3);
    let before = srv.rss_kib();
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(srv.addr)).collect();
    round_trips(srv.addr, 3);
    for c in clients.iter_mut() {
        c.write_all(b"G").unwrap();
    }
    round_trips(srv.addr, 3);
    for c in clients.iter_mut() {
        c.write_all(b"E").unwrap();
    }
    round_trips(srv.addr, 3);
    let after = srv.rss_kib();
    let closed = clients.iter().filter(|c| !still_open(c)).count();
    assert_eq!(closed, 0, "connections closed or answered");
    assert!(
        after.saturating_sub(before) < GROWTH_LIMIT_KIB,
        "RSS grew from {before} KiB to {after} KiB for {CLIENTS} half-sent heads"
    );
}
