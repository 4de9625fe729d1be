//! A route handler answering with a file — `adafruit_httpserver`'s
//! `httpserver_handler_serves_file.py` (`FileResponse`).
//!
//! As in the Python example, the server serves one folder of static files
//! (`examples/static/docs`: `/about.txt`) and the `/home` handler answers with
//! a file from another (`examples/static/home.html`, which is not reachable
//! as a static file). `Response::file` takes the file's whole path, so there
//! is no default folder to override; it streams the file with ETag, `304` and
//! `Range` handled by the server. Added: `/home/download` sends the same file
//! as an attachment, and `/docs/<name>` serves a file of `examples/static`
//! named by the client, resolved through a [`StaticRoot`] so that the name
//! cannot leave the directory.
//!
//! `cargo run --example handler_serves_file [PORT]`, then open
//! <http://127.0.0.1:5000/home>, `/about.txt`, `/home/download` or
//! `/docs/notes.txt`.
use pollserve::files::StaticRoot;
use pollserve::{Method, Response, Server};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let pages = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/static");
    let home = pages.join("home.html");
    let docs = StaticRoot::new(&pages)?;

    let mut server = Server::<()>::new();
    server.serve_files(pages.join("docs"))?;
    let path = home.clone();
    server.route("/home", Method::GET, move |_req, _| Response::file(&path))?;
    server.route("/home/download", Method::GET, move |_req, _| {
        Ok(Response::file(&home)?.as_attachment("home.html"))
    })?;
    server.route("/docs/<name>", Method::GET, move |req, _| {
        let name = req.param("name").unwrap_or_default();
        // A refused or missing path answers 403/404 through `?`.
        Ok(docs.resolve(&[name])?.into())
    })?;

    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    server.serve_forever(&mut ())?;
    Ok(())
}
