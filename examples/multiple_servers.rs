//! Two servers in one loop — `adafruit_httpserver`'s `httpserver_multiple_servers.py`.
//!
//! Each `Server` has its own port, routes, default headers (`X-Server`) and
//! folder of static files; the loop polls them in turn with short timeouts.
//! Both lend handlers the same application state, here a hit counter (not
//! in the Python example). The Python example's ports are 5000 and 8000;
//! here they are PORT and PORT + 1.
//!
//! `cargo run --example multiple_servers [PORT]`: the "bedroom" server listens
//! on PORT (default 5000) and serves `examples/static`, the "office" server
//! on PORT + 1 and serves `examples/static/docs`; try
//! <http://127.0.0.1:5000/bedroom>, <http://127.0.0.1:5001/office>, `/home` on
//! both, <http://127.0.0.1:5000/notes.txt> and <http://127.0.0.1:5001/about.txt>.
use pollserve::{Method, Response, Server};
use std::path::Path;
use std::time::Duration;

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    let files = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/static");

    let mut bedroom = Server::<u64>::new();
    bedroom.default_header("X-Server", "Bedroom");
    bedroom.serve_files(&files)?;
    bedroom.route("/bedroom", Method::GET, |_req, _hits| {
        Ok(Response::text("Hello from the bedroom!"))
    })?;

    let mut office = Server::<u64>::new();
    office.default_header("X-Server", "Office");
    office.serve_files(files.join("docs"))?;
    office.route("/office", Method::GET, |_req, _hits| {
        Ok(Response::text("Hello from the office!"))
    })?;

    // The same handler on both servers.
    for server in [&mut bedroom, &mut office] {
        server.route("/home", Method::GET, |_req, hits: &mut u64| {
            *hits += 1;
            Ok(Response::text(format!("Hello from home! (visit {hits})")))
        })?;
    }

    bedroom.start("127.0.0.1", port)?;
    office.start("127.0.0.1", port + 1)?;
    let mut hits = 0;
    loop {
        // Wait briefly on one, then take whatever is ready on the other.
        bedroom.poll(&mut hits, Duration::from_millis(10))?;
        office.poll(&mut hits, Duration::ZERO)?;
    }
}
