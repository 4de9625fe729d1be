//! The HTTP request/response cycle of a connection: a head arrives, one
//! [`Decision`] is taken, the body is read (into memory, into a sink, or
//! discarded) and the answer is queued.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use super::{Conn, OutBody, Phase, HIGH_WATER, INLINE_BODY};
use crate::files::FileBody;
use crate::method::Method;
use crate::proto::http::{
    check_body_length, parse_request_head, write_continue, write_response_head, BodyDecoder,
    BodyDelimiter, BodyFraming, HttpLimits, RequestHead, ResponseBody, ResponseContext,
};
use crate::request::BodyLimit;
use crate::response::{Body, Response};
use crate::router::{RouteId, Router};
use crate::server::console::server_log;
use crate::server::dispatch::{decide, serve_static, Decision};
use crate::server::routes::{RouteHandler, RouteKind};
use crate::server::shared::Shared;
use crate::status::StatusCode;

use super::{SseConn, StreamConn, WsConn};

impl Conn {
    /// Parses and answers as many buffered requests as the output bound allows.
    pub(super) fn process_input<S>(
        &mut self,
        routes: &mut Router<RouteHandler<S>>,
        shared: &mut Shared,
        state: &mut S,
        now: Instant,
    ) -> bool {
        let mut progress = false;
        while self.out.is_none() && self.pending_len() < HIGH_WATER && !self.rbuf.is_empty() {
            match self.phase {
                Phase::Head => {
                    if self.round_requests == 0 {
                        // Its share of requests this round is answered:
                        // the rest are parsed at the next poll.
                        self.more = true;
                        break;
                    }
                    self.request_start.get_or_insert(now);
                    match parse_request_head(
                        self.rbuf.data(),
                        &shared.config.limits,
                        &mut self.req.head,
                    ) {
                        Ok(None) => break,
                        Err(e) => {
                            self.rbuf.clear();
                            self.respond_error(e.status, e.reason, shared, now);
                            return true;
                        }
                        Ok(Some(n)) => {
                            progress = true;
                            self.round_requests -= 1;
                            self.rbuf.consume(n);
                            self.request_size = n;
                            if !self.start_request(routes, shared, state, now) {
                                return true;
                            }
                        }
                    }
                }
                Phase::Body => {
                    let Some(decoder) = self.decoder.as_mut() else {
                        self.phase = Phase::Head;
                        continue;
                    };
                    let limits = HttpLimits {
                        max_body_size: self.req.body_limit.bytes,
                        ..shared.config.limits
                    };
                    match decoder.decode(self.rbuf.data(), &mut self.req.body, &limits) {
                        Err(e) => {
                            self.rbuf.clear();
                            if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                                let reason = self.req.body_limit.exceeded();
                                self.respond_error(e.status, &reason, shared, now);
                            } else {
                                self.respond_error(e.status, e.reason, shared, now);
                            }
                            return true;
                        }
                        Ok((n, done)) => {
                            progress |= n > 0;
                            self.rbuf.consume(n);
                            self.request_size += n;
                            if let Err(response) = self.take_body_bytes() {
                                self.rbuf.clear();
                                self.decoder = None;
                                self.req.head.keep_alive = false;
                                self.respond(response, shared, now);
                                return true;
                            }
                            if done {
                                self.body_complete(routes, shared, state, now);
                            } else if n == 0 {
                                break;
                            }
                        }
                    }
                }
                Phase::Closing | Phase::Lingering(_) | Phase::Ws | Phase::Sse | Phase::Stream => {
                    break
                }
            }
        }
        // A body that completes with no bytes left (Content-Length reached at
        // the end of the buffer) is handled by the loop above; a head whose
        // body is all in flight waits here.
        if self.phase == Phase::Body && matches!(self.decoder, Some(BodyDecoder::Length(0))) {
            self.body_complete(routes, shared, state, now);
            progress = true;
        }
        progress
    }

    /// A request head is in: decides what answers it, then either answers
    /// at once or sets up reading the body. Returns false when the answer
    /// went out before the body, which stays unread (the connection closes).
    fn start_request<S>(
        &mut self,
        routes: &mut Router<RouteHandler<S>>,
        shared: &mut Shared,
        state: &mut S,
        now: Instant,
    ) -> bool {
        self.req.body.clear();
        self.req.exchange = self.req.exchange.wrapping_add(1);
        self.sink = None;
        let has_body = self.req.head.framing != BodyFraming::None;
        // The route may set its own limit when it is decided on.
        self.req.body_limit = BodyLimit::server(shared.config.limits.max_body_size);
        let mut decision = match self.https_redirect {
            Some(port) => Decision::Respond {
                response: https_redirect(&self.req, port),
                before_body: true,
            },
            None => decide(&mut self.req, routes, &shared.site),
        };
        if let (true, Decision::Route(id)) = (has_body, &decision) {
            // A streaming route takes its body through a sink opened now.
            if route_handler(routes, *id).is_some_and(|h| h.is_streaming()) {
                let opened = self.open_sink(routes, *id, state);
                self.req.outbox.take_into(&mut shared.commands);
                if let Err(response) = opened {
                    decision = Decision::Respond {
                        response,
                        before_body: true,
                    }
                }
            }
        }
        let early = has_body
            && matches!(
                decision,
                Decision::Respond {
                    before_body: true,
                    ..
                }
            );
        // A client waiting for `100 Continue` gets the decided answer; any
        // other learns first that its body is too large, if it is.
        if early && self.req.head.expect_continue {
            return self.answer_unread(decision, routes, shared, state, now);
        }
        if let Err(e) = check_body_length(self.req.head.framing, self.req.body_limit.bytes) {
            self.rbuf.clear();
            let reason = self.req.body_limit.exceeded();
            self.respond_error(e.status, &reason, shared, now);
            return false;
        }
        if early {
            return self.answer_unread(decision, routes, shared, state, now);
        }
        match BodyDecoder::new(self.req.head.framing) {
            None => self.answer(decision, routes, shared, state, now),
            Some(d) => {
                if self.req.head.expect_continue && self.rbuf.is_empty() {
                    write_continue(&mut self.wbuf);
                }
                self.decoder = Some(d);
                self.decision = Some(decision);
                self.body_start = now;
                self.phase = Phase::Body;
            }
        }
        true
    }

    /// Answers before the body, which stays unread: the connection closes
    /// after the answer. Returns false, as [`start_request`](Self::start_request)
    /// does then.
    fn answer_unread<S>(
        &mut self,
        decision: Decision,
        routes: &mut Router<RouteHandler<S>>,
        shared: &mut Shared,
        state: &mut S,
        now: Instant,
    ) -> bool {
        self.req.head.keep_alive = false;
        self.answer(decision, routes, shared, state, now);
        false
    }

    fn body_complete<S>(
        &mut self,
        routes: &mut Router<RouteHandler<S>>,
        shared: &mut Shared,
        state: &mut S,
        now: Instant,
    ) {
        self.decoder = None;
        match self.decision.take() {
            Some(decision) => self.answer(decision, routes, shared, state, now),
            None => self.phase = Phase::Head,
        }
    }

    /// Opens the sink of streaming route `id` for the current request; `Err`
    /// is the response refusing the request before its body is read.
    fn open_sink<S>(
        &mut self,
        routes: &mut Router<RouteHandler<S>>,
        id: RouteId,
        state: &mut S,
    ) -> Result<(), Response> {
        let Some(RouteKind::Streaming(open)) =
            routes.route_mut(id).map(|r| &mut r.handler_mut().kind)
        else {
            return Ok(());
        };
        let req = &self.req;
        match catch_unwind(AssertUnwindSafe(|| open(req, state))) {
            Ok(Ok(sink)) => {
                self.sink = Some(sink);
                Ok(())
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(panicked("body sink opener", req)),
        }
    }

    /// Moves decoded body bytes where the decision sends them: kept for a
    /// handler, handed to a sink, or dropped when the answer does not need
    /// them. `Err` is the sink's refusal, to be sent as the response.
    fn take_body_bytes(&mut self) -> Result<(), Response> {
        if self.req.body.is_empty() {
            return Ok(());
        }
        let Some(sink) = self.sink.as_mut() else {
            if !matches!(self.decision, Some(Decision::Route(_))) {
                self.req.body.clear();
            }
            return Ok(());
        };
        let body = &self.req.body;
        let result = catch_unwind(AssertUnwindSafe(|| sink.write(body)));
        self.req.body.clear();
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.sink = None;
                self.decision = None;
                Err(e.into())
            }
            Err(_) => {
                self.sink = None;
                self.decision = None;
                Err(panicked("body sink", &self.req))
            }
        }
    }

    /// Carries out the decision for a complete request and queues the answer.
    fn answer<S>(
        &mut self,
        decision: Decision,
        routes: &mut Router<RouteHandler<S>>,
        shared: &mut Shared,
        state: &mut S,
        now: Instant,
    ) {
        let response = match decision {
            Decision::Route(id) => {
                shared.activity.handled += 1;
                let response = self.run_route(routes, id, state);
                self.req.outbox.take_into(&mut shared.commands);
                response
            }
            Decision::Static(path) => match &shared.site.static_root {
                Some(root) => serve_static(root, &path, &self.req),
                None => Response::error(StatusCode::NOT_FOUND, "Not Found"),
            },
            Decision::Respond { response, .. } => response,
        };
        self.respond(response, shared, now);
    }

    /// Runs route `id` for the complete request: finishes its sink, or calls
    /// its handler. A panic becomes a `500`.
    fn run_route<S>(
        &mut self,
        routes: &mut Router<RouteHandler<S>>,
        id: RouteId,
        state: &mut S,
    ) -> Response {
        let req = &self.req;
        let (what, result) = match self.sink.take() {
            Some(sink) => (
                "body sink",
                catch_unwind(AssertUnwindSafe(|| sink.finish())),
            ),
            None => {
                let Some(handler) = routes.route_mut(id).map(|r| r.handler_mut()) else {
                    return Response::error(StatusCode::NOT_FOUND, "Not Found");
                };
                let result = catch_unwind(AssertUnwindSafe(|| match &mut handler.kind {
                    RouteKind::Buffered(h) => h(req, state),
                    // A streaming route reached without a body: open and
                    // finish its sink at once.
                    RouteKind::Streaming(open) => open(req, state)?.finish(),
                }));
                ("handler", result)
            }
        };
        match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => e.into(),
            Err(_) => panicked(what, req),
        }
    }

    /// Queues the answer to a request that was decided on: with the CORS
    /// headers the server adds to every such answer.
    fn respond(&mut self, mut response: Response, shared: &mut Shared, now: Instant) {
        if let Some(cors) = &shared.site.cors {
            cors.apply(&self.req.head.headers, &mut response);
        }
        self.write_response(response, shared, now);
    }

    /// Answers input that broke the protocol (or a timeout) and closes.
    pub(super) fn respond_error(
        &mut self,
        status: StatusCode,
        reason: &str,
        shared: &mut Shared,
        now: Instant,
    ) {
        self.decoder = None;
        self.decision = None;
        self.sink = None;
        self.req.head.keep_alive = false;
        let r = Response::error(status, reason);
        self.write_response(r, shared, now);
    }

    /// Serialises the head into the write buffer (the wire format is
    /// [`write_response_head`]'s) and queues the body.
    fn write_response(&mut self, response: Response, shared: &mut Shared, now: Instant) {
        let Response {
            mut status,
            mut headers,
            mut body,
        } = response;
        let head = &self.req.head;
        if matches!(body, Body::File(_)) {
            body = crate::response::apply_file_validators(
                &mut status,
                &mut headers,
                body,
                &head.headers,
                head.method,
            );
        }
        let kind = match &body {
            Body::Empty => ResponseBody::Empty,
            Body::Bytes(b) => ResponseBody::Length(b.len() as u64),
            Body::File(f) => ResponseBody::Length(f.len),
            Body::FileRanges(m) => ResponseBody::Length(m.content_length()),
            Body::Stream(_) | Body::Push(_) => ResponseBody::Stream,
            Body::Sse(_) => ResponseBody::EventStream,
            Body::Upgrade(_) => ResponseBody::Upgrade,
        };
        let cx = ResponseContext {
            version: head.version,
            head_request: head.method == Some(Method::HEAD),
            keep_alive: head.keep_alive && !shared.stopping,
        };
        let start = self.wbuf.len();
        // A redirect listener answers with its redirect alone: the
        // program's default headers (`Strict-Transport-Security` above
        // all, which RFC 6797 forbids over plain HTTP) are for the site.
        let no_defaults = crate::headers::Headers::default();
        let defaults = match self.https_redirect {
            Some(_) => &no_defaults,
            None => &shared.site.default_headers,
        };
        let framing = write_response_head(
            &mut self.wbuf,
            status,
            shared.date(),
            &headers,
            defaults,
            kind,
            cx,
        );
        let head_bytes = self.wbuf.len() - start;
        let mut keep_alive = framing.keep_alive;

        match &body {
            Body::Upgrade(upgrade) if framing.upgrade => {
                let upgrade = (**upgrade).clone();
                self.ws = Some(Box::new(WsConn::new(
                    upgrade.options,
                    upgrade.deflate,
                    &shared.inflate,
                    now,
                )));
            }
            Body::Sse(options) if framing.send_body => {
                self.sse = Some(Box::new(SseConn::new(
                    (**options).clone(),
                    self.req.exchange,
                )));
            }
            Body::Push(options) if framing.send_body => {
                self.stream = Some(Box::new(StreamConn::new(
                    (**options).clone(),
                    self.req.exchange,
                    framing.body == BodyDelimiter::Chunked,
                    framing.keep_alive,
                )));
            }
            _ => {}
        }
        if framing.send_body {
            match body {
                Body::Empty | Body::Upgrade(_) | Body::Sse(_) | Body::Push(_) => {}
                Body::Bytes(b) if b.len() <= INLINE_BODY => self.wbuf.extend_from_slice(&b),
                Body::Bytes(b) => self.out = Some(OutBody::Bytes(b, 0)),
                // A small file is read after the head: head and body leave
                // in one write, cheaper than a second syscall for sendfile.
                Body::File(f) if f.len <= INLINE_BODY as u64 => {
                    let want = f.len as usize;
                    let read = FileBody::new(f.file, f.start, f.len)
                        .and_then(|mut b| b.fill(&mut self.wbuf, want));
                    if !matches!(read, Ok(n) if n == want) {
                        // Truncated or unreadable: the length promised in
                        // the head cannot be met, so the connection ends.
                        server_log!(
                            shared.config.log_to_stderr,
                            Error,
                            "{}: file body short: {read:?} of {want} bytes",
                            self.peer
                        );
                        keep_alive = false;
                    }
                }
                Body::File(f) => match FileBody::new(f.file, f.start, f.len) {
                    Ok(b) => self.out = Some(OutBody::File(b)),
                    Err(e) => {
                        // The head promised a length; the body cannot follow.
                        server_log!(
                            shared.config.log_to_stderr,
                            Error,
                            "{}: cannot seek file: {e}",
                            self.peer
                        );
                        keep_alive = false;
                    }
                },
                Body::FileRanges(m) => self.out = Some(OutBody::Ranges(m)),
                Body::Stream(iter) => {
                    self.out = Some(OutBody::Stream {
                        iter,
                        chunked: framing.body == BodyDelimiter::Chunked,
                    })
                }
            }
        }
        let body_bytes = match framing.body {
            BodyDelimiter::Length(n) if framing.send_body => n,
            _ => 0,
        };

        let elapsed = self
            .request_start
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default();
        let target = &self.req.head.target;
        let path = target.split('?').next().unwrap_or("");
        server_log!(
            shared.config.log_to_stderr,
            target: "pollserve::access",
            Info,
            "{} -- \"{} {}\" {} -- \"{} {}\" {} -- {}ms",
            self.req.client_ip,
            self.req.head.method.map(|m| m.as_str()).unwrap_or("-"),
            path,
            self.request_size,
            status.as_u16(),
            status.reason(),
            head_bytes as u64 + body_bytes,
            elapsed.as_millis()
        );
        shared.activity.responses += 1;
        // A proxy reuses its connection for other clients' requests.
        self.req.client_ip = self.peer.ip();
        self.request_start = None;
        self.request_size = 0;
        self.phase = if self.sse.is_some() || self.ws.is_some() {
            // The HTTP request buffers are not needed any more.
            self.req.body = Vec::new();
            self.req.head = RequestHead::default();
            if self.sse.is_some() {
                Phase::Sse
            } else {
                Phase::Ws
            }
        } else if keep_alive || self.stream.is_some() {
            // Between requests a connection keeps the allocations of the
            // last one for the next, unless they were large: an idle
            // keep-alive connection (or one held by a long stream) must
            // not pin a 20 MB body or a 30 KB head it received once.
            if self.req.body.capacity() > KEEP_BODY_CAPACITY {
                self.req.body = Vec::new();
            }
            if self.req.head.head_len > KEEP_HEAD_SIZE {
                self.req.head = RequestHead::default();
                self.req.path = String::new();
                self.req.query = Default::default();
            }
            if self.stream.is_some() {
                Phase::Stream
            } else {
                Phase::Head
            }
        } else {
            Phase::Closing
        };
    }
}

