//! Deciding what answers a request, once, when its head is complete.
//!
//! [`decide`] finds the client's address (through trusted proxies), then
//! runs, in order: the CORS preflight, server-wide authentication,
//! `OPTIONS *`, the route match with the route's own authentication and
//! body limit, and the static-file root.
//! The connection stores the [`Decision`]; reading the body, sending
//! `100 Continue` or not, and calling the handler all follow from it, so no
//! request is routed, authenticated or checked against CORS twice.

use crate::files::{self, FileError, Resolved, StaticRoot};
use crate::method::Method;
use crate::proto::http::BodyFraming;
use crate::request::{BodyLimit, Request};
use crate::response::Response;
use crate::router::{allow_header_value, RouteId, RouteMatch, Router};
use crate::status::StatusCode;
use crate::url::{decode_path, split_target, DecodedPath, QueryParams};

use super::routes::RouteHandler;
use super::shared::Site;

/// What answers a request whose head has arrived.
pub(crate) enum Decision {
    /// This route's handler (or body sink) answers.
    Route(RouteId),
    /// The static-file root answers a `GET`/`HEAD` no route matched.
    Static(DecodedPath),
    /// The answer is known from the head alone.
    Respond {
        response: Response,
        /// Send it before reading the body, then close the connection: the
        /// client waits for `100 Continue`, its body is large or of unknown
        /// length, or it was meant for a streaming route (which may be huge)
        /// the client may not use. Otherwise the small body is read and
        /// discarded first, so the connection can be kept alive.
        before_body: bool,
    },
}

/// Largest body read (and dropped) after a refusal decided from the head,
/// to keep the connection; a larger one is refused unread and the
/// connection closes, so a refused client cannot make the server read
/// (or wait for) a large upload.
const DISCARD_LIMIT: u64 = 64 * 1024;

impl Decision {
    fn respond(response: Response, before_body: bool) -> Decision {
        Decision::Respond {
            response,
            before_body,
        }
    }
}

/// Decides what answers the request whose head is in `req`, filling in its
/// decoded path, query and route parameters on the way, and its body limit
/// when the route sets one (`req.body_limit` holds the server's before).
/// Looks the route up at most once.
pub(crate) fn decide<S>(
    req: &mut Request,
    routes: &Router<RouteHandler<S>>,
    site: &Site,
) -> Decision {
    req.client_ip = site.proxies.client_ip(req.peer.ip(), &req.head.headers);
    let method = req.method();
    let headers = &req.head.headers;
    // A final answer known now goes out before the body when the client
    // waits for `100 Continue` (it gets the answer instead), or when the
    // body is too large to be worth reading just to keep the connection.
    let waiting = req.head.expect_continue
        || match req.head.framing {
            BodyFraming::None => false,
            BodyFraming::Length(n) => n > DISCARD_LIMIT,
            BodyFraming::Chunked => true,
        };
    // Preflights come without credentials, so they are answered first.
    if let Some(r) = site
        .cors
        .as_ref()
        .and_then(|c| c.preflight(headers, method))
    {
        return Decision::respond(r, waiting);
    }
    let unauthorized = site.auth.as_ref().filter(|a| !a.check(headers));
    if unauthorized.is_none() && req.head.target == "*" {
        // `OPTIONS *` asks about the server as a whole (RFC 9110 §9.3.7).
        let mut r = Response::new(StatusCode::OK);
        r.set_header("Allow", &allow_header_value(u16::MAX));
        return Decision::respond(r, waiting);
    }
    let (raw_path, query) = split_target(&req.head.target);
    let decoded = match decode_path(raw_path) {
        Ok(d) => d,
        Err(e) => {
            let r = match unauthorized {
                Some(auth) => auth.unauthorized(),
                None => Response::error(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid request path: {e}"),
                ),
            };
            return Decision::respond(r, waiting);
        }
    };
    if let Some(auth) = unauthorized {
        // A body meant for a streaming route is refused unread whatever its
        // size; that is the one case needing the route.
        let early = waiting
            || (req.head.framing != BodyFraming::None
                && matches!(
                    routes.find(method, decoded.segments(), decoded.trailing_slash()),
                    RouteMatch::Found { handler, .. } if handler.is_streaming()
                ));
        return Decision::respond(auth.unauthorized(), early);
    }
    req.path = decoded.path();
    req.query = QueryParams::parse(query.unwrap_or(""));
    req.params.clear();
    match routes.find(method, decoded.segments(), decoded.trailing_slash()) {
        RouteMatch::Found {
            id,
            params,
            handler,
        } => {
            // The route's limit holds for a refusal too: a body it would
            // take gets the 401, not a 413 from the server's limit.
            if let Some(bytes) = handler.max_body {
                req.body_limit = BodyLimit::route(bytes);
            }
            if let Some(auth) = handler
                .auth
                .as_ref()
                .filter(|a| !a.check(&req.head.headers))
            {
                // As for server-wide authentication: a streaming route's
                // body may be huge, so it is refused unread.
                let early =
                    waiting || (req.head.framing != BodyFraming::None && handler.is_streaming());
                return Decision::respond(auth.unauthorized(), early);
            }
            for (name, value) in params.iter() {
                req.params.push(name, value);
            }
            Decision::Route(id)
        }
        RouteMatch::MethodNotAllowed { allow } => {
            Decision::respond(method_not_allowed(&allow_header_value(allow)), waiting)
        }
        RouteMatch::NotFound => match (&site.static_root, method) {
            (Some(_), Method::GET | Method::HEAD) => Decision::Static(decoded),
            // Another method on something the static root serves: the
            // resource exists but only answers GET and HEAD.
            (Some(root), _) if served_statically(root, &files::segments_of(&decoded)) => {
                Decision::respond(method_not_allowed("GET, HEAD"), waiting)
            }
            _ => Decision::respond(Response::error(StatusCode::NOT_FOUND, "Not Found"), waiting),
        },
    }
}

