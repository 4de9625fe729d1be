//! Shared test code: one serve loop for every test server (a `Server` polled
//! on its own thread, with work and queued closures between polls), raw
//! loopback clients, and helpers for client processes (Python, curl).
#![allow(dead_code)]

#[cfg(feature = "tls")]
pub mod tls;
pub mod ws;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pollserve::{Server, ServerConfig};

// ---------------------------------------------------------------------------
// The serve loop
// ---------------------------------------------------------------------------

/// Longest one `poll` of a test server waits; also how late it notices a
/// queued job or the stop request.
const POLL_TIMEOUT: Duration = Duration::from_millis(10);

/// A closure queued by [`TestServer::on_server`].
type Job<S> = Box<dyn FnOnce(&mut Server<S>, &mut S) + Send>;

/// A server polled on its own thread until dropped.
pub struct TestServer<S: 'static = ()> {
    pub addr: SocketAddr,
    /// Connections accepted so far (the sum of `Activity::accepted`, updated
    /// after each `poll` returns).
    pub accepted: Arc<AtomicUsize>,
    jobs: mpsc::Sender<Job<S>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<S: 'static> TestServer<S> {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Runs `f` on the server thread between two polls (after that round's
    /// `after_poll` work) and returns its result.
    pub fn on_server<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Server<S>, &mut S) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .send(Box::new(move |server, state| {
                let _ = tx.send(f(server, state));
            }))
            .expect("server thread alive");
        rx.recv_timeout(Duration::from_secs(10))
            .expect("server thread ran the job")
    }
}

impl<S: 'static> Drop for TestServer<S> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a server on 127.0.0.1 (any free port) on its own thread, the way a
/// program runs one in its main loop: `setup` registers routes before
/// `start`, then each round is one `poll` with `state`, `after_poll` (the
/// program's own work between polls), and the closures queued with
/// [`TestServer::on_server`]. Dropping the handle stops the loop.
pub fn serve_loop<S: Send + 'static>(
    config: ServerConfig,
    state: S,
    mut after_poll: impl FnMut(&mut Server<S>, &mut S) + Send + 'static,
    setup: impl FnOnce(&mut Server<S>) + Send + 'static,
) -> TestServer<S> {
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let (addr_tx, addr_rx) = mpsc::channel();
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job<S>>();
    let thread = std::thread::spawn({
        let stop = stop.clone();
        let accepted = accepted.clone();
        move || {
            let mut state = state;
            let mut server = Server::with_config(config);
            setup(&mut server);
            let addr = server.start("127.0.0.1", 0).expect("start");
            addr_tx.send(addr).unwrap();
            while !stop.load(Ordering::SeqCst) {
                let activity = server.poll(&mut state, POLL_TIMEOUT).expect("poll");
                accepted.fetch_add(activity.accepted, Ordering::SeqCst);
                after_poll(&mut server, &mut state);
                while let Ok(job) = jobs_rx.try_recv() {
                    job(&mut server, &mut state);
                }
            }
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server started");
    TestServer {
        addr,
        accepted,
        jobs: jobs_tx,
        stop,
        thread: Some(thread),
    }
}

/// [`serve_loop`]'s `after_poll` for a program with nothing to do between polls.
pub fn idle<S>(_: &mut Server<S>, _: &mut S) {}

/// [`serve_loop`] with default config, no state and nothing between polls.
pub fn serve(setup: impl FnOnce(&mut Server<()>) + Send + 'static) -> TestServer {
    serve_loop(ServerConfig::default(), (), idle, setup)
}

// ---------------------------------------------------------------------------
// Raw loopback clients
// ---------------------------------------------------------------------------

/// A port free on 127.0.0.1 a moment ago (for a process started next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Like [`connect`], with the socket's kernel buffers set before the
/// connection is made (`None` keeps the default). A fixed size turns off the
/// kernel's autotuning, so a test knows how much a peer that does not read
/// (or a server that does not) lets through before writes block.
pub fn connect_with_buffers(
    addr: SocketAddr,
    send_buffer: Option<usize>,
    recv_buffer: Option<usize>,
) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
    if let Some(n) = send_buffer {
        socket.set_send_buffer_size(n).expect("SO_SNDBUF");
    }
    if let Some(n) = recv_buffer {
        socket.set_recv_buffer_size(n).expect("SO_RCVBUF");
    }
    socket.connect(&addr.into()).expect("connect");
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sends `raw` and reads until the server closes (or 10 s pass).
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    read_to_close(&mut s)
}

pub fn read_to_close(s: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            // A TLS stream that ended without close_notify.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("read failed after {} bytes: {e}", out.len()),
        }
        assert!(Instant::now() < deadline, "server did not close");
    }
    out
}

