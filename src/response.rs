//! Responses: text, bytes, JSON, redirects, files and chunked streams.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::path::Path;
use std::time::SystemTime;

use crate::error::HttpError;
use crate::headers::{is_valid_name, is_valid_value, Headers};
use crate::status::StatusCode;

/// What a handler answers with: a status, header fields and a body.
///
/// The server adds the framing headers itself (`Content-Length` or
/// `Transfer-Encoding`, `Connection`, `Date`), so a handler never has to; any it
/// sets are replaced. A body is never sent for `HEAD` requests or for statuses
/// that forbid one (1xx, 204, 304).
///
/// ```
/// use pollserve::{Response, StatusCode};
/// let r = Response::text("created")
///     .with_status(StatusCode::CREATED)
///     .with_header("X-Id", "42");
/// assert_eq!(r.status(), StatusCode::CREATED);
/// assert_eq!(r.headers().get("x-id"), Some("42"));
/// ```
pub struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: Headers,
    pub(crate) body: Body,
}

/// The body kinds a response can carry.
pub(crate) enum Body {
    Empty,
    Bytes(Cow<'static, [u8]>),
    /// Streamed from disk; validators and `Range` are applied by the server.
    File(FileSource),
    /// Several ranges of a file, as `multipart/byteranges` (made by the
    /// server from a `File` body and a `Range` request).
    FileRanges(Box<crate::files::MultipartRanges>),
    /// Sent with chunked transfer coding, one chunk per item.
    Stream(Box<dyn Iterator<Item = Vec<u8>>>),
    /// A `101` that switches the connection to WebSocket.
    Upgrade(Box<crate::ws::Upgrade>),
    /// An event stream the program writes to later (close-delimited).
    Sse(Box<crate::sse::SseOptions>),
    /// A byte stream the program pushes chunks to later.
    Push(Box<crate::stream::StreamOptions>),
}

/// An open file to stream, with what the server needs for `ETag`,
/// `Last-Modified` and `Range`.
pub(crate) struct FileSource {
    pub file: File,
    /// Offset of the first byte to send (a `Range` start).
    pub start: u64,
    pub len: u64,
    pub modified: Option<SystemTime>,
}

impl Response {
    /// An empty response with the given status.
    pub fn new(status: StatusCode) -> Response {
        Response {
            status,
            headers: Headers::new(),
            body: Body::Empty,
        }
    }

    /// `200 OK` with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<String>) -> Response {
        Response::bytes("text/plain; charset=utf-8", body.into().into_bytes())
    }

    /// `200 OK` with a `text/html; charset=utf-8` body.
    pub fn html(body: impl Into<String>) -> Response {
        Response::bytes("text/html; charset=utf-8", body.into().into_bytes())
    }

    /// `200 OK` with a body of the given content type.
    pub fn bytes(content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response::new(StatusCode::OK)
            .with_header("Content-Type", content_type)
            .with_body_cow(Cow::Owned(body.into()))
    }

    /// `200 OK` with a static body, sent without copying it into a buffer first.
    pub fn from_static(content_type: &str, body: &'static [u8]) -> Response {
        Response::new(StatusCode::OK)
            .with_header("Content-Type", content_type)
            .with_body_cow(Cow::Borrowed(body))
    }

