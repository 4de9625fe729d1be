//! `adafruit_httpserver`'s `httpserver_simpletest_*.py`: a text greeting at
//! `/`, the files of `examples/static` for every other path, and
//! `serve_forever`. (On the board the examples differ only in how they join
//! the network; here the network is the computer's.)
//!
//! `cargo run --example simpletest [PORT]` (from the repository root), then
//! open <http://127.0.0.1:5000/> and <http://127.0.0.1:5000/home.html>.
use pollserve::{Method, Response, Server};

fn main() -> Result<(), pollserve::Error> {
    let mut server = Server::<()>::new();
    server.serve_files(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/static"))?;
    server.route("/", Method::GET, |_req, _| {
        Ok(Response::text("Hello from the pollserve HTTP server!"))
    })?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    server.serve_forever(&mut ())
}
