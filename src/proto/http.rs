//! HTTP/1.1 request heads and body framing (RFC 9112).

use std::mem::MaybeUninit;

use crate::headers::Headers;
use crate::method::Method;
use crate::status::StatusCode;

/// Size limits applied while reading a request. Every limit answers with its own
/// status code so a client can tell what it did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest request line (method, target and version) in bytes, answered with
    /// `414 URI Too Long` when exceeded. Default 8 KiB, nginx's
    /// `large_client_header_buffers` size.
    pub max_request_line: usize,
    /// Largest request head (request line and all header fields) in bytes, also
    /// the bound on chunked trailers. `431 Request Header Fields Too Large` when
    /// exceeded. Default 32 KiB (nginx: 4 × 8 KiB).
    pub max_head_size: usize,
    /// Most header fields in one request, `431` when exceeded. Default 100, as hyper.
    pub max_headers: usize,
    /// Largest request body in bytes, `413 Content Too Large` when exceeded.
    /// Default 1 MiB, nginx's `client_max_body_size`.
    pub max_body_size: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_request_line: 8 * 1024,
            max_head_size: 32 * 1024,
            max_headers: 100,
            max_body_size: 1024 * 1024,
        }
    }
}

/// The HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Version {
    /// HTTP/1.0: the connection closes after each response unless the client asks
    /// for `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: connections persist unless either side sends `Connection: close`.
    #[default]
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFraming {
    /// No body.
    #[default]
    None,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why a request was refused: the status to answer with and a short
/// explanation that goes into the response body and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct ParseError {
    /// The status code to answer with.
    pub status: StatusCode,
    /// What was wrong, for people.
    pub reason: &'static str,
}

fn err(status: StatusCode, reason: &'static str) -> ParseError {
    ParseError { status, reason }
}

fn bad(reason: &'static str) -> ParseError {
    err(StatusCode::BAD_REQUEST, reason)
}

/// A parsed and validated request head.
///
/// Reused between requests on a connection: [`parse_request_head`] overwrites
/// every field and keeps the string capacity.
#[derive(Debug, Clone, Default)]
pub struct RequestHead {
    /// The request method.
    pub method: Option<Method>,
    /// The request target as sent, in origin form (`/path?query`); an
    /// absolute-form target (`http://host/path`) is reduced to its path and query.
    pub target: String,
    /// The protocol version.
    pub version: Version,
    /// Every header field, in order.
    pub headers: Headers,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// Whether the connection may be reused after the response.
    pub keep_alive: bool,
    /// Whether the client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// Bytes the head occupied on the wire.
    pub head_len: usize,
}

/// Header slots kept on the stack; a configured `max_headers` above this uses the heap.
const STACK_HEADERS: usize = 128;

/// Parses one request head from the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, `Ok(Some(len))` with the head's
/// length once it is complete (the body, if any, starts at `buf[len..]`), or the
/// status to answer with. Leading empty lines are skipped (RFC 9112 §2.2), up
/// to `max_request_line` bytes of them; more are refused with `400`.
pub fn parse_request_head(
    buf: &[u8],
    limits: &HttpLimits,
    head: &mut RequestHead,
) -> Result<Option<usize>, ParseError> {
    // Empty lines before the request line are bounded like the line itself: a
    // client sending nothing but CRLF would otherwise be buffered without end,
    // and the whole buffer rescanned on every read.
    let blank_window = &buf[..buf.len().min(limits.max_request_line + 1)];
    let start = match blank_window.iter().position(|&b| b != b'\r' && b != b'\n') {
        Some(start) => start,
        None if buf.len() > limits.max_request_line => {
            return Err(bad("too many empty lines before the request line"))
        }
        None => return Ok(None),
    };
    // Each limit is enforced by showing httparse no more than the limit allows:
    // an error in the bytes before it wins, so the answer is the same however
    // the input was split across reads, and no read past the limit is scanned.
    let line_window = &buf[start..buf.len().min(start + limits.max_request_line + 2)];
    let line_end = memchr::memchr(b'\n', line_window).unwrap_or(line_window.len());
    // A CR before the LF, or last of what has arrived, is part of the line end.
    let line = &line_window[..line_end];
    let line_len = line.strip_suffix(b"\r").unwrap_or(line).len();
    let (visible, over_limit) = if line_len > limits.max_request_line
        && start + limits.max_request_line < limits.max_head_size
    {
        (
            start + limits.max_request_line,
            err(StatusCode::URI_TOO_LONG, "request line too long"),
        )
    } else {
        (
            limits.max_head_size,
            err(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request head too large",
            ),
        )
    };
    let exceeded = buf.len() > visible;
    let visible = &buf[..buf.len().min(visible)];

    let mut stack: [MaybeUninit<httparse::Header<'_>>; STACK_HEADERS] =
        [const { MaybeUninit::uninit() }; STACK_HEADERS];
    let mut heap: Vec<MaybeUninit<httparse::Header<'_>>>;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap = (0..limits.max_headers)
            .map(|_| MaybeUninit::uninit())
            .collect();
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(visible, slots);
    let len = match status {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if exceeded => return Err(over_limit),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(err(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header fields",
            ))
        }
        Err(httparse::Error::Version) => {
            return match version_error(visible.get(start..).unwrap_or_default()) {
                Some(e) => Err(e),
                None if exceeded => Err(over_limit),
                None => Ok(None),
            }
        }
        Err(httparse::Error::Token) => return Err(bad("malformed request line")),
        Err(httparse::Error::HeaderName) => return Err(bad("invalid header field name")),
        Err(httparse::Error::HeaderValue) => return Err(bad("invalid header field value")),
        Err(_) => return Err(bad("malformed request head")),
    };

    let method_token = req.method.unwrap_or("");
    head.method = Method::from_bytes(method_token.as_bytes());
    if head.method.is_none() {
        return Err(err(StatusCode::NOT_IMPLEMENTED, "unknown request method"));
    }
    head.version = match req.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    set_target(head, req.path.unwrap_or(""))?;

    head.headers.clear();
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut hosts = 0;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    head.expect_continue = false;
    for h in req.headers.iter() {
        let value =
            std::str::from_utf8(h.value).map_err(|_| bad("header field value is not UTF-8"))?;
        let name = h.name;
        head.headers.add(name, value);
        if name.eq_ignore_ascii_case("content-length") {
            // A list of identical values is allowed (RFC 9110 §8.6); any
            // disagreement means the framing is in doubt.
            for part in value.split(',') {
                let n = parse_content_length(part.trim())?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(bad("conflicting Content-Length values"));
                }
                content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            for coding in value.split(',').map(str::trim) {
                if chunked {
                    // Anything after `chunked`, or `chunked` twice.
                    return Err(bad("chunked must be the last transfer coding, once"));
                }
                if coding.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                } else if coding.is_empty() {
                    return Err(bad("empty transfer coding"));
                } else {
                    return Err(err(
                        StatusCode::NOT_IMPLEMENTED,
                        "unsupported transfer coding",
                    ));
                }
            }
            if !chunked {
                return Err(bad("Transfer-Encoding without chunked"));
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("connection") {
            for t in value.split(',').map(str::trim) {
                connection_close |= t.eq_ignore_ascii_case("close");
                connection_keep_alive |= t.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if value.trim().eq_ignore_ascii_case("100-continue") {
                head.expect_continue = true;
            } else {
                return Err(err(
                    StatusCode::EXPECTATION_FAILED,
                    "unsupported expectation",
                ));
            }
        }
    }
    if chunked && content_length.is_some() {
        return Err(bad("both Content-Length and Transfer-Encoding"));
    }
    if chunked && head.version == Version::Http10 {
        // RFC 9112 §6.1: framing of a 1.0 message with Transfer-Encoding is faulty.
        return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
    }
    if head.version == Version::Http11 && hosts != 1 {
        return Err(bad(if hosts == 0 {
            "missing Host header"
        } else {
            "more than one Host header"
        }));
    }
    if hosts > 1 {
        return Err(bad("more than one Host header"));
    }
    head.framing = match (chunked, content_length) {
        (true, _) => BodyFraming::Chunked,
        (false, Some(0)) | (false, None) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
    };
    // RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request
    // MUST be ignored (a 1.0 client cannot take an interim response).
    if head.framing == BodyFraming::None || head.version == Version::Http10 {
        head.expect_continue = false;
    }
    head.keep_alive = match head.version {
        Version::Http11 => !connection_close,
        Version::Http10 => connection_keep_alive && !connection_close,
    };
    head.head_len = len;
    Ok(Some(len))
}

/// Refuses with 413 a body whose announced `Content-Length` exceeds `limit`
/// (a chunked body is checked as it arrives). Separate from
/// [`parse_request_head`] because the limit can depend on the route.
pub fn check_body_length(framing: BodyFraming, limit: u64) -> Result<(), ParseError> {
    match framing {
        BodyFraming::Length(n) if n > limit => {
            Err(err(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))
        }
        _ => Ok(()),
    }
}

/// The answer to a request line whose version httparse refused, or `None`
/// while the line is incomplete and could still name a version we do not
/// speak (httparse refuses `HTTP/2` before the `.0` that makes it a 505).
fn version_error(line: &[u8]) -> Option<ParseError> {
    // `HTTP/2.0` or `HTTP/1.2` is a version we do not speak (505); anything else
    // in that position is just a malformed request line.
    const SHAPE: &[u8] = b"HTTP/0.0\r";
    let fits = |at: usize, b: u8| match SHAPE[at] {
        b'0' => b.is_ascii_digit(),
        s => s == b,
    };
    // httparse got past the method and the target: the version is the rest.
    fn version_of(line: &[u8]) -> &[u8] {
        line.splitn(3, |&b| b == b' ').nth(2).unwrap_or_default()
    }
    let Some(end) = memchr::memchr(b'\n', line) else {
        let version = version_of(line);
        let may_grow =
            version.len() <= SHAPE.len() && version.iter().enumerate().all(|(at, &b)| fits(at, b));
        return (!may_grow).then(|| bad("malformed request line"));
    };
    let line = line[..end].strip_suffix(b"\r").unwrap_or(&line[..end]);
    let version = version_of(line);
    Some(
        if version.len() == SHAPE.len() - 1
            && version.iter().enumerate().all(|(at, &b)| fits(at, b))
        {
            err(
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                "unsupported HTTP version",
            )
        } else {
            bad("malformed request line")
        },
    )
}

fn parse_content_length(s: &str) -> Result<u64, ParseError> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("invalid Content-Length"));
    }
    s.parse().map_err(|_| bad("invalid Content-Length"))
}

