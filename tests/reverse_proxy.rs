//! pollserve behind nginx: two instances as an upstream pair, with the nginx
//! configuration that `docs/reverse-proxy.md` documents (read from that file,
//! so the page and the test cannot drift apart). Checks plain requests
//! reaching both instances over kept-alive upstream connections, an event
//! stream passed through unbuffered, a WebSocket upgrade with an echo, and
//! the body size limit.
//!
//! Needs `nginx` (on `PATH`, or Debian's `/usr/sbin/nginx`); `./test.sh`
//! installs it. Without it every test prints `SKIPPED: …` to stderr and
//! passes. nginx runs as an ordinary child process with all its files in a
//! temporary directory, listening on 127.0.0.1 only.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, serve_loop, TestServer};
use pollserve::forwarded::TrustedProxies;
use pollserve::proto::ws::{accept_key, Event, Role, WsSession};
use pollserve::sse::SseId;
use pollserve::ws::{CloseCode, Message, WsConfig, WsId};
use pollserve::{Method, Response, Server, ServerConfig};

/// The page whose first `nginx` block is the configuration under test.
const DOC: &str = include_str!("../docs/reverse-proxy.md");

/// pollserve's body limit in these tests; the documented `client_max_body_size 1m`.
const MAX_BODY: u64 = 1 << 20;

// ---------------------------------------------------------------------------
// Two pollserve instances
// ---------------------------------------------------------------------------

struct App {
    name: &'static str,
    sockets: Vec<WsId>,
    streams: Arc<Mutex<Vec<SseId>>>,
}

/// One pollserve instance on its own thread that names itself in every
/// answer, echoes WebSocket messages and records its event streams.
struct Upstream {
    server: TestServer<App>,
    /// Event streams this instance accepted, for `sender` to push to.
    streams: Arc<Mutex<Vec<SseId>>>,
    sender: pollserve::Sender,
}

fn upstream(name: &'static str) -> Upstream {
    let streams = Arc::new(Mutex::new(Vec::new()));
    let app = App {
        name,
        sockets: Vec::new(),
        streams: streams.clone(),
    };
    let config = ServerConfig::default().max_body_size(MAX_BODY);
    let server = serve_loop(config, app, echo, |server| {
        server
            .route("/whoami", Method::GET, |req, app: &mut App| {
                Ok(Response::text(app.name)
                    .with_header("X-Upstream", app.name)
                    .with_header("X-Client-Ip", &req.client_ip().to_string()))
            })
            .unwrap();
        server.trust_proxies(TrustedProxies::loopback());
        server
            .route("/upload", Method::POST, |req, app: &mut App| {
                Ok(Response::text(format!(
                    "{} got {} bytes",
                    app.name,
                    req.body().len()
                )))
            })
            .unwrap();
        server
            .route("/events", Method::GET, |req, app: &mut App| {
                let (response, id) = req.accept_sse()?;
                app.streams.lock().unwrap().push(id);
                Ok(response.with_header("X-Upstream", app.name))
            })
            .unwrap();
        server
            .route("/ws/echo", Method::GET, |req, app: &mut App| {
                let (response, id) = req.accept_websocket()?;
                app.sockets.push(id);
                Ok(response.with_header("X-Upstream", app.name))
            })
            .unwrap();
    });
    let sender = server.on_server(|s, _| s.sender().unwrap());
    Upstream {
        server,
        streams,
        sender,
    }
}

/// Echoes every WebSocket message, between polls.
fn echo(server: &mut Server<App>, app: &mut App) {
    for &id in &app.sockets {
        while let Some(message) = server.ws(id).receive() {
            let _ = server.ws(id).send(&message);
        }
    }
    app.sockets.retain(|&id| !server.ws(id).is_closed());
}

// ---------------------------------------------------------------------------
// nginx in front of them
// ---------------------------------------------------------------------------

/// `nginx` on `PATH`, else Debian's `/usr/sbin/nginx` (not on an ordinary
/// user's `PATH`).
fn find_nginx() -> Option<PathBuf> {
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nginx")).collect())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
}

/// The first `nginx` block of the page, with `from` replaced by `to` (each
/// must appear exactly once, so an edited page fails loudly here).
fn documented_config(replacements: &[(&str, String)]) -> String {
    let start = DOC.find("```nginx\n").expect("an nginx block in the page") + "```nginx\n".len();
    let len = DOC[start..].find("```").expect("the block ends");
    let mut config = DOC[start..start + len].to_owned();
    for (from, to) in replacements {
        assert_eq!(
            config.matches(from).count(),
            1,
            "{from} appears once in the documented config"
        );
        config = config.replace(from, to);
    }
    config
}

