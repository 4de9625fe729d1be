//! Cookies end to end: a Python `requests` session logs in, gets
//! `Set-Cookie` headers (attributes, path scope, percent-encoded values),
//! sends the cookies back and loses the session cookie on logout; an upload
//! handler sets a cookie holding the uploaded file's name, whatever it is.
//!
//! The Python client is the interpreter named by `POLLSERVE_TEST_PYTHON` (a
//! venv made by `scripts/setup-python.sh`; `./test.sh` always sets it);
//! without the variable those tests print `SKIPPED: …` to stderr and return,
//! as in `tests/interop.rs`. The raw-socket tests always run.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use pollserve::{Method, Response, SameSite, Server, ServerConfig, SetCookie};
use serde_json::{json, Value};

fn cookie_routes(s: &mut Server<()>) {
    s.route("/login", Method::POST, |_, _| {
        let session = SetCookie::new("session", "abc123")?
            .path("/")?
            .http_only()
            .same_site(SameSite::Lax)
            .max_age(Duration::from_secs(3600));
        let theme = SetCookie::new("theme", "dark")?
            .path("/")?
            .same_site(SameSite::Strict);
        let note = SetCookie::new("note", "café; à bientôt")?.path("/")?;
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
                "note": cookies.get("note"),
                "note_raw": cookies.get_raw("note"),
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
    let app = serve(cookie_routes);
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
    assert_eq!(
        with["note_raw"], "caf%C3%A9%3B%20%C3%A0%20bient%C3%B4t",
        "{with}"
    );
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

/// The upload server of issue 16: a handler saves an uploaded file and
/// remembers its name in a cookie. The name is client input, any string.
fn upload_routes(s: &mut Server<PathBuf>) {
    s.route("/upload", Method::POST, |req, dir: &mut PathBuf| {
        let form = req.form()?;
        let file = form
            .file("file")
            .ok_or_else(|| pollserve::HttpError::bad_request("no file"))?;
        let name = file.filename.clone();
        let stored = file.safe_filename().unwrap_or("upload");
        std::fs::write(dir.join(stored), &file.data)?;
        let cookie = SetCookie::new("last_upload", &name)?.path("/")?;
        Ok(Response::text(format!("saved {} bytes", file.data.len())).with_cookie(&cookie))
    })
    .unwrap();
    s.route("/last", Method::GET, |req, _| {
        let cookies = req.cookies();
        Ok(Response::text(
            cookies.get("last_upload").unwrap_or("(none)").to_owned(),
        ))
    })
    .unwrap();
}

fn multipart_upload(filename: &str, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    write!(
        body,
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    )
    .unwrap();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    let mut raw = format!(
        "POST /upload HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    raw
}

#[test]
fn a_cookie_holding_any_file_name_round_trips_over_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let app = serve_loop(
        ServerConfig::default(),
        dir.path().to_path_buf(),
        idle,
        upload_routes,
    );
    for name in ["my file, v2.txt", "notes.txt", "100% done; é.txt"] {
        let mut s = connect(app.addr);
        s.write_all(&multipart_upload(name, b"hello")).unwrap();
        let r = read_response(&mut s, false);
        assert_eq!(
            (r.status, r.text()),
            (200, "saved 5 bytes".into()),
            "{name}"
        );
        let set_cookie = r.header("set-cookie").expect("Set-Cookie");
        // What a browser stores and sends back: `name=value` before the
        // first `;`, byte for byte.
        let pair = set_cookie.split(';').next().unwrap();
        assert!(pair.starts_with("last_upload="), "{set_cookie}");
        assert!(
            pair.bytes()
                .all(|b| b.is_ascii_graphic() && !b",;\\\"".contains(&b)),
            "{set_cookie}"
        );
        assert!(set_cookie.ends_with("; Path=/"), "{set_cookie}");
        let r = request(
            app.addr,
            &format!(
                "GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\nCookie: {pair}\r\n\r\n"
            ),
        );
        assert_eq!((r.status, r.text()), (200, name.to_owned()), "{name}");
    }
    // Names stay plain when they need no encoding.
    let r = request(
        app.addr,
        "GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\nCookie: last_upload=plain.txt\r\n\r\n",
    );
    assert_eq!(r.text(), "plain.txt");
    assert_eq!(
        std::fs::read(dir.path().join("my file, v2.txt")).unwrap(),
        b"hello"
    );
}

#[test]
fn a_cookie_holding_a_file_name_round_trips_through_a_requests_session() {
    let Some(py) = python("a_cookie_holding_a_file_name_round_trips_through_a_requests_session")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let app = serve_loop(
        ServerConfig::default(),
        dir.path().to_path_buf(),
        idle,
        upload_routes,
    );
    let v = run_python(
        &py,
        r#"
import requests
out = {}
with requests.Session() as s:
    r = s.post(base + "/upload", files={"file": ("my file, v2.txt", b"hello", "text/plain")}, timeout=T)
    out["upload"] = [r.status_code, r.text]
    out["last"] = s.get(base + "/last", timeout=T).text
print(json.dumps(out))
"#,
        &app.url(""),
        &[],
    );
    assert_eq!(v["upload"], json!([200, "saved 5 bytes"]), "{v}");
    assert_eq!(v["last"], "my file, v2.txt", "{v}");
}