/// Largest request-body allocation kept for the next request.
const KEEP_BODY_CAPACITY: usize = 16 * 1024;
/// A request head larger than this is not kept for the next request.
const KEEP_HEAD_SIZE: usize = 2 * 1024;

/// The answer of a redirect listener: the same host and target on HTTPS
/// port `port`; `301` for `GET`/`HEAD`, `308` (method and body kept) else.
fn https_redirect(req: &crate::request::Request, port: u16) -> Response {
    let Some(host) = req.header("host").filter(|h| !h.is_empty()) else {
        return Response::error(
            StatusCode::BAD_REQUEST,
            "A Host header is needed to redirect to HTTPS",
        );
    };
    // The host without its port: `[v6]:port` or `name:port`. Only a valid
    // URI host is copied into `Location` (RFC 3986 §3.2.2).
    let Some(name) = host_name(host) else {
        return Response::error(StatusCode::BAD_REQUEST, "Invalid Host header");
    };
    let target = &req.head.target;
    let target = if target.starts_with('/') {
        target.as_str()
    } else {
        "/"
    };
    let location = if port == 443 {
        format!("https://{name}{target}")
    } else {
        format!("https://{name}:{port}{target}")
    };
    let keeps_method = !matches!(req.method(), Method::GET | Method::HEAD);
    Response::redirect(&location, true, keeps_method)
}

