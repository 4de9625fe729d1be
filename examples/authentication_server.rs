//! Authentication for the whole server — `adafruit_httpserver`'s
//! `httpserver_authentication_server.py`.
//!
//! `require_authentication` checks every request, routes and static files
//! alike; others get `401` with a `WWW-Authenticate` challenge for each
//! configured scheme. Secrets are compared in constant time. Without TLS they
//! travel in clear text: use this on a trusted network or behind HTTPS.
//!
//! `cargo run --example authentication_server [PORT]`, then
//! `curl -u user:password http://127.0.0.1:5000/implicit-require` or
//! `curl -H 'Authorization: Bearer 642ec696-2a79-4d60-be3a-7c9a3164d766' http://127.0.0.1:5000/`.
use pollserve::{Authentication, Method, Response, Server};
use std::path::PathBuf;

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let auth = Authentication::new("pollserve example")
        .basic("user", "password")
        .token("2db53340-4f9c-4f70-9037-d25bee77eca6")
        .bearer("642ec696-2a79-4d60-be3a-7c9a3164d766");

    let mut server = Server::<()>::new();
    server.require_authentication(auth);
    server.serve_files(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/static"))?;
    server.route("/implicit-require", Method::GET, |_req, _| {
        Ok(Response::text("Authenticated"))
    })?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    server.serve_forever(&mut ())
}
