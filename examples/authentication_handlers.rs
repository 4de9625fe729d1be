//! Authentication checked by individual handlers — `adafruit_httpserver`'s
//! `httpserver_authentication_handlers.py` (`check_authentication`,
//! `require_authentication`).
//!
//! The policy lives in the application state. `check` answers yes or no;
//! `require` gives who authenticated or the ready-made `401` to return with
//! `?`; a handler may also build its own refusal.
//!
//! A handler only runs once the whole request body is in, so an upload
//! checked there has already been read. `/upload`, a pollserve addition,
//! shows the route-level check instead: `Route::require_authentication`
//! answers `401` as soon as the head arrives (instead of `100 Continue`),
//! and `Route::max_body_size` lets the route take 16 MiB where the server
//! default is 1 MiB.
//!
//! `cargo run --example authentication_handlers [PORT]`, then
//! `curl -i http://127.0.0.1:5000/require-or-401`,
//! `curl -u user:password http://127.0.0.1:5000/require-or-401` and
//! `curl -i -u user:password -F file=@Cargo.toml http://127.0.0.1:5000/upload`.
use pollserve::auth::Principal;
use pollserve::{Authentication, Method, Response, Route, Server, StatusCode};

struct App {
    auth: Authentication,
}

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<App>::new();
    server.route("/check", Method::GET, |req, app: &mut App| {
        let authenticated = app.auth.check(req.headers());
        Ok(Response::text(if authenticated {
            "Authenticated"
        } else {
            "Not authenticated"
        }))
    })?;
    server.route("/require-or-401", Method::GET, |req, app: &mut App| {
        let who = app.auth.require(req.headers())?; // 401 + WWW-Authenticate
        let name = match who {
            Principal::Basic(user) => user.to_owned(),
            Principal::Bearer(i) => format!("bearer token #{i}"),
            Principal::Token(i) => format!("token #{i}"),
        };
        Ok(Response::text(format!("Authenticated as {name}")))
    })?;
    server.route("/require-or-handle", Method::GET, |req, app: &mut App| {
        Ok(match app.auth.require(req.headers()) {
            Ok(_) => Response::text("Authenticated"),
            Err(_) => Response::text("Not authenticated - Manually handled")
                .with_status(StatusCode::UNAUTHORIZED),
        })
    })?;
    server.add_route(
        Route::new("/upload", Method::POST, |req, _| {
            let form = req.form()?; // as large as the route's body limit
            let sizes: Vec<String> = form
                .all_files()
                .iter()
                .map(|f| format!("{} ({} bytes)", f.filename, f.size()))
                .collect();
            Ok(Response::text(format!("Received: {}", sizes.join(", "))))
        })
        .require_authentication(users())
        .max_body_size(16 << 20),
    )?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    let mut app = App { auth: users() };
    server.serve_forever(&mut app)
}

/// The accepted credentials.
fn users() -> Authentication {
    Authentication::new("pollserve example")
        .basic("user", "password")
        .token("2db53340-4f9c-4f70-9037-d25bee77eca6")
        .bearer("642ec696-2a79-4d60-be3a-7c9a3164d766")
}