/// The host part of a `Host` value (`name`, `name:port`, `[v6]` or
/// `[v6]:port`), if it is a valid URI host: a registered name (letters,
/// digits, `-`, `.`, `_`, `~`), an IPv4 address, or an IPv6 literal; and a
/// port, if any, of digits only.
fn host_name(host: &str) -> Option<&str> {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let end = rest.find(']')?;
            rest[..end].parse::<std::net::Ipv6Addr>().ok()?;
            (&host[..end + 2], &rest[end + 1..])
        }
        None => match host.split_once(':') {
            Some((name, port)) => (name, host.get(name.len()..).unwrap_or(port)),
            None => (host, ""),
        },
    };
    let port_ok = match port.strip_prefix(':') {
        Some(digits) => digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()),
        None => port.is_empty(),
    };
    let name_ok = name.starts_with('[')
        || (!name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')));
    (port_ok && name_ok).then_some(name)
}

/// The handler registered under `id`.
fn route_handler<S>(routes: &Router<RouteHandler<S>>, id: RouteId) -> Option<&RouteHandler<S>> {
    routes.route(id).map(|r| r.handler())
}

/// The 500 for user code that panicked (the panic message itself went to
/// stderr through the panic hook).
fn panicked(what: &str, req: &crate::request::Request) -> Response {
    let path = req.head.target.split('?').next().unwrap_or("");
    log::error!("{what} for {} {path} panicked", req.method());
    Response::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn only_a_valid_uri_host_is_taken_from_host() {
        for (host, name) in [
            ("example.com", "example.com"),
            ("example.com:8080", "example.com"),
            ("127.0.0.1:80", "127.0.0.1"),
            ("[::1]", "[::1]"),
            ("[::1]:8443", "[::1]"),
            ("a-b_c~d.local", "a-b_c~d.local"),
        ] {
            assert_eq!(host_name(host), Some(name), "{host}");
        }
        for host in [
            "evil.com/x",
            "a b",
            "user@evil.com",
            "x\"<y",
            "example.com:80x",
            ":80",
            "[::1",
            "[not-v6]",
            "[::1]x",
            "host:1:2",
            "h\u{e9}",
        ] {
            assert_eq!(host_name(host), None, "{host}");
        }
    }
}
