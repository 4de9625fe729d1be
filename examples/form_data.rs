//! Query parameters, form bodies (urlencoded, `text/plain`, multipart with a
//! file upload) and JSON — `adafruit_httpserver`'s `httpserver_form_data.py`, plus the
//! upload and JSON cases.
//!
//! Values arrive decoded and are **not** HTML-escaped: everything reflected
//! into the page goes through `html_escape`.
//!
//! `cargo run --example form_data [PORT]`, then open <http://127.0.0.1:5000/form>;
//! `curl -d '{"name":"Ada","tags":["x"]}' http://127.0.0.1:5000/json` for JSON.
use pollserve::{html_escape, HttpError, Method, Request, Response, Server};
use serde::Deserialize;

const ENCTYPES: [&str; 3] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain",
];

fn page(enctype: &str, result: &str) -> Response {
    let links: String = ENCTYPES
        .iter()
        .map(|e| format!("<a href=\"/form?enctype={e}\">{e}</a><br>\n"))
        .collect();
    Response::html(format!(
        "<!doctype html><title>Forms</title>\n{links}\
         <h2>Form with {enctype} enctype</h2>\n\
         <form action=\"/form?enctype={enctype}\" method=\"post\" enctype=\"{enctype}\">\n\
         <input name=\"something\" placeholder=\"Type something...\">\n\
         <input type=\"submit\" value=\"Submit\"></form>\n\
         <h2>Upload a file (multipart/form-data)</h2>\n\
         <form action=\"/form?enctype=multipart/form-data\" method=\"post\" enctype=\"multipart/form-data\">\n\
         <input type=\"file\" name=\"upload\"> <input type=\"submit\" value=\"Upload\"></form>\n\
         {result}"
    ))
}

fn form(req: &Request, _: &mut ()) -> Result<Response, HttpError> {
    // Only known enctypes are put back into the page.
    let wanted = req.query().get("enctype").unwrap_or("text/plain");
    let enctype = ENCTYPES
        .into_iter()
        .find(|&e| e == wanted)
        .unwrap_or("text/plain");
    if req.method() != Method::POST {
        return Ok(page(enctype, ""));
    }
    let data = req.form()?; // 400/413/415 with the reason if the body is bad
    let mut result = format!(
        "<h3>Enctype: {}</h3>\n",
        html_escape(req.header("Content-Type").unwrap_or(""))
    );
    if let Some(value) = data.get("something") {
        result += &format!("<h3>Submitted form value: {}</h3>\n", html_escape(value));
    }
    for file in data.all_files() {
        result += &format!(
            "<h3>Uploaded file: {} ({} bytes, {})</h3>\n",
            html_escape(file.safe_filename().unwrap_or("(no name)")),
            file.size(),
            html_escape(&file.content_type),
        );
    }
    Ok(page(enctype, &result))
}

#[derive(Deserialize)]
struct Person {
    name: String,
    #[serde(default)]
    tags: Vec<String>,
}

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<()>::new();
    server.route("/form", [Method::GET, Method::POST], form)?;
    server.route("/json", Method::POST, |req, _| {
        let person: Person = req.json()?; // 400 naming the problem if invalid
        Ok(Response::text(format!(
            "Hello {} ({} tags)\n",
            person.name,
            person.tags.len()
        )))
    })?;
    server.route("/search", Method::GET, |req, _| {
        // `?q=a+b&tag=x&tag=y`: `+` is a space, names may repeat.
        let q = req.query().get("q").unwrap_or("");
        let tags: Vec<&str> = req.query().get_all("tag").collect();
        Ok(Response::text(format!("q={q:?} tags={tags:?}\n")))
    })?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    server.serve_forever(&mut ())
}