/// `405 Method Not Allowed` listing the methods the resource answers.
fn method_not_allowed(allow: &str) -> Response {
    let mut r = Response::error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    r.set_header("Allow", allow);
    r
}

/// Whether a GET of this path would be answered from the static root (a
/// file, a directory redirect, or a listing), so another method gets 405.
fn served_statically(root: &StaticRoot, segments: &[&str]) -> bool {
    match root.resolve_entry(segments) {
        Ok(Resolved::File(_)) | Err(FileError::Redirect(_)) => true,
        Ok(Resolved::Directory(_)) => root.listing(),
        Err(_) => false,
    }
}

/// Answers a GET/HEAD that no route matched from the static-file root: the
/// file, a listing, a directory redirect, or the error status.
pub(crate) fn serve_static(root: &StaticRoot, path: &DecodedPath, req: &Request) -> Response {
    match root.resolve_entry(&files::segments_of(path)) {
        Ok(Resolved::File(f)) => f.into(),
        Ok(Resolved::Directory(dir)) if root.listing() => {
            let sort = req.query().get("sort").unwrap_or("name");
            match root.directory_listing(&dir, req.path(), sort) {
                Ok(page) => Response::html(page),
                Err(e) => {
                    log::error!("listing {}: {e}", dir.display());
                    Response::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                }
            }
        }
        Ok(Resolved::Directory(_)) | Err(FileError::NotFound) => {
            Response::error(StatusCode::NOT_FOUND, "Not Found")
        }
        Err(FileError::Redirect(mut location)) => {
            // `/docs?page=2` goes to `docs/?page=2`: the query survives.
            if let Some(query) = req.query_string() {
                location.push('?');
                location.push_str(query);
            }
            Response::redirect_with_status(&location, StatusCode::MOVED_PERMANENTLY)
        }
        Err(FileError::Forbidden) => Response::error(StatusCode::FORBIDDEN, "Forbidden"),
        Err(FileError::Io(e)) => {
            log::error!("static file {}: {e}", req.path());
            Response::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Authentication;
    use crate::cors::Cors;
    use crate::proto::http::{parse_request_head, HttpLimits, RequestHead};
    use crate::request::{ConnId, RouteParams};
    use crate::server::routes::Route;

    type Routes = Router<RouteHandler<()>>;

    fn request(raw: &str) -> Request {
        let mut head = RequestHead::default();
        let n = parse_request_head(raw.as_bytes(), &HttpLimits::default(), &mut head)
            .expect("valid head")
            .expect("complete head");
        assert_eq!(n, raw.len());
        Request {
            head,
            path: String::new(),
            query: QueryParams::default(),
            params: RouteParams::default(),
            body: Vec::new(),
            peer: "127.0.0.1:1".parse().unwrap(),
            client_ip: "127.0.0.1".parse().unwrap(),
            tls: false,
            conn: ConnId {
                slot: 0,
                generation: 0,
            },
            outbox: Default::default(),
            body_limit: BodyLimit::default(),
            exchange: 0,
        }
    }

    fn routes() -> Routes {
        let mut r = Routes::new();
        for route in [
            Route::new("/item/<id>", Method::GET, |_, _| Ok(Response::text("x"))),
            Route::streaming("/upload", Method::POST, 1 << 30, |_, _| {
                Err(crate::HttpError::forbidden())
            }),
            Route::new("/form", Method::POST, |_, _| Ok(Response::text("x"))),
            Route::new("/private", Method::POST, |_, _| Ok(Response::text("x")))
                .require_authentication(Authentication::new("r").basic("u", "p"))
                .max_body_size(10),
            Route::streaming("/private-up", Method::POST, 1 << 30, |_, _| {
                Err(crate::HttpError::forbidden())
            })
            .require_authentication(Authentication::new("r").basic("u", "p")),
            Route::new("/big", Method::POST, |_, _| Ok(Response::text("x")))
                .max_body_size(32 << 20),
        ] {
            r.add(
                &route.pattern,
                route.methods,
                route.append_slash,
                route.handler,
            )
            .unwrap();
        }
        r
    }

    fn respond(d: Decision) -> (u16, bool, Response) {
        match d {
            Decision::Respond {
                response,
                before_body,
            } => (response.status().as_u16(), before_body, response),
            Decision::Route(id) => panic!("routed to {id:?}"),
            Decision::Static(p) => panic!("static {:?}", p.path()),
        }
    }

    const BODY: &str = "Content-Length: 3\r\n";
    const EXPECT: &str = "Content-Length: 3\r\nExpect: 100-continue\r\n";

    #[test]
    fn a_route_is_found_once_and_fills_the_request() {
        let routes = routes();
        let mut req = request("GET /item/a%20b?x=1&x=2 HTTP/1.1\r\nHost: t\r\n\r\n");
        let d = decide(&mut req, &routes, &Site::default());
        assert!(matches!(d, Decision::Route(id) if id.index() == 0));
        assert_eq!(req.param("id"), Some("a b"));
        assert_eq!(req.path(), "/item/a b");
        assert_eq!(req.query().get_all("x").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(routes.lookups.get(), 1);
    }

    #[test]
    fn unknown_paths_and_methods_get_404_and_405_before_the_body_only_for_a_waiting_client() {
        let routes = routes();
        for (extra, early) in [("", false), (BODY, false), (EXPECT, true)] {
            let mut req = request(&format!("POST /nowhere HTTP/1.1\r\nHost: t\r\n{extra}\r\n"));
            let (status, before_body, _) = respond(decide(&mut req, &routes, &Site::default()));
            assert_eq!((status, before_body), (404, early), "{extra:?}");
            let mut req = request(&format!("PUT /item/7 HTTP/1.1\r\nHost: t\r\n{extra}\r\n"));
            let (status, before_body, r) = respond(decide(&mut req, &routes, &Site::default()));
            assert_eq!((status, before_body), (405, early), "{extra:?}");
            assert_eq!(r.headers().get("allow"), Some("GET, HEAD"));
        }
        assert_eq!(routes.lookups.get(), 6);
    }

    #[test]
    fn a_large_or_unsized_body_is_refused_unread() {
        let routes = routes();
        for (framing, early) in [
            ("Content-Length: 65536\r\n", false),
            ("Content-Length: 65537\r\n", true),
            ("Content-Length: 99999999999\r\n", true),
            ("Transfer-Encoding: chunked\r\n", true),
        ] {
            let mut req = request(&format!(
                "POST /nowhere HTTP/1.1\r\nHost: t\r\n{framing}\r\n"
            ));
            let (status, before_body, _) = respond(decide(&mut req, &routes, &Site::default()));
            assert_eq!((status, before_body), (404, early), "{framing:?}");
        }
    }

    #[test]
    fn missing_credentials_are_refused_with_at_most_one_lookup() {
        let routes = routes();
        let site = Site {
            auth: Some(Authentication::new("r").basic("u", "p")),
            ..Site::default()
        };
        // (request, 401 before the body?, route lookups made)
        let cases = [
            (
                "GET /item/1 HTTP/1.1\r\nHost: t\r\n\r\n".to_owned(),
                false,
                0,
            ),
            (
                format!("POST /form HTTP/1.1\r\nHost: t\r\n{BODY}\r\n"),
                false,
                1,
            ),
            (
                format!("POST /form HTTP/1.1\r\nHost: t\r\n{EXPECT}\r\n"),
                true,
                0,
            ),
            // A streaming route's body may be huge: refused unread.
            (
                format!("POST /upload HTTP/1.1\r\nHost: t\r\n{BODY}\r\n"),
                true,
                1,
            ),
            ("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n".to_owned(), false, 0),
            (
                "GET /%2e%2e/%00 HTTP/1.1\r\nHost: t\r\n\r\n".to_owned(),
                false,
                0,
            ),
        ];
        for (raw, early, lookups) in cases {
            let before = routes.lookups.get();
            let mut req = request(&raw);
            let (status, before_body, r) = respond(decide(&mut req, &routes, &site));
            assert_eq!((status, before_body), (401, early), "{raw:?}");
            assert!(r.headers().get("www-authenticate").is_some());
            assert_eq!(routes.lookups.get() - before, lookups, "{raw:?}");
        }
        // With credentials: routed.
        let mut req =
            request("GET /item/1 HTTP/1.1\r\nHost: t\r\nAuthorization: Basic dTpw\r\n\r\n");
        assert!(matches!(
            decide(&mut req, &routes, &site),
            Decision::Route(_)
        ));
    }

    #[test]
    fn a_route_s_authentication_is_checked_at_the_head_with_one_lookup() {
        let routes = routes();
        // (request, 401 before the body?)
        let cases = [
            (
                "POST /private HTTP/1.1\r\nHost: t\r\n\r\n".to_owned(),
                false,
            ),
            // A small body is read and dropped to keep the connection...
            (
                format!("POST /private HTTP/1.1\r\nHost: t\r\n{BODY}\r\n"),
                false,
            ),
            // ...unless the client waits for `100 Continue`: it gets the 401.
            (
                format!("POST /private HTTP/1.1\r\nHost: t\r\n{EXPECT}\r\n"),
                true,
            ),
            (
                "POST /private HTTP/1.1\r\nHost: t\r\nContent-Length: 65537\r\n\r\n"
                    .to_owned(),
                true,
            ),
            // A streaming route's body is never read.
            (
                format!("POST /private-up HTTP/1.1\r\nHost: t\r\n{BODY}\r\n"),
                true,
            ),
            (
                format!(
                    "POST /private-up HTTP/1.1\r\nHost: t\r\n{EXPECT}Authorization: Basic dTpx\r\n\r\n"
                ),
                true,
            ),
        ];
        for (raw, early) in cases {
            let before = routes.lookups.get();
            let mut req = request(&raw);
            let (status, before_body, r) = respond(decide(&mut req, &routes, &Site::default()));
            assert_eq!((status, before_body), (401, early), "{raw:?}");
            assert_eq!(
                r.headers().get("www-authenticate"),
                Some(r#"Basic realm="r", charset="UTF-8""#)
            );
            assert_eq!(routes.lookups.get() - before, 1, "{raw:?}");
            assert!(req.params().is_empty());
        }
        for path in ["/private", "/private-up"] {
            let mut req = request(&format!(
                "POST {path} HTTP/1.1\r\nHost: t\r\n{EXPECT}Authorization: Basic dTpw\r\n\r\n"
            ));
            assert!(
                matches!(
                    decide(&mut req, &routes, &Site::default()),
                    Decision::Route(_)
                ),
                "{path}"
            );
        }
        // Server-wide and route credentials must both pass.
        let site = Site {
            auth: Some(Authentication::new("site").bearer("t")),
            ..Site::default()
        };
        let mut req =
            request("POST /private HTTP/1.1\r\nHost: t\r\nAuthorization: Basic dTpw\r\n\r\n");
        let (status, _, r) = respond(decide(&mut req, &routes, &site));
        assert_eq!(status, 401);
        assert_eq!(
            r.headers().get("www-authenticate"),
            Some(r#"Bearer realm="site""#)
        );
    }

    #[test]
    fn a_route_s_body_limit_is_set_when_it_is_decided_on() {
        let routes = routes();
        let server = BodyLimit::server(1 << 20);
        for (path, want) in [
            ("/form", server),
            ("/big", BodyLimit::route(32 << 20)),
            ("/upload", BodyLimit::route(1 << 30)),
            ("/nowhere", server),
            // Refused for want of credentials, under the route's limit.
            ("/private", BodyLimit::route(10)),
        ] {
            let mut req = request(&format!("POST {path} HTTP/1.1\r\nHost: t\r\n{BODY}\r\n"));
            req.body_limit = server;
            decide(&mut req, &routes, &Site::default());
            assert_eq!(req.body_limit, want, "{path}");
        }
        assert_eq!(
            BodyLimit::server(1048576).exceeded(),
            "request body exceeds 1048576 bytes \
             (ServerConfig::max_body_size; a route can set Route::max_body_size)"
        );
        assert_eq!(
            BodyLimit::route(10).exceeded(),
            "request body exceeds 10 bytes (this route's Route::max_body_size)"
        );
    }

    #[test]
    fn preflights_come_before_authentication_and_never_reach_the_router() {
        let routes = routes();
        let site = Site {
            auth: Some(Authentication::new("r").basic("u", "p")),
            cors: Some(Cors::new().allow_origin("http://a.example")),
            ..Site::default()
        };
        let mut req = request(
            "OPTIONS /form HTTP/1.1\r\nHost: t\r\nOrigin: http://a.example\r\n\
             Access-Control-Request-Method: POST\r\n\r\n",
        );
        let (status, _, r) = respond(decide(&mut req, &routes, &site));
        assert!(status == 204 || status == 200, "{status}");
        assert_eq!(
            r.headers().get("access-control-allow-origin"),
            Some("http://a.example")
        );
        assert_eq!(routes.lookups.get(), 0);
    }

    #[test]
    fn options_star_and_undecodable_paths() {
        let routes = routes();
        let mut req = request("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
        let (status, _, r) = respond(decide(&mut req, &routes, &Site::default()));
        assert_eq!(status, 200);
        assert!(r.headers().get("allow").unwrap().contains("GET"));
        let mut req = request("GET /a%ff HTTP/1.1\r\nHost: t\r\n\r\n");
        let (status, _, r) = respond(decide(&mut req, &routes, &Site::default()));
        assert_eq!(status, 400);
        let body = String::from_utf8_lossy(r.body_bytes().unwrap()).into_owned();
        assert!(body.contains("invalid request path"), "{body}");
        assert_eq!(routes.lookups.get(), 0);
    }

    #[test]
    fn the_client_address_comes_from_trusted_proxies_only() {
        let routes = routes();
        let raw = "GET /item/1 HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.5\r\n\r\n";
        let mut req = request(raw);
        decide(&mut req, &routes, &Site::default());
        assert_eq!(req.client_ip().to_string(), "127.0.0.1");
        let site = Site {
            proxies: crate::forwarded::TrustedProxies::loopback(),
            ..Site::default()
        };
        let mut req = request(raw);
        decide(&mut req, &routes, &site);
        assert_eq!(req.client_ip().to_string(), "203.0.113.5");
        assert_eq!(req.client_addr().to_string(), "127.0.0.1:1");
    }

    #[test]
    fn static_files_answer_get_and_head_and_405_other_methods() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("page.html"), "hi").unwrap();
        let site = Site {
            static_root: Some(StaticRoot::new(dir.path()).unwrap()),
            ..Site::default()
        };
        let routes = routes();
        for method in ["GET", "HEAD"] {
            let mut req = request(&format!("{method} /page.html HTTP/1.1\r\nHost: t\r\n\r\n"));
            match decide(&mut req, &routes, &site) {
                Decision::Static(p) => assert_eq!(p.path(), "/page.html"),
                _ => panic!("{method} not static"),
            }
        }
        let mut req = request(&format!(
            "POST /page.html HTTP/1.1\r\nHost: t\r\n{EXPECT}\r\n"
        ));
        let (status, before_body, r) = respond(decide(&mut req, &routes, &site));
        assert_eq!((status, before_body), (405, true));
        assert_eq!(r.headers().get("allow"), Some("GET, HEAD"));
        let mut req = request("DELETE /missing HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(respond(decide(&mut req, &routes, &site)).0, 404);
    }
}
