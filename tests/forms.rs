//! Forms end to end over loopback: multipart uploads (byte-identical files,
//! per-file and per-field limits), urlencoded and `text/plain` bodies with
//! reserved and non-ASCII text, and malformed bodies answered 400 / 413 / 415.
//!
//! The upload and decoding tests send with Python `requests` and `httpx`.
//! The interpreter is the one named by `POLLSERVE_TEST_PYTHON` (a venv made
//! by `scripts/setup-python.sh`; `./test.sh` always sets it); without the
//! variable those tests print `SKIPPED: …` to stderr and return, as in
//! `tests/interop.rs`. The malformed-body and body-limit tests use raw
//! sockets and always run.

mod common;

use std::io::Write;
use std::net::SocketAddr;

use common::*;
use pollserve::{FormLimits, Method, Response, Route, Server};
use serde_json::{json, Value};

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

/// Routes echoing parsed forms as JSON.
fn form_routes(s: &mut Server<()>) {
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
    let app = serve(form_routes);
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
    let app = serve(form_routes);
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
    let app = serve(form_routes);
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

/// One body limit (issue 16): a route raised to 32 MiB takes a 20 MB
/// upload form and `req.form()` parses it without `FormLimits`; the other
/// routes keep the server's 1 MiB, and every `413` names the setting.
fn limit_routes(s: &mut Server<()>) {
    s.add_route(
        Route::new("/upload", Method::POST, |req, _| {
            let form = req.form()?;
            let f = form
                .file("file")
                .ok_or_else(|| pollserve::HttpError::bad_request("no file"))?;
            Ok(Response::text(format!(
                "{} {} {} of {}",
                f.filename,
                f.size(),
                fnv1a(&f.data),
                req.body_limit()
            )))
        })
        .max_body_size(32 << 20),
    )
    .unwrap();
    s.route("/small", Method::POST, |req, _| {
        let form = req.form()?;
        Ok(Response::text(format!(
            "ok {} of {}",
            form.len(),
            req.body_limit()
        )))
    })
    .unwrap();
    s.add_route(
        Route::new("/tiny", Method::POST, |req, _| {
            Ok(Response::text(format!("{} bytes", req.body().len())))
        })
        .max_body_size(16),
    )
    .unwrap();
}

/// A `multipart/form-data` body with one file part (boundary `XyZ`) and
/// optional text fields before it.
fn multipart(fields: &[(&str, &str)], filename: &str, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(data.len() + 256);
    for (name, value) in fields {
        write!(
            body,
            "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .unwrap();
    }
    write!(
        body,
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .unwrap();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    body
}

#[test]
fn a_route_body_limit_admits_a_large_form_that_req_form_parses() {
    let app = serve(limit_routes);
    let mp = "multipart/form-data; boundary=XyZ";
    // 20 MB: over the server's 1 MiB and FormLimits' old 16 MiB default.
    let data: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
    let r = post_raw(app.addr, "/upload", mp, &multipart(&[], "big.bin", &data));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.text(),
        format!("big.bin 20000000 {} of {}", fnv1a(&data), 32 << 20)
    );

    // Announced too large: refused at the head, the message names the setting.
    for (path, len, setting) in [
        (
            "/small",
            3_000_000u64,
            "request body exceeds 1048576 bytes \
             (ServerConfig::max_body_size; a route can set Route::max_body_size)",
        ),
        (
            "/upload",
            (32 << 20) + 1,
            "request body exceeds 33554432 bytes (this route's Route::max_body_size)",
        ),
    ] {
        for expect in ["", "Expect: 100-continue\r\n"] {
            let mut s = connect(app.addr);
            write!(
                s,
                "POST {path} HTTP/1.1\r\nHost: t\r\n{expect}Content-Type: {mp}\r\n\
                 Content-Length: {len}\r\n\r\n"
            )
            .unwrap();
            // The answer comes before any body byte (and no `100 Continue`).
            let r = read_response(&mut s, false);
            assert_eq!(r.status, 413, "{path} {expect:?}");
            assert_eq!(r.text(), format!("{setting}\n"), "{path} {expect:?}");
            assert_eq!(r.header("connection"), Some("close"));
        }
    }

    // A chunked body is held to the route's limit as it arrives.
    let out = exchange(
        app.addr,
        b"POST /tiny HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          10\r\n0123456789abcdef\r\n1\r\nX\r\n0\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(
        text.ends_with("request body exceeds 16 bytes (this route's Route::max_body_size)\n"),
        "{text}"
    );
    let r = request(
        app.addr,
        "POST /tiny HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
         10\r\n0123456789abcdef\r\n0\r\n\r\n",
    );
    assert_eq!((r.status, r.text()), (200, "16 bytes".into()));

    // Under the server limit, `form()` follows it too; the other form
    // limits keep their defaults and name themselves when exceeded.
    let r = post_raw(app.addr, "/small", mp, &multipart(&[("a", "1")], "f", b"x"));
    assert_eq!((r.status, r.text()), (200, format!("ok 1 of {}", 1 << 20)));
    let long = "v".repeat((1 << 20) + 1);
    let r = post_raw(
        app.addr,
        "/upload",
        mp,
        &multipart(&[("note", &long)], "f", b"x"),
    );
    assert_eq!(r.status, 413);
    assert!(
        r.text()
            .starts_with("form field exceeds 1048576 bytes (FormLimits::max_field_bytes)"),
        "{}",
        r.text()
    );
}
