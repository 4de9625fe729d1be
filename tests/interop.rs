//! Interop with independent HTTP clients: Python `requests` and `httpx`, and
//! `curl`, talking to a server started in this process on 127.0.0.1.
//!
//! Python is the interpreter named by the environment variable
//! `POLLSERVE_TEST_PYTHON`: a venv with `requests`, `httpx` and `websockets`,
//! made by `scripts/setup-python.sh`. The project's test script
//! (`./test.sh`) always creates the venv and sets the variable, so there
//! these tests always run. Under a bare `cargo test` without it, each Python
//! test prints `SKIPPED: …` to stderr and returns; likewise the curl tests
//! when no `curl` is on the PATH. A variable that is set but names a broken
//! interpreter is a failure, not a skip.
//!
//! Every client process is bounded: Python requests carry `timeout=`, curl
//! `--max-time`, and each process is killed if it outlives [`PROCESS_TIMEOUT`].

mod common;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use pollserve::url::QueryParams;
use pollserve::{Method, Response, ServerConfig};
use serde_json::{json, Value};

/// Longest any client process may run before it is killed.
/// Upload limit of the interop server (the default is 1 MiB).
const MAX_BODY: u64 = 4 << 20;

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

fn interop_server(config: ServerConfig) -> TestServer {
    serve_loop(config, (), idle, |s| {
        s.route("/", Method::GET, |_, _| {
            Ok(Response::html("<h1>interop</h1>").with_header("X-Test", "yes"))
        })
        .unwrap();
        s.route("/page/<n>", Method::GET, |req, _| {
            Ok(Response::text(format!(
                "page {} q={}",
                req.param("n").unwrap(),
                req.query().get("q").unwrap_or("")
            )))
        })
        .unwrap();
        s.route("/form", Method::POST, |req, _| {
            let form = QueryParams::parse(req.text()?);
            let fields: Vec<[&str; 2]> = form.iter().map(|(k, v)| [k, v]).collect();
            Response::json(&json!({
                "content_type": req.header("content-type"),
                "fields": fields,
            }))
        })
        .unwrap();
        s.route("/json", Method::POST, |req, _| {
            let v: Value = req.json()?;
            Response::json(&json!({
                "content_type": req.header("content-type"),
                "got": v,
            }))
        })
        .unwrap();
        s.route("/whoami", Method::GET, |req, _| {
            Ok(Response::text(req.client_addr().to_string()))
        })
        .unwrap();
        s.route("/upload", [Method::POST, Method::PUT], |req, _| {
            Response::json(&json!({
                "method": req.method().as_str(),
                "len": req.body().len(),
                "fnv": fnv1a(req.body()),
                "content_length": req.header("content-length"),
                "transfer_encoding": req.header("transfer-encoding"),
                "expect": req.header("expect"),
            }))
        })
        .unwrap();
        s.route("/old", Method::GET, |_, _| {
            Ok(Response::redirect("/page/1?q=moved", false, false))
        })
        .unwrap();
        s.route("/stream", Method::GET, |_, _| {
            Ok(Response::chunked(
                "text/plain",
                (0..200).map(|i| format!("line {i}\n")),
            ))
        })
        .unwrap();
    })
}

fn stream_body() -> String {
    (0..200).map(|i| format!("line {i}\n")).collect()
}

// ---------------------------------------------------------------------------
// Running client processes
// ---------------------------------------------------------------------------

fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        out.stderr
    );
    out
}

