//! Reading and setting cookies — `adafruit_httpserver`'s `httpserver_cookies.py`.
//!
//! The page's theme comes from the `theme` cookie; `?theme=dark` changes it
//! and sets the cookie for next time. Two more cookies show that several
//! `Set-Cookie` headers are added with `with_cookie`. `SetCookie::new`
//! takes any string as the value (it percent-encodes what a cookie cannot
//! hold, and `req.cookies().get` decodes it), so a value with spaces or
//! commas is no error.
//!
//! `cargo run --example cookies [PORT]`, then open <http://127.0.0.1:5000/>.
use pollserve::cookies::{SameSite, SetCookie};
use pollserve::{HttpError, Method, Request, Response, Server};
use std::time::Duration;

/// (name, background, text colour)
const THEMES: [(&str, &str, &str); 2] =
    [("light", "white", "#1c1c1c"), ("dark", "#1c1c1c", "white")];

fn theme(name: Option<&str>) -> Option<(&'static str, &'static str, &'static str)> {
    THEMES.into_iter().find(|t| Some(t.0) == name)
}

fn themed(req: &Request, _: &mut ()) -> Result<Response, HttpError> {
    let cookies = req.cookies();
    let current = theme(cookies.get("theme")).unwrap_or(THEMES[0]);
    // Unknown names fall back to the current theme, so only known values are reflected.
    let wanted = theme(req.query().get("theme")).unwrap_or(current);
    let (name, background, color) = wanted;
    let mut response = Response::html(format!(
        "<!doctype html><title>Cookie example</title>\
         <style>body {{ background: {background}; color: {color}; }}</style>\
         <p>Theme: <b>{name}</b></p>\
         <a href=\"/?theme=dark\">Dark theme</a> <a href=\"/?theme=light\">Light theme</a>\
         <p>Change the theme, close the tab and open it again: the theme stays.</p>"
    ))
    .with_cookie(&SetCookie::new("cookie1", "value1")?)
    .with_cookie(&SetCookie::new("cookie2", "value2")?);
    if wanted != current {
        let cookie = SetCookie::new("theme", name)?
            .path("/")?
            .max_age(Duration::from_secs(365 * 24 * 3600))
            .same_site(SameSite::Lax);
        response = response.with_cookie(&cookie);
    }
    Ok(response)
}

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<()>::new();
    server.route("/", Method::GET, themed)?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    server.serve_forever(&mut ())
}