fn set_target(head: &mut RequestHead, raw: &str) -> Result<(), ParseError> {
    head.target.clear();
    if raw.starts_with('/') {
        head.target.push_str(raw);
        return Ok(());
    }
    if raw == "*" {
        if head.method == Some(Method::OPTIONS) {
            head.target.push('*');
            return Ok(());
        }
        return Err(bad("asterisk target is only allowed with OPTIONS"));
    }
    // Absolute form (RFC 9112 §3.2.2): servers must accept it; keep path and query.
    let lower_scheme = raw.get(..8).map(|s| s.to_ascii_lowercase());
    let rest = match lower_scheme.as_deref() {
        Some(s) if s.starts_with("http://") => &raw[7..],
        Some("https://") => &raw[8..],
        _ => return Err(bad("request target must be a path")),
    };
    match rest.find(['/', '?']) {
        Some(0) | None if rest.is_empty() => return Err(bad("absolute target without host")),
        Some(i) => {
            if rest.as_bytes()[i] == b'?' {
                head.target.push('/');
            }
            head.target.push_str(&rest[i..]);
        }
        None => head.target.push('/'),
    }
    Ok(())
}

/// The one byte a framing state allows (a CR or LF of chunked coding).
fn expect_byte(b: u8, want: u8, reason: &'static str) -> Result<(), ParseError> {
    if b == want {
        Ok(())
    } else {
        Err(bad(reason))
    }
}

/// Decodes a request body delimited by `Content-Length` or chunked coding.
#[derive(Debug, Clone)]
pub enum BodyDecoder {
    /// This many bytes remain.
    Length(u64),
    /// Chunked transfer coding.
    Chunked(ChunkedDecoder),
}

impl BodyDecoder {
    /// A decoder for the given framing, or `None` when there is no body.
    pub fn new(framing: BodyFraming) -> Option<BodyDecoder> {
        match framing {
            BodyFraming::None => None,
            BodyFraming::Length(n) => Some(BodyDecoder::Length(n)),
            BodyFraming::Chunked => Some(BodyDecoder::Chunked(ChunkedDecoder::default())),
        }
    }