/// One response as printed by `curl -i`.
#[derive(Debug)]
struct CurlResp {
    status_line: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl CurlResp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Parses `curl -i` output for one transfer, skipping interim 1xx heads and
/// the redirects `-L` followed.
fn parse_curl_i(out: &[u8]) -> CurlResp {
    let mut rest = out;
    loop {
        let at = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(out)));
        let head = String::from_utf8(rest[..at].to_vec()).unwrap();
        rest = &rest[at + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap().to_owned();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        if (100..200).contains(&status)
            || ((300..400).contains(&status) && rest.starts_with(b"HTTP/"))
        {
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
            .collect();
        return CurlResp {
            status_line,
            status,
            headers,
            body: rest.to_vec(),
        };
    }
}

fn curl_i(args: &[&str]) -> CurlResp {
    parse_curl_i(&run_ok(curl().arg("-i").args(args)).stdout)
}

/// Waits until the server thread has counted at least `at_least` accepted
/// connections and nothing changes for a moment, then returns the count.
fn settled_accepts(srv: &TestServer, at_least: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.accepted.load(Ordering::SeqCst) < at_least && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    srv.accepted.load(Ordering::SeqCst)
}

fn assert_form_echo(v: &Value) {
    assert_eq!(v["content_type"], "application/x-www-form-urlencoded");
    assert_eq!(
        v["fields"],
        json!([["name", "Zoë"], ["msg", "a&b=c d+e"]]),
        "{v}"
    );
}

fn assert_json_echo(v: &Value) {
    assert_eq!(v["content_type"], "application/json");
    assert_eq!(v["got"], json!({"a": [1, 2], "s": "é\"\\"}), "{v}");
}

// ---------------------------------------------------------------------------
// Python requests
// ---------------------------------------------------------------------------

#[test]
fn python_requests_pages_form_and_json() {
    let Some(py) = python("python_requests_pages_form_and_json") else {
        return;
    };
    let srv = interop_server(ServerConfig::default().max_body_size(MAX_BODY));
    let v = run_python(
        &py,
        r#"
import requests
out = {}
out["root"] = obs(requests.get(base + "/", timeout=T))
out["head"] = obs(requests.head(base + "/", timeout=T))
out["page"] = obs(requests.get(base + "/page/7", params={"q": "a b&c"}, timeout=T))
out["form"] = obs(requests.post(base + "/form", data={"name": "Zoë", "msg": "a&b=c d+e"}, timeout=T))
out["json"] = obs(requests.post(base + "/json", json={"a": [1, 2], "s": "é\"\\"}, timeout=T))
out["bad_json"] = obs(requests.post(base + "/json", data=b"{nope", headers={"Content-Type": "application/json"}, timeout=T))
out["missing"] = obs(requests.get(base + "/nope", timeout=T))
out["wrong_method"] = obs(requests.delete(base + "/form", timeout=T))
r = requests.get(base + "/old", timeout=T)
out["redirect"] = obs(r)
out["redirect_history"] = [h.status_code for h in r.history]
out["redirect_url"] = r.url
r = requests.get(base + "/stream", timeout=T, stream=True)
out["stream"] = {"headers": dict(r.headers), "body": b"".join(r.iter_content(chunk_size=None)).decode()}
print(json.dumps(out))
"#,
        &srv.url(""),
        &[],
    );
    let root = &v["root"];
    assert_eq!(root["status"], 200);
    assert_eq!(root["text"], "<h1>interop</h1>");
    assert_eq!(root["headers"]["content-type"], "text/html; charset=utf-8");
    assert_eq!(root["headers"]["content-length"], "16");
    assert_eq!(root["headers"]["x-test"], "yes");
    assert!(root["headers"]["date"].is_string());
    let head = &v["head"];
    assert_eq!(head["status"], 200);
    assert_eq!(head["text"], "");
    assert_eq!(head["headers"]["content-length"], "16");
    assert_eq!(v["page"]["text"], "page 7 q=a b&c");

    let form = &v["form"];
    assert_eq!(form["status"], 200);
    assert_eq!(form["headers"]["content-type"], "application/json");
    assert_form_echo(&body_json(form));
    let j = &v["json"];
    assert_eq!(j["status"], 200);
    assert_json_echo(&body_json(j));
    assert_eq!(v["bad_json"]["status"], 400);
    assert_eq!(v["missing"]["status"], 404);
    assert_eq!(v["wrong_method"]["status"], 405);
    assert_eq!(v["wrong_method"]["headers"]["allow"], "POST");

    assert_eq!(v["redirect_history"], json!([302]));
    assert_eq!(v["redirect_url"], srv.url("/page/1?q=moved"));
    assert_eq!(v["redirect"]["text"], "page 1 q=moved");
    assert_eq!(v["stream"]["headers"]["Transfer-Encoding"], "chunked");
    assert_eq!(v["stream"]["body"], stream_body());
}

#[test]
fn python_requests_session_reuses_one_connection() {
    let Some(py) = python("python_requests_session_reuses_one_connection") else {
        return;
    };
    let srv = interop_server(ServerConfig::default().max_body_size(MAX_BODY));
    let v = run_python(
        &py,
        r#"
import requests
addrs, statuses = [], []
with requests.Session() as s:
    for i in range(5):
        addrs.append(s.get(base + "/whoami", timeout=T).text)
        r = s.post(base + "/json", json={"a": [1, 2], "s": "é\"\\"}, timeout=T)
        statuses.append(r.status_code)
        r = s.post(base + "/form", data={"name": "Zoë", "msg": "a&b=c d+e"}, timeout=T)
        statuses.append(r.status_code)
        statuses.append(s.head(base + "/", timeout=T).status_code)
print(json.dumps({"addrs": addrs, "statuses": statuses}))
"#,
        &srv.url(""),
        &[],
    );
    let addrs: Vec<&str> = v["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(addrs.len(), 5);
    assert!(addrs[0].starts_with("127.0.0.1:"), "{addrs:?}");
    assert!(
        addrs.iter().all(|a| *a == addrs[0]),
        "the session used several connections: {addrs:?}"
    );
    assert!(v["statuses"].as_array().unwrap().iter().all(|s| s == 200));
    // 20 requests, one connection, as the server saw it too.
    assert_eq!(settled_accepts(&srv, 1), 1);
}

// ---------------------------------------------------------------------------
// Python httpx
// ---------------------------------------------------------------------------

/// The body httpx sends from a generator: chunk `i` is `1000 + 37 i` bytes
/// counting up from `i`.
fn generated_body() -> Vec<u8> {
    (0..50u32)
        .flat_map(|i| (0..1000 + 37 * i).map(move |j| ((i + j) % 256) as u8))
        .collect()
}

#[test]
fn python_httpx_pages_form_json_and_chunked_upload() {
    let Some(py) = python("python_httpx_pages_form_json_and_chunked_upload") else {
        return;
    };
    let srv = interop_server(ServerConfig::default().max_body_size(MAX_BODY));
    let v = run_python(
        &py,
        r#"
import httpx
out = {}
def gen():
    for i in range(50):
        yield bytes((i + j) % 256 for j in range(1000 + 37 * i))
with httpx.Client(timeout=httpx.Timeout(T)) as c:
    out["root"] = obs(c.get(base + "/"))
    out["head"] = obs(c.head(base + "/"))
    out["page"] = obs(c.get(base + "/page/42", params={"q": "ü ?&"}))
    out["form"] = obs(c.post(base + "/form", data={"name": "Zoë", "msg": "a&b=c d+e"}))
    out["json"] = obs(c.post(base + "/json", json={"a": [1, 2], "s": "é\"\\"}))
    out["chunked"] = obs(c.post(base + "/upload", content=gen()))
    out["put"] = obs(c.put(base + "/upload", content=b"x" * 100000))
    with c.stream("GET", base + "/stream") as r:
        body = b"".join(r.iter_bytes())
        out["stream"] = {"status": r.status_code, "te": r.headers.get("transfer-encoding"), "body": body.decode()}
    out["missing"] = obs(c.get(base + "/nope"))
    out["addrs"] = [c.get(base + "/whoami").text for _ in range(4)]
    out["http_version"] = c.get(base + "/").http_version
print(json.dumps(out))
"#,
        &srv.url(""),
        &[],
    );
    assert_eq!(v["root"]["status"], 200);
    assert_eq!(v["root"]["text"], "<h1>interop</h1>");
    assert_eq!(v["root"]["headers"]["x-test"], "yes");
    assert_eq!(v["head"]["status"], 200);
    assert_eq!(v["head"]["text"], "");
    assert_eq!(v["head"]["headers"]["content-length"], "16");
    assert_eq!(v["page"]["text"], "page 42 q=ü ?&");
    assert_eq!(v["http_version"], "HTTP/1.1");
    assert_form_echo(&body_json(&v["form"]));
    assert_json_echo(&body_json(&v["json"]));

    // The generator body went out chunked and arrived whole.
    let body = generated_body();
    let up = body_json(&v["chunked"]);
    assert_eq!(v["chunked"]["status"], 200);
    assert_eq!(up["transfer_encoding"], "chunked");
    assert_eq!(up["content_length"], Value::Null);
    assert_eq!(up["len"], body.len());
    assert_eq!(up["fnv"], fnv1a(&body));
    let put = body_json(&v["put"]);
    assert_eq!(put["method"], "PUT");
    assert_eq!(put["content_length"], "100000");
    assert_eq!(put["fnv"], fnv1a(&[b'x'; 100_000]));

    assert_eq!(v["stream"]["status"], 200);
    assert_eq!(v["stream"]["te"], "chunked");
    assert_eq!(v["stream"]["body"], stream_body());
    assert_eq!(v["missing"]["status"], 404);
    let addrs = v["addrs"].as_array().unwrap();
    assert!(
        addrs.iter().all(|a| *a == addrs[0]),
        "httpx.Client used several connections: {addrs:?}"
    );
    assert_eq!(settled_accepts(&srv, 1), 1);
}

// ---------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------

#[test]
fn curl_pages_form_and_json() {
    let Some(()) = have_curl("curl_pages_form_and_json") else {
        return;
    };
    let srv = interop_server(ServerConfig::default().max_body_size(MAX_BODY));
    let r = curl_i(&[&srv.url("/")]);
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.text(), "<h1>interop</h1>");
    assert_eq!(r.header("x-test"), Some("yes"));
    assert_eq!(r.header("content-length"), Some("16"));
    // HEAD (-I): same head, no body.
    let r = parse_curl_i(&run_ok(curl().arg("-I").arg(srv.url("/"))).stdout);
    assert_eq!((r.status, r.header("content-length")), (200, Some("16")));
    assert!(r.body.is_empty());
    let r = curl_i(&["-G", "--data-urlencode", "q=a b&c", &srv.url("/page/9")]);
    assert_eq!(r.text(), "page 9 q=a b&c");

    let r = curl_i(&[
        "--data-urlencode",
        "name=Zoë",
        "--data-urlencode",
        "msg=a&b=c d+e",
        &srv.url("/form"),
    ]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_form_echo(&r.json());
    let r = curl_i(&[
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        r#"{"a":[1,2],"s":"é\"\\"}"#,
        &srv.url("/json"),
    ]);
    assert_eq!(r.status, 200);
    assert_json_echo(&r.json());

    let r = curl_i(&[&srv.url("/stream")]);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), stream_body());
    let r = curl_i(&["-L", &srv.url("/old")]);
    assert_eq!((r.status, r.text().as_str()), (200, "page 1 q=moved"));
    let r = curl_i(&[&srv.url("/nope")]);
    assert_eq!(r.status, 404);
    let r = curl_i(&["-X", "DELETE", &srv.url("/json")]);
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
}

