//! Cross-Origin Resource Sharing (the Fetch standard's CORS protocol).
//!
//! A [`Cors`] policy lists the origins, methods and request headers a
//! browser may use from another site. In a handler, answer preflights with
//! [`Cors::preflight`] and decorate every other response with
//! [`Cors::apply`]:
//!
//! ```
//! use std::time::Duration;
//! use pollserve::cors::Cors;
//! use pollserve::{Headers, Method, Response};
//!
//! let cors = Cors::new()
//!     .allow_origin("https://app.example")
//!     .allow_methods(&[Method::GET, Method::POST, Method::DELETE])
//!     .allow_headers(&["Content-Type", "Authorization"])
//!     .max_age(Duration::from_secs(600))
//!     .allow_credentials();
//!
//! fn handle(cors: &Cors, method: Method, headers: &Headers) -> Response {
//!     if let Some(preflight) = cors.preflight(headers, method) {
//!         return preflight;
//!     }
//!     let mut response = Response::text("data");
//!     cors.apply(headers, &mut response);
//!     response
//! }
//!
//! let req: Headers = [("Origin", "https://app.example")].into_iter().collect();
//! let r = handle(&cors, Method::GET, &req);
//! assert_eq!(r.headers().get("access-control-allow-origin"), Some("https://app.example"));
//! assert_eq!(r.headers().get("vary"), Some("Origin"));
//! ```
//!
//! A request from an origin that is not allowed gets no CORS headers at all:
//! the server still answers, and the browser withholds the answer from the
//! page. CORS is a browser-side read protection, not access control — a
//! non-browser client ignores it, so authenticate requests as usual.

use std::time::Duration;

use crate::headers::Headers;
use crate::method::Method;
use crate::response::Response;
use crate::status::StatusCode;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Origins {
    Any,
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowHeaders {
    List(Vec<String>),
    Mirror,
}

/// A CORS policy; see the [module docs](self).
///
/// Starts allowing no origin, the methods `GET`, `HEAD` and `POST`, no extra
/// request headers, no exposed response headers, no `Max-Age` and no
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    origins: Origins,
    methods: Vec<Method>,
    allow_headers: AllowHeaders,
    expose_headers: Vec<String>,
    max_age: Option<Duration>,
    credentials: bool,
}

