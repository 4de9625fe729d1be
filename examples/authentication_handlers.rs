//! Authentication checked by individual handlers — `adafruit_httpserver`'s
//! `httpserver_authentication_handlers.py` (`check_authentication`,
//! `require_authentication`).
//!
//! The policy lives in the application state. `check` answers yes or no;
//! `require` gives who authenticated or the ready-made `401` to return with
//! `?`; a handler may also build its own refusal.
//!
//! `cargo run --example authentication_handlers [PORT]`, then
//! `curl -i http://127.0.0.1:5000/require-or-401` and
//! `curl -u user:password http://127.0.0.1:5000/require-or-401`.
use pollserve::auth::Principal;
use pollserve::{Authentication, Method, Response, Server, StatusCode};

struct App {
    auth: Authentication,
}

fn main() -> Result<(), pollserve::Error> {
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
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    let mut app = App {
        auth: Authentication::new("pollserve example")
            .basic("user", "password")
            .token("2db53340-4f9c-4f70-9037-d25bee77eca6")
            .bearer("642ec696-2a79-4d60-be3a-7c9a3164d766"),
    };
    server.serve_forever(&mut app)
}