#[test]
fn curl_http10() {
    let Some(()) = have_curl("curl_http10") else {
        return;
    };
    let srv = interop_server(ServerConfig::default().max_body_size(MAX_BODY));
    // The server answers a 1.0 request in HTTP/1.1 syntax (RFC 9110 §2.5)
    // and closes the connection, since the client did not ask to keep it.
    let r = curl_i(&["--http1.0", &srv.url("/")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.text(), "<h1>interop</h1>");
    // A streamed body: no chunked coding for 1.0, delimited by the close.
    let r = curl_i(&["--http1.0", &srv.url("/stream")]);
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.text(), stream_body());
    // Bodies by Content-Length.
    let r = curl_i(&[
        "--http1.0",
        "--data-urlencode",
        "name=Zoë",
        "--data-urlencode",
        "msg=a&b=c d+e",
        &srv.url("/form"),
    ]);
    assert_form_echo(&r.json());
    // `Connection: keep-alive` keeps a 1.0 connection for the next request.
    let out = run_ok(curl().args([
        "--http1.0",
        "-H",
        "Connection: keep-alive",
        "-w",
        "\n",
        &srv.url("/whoami"),
        &srv.url("/whoami"),
        &srv.url("/whoami"),
    ]))
    .stdout_text();
    let addrs: Vec<&str> = out.lines().collect();
    assert_eq!(addrs.len(), 3, "{out}");
    assert!(addrs.iter().all(|a| *a == addrs[0]), "{addrs:?}");
    // Without it, one connection per request.
    let out = run_ok(curl().args([
        "--http1.0",
        "-w",
        "\n",
        &srv.url("/whoami"),
        &srv.url("/whoami"),
    ]))
    .stdout_text();
    let addrs: Vec<&str> = out.lines().collect();
    assert_eq!(addrs.len(), 2, "{out}");
    assert_ne!(addrs[0], addrs[1]);
}