/// A running nginx, stopped (with its worker) when dropped.
struct Nginx {
    bin: PathBuf,
    dir: tempfile::TempDir,
    child: Child,
    addr: SocketAddr,
}

impl Nginx {
    /// Whether the pid file names our child.
    fn owns_pid_file(&self) -> bool {
        std::fs::read_to_string(self.dir.path().join("nginx.pid"))
            .is_ok_and(|p| p.trim() == self.child.id().to_string())
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// Where nginx finds its prefix, error log (opened before the configuration
/// is read) and configuration.
fn args_for(dir: &Path) -> [std::ffi::OsString; 6] {
    [
        "-p".into(),
        dir.into(),
        "-e".into(),
        dir.join("error.log").into(),
        "-c".into(),
        dir.join("nginx.conf").into(),
    ]
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL would end the master only and leave the worker serving;
        // `-s stop` (SIGTERM to the pid file's process) ends both. Sent only
        // while the pid file names our child and the child is unreaped, so
        // the signal cannot reach a process that reused a stale pid.
        if self.owns_pid_file() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new(&self.bin)
                .args(args_for(self.dir.path()))
                .args(["-s", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin` with the documented configuration in front of `upstreams`.
fn start_nginx(bin: PathBuf, upstreams: [SocketAddr; 2]) -> Nginx {
    let mut last_failure = String::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        // Run as root, nginx's worker switches to an unprivileged user, which
        // must still reach its temporary directories in here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let site = documented_config(&[
            ("127.0.0.1:8080", addr.to_string()),
            ("127.0.0.1:5001", upstreams[0].to_string()),
            ("127.0.0.1:5002", upstreams[1].to_string()),
        ]);
        let d = dir.path().display();
        let config = format!(
            r#"daemon off;
worker_processes 1;
pid "{d}/nginx.pid";
error_log "{d}/error.log" notice;
events {{
    worker_connections 256;
}}
http {{
    access_log off;
    client_body_temp_path "{d}/client_body";
    proxy_temp_path "{d}/proxy";
    fastcgi_temp_path "{d}/fastcgi";
    uwsgi_temp_path "{d}/uwsgi";
    scgi_temp_path "{d}/scgi";

{site}
}}
"#
        );
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let child = Command::new(&bin)
            .args(args_for(dir.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let mut nginx = Nginx {
            bin: bin.clone(),
            dir,
            child,
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let failure = loop {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                break format!("nginx exited ({status}):\n{}", nginx.error_log());
            }
            if Instant::now() > deadline {
                break format!("not ready after 10 s:\n{}", nginx.error_log());
            }
            // Listening, and the pid file written (after the sockets are
            // opened) that `Drop` checks before stopping it.
            if nginx.owns_pid_file() && TcpStream::connect(addr).is_ok() {
                return nginx;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Another process took the port between `free_port` and nginx.
        if !failure.contains("Address already in use") {
            panic!("nginx did not start: {failure}");
        }
        last_failure = failure;
    }
    panic!("nginx did not start in 5 tries: {last_failure}");
}

/// Two instances and nginx in front; nginx is stopped first when dropped.
struct Proxy {
    nginx: Nginx,
    upstreams: [Upstream; 2],
}

impl Proxy {
    /// `None` (after printing why) when nginx is not installed.
    fn start(test: &str) -> Option<Proxy> {
        let Some(bin) = find_nginx() else {
            common::skipped(&format!("{test}: nginx is not installed"));
            return None;
        };
        let upstreams = [upstream("a"), upstream("b")];
        let nginx = start_nginx(bin, upstreams.each_ref().map(|u| u.server.addr));
        Some(Proxy { nginx, upstreams })
    }

    fn accepted(&self) -> [usize; 2] {
        self.upstreams
            .each_ref()
            .map(|u| u.server.accepted.load(Ordering::SeqCst))
    }
}

// ---------------------------------------------------------------------------
// A client reading responses from nginx
// ---------------------------------------------------------------------------

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).expect("connect to nginx");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    BufReader::new(s)
}

/// Status and headers (names lower-cased) of the response head `r` is at.
fn read_head(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line)
        .expect("read the status line (within the 10 s read timeout)");
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a status line: {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("read a header line");
        let line = line.trim_end();
        if line.is_empty() {
            return (status, headers);
        }
        let (name, value) = line.split_once(':').expect("a header line");
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// One request on `r`'s connection; status, headers and body (Content-Length
/// or chunked, as nginx sends them).
fn exchange(r: &mut BufReader<TcpStream>, request: &str) -> (u16, Vec<(String, String)>, String) {
    r.get_mut().write_all(request.as_bytes()).unwrap();
    let (status, headers) = read_head(r);
    let mut body = Vec::new();
    if let Some(len) = header(&headers, "content-length") {
        body.resize(len.parse().unwrap(), 0);
        r.read_exact(&mut body).unwrap();
    } else if header(&headers, "transfer-encoding") == Some("chunked") {
        while let Some(chunk) = read_chunk(r) {
            body.extend(chunk);
        }
    }
    (status, headers, String::from_utf8(body).unwrap())
}

/// The next chunk of a chunked body, `None` after the last.
fn read_chunk(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut line = String::new();
    r.read_line(&mut line).expect("read a chunk size");
    let size = line.trim_end().split(';').next().unwrap();
    let size = usize::from_str_radix(size, 16).unwrap_or_else(|_| panic!("chunk size {line:?}"));
    let mut chunk = vec![0; size + 2];
    r.read_exact(&mut chunk).expect("read a chunk");
    assert!(chunk.ends_with(b"\r\n"), "chunk ends with CRLF");
    chunk.truncate(size);
    (size > 0).then_some(chunk)
}

fn get(path: &str, close: bool) -> String {
    let connection = if close { "close" } else { "keep-alive" };
    format!("GET {path} HTTP/1.1\r\nHost: proxy.test\r\nConnection: {connection}\r\n\r\n")
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Plain GETs reach both instances, and nginx reuses its connections to
/// them (`keepalive`, `proxy_http_version 1.1`, no `Connection: close`
/// passed on): 20 requests, 10 of them from clients that close after one
/// request, cost pollserve a few accepted connections instead of 20.
#[test]
fn plain_gets_reach_both_instances_over_reused_connections() {
    let Some(proxy) = Proxy::start("plain_gets_reach_both_instances_over_reused_connections")
    else {
        return;
    };
    let mut answered = Vec::new();
    let mut kept = connect(proxy.nginx.addr);
    for i in 0..20 {
        let (status, headers, body) = if i % 2 == 0 {
            exchange(&mut kept, &get("/whoami", false))
        } else {
            exchange(&mut connect(proxy.nginx.addr), &get("/whoami", true))
        };
        assert_eq!(status, 200, "request {i}: {body}");
        assert_eq!(header(&headers, "x-upstream"), Some(body.as_str()));
        answered.push(body);
    }
    for name in ["a", "b"] {
        assert!(
            answered.iter().any(|b| b == name),
            "instance {name} never answered: {answered:?}"
        );
    }
    let [a, b] = proxy.accepted();
    // One each when nginx reuses them; 20 in all when it does not.
    assert!(
        a >= 1 && b >= 1 && a + b <= 4,
        "20 requests through nginx opened {a} + {b} upstream connections"
    );
}

/// The client's address behind the proxy: pollserve trusts loopback proxies
/// here, so the `X-Forwarded-For` list nginx extends names the client. A
/// client that is itself on loopback (a trusted hop) may add an address
/// further out; without one, the client is 127.0.0.1.
#[test]
fn forwarded_client_address_from_trusted_proxies() {
    let Some(proxy) = Proxy::start("forwarded_client_address_from_trusted_proxies") else {
        return;
    };
    let mut c = connect(proxy.nginx.addr);
    let (status, headers, _) = exchange(&mut c, &get("/whoami", false));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-client-ip"), Some("127.0.0.1"));
    let (status, headers, _) = exchange(
        &mut c,
        "GET /whoami HTTP/1.1\r\nHost: proxy.test\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-client-ip"), Some("203.0.113.9"));
    // Straight to an instance: the peer (this test) is on loopback, so
    // trusted too; the spoofed left entry beyond the first untrusted
    // address is not believed.
    let mut direct = connect(proxy.upstreams[0].server.addr);
    let (status, headers, _) = exchange(
        &mut direct,
        "GET /whoami HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6, 198.51.100.4\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-client-ip"), Some("198.51.100.4"));
}

/// An event pushed after the stream opened arrives through nginx while the
/// stream stays open (nginx buffers upstream responses unless told not to;
/// pollserve's `X-Accel-Buffering: no` tells it), and so does a second one.
#[test]
fn sse_events_pass_through_unbuffered() {
    let Some(proxy) = Proxy::start("sse_events_pass_through_unbuffered") else {
        return;
    };
    let mut r = connect(proxy.nginx.addr);
    r.get_mut()
        .write_all(b"GET /events HTTP/1.1\r\nHost: proxy.test\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let (status, headers) = read_head(&mut r);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("text/event-stream"));
    // nginx acted on the header and does not pass it on.
    assert_eq!(header(&headers, "x-accel-buffering"), None);
    let chunked = header(&headers, "transfer-encoding") == Some("chunked");
    // The handler ran before the head was sent: the stream is registered.
    let (index, id) = (0..2)
        .find_map(|i| Some((i, *proxy.upstreams[i].streams.lock().unwrap().first()?)))
        .expect("an instance accepted the stream");
    assert_eq!(header(&headers, "x-upstream"), Some(["a", "b"][index]));
    let upstream = &proxy.upstreams[index];

    let mut pending = Vec::new();
    for n in 1..=2 {
        let data = format!("event number {n}");
        upstream
            .sender
            .send_event(&[id], &data, Some("note"), Some(&n.to_string()))
            .unwrap();
        let want = format!("event: note\nid: {n}\ndata: {data}\n\n");
        while !String::from_utf8_lossy(&pending).contains(&want) {
            let more = if chunked {
                read_chunk(&mut r).expect("the stream stays open")
            } else {
                let mut buf = [0; 4096];
                let len = r.read(&mut buf).expect("read the stream");
                assert!(len > 0, "the stream stays open");
                buf[..len].to_vec()
            };
            pending.extend(more);
        }
    }
}

/// `Upgrade`/`Connection: upgrade` pass through nginx, the handshake
/// completes, and messages echo both ways until a clean close.
#[test]
fn websocket_upgrade_and_echo_through_nginx() {
    let Some(proxy) = Proxy::start("websocket_upgrade_and_echo_through_nginx") else {
        return;
    };
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let mut r = connect(proxy.nginx.addr);
    write!(
        r.get_mut(),
        "GET /ws/echo HTTP/1.1\r\nHost: proxy.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    )
    .unwrap();
    let (status, headers) = read_head(&mut r);
    assert_eq!(status, 101, "{headers:?}");
    assert_eq!(
        header(&headers, "upgrade").map(str::to_ascii_lowercase),
        Some("websocket".into())
    );
    let accept = accept_key(key);
    assert_eq!(
        header(&headers, "sec-websocket-accept"),
        Some(accept.as_str())
    );

    let mut client = WsSession::new(Role::Client, WsConfig::default());
    let mut out = Vec::new();
    let mut input = Vec::new();
    let text = "through nginx ✓ ".repeat(100);
    client.send_text(&text, &mut out).unwrap();
    client.send_binary(&[0, 1, 2, 255], &mut out).unwrap();
    let mut next_event = |client: &mut WsSession, out: &mut Vec<u8>| loop {
        r.get_mut().write_all(out).unwrap();
        out.clear();
        if !input.is_empty() {
            let feed = client.feed(&mut input, Instant::now(), out);
            input.drain(..feed.consumed);
            if let Some(event) = feed.event {
                r.get_mut().write_all(out).unwrap();
                out.clear();
                return event;
            }
        }
        let mut buf = [0; 4096];
        let len = r.read(&mut buf).expect("read from nginx");
        assert!(len > 0, "nginx closed the WebSocket");
        input.extend_from_slice(&buf[..len]);
    };
    assert_eq!(
        next_event(&mut client, &mut out),
        Event::Message(Message::Text(text))
    );
    assert_eq!(
        next_event(&mut client, &mut out),
        Event::Message(Message::Binary(vec![0, 1, 2, 255]))
    );
    client
        .close(CloseCode::NORMAL, "done", Instant::now(), &mut out)
        .unwrap();
    match next_event(&mut client, &mut out) {
        Event::Close { code, .. } => assert_eq!(code, Some(CloseCode::NORMAL)),
        other => panic!("expected the close echoed, got {other:?}"),
    }
}

/// A body within the limits passes through nginx (which spools it to a
/// temporary file first: it is larger than nginx's in-memory buffer); one
/// declared larger than `client_max_body_size` is refused by nginx before it
/// is sent, with the same 413 pollserve would give.
#[test]
fn request_bodies_and_the_size_limit() {
    let Some(proxy) = Proxy::start("request_bodies_and_the_size_limit") else {
        return;
    };
    let body = "x".repeat(200_000);
    let (status, _, reply) = exchange(
        &mut connect(proxy.nginx.addr),
        &format!(
            "POST /upload HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(status, 200, "{reply}");
    assert!(reply.ends_with(" got 200000 bytes"), "{reply}");

    let (status, headers, _) = exchange(
        &mut connect(proxy.nginx.addr),
        &format!(
            "POST /upload HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            MAX_BODY + 1
        ),
    );
    assert_eq!(status, 413);
    assert_eq!(header(&headers, "x-upstream"), None, "nginx answered");
}
