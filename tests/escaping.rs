//! HTML escaping end to end: a name from the query string and a comment
//! from a form are reflected into a page, and no script or attribute
//! breakout survives.
//!
//! The raw-socket part always runs; the Python `requests` part needs the
//! interpreter named by `POLLSERVE_TEST_PYTHON` (a venv made by
//! `scripts/setup-python.sh`; `./test.sh` always sets it) and otherwise
//! prints `SKIPPED: …` to stderr and returns, as in `tests/interop.rs`.

mod common;

use common::*;
use pollserve::{html_escape, Method, Response, Server};

fn escape_routes(s: &mut Server<()>) {
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
    let app = serve(escape_routes);
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
