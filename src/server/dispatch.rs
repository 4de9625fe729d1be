//! Deciding what answers a request, once, when its head is complete.
//!
//! [`decide`] runs, in order: the CORS preflight, server-wide
//! authentication, `OPTIONS *`, the route match, and the static-file root.
//! The connection stores the [`Decision`]; reading the body, sending
//! `100 Continue` or not, and calling the handler all follow from it, so no
//! request is routed, authenticated or checked against CORS twice.

use crate::files::{self, FileError, Resolved, StaticRoot};
use crate::method::Method;
use crate::proto::http::BodyFraming;
use crate::request::Request;
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
        /// client waits for `100 Continue`, or its body was meant for a
        /// streaming route (which may be huge) it is not allowed to use.
        /// Otherwise the body is read and discarded first, so the
        /// connection can be kept alive.
        before_body: bool,
    },
}

impl Decision {
    fn respond(response: Response, before_body: bool) -> Decision {
        Decision::Respond {
            response,
            before_body,
        }
    }
}

/// Decides what answers the request whose head is in `req`, filling in its
/// decoded path, query and route parameters on the way. Looks the route up
/// at most once.
pub(crate) fn decide<S>(
    req: &mut Request,
    routes: &Router<RouteHandler<S>>,
    site: &Site,
) -> Decision {
    let method = req.method();
    let headers = &req.head.headers;
    // A client waiting for `100 Continue` gets any final answer instead.
    let waiting = req.head.expect_continue;
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
        // Only a body meant for a streaming route is refused unread without
        // the client asking; that is the one case needing the route.
        let early = waiting
            || (req.head.framing != BodyFraming::None
                && matches!(
                    routes.find(method, decoded.segments(), decoded.trailing_slash()),
                    RouteMatch::Found {
                        handler: RouteHandler::Streaming { .. },
                        ..
                    }
                ));
        return Decision::respond(auth.unauthorized(), early);
    }
    req.path = decoded.path();
    req.query = QueryParams::parse(query.unwrap_or(""));
    req.params.clear();
    match routes.find(method, decoded.segments(), decoded.trailing_slash()) {
        RouteMatch::Found { id, params, .. } => {
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
