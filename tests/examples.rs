//! Runs the example programs and talks to them over loopback.
//!
//! Each test starts one already-built example binary (`cargo test` builds the
//! examples; if one is missing it is built here with `cargo build --example`)
//! on a free port, waits until it accepts connections, makes a few real HTTP
//! requests and kills it when the test ends, whatever the outcome.
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{connect, read_response, ws, Resp};

/// Port choice and start-up are serialised, so two examples started by
/// parallel tests never pick the same port.
static STARTING: Mutex<()> = Mutex::new(());

/// A running example, killed and reaped when dropped.
struct Example {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/<profile>/examples/NAME`, found from this test binary's own path
/// (`target/<profile>/deps/examples-…`), built if it is not there or older
/// than its source or the library (`cargo test --test examples` alone does
/// not rebuild examples).
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let newest_source = [root.join(format!("examples/{name}.rs")), root.join("src")]
        .iter()
        .filter_map(|p| newest_mtime(p))
        .max();
    let stale = match (modified(&binary), newest_source) {
        (Some(built), Some(source)) => source > built,
        (built, _) => built.is_none(),
    };
    if stale {
        let mut cargo = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        cargo
            .args(["build", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if name == "https" {
            cargo.args(["--features", "tls"]);
        }
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo build");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

/// The latest modification time of `path` or any file under it.
fn newest_mtime(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| newest_mtime(&e.ok()?.path()))
        .max()
}

/// A port such that it and the `span - 1` ports after it are free right now.
fn free_ports(span: u16) -> u16 {
    loop {
        let first = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let port = first.local_addr().unwrap().port();
        let rest: Result<Vec<_>, _> = (1..span)
            .map(|i| TcpListener::bind(("127.0.0.1", port.checked_add(i).unwrap_or(0))))
            .collect();
        if rest.is_ok() && port.checked_add(span).is_some() {
            return port; // every listener is dropped here, freeing the ports
        }
    }
}

fn accepting(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Starts example `name` with a free port as its argument (`ports` ports in
/// a row for examples that listen on several), retrying on a port clash.
fn start(name: &str, ports: u16) -> Example {
    start_with(name, ports, &[], None)
}

/// [`start`] with environment variables set and, if `log` is given, stderr
/// written to that file (a file, not a pipe: a pipe nobody reads would
/// block the example once full).
fn start_with(name: &str, ports: u16, env: &[(&str, &str)], log: Option<&Path>) -> Example {
    start_args(name, ports, &[], env, log)
}

/// [`start_with`] with `args` given to the example after the port.
fn start_args(
    name: &str,
    ports: u16,
    args: &[&str],
    env: &[(&str, &str)],
    log: Option<&Path>,
) -> Example {
    let binary = example_binary(name);
    let _guard = STARTING.lock().unwrap_or_else(|p| p.into_inner());
    for _attempt in 0..5 {
        let port = free_ports(ports);
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("create log file")),
            None => Stdio::null(),
        };
        let mut example = Example {
            child: Command::new(&binary)
                .arg(port.to_string())
                .args(args)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display())),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if example.child.try_wait().expect("try_wait").is_some() {
                break; // exited: most likely the port was taken; try another
            }
            let all_up =
                (0..ports).all(|i| accepting(SocketAddr::from(([127, 0, 0, 1], port + i))));
            if all_up {
                return example;
            }
            assert!(
                Instant::now() < deadline,
                "example {name} did not accept connections within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("example {name} kept exiting at start-up");
}

/// Sends one request (with `Connection: close`) and reads the response.
fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = connect(addr);
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        head += &format!("{name}: {value}\r\n");
    }
    if !body.is_empty() || method == "POST" || method == "PUT" || method == "DELETE" {
        head += &format!("Content-Length: {}\r\n", body.len());
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(&mut s, method == "HEAD")
}

fn get(addr: SocketAddr, path: &str) -> Resp {
    send(addr, "GET", path, &[], b"")
}

fn post_json(addr: SocketAddr, method: &str, path: &str, json: &str) -> Resp {
    send(
        addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        json.as_bytes(),
    )
}

#[track_caller]
fn expect(resp: &Resp, status: u16, needle: &str) {
    let text = resp.text();
    assert_eq!(resp.status, status, "body: {text}");
    assert!(text.contains(needle), "{needle:?} not in body: {text}");
}

#[test]
fn hello() {
    let ex = start("hello", 1);
    expect(&get(ex.addr, "/"), 200, "Hello from pollserve!");
    expect(&send(ex.addr, "POST", "/echo", &[], b"ping"), 200, "ping");
}

#[test]
fn start_and_poll() {
    let ex = start("start_and_poll", 1);
    expect(&get(ex.addr, "/"), 200, "average of the last");
    expect(
        &get(ex.addr, "/"),
        200,
        "requests handled before this one: 1",
    );
    // The Python example's static folder, whose index.html its `/` returns.
    expect(&get(ex.addr, "/index.html"), 200, "Served from a directory");
}

#[test]
fn methods() {
    let ex = start("methods", 1);
    expect(
        &get(ex.addr, "/api"),
        200,
        r#"[{"id":1,"name":"Object 1"}]"#,
    );
    let r = post_json(ex.addr, "POST", "/api/", r#"{"id":2,"name":"Two"}"#);
    expect(&r, 200, "Object added");
    let r = post_json(ex.addr, "PUT", "/api", r#"{"id":2,"name":"Deux"}"#);
    expect(&r, 200, "Object updated");
    expect(
        &post_json(ex.addr, "DELETE", "/api", r#"{"id":1}"#),
        200,
        "Object deleted",
    );
    expect(
        &post_json(ex.addr, "DELETE", "/api", r#"{"id":9}"#),
        404,
        "Object not found",
    );
    expect(&get(ex.addr, "/api"), 200, r#"[{"id":2,"name":"Deux"}]"#);
    expect(
        &post_json(ex.addr, "POST", "/api", "{"),
        400,
        "invalid JSON",
    );
}

#[test]
fn url_parameters() {
    let ex = start("url_parameters", 1);
    let r = get(ex.addr, "/device/lamp/action/turn_on");
    expect(
        &r,
        200,
        "Action (turn_on) performed on device with ID: lamp",
    );
    let r = get(ex.addr, "/device/emergency-power-off/fan");
    expect(
        &r,
        200,
        "Action (emergency_power_off) performed on device with ID: fan",
    );
    let r = get(ex.addr, "/device/fan/status/2024-05-01");
    expect(&r, 200, "device_id=fan, date=2024-05-01");
    expect(
        &get(ex.addr, "/device/any/status/"),
        200,
        "Status of all devices",
    );
    expect(&get(ex.addr, "/device/a/b/c"), 200, "Status of all devices");
    expect(
        &get(ex.addr, "/device/lamp/action/explode"),
        400,
        "Unknown action",
    );
}

#[test]
fn form_data() {
    let ex = start("form_data", 1);
    expect(
        &get(ex.addr, "/form?enctype=multipart/form-data"),
        200,
        "type=\"file\"",
    );
    let urlencoded = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = send(
        ex.addr,
        "POST",
        "/form",
        &urlencoded,
        b"something=%3Cb%3Ehi+there",
    );
    expect(&r, 200, "Submitted form value: &lt;b&gt;hi there");
    let body = b"--XyZ\r\n\
        Content-Disposition: form-data; name=\"upload\"; filename=\"notes.txt\"\r\n\
        Content-Type: text/plain\r\n\r\n\
        hello\r\n\
        --XyZ--\r\n";
    let multipart = [("Content-Type", "multipart/form-data; boundary=XyZ")];
    let r = send(ex.addr, "POST", "/form", &multipart, body);
    expect(&r, 200, "Uploaded file: notes.txt (5 bytes, text/plain)");
    let r = post_json(
        ex.addr,
        "POST",
        "/json",
        r#"{"name":"Ada","tags":["x","y"]}"#,
    );
    expect(&r, 200, "Hello Ada (2 tags)");
    expect(
        &get(ex.addr, "/search?q=a+b&tag=x&tag=y"),
        200,
        r#"q="a b" tags=["x", "y"]"#,
    );
}

#[test]
fn cookies() {
    let ex = start("cookies", 1);
    let r = get(ex.addr, "/?theme=dark");
    expect(&r, 200, "Theme: <b>dark</b>");
    let set: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(set.len(), 3, "{set:?}");
    assert!(
        set.iter().any(|c| c.starts_with("theme=dark; Path=/")),
        "{set:?}"
    );
    let r = send(ex.addr, "GET", "/", &[("Cookie", "theme=dark")], b"");
    expect(&r, 200, "Theme: <b>dark</b>");
    assert!(r.headers.iter().all(|(_, v)| !v.starts_with("theme=")));
}

#[test]
fn chunked() {
    let ex = start("chunked", 1);
    let r = get(ex.addr, "/chunked");
    expect(&r, 200, "Adafruit Industries");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let r = get(ex.addr, "/count");
    expect(&r, 200, "line 1000\n");
}

#[test]
fn redirects() {
    let ex = start("redirects", 1);
    let r = get(ex.addr, "/blinka");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://circuitpython.org/blinka")
    );
    assert_eq!(get(ex.addr, "/adafruit").status, 301);
    let r = get(ex.addr, "/circuitpython");
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("https://circuitpython.org"))
    );
    let r = send(ex.addr, "POST", "/login", &[], b"user=x");
    assert_eq!((r.status, r.header("location")), (307, Some("/fake-login")));
    expect(&get(ex.addr, "/nowhere"), 404, "Unknown redirect");
}

const BASIC: (&str, &str) = ("Authorization", "Basic dXNlcjpwYXNzd29yZA=="); // user:password
const TOKEN: (&str, &str) = (
    "Authorization",
    "Token 2db53340-4f9c-4f70-9037-d25bee77eca6",
);
const BEARER: (&str, &str) = (
    "Authorization",
    "Bearer 642ec696-2a79-4d60-be3a-7c9a3164d766",
);

#[test]
fn authentication_server() {
    let ex = start("authentication_server", 1);
    let r = get(ex.addr, "/implicit-require");
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Basic realm=")));
    assert_eq!(
        get(ex.addr, "/notes.txt").status,
        401,
        "static files are protected too"
    );
    expect(
        &send(ex.addr, "GET", "/implicit-require", &[BASIC], b""),
        200,
        "Authenticated",
    );
    expect(
        &send(ex.addr, "GET", "/", &[BEARER], b""),
        200,
        "Served from a directory",
    );
    let wrong = ("Authorization", "Bearer nope");
    assert_eq!(send(ex.addr, "GET", "/", &[wrong], b"").status, 401);
}

#[test]
fn authentication_handlers() {
    let ex = start("authentication_handlers", 1);
    expect(&get(ex.addr, "/check"), 200, "Not authenticated");
    expect(
        &send(ex.addr, "GET", "/check", &[TOKEN], b""),
        200,
        "Authenticated",
    );
    let r = get(ex.addr, "/require-or-401");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    let r = send(ex.addr, "GET", "/require-or-401", &[BASIC], b"");
    expect(&r, 200, "Authenticated as user");
    let r = send(ex.addr, "GET", "/require-or-401", &[TOKEN], b"");
    expect(&r, 200, "Authenticated as token #0");
    expect(&get(ex.addr, "/require-or-handle"), 401, "Manually handled");
    // The route-level check answers at the head: 401, not 100 Continue.
    let mut s = connect(ex.addr);
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\
          Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 5000000\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    let upload =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\n\
                   hello\r\n--XyZ--\r\n";
    let r = send(
        ex.addr,
        "POST",
        "/upload",
        &[BASIC, ("Content-Type", "multipart/form-data; boundary=XyZ")],
        upload,
    );
    expect(&r, 200, "Received: a.txt (5 bytes)");
}

#[test]
fn sse() {
    let ex = start("sse", 1);
    expect(
        &get(ex.addr, "/client"),
        200,
        "new EventSource('/connect-client')",
    );
    let mut s = connect(ex.addr);
    s.write_all(b"GET /connect-client HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    // The stream never ends: read until the first event (sent every second).
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0; 1024];
    while !String::from_utf8_lossy(&got).contains("\ndata: ") {
        assert!(
            Instant::now() < deadline,
            "no event: {}",
            String::from_utf8_lossy(&got)
        );
        let n = s.read(&mut buf).expect("read event stream");
        assert!(n > 0, "stream closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{text}"
    );
    // The CPU's temperature, as the Python example sends it, or "no sensor".
    let event_data = |got: &[u8]| {
        let text = String::from_utf8_lossy(got).into_owned();
        let line = text.split("\ndata: ").nth(1)?.split_once('\n')?.0;
        Some(line.to_owned())
    };
    while event_data(&got).is_none() {
        assert!(Instant::now() < deadline, "no whole data line");
        let n = s.read(&mut buf).expect("read event stream");
        assert!(n > 0, "stream closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let data = event_data(&got).unwrap();
    if Path::new(THERMAL_ZONE).exists() {
        let celsius: f64 = data.parse().expect("a number");
        assert!((-50.0..150.0).contains(&celsius), "{celsius} °C");
    } else {
        assert_eq!(data, "no sensor");
    }
}

/// `adafruit_httpserver`'s WebSocket example: readings pushed every second,
/// colours received, one client at a time (a new one closes the old one).
#[test]
fn websocket() {
    let ex = start("websocket", 1);
    let page = get(ex.addr, "/client");
    expect(&page, 200, "/connect-websocket");
    expect(&page, 200, r##"value="#000000""##);

    let mut first = ws::open(ex.addr, "/connect-websocket");
    let (fin, opcode, reading) = ws::read_frame(&mut first);
    let reading = String::from_utf8(reading).expect("text");
    assert!(fin && opcode == 1, "{opcode}");
    assert!(
        reading == "no sensor" || reading.parse::<f64>().is_ok(),
        "a temperature reading: {reading:?}"
    );
    // Garbage is ignored; the colour is kept and shows on the page.
    first
        .write_all(&ws::frame(true, 1, b"not a colour"))
        .unwrap();
    first.write_all(&ws::frame(true, 1, b"#ff8000")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(ex.addr, "/client")
        .text()
        .contains(r##"value="#ff8000""##)
    {
        assert!(
            Instant::now() < deadline,
            "the colour never reached the page"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // A second client replaces the first, which is told so.
    let mut second = ws::open(ex.addr, "/connect-websocket");
    loop {
        let (_, opcode, payload) = ws::read_frame(&mut first);
        if opcode == 8 {
            assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1000);
            assert_eq!(&payload[2..], b"another client connected");
            break;
        }
        assert_eq!(opcode, 1, "only readings before the close");
    }
    let (_, opcode, _) = ws::read_frame(&mut second);
    assert_eq!(opcode, 1, "the new client gets the readings");
}

/// The authenticated upload server: credentials checked at the head, a
/// 2 MiB file streamed to disk, the cookie with its name read back, the
/// route's limit, and no partial file left by a client that leaves.
#[test]
fn upload() {
    const BASIC: (&str, &str) = ("Authorization", "Basic dXNlcjpzZWNyZXQ="); // user:secret
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_arg = dir.path().to_str().unwrap().to_owned();
    let ex = start_args("upload", 1, &[&dir_arg], &[], None);
    expect(&get(ex.addr, "/"), 200, "nothing yet");

    // No credentials: 401 at the head, never 100 Continue.
    let mut s = connect(ex.addr);
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\
          Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 3000000\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 401);

    let name = "my file, v2 \u{e9}t\u{e9}.txt";
    let data: Vec<u8> = (0..2u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&data);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    let content_type = ("Content-Type", "multipart/form-data; boundary=XyZ");
    let r = send(ex.addr, "POST", "/upload", &[BASIC, content_type], &body);
    expect(&r, 200, &format!("saved {name} (2097152 bytes)"));
    assert_eq!(std::fs::read(dir.path().join(name)).unwrap(), data);
    let cookie = r.header("set-cookie").expect("a cookie").to_owned();
    let pair = cookie.split(';').next().unwrap();
    expect(
        &send(ex.addr, "GET", "/", &[("Cookie", pair)], b""),
        200,
        "my file, v2 \u{e9}t\u{e9}.txt",
    );

    // Over the route's 50 MiB: 413 before the body.
    let mut s = connect(ex.addr);
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: t\r\n{}: {}\r\n{}: {}\r\nContent-Length: 60000000\r\n\r\n",
        BASIC.0, BASIC.1, content_type.0, content_type.1
    );
    s.write_all(head.as_bytes()).unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("52428800"), "{}", r.text());

    // A client that leaves halfway: the partial file is removed.
    let mut s = connect(ex.addr);
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: t\r\n{}: {}\r\n{}: {}\r\nContent-Length: {}\r\n\r\n",
        BASIC.0,
        BASIC.1,
        content_type.0,
        content_type.1,
        body.len()
    );
    s.write_all(head.replace(name, "partial.bin").as_bytes())
        .unwrap();
    let partial = String::from_utf8_lossy(&body[..200]).replace(name, "partial.bin");
    s.write_all(partial.as_bytes()).unwrap();
    s.write_all(&data[..100_000]).unwrap();
    let part_file = dir.path().join(".partial.bin.part");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !part_file.exists() {
        assert!(Instant::now() < deadline, "the upload never began");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(s);
    while part_file.exists() {
        assert!(
            Instant::now() < deadline,
            "the partial file was left behind"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!dir.path().join("partial.bin").exists());
}

#[test]
fn video_stream() {
    let ex = start("video_stream", 1);
    let r = get(ex.addr, "/frame");
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("image/bmp"))
    );
    assert!(r.body.starts_with(b"BM"));
    // The stream never ends: read its head, then two frames, each pushed by
    // the main loop as one chunk.
    let mut s = connect(ex.addr);
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let head = read_response(&mut s, true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    assert_eq!(
        head.header("content-type"),
        Some("multipart/x-mixed-replace; boundary=frame")
    );
    let frames: Vec<Vec<u8>> = (0..2).map(|_| read_chunk(&mut s)).collect();
    let image_len = 54 + 64 * 48 * 3;
    let part_head =
        format!("--frame\r\nContent-Type: image/bmp\r\nContent-Length: {image_len}\r\n\r\n");
    for part in &frames {
        assert!(part.starts_with(part_head.as_bytes()), "{:?}", &part[..60]);
        assert_eq!(part.len(), part_head.len() + image_len + 2);
        assert!(part[part_head.len()..].starts_with(b"BM"));
        assert!(part.ends_with(b"\r\n"));
    }
    assert_ne!(frames[0], frames[1], "the picture changes between frames");
}

/// Reads one chunk of a chunked body (its size line, data and CRLF).
fn read_chunk(s: &mut TcpStream) -> Vec<u8> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        s.read_exact(&mut byte).expect("read chunk size");
        line.push(byte[0]);
    }
    let size = std::str::from_utf8(&line[..line.len() - 2]).unwrap();
    let size = usize::from_str_radix(size, 16).expect("hex chunk size");
    assert!(size > 0, "the stream ended");
    let mut data = vec![0; size + 2];
    s.read_exact(&mut data).expect("read chunk");
    assert!(data.ends_with(b"\r\n"));
    data.truncate(size);
    data
}

#[test]
fn multiple_servers() {
    let ex = start("multiple_servers", 2);
    let office = SocketAddr::from(([127, 0, 0, 1], ex.addr.port() + 1));
    let r = get(ex.addr, "/bedroom");
    expect(&r, 200, "Hello from the bedroom!");
    assert_eq!(r.header("x-server"), Some("Bedroom"));
    let r = get(office, "/office");
    expect(&r, 200, "Hello from the office!");
    assert_eq!(r.header("x-server"), Some("Office"));
    assert_eq!(get(office, "/bedroom").status, 404);
    // Both servers share one state: the visit counter.
    expect(&get(ex.addr, "/home"), 200, "(visit 1)");
    expect(&get(office, "/home"), 200, "(visit 2)");
    // Each server has a static folder of its own, with its default headers.
    expect(&get(ex.addr, "/notes.txt"), 200, "plain text file");
    let r = get(office, "/about.txt");
    expect(&r, 200, "A file in a subdirectory");
    assert_eq!(r.header("x-server"), Some("Office"));
    assert_eq!(get(office, "/notes.txt").status, 404);
    assert_eq!(get(ex.addr, "/about.txt").status, 404);
}

#[test]
fn cpu_information() {
    let ex = start("cpu_information", 1);
    let origin = [("Origin", "http://elsewhere.test")];
    let r = send(ex.addr, "GET", "/cpu-information/", &origin, b"");
    expect(&r, 200, "\"cpus\":");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.header("access-control-allow-origin").is_some(),
        "{:?}",
        r.headers
    );
    let info: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
    assert_eq!(info["os"], std::env::consts::OS);
    // The Python example's three readings, `null` where the machine has none.
    for key in ["temperature", "frequency", "voltage"] {
        assert!(info.get(key).is_some(), "no {key:?} in {info}");
    }
    assert!(
        info["frequency"].is_null() || info["frequency"].as_u64().is_some_and(|hz| hz > 0),
        "frequency in Hz: {info}"
    );
}

#[test]
fn neopixel() {
    let ex = start("neopixel", 1);
    expect(&get(ex.addr, "/"), 200, "type=\"color\"");
    let r = post_json(
        ex.addr,
        "POST",
        "/change-neopixel-color/json",
        r#"{"r":1,"g":2,"b":3}"#,
    );
    expect(&r, 200, "Changed NeoPixel to color (1, 2, 3)");
    expect(&get(ex.addr, "/pixel"), 200, r#"{"r":1,"g":2,"b":3}"#);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = send(
        ex.addr,
        "POST",
        "/change-neopixel-color/form-data",
        &form,
        b"r=9&b=7",
    );
    expect(&r, 200, "(9, 0, 7)");
    expect(
        &get(ex.addr, "/change-neopixel-color?g=200"),
        200,
        "(0, 200, 0)",
    );
    expect(
        &get(ex.addr, "/change-neopixel-color/4/5/6"),
        200,
        "(4, 5, 6)",
    );
    assert_eq!(get(ex.addr, "/change-neopixel-color/300/0/0").status, 400);
}

#[test]
fn templates() {
    let ex = start("templates", 1);
    let r = get(ex.addr, "/");
    expect(&r, 200, "Index of /");
    assert!(r.text().contains(r#"<a href="/?path=docs"#), "{}", r.text());
    assert!(r
        .text()
        .contains(r#"<a href="/?path=index.html">index.html</a>"#));
    assert!(!r.text().contains(">..</a>"), "no parent at the top");
    let r = get(ex.addr, "/?path=docs");
    expect(&r, 200, "about.txt");
    // As in the Python example's template: a link to the parent, a search box.
    expect(&r, 200, r#"<a href="/?path=">..</a>"#);
    expect(&r, 200, r#"<input type="search""#);
    expect(
        &get(ex.addr, "/?path=docs/about.txt"),
        200,
        "A file in a subdirectory",
    );
    assert!(matches!(
        get(ex.addr, "/?path=../Cargo.toml").status,
        403 | 404
    ));
}

#[test]
fn static_files() {
    let ex = start("static_files", 1);
    expect(&get(ex.addr, "/"), 200, "Served from a directory");
    let r = get(ex.addr, "/style.css");
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("text/css; charset=utf-8"))
    );
    assert!(r.header("etag").is_some());
    assert!(matches!(
        get(ex.addr, "/%2e%2e/Cargo.toml").status,
        403 | 404
    ));
}

/// The Python example's `MIMETypes.configure`: `.foo` and `.bar` registered,
/// unknown extensions served as `text/plain`.
#[test]
fn static_files_mime_types() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["a.foo", "b.bar", "c.unknown", "d.png"] {
        std::fs::write(dir.path().join(name), name).unwrap();
    }
    let root = dir.path().to_str().expect("UTF-8 temp path");
    let ex = start_args("static_files", 1, &[root], &[], None);
    for (path, mime) in [
        ("/a.foo", "text/foo"),
        ("/b.bar", "text/bar"),
        ("/c.unknown", "text/plain"),
        ("/d.png", "image/png"),
    ] {
        let r = get(ex.addr, path);
        assert_eq!(
            (r.status, r.header("content-type")),
            (200, Some(mime)),
            "{path}"
        );
    }
}

#[test]
fn handler_serves_file() {
    let ex = start("handler_serves_file", 1);
    expect(&get(ex.addr, "/home"), 200, "Home page");
    let r = get(ex.addr, "/home/download");
    assert!(r
        .header("content-disposition")
        .is_some_and(|v| v.starts_with("attachment")));
    expect(&get(ex.addr, "/docs/notes.txt"), 200, "plain text file");
    assert_eq!(get(ex.addr, "/docs/.hidden").status, 404);
    // The server's own static folder is another one: examples/static/docs.
    expect(&get(ex.addr, "/about.txt"), 200, "A file in a subdirectory");
    assert_eq!(
        get(ex.addr, "/home.html").status,
        404,
        "only /home serves it"
    );
}

/// Reads from an event stream until `needle` has arrived (10 s at most).
fn read_stream_until(s: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0; 1024];
    while !String::from_utf8_lossy(&got).contains(needle) {
        let text = String::from_utf8_lossy(&got);
        assert!(Instant::now() < deadline, "{needle:?} not received: {text}");
        let n = s.read(&mut buf).expect("read event stream");
        assert!(n > 0, "stream closed before {needle:?}: {text}");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads WebSocket frames until a text message containing `needle` (the
/// gateway pushes a reading every 200 ms in between); returns it.
fn read_ws_until(s: &mut TcpStream, needle: &str) -> String {
    for _ in 0..200 {
        let (fin, opcode, payload) = ws::read_frame(s);
        assert!(fin && opcode == 1, "unexpected frame {opcode}: {payload:?}");
        let text = String::from_utf8(payload).expect("UTF-8 text message");
        if text.contains(needle) {
            return text;
        }
    }
    panic!("no message with {needle:?} among 200");
}

#[cfg(unix)]
#[test]
fn field_gateway() {
    const AUTH: (&str, &str) = ("Authorization", "Basic cGk6czNjcmV0"); // pi:s3cret
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("gateway.log");
    let mut ex = start_with(
        "field_gateway",
        1,
        &[
            ("GATEWAY_USER", "pi"),
            ("GATEWAY_PASSWORD", "s3cret"),
            ("GATEWAY_STATS_SECS", "1"),
            ("GATEWAY_LOG", "info"),
        ],
        Some(&log_path),
    );
    let addr = ex.addr;

    // Basic authentication, server-wide.
    let r = get(addr, "/api/reading");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Basic realm="field gateway", charset="UTF-8""#)
    );
    assert_eq!(get(addr, "/").status, 401);
    let wrong = ("Authorization", "Basic cGk6d3Jvbmc="); // pi:wrong
    assert_eq!(send(addr, "GET", "/api/reading", &[wrong], b"").status, 401);
    expect(
        &send(addr, "GET", "/", &[AUTH], b""),
        200,
        "new EventSource('/events')",
    );
    // A trusted proxy (loopback) names the client: see the log check below.
    let via_proxy = [AUTH, ("X-Forwarded-For", "203.0.113.7")];
    let r = send(addr, "GET", "/api/reading", &via_proxy, b"");
    expect(&r, 200, "\"temperature_c\":");
    assert_eq!(r.header("content-type"), Some("application/json"));

    // The JSON API.
    let json = [AUTH, ("Content-Type", "application/json")];
    let r = send(
        addr,
        "POST",
        "/api/threshold",
        &json,
        br#"{"threshold_c": 24.5}"#,
    );
    expect(&r, 200, r#"{"threshold_c":24.5}"#);
    let r = send(
        addr,
        "POST",
        "/api/threshold",
        &[AUTH],
        br#"{"threshold_c": 1}"#,
    );
    assert_eq!(r.status, 415, "a form-like body is refused: {}", r.text());
    let r = send(
        addr,
        "POST",
        "/api/threshold",
        &json,
        br#"{"threshold_c": 900}"#,
    );
    assert_eq!(r.status, 422, "{}", r.text());
    let r = send(addr, "POST", "/api/threshold", &json, b"{");
    assert_eq!(r.status, 400, "{}", r.text());
    let big = vec![b' '; 5000];
    assert_eq!(
        send(addr, "POST", "/api/threshold", &json, &big).status,
        413
    );
    let r = send(
        addr,
        "POST",
        "/api/threshold",
        &[],
        br#"{"threshold_c": 1}"#,
    );
    assert_eq!(r.status, 401, "no credentials, no change");
    expect(
        &send(addr, "GET", "/api/reading", &[AUTH], b""),
        200,
        "\"threshold_c\":24.5",
    );

    // Server-Sent Events: readings arrive on the open stream.
    let mut events = connect(addr);
    write!(
        events,
        "GET /events HTTP/1.1\r\nHost: test\r\n{}: {}\r\n\r\n",
        AUTH.0, AUTH.1
    )
    .unwrap();
    let text = read_stream_until(&mut events, "\n\n");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let text = read_stream_until(&mut events, "\"seq\":");
    assert!(text.contains("event: reading\n"), "{text}");

    // WebSocket: refused without credentials and from another site.
    let (_, head) = ws::handshake(addr, "/ws", "");
    assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    let auth = format!("{}: {}\r\n", AUTH.0, AUTH.1);
    let evil = format!("{auth}Origin: http://evil.example\r\n");
    let (_, head) = ws::handshake(addr, "/ws", &evil);
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");

    // Readings arrive, commands are acknowledged, bad ones answered.
    let (mut sock, head) = ws::handshake(addr, "/ws", &auth);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    read_ws_until(&mut sock, "\"temperature_c\":");
    sock.write_all(&ws::frame(true, 1, br#"{"led": true}"#))
        .unwrap();
    assert_eq!(
        read_ws_until(&mut sock, "\"ack\""),
        r#"{"ack":"led","led":true}"#
    );
    read_ws_until(&mut sock, "\"led\":true}");
    sock.write_all(&ws::frame(true, 1, b"blink")).unwrap();
    read_ws_until(&mut sock, "\"error\"");

    // An oversized message closes that WebSocket with 1009, and only it.
    let (mut big, head) = ws::handshake(addr, "/ws", &auth);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    big.write_all(&ws::frame(true, 1, &vec![b'x'; 2000]))
        .unwrap();
    assert_eq!(ws::expect_close(&mut big), 1009);
    drop(big);
    read_ws_until(&mut sock, "\"seq\":");

    // The stats line (every second here, every minute by default).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log_path).is_ok_and(|log| log.contains(" stats: ")) {
        assert!(Instant::now() < deadline, "no stats line within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Ctrl-C: WebSocket clients are told 1001, streams end, exit status 0.
    let status = Command::new("kill")
        .args(["-INT", &ex.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    assert_eq!(ws::expect_close(&mut sock), 1001);
    let mut rest = Vec::new();
    let _ = events.read_to_end(&mut rest); // the stream ends
                                           // Hang up, as clients do: the server waits up to its linger timeout
                                           // (2 s) for a closed connection's peer to hang up before it exits.
    drop((sock, events));
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = ex.child.try_wait().expect("try_wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(0), "{exit:?}");

    let log = std::fs::read_to_string(&log_path).expect("read the log");
    assert!(
        log.contains(r#"pollserve::access: 203.0.113.7 -- "GET /api/reading""#),
        "{log}"
    );
    assert!(
        log.contains("failed: message too big (sent close 1009)"),
        "{log}"
    );
    assert!(log.contains("stopped (0 connections dropped"), "{log}");
}

#[test]
fn simpletest() {
    let ex = start("simpletest", 1);
    expect(
        &get(ex.addr, "/"),
        200,
        "Hello from the pollserve HTTP server!",
    );
    // Every other path is a file of examples/static.
    let r = get(ex.addr, "/notes.txt");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/static/notes.txt"))
            .unwrap()
    );
}

/// Where the examples read the CPU's temperature on Linux.
const THERMAL_ZONE: &str = "/sys/class/thermal/thermal_zone0/temp";

#[test]
fn temperature() {
    let ex = start("temperature", 1);
    let r = get(ex.addr, "/temperature");
    if Path::new(THERMAL_ZONE).exists() {
        assert_eq!(r.status, 200, "{}", r.text());
        let celsius: f64 = r.text().parse().expect("a number");
        assert!((-50.0..150.0).contains(&celsius), "{celsius} °C");
    } else {
        expect(&r, 503, "no temperature sensor");
    }
}

/// "samples taken: N" on the page.
fn samples_taken(resp: &Resp) -> u64 {
    let text = resp.text();
    text.lines()
        .find_map(|l| l.strip_prefix("samples taken: "))
        .unwrap_or_else(|| panic!("no sample count in {text}"))
        .parse()
        .unwrap()
}

#[test]
fn start_and_poll_tokio() {
    let ex = start("start_and_poll_tokio", 1);
    // Served by the server task, while the sensor task keeps working.
    let first = get(ex.addr, "/");
    expect(&first, 200, "average of the last");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let later = get(ex.addr, "/");
        if samples_taken(&later) > samples_taken(&first) {
            break;
        }
        assert!(Instant::now() < deadline, "the sensor task took no sample");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The Python example's static folder, whose index.html its `/` returns.
    expect(&get(ex.addr, "/index.html"), 200, "Served from a directory");
}

#[test]
fn host_loop() {
    let ex = start("host_loop", 1);
    let ticks = |r: &Resp| -> u64 {
        let text = r.text();
        text.lines()
            .find_map(|l| l.strip_prefix("ticks: "))
            .unwrap_or_else(|| panic!("no ticks in {text}"))
            .parse()
            .unwrap()
    };
    let first = get(ex.addr, "/");
    expect(&first, 200, "message: (nothing typed yet)");
    // The host's own timer runs beside the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ticks(&get(ex.addr, "/")) <= ticks(&first) {
        assert!(Instant::now() < deadline, "the host's timer never ticked");
        std::thread::sleep(Duration::from_millis(100));
    }
    // An event stream opens.
    let mut s = connect(ex.addr);
    s.write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
}

#[cfg(feature = "tls")]
#[test]
fn https() {
    use common::tls::{pki, tls13, tls_connect};
    let pki = pki();
    let (cert, key) = (
        pki.cert_file.to_str().unwrap(),
        pki.key_file.to_str().unwrap(),
    );
    let ex = start_args("https", 2, &[cert, key], &[], None);
    let mut s = tls_connect(ex.addr, &tls13());
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false);
    expect(&r, 200, "Hello from the pollserve HTTPS server!");
    // The static folder, on the same connection.
    s.write_all(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 200);
    // PORT + 1 redirects to HTTPS.
    let redirect = SocketAddr::from(([127, 0, 0, 1], ex.addr.port() + 1));
    let r = send(redirect, "GET", "/notes.txt?x=1", &[], b"");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("https://test:{}/notes.txt?x=1", ex.addr.port()).as_str())
    );
    // Without a certificate it explains how to make one, and exits.
    let out = Command::new(example_binary("https"))
        .arg("0")
        .env_remove("POLLSERVE_TLS_CERT")
        .env_remove("POLLSERVE_TLS_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("openssl req -x509"));
}

/// Feeds `pending`, then what arrives on `s`, to a client-role session until
/// it yields a message (at most 10,000 reads, each bounded by the socket's
/// 10 s timeout); what the session does not consume stays in `pending`.
#[cfg(feature = "deflate")]
fn next_message(
    s: &mut TcpStream,
    session: &mut pollserve::proto::ws::WsSession,
    pending: &mut Vec<u8>,
) -> pollserve::ws::Message {
    use pollserve::proto::ws::Event;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    for _ in 0..10_000 {
        let feed = session.feed(pending, Instant::now(), &mut out);
        pending.drain(..feed.consumed);
        match feed.event {
            Some(Event::Message(m)) => return m,
            Some(Event::Pong(_)) => continue,
            Some(other) => panic!("unexpected event {other:?}"),
            None => {}
        }
        if !out.is_empty() {
            s.write_all(&out).unwrap();
            out.clear();
        }
        let n = s.read(&mut buf).expect("read WebSocket frames");
        assert!(n > 0, "the dashboard closed the connection");
        pending.extend_from_slice(&buf[..n]);
    }
    panic!("no complete message");
}

/// The compressed dashboard: a client offering permessage-deflate gets
/// compressed readings (RSV1 set, inflated by the library's own
/// client-role session) and its compressed commands echoed intact; a client
/// offering nothing gets plain JSON; `/clients` lists what each agreed; with
/// `--no-deflate` the offer is declined.
#[cfg(feature = "deflate")]
#[test]
fn compressed_dashboard() {
    use pollserve::proto::extensions::{accept_response, client_offer};
    use pollserve::proto::ws::{Role, WsSession};
    use pollserve::ws::{DeflateOptions, Message, WsConfig};

    let ex = start_args(
        "compressed_dashboard",
        1,
        &["--interval-ms", "50"],
        &[],
        None,
    );
    expect(&get(ex.addr, "/"), 200, "ws.extensions");

    let prefs = DeflateOptions::default();
    let offer = client_offer(&prefs);
    let (mut s, head) = ws::handshake(
        ex.addr,
        "/ws",
        &format!("Sec-WebSocket-Extensions: {offer}\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let agreed = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
        .unwrap_or_else(|| panic!("offer declined: {head}"));
    assert_eq!(
        agreed,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    let params = accept_response(agreed, &prefs).expect("a valid answer");
    let mut session = WsSession::new(Role::Client, WsConfig::default());
    session.enable_deflate(params, 6, 0);

    // The first bytes after the handshake begin a reading: compressed.
    // (A reading is over 125 bytes even compressed: a 16-bit length follows.)
    let mut pending = vec![0u8; 4];
    s.read_exact(&mut pending).unwrap();
    assert_eq!(pending[0], 0x80 | 0x40 | 1, "FIN, RSV1, text");
    assert_eq!(pending[1], 126, "unmasked, 16-bit length");
    let wire_len = usize::from(u16::from_be_bytes([pending[2], pending[3]]));
    let reading = next_message(&mut s, &mut session, &mut pending);
    let Message::Text(reading) = reading else {
        panic!("a text reading");
    };
    let json: serde_json::Value = serde_json::from_str(&reading).expect("JSON reading");
    assert_eq!(json["rooms"].as_array().map(Vec::len), Some(4), "{reading}");
    assert!(
        wire_len < reading.len() / 2,
        "{wire_len} compressed bytes for {} plain",
        reading.len()
    );

    // Commands come back as sent, whatever their size and kind.
    let big: String = (0..20_000).map(|i| format!("valve {i} ")).collect();
    let commands = [
        Message::Text("led on".into()),
        Message::Text(big),
        Message::Binary((0..=255u8).cycle().take(70_000).collect()),
        Message::Text(String::new()),
    ];
    for command in &commands {
        let mut out = Vec::new();
        match command {
            Message::Text(t) => session.send_text(t, &mut out).unwrap(),
            Message::Binary(b) => session.send_binary(b, &mut out).unwrap(),
        }
        s.write_all(&out).unwrap();
        let echo = (0..100)
            .map(|_| next_message(&mut s, &mut session, &mut pending))
            .find(|m| !matches!(m, Message::Text(t) if t.starts_with(r#"{"seq":"#)))
            .expect("the echo among the readings");
        assert!(echo == *command, "echo differs from the command sent");
    }

    // A client that offers nothing gets the same readings uncompressed.
    let mut plain = ws::open(ex.addr, "/ws");
    let (fin, opcode, payload) = ws::read_frame(&mut plain);
    assert!(fin && opcode == 1);
    let text = String::from_utf8(payload).expect("UTF-8");
    serde_json::from_str::<serde_json::Value>(&text).expect("plain JSON reading");

    let clients = get(ex.addr, "/clients").text();
    assert!(
        clients.contains(r#""deflate":"permessage-deflate server_max_window_bits=15 client_max_window_bits=15 server_no_context_takeover client_no_context_takeover""#),
        "{clients}"
    );
    assert!(clients.contains(r#""deflate":null"#), "{clients}");

    // With compression off, the same offer is declined.
    let off = start_args("compressed_dashboard", 1, &["--no-deflate"], &[], None);
    let (_s, head) = ws::handshake(
        off.addr,
        "/ws",
        &format!("Sec-WebSocket-Extensions: {offer}\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(!head.contains("Sec-WebSocket-Extensions"), "{head}");
}

/// Reads WebSocket frames until a text message starting with `prefix`
/// (ticks and news arrive in between); returns it.
fn read_ws_prefix(s: &mut TcpStream, prefix: &str) -> String {
    for _ in 0..500 {
        let (fin, opcode, payload) = ws::read_frame(s);
        assert!(fin && opcode == 1, "unexpected frame {opcode}: {payload:?}");
        let text = String::from_utf8(payload).expect("UTF-8 text message");
        if text.starts_with(prefix) {
            return text;
        }
    }
    panic!("no message starting with {prefix:?} among 500");
}

/// The rooms example: two clients of one room get each other's chat (and
/// nothing of another room's), ticks and news arrive, an event stream
/// joined to the room gets the chat as an event, and a client that leaves
/// is no longer counted in its room.
#[test]
fn rooms() {
    let ex = start("rooms", 1);
    let mut a = ws::open(ex.addr, "/ws/2");
    let welcome = read_ws_prefix(&mut a, "welcome ");
    let token_a = welcome.split(' ').nth(1).expect("token").to_owned();
    assert_eq!(welcome, format!("welcome {token_a} 2"));
    let mut b = ws::open(ex.addr, "/ws/2");
    read_ws_prefix(&mut b, "welcome ");
    let mut other = ws::open(ex.addr, "/ws/5");
    read_ws_prefix(&mut other, "welcome ");
    let mut sse = connect(ex.addr);
    sse.write_all(b"GET /ticker?room=2 HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    read_stream_until(&mut sse, "data: hello ");

    // `/count` is answered after the joins above were carried out.
    b.write_all(&ws::frame(true, 1, b"/count 2")).unwrap();
    assert_eq!(read_ws_prefix(&mut b, "count "), "count 2 3");
    a.write_all(&ws::frame(true, 1, b"hi room")).unwrap();
    let line = format!("chat 2 1 {token_a} hi room");
    assert_eq!(read_ws_prefix(&mut a, "chat "), line);
    assert_eq!(read_ws_prefix(&mut b, "chat "), line);
    read_stream_until(&mut sse, &format!("event: chat\ndata: {line}\n\n"));
    read_ws_prefix(&mut b, "tick 2 ");
    read_ws_prefix(&mut b, "news ");
    // Room 5 hears its own ticks, never room 2's chat.
    other.write_all(&ws::frame(true, 1, b"/count 5")).unwrap();
    for _ in 0..500 {
        let (_, _, payload) = ws::read_frame(&mut other);
        let text = String::from_utf8(payload).expect("text");
        assert!(!text.starts_with("chat "), "room 5 got {text:?}");
        assert!(!text.starts_with("tick 2 "), "room 5 got {text:?}");
        if text.starts_with("count ") {
            assert_eq!(text, "count 5 1");
            break;
        }
    }

    // A client that goes away leaves its room by itself.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        b.write_all(&ws::frame(true, 1, b"/count 2")).unwrap();
        if read_ws_prefix(&mut b, "count ") == "count 2 2" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed client stayed in room 2"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = get(ex.addr, "/stats").text();
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("JSON stats");
    assert_eq!(stats["rooms"][5], 1, "{stats}");
    assert_eq!(stats["ticker"], 1, "{stats}");
}
