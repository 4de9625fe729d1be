//! Authentication end to end with Python `requests` and `httpx`: Basic
//! (UTF-8 credentials) and Bearer checked per handler, and server-wide
//! authentication in front of routes and static files, with the
//! `WWW-Authenticate` challenges a client sees on 401; and per-route
//! authentication checked when the head arrives, over raw sockets.
//!
//! The Python client is the interpreter named by `POLLSERVE_TEST_PYTHON` (a
//! venv made by `scripts/setup-python.sh`; `./test.sh` always sets it);
//! without the variable those tests print `SKIPPED: …` to stderr and return,
//! as in `tests/interop.rs`. The raw-socket tests always run.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use pollserve::auth::Authentication;
use pollserve::{BodySink, HttpError, Method, Response, Route};
use serde_json::json;

#[test]
fn per_handler_authentication_with_requests_and_httpx() {
    let Some(py) = python("per_handler_authentication_with_requests_and_httpx") else {
        return;
    };
    let app = serve(|s| {
        let both = Authentication::new("admin \"area\"")
            .basic("user", "passw0rd")
            .basic("zoë", "pässwörd ✓")
            .bearer("s3cr3t-t0ken");
        let bearer_only = Authentication::new("api").bearer("api-token");
        s.route("/admin", Method::GET, move |req, _| {
            let who = both.require(req.headers())?;
            Ok(Response::text(format!("hello {who:?}")))
        })
        .unwrap();
        s.route("/api", Method::GET, move |req, _| {
            bearer_only.require(req.headers())?;
            Ok(Response::text("api ok"))
        })
        .unwrap();
        s.route("/public", Method::GET, |_, _| Ok(Response::text("public")))
            .unwrap();
    });
    let v = run_python(
        &py,
        r#"
import requests, httpx
def challenges(r):
    if hasattr(r, "raw"):
        return r.raw.headers.getlist("WWW-Authenticate")
    return r.headers.get_list("www-authenticate")
def rec(r):
    o = obs(r)
    o["challenges"] = challenges(r)
    return o
bearer = lambda t: {"Authorization": "Bearer " + t}
out = {}
out["none"] = rec(requests.get(base + "/admin", timeout=T))
out["basic_ok"] = rec(requests.get(base + "/admin", auth=("user", "passw0rd"), timeout=T))
out["basic_wrong"] = rec(requests.get(base + "/admin", auth=("user", "passw0rd!"), timeout=T))
out["basic_unknown"] = rec(requests.get(base + "/admin", auth=("nobody", "passw0rd"), timeout=T))
# httpx encodes Basic credentials as UTF-8, as charset="UTF-8" asks.
out["basic_utf8"] = rec(httpx.get(base + "/admin", auth=("zoë", "pässwörd ✓"), timeout=T))
out["basic_utf8_wrong"] = rec(httpx.get(base + "/admin", auth=("zoë", "passwörd ✓"), timeout=T))
out["bearer_ok"] = rec(httpx.get(base + "/admin", headers=bearer("s3cr3t-t0ken"), timeout=T))
out["bearer_wrong"] = rec(httpx.get(base + "/admin", headers=bearer("s3cr3t-t0ken2"), timeout=T))
out["api_none"] = rec(requests.get(base + "/api", timeout=T))
out["api_ok"] = rec(requests.get(base + "/api", headers=bearer("api-token"), timeout=T))
out["api_basic"] = rec(requests.get(base + "/api", auth=("user", "passw0rd"), timeout=T))
out["public"] = rec(requests.get(base + "/public", timeout=T))
print(json.dumps(out))
"#,
        &app.url(""),
        &[],
    );
    let both = json!([
        r#"Basic realm="admin \"area\"", charset="UTF-8""#,
        r#"Bearer realm="admin \"area\"""#
    ]);
    for case in [
        "none",
        "basic_wrong",
        "basic_unknown",
        "basic_utf8_wrong",
        "bearer_wrong",
    ] {
        assert_eq!(v[case]["status"], 401, "{case}: {}", v[case]);
        assert_eq!(v[case]["challenges"], both, "{case}");
    }
    assert_eq!(v["basic_ok"]["status"], 200);
    assert_eq!(v["basic_ok"]["text"], "hello Basic(\"user\")");
    assert_eq!(v["basic_utf8"]["status"], 200, "{}", v["basic_utf8"]);
    assert_eq!(v["basic_utf8"]["text"], "hello Basic(\"zoë\")");
    assert_eq!(v["bearer_ok"]["status"], 200);
    assert_eq!(v["bearer_ok"]["challenges"], json!([]));
    for case in ["api_none", "api_basic"] {
        assert_eq!(v[case]["status"], 401, "{case}");
        assert_eq!(
            v[case]["challenges"],
            json!([r#"Bearer realm="api""#]),
            "{case}"
        );
    }
    assert_eq!(v["api_ok"]["status"], 200);
    assert_eq!(v["api_ok"]["text"], "api ok");
    assert_eq!(v["public"]["status"], 200);
}

#[test]
fn server_wide_authentication_covers_routes_and_static_files() {
    let Some(py) = python("server_wide_authentication_covers_routes_and_static_files") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "private notes\n").unwrap();
    let root = dir.path().to_owned();
    let basic = serve({
        let root = root.clone();
        move |s| {
            s.require_authentication(Authentication::new("site").basic("admin", "hunter2"));
            s.serve_files(&root).unwrap();
            s.route("/api", Method::GET, |_, _| Ok(Response::text("api")))
                .unwrap();
        }
    });
    let bearer = serve(move |s| {
        s.require_authentication(Authentication::new("site").bearer("tok-123"));
        s.serve_files(&root).unwrap();
    });
    let v = run_python(
        &py,
        r#"
import requests
basic, bearer = base, args[0]
def rec(r):
    o = obs(r)
    o["challenges"] = r.raw.headers.getlist("WWW-Authenticate")
    return o
out = {}
for name, path in [("file", "/notes.txt"), ("index", "/"), ("route", "/api"), ("missing", "/nope")]:
    out["basic_" + name + "_none"] = rec(requests.get(basic + path, timeout=T))
    out["basic_" + name + "_ok"] = rec(requests.get(basic + path, auth=("admin", "hunter2"), timeout=T))
    out["basic_" + name + "_wrong"] = rec(requests.get(basic + path, auth=("admin", "hunter3"), timeout=T))
out["basic_head_none"] = rec(requests.head(basic + "/notes.txt", timeout=T))
h = {"Authorization": "Bearer tok-123"}
out["bearer_none"] = rec(requests.get(bearer + "/notes.txt", timeout=T))
out["bearer_ok"] = rec(requests.get(bearer + "/notes.txt", headers=h, timeout=T))
out["bearer_wrong"] = rec(requests.get(bearer + "/notes.txt", headers={"Authorization": "Bearer tok-124"}, timeout=T))
out["bearer_basic"] = rec(requests.get(bearer + "/notes.txt", auth=("admin", "hunter2"), timeout=T))
print(json.dumps(out))
"#,
        &basic.url(""),
        &[&bearer.url("")],
    );
    let basic_challenge = json!([r#"Basic realm="site", charset="UTF-8""#]);
    for (name, ok_status, ok_text) in [
        ("file", 200, Some("private notes\n")),
        ("index", 200, Some("<h1>home</h1>")),
        ("route", 200, Some("api")),
        ("missing", 404, None),
    ] {
        for bad in ["none", "wrong"] {
            let o = &v[format!("basic_{name}_{bad}")];
            assert_eq!(o["status"], 401, "{name}/{bad}: {o}");
            assert_eq!(o["challenges"], basic_challenge, "{name}/{bad}");
            assert!(!o["text"].as_str().unwrap().contains("private"), "{o}");
        }
        let o = &v[format!("basic_{name}_ok")];
        assert_eq!(o["status"], ok_status, "{name}: {o}");
        if let Some(text) = ok_text {
            assert_eq!(o["text"], text, "{name}");
        }
        assert_eq!(o["challenges"], json!([]));
    }
    assert_eq!(v["basic_head_none"]["status"], 401);
    assert_eq!(v["basic_head_none"]["challenges"], basic_challenge);

    let bearer_challenge = json!([r#"Bearer realm="site""#]);
    for case in ["bearer_none", "bearer_wrong", "bearer_basic"] {
        assert_eq!(v[case]["status"], 401, "{case}");
        assert_eq!(v[case]["challenges"], bearer_challenge, "{case}");
    }
    assert_eq!(v["bearer_ok"]["status"], 200);
    assert_eq!(v["bearer_ok"]["text"], "private notes\n");
}

/// Counts what reached the program: handler calls and the body bytes they
/// saw, sinks opened and the bytes written to them.
#[derive(Default)]
struct Reached {
    handled: AtomicUsize,
    handled_bytes: AtomicUsize,
    opened: AtomicUsize,
    sunk_bytes: AtomicUsize,
}

struct CountingSink(&'static Reached, usize);

impl BodySink for CountingSink {
    fn write(&mut self, chunk: &[u8]) -> Result<(), HttpError> {
        self.0.sunk_bytes.fetch_add(chunk.len(), Ordering::SeqCst);
        self.1 += chunk.len();
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<Response, HttpError> {
        Ok(Response::text(format!("sunk {}", self.1)))
    }
}

/// `/upload` (buffered) and `/stream` (streaming) both require Basic
/// `user:passw0rd` on the route; `/public` does not.
fn route_auth_server(reached: &'static Reached) -> TestServer {
    serve(move |s| {
        let auth = || Authentication::new("uploads").basic("user", "passw0rd");
        s.add_route(
            Route::new("/upload", Method::POST, move |req, _| {
                reached.handled.fetch_add(1, Ordering::SeqCst);
                reached
                    .handled_bytes
                    .fetch_add(req.body().len(), Ordering::SeqCst);
                Ok(Response::text(format!("got {}", req.body().len())))
            })
            .require_authentication(auth())
            .max_body_size(8 << 20),
        )
        .unwrap();
        s.add_route(
            Route::streaming("/stream", Method::POST, 64 << 20, move |_, _| {
                reached.opened.fetch_add(1, Ordering::SeqCst);
                Ok(Box::new(CountingSink(reached, 0)))
            })
            .require_authentication(auth()),
        )
        .unwrap();
        s.route("/public", Method::POST, |req, _| {
            Ok(Response::text(format!("public {}", req.body().len())))
        })
        .unwrap();
    })
}

/// `user:passw0rd` and `user:wrong` in base64.
const GOOD: &str = "Authorization: Basic dXNlcjpwYXNzdzByZA==\r\n";
const WRONG: &str = "Authorization: Basic dXNlcjp3cm9uZw==\r\n";

#[test]
fn route_authentication_answers_401_before_100_continue_and_never_reads_the_body() {
    static REACHED: Reached = Reached {
        handled: AtomicUsize::new(0),
        handled_bytes: AtomicUsize::new(0),
        opened: AtomicUsize::new(0),
        sunk_bytes: AtomicUsize::new(0),
    };
    let app = route_auth_server(&REACHED);
    let challenge = r#"Basic realm="uploads", charset="UTF-8""#;

    // A 3 MB upload waiting for `100 Continue`, without or with wrong
    // credentials: the first thing back is the 401, then the connection
    // closes; the body was never sent, so it cannot have been read.
    for path in ["/upload", "/stream"] {
        for creds in ["", WRONG] {
            let mut s = connect(app.addr);
            write!(
                s,
                "POST {path} HTTP/1.1\r\nHost: t\r\n{creds}Expect: 100-continue\r\n\
                 Content-Length: 3000000\r\n\r\n"
            )
            .unwrap();
            let r = read_response(&mut s, false);
            assert_eq!(r.status, 401, "{path} {creds:?}");
            assert_eq!(r.header("www-authenticate"), Some(challenge));
            assert_eq!(r.header("connection"), Some("close"));
            assert!(
                read_to_close(&mut s).is_empty(),
                "{path}: more after the 401"
            );
        }
    }
    // Without `Expect`, a large or a streamed body is refused unread too:
    // the 401 comes after the head alone and the connection closes.
    for (path, len) in [("/upload", 3_000_000), ("/stream", 3)] {
        let mut s = connect(app.addr);
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n"
        )
        .unwrap();
        let r = read_response(&mut s, false);
        assert_eq!(
            (r.status, r.header("connection")),
            (401, Some("close")),
            "{path}"
        );
    }
    // A small body on a buffered route is read and dropped, keeping the
    // connection, as for server-wide authentication: the client retries
    // with credentials on the same connection.
    let mut s = connect(app.addr);
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsecret")
        .unwrap();
    let r = read_response(&mut s, false);
    assert_eq!((r.status, r.header("connection")), (401, None));
    write!(
        s,
        "POST /upload HTTP/1.1\r\nHost: t\r\n{GOOD}Content-Length: 3\r\n\r\nabc"
    )
    .unwrap();
    let r = read_response(&mut s, false);
    assert_eq!((r.status, r.text()), (200, "got 3".to_owned()));
    assert_eq!(REACHED.handled.load(Ordering::SeqCst), 1);
    assert_eq!(REACHED.opened.load(Ordering::SeqCst), 0);

    // With credentials, a waiting client gets `100 Continue` and is served.
    for (path, want) in [("/upload", "got 5"), ("/stream", "sunk 5")] {
        let mut s = connect(app.addr);
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: t\r\n{GOOD}Expect: 100-continue\r\n\
             Content-Length: 5\r\n\r\n"
        )
        .unwrap();
        let r = read_response(&mut s, false);
        assert_eq!(r.status, 100, "{path}");
        s.write_all(b"hello").unwrap();
        let r = read_response(&mut s, false);
        assert_eq!((r.status, r.text()), (200, want.to_owned()), "{path}");
    }
    // Only the authenticated bodies reached the program.
    assert_eq!(REACHED.handled.load(Ordering::SeqCst), 2);
    assert_eq!(REACHED.handled_bytes.load(Ordering::SeqCst), 3 + 5);
    assert_eq!(REACHED.opened.load(Ordering::SeqCst), 1);
    assert_eq!(REACHED.sunk_bytes.load(Ordering::SeqCst), 5);
    // Other routes need nothing.
    let r = request(
        app.addr,
        "POST /public HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok",
    );
    assert_eq!((r.status, r.text()), (200, "public 2".to_owned()));
}
