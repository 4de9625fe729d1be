//! `ServerConfig::log_to_stderr` (`adafruit_httpserver`'s `debug=True`): a
//! program that installs no logger sees its access log and the server's
//! warnings on stderr, and a stderr that closes does not stop the server.
//!
//! The program under test is this test binary run again as a child process
//! (`program_with_log_to_stderr`, which does nothing unless the variable
//! [`CHILD`] is set): writes to stderr bypass the test harness's output
//! capture, so only another process can read them, as a user would.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{connect, read_response};
use pollserve::{Method, Response, Server, ServerConfig};

/// Set (to anything) in the child's environment.
const CHILD: &str = "POLLSERVE_TEST_LOG_TO_STDERR_CHILD";

/// The child's program: a server with `log_to_stderr(true)`, no logger
/// installed, at most one connection per address (so a second one earns a
/// warning), polled until the parent kills it.
#[test]
fn program_with_log_to_stderr() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let config = ServerConfig::default()
        .log_to_stderr(true)
        .max_connections_per_ip(Some(1));
    let mut server = Server::<()>::with_config(config);
    server
        .route("/hello", Method::GET, |_, _| Ok(Response::text("hi")))
        .unwrap();
    server.start("127.0.0.1", 0).unwrap();
    loop {
        server.poll(&mut (), Duration::from_millis(100)).unwrap();
    }
}

/// The child process, killed and reaped when dropped.
struct Program(Child);

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stderr lines as they arrive, read on a thread so a silent child cannot
/// hang the test. The thread closes the pipe after the first line that
/// contains `last`, and ends.
fn lines_of(stderr: ChildStderr, last: &'static str) -> (mpsc::Receiver<String>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let done = line.contains(last);
            let _ = tx.send(line);
            if done {
                return;
            }
        }
    });
    (rx, reader)
}

/// The next stderr line that satisfies `wanted` (20 s at most; the lines
/// passed over are shown if none does).
fn next_line(lines: &mpsc::Receiver<String>, what: &str, wanted: impl Fn(&str) -> bool) -> String {
    let mut seen = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(20)) {
        if wanted(&line) {
            return line;
        }
        seen.push(line);
    }
    panic!("no {what} on stderr; it said {seen:#?}");
}

/// A keep-alive `GET path` on `s`; the status.
fn get_on(s: &mut TcpStream, path: &str) -> u16 {
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    read_response(s, false).status
}

#[test]
fn access_log_and_warnings_reach_stderr_without_a_logger() {
    let mut program = Program(
        Command::new(std::env::current_exe().unwrap())
            .args(["program_with_log_to_stderr", "--exact", "--test-threads=1"])
            .env(CHILD, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the program"),
    );
    let (lines, reader) = lines_of(program.0.stderr.take().unwrap(), "/last-line");

    let listening = next_line(&lines, "start line", |l| l.contains("listening on"));
    let addr: SocketAddr = listening
        .strip_prefix("pollserve listening on http://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{listening:?}"));

    // One access line per response, in adafruit_httpserver's format.
    let mut kept = connect(addr);
    assert_eq!(get_on(&mut kept, "/hello?x=1"), 200);
    let access = next_line(&lines, "access line", |l| l.contains("GET /hello"));
    assert!(
        access.starts_with("127.0.0.1 -- \"GET /hello\" ") && access.contains(" -- \"200 OK\" "),
        "{access}"
    );
    assert_eq!(get_on(&mut kept, "/nothing"), 404);
    let access = next_line(&lines, "access line", |l| l.contains("GET /nothing"));
    assert!(access.contains(" -- \"404 Not Found\" "), "{access}");

    // A second connection from the same address is over the cap: 503 and
    // a warning.
    let mut second = connect(addr);
    let refused = read_response(&mut second, false);
    assert_eq!(refused.status, 503);
    let warning = next_line(&lines, "warning", |l| l.contains("turned away"));
    assert!(warning.starts_with("warning: 127.0.0.1:"), "{warning}");

    // The reader goes away after this line (`program 2>&1 | head`): every
    // later line meets EPIPE, and the server must go on answering.
    assert_eq!(get_on(&mut kept, "/last-line"), 404);
    next_line(&lines, "last line", |l| l.contains("/last-line"));
    reader.join().unwrap();
    for i in 0..5 {
        assert_eq!(get_on(&mut kept, "/hello"), 200, "request {i}");
    }
    assert!(
        program.0.try_wait().unwrap().is_none(),
        "the program exited"
    );
}
