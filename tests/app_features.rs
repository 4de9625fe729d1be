//! Application features end to end, over real loopback sockets: forms
//! (urlencoded, text/plain, multipart uploads), cookies, authentication,
//! CORS, HTML escaping and Server-Sent Events.
//!
//! Most tests drive the server with real clients — Python `requests` and
//! `httpx` from the interpreter named by `POLLSERVE_TEST_PYTHON` (a venv made
//! by `scripts/setup-python.sh`; `./test.sh` always sets it). Without the
//! variable those tests print `SKIPPED: …` to stderr and return, as in
//! `tests/interop.rs`. The raw-socket tests always run.
//!
//! The server runs on its own thread with the program's own poll loop
//! ([`serve_app`]): after every `poll` it runs the test's per-tick work and
//! any closures the test thread queued with [`App::on_server`], so tests can
//! push events, close streams and ask `is_closed()` between polls exactly as
//! an application would.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use pollserve::auth::Authentication;
use pollserve::cors::Cors;
use pollserve::sse::{SseError, SseEvent, SseId, SseOptions, SseSendError};
use pollserve::{
    html_escape, FormLimits, Method, Response, SameSite, Server, ServerConfig, SetCookie,
};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Server harness: the program's own loop, with work between polls
// ---------------------------------------------------------------------------

/// Application state of the test servers.
#[derive(Default)]
struct State {
    /// Event streams accepted by `/events`, with the `Last-Event-ID` each
    /// request carried, in order of arrival. Never pruned, so tests can
    /// refer to streams by index.
    streams: Vec<(SseId, Option<String>)>,
    /// How many entries of `streams` the per-tick work has dealt with.
    started: usize,
}

/// A running test server; [`TestServer::on_server`] runs closures on its thread.
type App = TestServer<State>;

impl TestServer<State> {
    /// Waits until `/events` has accepted at least `n` streams; returns their ids.
    fn wait_streams(&self, n: usize) -> Vec<SseId> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ids: Vec<SseId> = self.on_server(|_, st| st.streams.iter().map(|s| s.0).collect());
            if ids.len() >= n {
                return ids;
            }
            assert!(Instant::now() < deadline, "only {} streams", ids.len());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until `server.sse(id).is_closed()` is true.
    fn wait_closed(&self, id: SseId) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.on_server(move |s, _| s.sse(id).is_closed()) {
            assert!(Instant::now() < deadline, "stream never reported closed");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Starts a server: `setup` registers routes (an `/events` route is added
/// first; see [`events_route`]), `tick` runs after every poll.
fn serve_app(
    config: ServerConfig,
    setup: impl FnOnce(&mut Server<State>) + Send + 'static,
    tick: impl FnMut(&mut Server<State>, &mut State) + Send + 'static,
) -> App {
    serve_loop(config, State::default(), tick, |server| {
        events_route(server, SseOptions::default());
        setup(server);
    })
}

/// `/events`: accepts an event stream with `options` and records its id and
/// `Last-Event-ID`. `/events-hb` is the same with a 200 ms heartbeat.
fn events_route(server: &mut Server<State>, options: SseOptions) {
    let hb = SseOptions {
        heartbeat: Some(Duration::from_millis(200)),
        ..SseOptions::default()
    };
    for (path, options) in [("/events", options), ("/events-hb", hb)] {
        server
            .route(path, Method::GET, move |req, st: &mut State| {
                let last = req.last_event_id().map(str::to_owned);
                let (response, id) = req.accept_sse_with(options.clone())?;
                st.streams.push((id, last));
                Ok(response)
            })
            .unwrap();
    }
}

/// `len` pseudo-random bytes (xorshift) with CRLF, `--`, CRLF`--` and bare
/// CR / LF sequences sprinkled in, to tempt a multipart parser into seeing
/// boundaries that are not there.
fn tricky_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len);
    let specials: [&[u8]; 6] = [
        b"\r\n",
        b"--",
        b"\r\n--",
        b"\r\n--\r\n",
        b"\r\n\r\n",
        b"------WebKitFormBoundary",
    ];
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x % 97 == 0 {
            out.extend_from_slice(specials[(x >> 8) as usize % specials.len()]);
        } else {
            out.push((x >> 24) as u8);
        }
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------
// Python clients (see tests/interop.rs for the conventions)
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Forms
// ---------------------------------------------------------------------------

/// Routes echoing parsed forms as JSON.
fn form_routes(s: &mut Server<State>) {
    // Any form encoding, default limits: every field and file described.
    s.route("/form", Method::POST, |req, _| {
        let form = req.form()?;
        let fields: Vec<[&str; 2]> = form.fields().iter().map(|(k, v)| [k, v]).collect();
        let files: Vec<Value> = form
            .all_files()
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "filename": f.filename,
                    "safe_filename": f.safe_filename(),
                    "content_type": f.content_type,
                    "size": f.size(),
                    "fnv": fnv1a(&f.data),
                })
            })
            .collect();
        Response::json(&json!({
            "fields": fields,
            "tags": form.get_all("tag").collect::<Vec<_>>(),
            "files": files,
        }))
    })
    .unwrap();
    // Tight limits: 4 KiB per file, 64 bytes per text field.
    s.route("/form-small", Method::POST, |req, _| {
        let limits = FormLimits {
            max_file_bytes: 4096,
            max_field_bytes: 64,
            ..FormLimits::default()
        };
        let form = req.form_with_limits(&limits)?;
        Ok(Response::text(format!("ok {}", form.len())))
    })
    .unwrap();
}