/// Reads what `s` (non-blocking) has now into `into`; returns whether the
/// peer has closed.
pub fn read_available(s: &mut TcpStream, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Whether the server still holds `s` open: nothing to read, no EOF.
pub fn still_open(mut s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let open = matches!(s.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

/// Raises this process's descriptor limit (inherited by a server process it
/// starts) to at least `n`.
pub fn need_descriptors(n: u64) {
    let got = rlimit::increase_nofile_limit(n).expect("raise RLIMIT_NOFILE");
    assert!(
        got >= n,
        "this test needs {n} file descriptors; the limit is {got}"
    );
}

/// The status code of a raw response.
pub fn status_of(raw: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(raw);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// One parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads exactly one response from `s` (`head_request` = no body expected).
pub fn read_response(s: &mut impl Read, head_request: bool) -> Resp {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read head");
        assert!(
            n == 1,
            "connection closed inside a response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if head_request || status == 304 || status == 204 || status < 200 {
        return resp;
    }
    if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().unwrap();
        let mut body = vec![0; len];
        s.read_exact(&mut body).unwrap();
        resp.body = body;
    } else if resp.header("transfer-encoding").is_some() {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                s.read_exact(&mut byte).unwrap();
                line.push(byte[0]);
            }
            let size =
                usize::from_str_radix(std::str::from_utf8(&line[..line.len() - 2]).unwrap(), 16)
                    .unwrap();
            let mut chunk = vec![0; size + 2];
            s.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            resp.body.extend_from_slice(&chunk[..size]);
        }
    } else {
        resp.body = read_to_close(s);
    }
    resp
}

/// Sends one request on a new connection and reads one response.
pub fn request(addr: SocketAddr, raw: &str) -> Resp {
    let mut s = connect(addr);
    s.write_all(raw.as_bytes()).unwrap();
    read_response(&mut s, raw.starts_with("HEAD "))
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    )
}

// ---------------------------------------------------------------------------
// Client processes (Python, curl)
// ---------------------------------------------------------------------------

/// Longest a client process may run before it is killed.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

/// FNV-1a, 64 bits, as 16 hex digits.
pub fn fnv1a(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    /// Standard output as (lossy) text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `cmd` to completion, killing it after `PROCESS_TIMEOUT`.
pub fn run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
            panic!("{what} ran longer than {PROCESS_TIMEOUT:?}; stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
    }
}

/// `Some(())` when curl can be run; otherwise prints why and returns `None`.
pub fn have_curl(test: &str) -> Option<()> {
    match Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Some(()),
        Ok(s) => panic!("curl --version failed: {s}"),
        Err(e) => {
            skipped(&format!("{test}: curl is not available ({e})"));
            None
        }
    }
}

/// curl with the options every call shares: quiet but with errors, bounded,
/// no proxy, no config file.
pub fn curl() -> Command {
    let mut c = Command::new("curl");
    c.args(["-q", "-sS", "--max-time", "20", "--noproxy", "*"]);
    c
}

/// Reports a skipped test on the real stderr (not captured by the harness).
pub fn skipped(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// The Python interpreter for these tests, or `None` (after printing why)
/// when `POLLSERVE_TEST_PYTHON` is not set.
pub fn python(test: &str) -> Option<PathBuf> {
    match std::env::var_os("POLLSERVE_TEST_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            skipped(&format!(
                "{test}: POLLSERVE_TEST_PYTHON is not set (run ./test.sh, or \
                 set it to the python of a venv made by scripts/setup-python.sh)"
            ));
            None
        }
    }
}

/// Common start of every script: `base` URL, extra `args`, a timeout and
/// `obs`, which records a `requests` or `httpx` response.
pub const PY_PRELUDE: &str = r#"
import json, sys
base = sys.argv[1]
args = sys.argv[2:]
T = 10
def obs(r):
    return {
        "status": r.status_code,
        "headers": {k.lower(): v for k, v in r.headers.items()},
        "text": r.text,
    }
"#;

/// Runs a Python script (after [`PY_PRELUDE`]) against `base`; it must print
/// one JSON value as its last line of output.
pub fn run_python(py: &Path, script: &str, base: &str, args: &[&str]) -> serde_json::Value {
    let code = format!("{PY_PRELUDE}\n{script}");
    let out = run(Command::new(py)
        .arg("-c")
        .arg(&code)
        .arg(base)
        .args(args)
        .env("PYTHONIOENCODING", "utf-8")
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed ({}):\nstdout:\n{text}\nstderr:\n{}",
        out.status,
        out.stderr
    );
    let last = text.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("bad JSON from python ({e}): {text}"))
}

/// The JSON body of an `obs` record.
pub fn body_json(o: &serde_json::Value) -> serde_json::Value {
    let text = o["text"].as_str().unwrap_or_else(|| panic!("no text: {o}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
