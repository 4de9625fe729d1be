//! HTTPS — `adafruit_httpserver`'s `httpserver_https.py`, without blocking
//! the loop: the TLS handshake runs inside `poll` like everything else.
//!
//! The Python example serves a text route and a static folder over HTTPS
//! from `cert.pem` and `key.pem`. Here the certificate chain and key come
//! from the arguments after the port, or from `POLLSERVE_TLS_CERT` /
//! `POLLSERVE_TLS_KEY`; without them the program prints how to make a
//! self-signed pair and exits. A second, plain port (PORT + 1) redirects
//! `http://` to the HTTPS one.
//!
//! ```sh
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
//!     -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
//!     -keyout key.pem -out cert.pem
//! cargo run --features tls --example https -- 5443 cert.pem key.pem
//! ```
//!
//! then open <https://127.0.0.1:5443/> (a browser warns about the
//! self-signed certificate; `curl --cacert cert.pem https://localhost:5443/`
//! trusts it). `http://127.0.0.1:5444/` (PORT + 1) redirects there.
use pollserve::{tls::TlsConfig, Method, Response, Server};
use std::path::PathBuf;
use std::time::Duration;

const HOW_TO: &str = "\
usage: https [PORT [CERT.pem KEY.pem]]   (or set POLLSERVE_TLS_CERT and POLLSERVE_TLS_KEY)

No certificate given. For a self-signed one, valid 30 days for localhost:

  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \\
      -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \\
      -keyout key.pem -out cert.pem

then: cargo run --features tls --example https -- 5443 cert.pem key.pem
";

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // The error's text (which names the file at fault), not its `Debug`
    // form that returning it from `main` would print.
    if let Err(e) = run() {
        eprintln!("https: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), pollserve::Error> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(5443);
    let cert = args
        .next()
        .or_else(|| std::env::var("POLLSERVE_TLS_CERT").ok());
    let key = args
        .next()
        .or_else(|| std::env::var("POLLSERVE_TLS_KEY").ok());
    let (Some(cert), Some(key)) = (cert, key) else {
        eprint!("{HOW_TO}");
        std::process::exit(2);
    };
    // Errors name the file: unreadable, no certificate, no key, wrong key.
    let tls = TlsConfig::from_pem_files(&cert, &key)?;

    let mut server = Server::<()>::new();
    server.route("/", Method::GET, |_req, _| {
        Ok(Response::text("Hello from the pollserve HTTPS server!"))
    })?;
    // The Python example's `root_path="/static"`.
    server.serve_files(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/static"))?;
    let https = server.start_tls("127.0.0.1", port, tls)?;
    let http = server.start_https_redirect("127.0.0.1", port.wrapping_add(1), https.port())?;
    println!("serving https://{https}/ (http://{http}/ redirects there)");
    loop {
        // The program's own work goes between polls, as in `adafruit_httpserver`.
        server.poll(&mut (), Duration::from_millis(100))?;
    }
}