#[test]
fn multipart_upload_from_python_requests_arrives_byte_identical() {
    let Some(py) = python("multipart_upload_from_python_requests_arrives_byte_identical") else {
        return;
    };
    let app = serve_app(ServerConfig::default(), form_routes, idle);
    let data = tricky_bytes(300 * 1024);
    let small = tricky_bytes(777);
    let dir = tempfile::tempdir().unwrap();
    let big_path = dir.path().join("upload.bin");
    let small_path = dir.path().join("small.bin");
    std::fs::write(&big_path, &data).unwrap();
    std::fs::write(&small_path, &small).unwrap();
    let v = run_python(
        &py,
        r#"
import requests
big = open(args[0], "rb").read()
small = open(args[1], "rb").read()
out = {}
with requests.Session() as s:
    r = s.post(base + "/form",
        files=[
            ("upload", ("données.bin", big, "application/octet-stream")),
            ("extra", ("../../etc/notes.txt", small, "text/plain; charset=utf-8")),
        ],
        data={"title": "Holiday é & co", "tag": ["a", "b=c"]},
        timeout=T)
    out["upload"] = obs(r)
    out["request_content_type"] = r.request.headers["Content-Type"]
    # The same small file over the tight limits is fine; the big one is 413.
    out["small_ok"] = obs(s.post(base + "/form-small", files={"f": ("s.bin", small[:1000])}, timeout=T))
    out["file_too_large"] = obs(s.post(base + "/form-small", files={"f": ("big.bin", big[:5000])}, timeout=T))
    out["field_too_large"] = obs(s.post(base + "/form-small", files={"f": ("s.bin", b"x")}, data={"note": "n" * 65}, timeout=T))
    # The connection is still good after the refusals.
    out["after"] = obs(s.post(base + "/form", data={"k": "v"}, timeout=T))
print(json.dumps(out))
"#,
        &app.url(""),
        &[big_path.to_str().unwrap(), small_path.to_str().unwrap()],
    );
    let up = &v["upload"];
    assert_eq!(up["status"], 200, "{up}");
    assert!(v["request_content_type"]
        .as_str()
        .unwrap()
        .starts_with("multipart/form-data; boundary="));
    let got = body_json(up);
    assert_eq!(
        got["fields"],
        json!([["title", "Holiday é & co"], ["tag", "a"], ["tag", "b=c"]]),
        "{got}"
    );
    assert_eq!(got["tags"], json!(["a", "b=c"]));
    let files = got["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{got}");
    assert_eq!(files[0]["name"], "upload");
    assert_eq!(files[0]["filename"], "données.bin");
    assert_eq!(files[0]["content_type"], "application/octet-stream");
    assert_eq!(files[0]["size"], data.len());
    assert_eq!(files[0]["fnv"], fnv1a(&data));
    assert_eq!(files[1]["name"], "extra");
    assert_eq!(files[1]["filename"], "../../etc/notes.txt");
    assert_eq!(files[1]["safe_filename"], "notes.txt");
    assert_eq!(files[1]["content_type"], "text/plain; charset=utf-8");
    assert_eq!(files[1]["size"], small.len());
    assert_eq!(files[1]["fnv"], fnv1a(&small));

    assert_eq!(v["small_ok"]["status"], 200, "{}", v["small_ok"]);
    assert_eq!(v["small_ok"]["text"], "ok 0");
    assert_eq!(
        v["file_too_large"]["status"], 413,
        "{}",
        v["file_too_large"]
    );
    assert!(v["file_too_large"]["text"]
        .as_str()
        .unwrap()
        .contains("4096"));
    assert_eq!(
        v["field_too_large"]["status"], 413,
        "{}",
        v["field_too_large"]
    );
    assert_eq!(v["after"]["status"], 200);
    assert_eq!(body_json(&v["after"])["fields"], json!([["k", "v"]]));
}

/// Sends one multipart request with `content_type` and `body` on a fresh
/// connection.
fn post_raw(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> Resp {
    let mut s = connect(addr);
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    read_response(&mut s, false)
}

#[test]
fn malformed_multipart_bodies_get_400_and_never_a_panic() {
    let app = serve_app(ServerConfig::default(), form_routes, idle);
    let mp = "multipart/form-data; boundary=XyZ";
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("no boundary in body", mp, b"just some bytes\r\n".to_vec()),
        (
            "no closing boundary",
            mp,
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue".to_vec(),
        ),
        (
            "headers never end",
            mp,
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n".to_vec(),
        ),
        (
            "no Content-Disposition",
            mp,
            b"--XyZ\r\nContent-Type: text/plain\r\n\r\nv\r\n--XyZ--\r\n".to_vec(),
        ),
        (
            "garbage after a boundary",
            mp,
            b"--XyZ junk\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--XyZ--\r\n"
                .to_vec(),
        ),
        (
            "header line without a colon",
            mp,
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\nnonsense\r\n\r\nv\r\n--XyZ--\r\n"
                .to_vec(),
        ),
        (
            "text field not UTF-8",
            mp,
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xff\xfe\r\n--XyZ--\r\n"
                .to_vec(),
        ),
        (
            "missing boundary parameter",
            "multipart/form-data",
            b"--XyZ--\r\n".to_vec(),
        ),
        (
            "invalid boundary parameter",
            "multipart/form-data; boundary=\"\"",
            b"----\r\n".to_vec(),
        ),
        (
            "binary noise",
            mp,
            tricky_bytes(5000).into_iter().chain(*b"--XyZ").collect(),
        ),
        ("empty body", mp, Vec::new()),
        ("bad percent escape", "application/x-www-form-urlencoded", b"a=%zz".to_vec()),
        ("text/plain without =", "text/plain", b"no equals sign".to_vec()),
    ];
    for (what, ct, body) in &cases {
        let r = post_raw(app.addr, "/form", ct, body);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
    }
    // Not a form at all: 415.
    let r = post_raw(app.addr, "/form", "application/json", b"{}");
    assert_eq!(r.status, 415, "{}", r.text());
    // A part bigger than the limit, sent raw: 413.
    let mut body =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\r\n".to_vec();
    body.extend(std::iter::repeat_n(b'a', 5000));
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    let r = post_raw(app.addr, "/form-small", mp, &body);
    assert_eq!(r.status, 413, "{}", r.text());
    // A well-formed raw body still parses, and the server is alive.
    let good =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nline\r\nbreak\r\n--XyZ--\r\n";
    let r = post_raw(app.addr, "/form", mp, good);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap()["fields"],
        json!([["a", "line\r\nbreak"]])
    );
}

