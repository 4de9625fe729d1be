//! `adafruit_httpserver`'s `httpserver_simpletest_*.py` and
//! `httpserver_cpython.py`: a text greeting at `/`, the files of
//! `examples/static` for every other path, and `serve_forever`. (The five
//! simpletest examples differ only in how the board joins the network, and
//! the CPython one only in using the computer's; here the network is the
//! computer's. The CPython one listens on `0.0.0.0`; this one on
//! `127.0.0.1`, so that only this machine reaches it.)
//!
//! `cargo run --example simpletest [PORT]` (from the repository root), then
//! open <http://127.0.0.1:5000/> and <http://127.0.0.1:5000/home.html>.
use pollserve::{Method, Response, Server};

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
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
