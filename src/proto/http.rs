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
/// status to answer with. Leading empty lines are skipped (RFC 9112 §2.2).
pub fn parse_request_head(
    buf: &[u8],
    limits: &HttpLimits,
    head: &mut RequestHead,
) -> Result<Option<usize>, ParseError> {
    // The request line must end within the limit; checked before httparse so a
    // huge target is refused with 414 whatever follows it.
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line_window = &buf[start..buf.len().min(start + limits.max_request_line + 2)];
    if memchr::memchr(b'\n', line_window).is_none() {
        if line_window.len() > limits.max_request_line {
            return Err(err(StatusCode::URI_TOO_LONG, "request line too long"));
        }
        return Ok(None);
    }

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
    let status = req.parse_with_uninit_headers(buf, slots);
    let len = match status {
        Ok(httparse::Status::Complete(len)) => {
            if len > limits.max_head_size {
                return Err(err(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "request head too large",
                ));
            }
            len
        }
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_head_size {
                return Err(err(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "request head too large",
                ));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(err(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header fields",
            ))
        }
        Err(httparse::Error::Version) => return Err(version_error(&buf[start..])),
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

fn version_error(line: &[u8]) -> ParseError {
    // `HTTP/2.0` or `HTTP/1.2` is a version we do not speak (505); anything else
    // in that position is just a malformed request line.
    let end = memchr::memchr(b'\n', line).unwrap_or(line.len());
    let line = line[..end].strip_suffix(b"\r").unwrap_or(&line[..end]);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            err(
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                "unsupported HTTP version",
            )
        }
        _ => bad("malformed request line"),
    }
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
}