    /// `200 OK` with `value` serialised as `application/json`.
    ///
    /// Fails with 500 only if `value` cannot be represented as JSON (a map with
    /// non-string keys, a failing `Serialize` impl).
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Response, HttpError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| HttpError::internal(format!("cannot serialise JSON response: {e}")))?;
        Ok(Response::bytes("application/json", body))
    }

    /// A redirect to `location`, chosen as `adafruit_httpserver` does: `302 Found` by
    /// default, `301` when `permanent`, and `307`/`308` when the client must
    /// repeat the same method and body (`preserve_method`).
    pub fn redirect(location: &str, permanent: bool, preserve_method: bool) -> Response {
        let status = match (permanent, preserve_method) {
            (false, false) => StatusCode::FOUND,
            (true, false) => StatusCode::MOVED_PERMANENTLY,
            (false, true) => StatusCode::TEMPORARY_REDIRECT,
            (true, true) => StatusCode::PERMANENT_REDIRECT,
        };
        Response::redirect_with_status(location, status)
    }

    /// A redirect to `location` with an explicit status (e.g. `303 See Other`).
    pub fn redirect_with_status(location: &str, status: StatusCode) -> Response {
        Response::new(status).with_header("Location", location)
    }

    /// `200 OK` streamed with chunked transfer coding: each item of `chunks` is
    /// sent as one chunk as the client reads (empty items are skipped). The
    /// iterator is pulled only while the connection can take more data, so a
    /// generator producing data on demand never fills memory.
    ///
    /// HTTP/1.0 clients get the same bytes unframed, ended by closing the connection.
    ///
    /// The iterator cannot wait for data that does not exist yet; a response
    /// fed from the program's loop later is a kept stream
    /// ([`Request::accept_stream`](crate::Request::accept_stream)).
    pub fn chunked<I>(content_type: &str, chunks: I) -> Response
    where
        I: IntoIterator + 'static,
        I::Item: Into<Vec<u8>>,
    {
        let mut r = Response::new(StatusCode::OK).with_header("Content-Type", content_type);
        r.body = Body::Stream(Box::new(chunks.into_iter().map(Into::into)));
        r
    }

    /// `200 OK` streaming the file at `path`, with a MIME type from its extension.
    ///
    /// The file is read piece by piece as the client takes it, never whole. The
    /// server adds `ETag` and `Last-Modified`, answers conditional requests with
    /// `304` and byte ranges with `206`/`416` (several ranges as
    /// `multipart/byteranges`). A missing file is a 404,
    /// an unreadable one a 403 and a directory a 404.
    pub fn file(path: impl AsRef<Path>) -> Result<Response, HttpError> {
        let path = path.as_ref();
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(HttpError::not_found());
        }
        let content_type = DEFAULT_MIME.for_path(path);
        Ok(Response::from_file(
            file,
            meta.len(),
            meta.modified().ok(),
            content_type,
        ))
    }

    pub(crate) fn from_file(
        file: File,
        len: u64,
        modified: Option<SystemTime>,
        content_type: &str,
    ) -> Response {
        let mut r = Response::new(StatusCode::OK);
        // Room for Content-Type, ETag, Last-Modified and Accept-Ranges (the
        // server adds them to every file response) without reallocating.
        r.headers = Headers::with_capacity(160 + content_type.len(), 6);
        r.set_header("Content-Type", content_type);
        r.body = Body::File(FileSource {
            file,
            start: 0,
            len,
            modified,
        });
        r
    }

    /// Sets `Content-Disposition` so browsers download the body as `filename`
    /// (non-ASCII names are encoded per RFC 6266/8187).
    pub fn as_attachment(self, filename: &str) -> Response {
        let value = crate::files::attachment_header(filename);
        self.with_header("Content-Disposition", &value)
    }

    /// Replaces the status.
    pub fn with_status(mut self, status: StatusCode) -> Response {
        self.status = status;
        self
    }

    /// Sets a header field, replacing any of the same name.
    ///
    /// A name that is not a token or a value holding CR, LF or NUL would let a
    /// caller inject header lines; such a field is not set and an error is logged.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.set_header(name, value);
        self
    }

    /// Adds a header field, keeping others of the same name (`Set-Cookie`).
    /// Invalid names and values are refused as in [`with_header`](Self::with_header).
    pub fn add_header(mut self, name: &str, value: &str) -> Response {
        if check_field(name, value) {
            self.headers.add(name, value);
        }
        self
    }

    /// Sets a header field in place; see [`with_header`](Self::with_header).
    pub fn set_header(&mut self, name: &str, value: &str) {
        if check_field(name, value) {
            self.headers.set(name, value);
        }
    }

    /// Adds a `Set-Cookie` header built with [`SetCookie`](crate::SetCookie).
    pub fn with_cookie(self, cookie: &crate::SetCookie) -> Response {
        self.add_header("Set-Cookie", &cookie.to_header_value())
    }

    /// Replaces the `Content-Type`.
    pub fn with_content_type(self, content_type: &str) -> Response {
        self.with_header("Content-Type", content_type)
    }

    fn with_body_cow(mut self, body: Cow<'static, [u8]>) -> Response {
        self.body = Body::Bytes(body);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The header fields set so far.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The body bytes, if the body is held in memory (not a file or a stream).
    pub fn body_bytes(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Empty => Some(&[]),
            Body::Bytes(b) => Some(b),
            Body::File(_)
            | Body::FileRanges(_)
            | Body::Stream(_)
            | Body::Upgrade(_)
            | Body::Sse(_)
            | Body::Push(_) => None,
        }
    }

    /// A plain-text error response for `status`, as the server sends for bad input.
    pub(crate) fn error(status: StatusCode, message: &str) -> Response {
        let mut r = Response::text(format!("{message}\n")).with_status(status);
        if status.forbids_body() {
            r.body = Body::Empty;
        }
        r
    }
}

/// The built-in MIME table, built once.
static DEFAULT_MIME: std::sync::LazyLock<crate::mime::MimeTypes> =
    std::sync::LazyLock::new(crate::mime::MimeTypes::default);

fn check_field(name: &str, value: &str) -> bool {
    let ok = is_valid_name(name) && is_valid_value(value);
    if !ok {
        log::error!("refusing invalid response header {name:?}: {value:?}");
    }
    ok
}

/// A file found by [`StaticRoot::resolve`](crate::files::StaticRoot::resolve),
/// streamed with its MIME type and validators.
impl From<crate::files::ResolvedFile> for Response {
    fn from(f: crate::files::ResolvedFile) -> Response {
        Response::from_file(f.file, f.len, Some(f.modified), &f.mime)
    }
}