impl Default for Cors {
    fn default() -> Cors {
        Cors::new()
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Lower-cases and drops one trailing `/` (an origin has no path).
fn normalize_origin(origin: &str) -> String {
    let o = origin.trim();
    o.strip_suffix('/').unwrap_or(o).to_ascii_lowercase()
}

impl Cors {
    /// A policy that allows nothing yet; see the type's documentation.
    pub fn new() -> Cors {
        Cors {
            origins: Origins::List(Vec::new()),
            methods: vec![Method::GET, Method::HEAD, Method::POST],
            allow_headers: AllowHeaders::List(Vec::new()),
            expose_headers: Vec::new(),
            max_age: None,
            credentials: false,
        }
    }

    /// Allows requests from `origin`, a serialized origin such as
    /// `https://app.example:8443` (scheme, host and port, no path; compared
    /// case-insensitively; a trailing `/` is ignored). `"null"` allows
    /// sandboxed and `file:` pages — rarely what you want. Replaces
    /// [`allow_any_origin`](Self::allow_any_origin).
    pub fn allow_origin(mut self, origin: &str) -> Cors {
        let origin = normalize_origin(origin);
        match &mut self.origins {
            Origins::List(list) => {
                if !list.contains(&origin) {
                    list.push(origin);
                }
            }
            Origins::Any => self.origins = Origins::List(vec![origin]),
        }
        self
    }

    /// Allows every origin, answering `Access-Control-Allow-Origin: *`.
    ///
    /// Browsers never send credentials to a `*` origin, so in this mode
    /// [`allow_credentials`](Self::allow_credentials) has no effect (echoing
    /// any origin with credentials would let every site read your users'
    /// authenticated data): list origins explicitly for credentialed CORS.
    pub fn allow_any_origin(mut self) -> Cors {
        self.origins = Origins::Any;
        self
    }

    /// The methods announced in preflight answers (replacing the default
    /// `GET, HEAD, POST`).
    pub fn allow_methods(mut self, methods: &[Method]) -> Cors {
        self.methods.clear();
        for &m in methods {
            if !self.methods.contains(&m) {
                self.methods.push(m);
            }
        }
        self
    }

    /// The request headers a cross-origin request may set (beyond the
    /// CORS-safelisted ones). Names that are not tokens are ignored.
    pub fn allow_headers(mut self, headers: &[&str]) -> Cors {
        let list: Vec<String> = headers
            .iter()
            .filter(|h| is_token(h))
            .map(|h| (*h).to_owned())
            .collect();
        self.allow_headers = AllowHeaders::List(list);
        self
    }

    /// Allows whatever request headers a preflight asks for, by echoing its
    /// `Access-Control-Request-Headers` (when that is a valid list of tokens).
    pub fn allow_any_header(mut self) -> Cors {
        self.allow_headers = AllowHeaders::Mirror;
        self
    }

    /// Response headers the page's script may read (beyond the safelisted
    /// ones), sent as `Access-Control-Expose-Headers`. Names that are not
    /// tokens are ignored.
    pub fn expose_headers(mut self, headers: &[&str]) -> Cors {
        self.expose_headers = headers
            .iter()
            .filter(|h| is_token(h))
            .map(|h| (*h).to_owned())
            .collect();
        self
    }

    /// How long a browser may cache a preflight answer, sent in whole
    /// seconds as `Access-Control-Max-Age` (browsers cap it: 2 hours for
    /// Chromium, 1 day for Firefox).
    pub fn max_age(mut self, max_age: Duration) -> Cors {
        self.max_age = Some(max_age);
        self
    }

    /// Allows credentialed requests (cookies, HTTP authentication) from the
    /// listed origins: `Access-Control-Allow-Credentials: true`. Ignored with
    /// [`allow_any_origin`](Self::allow_any_origin).
    pub fn allow_credentials(mut self) -> Cors {
        self.credentials = true;
        self
    }

    /// Whether `origin` (an `Origin` header value) is allowed.
    pub fn is_origin_allowed(&self, origin: &str) -> bool {
        match &self.origins {
            Origins::Any => true,
            Origins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }

    /// The request's single `Origin` value if it is allowed.
    fn allowed_origin<'h>(&self, headers: &'h Headers) -> Option<&'h str> {
        let mut all = headers.get_all("Origin");
        let origin = all.next()?;
        if all.next().is_some() || origin.is_empty() {
            return None;
        }
        self.is_origin_allowed(origin).then_some(origin)
    }

    /// Answers a CORS preflight, or `None` if the request is not one.
    ///
    /// A preflight is an `OPTIONS` request with an `Origin` and an
    /// `Access-Control-Request-Method` header. For one, the answer is always
    /// `204 No Content`; when the origin is allowed it carries
    /// `Access-Control-Allow-Origin` (the request's origin, or `*` when any
    /// origin is allowed), `-Allow-Methods`, `-Allow-Headers`, `-Max-Age` and
    /// `-Allow-Credentials` as configured; when it is not, it carries none of
    /// them and the browser cancels the real request. With a list of origins
    /// the answer also has `Vary: Origin`.
    pub fn preflight(&self, request_headers: &Headers, method: Method) -> Option<Response> {
        if method != Method::OPTIONS
            || !request_headers.contains("Origin")
            || !request_headers.contains("Access-Control-Request-Method")
        {
            return None;
        }
        let mut r = Response::new(StatusCode::NO_CONTENT);
        let listed = matches!(self.origins, Origins::List(_));
        if listed {
            add_vary(&mut r, "Origin");
        }
        let Some(origin) = self.allowed_origin(request_headers) else {
            return Some(r);
        };
        self.set_origin_headers(&mut r, origin);
        if !self.methods.is_empty() {
            let methods: Vec<&str> = self.methods.iter().map(|m| m.as_str()).collect();
            r.set_header("Access-Control-Allow-Methods", &methods.join(", "));
        }
        match &self.allow_headers {
            AllowHeaders::List(list) if !list.is_empty() => {
                r.set_header("Access-Control-Allow-Headers", &list.join(", "));
            }
            AllowHeaders::List(_) => {}
            AllowHeaders::Mirror => {
                add_vary(&mut r, "Access-Control-Request-Headers");
                let requested: Vec<&str> = request_headers
                    .get_all("Access-Control-Request-Headers")
                    .flat_map(|v| v.split(','))
                    .map(|h| h.trim_matches([' ', '\t']))
                    .filter(|h| !h.is_empty())
                    .collect();
                if !requested.is_empty() && requested.iter().all(|h| is_token(h)) {
                    r.set_header("Access-Control-Allow-Headers", &requested.join(", "));
                }
            }
        }
        if let Some(age) = self.max_age {
            r.set_header("Access-Control-Max-Age", &age.as_secs().to_string());
        }
        Some(r)
    }

    /// Adds the CORS headers of an actual (non-preflight) response:
    /// `Access-Control-Allow-Origin`, `-Allow-Credentials` and
    /// `-Expose-Headers` when the request's `Origin` is allowed, nothing when
    /// it is not or there is none. With a list of origins, `Origin` is added
    /// to `Vary` in every case, so caches keep per-origin copies.
    pub fn apply(&self, request_headers: &Headers, response: &mut Response) {
        if matches!(self.origins, Origins::List(_)) {
            add_vary(response, "Origin");
        }
        let Some(origin) = self.allowed_origin(request_headers) else {
            return;
        };
        self.set_origin_headers(response, origin);
        if !self.expose_headers.is_empty() {
            response.set_header(
                "Access-Control-Expose-Headers",
                &self.expose_headers.join(", "),
            );
        }
    }

    fn set_origin_headers(&self, r: &mut Response, origin: &str) {
        match self.origins {
            Origins::Any => r.set_header("Access-Control-Allow-Origin", "*"),
            Origins::List(_) => {
                r.set_header("Access-Control-Allow-Origin", origin);
                if self.credentials {
                    r.set_header("Access-Control-Allow-Credentials", "true");
                }
            }
        }
    }
}

/// Adds `token` to the response's `Vary` list unless it (or `*`) is there.
fn add_vary(r: &mut Response, token: &str) {
    let existing: Vec<String> = r
        .headers()
        .get_all("Vary")
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if existing
        .iter()
        .any(|t| t == "*" || t.eq_ignore_ascii_case(token))
    {
        return;
    }
    let mut value = existing.join(", ");
    if !value.is_empty() {
        value.push_str(", ");
    }
    value.push_str(token);
    r.set_header("Vary", &value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().copied().collect()
    }

    fn preflight_req(origin: &str) -> Headers {
        req(&[
            ("Origin", origin),
            ("Access-Control-Request-Method", "DELETE"),
            ("Access-Control-Request-Headers", "content-type, x-custom"),
        ])
    }

    fn policy() -> Cors {
        Cors::new()
            .allow_origin("https://App.example/")
            .allow_origin("http://localhost:3000")
            .allow_methods(&[Method::GET, Method::DELETE, Method::GET])
            .allow_headers(&["Content-Type", "X-Custom", "bad header"])
            .expose_headers(&["X-Total", "in valid"])
            .max_age(Duration::from_millis(600_900))
            .allow_credentials()
    }

    fn h<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers().get(name)
    }

