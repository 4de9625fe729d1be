//! CORS end to end: preflights and simple requests from allowed and other
//! origins, with server-wide authentication in the way (preflights pass
//! without credentials, a 401 still carries the CORS headers).
//!
//! One test sends with Python `requests`, from the interpreter named by
//! `POLLSERVE_TEST_PYTHON` (a venv made by `scripts/setup-python.sh`;
//! `./test.sh` always sets it); without the variable it prints `SKIPPED: …`
//! to stderr and returns, as in `tests/interop.rs`. The raw-socket test
//! always runs.

mod common;

use std::time::Duration;

use common::*;
use pollserve::auth::Authentication;
use pollserve::cors::Cors;
use pollserve::{Method, Response};
use serde_json::Value;

#[test]
fn cors_preflight_and_simple_requests_from_python() {
    let Some(py) = python("cors_preflight_and_simple_requests_from_python") else {
        return;
    };
    let app = serve(|s| {
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
    });
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
    let app = serve(|s| {
        s.cors(Cors::new().allow_origin("http://localhost:3000"));
        s.route("/x", Method::GET, |_, _| Ok(Response::text("x")))
            .unwrap();
    });
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
