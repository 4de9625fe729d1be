//! Redirects — `adafruit_httpserver`'s `httpserver_redirects.py` (`Redirect`).
//!
//! `Response::redirect(location, permanent, preserve_method)` picks the status
//! as `adafruit_httpserver` does: 302 by default, 301 when permanent, 307/308 when the
//! client must repeat the method and body. `redirect_with_status` sets it
//! explicitly.
//!
//! `cargo run --example redirects [PORT]`, then
//! `curl -i http://127.0.0.1:5000/blinka` or
//! `curl -L -d x=1 http://127.0.0.1:5000/login`.
use pollserve::{HttpError, Method, Response, Server, StatusCode};

const REDIRECTS: [(&str, &str); 3] = [
    ("google", "https://www.google.com"),
    ("adafruit", "https://www.adafruit.com"),
    ("circuitpython", "https://circuitpython.org"),
];

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<()>::new();
    server.route("/blinka", Method::GET, |_req, _| {
        Ok(Response::redirect(
            "https://circuitpython.org/blinka",
            true,
            false,
        )) // 301
    })?;
    server.route("/adafruit", Method::GET, |_req, _| {
        Ok(Response::redirect_with_status(
            "https://www.adafruit.com/",
            StatusCode::MOVED_PERMANENTLY,
        ))
    })?;
    server.route("/fake-login", Method::POST, |req, _| {
        Ok(Response::text(format!(
            "Fake login page with POST data preserved: {} bytes\n",
            req.body().len()
        )))
    })?;
    server.route("/login", Method::POST, |_req, _| {
        Ok(Response::redirect("/fake-login", false, true)) // 307: method and body kept
    })?;
    server.route("/<slug>", Method::GET, |req, _| {
        let slug = req.param("slug").unwrap_or_default();
        match REDIRECTS.iter().find(|(name, _)| *name == slug) {
            Some((_, url)) => Ok(Response::redirect(url, false, false)), // 302
            None => Err(HttpError::new(StatusCode::NOT_FOUND, "Unknown redirect")),
        }
    })?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    server.serve_forever(&mut ())
}
