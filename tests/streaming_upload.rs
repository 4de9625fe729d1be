//! Request bodies streamed to a `BodySink` as they arrive (uploads larger than
//! `max_body_size`, written to disk by the program's choice).

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use pollserve::form::{MultipartEvent, MultipartParser};
use pollserve::{BodySink, FormLimits, HttpError, Method, Response, Route, StatusCode};
use sha1::{Digest, Sha1};

/// Hashes and counts the body; fails on purpose when asked to.
struct Hasher {
    hash: Sha1,
    len: u64,
    fail_after: Option<u64>,
}

impl BodySink for Hasher {
    fn write(&mut self, chunk: &[u8]) -> Result<(), HttpError> {
        self.len += chunk.len() as u64;
        if self.fail_after.is_some_and(|n| self.len > n) {
            return Err(HttpError::new(
                StatusCode::UNPROCESSABLE_CONTENT,
                "sink refused",
            ));
        }
        self.hash.update(chunk);
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<Response, HttpError> {
        Ok(Response::text(format!(
            "{} {}",
            self.len,
            hex(&self.hash.finalize())
        )))
    }
}

/// Streams multipart file parts to files in a directory.
struct ToDisk {
    parser: MultipartParser,
    dir: PathBuf,
    current: Option<(String, std::fs::File, Sha1, u64)>,
    saved: Vec<serde_json::Value>,
}

impl ToDisk {
    fn pump(&mut self) -> Result<(), HttpError> {
        while let Some(event) = self.parser.next_event()? {
            match event {
                MultipartEvent::PartStart(h) => {
                    let name = h.filename().unwrap_or("field").replace(['/', '\\'], "_");
                    let file = std::fs::File::create(self.dir.join(&name))?;
                    self.current = Some((name, file, Sha1::new(), 0));
                }
                MultipartEvent::PartData(data) => {
                    if let Some((_, file, hash, len)) = self.current.as_mut() {
                        file.write_all(data)?;
                        hash.update(data);
                        *len += data.len() as u64;
                    }
                }
                MultipartEvent::PartEnd => {
                    if let Some((name, _, hash, len)) = self.current.take() {
                        self.saved.push(serde_json::json!({"name": name, "size": len, "sha1": hex(&hash.finalize())}));
                    }
                }
                MultipartEvent::End => {}
            }
        }
        Ok(())
    }
}

impl BodySink for ToDisk {
    fn write(&mut self, chunk: &[u8]) -> Result<(), HttpError> {
        self.parser.feed(chunk)?;
        self.pump()
    }
    fn finish(mut self: Box<Self>) -> Result<Response, HttpError> {
        self.pump()?;
        self.parser.finish()?;
        Response::json(&self.saved)
    }
}

fn server(dir: PathBuf) -> common::TestServer {
    common::serve(move |s| {
        s.add_route(Route::streaming(
            "/hash",
            [Method::PUT, Method::POST],
            64 << 20,
            |req, _| {
                if req.header("X-Token") == Some("deny") {
                    return Err(HttpError::new(StatusCode::UNAUTHORIZED, "no"));
                }
                let fail_after = req.query().get("fail_after").and_then(|n| n.parse().ok());
                Ok(Box::new(Hasher {
                    hash: Sha1::new(),
                    len: 0,
                    fail_after,
                }))
            },
        ))
        .unwrap();
        s.add_route(Route::streaming(
            "/upload",
            Method::POST,
            256 << 20,
            move |req, _| {
                let ct = req.header("Content-Type").unwrap_or("");
                let parser = MultipartParser::from_content_type(
                    ct,
                    FormLimits {
                        max_file_bytes: 256 << 20,
                        max_total_bytes: 256 << 20,
                        ..FormLimits::default()
                    },
                )?;
                Ok(Box::new(ToDisk {
                    parser,
                    dir: dir.clone(),
                    current: None,
                    saved: Vec::new(),
                }))
            },
        ))
        .unwrap();
    })
}

fn body(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

fn sha1_hex(data: &[u8]) -> String {
    hex(&Sha1::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn large_bodies_stream_past_max_body_size() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path().to_path_buf());
    // 5 MiB by Content-Length, five times the server-wide limit.
    let data = body(5 << 20);
    let mut c = common::connect(srv.addr);
    write!(
        c,
        "PUT /hash HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        data.len()
    )
    .unwrap();
    c.write_all(&data).unwrap();
    let r = common::read_response(&mut c, false);
    assert_eq!(r.text(), format!("{} {}", data.len(), sha1_hex(&data)));
    // The same connection carries on, now with a chunked body.
    write!(
        c,
        "POST /hash HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    for piece in data.chunks(300_000) {
        write!(c, "{:x}\r\n", piece.len()).unwrap();
        c.write_all(piece).unwrap();
        c.write_all(b"\r\n").unwrap();
    }
    c.write_all(b"0\r\n\r\n").unwrap();
    let r = common::read_response(&mut c, false);
    assert_eq!(r.text(), format!("{} {}", data.len(), sha1_hex(&data)));
    // No body at all: the sink is opened and finished at once.
    let r = common::request(
        srv.addr,
        "POST /hash HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.text(), format!("0 {}", sha1_hex(b"")));
}

#[test]
fn refusals_before_and_during_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path().to_path_buf());
    // Over the route's own limit: 413 before any body byte is sent.
    let r = common::request(
        srv.addr,
        &format!(
            "PUT /hash HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            65u64 << 20
        ),
    );
    assert_eq!(r.status, 413);
    // The opener refuses: its status, and the connection closes (body unread).
    let out = common::exchange(
        srv.addr,
        b"PUT /hash HTTP/1.1\r\nHost: t\r\nX-Token: deny\r\nContent-Length: 3\r\n\r\nabc",
    );
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 401 ") && text.contains("Connection: close"),
        "{text}"
    );
    // The sink refuses half-way.
    let data = body(1 << 20);
    let mut c = common::connect(srv.addr);
    write!(
        c,
        "PUT /hash?fail_after=1000 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        data.len()
    )
    .unwrap();
    let _ = c.write_all(&data);
    let r = common::read_response(&mut c, false);
    assert_eq!((r.status, r.header("connection")), (422, Some("close")));
    // A buffered route still has the server-wide limit.
    let r = common::request(
        srv.addr,
        &format!(
            "POST /other HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            2 << 20
        ),
    );
    assert_eq!(r.status, 413);
}