    /// Consumes body bytes from `input`, appending the decoded body to `out`.
    ///
    /// Returns how many input bytes were used and whether the body is complete.
    /// A body growing past `limits.max_body_size` is refused with 413.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limits: &HttpLimits,
    ) -> Result<(usize, bool), ParseError> {
        match self {
            BodyDecoder::Length(remaining) => {
                let take = (*remaining).min(input.len() as u64) as usize;
                out.extend_from_slice(&input[..take]);
                *remaining -= take as u64;
                Ok((take, *remaining == 0))
            }
            BodyDecoder::Chunked(c) => c.decode(input, out, limits),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkState {
    /// Reading hex digits of a chunk size.
    #[default]
    Size,
    /// After the size: optional whitespace and extensions up to CR.
    Extension,
    /// Expecting LF after a size line.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// Expecting LF after a trailer line.
    TrailerLf,
    /// Expecting the LF of the final empty line.
    EndLf,
    /// The body is complete.
    Done,
}

/// Sans-IO decoder for `Transfer-Encoding: chunked` (RFC 9112 §7.1).
///
/// Line endings must be CRLF: accepting bare LF inside chunked framing is a
/// classic request-smuggling vector when a proxy disagrees.
#[derive(Debug, Clone, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    size: u64,
    digits: u32,
    remaining: u64,
    decoded: u64,
    trailer_bytes: usize,
}

impl ChunkedDecoder {
    /// Counts one byte of chunk extensions or trailers against the head-size
    /// limit: neither is body data, and both could otherwise grow unbounded.
    fn count_metadata_byte(
        &mut self,
        limits: &HttpLimits,
        what: &'static str,
    ) -> Result<(), ParseError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > limits.max_head_size {
            return Err(err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, what));
        }
        Ok(())
    }

    /// Consumes chunked bytes from `input`, appending the data to `out`.
    /// Trailer fields are checked for size and otherwise discarded.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limits: &HttpLimits,
    ) -> Result<(usize, bool), ParseError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                ChunkState::Size => {
                    let digit = match b {
                        b'0'..=b'9' => b - b'0',
                        b'a'..=b'f' => b - b'a' + 10,
                        b'A'..=b'F' => b - b'A' + 10,
                        _ if self.digits == 0 => return Err(bad("invalid chunk size")),
                        b'\r' => {
                            self.state = ChunkState::SizeLf;
                            i += 1;
                            continue;
                        }
                        b';' | b' ' | b'\t' => {
                            self.state = ChunkState::Extension;
                            i += 1;
                            continue;
                        }
                        _ => return Err(bad("invalid chunk size")),
                    };
                    self.digits += 1;
                    if self.digits > 16 {
                        return Err(bad("chunk size too large"));
                    }
                    self.size = (self.size << 4) | u64::from(digit);
                    i += 1;
                }
                ChunkState::Extension => {
                    match b {
                        b'\r' => self.state = ChunkState::SizeLf,
                        b'\n' | 0 => return Err(bad("invalid chunk extension")),
                        _ => self.count_metadata_byte(limits, "chunk extensions too large")?,
                    }
                    i += 1;
                }
                ChunkState::SizeLf => {
                    expect_byte(b, b'\n', "chunk size line must end with CRLF")?;
                    i += 1;
                    if self.size == 0 {
                        self.state = ChunkState::TrailerStart;
                    } else {
                        self.decoded = self.decoded.saturating_add(self.size);
                        if self.decoded > limits.max_body_size {
                            return Err(err(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "request body too large",
                            ));
                        }
                        self.remaining = self.size;
                        self.state = ChunkState::Data;
                    }
                    self.size = 0;
                    self.digits = 0;
                }
                ChunkState::Data => {
                    let take = self.remaining.min((input.len() - i) as u64) as usize;
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = ChunkState::DataCr;
                    }
                }
                ChunkState::DataCr => {
                    expect_byte(b, b'\r', "chunk data longer than its size")?;
                    self.state = ChunkState::DataLf;
                    i += 1;
                }
                ChunkState::DataLf => {
                    expect_byte(b, b'\n', "chunk data must end with CRLF")?;
                    self.state = ChunkState::Size;
                    i += 1;
                }
                ChunkState::TrailerStart => {
                    self.state = if b == b'\r' {
                        ChunkState::EndLf
                    } else {
                        ChunkState::Trailer
                    };
                    if b != b'\r' {
                        continue;
                    }
                    i += 1;
                }
                ChunkState::Trailer => {
                    match b {
                        b'\r' => self.state = ChunkState::TrailerLf,
                        b'\n' | 0 => return Err(bad("invalid trailer field")),
                        _ => {}
                    }
                    self.count_metadata_byte(limits, "trailer fields too large")?;
                    i += 1;
                }
                ChunkState::TrailerLf => {
                    expect_byte(b, b'\n', "trailer line must end with CRLF")?;
                    self.state = ChunkState::TrailerStart;
                    i += 1;
                }
                ChunkState::EndLf => {
                    expect_byte(b, b'\n', "chunked body must end with CRLF")?;
                    self.state = ChunkState::Done;
                    i += 1;
                }
                ChunkState::Done => break,
            }
            if self.state == ChunkState::Done {
                break;
            }
        }
        Ok((i, self.state == ChunkState::Done))
    }
}

// ---------------------------------------------------------------------------
// Response heads
// ---------------------------------------------------------------------------

/// What a response carries after its head, as far as framing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    /// No body: `Content-Length: 0`.
    Empty,
    /// A body of exactly this many bytes (in memory or a file).
    Length(u64),
    /// A body of unknown length produced piece by piece: chunked on HTTP/1.1,
    /// delimited by the connection's close on HTTP/1.0.
    Stream,
    /// A `text/event-stream` that lasts until either side closes.
    EventStream,
    /// A protocol switch (`101 Switching Protocols` to WebSocket).
    Upgrade,
}

/// The facts about the request that the response's framing depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseContext {
    /// The request's HTTP version.
    pub version: Version,
    /// Whether the request was `HEAD` (the head describes a body that is not sent).
    pub head_request: bool,
    /// Whether the connection may stay open as far as the request and the
    /// server go (the request's [`RequestHead::keep_alive`], and the server
    /// not shutting down). The response can still turn it off.
    pub keep_alive: bool,
}

/// How the head written by [`write_response_head`] delimits the body
/// (RFC 9112 §6.3), which is how a client reading it finds the body's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyDelimiter {
    /// The status forbids a body (1xx, 204, 304): the message ends with its head.
    None,
    /// `Content-Length`: exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// No framing field: the body ends when the server closes the connection.
    CloseDelimited,
}

/// What [`write_response_head`] decided: how the body must be written and
/// whether the connection stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseFraming {
    /// How the head delimits the body. For a `HEAD` request this is what a
    /// `GET` would have received, and nothing follows (see `send_body`).
    pub body: BodyDelimiter,
    /// Whether the connection may carry another request after this response.
    /// Always `false` when `body` is [`BodyDelimiter::CloseDelimited`] and a
    /// body is sent.
    pub keep_alive: bool,
    /// Whether the head switched protocols (`101` with `Connection: Upgrade`):
    /// the bytes after it belong to the new protocol.
    pub upgrade: bool,
    /// Whether body bytes follow the head: `false` for a `HEAD` request and
    /// for statuses that forbid a body.
    pub send_body: bool,
}