impl From<HttpError> for Response {
    fn from(e: HttpError) -> Response {
        let mut r = Response::error(e.status, &e.message);
        for (name, value) in e.headers.iter() {
            r.headers.add(name, value);
        }
        r
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = match &self.body {
            Body::Empty => "empty".to_owned(),
            Body::Bytes(b) => format!("{} bytes", b.len()),
            Body::File(f) => format!("file of {} bytes", f.len),
            Body::FileRanges(m) => format!("{} bytes of file ranges", m.content_length()),
            Body::Stream(_) => "chunked stream".to_owned(),
            Body::Upgrade(_) => "WebSocket upgrade".to_owned(),
            Body::Sse(_) => "event stream".to_owned(),
            Body::Push(_) => "kept stream".to_owned(),
        };
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &body)
            .finish()
    }
}

/// Adds `ETag`/`Last-Modified`/`Accept-Ranges` to a file response and applies
/// the request's conditional and range headers: returns the body to send,
/// which is `body` itself, its single range, a `multipart/byteranges` body
/// of several ranges (`206`), or empty for a 304, 412 or 416. Any other
/// kind of body is returned as it is.
pub(crate) fn apply_file_validators(
    status: &mut StatusCode,
    headers: &mut Headers,
    body: Body,
    req: &Headers,
    method: Option<crate::method::Method>,
) -> Body {
    let Body::File(mut src) = body else {
        return body;
    };
    let Some(mtime) = src.modified else {
        return Body::File(src);
    };
    let mut etag_buf = [0u8; crate::files::ETAG_MAX];
    let etag = crate::files::etag_in(&mut etag_buf, src.len, mtime);
    headers.set("ETag", etag);
    let mut date_buf = [0u8; 29];
    headers.set(
        "Last-Modified",
        crate::files::http_date_in(&mut date_buf, mtime),
    );
    if *status != StatusCode::OK {
        return Body::File(src);
    }
    headers.set("Accept-Ranges", "bytes");
    let conditions = crate::files::Preconditions {
        if_match: req.get("If-Match"),
        if_none_match: req.get("If-None-Match"),
        if_modified_since: req.get("If-Modified-Since"),
        if_unmodified_since: req.get("If-Unmodified-Since"),
    };
    let get_or_head = matches!(
        method,
        Some(crate::method::Method::GET | crate::method::Method::HEAD)
    );
    match crate::files::evaluate_preconditions(get_or_head, &conditions, etag, mtime) {
        crate::files::Condition::Proceed => {}
        crate::files::Condition::NotModified => {
            *status = StatusCode::NOT_MODIFIED;
            return Body::Empty;
        }
        crate::files::Condition::PreconditionFailed => {
            *status = StatusCode::PRECONDITION_FAILED;
            headers.remove("Content-Type");
            return Body::Empty;
        }
    }
    if !get_or_head {
        return Body::File(src);
    }
    let decision =
        crate::files::parse_range(req.get("Range"), req.get("If-Range"), etag, mtime, src.len);
    if let Some(range) = decision.content_range(src.len) {
        headers.set("Content-Range", &range);
    }
    match decision {
        crate::files::RangeDecision::Full => Body::File(src),
        crate::files::RangeDecision::Partial {
            start,
            end_inclusive,
        } => {
            *status = StatusCode::PARTIAL_CONTENT;
            src.start = start;
            src.len = end_inclusive - start + 1;
            Body::File(src)
        }
        crate::files::RangeDecision::Multiple(ranges) => {
            // The response's Content-Type, already a valid value, labels
            // each part; the response itself becomes the multipart.
            let part_type = headers.get("Content-Type").map(str::to_owned);
            match crate::files::MultipartRanges::new(src.file, ranges, part_type.as_deref()) {
                Ok(multipart) => {
                    *status = StatusCode::PARTIAL_CONTENT;
                    headers.set("Content-Type", &multipart.content_type());
                    Body::FileRanges(Box::new(multipart))
                }
                Err(e) => {
                    log::error!("cannot send several ranges: {e}");
                    *status = StatusCode::INTERNAL_SERVER_ERROR;
                    headers.remove("Content-Type");
                    Body::Empty
                }
            }
        }
        crate::files::RangeDecision::Unsatisfiable => {
            *status = StatusCode::RANGE_NOT_SATISFIABLE;
            headers.remove("Content-Type");
            Body::Empty
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_statuses_follow_the_seed() {
        assert_eq!(
            Response::redirect("/a", false, false).status().as_u16(),
            302
        );
        assert_eq!(Response::redirect("/a", true, false).status().as_u16(), 301);
        assert_eq!(Response::redirect("/a", false, true).status().as_u16(), 307);
        assert_eq!(Response::redirect("/a", true, true).status().as_u16(), 308);
        assert_eq!(
            Response::redirect("/a", true, true)
                .headers()
                .get("location"),
            Some("/a")
        );
    }

    #[test]
    fn header_injection_is_refused() {
        let r = Response::text("x").with_header("X-A", "1\r\nSet-Cookie: evil=1");
        assert!(r.headers().get("x-a").is_none());
        let r = Response::text("x").with_header("Bad Name", "1");
        assert_eq!(r.headers().len(), 1);
    }

    #[test]
    fn json_body() {
        let r = Response::json(&serde_json::json!({"a": [1, 2]})).unwrap();
        assert_eq!(r.body_bytes(), Some(&b"{\"a\":[1,2]}"[..]));
        assert_eq!(r.headers().get("content-type"), Some("application/json"));
    }
}