#[test]
fn curl_upload_with_expect_100_continue() {
    let Some(()) = have_curl("curl_upload_with_expect_100_continue") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("upload.bin");
    // Over curl's 1 MiB threshold for sending `Expect: 100-continue`.
    let data: Vec<u8> = (0..(2 << 20) + 123u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    let file = file.to_str().unwrap();

    let srv = interop_server(ServerConfig::default().max_body_size(MAX_BODY));
    let started = Instant::now();
    let out = run_ok(curl().args(["-v", "-T", file, &srv.url("/upload")]));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout_text(), out.stderr));
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["len"], data.len());
    assert_eq!(v["content_length"], data.len().to_string());
    assert_eq!(v["expect"], "100-continue");
    assert_eq!(v["fnv"], fnv1a(&data));
    // curl sent the expectation and got the interim response (rather than
    // sending the body after its 1 s wait).
    assert!(
        out.stderr.contains("> Expect: 100-continue"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("< HTTP/1.1 100 Continue"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(15));

    // POST of the same file by --data-binary @file, also with Expect.
    let out = run_ok(curl().args([
        "-v",
        "--data-binary",
        &format!("@{file}"),
        "-H",
        "Content-Type: application/octet-stream",
        &srv.url("/upload"),
    ]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["method"].as_str(), &v["fnv"]),
        (Some("POST"), &json!(fnv1a(&data)))
    );

    // With the default 1 MiB limit the server refuses with 413 at once and
    // the body is never sent.
    let small = interop_server(ServerConfig::default());
    let out = run_ok(curl().args([
        "-v",
        "-T",
        file,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_upload}",
        &small.url("/upload"),
    ]));
    let report = out.stdout_text();
    let (code, uploaded) = report.split_once(' ').unwrap();
    assert_eq!(code, "413", "{}", out.stderr);
    assert!(
        !out.stderr.contains("< HTTP/1.1 100 Continue"),
        "{}",
        out.stderr
    );
    let uploaded: f64 = uploaded.parse().unwrap();
    assert!(
        uploaded < data.len() as f64,
        "curl uploaded {uploaded} bytes to a 413"
    );
}

#[test]
fn curl_parallel_requests() {
    let Some(()) = have_curl("curl_parallel_requests") else {
        return;
    };
    let srv = interop_server(ServerConfig::default());
    let tmp = tempfile::tempdir().unwrap();
    let n = 50;
    let mut cmd = curl();
    cmd.args([
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
        "50",
        "--output-dir",
        tmp.path().to_str().unwrap(),
        "-w",
        "%{http_code} %{url_effective}\n",
    ]);
    for i in 0..n {
        cmd.arg("-o")
            .arg(format!("page{i}"))
            .arg(srv.url(&format!("/page/{i}?q=p{i}")));
    }
    let out = run_ok(&mut cmd);
    let report = out.stdout_text();
    assert_eq!(report.lines().count(), n, "{report}");
    assert!(report.lines().all(|l| l.starts_with("200 ")), "{report}");
    for i in 0..n {
        let body = std::fs::read_to_string(tmp.path().join(format!("page{i}"))).unwrap();
        assert_eq!(body, format!("page {i} q=p{i}"));
    }
    // They really ran in parallel, on several connections.
    let accepted = settled_accepts(&srv, 2);
    assert!(
        (2..=n).contains(&accepted),
        "{accepted} connections for {n} parallel requests"
    );
}