#[test]
fn urlencoded_and_text_plain_forms_decode_reserved_and_non_ascii() {
    let Some(py) = python("urlencoded_and_text_plain_forms_decode_reserved_and_non_ascii") else {
        return;
    };
    let app = serve_app(ServerConfig::default(), form_routes, idle);
    let v = run_python(
        &py,
        r#"
import requests, httpx
tricky = "é & = + % 100%25 a+b spaces  end"
out = {}
out["requests"] = obs(requests.post(base + "/form",
    data=[("msg", tricky), ("tag", "x&y"), ("tag", "1+1=2"), ("tag", ""), ("ünï=cødé&", "k")],
    timeout=T))
out["httpx"] = obs(httpx.post(base + "/form",
    data={"msg": tricky, "tag": ["x&y", "1+1=2", ""]}, timeout=T))
# text/plain as a browser builds it: name=value lines, CRLF, UTF-8, no escaping.
body = "msg=" + tricky + "\r\ntag=x&y\r\ntag=1+1=2\r\ntag=\r\n"
out["text_plain"] = obs(requests.post(base + "/form", data=body.encode("utf-8"),
    headers={"Content-Type": "text/plain; charset=UTF-8"}, timeout=T))
print(json.dumps(out))
"#,
        &app.url(""),
        &[],
    );
    let tricky = "é & = + % 100%25 a+b spaces  end";
    for client in ["requests", "httpx", "text_plain"] {
        let o = &v[client];
        assert_eq!(o["status"], 200, "{client}: {o}");
        let got = body_json(o);
        assert_eq!(got["fields"][0], json!(["msg", tricky]), "{client}: {got}");
        assert_eq!(got["tags"], json!(["x&y", "1+1=2", ""]), "{client}: {got}");
    }
    let got = body_json(&v["requests"]);
    assert_eq!(got["fields"][4], json!(["ünï=cødé&", "k"]), "{got}");
}

// ---------------------------------------------------------------------------
// Cookies
// ---------------------------------------------------------------------------

fn cookie_routes(s: &mut Server<State>) {
    s.route("/login", Method::POST, |_, _| {
        let session = SetCookie::new("session", "abc123")?
            .path("/")?
            .http_only()
            .same_site(SameSite::Lax)
            .max_age(Duration::from_secs(3600));
        let theme = SetCookie::new("theme", "dark")?
            .path("/")?
            .same_site(SameSite::Strict);
        let note = SetCookie::new_encoded("note", "café; à bientôt")?.path("/")?;
        // Only sent back to /cookies/admin and below.
        let scoped = SetCookie::new("scoped", "yes")?.path("/cookies/admin")?;
        Ok(Response::text("logged in")
            .add_header("Set-Cookie", &session.to_header_value())
            .add_header("Set-Cookie", &theme.to_header_value())
            .add_header("Set-Cookie", &note.to_header_value())
            .add_header("Set-Cookie", &scoped.to_header_value()))
    })
    .unwrap();
    s.route("/logout", Method::POST, |_, _| {
        let gone = SetCookie::removal("session")?.path("/")?;
        Ok(Response::text("bye").add_header("Set-Cookie", &gone.to_header_value()))
    })
    .unwrap();
    for path in ["/cookies", "/cookies/admin"] {
        s.route(path, Method::GET, |req, _| {
            let cookies = req.cookies();
            let all: Vec<[&str; 2]> = cookies.iter().map(|(k, v)| [k, v]).collect();
            Response::json(&json!({
                "all": all,
                "session": cookies.get("session"),
                "note": cookies.get_decoded("note"),
            }))
        })
        .unwrap();
    }
}