#[test]
fn server_wide_authentication_guards_streaming_routes() {
    use pollserve::auth::Authentication;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static OPENED: AtomicUsize = AtomicUsize::new(0);
    let srv = common::serve(|s| {
        s.require_authentication(Authentication::new("up").basic("u", "p"));
        s.add_route(Route::streaming("/hash", Method::POST, 1 << 20, |_, _| {
            OPENED.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(Hasher {
                hash: Sha1::new(),
                len: 0,
                fail_after: None,
            }))
        }))
        .unwrap();
    });
    // No credentials, with and without `Expect: 100-continue`: 401 before the
    // body, the opener never runs, the connection closes.
    for expect in ["", "Expect: 100-continue\r\n"] {
        let out = common::exchange(
            srv.addr,
            format!("POST /hash HTTP/1.1\r\nHost: t\r\n{expect}Content-Length: 3\r\n\r\nabc")
                .as_bytes(),
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 401 "), "{text}");
        assert!(text.contains("WWW-Authenticate: Basic"), "{text}");
        assert!(text.contains("Connection: close"), "{text}");
    }
    assert_eq!(
        OPENED.load(Ordering::SeqCst),
        0,
        "opener ran without credentials"
    );
    // With credentials ("u:p"), streamed as before.
    let r = common::request(
        srv.addr,
        "POST /hash HTTP/1.1\r\nHost: t\r\nAuthorization: Basic dTpw\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(r.text(), format!("3 {}", sha1_hex(b"abc")));
    assert_eq!(OPENED.load(Ordering::SeqCst), 1);
}

#[test]
fn python_requests_multipart_upload_streams_to_disk() {
    let Some(python) = common::python("python_requests_multipart_upload_streams_to_disk") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path().to_path_buf());
    let script = r#"
import hashlib, json, sys, requests
big = bytes((i * 2654435761 >> 13) & 255 for i in range(12 * 1024 * 1024))
small = b"--\r\n--boundary-lookalike\r\n" * 1000
r = requests.post(sys.argv[1], files={"a": ("big.bin", big), "b": ("small.txt", small)}, data={"note": "hi"}, timeout=60)
assert r.status_code == 200, (r.status_code, r.text)
got = {f["name"]: f for f in r.json()}
for name, data in (("big.bin", big), ("small.txt", small)):
    assert got[name]["size"] == len(data), got
    assert got[name]["sha1"] == hashlib.sha1(data).hexdigest(), got
print("streamed upload: ok")
"#;
    let out = common::run(
        Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(format!("http://{}/upload", srv.addr)),
    );
    let text = format!("{}{}", out.stdout_text(), out.stderr);
    assert!(
        out.status.success() && text.contains("streamed upload: ok"),
        "{text}"
    );
    // The file on disk is the upload.
    assert_eq!(
        std::fs::metadata(dir.path().join("big.bin")).unwrap().len(),
        12 << 20
    );
}