/// Appends a response head (status line, fields, blank line) to `out` and
/// returns how the body must follow it.
///
/// The encoder owns the framing fields: `Content-Length`,
/// `Transfer-Encoding` and `Connection` in `fields` are not written (a
/// `Connection: close` among them still closes the connection); the ones
/// that match `body` and `cx` are written instead. `date` is the `Date`
/// value (an IMF-fixdate, formatted by the caller, which owns the clock).
/// `defaults` are written where `fields` has no field of the same name,
/// before `fields`; they are written as they are, so they must not hold
/// framing fields. Names and values must already be valid (no CR or LF),
/// as [`Headers`] builders ensure.
///
/// The status line is always `HTTP/1.1` (RFC 9110 §6.2: a server sends its
/// own version); an HTTP/1.0 client gets `Connection: keep-alive` when the
/// connection stays open, and no chunked coding, which 1.0 lacks.
///
/// Writes no more than the head and allocates nothing beyond growing `out`.
pub fn write_response_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    date: &str,
    fields: &Headers,
    defaults: &Headers,
    body: ResponseBody,
    cx: ResponseContext,
) -> ResponseFraming {
    let mut keep_alive = cx.keep_alive && !fields.has_token("Connection", "close");
    // Written piece by piece: `write!` costs more than the rest of the head
    // for a small response.
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status.as_u16()));
    out.push(b' ');
    out.extend_from_slice(status.reason().as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in defaults.iter() {
        if !fields.contains(name) {
            write_field(out, name, value);
        }
    }
    for (name, value) in fields.iter() {
        if !is_framing_field(name) {
            write_field(out, name, value);
        }
    }
    let delimiter = if status.forbids_body() {
        BodyDelimiter::None
    } else {
        match body {
            ResponseBody::Empty | ResponseBody::Upgrade => BodyDelimiter::Length(0),
            ResponseBody::Length(n) => BodyDelimiter::Length(n),
            // The stream lasts until either side closes; the head alone
            // (a `HEAD` request) leaves the connection usable.
            ResponseBody::EventStream => {
                keep_alive &= cx.head_request;
                BodyDelimiter::CloseDelimited
            }
            ResponseBody::Stream if cx.version == Version::Http11 => BodyDelimiter::Chunked,
            ResponseBody::Stream => {
                // HTTP/1.0 has no chunked coding: the body ends at close,
                // unless none is sent.
                keep_alive &= cx.head_request;
                BodyDelimiter::CloseDelimited
            }
        }
    };
    match delimiter {
        BodyDelimiter::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        BodyDelimiter::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        BodyDelimiter::None | BodyDelimiter::CloseDelimited => {}
    }
    let upgrade = body == ResponseBody::Upgrade && status == StatusCode::SWITCHING_PROTOCOLS;
    if upgrade {
        out.extend_from_slice(b"Connection: Upgrade\r\n");
    } else if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if cx.version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    ResponseFraming {
        body: delimiter,
        keep_alive,
        upgrade,
        send_body: !cx.head_request && !status.forbids_body(),
    }
}

/// Appends the interim `100 Continue` response, sent to a client waiting
/// (`Expect: 100-continue`) before it sends the body.
pub fn write_continue(out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
}

/// Whether `name` is one of the fields [`write_response_head`] owns.
fn is_framing_field(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length")
        || name.eq_ignore_ascii_case("transfer-encoding")
        || name.eq_ignore_ascii_case("connection")
}

/// The last chunk of a chunked body, with no trailer fields (RFC 9112 §7.1).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Bytes [`write_chunk`] appends for `len` bytes of data: the size line,
/// the data and its CRLF. (An empty chunk would end the body, so
/// `write_chunk` writes nothing for empty data.)
pub fn chunk_size(len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let hex_digits = (usize::BITS - len.leading_zeros()).div_ceil(4) as usize;
    // Saturating: a length near `usize::MAX` cannot be queued anyway.
    len.saturating_add(hex_digits + 4)
}

/// Appends `data` as one chunk of a chunked body (RFC 9112 §7.1): its size
/// in hex, CRLF, the data, CRLF. Empty data appends nothing, as an empty
/// chunk is the body's end ([`LAST_CHUNK`]). Allocates nothing beyond
/// growing `out`.
///
/// ```
/// use pollserve::proto::http::{chunk_size, write_chunk, LAST_CHUNK};
/// let mut out = Vec::new();
/// write_chunk(&mut out, b"hello, world");
/// write_chunk(&mut out, b"");
/// assert_eq!(out, b"c\r\nhello, world\r\n");
/// assert_eq!(chunk_size(12), out.len());
/// out.extend_from_slice(LAST_CHUNK);
/// ```
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut head = [0u8; CHUNK_HEAD_MAX];
    let head = chunk_head(data.len(), &mut head);
    out.reserve(chunk_size(data.len()));
    out.extend_from_slice(head);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Longest size line of a chunk: 16 hex digits and CRLF.
pub(crate) const CHUNK_HEAD_MAX: usize = 18;