    #[test]
    fn preflight_for_allowed_origin() {
        let r = policy()
            .preflight(&preflight_req("https://app.example"), Method::OPTIONS)
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            h(&r, "access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(h(&r, "vary"), Some("Origin"));
        assert_eq!(h(&r, "access-control-allow-methods"), Some("GET, DELETE"));
        assert_eq!(
            h(&r, "access-control-allow-headers"),
            Some("Content-Type, X-Custom")
        );
        assert_eq!(h(&r, "access-control-max-age"), Some("600"));
        assert_eq!(h(&r, "access-control-allow-credentials"), Some("true"));
        assert_eq!(r.body_bytes(), Some(&b""[..]));
    }

    #[test]
    fn origin_echoed_as_sent() {
        let r = policy()
            .preflight(&preflight_req("HTTPS://APP.EXAMPLE"), Method::OPTIONS)
            .unwrap();
        assert_eq!(
            h(&r, "access-control-allow-origin"),
            Some("HTTPS://APP.EXAMPLE")
        );
    }

    #[test]
    fn preflight_for_disallowed_origin_has_no_cors_headers() {
        for origin in [
            "https://evil.example",
            "https://app.example.evil",
            "null",
            "",
            "http://app.example",
        ] {
            let r = policy()
                .preflight(&preflight_req(origin), Method::OPTIONS)
                .unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
            assert_eq!(h(&r, "vary"), Some("Origin"));
            assert!(
                r.headers()
                    .iter()
                    .all(|(n, _)| !n.starts_with("Access-Control")),
                "{origin}"
            );
        }
    }

    #[test]
    fn not_a_preflight() {
        let p = policy();
        assert!(p
            .preflight(&preflight_req("https://app.example"), Method::GET)
            .is_none());
        assert!(p
            .preflight(&req(&[("Origin", "https://app.example")]), Method::OPTIONS)
            .is_none());
        assert!(p
            .preflight(
                &req(&[("Access-Control-Request-Method", "GET")]),
                Method::OPTIONS
            )
            .is_none());
    }

    #[test]
    fn several_origin_headers_are_refused() {
        let mut headers = preflight_req("https://app.example");
        headers.add("Origin", "https://evil.example");
        let r = policy().preflight(&headers, Method::OPTIONS).unwrap();
        assert!(h(&r, "access-control-allow-origin").is_none());
    }

    #[test]
    fn apply_to_simple_response() {
        let mut r = Response::text("x").with_header("Vary", "Accept-Encoding");
        policy().apply(&req(&[("Origin", "http://localhost:3000")]), &mut r);
        assert_eq!(
            h(&r, "access-control-allow-origin"),
            Some("http://localhost:3000")
        );
        assert_eq!(h(&r, "access-control-allow-credentials"), Some("true"));
        assert_eq!(h(&r, "access-control-expose-headers"), Some("X-Total"));
        assert_eq!(h(&r, "vary"), Some("Accept-Encoding, Origin"));
        assert!(h(&r, "access-control-allow-methods").is_none());
        // Applying twice changes nothing.
        policy().apply(&req(&[("Origin", "http://localhost:3000")]), &mut r);
        assert_eq!(h(&r, "vary"), Some("Accept-Encoding, Origin"));
        assert_eq!(
            r.headers().get_all("access-control-allow-origin").count(),
            1
        );
    }

    #[test]
    fn apply_disallowed_or_missing_origin() {
        for headers in [req(&[("Origin", "https://evil.example")]), req(&[])] {
            let mut r = Response::text("x");
            policy().apply(&headers, &mut r);
            assert_eq!(h(&r, "vary"), Some("Origin"));
            assert!(r
                .headers()
                .iter()
                .all(|(n, _)| !n.starts_with("Access-Control")));
        }
    }

    #[test]
    fn vary_star_is_left_alone() {
        let mut r = Response::text("x").with_header("Vary", "*");
        policy().apply(&req(&[]), &mut r);
        assert_eq!(h(&r, "vary"), Some("*"));
    }

    #[test]
    fn any_origin_uses_star_without_credentials() {
        let cors = Cors::new().allow_any_origin().allow_credentials();
        let mut r = Response::text("x");
        cors.apply(&req(&[("Origin", "https://whoever.example")]), &mut r);
        assert_eq!(h(&r, "access-control-allow-origin"), Some("*"));
        assert!(h(&r, "access-control-allow-credentials").is_none());
        assert!(h(&r, "vary").is_none());
        let p = cors
            .preflight(&preflight_req("null"), Method::OPTIONS)
            .unwrap();
        assert_eq!(h(&p, "access-control-allow-origin"), Some("*"));
        assert_eq!(
            h(&p, "access-control-allow-methods"),
            Some("GET, HEAD, POST")
        );
        assert!(h(&p, "access-control-allow-headers").is_none());
        assert!(h(&p, "access-control-max-age").is_none());
        // An explicit origin switches back to a list.
        let cors = cors.allow_origin("https://a.example");
        assert!(!cors.is_origin_allowed("https://whoever.example"));
        assert!(cors.is_origin_allowed("https://A.example"));
    }

    #[test]
    fn mirror_requested_headers() {
        let cors = Cors::new()
            .allow_origin("https://a.example")
            .allow_any_header();
        let r = cors
            .preflight(&preflight_req("https://a.example"), Method::OPTIONS)
            .unwrap();
        assert_eq!(
            h(&r, "access-control-allow-headers"),
            Some("content-type, x-custom")
        );
        assert_eq!(
            h(&r, "vary"),
            Some("Origin, Access-Control-Request-Headers")
        );
        let bad = req(&[
            ("Origin", "https://a.example"),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "ok, bad header"),
        ]);
        let r = cors.preflight(&bad, Method::OPTIONS).unwrap();
        assert!(h(&r, "access-control-allow-headers").is_none());
        assert_eq!(
            h(&r, "access-control-allow-origin"),
            Some("https://a.example")
        );
    }

    #[test]
    fn default_allows_nothing() {
        let cors = Cors::default();
        assert!(!cors.is_origin_allowed("https://a.example"));
        let r = cors
            .preflight(&preflight_req("https://a.example"), Method::OPTIONS)
            .unwrap();
        assert!(h(&r, "access-control-allow-origin").is_none());
        let empty_methods = Cors::new()
            .allow_origin("https://a.example")
            .allow_methods(&[]);
        let r = empty_methods
            .preflight(&preflight_req("https://a.example"), Method::OPTIONS)
            .unwrap();
        assert!(h(&r, "access-control-allow-methods").is_none());
        assert!(h(&r, "access-control-allow-credentials").is_none());
    }
}
