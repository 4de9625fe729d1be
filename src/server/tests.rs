//! Driver tests that need the server's insides (the router's lookup count)
//! over a real loopback socket, polled on the test thread.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{BodySink, Route, Server};
use crate::error::HttpError;
use crate::method::Method;
use crate::response::Response;

struct Count(usize);

impl BodySink for Count {
    fn write(&mut self, chunk: &[u8]) -> Result<(), HttpError> {
        self.0 += chunk.len();
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<Response, HttpError> {
        Ok(Response::text(format!("sink {}", self.0)))
    }
}

/// Sends `head`, then `body` (at once, or once `100 Continue` arrived when
/// the head asks for it), polls until the connection closes, and returns
/// what came back.
fn exchange(server: &mut Server<()>, head: &str, body: &str) -> String {
    let addr = server.local_addr().unwrap();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nonblocking(true).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut sent_body = false;
    let waits = head.contains("100-continue");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        server.poll(&mut (), Duration::from_millis(5)).unwrap();
        if !sent_body && (!waits || out.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n")) {
            c.write_all(body.as_bytes()).unwrap();
            sent_body = true;
        }
        let mut buf = [0u8; 4096];
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
        assert!(
            Instant::now() < deadline,
            "no close: {}",
            String::from_utf8_lossy(&out)
        );
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn a_request_with_a_body_is_routed_once_with_and_without_expect_continue() {
    let mut server = Server::<()>::new();
    server
        .route("/form", Method::POST, |req, _| {
            Ok(Response::text(format!("handler {}", req.body().len())))
        })
        .unwrap();
    server
        .add_route(Route::streaming("/up", Method::POST, 1 << 20, |_, _| {
            Ok(Box::new(Count(0)))
        }))
        .unwrap();
    server.start("127.0.0.1", 0).unwrap();
    for path in ["/form", "/up"] {
        for expect in ["", "Expect: 100-continue\r\n"] {
            let before = server.routes.lookups.get();
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{expect}Content-Length: 5\r\n\r\n"
            );
            let out = exchange(&mut server, &head, "hello");
            let want = if path == "/form" {
                "handler 5"
            } else {
                "sink 5"
            };
            assert!(out.ends_with(want), "{out}");
            assert_eq!(
                out.starts_with("HTTP/1.1 100 Continue\r\n\r\n"),
                !expect.is_empty(),
                "{out}"
            );
            assert_eq!(server.routes.lookups.get() - before, 1, "{path} {expect:?}");
        }
    }
}

/// The application layer never reaches up into the driver (docs may link to
/// it): `server/` depends on `ws.rs`, `sse.rs`, `response.rs` and the rest,
/// not the other way round.
#[test]
fn application_modules_do_not_import_the_driver() {
    let driver_items = [
        "crate::server",
        "crate::Server",
        "crate::WsHandle",
        "crate::SseHandle",
        "crate::Sender",
        "crate::BodySink",
        "crate::ServerConfig",
        "crate::Activity",
        "crate::Route",
    ];
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    for dir in [src.clone(), src.join("proto")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("lib.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for item in driver_items {
                    let hit = code.match_indices(item).any(|(i, _)| {
                        // `crate::Route` must not match `crate::RouteError`.
                        !code[i + item.len()..]
                            .starts_with(|c: char| c.is_alphanumeric() || c == '_')
                    });
                    assert!(!hit, "{}:{}: {line}", path.display(), n + 1);
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} files checked");
}