/// The size line of a chunk of `len` bytes (hex, CRLF), written into `buf`:
/// what [`write_chunk`] puts before the data (which CRLF follows).
pub(crate) fn chunk_head(len: usize, buf: &mut [u8; CHUNK_HEAD_MAX]) -> &[u8] {
    let mut i = CHUNK_HEAD_MAX - 2;
    buf[i..].copy_from_slice(b"\r\n");
    let mut n = len;
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Appends `n` in decimal. Hand-written: `core::fmt` measured slower than the
/// rest of a small response head.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends one `name: value` field line.
pub(crate) fn write_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<(usize, RequestHead)>, ParseError> {
        let mut head = RequestHead::default();
        parse_request_head(raw.as_bytes(), &HttpLimits::default(), &mut head)
            .map(|o| o.map(|n| (n, head)))
    }

    fn status_of(raw: &str) -> u16 {
        parse(raw).unwrap_err().status.as_u16()
    }

    #[test]
    fn parses_a_simple_get() {
        let raw = "GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\nrest";
        let (n, h) = parse(raw).unwrap().unwrap();
        assert_eq!(&raw[n..], "rest");
        assert_eq!(h.method, Some(Method::GET));
        assert_eq!(h.target, "/a?b=c");
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.headers.get("accept"), Some("*/*"));
        assert_eq!(h.framing, BodyFraming::None);
        assert!(h.keep_alive);
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert!(parse("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        assert!(parse("GET / HT").unwrap().is_none());
        assert!(parse("").unwrap().is_none());
        assert!(parse("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .is_some());
    }

    #[test]
    fn keep_alive_rules() {
        let h = |raw: &str| parse(raw).unwrap().unwrap().1.keep_alive;
        assert!(!h("GET / HTTP/1.0\r\n\r\n"));
        assert!(h("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!h("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        assert!(h(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n"
        ));
    }

    #[test]
    fn expect_continue_rules() {
        let e = |raw: &str| parse(raw).unwrap().unwrap().1.expect_continue;
        assert!(e(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        ));
        // No body to wait for.
        assert!(!e(
            "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n"
        ));
        // HTTP/1.0: ignored (RFC 9110 §10.1.1).
        assert!(!e(
            "POST / HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        ));
    }

    #[test]
    fn framing() {
        let f = |raw: &str| parse(raw).unwrap().unwrap().1.framing;
        assert_eq!(
            f("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"),
            BodyFraming::Length(5)
        );
        assert_eq!(
            f("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n"),
            BodyFraming::Length(5)
        );
        assert_eq!(
            f("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            BodyFraming::Chunked
        );
    }

    #[test]
    fn bad_input_statuses() {
        assert_eq!(
            status_of(
                "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
            ),
            400
        );
        assert_eq!(
            status_of("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            501
        );
        assert_eq!(
            status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(status_of("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            400
        );
        assert_eq!(status_of("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
        assert_eq!(status_of("GET / FOO/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status_of("BREW / HTTP/1.1\r\nHost: x\r\n\r\n"), 501);
        assert_eq!(
            status_of("GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of("GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n"),
            417
        );
        assert_eq!(status_of("GET foo HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status_of("GET * HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
        assert_eq!(status_of(&long), 414);
        // Without the line end in sight yet, a long target is still refused.
        assert_eq!(status_of(&long[..8500]), 414);
        let big = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "a".repeat(40000)
        );
        assert_eq!(status_of(&big), 431);
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            status_of(&format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n")),
            431
        );
        let huge = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            2 << 20
        );
        let head = parse(&huge).unwrap().unwrap().1;
        let limit = HttpLimits::default().max_body_size;
        assert_eq!(
            check_body_length(head.framing, limit)
                .unwrap_err()
                .status
                .as_u16(),
            413
        );
        assert!(check_body_length(head.framing, 4 << 20).is_ok());
        assert!(check_body_length(BodyFraming::Chunked, 0).is_ok());
    }

    #[test]
    fn absolute_and_asterisk_targets() {
        let t = |raw: &str| parse(raw).unwrap().unwrap().1.target;
        assert_eq!(
            t("GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n"),
            "/x?y"
        );
        assert_eq!(
            t("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"),
            "/"
        );
        assert_eq!(
            t("GET HTTP://example.com?q HTTP/1.1\r\nHost: example.com\r\n\r\n"),
            "/?q"
        );
        assert_eq!(t("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), "*");
    }

    fn dechunk(input: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), ParseError> {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let mut used = 0;
        let limits = HttpLimits::default();
        while used < input.len() {
            let end = (used + step).min(input.len());
            let (n, done) = d.decode(&input[used..end], &mut out, &limits)?;
            used += n;
            if done {
                return Ok((out, used, true));
            }
        }
        Ok((out, used, false))
    }

    #[test]
    fn chunked_any_split() {
        let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        for step in 1..body.len() {
            let (out, used, done) = dechunk(body, step).unwrap();
            assert!(done, "step {step}");
            assert_eq!(out, b"hello, world");
            assert_eq!(&body[used..], b"NEXT");
        }
    }

    #[test]
    fn chunked_errors() {
        for bad_body in [
            &b"x\r\n"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n",
            b"11111111111111111\r\n",
            b"5\r\nhello\r\n0\r\n\n",
        ] {
            assert_eq!(
                dechunk(bad_body, 1).unwrap_err().status.as_u16(),
                400,
                "{bad_body:?}"
            );
        }
        let limits = HttpLimits {
            max_body_size: 4,
            ..HttpLimits::default()
        };
        let mut d = ChunkedDecoder::default();
        let e = d
            .decode(b"5\r\nhello\r\n", &mut Vec::new(), &limits)
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 413);
    }

    // --- blank lines before the request line -------------------------------

    #[test]
    fn a_few_empty_lines_before_the_request_line_are_skipped() {
        let raw = "\r\n\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let (n, h) = parse(raw).unwrap().unwrap();
        assert_eq!(n, raw.len());
        assert_eq!(h.target, "/");
        assert!(parse("\r\n\r\n").unwrap().is_none());
    }

    #[test]
    fn endless_empty_lines_are_refused() {
        let limits = HttpLimits::default();
        let mut head = RequestHead::default();
        let flood = b"\r\n".repeat(limits.max_request_line / 2 + 1);
        assert_eq!(flood.len(), limits.max_request_line + 2);
        let e = parse_request_head(&flood, &limits, &mut head).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.reason, "too many empty lines before the request line");
        // Up to the limit they are still awaited, and a request after them parses.
        let mut at_limit = b"\n".repeat(limits.max_request_line);
        assert!(parse_request_head(&at_limit, &limits, &mut head)
            .unwrap()
            .is_none());
        at_limit.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(parse_request_head(&at_limit, &limits, &mut head)
            .unwrap()
            .is_some());
        // One more blank byte before the request line is refused.
        let mut over = b"\n".repeat(limits.max_request_line + 1);
        over.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            parse_request_head(&over, &limits, &mut head)
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn limits_decide_the_same_whatever_the_reads_end_on() {
        let limits = HttpLimits {
            max_request_line: 16,
            max_head_size: 64,
            ..HttpLimits::default()
        };
        let run = |raw: &[u8]| parse_request_head(raw, &limits, &mut RequestHead::default());
        // A request line of exactly the limit whose read ended between CR and LF.
        let exact = b"GET /ab HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(exact.iter().position(|&b| b == b'\r'), Some(16));
        assert_eq!(run(&exact[..17]), Ok(None));
        assert!(run(exact).unwrap().is_some());
        // One byte over with a bare LF is too long, arriving whole or not.
        let long = b"GET /abcdefghijk HTTP/1.1\n\n";
        assert_eq!(run(long).unwrap_err().status, StatusCode::URI_TOO_LONG);
        assert_eq!(
            run(&long[..20]).unwrap_err().status,
            StatusCode::URI_TOO_LONG
        );
        // An error before a limit wins over the limit.
        let bad_then_long = b"GET /a\x01bcdefghijklmnop HTTP/1.1\r\n\r\n";
        assert_eq!(
            run(bad_then_long).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        let mut bad_field = b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n".to_vec();
        bad_field.resize(100, b'a');
        assert_eq!(run(&bad_field).unwrap_err().status, StatusCode::BAD_REQUEST);
        // `HTTP/2` is refused by httparse before the `.0` makes it a 505.
        for end in 12..16 {
            assert_eq!(run(&b"GET / HTTP/2.0\r\n\r\n"[..end]), Ok(None), "{end}");
        }
        assert_eq!(
            run(b"GET / HTTP/2.0\r\n\r\n").unwrap_err().status,
            StatusCode::HTTP_VERSION_NOT_SUPPORTED
        );
        assert_eq!(
            run(b"GET / HTTP/2.x").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        // The version is the third token, not the last one.
        assert_eq!(
            run(b"G T /a HTTP/1.1\r\n\r\n").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    // --- response heads ----------------------------------------------------

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    fn fields(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (name, value) in pairs {
            h.add(name, value);
        }
        h
    }

    fn cx(version: Version, head_request: bool, keep_alive: bool) -> ResponseContext {
        ResponseContext {
            version,
            head_request,
            keep_alive,
        }
    }

    const GET11: ResponseContext = ResponseContext {
        version: Version::Http11,
        head_request: false,
        keep_alive: true,
    };

    /// The head as text and the framing, with no default headers.
    fn encode(
        status: StatusCode,
        response_fields: &[(&str, &str)],
        body: ResponseBody,
        cx: ResponseContext,
    ) -> (String, ResponseFraming) {
        let mut out = Vec::new();
        let framing = write_response_head(
            &mut out,
            status,
            DATE,
            &fields(response_fields),
            &Headers::new(),
            body,
            cx,
        );
        (String::from_utf8(out).unwrap(), framing)
    }

    fn plain(body: BodyDelimiter, keep_alive: bool, send_body: bool) -> ResponseFraming {
        ResponseFraming {
            body,
            keep_alive,
            upgrade: false,
            send_body,
        }
    }

    #[test]
    fn response_head_with_a_sized_body() {
        let (head, f) = encode(
            StatusCode::OK,
            &[("Content-Type", "text/plain")],
            ResponseBody::Length(12),
            GET11,
        );
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/plain\r\nContent-Length: 12\r\n\r\n"
        );
        assert_eq!(f, plain(BodyDelimiter::Length(12), true, true));
        let (head, f) = encode(StatusCode::NOT_FOUND, &[], ResponseBody::Empty, GET11);
        assert_eq!(
            head,
            "HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Length: 0\r\n\r\n"
        );
        assert_eq!(f, plain(BodyDelimiter::Length(0), true, true));
        let (head, _) = encode(StatusCode::OK, &[], ResponseBody::Length(u64::MAX), GET11);
        assert!(head.contains("\r\nContent-Length: 18446744073709551615\r\n"));
    }

    #[test]
    fn response_to_head_keeps_the_length_and_sends_no_body() {
        let head_request = cx(Version::Http11, true, true);
        let (head, f) = encode(StatusCode::OK, &[], ResponseBody::Length(5), head_request);
        assert!(head.ends_with("\r\nContent-Length: 5\r\n\r\n"), "{head}");
        assert_eq!(f, plain(BodyDelimiter::Length(5), true, false));
        let (head, f) = encode(StatusCode::OK, &[], ResponseBody::Stream, head_request);
        assert!(
            head.ends_with("\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "{head}"
        );
        assert_eq!(f, plain(BodyDelimiter::Chunked, true, false));
    }

    #[test]
    fn bodiless_statuses_get_no_framing_field() {
        for status in [
            StatusCode::CONTINUE,
            StatusCode::NO_CONTENT,
            StatusCode::NOT_MODIFIED,
        ] {
            for body in [
                ResponseBody::Empty,
                ResponseBody::Length(7),
                ResponseBody::Stream,
                ResponseBody::EventStream,
            ] {
                let (head, f) = encode(status, &[("Content-Length", "7")], body, GET11);
                assert!(
                    !head.contains("Content-Length"),
                    "{status} {body:?}: {head}"
                );
                assert!(
                    !head.contains("Transfer-Encoding"),
                    "{status} {body:?}: {head}"
                );
                assert!(!head.contains("Connection"), "{status} {body:?}: {head}");
                assert_eq!(
                    f,
                    plain(BodyDelimiter::None, true, false),
                    "{status} {body:?}"
                );
            }
        }
        let (head, _) = encode(
            StatusCode::NOT_MODIFIED,
            &[("ETag", "\"x\"")],
            ResponseBody::Empty,
            GET11,
        );
        assert_eq!(
            head,
            "HTTP/1.1 304 Not Modified\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             ETag: \"x\"\r\n\r\n"
        );
    }

    #[test]
    fn switching_protocols_upgrades() {
        let (head, f) = encode(
            StatusCode::SWITCHING_PROTOCOLS,
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ],
            ResponseBody::Upgrade,
            GET11,
        );
        assert_eq!(
            head,
            "HTTP/1.1 101 Switching Protocols\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Connection: Upgrade\r\n\r\n"
        );
        assert_eq!(
            f,
            ResponseFraming {
                body: BodyDelimiter::None,
                keep_alive: true,
                upgrade: true,
                send_body: false,
            }
        );
        // A handler that turned the upgrade into another status: an empty
        // ordinary response, no switch.
        let (head, f) = encode(
            StatusCode::FORBIDDEN,
            &[],
            ResponseBody::Upgrade,
            cx(Version::Http11, false, false),
        );
        assert!(
            head.ends_with("\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            "{head}"
        );
        assert_eq!(f, plain(BodyDelimiter::Length(0), false, true));
    }

    #[test]
    fn http10_connections() {
        let (head, f) = encode(
            StatusCode::OK,
            &[],
            ResponseBody::Length(2),
            cx(Version::Http10, false, true),
        );
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.ends_with("\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n"),
            "{head}"
        );
        assert_eq!(f, plain(BodyDelimiter::Length(2), true, true));
        let (head, f) = encode(
            StatusCode::OK,
            &[],
            ResponseBody::Length(2),
            cx(Version::Http10, false, false),
        );
        assert!(
            head.ends_with("\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"),
            "{head}"
        );
        assert_eq!(f, plain(BodyDelimiter::Length(2), false, true));
    }

    #[test]
    fn streams_are_chunked_on_http11_and_close_delimited_on_http10() {
        let (head, f) = encode(
            StatusCode::OK,
            &[("Transfer-Encoding", "gzip")],
            ResponseBody::Stream,
            GET11,
        );
        assert!(
            head.ends_with("\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "{head}"
        );
        assert_eq!(head.matches("Transfer-Encoding").count(), 1);
        assert_eq!(f, plain(BodyDelimiter::Chunked, true, true));
        let (head, f) = encode(
            StatusCode::OK,
            &[],
            ResponseBody::Stream,
            cx(Version::Http10, false, true),
        );
        assert!(head.ends_with("GMT\r\nConnection: close\r\n\r\n"), "{head}");
        assert_eq!(f, plain(BodyDelimiter::CloseDelimited, false, true));
        // HEAD: no body follows, so the connection can stay.
        let (head, f) = encode(
            StatusCode::OK,
            &[],
            ResponseBody::Stream,
            cx(Version::Http10, true, true),
        );
        assert!(
            head.ends_with("GMT\r\nConnection: keep-alive\r\n\r\n"),
            "{head}"
        );
        assert_eq!(f, plain(BodyDelimiter::CloseDelimited, true, false));
    }

    #[test]
    fn event_streams_are_close_delimited() {
        for version in [Version::Http10, Version::Http11] {
            let (head, f) = encode(
                StatusCode::OK,
                &[("Content-Type", "text/event-stream")],
                ResponseBody::EventStream,
                cx(version, false, true),
            );
            assert!(
                head.ends_with("\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"),
                "{head}"
            );
            assert_eq!(f, plain(BodyDelimiter::CloseDelimited, false, true));
        }
    }

    #[test]
    fn event_stream_head_alone_keeps_the_connection() {
        let (head, f) = encode(
            StatusCode::OK,
            &[("Content-Type", "text/event-stream")],
            ResponseBody::EventStream,
            cx(Version::Http11, true, true),
        );
        assert!(
            head.ends_with("\r\nContent-Type: text/event-stream\r\n\r\n"),
            "{head}"
        );
        assert_eq!(f, plain(BodyDelimiter::CloseDelimited, true, false));
    }

    #[test]
    fn chunks_are_framed_with_a_hex_size() {
        let mut out = Vec::new();
        for len in [1usize, 9, 15, 16, 255, 256, 4095, 4096, 65536, 1 << 20] {
            out.clear();
            let data = vec![b'x'; len];
            write_chunk(&mut out, &data);
            let line = format!("{len:x}\r\n");
            assert!(out.starts_with(line.as_bytes()), "{len}");
            assert!(out.ends_with(b"x\r\n"), "{len}");
            assert_eq!(out.len(), chunk_size(len), "{len}");
            assert_eq!(out.len(), line.len() + len + 2, "{len}");
        }
        out.clear();
        write_chunk(&mut out, b"");
        assert!(out.is_empty());
        assert_eq!(chunk_size(0), 0);
        assert_eq!(
            chunk_size(usize::MAX >> 8),
            (usize::BITS as usize - 8) / 4 + 4 + (usize::MAX >> 8)
        );
    }

    #[test]
    fn connection_close_from_the_handler_closes() {
        for value in ["close", "Close", "keep-alive, CLOSE"] {
            let (head, f) = encode(
                StatusCode::OK,
                &[("connection", value)],
                ResponseBody::Length(1),
                GET11,
            );
            assert!(
                head.ends_with("\r\nContent-Length: 1\r\nConnection: close\r\n\r\n"),
                "{head}"
            );
            assert_eq!(head.to_ascii_lowercase().matches("connection").count(), 1);
            assert_eq!(f, plain(BodyDelimiter::Length(1), false, true));
        }
        // Any other value is dropped and changes nothing.
        let (head, f) = encode(
            StatusCode::OK,
            &[("Connection", "keep-alive")],
            ResponseBody::Length(1),
            GET11,
        );
        assert!(!head.contains("Connection"), "{head}");
        assert!(f.keep_alive);
    }

    #[test]
    fn framing_fields_from_the_handler_are_dropped() {
        let (head, f) = encode(
            StatusCode::OK,
            &[
                ("content-length", "999"),
                ("X-A", "1"),
                ("TRANSFER-ENCODING", "chunked"),
                ("Connection", "upgrade"),
                ("X-B", "2"),
            ],
            ResponseBody::Length(3),
            GET11,
        );
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             X-A: 1\r\nX-B: 2\r\nContent-Length: 3\r\n\r\n"
        );
        assert_eq!(f, plain(BodyDelimiter::Length(3), true, true));
    }

    #[test]
    fn default_headers_yield_to_response_fields() {
        let defaults = fields(&[("Server", "pollserve"), ("X-Frame-Options", "DENY")]);
        let mut out = Vec::new();
        write_response_head(
            &mut out,
            StatusCode::OK,
            DATE,
            &fields(&[
                ("x-frame-options", "SAMEORIGIN"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
            ]),
            &defaults,
            ResponseBody::Empty,
            GET11,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Server: pollserve\r\nx-frame-options: SAMEORIGIN\r\n\
             Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn unregistered_status_has_an_empty_reason() {
        let (head, _) = encode(
            StatusCode::new(599).unwrap(),
            &[],
            ResponseBody::Empty,
            GET11,
        );
        assert!(head.starts_with("HTTP/1.1 599 \r\nDate: "), "{head}");
    }

    #[test]
    fn response_head_appends_to_what_is_there() {
        let mut out = b"earlier bytes".to_vec();
        write_response_head(
            &mut out,
            StatusCode::OK,
            DATE,
            &Headers::new(),
            &Headers::new(),
            ResponseBody::Empty,
            GET11,
        );
        assert!(out.starts_with(b"earlier bytesHTTP/1.1 200 OK\r\n"));
        let mut out = b"x".to_vec();
        write_continue(&mut out);
        assert_eq!(out, b"xHTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn every_combination_parses_back_and_agrees_with_its_framing() {
        let statuses = [100, 101, 200, 204, 206, 304, 404, 500, 599];
        let bodies = [
            ResponseBody::Empty,
            ResponseBody::Length(0),
            ResponseBody::Length(41),
            ResponseBody::Stream,
            ResponseBody::EventStream,
            ResponseBody::Upgrade,
        ];
        let handler_fields: [&[(&str, &str)]; 3] = [
            &[],
            &[("Connection", "close"), ("Content-Length", "3")],
            &[("Transfer-Encoding", "chunked"), ("X", "y")],
        ];
        for code in statuses {
            let status = StatusCode::new(code).unwrap();
            for body in bodies {
                for response_fields in handler_fields {
                    for version in [Version::Http10, Version::Http11] {
                        for head_request in [false, true] {
                            for keep_alive in [false, true] {
                                let cx = cx(version, head_request, keep_alive);
                                let (head, f) = encode(status, response_fields, body, cx);
                                let what = format!("{code} {body:?} {response_fields:?} {cx:?}");
                                check_parses_back(&head, status, f, cx, &what);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Parses `head` as a client would and checks it says what `f` says.
    fn check_parses_back(
        head: &str,
        status: StatusCode,
        f: ResponseFraming,
        cx: ResponseContext,
        what: &str,
    ) {
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Response::new(&mut slots);
        let n = parsed.parse(head.as_bytes()).unwrap();
        assert_eq!(n, httparse::Status::Complete(head.len()), "{what}");
        assert_eq!(parsed.code, Some(status.as_u16()), "{what}");
        let all = |name: &str| -> Vec<String> {
            parsed
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8(h.value.to_vec()).unwrap())
                .collect()
        };
        let (lengths, codings, connection) = (
            all("Content-Length"),
            all("Transfer-Encoding"),
            all("Connection"),
        );
        let announced = match (&lengths[..], &codings[..]) {
            ([], []) if status.forbids_body() => BodyDelimiter::None,
            ([], []) => BodyDelimiter::CloseDelimited,
            ([n], []) => BodyDelimiter::Length(n.parse().unwrap()),
            ([], [c]) if c == "chunked" => BodyDelimiter::Chunked,
            _ => panic!("{what}: framing fields {lengths:?} {codings:?}"),
        };
        assert_eq!(announced, f.body, "{what}");
        assert!(
            !status.forbids_body() || announced == BodyDelimiter::None,
            "{what}"
        );
        assert!(
            announced != BodyDelimiter::Chunked || cx.version == Version::Http11,
            "{what}"
        );
        assert!(
            !(f.send_body && announced == BodyDelimiter::CloseDelimited && f.keep_alive),
            "{what}"
        );
        assert_eq!(
            f.send_body,
            !cx.head_request && !status.forbids_body(),
            "{what}"
        );
        assert!(!f.keep_alive || cx.keep_alive, "{what}");
        let expected_connection: &[&str] = if f.upgrade {
            &["Upgrade"]
        } else if !f.keep_alive {
            &["close"]
        } else if cx.version == Version::Http10 {
            &["keep-alive"]
        } else {
            &[]
        };
        assert_eq!(connection, expected_connection, "{what}");
        assert_eq!(
            f.upgrade,
            status == StatusCode::SWITCHING_PROTOCOLS && connection == ["Upgrade"],
            "{what}"
        );
    }

    #[test]
    fn push_decimal_matches_display() {
        for n in [0, 1, 9, 10, 99, 100, 204, 1024, 65535, 1 << 40, u64::MAX] {
            let mut w = b"x".to_vec();
            push_decimal(&mut w, n);
            assert_eq!(w, format!("x{n}").into_bytes());
        }
    }

    /// Split invariance: the driver calls the parsers on whatever has arrived,
    /// so no boundary between reads may change what a request means.
    mod split_properties {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::{select, Index};

        /// Small limits, so that generated inputs cross every one of them.
        const LIMITS: HttpLimits = HttpLimits {
            max_request_line: 64,
            max_head_size: 256,
            max_headers: 8,
            max_body_size: 48,
        };

        /// Everything a parse decides, comparable.
        #[derive(Debug, PartialEq)]
        struct Parsed {
            result: Result<Option<usize>, ParseError>,
            head: Option<String>,
        }

        fn parse_limited(buf: &[u8]) -> Parsed {
            let mut head = RequestHead::default();
            let result = parse_request_head(buf, &LIMITS, &mut head);
            let head = matches!(result, Ok(Some(_))).then(|| {
                let fields: Vec<_> = head.headers.iter().collect();
                format!(
                    "{:?} {} {:?} {fields:?} {:?} ka={} 100={} len={}",
                    head.method,
                    head.target,
                    head.version,
                    head.framing,
                    head.keep_alive,
                    head.expect_continue,
                    head.head_len
                )
            });
            Parsed { result, head }
        }

        /// Request heads near the interesting cases (framing fields, limits,
        /// versions, blank lines), sometimes with a few bytes overwritten.
        fn request() -> impl Strategy<Value = Vec<u8>> {
            let blank = "(\r\n|\n){0,40}";
            let method = select(vec!["GET", "POST", "HEAD", "OPTIONS", "BREW", "get", ""]);
            let target = prop_oneof![
                "/[a-z0-9/?=&%.]{0,72}",
                Just("*".to_owned()),
                "(http|HTTPS)://[a-z]{0,6}[/?]?[a-z]{0,6}",
                "[a-z]{1,5}",
            ];
            let version = select(vec![
                "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.", "FOO/1.1",
            ]);
            let field = prop_oneof![
                Just("Host: x".to_owned()),
                "Content-Length: [0-9 ,]{0,6}",
                "Transfer-Encoding: (chunked|Chunked|gzip|gzip, chunked|chunked, gzip|)",
                "Connection: (close|keep-alive|Upgrade, close)",
                "Expect: (100-continue|magic)",
                "X-[a-z]{1,8}:[ -~]{0,60}",
                "[ -~]{0,20}",
            ];
            let eol = select(vec!["\r\n", "\n"]);
            let edits = prop::collection::vec((any::<Index>(), any::<u8>()), 0..3);
            let tail = prop::collection::vec(any::<u8>(), 0..24);
            (
                blank,
                method,
                target,
                version,
                prop::collection::vec(field, 0..10),
                eol,
                tail,
                edits,
            )
                .prop_map(
                    |(blank, method, target, version, fields, eol, tail, edits)| {
                        let mut raw = format!("{blank}{method} {target} {version}{eol}");
                        for f in fields {
                            raw.push_str(&f);
                            raw.push_str(eol);
                        }
                        raw.push_str(eol);
                        let mut raw = raw.into_bytes();
                        raw.extend_from_slice(&tail);
                        for (at, byte) in edits {
                            let i = at.index(raw.len());
                            raw[i] = byte;
                        }
                        raw
                    },
                )
        }

        /// A chunked body (sometimes with extensions, trailers, upper-case
        /// hex), then the next request's bytes, sometimes corrupted.
        fn chunked_body() -> impl Strategy<Value = Vec<u8>> {
            let chunk = (
                0usize..24,
                any::<bool>(),
                prop_oneof![
                    Just(String::new()),
                    ";[a-z]{1,4}(=[a-z0-9]{0,8})?",
                    " {1,2}"
                ],
            );
            (
                prop::collection::vec(chunk, 0..5),
                prop::collection::vec("X-[a-z]{1,5}: [a-z]{0,12}", 0..3),
                prop::collection::vec((any::<Index>(), any::<u8>()), 0..3),
            )
                .prop_map(|(chunks, trailers, edits)| {
                    let mut raw = Vec::new();
                    for (i, (len, upper, ext)) in chunks.into_iter().enumerate() {
                        let size = if upper {
                            format!("{len:X}")
                        } else {
                            format!("{len:x}")
                        };
                        raw.extend_from_slice(size.as_bytes());
                        raw.extend_from_slice(ext.as_bytes());
                        raw.extend_from_slice(b"\r\n");
                        raw.extend((0..len).map(|j| b'a' + ((i + j) % 26) as u8));
                        raw.extend_from_slice(b"\r\n");
                    }
                    raw.extend_from_slice(b"0\r\n");
                    for t in trailers {
                        raw.extend_from_slice(t.as_bytes());
                        raw.extend_from_slice(b"\r\n");
                    }
                    raw.extend_from_slice(b"\r\nNEXT");
                    for (at, byte) in edits {
                        let i = at.index(raw.len());
                        raw[i] = byte;
                    }
                    raw
                })
        }

        /// Decodes `input` arriving in the pieces `cuts` makes, the way the
        /// driver does: bytes not consumed stay buffered, and `decode` is
        /// called again until it consumes nothing or the body is done.
        fn decode_split(
            framing: BodyFraming,
            input: &[u8],
            cuts: &[usize],
        ) -> (Vec<u8>, Result<(usize, bool), ParseError>) {
            let mut decoder = BodyDecoder::new(framing).unwrap();
            let mut body = Vec::new();
            let mut consumed = 0;
            for end in cuts.iter().copied().chain([input.len()]) {
                loop {
                    let buffered = &input[consumed..end.max(consumed)];
                    match decoder.decode(buffered, &mut body, &LIMITS) {
                        Err(e) => return (body, Err(e)),
                        Ok((n, done)) => {
                            assert!(n <= buffered.len());
                            consumed += n;
                            if done {
                                return (body, Ok((consumed, true)));
                            }
                            if n == 0 {
                                break;
                            }
                        }
                    }
                }
            }
            (body, Ok((consumed, false)))
        }

        fn cut_points(len: usize, cuts: Vec<Index>) -> Vec<usize> {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.index(len + 1)).collect();
            cuts.sort_unstable();
            cuts
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(160))]

            #[test]
            fn request_head_is_the_same_however_it_arrives(raw in prop_oneof![
                4 => request(),
                1 => prop::collection::vec(any::<u8>(), 0..300),
            ]) {
                let whole = parse_limited(&raw);
                // The driver parses its buffer after every read, so each
                // prefix is a possible call; the first that decides must
                // decide like the whole input.
                for end in 0..raw.len() {
                    let prefix = parse_limited(&raw[..end]);
                    if prefix.result != Ok(None) {
                        prop_assert_eq!(&prefix, &whole, "prefix of {} bytes", end);
                    }
                }
            }

            #[test]
            fn chunked_body_is_the_same_however_it_arrives(
                raw in prop_oneof![
                    4 => chunked_body(),
                    1 => prop::collection::vec(any::<u8>(), 0..120),
                ],
                cuts in prop::collection::vec(any::<Index>(), 0..8),
            ) {
                let whole = decode_split(BodyFraming::Chunked, &raw, &[]);
                let cuts = cut_points(raw.len(), cuts);
                prop_assert_eq!(decode_split(BodyFraming::Chunked, &raw, &cuts), whole.clone());
                let bytewise: Vec<usize> = (1..raw.len()).collect();
                prop_assert_eq!(decode_split(BodyFraming::Chunked, &raw, &bytewise), whole);
            }

            #[test]
            fn sized_body_is_the_same_however_it_arrives(
                raw in prop::collection::vec(any::<u8>(), 0..100),
                len in 1u64..80,
                cuts in prop::collection::vec(any::<Index>(), 0..8),
            ) {
                let whole = decode_split(BodyFraming::Length(len), &raw, &[]);
                let done = raw.len() as u64 >= len;
                let used = len.min(raw.len() as u64) as usize;
                prop_assert_eq!(&whole, &(raw[..used].to_vec(), Ok((used, done))));
                let cuts = cut_points(raw.len(), cuts);
                prop_assert_eq!(decode_split(BodyFraming::Length(len), &raw, &cuts), whole);
            }
        }
    }
}
