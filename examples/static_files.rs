//! Serving a directory of static files — `adafruit_httpserver`'s
//! `httpserver_static_files_serving.py`.
//!
//! No routes are needed: `serve_files` answers every `GET`/`HEAD` no route
//! matched, with `index.html` for `/`, ETags, `304`, byte ranges, and safe
//! path resolution (`..`, dotfiles and symlinks out of the root are refused).
//! The MIME table is adjusted as the Python example's `MIMETypes.configure`
//! call does: `.foo` and `.bar` are registered and unknown extensions are
//! served as `text/plain`. Its `keep_for` list, which unregisters every other
//! type to save a board's memory, is left out: on a computer the built-in
//! table's few kilobytes do not matter, and dropping types would only serve
//! files such as `.svg` or `.pdf` as `text/plain` (`MimeTypes::remove` does
//! it where wanted).
//!
//! `cargo run --example static_files [PORT] [DIR]` serves `DIR`, or
//! `examples/static/` by default; open <http://127.0.0.1:5000/>.
use pollserve::Server;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut args = std::env::args().skip(1);
    let port = args.next().and_then(|p| p.parse().ok()).unwrap_or(5000);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/static"));

    let mut server = Server::<()>::new();
    server.serve_files(&dir)?;
    if let Some(root) = server.static_root_mut() {
        let mime = root.mime_types_mut();
        mime.insert("foo", "text/foo")?; // register extra types
        mime.insert("bar", "text/bar")?;
        mime.set_default("text/plain")?; // for unknown extensions
    }
    server.start("127.0.0.1", port)?;
    println!("serving {}", dir.display());
    server.serve_forever(&mut ())?;
    Ok(())
}