#[test]
fn cookies_round_trip_through_a_requests_session() {
    let Some(py) = python("cookies_round_trip_through_a_requests_session") else {
        return;
    };
    let app = serve_app(ServerConfig::default(), cookie_routes, idle);
    let v = run_python(
        &py,
        r#"
import requests
out = {}
with requests.Session() as s:
    out["before"] = obs(s.get(base + "/cookies", timeout=T))
    r = s.post(base + "/login", timeout=T)
    out["login_status"] = r.status_code
    out["set_cookie"] = r.raw.headers.getlist("Set-Cookie")
    jar = {}
    for c in s.cookies:
        jar[c.name] = {
            "value": c.value,
            "path": c.path,
            "has_expiry": c.expires is not None,
            "http_only": c.has_nonstandard_attr("HttpOnly"),
            "secure": c.secure,
        }
    out["jar"] = jar
    out["with"] = obs(s.get(base + "/cookies", timeout=T))
    out["admin"] = obs(s.get(base + "/cookies/admin", timeout=T))
    out["logout_set_cookie"] = s.post(base + "/logout", timeout=T).raw.headers.getlist("Set-Cookie")
    out["jar_after"] = sorted(c.name for c in s.cookies)
    out["after"] = obs(s.get(base + "/cookies", timeout=T))
print(json.dumps(out))
"#,
        &app.url(""),
        &[],
    );
    assert_eq!(body_json(&v["before"])["all"], json!([]));
    assert_eq!(v["login_status"], 200);
    assert_eq!(
        v["set_cookie"],
        json!([
            "session=abc123; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax",
            "theme=dark; Path=/; SameSite=Strict",
            "note=caf%C3%A9%3B%20%C3%A0%20bient%C3%B4t; Path=/",
            "scoped=yes; Path=/cookies/admin",
        ])
    );
    let jar = &v["jar"];
    assert_eq!(jar["session"]["value"], "abc123");
    assert_eq!(jar["session"]["path"], "/");
    assert_eq!(
        jar["session"]["has_expiry"], true,
        "Max-Age was not honoured"
    );
    assert_eq!(jar["session"]["http_only"], true);
    assert_eq!(jar["session"]["secure"], false);
    assert_eq!(jar["theme"]["has_expiry"], false);
    assert_eq!(jar["scoped"]["path"], "/cookies/admin");

    let with = body_json(&v["with"]);
    assert_eq!(with["session"], "abc123", "{with}");
    assert_eq!(with["note"], "café; à bientôt", "{with}");
    let mut names: Vec<&str> = with["all"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["note", "session", "theme"], "{with}");
    let admin = body_json(&v["admin"]);
    assert!(
        admin["all"]
            .as_array()
            .unwrap()
            .contains(&json!(["scoped", "yes"])),
        "{admin}"
    );

    let removal = v["logout_set_cookie"][0].as_str().unwrap();
    assert!(
        removal.starts_with("session=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
        "{removal}"
    );
    assert_eq!(v["jar_after"], json!(["note", "scoped", "theme"]));
    let after = body_json(&v["after"]);
    assert_eq!(after["session"], Value::Null, "{after}");
    assert_eq!(after["all"].as_array().unwrap().len(), 2, "{after}");
}

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

#[test]
fn per_handler_authentication_with_requests_and_httpx() {
    let Some(py) = python("per_handler_authentication_with_requests_and_httpx") else {
        return;
    };
    let app = serve_app(
        ServerConfig::default(),
        |s| {
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
        },
        idle,
    );
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
    let basic = serve_app(
        ServerConfig::default(),
        {
            let root = root.clone();
            move |s| {
                s.require_authentication(Authentication::new("site").basic("admin", "hunter2"));
                s.serve_files(&root).unwrap();
                s.route("/api", Method::GET, |_, _| Ok(Response::text("api")))
                    .unwrap();
            }
        },
        idle,
    );
    let bearer = serve_app(
        ServerConfig::default(),
        move |s| {
            s.require_authentication(Authentication::new("site").bearer("tok-123"));
            s.serve_files(&root).unwrap();
        },
        idle,
    );
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

// ---------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------

#[test]
fn cors_preflight_and_simple_requests_from_python() {
    let Some(py) = python("cors_preflight_and_simple_requests_from_python") else {
        return;
    };
    let app = serve_app(
        ServerConfig::default(),
        |s| {
            s.cors(
                Cors::new()
                    .allow_origin("https://app.example")
                    .allow_methods(&[Method::GET, Method::POST, Method::PUT])
                    .allow_headers(&["Content-Type", "X-Token"])
                    .expose_headers(&["X-Count"])
                    .max_age(Duration::from_secs(600)),
            );
            // Preflights come without credentials and must still be answered.
            s.require_authentication(Authentication::new("cors").bearer("t0k"));
            s.route("/data", [Method::GET, Method::PUT], |_, _| {
                Ok(Response::text("data").with_header("X-Count", "3"))
            })
            .unwrap();
        },
        idle,
    );
    let v = run_python(
        &py,
        r#"
import requests
good, evil = "https://app.example", "https://evil.example"
auth = {"Authorization": "Bearer t0k"}
def pre(origin):
    return obs(requests.options(base + "/data", headers={
        "Origin": origin,
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type, x-token",
    }, timeout=T))
out = {}
out["pre_good"] = pre(good)
out["pre_evil"] = pre(evil)
out["get_good"] = obs(requests.get(base + "/data", headers=dict(auth, Origin=good), timeout=T))
out["get_evil"] = obs(requests.get(base + "/data", headers=dict(auth, Origin=evil), timeout=T))
out["get_no_origin"] = obs(requests.get(base + "/data", headers=auth, timeout=T))
out["get_good_unauth"] = obs(requests.get(base + "/data", headers={"Origin": good}, timeout=T))
print(json.dumps(out))
"#,
        &app.url(""),
        &[],
    );
    let pre = &v["pre_good"];
    assert_eq!(pre["status"], 204, "{pre}");
    let h = &pre["headers"];
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-methods"], "GET, POST, PUT");
    assert_eq!(h["access-control-allow-headers"], "Content-Type, X-Token");
    assert_eq!(h["access-control-max-age"], "600");
    assert_eq!(h["vary"], "Origin");
    assert!(h.get("www-authenticate").is_none(), "{pre}");
    assert_eq!(pre["text"], "");

    let evil = &v["pre_evil"];
    assert_eq!(evil["status"], 204, "{evil}");
    let cors_headers = |o: &Value| -> Vec<String> {
        o["headers"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("access-control-"))
            .cloned()
            .collect()
    };
    assert_eq!(cors_headers(evil), Vec::<String>::new(), "{evil}");

    let get = &v["get_good"];
    assert_eq!(get["status"], 200);
    assert_eq!(get["text"], "data");
    assert_eq!(
        get["headers"]["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(get["headers"]["access-control-expose-headers"], "X-Count");
    assert_eq!(get["headers"]["vary"], "Origin");
    for case in ["get_evil", "get_no_origin"] {
        assert_eq!(v[case]["status"], 200, "{case}");
        assert_eq!(cors_headers(&v[case]), Vec::<String>::new(), "{case}");
        assert_eq!(v[case]["headers"]["vary"], "Origin", "{case}");
    }
    // A 401 still carries CORS headers, so the page can see why it failed.
    let unauth = &v["get_good_unauth"];
    assert_eq!(unauth["status"], 401);
    assert_eq!(
        unauth["headers"]["access-control-allow-origin"],
        "https://app.example"
    );
}

#[test]
fn cors_raw_preflight_and_simple_get() {
    let app = serve_app(
        ServerConfig::default(),
        |s| {
            s.cors(Cors::new().allow_origin("http://localhost:3000"));
            s.route("/x", Method::GET, |_, _| Ok(Response::text("x")))
                .unwrap();
        },
        idle,
    );
    let r = request(
        app.addr,
        "OPTIONS /x HTTP/1.1\r\nHost: t\r\nOrigin: http://localhost:3000\r\n\
         Access-Control-Request-Method: GET\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, HEAD, POST")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    // Without Access-Control-Request-Method it is a plain OPTIONS, routed.
    let r = request(
        app.addr,
        "OPTIONS /x HTTP/1.1\r\nHost: t\r\nOrigin: http://localhost:3000\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    let r = request(
        app.addr,
        "GET /x HTTP/1.1\r\nHost: t\r\nOrigin: http://localhost:3000\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    let r = request(
        app.addr,
        "GET /x HTTP/1.1\r\nHost: t\r\nOrigin: http://localhost:3001\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(r
        .headers
        .iter()
        .all(|(n, _)| !n.to_ascii_lowercase().starts_with("access-control-")));
}

// ---------------------------------------------------------------------------
// HTML escaping
// ---------------------------------------------------------------------------

fn escape_routes(s: &mut Server<State>) {
    s.route("/hello", Method::GET, |req, _| {
        let name = req.query().get("name").unwrap_or("world");
        Ok(Response::html(format!(
            "<p title=\"{0}\">Hello {0}!</p>",
            html_escape(name)
        )))
    })
    .unwrap();
    s.route("/comment", Method::POST, |req, _| {
        let form = req.form()?;
        let text = form.get("text").unwrap_or("");
        Ok(Response::html(format!(
            "<blockquote>{}</blockquote>",
            html_escape(text)
        )))
    })
    .unwrap();
}

#[test]
fn html_escaping_never_reflects_script_raw() {
    let app = serve_app(ServerConfig::default(), escape_routes, idle);
    // %3Cscript%3Ealert(%22x%22)%3C%2Fscript%3E plus an attribute breakout.
    let r = get(
        app.addr,
        "/hello?name=%3Cscript%3Ealert(%22x%22)%3C%2Fscript%3E%27%20onmouseover%3D%27y",
    );
    assert_eq!(r.status, 200);
    let body = r.text();
    assert!(!body.contains("<script>"), "{body}");
    assert!(!body.contains('\''), "{body}");
    assert_eq!(
        body,
        "<p title=\"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#x27; onmouseover=&#x27;y\">\
         Hello &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#x27; onmouseover=&#x27;y!</p>"
    );
    let r = get(app.addr, "/hello?name=Tom+%26+Jerry");
    assert_eq!(
        r.text(),
        "<p title=\"Tom &amp; Jerry\">Hello Tom &amp; Jerry!</p>"
    );

    let Some(py) = python("html_escaping_never_reflects_script_raw (python part)") else {
        return;
    };
    let v = run_python(
        &py,
        r#"
import requests
payload = "<script>alert('x')</script><img src=x onerror=alert(1)>"
out = {}
out["query"] = obs(requests.get(base + "/hello", params={"name": payload}, timeout=T))
out["form"] = obs(requests.post(base + "/comment", data={"text": payload}, timeout=T))
out["multipart"] = obs(requests.post(base + "/comment", files={"text": (None, payload)}, timeout=T))
print(json.dumps(out))
"#,
        &app.url(""),
        &[],
    );
    for case in ["query", "form", "multipart"] {
        let o = &v[case];
        assert_eq!(o["status"], 200, "{case}: {o}");
        let text = o["text"].as_str().unwrap();
        assert!(!text.contains("<script"), "{case}: {text}");
        assert!(!text.contains("<img"), "{case}: {text}");
        assert!(
            text.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&lt;img src=x"),
            "{case}: {text}"
        );
    }
}

// ---------------------------------------------------------------------------
// Server-Sent Events with a real client library
// ---------------------------------------------------------------------------

/// What `/events-hb` streams: a fresh client gets three events and then
/// only heartbeats; a client resuming after id `2` gets one more event, then
/// the server ends the stream.
fn scripted_events(server: &mut Server<State>, st: &mut State) {
    while st.started < st.streams.len() {
        let (id, last) = st.streams[st.started].clone();
        st.started += 1;
        let mut sse = server.sse(id);
        match last.as_deref() {
            None => {
                sse.send(
                    &SseEvent::new("line one\nline two\r\nline three")
                        .event("update")
                        .id("0")
                        .retry(1500),
                )
                .unwrap();
                sse.send(&SseEvent::new("plain data, no type")).unwrap();
                sse.send(&SseEvent::new("{\"n\": 2}").event("json").id("2"))
                    .unwrap();
            }
            Some(after) => {
                let resumed = format!("resumed after {after}");
                sse.send(&SseEvent::new(&resumed).event("resume").id("3"))
                    .unwrap();
                sse.close();
            }
        }
    }
}

#[test]
fn sse_consumed_by_httpx_with_heartbeat_and_last_event_id_resume() {
    let Some(py) = python("sse_consumed_by_httpx_with_heartbeat_and_last_event_id_resume") else {
        return;
    };
    let app = serve_app(ServerConfig::default(), |_| {}, scripted_events);
    let v = run_python(
        &py,
        r#"
import httpx, time

def consume(client, headers, stop_after_heartbeat):
    """Reads one stream as the HTML standard's EventSource parser does."""
    events, comments = [], []
    state = {"last_id": headers.get("Last-Event-ID", ""), "retry": None}
    data, etype = [], ""
    t0 = time.monotonic()
    first_event_at = heartbeat_at = None
    ended_by = "eof"
    with client.stream("GET", base + "/events-hb", headers=headers) as r:
        head = {"status": r.status_code,
                "content_type": r.headers.get("content-type"),
                "content_length": r.headers.get("content-length"),
                "cache_control": r.headers.get("cache-control")}
        for line in r.iter_lines():
            if line == "":
                if data:
                    events.append({"type": etype or "message", "data": "\n".join(data),
                                   "last_id": state["last_id"]})
                    first_event_at = first_event_at or time.monotonic()
                data, etype = [], ""
                if stop_after_heartbeat and comments and any(e["type"] == "json" for e in events):
                    ended_by = "client"
                    break
                continue
            if line.startswith(":"):
                comments.append(line)
                heartbeat_at = heartbeat_at or time.monotonic()
                continue
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "data":
                data.append(value)
            elif field == "event":
                etype = value
            elif field == "id" and "\0" not in value:
                state["last_id"] = value
            elif field == "retry" and value.isdigit():
                state["retry"] = int(value)
    gap = None
    if first_event_at and heartbeat_at:
        gap = heartbeat_at - first_event_at
    return {"head": head, "events": events, "comments": comments, "retry": state["retry"],
            "last_id": state["last_id"], "ended_by": ended_by, "heartbeat_gap": gap}

out = {}
with httpx.Client(timeout=T) as client:
    first = consume(client, {}, True)
    out["first"] = first
    out["second"] = consume(client, {"Last-Event-ID": first["last_id"]}, False)
print(json.dumps(out))
"#,
        &app.url(""),
        &[],
    );
    let first = &v["first"];
    assert_eq!(first["head"]["status"], 200, "{first}");
    assert_eq!(first["head"]["content_type"], "text/event-stream");
    assert_eq!(first["head"]["content_length"], Value::Null);
    assert_eq!(first["head"]["cache_control"], "no-cache");
    assert_eq!(
        first["events"],
        json!([
            {"type": "update", "data": "line one\nline two\nline three", "last_id": "0"},
            {"type": "message", "data": "plain data, no type", "last_id": "0"},
            {"type": "json", "data": "{\"n\": 2}", "last_id": "2"},
        ]),
        "{first}"
    );
    assert_eq!(first["retry"], 1500);
    assert_eq!(first["ended_by"], "client");
    let comments = first["comments"].as_array().unwrap();
    assert!(!comments.is_empty(), "{first}");
    assert!(comments
        .iter()
        .all(|c| c.as_str().unwrap().starts_with(':')));
    // The heartbeat came after ~200 ms of silence, not at once and not after 15 s.
    let gap = first["heartbeat_gap"].as_f64().unwrap();
    assert!((0.15..5.0).contains(&gap), "heartbeat after {gap} s");

    let second = &v["second"];
    assert_eq!(second["head"]["status"], 200, "{second}");
    assert_eq!(
        second["events"],
        json!([{"type": "resume", "data": "resumed after 2", "last_id": "3"}]),
        "{second}"
    );
    // The server closed the stream: the client saw EOF.
    assert_eq!(second["ended_by"], "eof");

    let seen: Vec<Option<String>> =
        app.on_server(|_, st| st.streams.iter().map(|s| s.1.clone()).collect());
    assert_eq!(seen, [None, Some("2".to_owned())]);
    // The first stream ended when httpx closed it.
    let ids = app.wait_streams(2);
    app.wait_closed(ids[0]);
    app.wait_closed(ids[1]);
}

// ---------------------------------------------------------------------------
// Server-Sent Events over raw sockets
// ---------------------------------------------------------------------------

/// A raw event-stream client.
struct RawSse {
    s: TcpStream,
    buf: Vec<u8>,
    head: String,
}

impl RawSse {
    fn open(addr: SocketAddr, path: &str, extra: &str) -> RawSse {
        let mut s = connect(addr);
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n{extra}\r\n"
        )
        .unwrap();
        let mut sse = RawSse {
            s,
            buf: Vec::new(),
            head: String::new(),
        };
        let head = sse.read_until(b"\r\n\r\n");
        sse.head = String::from_utf8(head).unwrap();
        sse
    }

    /// Bytes up to and including the first `delim`, reading as needed.
    fn read_until(&mut self, delim: &[u8]) -> Vec<u8> {
        let mut from = 0;
        loop {
            if let Some(i) = self.buf[from..]
                .windows(delim.len())
                .position(|w| w == delim)
            {
                return self.buf.drain(..from + i + delim.len()).collect();
            }
            from = self.buf.len().saturating_sub(delim.len() - 1);
            let mut chunk = [0u8; 65536];
            let n = self.s.read(&mut chunk).expect("read");
            if n == 0 {
                let shown = String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)]);
                panic!(
                    "EOF while waiting for {delim:?}; have {} bytes: {shown:?}…",
                    self.buf.len()
                );
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next event block (ending with the blank line), as text.
    fn next_block(&mut self) -> String {
        String::from_utf8(self.read_until(b"\n\n")).unwrap()
    }

    /// Reads until the server closes; returns what was left.
    fn read_to_eof(&mut self) -> String {
        let rest = read_to_close(&mut self.s);
        self.buf.extend_from_slice(&rest);
        String::from_utf8(std::mem::take(&mut self.buf)).unwrap()
    }

    fn head_field(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

#[test]
fn sse_raw_head_events_and_server_close() {
    let app = serve_app(ServerConfig::default(), |_| {}, idle);
    let mut c = RawSse::open(app.addr, "/events", "Last-Event-ID: 0\r\n");
    assert!(c.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", c.head);
    assert_eq!(c.head_field("content-type"), Some("text/event-stream"));
    assert_eq!(c.head_field("cache-control"), Some("no-cache"));
    assert_eq!(c.head_field("content-length"), None, "{}", c.head);
    assert_eq!(c.head_field("transfer-encoding"), None, "{}", c.head);
    assert_eq!(c.head_field("connection"), Some("close"));
    // Nothing but the head yet.
    assert!(c.buf.is_empty());

    let id = app.wait_streams(1)[0];
    // `id: 0` is a real id: the handler saw it and it is sent back.
    assert_eq!(
        app.on_server(|_, st| st.streams[0].1.clone()),
        Some("0".to_owned())
    );
    app.on_server(move |s, _| {
        s.sse(id)
            .send(&SseEvent::new("a\nb").event("tick").id("0").retry(250))
    })
    .unwrap();
    assert_eq!(
        c.next_block(),
        "event: tick\nid: 0\nretry: 250\ndata: a\ndata: b\n\n"
    );
    app.on_server(move |s, _| s.sse(id).comment("still here"))
        .unwrap();
    assert_eq!(c.next_block(), ": still here\n\n");
    app.on_server(move |s, _| s.sse(id).send_data("")).unwrap();
    assert_eq!(c.next_block(), "data: \n\n");

    // An id with a line break is refused and nothing at all is written.
    let err = app.on_server(move |s, _| {
        let mut sse = s.sse(id);
        let bad = sse.send(&SseEvent::new("injected").id("1\ndata: evil"));
        let bad_type = sse.send(&SseEvent::new("x").event("a\rb"));
        let ok = sse.send(&SseEvent::new("after").id("2"));
        (bad, bad_type, ok, sse.is_closed())
    });
    assert_eq!(err.0, Err(SseSendError::Encode(SseError::LineBreak("id"))));
    assert_eq!(
        err.1,
        Err(SseSendError::Encode(SseError::LineBreak("event type")))
    );
    assert_eq!(err.2, Ok(()));
    assert!(!err.3, "a refused event must not end the stream");
    assert_eq!(c.next_block(), "id: 2\ndata: after\n\n");

    // Closing from the program flushes what was queued, then EOF.
    app.on_server(move |s, _| {
        s.sse(id).send_data("last").unwrap();
        s.sse(id).close();
        s.sse(id).is_closed()
    });
    assert_eq!(c.read_to_eof(), "data: last\n\n");
    app.wait_closed(id);
    assert_eq!(
        app.on_server(move |s, _| s.sse(id).send_data("late")),
        Err(SseSendError::Closed)
    );
}

#[test]
fn sse_client_disconnect_marks_stream_closed() {
    let app = serve_app(ServerConfig::default(), |_| {}, idle);
    let c = RawSse::open(app.addr, "/events", "");
    let id = app.wait_streams(1)[0];
    assert!(!app.on_server(move |s, _| s.sse(id).is_closed()));
    drop(c);
    app.wait_closed(id);
    assert_eq!(
        app.on_server(move |s, _| s.sse(id).send_data("gone")),
        Err(SseSendError::Closed)
    );
    // The server goes on serving new streams.
    let mut c2 = RawSse::open(app.addr, "/events", "");
    let id2 = app.wait_streams(2)[1];
    assert_ne!(id, id2);
    app.on_server(move |s, _| s.sse(id2).send_data("hi"))
        .unwrap();
    assert_eq!(c2.next_block(), "data: hi\n\n");
}

#[test]
fn sse_broadcast_to_several_streams_skips_closed_ones() {
    let app = serve_app(ServerConfig::default(), |_| {}, idle);
    let mut clients: Vec<RawSse> = (0..4)
        .map(|_| RawSse::open(app.addr, "/events", ""))
        .collect();
    let ids = app.wait_streams(4);
    let n = app.on_server(|s, st| {
        let ids: Vec<SseId> = st.streams.iter().map(|x| x.0).collect();
        s.broadcast_event(&ids, &SseEvent::new("to all").event("news").id("10"))
    });
    assert_eq!(n, 4);
    for c in &mut clients {
        assert_eq!(c.next_block(), "event: news\nid: 10\ndata: to all\n\n");
    }
    // One client leaves, the program closes another: two remain.
    drop(clients.remove(0));
    app.wait_closed(ids[0]);
    let closed = ids[1];
    app.on_server(move |s, _| s.sse(closed).close());
    assert_eq!(clients[0].read_to_eof(), "");
    let n = app.on_server(|s, st| {
        let ids: Vec<SseId> = st.streams.iter().map(|x| x.0).collect();
        s.broadcast_event(&ids, &SseEvent::new("second"))
    });
    assert_eq!(n, 2);
    for c in &mut clients[1..] {
        assert_eq!(c.next_block(), "data: second\n\n");
    }
    // An event that cannot be encoded reaches nobody.
    let n = app.on_server(|s, st| {
        let ids: Vec<SseId> = st.streams.iter().map(|x| x.0).collect();
        s.broadcast_event(&ids, &SseEvent::new("x").id("bad\r\nid"))
    });
    assert_eq!(n, 0);
    let n = app.on_server(|s, st| {
        let ids: Vec<SseId> = st.streams.iter().map(|x| x.0).collect();
        s.broadcast_event(&ids, &SseEvent::new("third"))
    });
    assert_eq!(n, 2);
    for c in &mut clients[1..] {
        assert_eq!(c.next_block(), "data: third\n\n");
    }
}

#[test]
fn sse_sender_from_another_thread_reaches_streams() {
    let app = serve_app(ServerConfig::default(), |_| {}, idle);
    let mut a = RawSse::open(app.addr, "/events", "");
    let mut b = RawSse::open(app.addr, "/events", "");
    let ids = app.wait_streams(2);
    let sender = app.on_server(|s, _| s.sender().unwrap());
    let ids2 = ids.clone();
    std::thread::spawn(move || {
        sender
            .send_event(
                &ids2,
                "from a thread\nsecond line",
                Some("remote"),
                Some("0"),
            )
            .unwrap();
        sender.send_event(&ids2[1..], "only b", None, None).unwrap();
        // Undeliverable (line break in the id): dropped, nothing sent.
        sender
            .send_event(&ids2, "dropped", None, Some("x\ny"))
            .unwrap();
        sender.send_event(&ids2[..1], "only a", None, None).unwrap();
        sender.end_stream(ids2[0]).unwrap();
    })
    .join()
    .unwrap();
    let both = "event: remote\nid: 0\ndata: from a thread\ndata: second line\n\n";
    assert_eq!(a.next_block(), both);
    assert_eq!(b.next_block(), both);
    assert_eq!(b.next_block(), "data: only b\n\n");
    assert_eq!(a.read_to_eof(), "data: only a\n\n");
    app.wait_closed(ids[0]);
    assert!(!app.on_server({
        let id = ids[1];
        move |s, _| s.sse(id).is_closed()
    }));
    // Nothing else (the dropped event) arrived on b.
    b.s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    match b.s.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("unexpected bytes on b: {other:?} {:?}", &buf),
    }
}

#[test]
fn sse_heartbeat_comment_on_an_idle_stream() {
    let app = serve_app(ServerConfig::default(), |_| {}, idle);
    let mut c = RawSse::open(app.addr, "/events-hb", "");
    let id = app.wait_streams(1)[0];
    let t0 = Instant::now();
    assert_eq!(c.next_block(), ": \n\n");
    let first = t0.elapsed();
    assert!(first >= Duration::from_millis(100), "{first:?}");
    assert_eq!(c.next_block(), ": \n\n");
    // An event postpones the next heartbeat; the stream stays open.
    app.on_server(move |s, _| s.sse(id).send_data("e")).unwrap();
    assert_eq!(c.next_block(), "data: e\n\n");
    assert_eq!(c.next_block(), ": \n\n");
    assert!(!app.on_server(move |s, _| s.sse(id).is_closed()));
}

#[test]
fn sse_head_request_and_non_stream_ids() {
    let app = serve_app(
        ServerConfig::default(),
        |s| {
            s.route("/plain", Method::GET, |_, _| Ok(Response::text("plain")))
                .unwrap();
        },
        idle,
    );
    // HEAD of an event stream: the head only, and the connection is not a stream.
    let mut s = connect(app.addr);
    s.write_all(b"HEAD /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let id = app.wait_streams(1)[0];
    let got = app.on_server(move |srv, _| srv.sse(id).send_data("x"));
    assert!(got.is_err(), "{got:?}");
    assert!(app.on_server(move |srv, _| srv.sse(id).is_closed()));
}

/// A stream without heartbeat, open longer than `send_timeout`, then one
/// event larger than the socket buffers: the client must get all of it
/// (the send timeout counts from the send, not from when the stream opened).
#[test]
fn sse_large_event_on_a_long_quiet_stream_is_delivered_whole() {
    let app = serve_app(
        ServerConfig::default().send_timeout(Duration::from_millis(400)),
        |s| {
            s.route("/quiet", Method::GET, |req, st: &mut State| {
                let (response, id) = req.accept_sse_with(SseOptions {
                    heartbeat: None,
                    ..SseOptions::default()
                })?;
                st.streams.push((id, None));
                Ok(response)
            })
            .unwrap();
        },
        idle,
    );
    let mut c = RawSse::open(app.addr, "/quiet", "");
    let id = app.wait_streams(1)[0];
    std::thread::sleep(Duration::from_millis(800));
    let data = "x".repeat(8 << 20);
    let sent = app.on_server(move |s, _| s.sse(id).send_data(&data));
    assert_eq!(sent, Ok(()));
    // Read at a modest pace, well within the send timeout between reads.
    std::thread::sleep(Duration::from_millis(100));
    let block = c.next_block();
    assert_eq!(block.len(), "data: \n\n".len() + (8 << 20));
    assert!(!app.on_server(move |s, _| s.sse(id).is_closed()));
}

/// "A comment line is sent after this long without an event": events sent
/// more often than the heartbeat interval leave no room for heartbeats.
#[test]
fn sse_events_postpone_the_heartbeat() {
    let app = serve_app(ServerConfig::default(), |_| {}, idle);
    let mut c = RawSse::open(app.addr, "/events-hb", "");
    let id = app.wait_streams(1)[0];
    let mut last_event = Instant::now();
    for i in 0..15 {
        let text = format!("e{i}");
        app.on_server(move |s, _| s.sse(id).send_data(&text))
            .unwrap();
        let sent = Instant::now();
        loop {
            let block = c.next_block();
            if block == ": \n\n" {
                // Only a real 200 ms silence (a slow machine) may explain it.
                let idle = last_event.elapsed();
                assert!(
                    idle >= Duration::from_millis(180),
                    "heartbeat {idle:?} after event {i}"
                );
                continue;
            }
            assert_eq!(block, format!("data: e{i}\n\n"));
            break;
        }
        last_event = sent;
        std::thread::sleep(Duration::from_millis(60));
    }
    // Then silence: a heartbeat follows.
    assert_eq!(c.next_block(), ": \n\n");
}

/// Closing a stream with a large event still queued: the client gets all of
/// it, then EOF, even though the heartbeat interval passes meanwhile.
#[test]
fn sse_close_with_a_large_event_queued_flushes_it_all() {
    let app = serve_app(
        ServerConfig::default().send_timeout(Duration::from_millis(700)),
        |_| {},
        idle,
    );
    let mut c = RawSse::open(app.addr, "/events-hb", "");
    let id = app.wait_streams(1)[0];
    // Open (with heartbeats only) for longer than the send timeout.
    std::thread::sleep(Duration::from_millis(1000));
    let data = "y".repeat(8 << 20);
    app.on_server(move |s, _| {
        s.sse(id).send_data(&data).unwrap();
        s.sse(id).close();
    });
    // Leave it unread for longer than the 200 ms heartbeat.
    std::thread::sleep(Duration::from_millis(400));
    let all = c.read_to_eof();
    let rest = all.trim_start_matches(": \n\n");
    assert!(all.len() > rest.len(), "heartbeats came first");
    assert_eq!(rest.len(), "data: \n\n".len() + (8 << 20));
    assert!(rest.ends_with("yyy\n\n"));
    app.wait_closed(id);
}
