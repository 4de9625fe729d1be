//! Authentication end to end with Python `requests` and `httpx`: Basic
//! (UTF-8 credentials) and Bearer checked per handler, and server-wide
//! authentication in front of routes and static files, with the
//! `WWW-Authenticate` challenges a client sees on 401.
//!
//! The client is the Python interpreter named by `POLLSERVE_TEST_PYTHON` (a
//! venv made by `scripts/setup-python.sh`; `./test.sh` always sets it);
//! without the variable these tests print `SKIPPED: …` to stderr and return,
//! as in `tests/interop.rs`.

mod common;

use common::*;
use pollserve::auth::Authentication;
use pollserve::{Method, Response};
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
