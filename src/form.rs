//! HTML form bodies: `application/x-www-form-urlencoded`, `text/plain` and
//! `multipart/form-data`, buffered ([`FormData`]) or streamed
//! ([`MultipartParser`]).
//!
//! # Buffered
//!
//! [`FormData::parse`] takes a whole request body and its `Content-Type` and
//! gives multi-valued text fields ([`FormData::get`], [`FormData::get_all`])
//! and uploaded files ([`FormData::file`], [`FormData::files`]):
//!
//! ```
//! use pollserve::form::FormData;
//!
//! let form = FormData::parse(b"name=Hello+World%21&tag=a&tag=b",
//!                            "application/x-www-form-urlencoded").unwrap();
//! assert_eq!(form.get("name"), Some("Hello World!"));
//! assert_eq!(form.get_all("tag").collect::<Vec<_>>(), ["a", "b"]);
//! ```
//!
//! Unlike `adafruit_httpserver`, values are decoded (`+` is a space, `%XX` escapes
//! are resolved) and are **not** HTML-escaped: pass anything you reflect into
//! a page through [`html_escape`](crate::escape::html_escape).
//!
//! # Streamed
//!
//! [`MultipartParser`] is a sans-IO `multipart/form-data` parser: feed it
//! body bytes in chunks of any size and pull [`MultipartEvent`]s
//! (`PartStart`, `PartData`, `PartEnd`, `End`), so a large upload can be
//! written to disk as it arrives. [`FormData`] is built on the same parser.
//!
//! # Limits and errors
//!
//! Every parse is bounded by a [`FormLimits`]. Exceeding a limit, malformed
//! input and unsupported content types are [`FormError`]s, each with an HTTP
//! status ([`FormError::status`]: 400, 413 or 415) and convertible into
//! [`HttpError`] so a handler can use `?`. Nothing here panics, whatever the
//! input.

use crate::pairs::Pairs;
use std::borrow::Cow;
use std::fmt;

use memchr::memmem;

use crate::error::HttpError;
use crate::headers::Headers;
use crate::status::StatusCode;
use crate::url::{decode_form_component, DecodeError};

/// Bounds applied while parsing a form body.
///
/// The defaults suit ordinary HTML forms with modest uploads; a server that
/// streams large uploads to disk with [`MultipartParser`] raises
/// `max_file_bytes` and `max_total_bytes`. [`Request::form`](crate::Request::form)
/// does not use these two defaults: it takes both from the request's body
/// limit ([`Route::max_body_size`](crate::Route::max_body_size) or
/// [`ServerConfig::max_body_size`](crate::ServerConfig::max_body_size)),
/// so raising that one limit is enough for a larger upload form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormLimits {
    /// Most fields (urlencoded pairs, text/plain lines, multipart parts,
    /// files included). Exceeding it is [`FormError::TooManyParts`] (413).
    pub max_parts: usize,
    /// Most bytes in the header block of one multipart part (and in the
    /// transport padding after a boundary). Exceeding it is
    /// [`FormError::PartHeadersTooLarge`] (413).
    pub max_part_header_bytes: usize,
    /// Most bytes in one text field: the raw `name=value` pair for urlencoded
    /// and text/plain bodies, the part body for a multipart part without a
    /// `filename`. Exceeding it is [`FormError::FieldTooLarge`] (413).
    pub max_field_bytes: usize,
    /// Most bytes in one uploaded file (a multipart part with a `filename`).
    /// Exceeding it is [`FormError::FileTooLarge`] (413).
    pub max_file_bytes: u64,
    /// Most bytes in the whole body. Exceeding it is
    /// [`FormError::BodyTooLarge`] (413).
    pub max_total_bytes: u64,
}

impl Default for FormLimits {
    /// 1000 parts, 8 KiB of headers per part, 1 MiB per text field and
    /// 16 MiB per file and in total.
    fn default() -> FormLimits {
        FormLimits {
            max_parts: 1000,
            max_part_header_bytes: 8 * 1024,
            max_field_bytes: 1024 * 1024,
            max_file_bytes: 16 * 1024 * 1024,
            max_total_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Why a form body was refused.
///
/// [`status`](FormError::status) gives the HTTP status to answer with, and
/// `From<FormError> for HttpError` uses it. The messages never repeat field
/// contents, only (truncated) header values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    /// The request has no `Content-Type`, or one that is not a form encoding
    /// (415).
    #[error("unsupported form content type {0:?}")]
    UnsupportedContentType(String),
    /// `multipart/form-data` without a `boundary` parameter (400).
    #[error("multipart/form-data content type has no boundary parameter")]
    MissingBoundary,
    /// The `boundary` parameter is empty, longer than 70 characters, uses a
    /// character RFC 2046 does not allow, or the `Content-Type` parameters
    /// are malformed (400).
    #[error("invalid multipart boundary or content type parameters")]
    InvalidBoundary,
    /// The body never contains the opening boundary delimiter (400).
    #[error("multipart body does not contain its boundary")]
    BoundaryNotFound,
    /// A boundary delimiter is followed by something other than `--`, optional
    /// spaces and CRLF (400). This also catches the boundary string appearing
    /// inside a part's data, which RFC 2046 forbids.
    #[error("malformed multipart boundary line")]
    MalformedBoundaryLine,
    /// The body ended before the closing `--boundary--` delimiter (400).
    #[error("multipart body ended without its closing boundary")]
    MissingClosingBoundary,
    /// The body ended inside a part's header block, before its CRLFCRLF (400).
    #[error("multipart part headers are not terminated by an empty line")]
    IncompletePartHeaders,
    /// A part's header block is malformed: not UTF-8, a line without a colon,
    /// a name that is not a token, a folded line, a bare CR or LF, a control
    /// character (400).
    #[error("malformed multipart part header: {0}")]
    InvalidPartHeader(&'static str),
    /// A part's `Content-Disposition` is missing, repeated, not `form-data`,
    /// lacks `name`, repeats a parameter or has an undecodable `filename*`
    /// (400).
    #[error("invalid Content-Disposition in multipart part: {0}")]
    InvalidContentDisposition(&'static str),
    /// A part declares a `Content-Transfer-Encoding` other than `7bit`,
    /// `8bit` or `binary` (400; RFC 7578 §4.7 deprecates it).
    #[error("unsupported Content-Transfer-Encoding in multipart part")]
    UnsupportedTransferEncoding,
    /// An invalid `%XX` escape in an urlencoded body (400).
    #[error("invalid percent-escape in form body")]
    InvalidEncoding,
    /// A text field (or a whole urlencoded/text-plain body) is not UTF-8 (400).
    #[error("form field is not valid UTF-8")]
    InvalidUtf8,
    /// A `text/plain` body whose first line has no `=` (400).
    #[error("malformed text/plain form body")]
    MalformedTextPlain,
    /// More fields or parts than [`FormLimits::max_parts`] (413).
    #[error("form has more than {limit} fields (FormLimits::max_parts)")]
    TooManyParts {
        /// The limit in force.
        limit: usize,
    },
    /// A part's header block exceeds [`FormLimits::max_part_header_bytes`]
    /// (413).
    #[error("multipart part headers exceed {limit} bytes (FormLimits::max_part_header_bytes)")]
    PartHeadersTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// A text field exceeds [`FormLimits::max_field_bytes`] (413).
    #[error("form field exceeds {limit} bytes (FormLimits::max_field_bytes)")]
    FieldTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// An uploaded file exceeds [`FormLimits::max_file_bytes`] (413).
    #[error(
        "uploaded file exceeds {limit} bytes (FormLimits::max_file_bytes; Request::form follows the body limit, Route::max_body_size)"
    )]
    FileTooLarge {
        /// The limit in force.
        limit: u64,
    },
    /// The body exceeds [`FormLimits::max_total_bytes`] (413).
    #[error(
        "form body exceeds {limit} bytes (FormLimits::max_total_bytes; Request::form follows the body limit, Route::max_body_size)"
    )]
    BodyTooLarge {
        /// The limit in force.
        limit: u64,
    },
}

impl FormError {
    /// The status to answer with: 415 for an unsupported content type, 413
    /// for an exceeded limit, 400 for malformed input.
    pub fn status(&self) -> StatusCode {
        match self {
            FormError::UnsupportedContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            FormError::TooManyParts { .. }
            | FormError::PartHeadersTooLarge { .. }
            | FormError::FieldTooLarge { .. }
            | FormError::FileTooLarge { .. }
            | FormError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<FormError> for HttpError {
    fn from(e: FormError) -> HttpError {
        let message = match &e {
            // Keep client-supplied text short in the response body.
            FormError::UnsupportedContentType(ct) => {
                let short: String = ct.chars().take(64).collect();
                format!("unsupported form content type {short:?}")
            }
            other => other.to_string(),
        };
        HttpError::new(e.status(), message)
    }
}

fn decode_error(e: DecodeError) -> FormError {
    match e {
        DecodeError::InvalidUtf8 => FormError::InvalidUtf8,
        _ => FormError::InvalidEncoding,
    }
}

// ---------------------------------------------------------------------------
// Content types
// ---------------------------------------------------------------------------

/// The form encoding named by a `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormEncoding {
    /// `application/x-www-form-urlencoded`.
    UrlEncoded,
    /// `text/plain` (HTML's `name=value` lines).
    TextPlain,
    /// `multipart/form-data` with its (validated, unquoted) boundary.
    Multipart {
        /// The `boundary` parameter.
        boundary: String,
    },
}

impl FormEncoding {
    /// Reads a `Content-Type` value. The media type compares
    /// case-insensitively; for multipart the `boundary` parameter (quoted or
    /// not) is required and checked against RFC 2046 (1–70 characters from
    /// its `bchars` set, not ending in a space). Other parameters (`charset`)
    /// are ignored: bodies must be UTF-8.
    pub fn from_content_type(content_type: &str) -> Result<FormEncoding, FormError> {
        let (media, params) = match content_type.find(';') {
            Some(i) => (&content_type[..i], &content_type[i..]),
            None => (content_type, ""),
        };
        let media = media.trim_matches([' ', '\t']);
        if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            Ok(FormEncoding::UrlEncoded)
        } else if media.eq_ignore_ascii_case("text/plain") {
            Ok(FormEncoding::TextPlain)
        } else if media.eq_ignore_ascii_case("multipart/form-data") {
            let params = parse_params(params).map_err(|_| FormError::InvalidBoundary)?;
            let boundary = params
                .into_iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
                .map(|(_, v)| v)
                .ok_or(FormError::MissingBoundary)?;
            if !is_valid_boundary(&boundary) {
                return Err(FormError::InvalidBoundary);
            }
            Ok(FormEncoding::Multipart {
                boundary: boundary.into_owned(),
            })
        } else {
            Err(FormError::UnsupportedContentType(content_type.to_owned()))
        }
    }
}

/// RFC 2046 §5.1.1: `0*69<bchars> bcharsnospace`.
fn is_valid_boundary(b: &str) -> bool {
    let bytes = b.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 70
        && bytes[bytes.len() - 1] != b' '
        && bytes
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c))
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses `*( OWS ";" OWS name "=" value )` where value is a quoted string
/// or a run of visible characters other than `;` and `"`. Empty parameters
/// (`;;`, a trailing `;`) are tolerated; a repeated name is an error.
///
/// Inside quotes, `\"` and `\\` are escapes; any other backslash is kept as it
/// is, because browsers do not escape backslashes in file names.
fn parse_params(s: &str) -> Result<Vec<(&str, Cow<'_, str>)>, ()> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out: Vec<(&str, Cow<'_, str>)> = Vec::new();
    let skip_ows = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ows(&mut i);
        if i == b.len() {
            return Ok(out);
        }
        if b[i] != b';' {
            return Err(());
        }
        i += 1;
        skip_ows(&mut i);
        if i == b.len() || b[i] == b';' {
            continue;
        }
        let name_start = i;
        while i < b.len() && is_token_byte(b[i]) {
            i += 1;
        }
        if i == name_start || i == b.len() || b[i] != b'=' {
            return Err(());
        }
        let name = &s[name_start..i];
        i += 1;
        let value: Cow<'_, str> = if i < b.len() && b[i] == b'"' {
            i += 1;
            let start = i;
            let mut owned: Option<String> = None;
            loop {
                let c = *b.get(i).ok_or(())?;
                match c {
                    b'"' => break,
                    b'\\' if matches!(b.get(i + 1), Some(b'"' | b'\\')) => {
                        let o = owned.get_or_insert_with(|| s[start..i].to_owned());
                        o.push(b[i + 1] as char);
                        i += 2;
                        continue;
                    }
                    c if c < 0x20 && c != b'\t' => return Err(()),
                    0x7f => return Err(()),
                    _ => {}
                }
                // Copy the whole UTF-8 character when building an owned value.
                let len = utf8_len(c);
                if let Some(o) = owned.as_mut() {
                    o.push_str(s.get(i..i + len).ok_or(())?);
                }
                i += len;
            }
            let v = match owned {
                Some(o) => Cow::Owned(o),
                None => Cow::Borrowed(&s[start..i]),
            };
            i += 1; // closing quote
            v
        } else {
            let start = i;
            while i < b.len() && b[i] > b' ' && b[i] != 0x7f && b[i] != b';' && b[i] != b'"' {
                i += 1;
            }
            if i == start {
                return Err(());
            }
            Cow::Borrowed(&s[start..i])
        };
        if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(());
        }
        out.push((name, value));
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

// ---------------------------------------------------------------------------
// Part headers
// ---------------------------------------------------------------------------

/// The headers of one multipart part, with its `Content-Disposition` read.
#[derive(Debug, Clone)]
pub struct PartHeaders {
    headers: Headers,
    name: String,
    filename: Option<String>,
}

impl PartHeaders {
    /// The field name (`name=` of `Content-Disposition`); may be empty.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client's file name, if the part is a file upload: `filename*`
    /// (RFC 8187, decoded) when present, else `filename`. It is raw client
    /// input — it may contain path separators or be empty (a file input left
    /// blank); see [`UploadedFile::safe_filename`].
    pub fn filename(&self) -> Option<&str> {
        self.filename.as_deref()
    }

    /// The last component of [`filename`](Self::filename), if usable as a
    /// name: the same rule as [`UploadedFile::safe_filename`], for parts
    /// streamed through [`MultipartParser`].
    ///
    /// ```
    /// use pollserve::form::{FormLimits, MultipartEvent, MultipartParser};
    /// let body = b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../../etc/passwd\"\r\n\r\nx\r\n--b--\r\n";
    /// let mut parser = MultipartParser::new("b", FormLimits::default()).unwrap();
    /// parser.feed(body).unwrap();
    /// let Some(MultipartEvent::PartStart(headers)) = parser.next_event().unwrap() else {
    ///     panic!("a part");
    /// };
    /// assert_eq!(headers.filename(), Some("../../etc/passwd"));
    /// assert_eq!(headers.safe_filename(), Some("passwd"));
    /// ```
    pub fn safe_filename(&self) -> Option<&str> {
        self.filename.as_deref().and_then(safe_name)
    }

    /// Whether the part is a file upload (has a `filename` or `filename*`).
    pub fn is_file(&self) -> bool {
        self.filename.is_some()
    }

    /// The part's `Content-Type` value, if it sent one (RFC 7578 says the
    /// default is `text/plain`).
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get("Content-Type")
    }

    /// Every header of the part.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    fn parse(block: &[u8]) -> Result<PartHeaders, FormError> {
        let text = std::str::from_utf8(block)
            .map_err(|_| FormError::InvalidPartHeader("headers are not UTF-8"))?;
        let mut headers = Headers::new();
        if !text.is_empty() {
            for line in text.split("\r\n") {
                if line.starts_with([' ', '\t']) {
                    return Err(FormError::InvalidPartHeader("folded header line"));
                }
                let (name, value) = line
                    .split_once(':')
                    .ok_or(FormError::InvalidPartHeader("header line without a colon"))?;
                if name.is_empty() || !name.bytes().all(is_token_byte) {
                    return Err(FormError::InvalidPartHeader("header name is not a token"));
                }
                if value.bytes().any(|c| (c < 0x20 && c != b'\t') || c == 0x7f) {
                    return Err(FormError::InvalidPartHeader(
                        "control character in header value",
                    ));
                }
                headers.add(name, value.trim_matches([' ', '\t']));
            }
        }

        let (name, filename) = {
            let mut dispositions = headers.get_all("Content-Disposition");
            let disposition = dispositions
                .next()
                .ok_or(FormError::InvalidContentDisposition("missing"))?;
            if dispositions.next().is_some() {
                return Err(FormError::InvalidContentDisposition("repeated"));
            }
            parse_disposition(disposition)?
        };
        if headers.get_all("Content-Type").nth(1).is_some() {
            return Err(FormError::InvalidPartHeader("repeated Content-Type"));
        }
        if let Some(cte) = headers.get("Content-Transfer-Encoding") {
            if !["7bit", "8bit", "binary"]
                .iter()
                .any(|ok| cte.eq_ignore_ascii_case(ok))
            {
                return Err(FormError::UnsupportedTransferEncoding);
            }
        }
        Ok(PartHeaders {
            headers,
            name,
            filename,
        })
    }
}

/// Reads `form-data; name="x"; filename="y"; filename*=UTF-8''z`.
fn parse_disposition(value: &str) -> Result<(String, Option<String>), FormError> {
    let (kind, params) = match value.find(';') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    if !kind
        .trim_matches([' ', '\t'])
        .eq_ignore_ascii_case("form-data")
    {
        return Err(FormError::InvalidContentDisposition("not form-data"));
    }
    let params = parse_params(params)
        .map_err(|_| FormError::InvalidContentDisposition("malformed parameters"))?;
    let get = |n: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v)
    };
    let name = get("name")
        .ok_or(FormError::InvalidContentDisposition("no name parameter"))?
        .to_string();
    let filename = match get("filename*") {
        Some(ext) => Some(
            decode_ext_value(ext)
                .ok_or(FormError::InvalidContentDisposition("invalid filename*"))?,
        ),
        None => get("filename").map(|f| f.to_string()),
    };
    Ok((name, filename))
}

/// Decodes an RFC 8187 `ext-value` (`UTF-8'lang'pct-encoded`); ISO-8859-1 is
/// accepted too. `None` if it is malformed or uses another charset.
fn decode_ext_value(ext: &str) -> Option<String> {
    let mut it = ext.splitn(3, '\'');
    let charset = it.next()?;
    let _language = it.next()?;
    let encoded = it.next()?.as_bytes();
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        let c = encoded[i];
        if c == b'%' {
            let hex = encoded.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if c.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&c) {
            bytes.push(c);
            i += 1;
        } else {
            return None;
        }
    }
    if charset.eq_ignore_ascii_case("UTF-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("ISO-8859-1") {
        Some(bytes.into_iter().map(char::from).collect())
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// Streaming multipart parser
// ---------------------------------------------------------------------------

/// What [`MultipartParser::next_event`] reports, in this order for each part:
/// one `PartStart`, any number of `PartData` (never empty), one `PartEnd`;
/// and `End` once after the last part.
#[derive(Debug)]
pub enum MultipartEvent<'a> {
    /// A part begins; its headers are complete and checked.
    PartStart(PartHeaders),
    /// The next bytes of the current part's body. One part's data may come in
    /// any number of pieces, whatever the chunking of the input.
    PartData(&'a [u8]),
    /// The current part's body is complete.
    PartEnd,
    /// The closing boundary was read; anything after it (the epilogue) is
    /// ignored.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for the first delimiter.
    Preamble,
    /// Just after a delimiter: `--` (close), or padding and CRLF.
    AfterDelimiter,
    /// At the CRLF that ends the boundary line, waiting for CRLFCRLF.
    Headers,
    /// Inside a part body.
    Body,
    /// After the close delimiter.
    Epilogue,
}

/// Internal event with offsets instead of borrowed data.
enum Step {
    Start(PartHeaders),
    Data(usize, usize),
    PartEnd,
    End,
}

/// A sans-IO, incremental `multipart/form-data` parser (RFC 7578, RFC 2046).
///
/// Feed body bytes with [`feed`](Self::feed), then call
/// [`next_event`](Self::next_event) until it returns `Ok(None)` (it needs
/// more input); when the body is complete, call [`finish`](Self::finish),
/// which fails unless the closing boundary was seen. Memory use is bounded by
/// the size of the chunks fed plus the boundary length and
/// [`FormLimits::max_part_header_bytes`]: part data is handed out as it
/// arrives, holding back only the few bytes that might begin a delimiter.
///
/// The parser is strict: the boundary must open the body (a preamble before
/// it is skipped) and every delimiter must be followed by `--` or by optional
/// spaces and CRLF; part headers must be CRLF-terminated `name: value` lines
/// ended by an empty line, with exactly one `Content-Disposition: form-data`
/// carrying a `name`. The first error is final: every later call returns it.
///
/// ```
/// use pollserve::form::{FormLimits, MultipartEvent, MultipartParser};
///
/// let body = b"--XyZ\r\n\
///     Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
///     Content-Type: text/plain\r\n\r\n\
///     hello world\r\n\
///     --XyZ--\r\n";
/// let mut parser = MultipartParser::new("XyZ", FormLimits::default()).unwrap();
/// let mut received = Vec::new();
/// for chunk in body.chunks(5) {
///     // As if from the network.
///     parser.feed(chunk).unwrap();
///     while let Some(event) = parser.next_event().unwrap() {
///         match event {
///             MultipartEvent::PartStart(h) => assert_eq!(h.filename(), Some("a.txt")),
///             MultipartEvent::PartData(d) => received.extend_from_slice(d), // write to disk
///             MultipartEvent::PartEnd | MultipartEvent::End => {}
///         }
///     }
/// }
/// parser.finish().unwrap();
/// assert_eq!(received, b"hello world");
/// ```
pub struct MultipartParser {
    finder: memmem::Finder<'static>,
    delimiter_len: usize,
    buf: Vec<u8>,
    pos: usize,
    state: State,
    limits: FormLimits,
    total: u64,
    parts: usize,
    padding: usize,
    part_len: u64,
    part_is_file: bool,
    error: Option<FormError>,
}

impl fmt::Debug for MultipartParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultipartParser")
            .field("state", &self.state)
            .field("buffered", &(self.buf.len() - self.pos))
            .field("total", &self.total)
            .field("parts", &self.parts)
            .field("error", &self.error)
            .finish()
    }
}

impl MultipartParser {
    /// A parser for parts separated by `boundary` (the unquoted parameter
    /// value). Fails with [`FormError::InvalidBoundary`] if it breaks
    /// RFC 2046's rules.
    pub fn new(boundary: &str, limits: FormLimits) -> Result<MultipartParser, FormError> {
        if !is_valid_boundary(boundary) {
            return Err(FormError::InvalidBoundary);
        }
        let mut delimiter = Vec::with_capacity(boundary.len() + 4);
        delimiter.extend_from_slice(b"\r\n--");
        delimiter.extend_from_slice(boundary.as_bytes());
        let delimiter_len = delimiter.len();
        Ok(MultipartParser {
            finder: memmem::Finder::new(&delimiter).into_owned(),
            delimiter_len,
            // A virtual CRLF, so that a body starting with the boundary has
            // its delimiter found like any other.
            buf: b"\r\n".to_vec(),
            pos: 0,
            state: State::Preamble,
            limits,
            total: 0,
            parts: 0,
            padding: 0,
            part_len: 0,
            part_is_file: false,
            error: None,
        })
    }

    /// A parser for a request with this `Content-Type`, which must be
    /// `multipart/form-data` with a valid boundary.
    pub fn from_content_type(
        content_type: &str,
        limits: FormLimits,
    ) -> Result<MultipartParser, FormError> {
        match FormEncoding::from_content_type(content_type)? {
            FormEncoding::Multipart { boundary } => MultipartParser::new(&boundary, limits),
            _ => Err(FormError::UnsupportedContentType(content_type.to_owned())),
        }
    }

    /// Appends body bytes. Fails with [`FormError::BodyTooLarge`] once more
    /// than [`FormLimits::max_total_bytes`] have been fed, or with an earlier
    /// error. Bytes after the closing boundary are counted and dropped.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), FormError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        self.total = self.total.saturating_add(chunk.len() as u64);
        if self.total > self.limits.max_total_bytes {
            return Err(self.fail(FormError::BodyTooLarge {
                limit: self.limits.max_total_bytes,
            }));
        }
        if self.state == State::Epilogue {
            return Ok(());
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// The next event, `Ok(None)` when more input is needed (or after `End`).
    ///
    /// `PartData` borrows the parser's buffer; it is valid until the next call.
    pub fn next_event(&mut self) -> Result<Option<MultipartEvent<'_>>, FormError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match self.step() {
            Err(e) => Err(self.fail(e)),
            Ok(None) => Ok(None),
            Ok(Some(Step::Start(h))) => Ok(Some(MultipartEvent::PartStart(h))),
            Ok(Some(Step::Data(a, b))) => Ok(Some(MultipartEvent::PartData(&self.buf[a..b]))),
            Ok(Some(Step::PartEnd)) => Ok(Some(MultipartEvent::PartEnd)),
            Ok(Some(Step::End)) => Ok(Some(MultipartEvent::End)),
        }
    }

    /// Declares the end of the body. Succeeds only if the closing boundary
    /// was reached; call it after [`next_event`](Self::next_event) has
    /// returned `Ok(None)`, or events still buffered count as truncated.
    pub fn finish(&mut self) -> Result<(), FormError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let err = match self.state {
            State::Epilogue => return Ok(()),
            State::Preamble => FormError::BoundaryNotFound,
            State::Headers => FormError::IncompletePartHeaders,
            State::AfterDelimiter | State::Body => FormError::MissingClosingBoundary,
        };
        Err(self.fail(err))
    }

    /// Whether the closing boundary has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Epilogue
    }

    /// Body bytes fed so far.
    pub fn bytes_fed(&self) -> u64 {
        self.total
    }

    fn fail(&mut self, e: FormError) -> FormError {
        self.error = Some(e.clone());
        e
    }

    fn step(&mut self) -> Result<Option<Step>, FormError> {
        let dlen = self.delimiter_len;
        loop {
            let hay = &self.buf[self.pos..];
            match self.state {
                State::Preamble => match self.finder.find(hay) {
                    Some(i) => {
                        self.pos += i + dlen;
                        self.padding = 0;
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        // Keep only what may begin a delimiter.
                        self.pos += hay.len().saturating_sub(dlen - 1);
                        return Ok(None);
                    }
                },
                State::AfterDelimiter => {
                    if self.padding == 0 {
                        if hay.starts_with(b"--") {
                            self.pos += 2;
                            self.state = State::Epilogue;
                            return Ok(Some(Step::End));
                        }
                        if hay.is_empty() || hay == b"-" {
                            return Ok(None);
                        }
                    }
                    let n = hay.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
                    self.pos += n;
                    self.padding += n;
                    if self.padding > self.limits.max_part_header_bytes {
                        return Err(FormError::PartHeadersTooLarge {
                            limit: self.limits.max_part_header_bytes,
                        });
                    }
                    let rest = &self.buf[self.pos..];
                    match rest {
                        [] | [b'\r'] => return Ok(None),
                        [b'\r', b'\n', ..] => self.state = State::Headers,
                        _ => return Err(FormError::MalformedBoundaryLine),
                    }
                }
                State::Headers => {
                    // `hay` starts with the CRLF ending the boundary line, so
                    // an empty header block is found at 0.
                    let limit = self.limits.max_part_header_bytes;
                    match memmem::find(hay, b"\r\n\r\n") {
                        Some(i) => {
                            if i > limit + 2 {
                                return Err(FormError::PartHeadersTooLarge { limit });
                            }
                            let block = if i == 0 { &[][..] } else { &hay[2..i] };
                            let headers = PartHeaders::parse(block)?;
                            self.parts += 1;
                            if self.parts > self.limits.max_parts {
                                return Err(FormError::TooManyParts {
                                    limit: self.limits.max_parts,
                                });
                            }
                            // The CRLF before the next delimiter belongs to
                            // it, so the body starts right after CRLFCRLF.
                            self.pos += i + 4;
                            self.state = State::Body;
                            self.part_len = 0;
                            self.part_is_file = headers.is_file();
                            return Ok(Some(Step::Start(headers)));
                        }
                        None => {
                            if hay.len() > limit + 5 {
                                return Err(FormError::PartHeadersTooLarge { limit });
                            }
                            return Ok(None);
                        }
                    }
                }
                State::Body => {
                    let data_len = match self.finder.find(hay) {
                        Some(0) => {
                            self.pos += dlen;
                            self.padding = 0;
                            self.state = State::AfterDelimiter;
                            return Ok(Some(Step::PartEnd));
                        }
                        Some(i) => i,
                        None => hay.len().saturating_sub(dlen - 1),
                    };
                    if data_len == 0 {
                        return Ok(None);
                    }
                    self.part_len = self.part_len.saturating_add(data_len as u64);
                    if self.part_is_file {
                        if self.part_len > self.limits.max_file_bytes {
                            return Err(FormError::FileTooLarge {
                                limit: self.limits.max_file_bytes,
                            });
                        }
                    } else if self.part_len > self.limits.max_field_bytes as u64 {
                        return Err(FormError::FieldTooLarge {
                            limit: self.limits.max_field_bytes,
                        });
                    }
                    let start = self.pos;
                    self.pos += data_len;
                    return Ok(Some(Step::Data(start, self.pos)));
                }
                State::Epilogue => {
                    self.pos = self.buf.len();
                    return Ok(None);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Buffered form data
// ---------------------------------------------------------------------------

/// A file received in a `multipart/form-data` part that had a `filename`.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadedFile {
    /// The form field name.
    pub name: String,
    /// The file name the client sent (`filename*` decoded if present), raw:
    /// it may hold path separators, `..` or be empty (browsers send an empty
    /// part with `filename=""` for a file input left blank). Never use it as
    /// a path without [`safe_filename`](Self::safe_filename).
    pub filename: String,
    /// The part's `Content-Type` (full value), `text/plain` if absent as
    /// RFC 7578 §4.4 says. Client-chosen: do not trust it.
    pub content_type: String,
    /// The file's bytes.
    pub data: Vec<u8>,
}

/// The last path component of a client's file name, if it is a usable name.
fn safe_name(filename: &str) -> Option<&str> {
    let last = filename.rsplit(['/', '\\']).next().unwrap_or("");
    if last.is_empty() || last == "." || last == ".." || last.chars().any(char::is_control) {
        None
    } else {
        Some(last)
    }
}

impl UploadedFile {
    /// The last component of [`filename`](Self::filename) (after any `/` or
    /// `\`), or `None` if that is empty, `.`, `..`, or holds a control
    /// character. Still only a name, not a vetted path: check for collisions
    /// and reserved names before writing to disk.
    ///
    /// A `"` in the client's name may arrive as `%22` (browsers and Python
    /// `requests` escape it that way in `filename="…"`); the name is given as
    /// sent, not unescaped, since the escaping is not standard.
    pub fn safe_filename(&self) -> Option<&str> {
        safe_name(&self.filename)
    }

    /// The number of bytes received.
    pub fn size(&self) -> usize {
        self.data.len()
    }
}

impl fmt::Debug for UploadedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadedFile")
            .field("name", &self.name)
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("size", &self.data.len())
            .finish()
    }
}

/// A parsed form body: multi-valued text fields and uploaded files, in the
/// order they were sent.
///
/// Values are decoded but not HTML-escaped; see the [module docs](self).
///
/// ```
/// use pollserve::form::FormData;
///
/// let body = b"--b\r\n\
///     Content-Disposition: form-data; name=\"title\"\r\n\r\n\
///     Holiday\r\n\
///     --b\r\n\
///     Content-Disposition: form-data; name=\"photo\"; filename=\"beach.jpg\"\r\n\
///     Content-Type: image/jpeg\r\n\r\n\
///     \xff\xd8\xff\r\n\
///     --b--\r\n";
/// let form = FormData::parse(body, "multipart/form-data; boundary=b").unwrap();
/// assert_eq!(form.get("title"), Some("Holiday"));
/// let photo = form.file("photo").unwrap();
/// assert_eq!(photo.filename, "beach.jpg");
/// assert_eq!(photo.content_type, "image/jpeg");
/// assert_eq!(photo.data, b"\xff\xd8\xff");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormData {
    fields: Pairs,
    files: Vec<UploadedFile>,
}

const FEED_CHUNK: usize = 64 * 1024;

impl FormData {
    /// Parses `body` as the form encoding named by `content_type`, with
    /// [`FormLimits::default`].
    pub fn parse(body: &[u8], content_type: &str) -> Result<FormData, FormError> {
        FormData::parse_with_limits(body, content_type, &FormLimits::default())
    }

    /// Parses `body` as the form encoding named by `content_type`.
    ///
    /// * `application/x-www-form-urlencoded`: `&`-separated `name=value`
    ///   pairs, `+` read as a space and `%XX` decoded; empty pairs are skipped,
    ///   a pair without `=` has an empty value. The body and the decoded
    ///   values must be UTF-8; an invalid escape is an error (the query-string
    ///   parser drops such pairs instead).
    /// * `text/plain`: `name=value` lines separated by CRLF (a bare LF is
    ///   accepted). The format is ambiguous — a value may itself hold a line
    ///   break — so a line without `=` continues the previous value, line
    ///   break included. A first line without `=` is an error.
    /// * `multipart/form-data`: parts with a `filename` become
    ///   [`UploadedFile`]s, the others text fields (which must be UTF-8).
    ///   Parsed by [`MultipartParser`], with all its checks.
    pub fn parse_with_limits(
        body: &[u8],
        content_type: &str,
        limits: &FormLimits,
    ) -> Result<FormData, FormError> {
        let encoding = FormEncoding::from_content_type(content_type)?;
        if body.len() as u64 > limits.max_total_bytes {
            return Err(FormError::BodyTooLarge {
                limit: limits.max_total_bytes,
            });
        }
        match encoding {
            FormEncoding::UrlEncoded => parse_urlencoded(body, limits),
            FormEncoding::TextPlain => parse_text_plain(body, limits),
            FormEncoding::Multipart { boundary } => parse_multipart(body, &boundary, limits),
        }
    }

    /// Parses `body` according to the first `Content-Type` in `headers`
    /// (a missing one is [`FormError::UnsupportedContentType`], 415).
    pub fn from_headers(
        body: &[u8],
        headers: &Headers,
        limits: &FormLimits,
    ) -> Result<FormData, FormError> {
        let content_type = headers
            .get("Content-Type")
            .ok_or_else(|| FormError::UnsupportedContentType(String::new()))?;
        FormData::parse_with_limits(body, content_type, limits)
    }

    /// The first value of the text field `name` (case-sensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name)
    }

    /// Every value of the text field `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields.get_all(name)
    }

    /// Whether there is a text field or a file called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some() || self.file(name).is_some()
    }

    /// Every text field as `(name, value)`, in order.
    pub fn fields(&self) -> &Pairs {
        &self.fields
    }

    /// The first file uploaded under the field `name`.
    pub fn file(&self, name: &str) -> Option<&UploadedFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Every file uploaded under the field `name` (`<input type=file multiple>`).
    pub fn files<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a UploadedFile> + 'a {
        self.files.iter().filter(move |f| f.name == name)
    }

    /// Every uploaded file, in order.
    pub fn all_files(&self) -> &[UploadedFile] {
        &self.files
    }

    /// Takes the uploaded files out, leaving none (to move large data
    /// without copying).
    pub fn take_files(&mut self) -> Vec<UploadedFile> {
        std::mem::take(&mut self.files)
    }

    /// Number of text fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are neither text fields nor files.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.files.is_empty()
    }
}

fn check_parts(count: usize, limits: &FormLimits) -> Result<(), FormError> {
    if count > limits.max_parts {
        Err(FormError::TooManyParts {
            limit: limits.max_parts,
        })
    } else {
        Ok(())
    }
}

fn check_field(len: usize, limits: &FormLimits) -> Result<(), FormError> {
    if len > limits.max_field_bytes {
        Err(FormError::FieldTooLarge {
            limit: limits.max_field_bytes,
        })
    } else {
        Ok(())
    }
}

fn parse_urlencoded(body: &[u8], limits: &FormLimits) -> Result<FormData, FormError> {
    let text = std::str::from_utf8(body).map_err(|_| FormError::InvalidUtf8)?;
    let mut form = FormData::default();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        check_parts(form.fields.len() + 1, limits)?;
        check_field(pair.len(), limits)?;
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode_form_component(name).map_err(decode_error)?;
        let value = decode_form_component(value).map_err(decode_error)?;
        form.fields.push(name, value);
    }
    Ok(form)
}

fn parse_text_plain(body: &[u8], limits: &FormLimits) -> Result<FormData, FormError> {
    let text = std::str::from_utf8(body).map_err(|_| FormError::InvalidUtf8)?;
    let bytes = text.as_bytes();
    let mut form = FormData::default();
    // (name start, name end, value end) of the field being read; the value
    // starts right after the `=`.
    let mut current: Option<(usize, usize, usize)> = None;
    let push = |form: &mut FormData, c: (usize, usize, usize)| -> Result<(), FormError> {
        let (ns, ne, ve) = c;
        check_parts(form.fields.len() + 1, limits)?;
        check_field(ve - ns, limits)?;
        form.fields.push(&text[ns..ne], &text[ne + 1..ve]);
        Ok(())
    };
    let mut start = 0;
    while start < bytes.len() {
        let (line_end, next) = match memchr::memchr(b'\n', &bytes[start..]) {
            Some(i) => {
                let lf = start + i;
                let end = if lf > start && bytes[lf - 1] == b'\r' {
                    lf - 1
                } else {
                    lf
                };
                (end, lf + 1)
            }
            None => (bytes.len(), bytes.len()),
        };
        let line = &text[start..line_end];
        match (line.find('='), current.as_mut()) {
            (Some(eq), _) => {
                if let Some(c) = current.take() {
                    push(&mut form, c)?;
                }
                current = Some((start, start + eq, line_end));
            }
            (None, Some(c)) => {
                c.2 = line_end;
                check_field(c.2 - c.0, limits)?;
            }
            (None, None) if line.is_empty() => {}
            (None, None) => return Err(FormError::MalformedTextPlain),
        }
        start = next;
    }
    if let Some(c) = current {
        push(&mut form, c)?;
    }
    Ok(form)
}

fn parse_multipart(
    body: &[u8],
    boundary: &str,
    limits: &FormLimits,
) -> Result<FormData, FormError> {
    let mut parser = MultipartParser::new(boundary, limits.clone())?;
    let mut form = FormData::default();
    let mut current: Option<(PartHeaders, Vec<u8>)> = None;
    // Fed in slices so the parser's own buffer stays small.
    for chunk in body.chunks(FEED_CHUNK) {
        parser.feed(chunk)?;
        while let Some(event) = parser.next_event()? {
            match event {
                MultipartEvent::PartStart(h) => current = Some((h, Vec::new())),
                MultipartEvent::PartData(d) => {
                    if let Some((_, data)) = current.as_mut() {
                        data.extend_from_slice(d);
                    }
                }
                MultipartEvent::PartEnd => {
                    if let Some((h, data)) = current.take() {
                        form.push_part(h, data)?;
                    }
                }
                MultipartEvent::End => {}
            }
        }
        if parser.is_done() {
            break;
        }
    }
    parser.finish()?;
    Ok(form)
}

impl FormData {
    fn push_part(&mut self, h: PartHeaders, data: Vec<u8>) -> Result<(), FormError> {
        let content_type = h.content_type().unwrap_or("text/plain").to_owned();
        match h.filename {
            Some(filename) => self.files.push(UploadedFile {
                name: h.name,
                filename,
                content_type,
                data,
            }),
            None => {
                let value = String::from_utf8(data).map_err(|_| FormError::InvalidUtf8)?;
                self.fields.push(h.name, value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URLENC: &str = "application/x-www-form-urlencoded";

    fn mp(body: &[u8]) -> Result<FormData, FormError> {
        FormData::parse(body, "multipart/form-data; boundary=XyZ")
    }

    fn mp_limits(body: &[u8], limits: FormLimits) -> Result<FormData, FormError> {
        FormData::parse_with_limits(body, "multipart/form-data; boundary=XyZ", &limits)
    }

    const TWO_PARTS: &[u8] = b"--XyZ\r\n\
        Content-Disposition: form-data; name=\"a\"\r\n\r\n\
        first\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"f\"; filename=\"x.bin\"\r\n\
        Content-Type: application/octet-stream\r\n\r\n\
        \x00\x01\r\n--\xff\r\n\
        --XyZ--\r\n";

    /// Runs the streaming parser over `body` fed in `chunk`-sized pieces and
    /// renders the event sequence as text.
    fn events(body: &[u8], boundary: &str, chunk: usize) -> Result<Vec<String>, FormError> {
        let mut p = MultipartParser::new(boundary, FormLimits::default())?;
        let mut out = Vec::new();
        let mut data = Vec::new();
        for c in body.chunks(chunk.max(1)) {
            p.feed(c)?;
            while let Some(e) = p.next_event()? {
                match e {
                    MultipartEvent::PartStart(h) => {
                        out.push(format!("start {} {:?}", h.name(), h.filename()))
                    }
                    MultipartEvent::PartData(d) => {
                        assert!(!d.is_empty());
                        data.extend_from_slice(d)
                    }
                    MultipartEvent::PartEnd => {
                        out.push(format!("data {:?}", String::from_utf8_lossy(&data)));
                        data.clear();
                        out.push("end".into());
                    }
                    MultipartEvent::End => out.push("END".into()),
                }
            }
        }
        p.finish()?;
        Ok(out)
    }

    // ----- urlencoded ---------------------------------------------------

    #[test]
    fn urlencoded_decodes_plus_and_percent() {
        let f = FormData::parse(b"msg=Hello+World%21&x=%E2%9C%93", URLENC).unwrap();
        assert_eq!(f.get("msg"), Some("Hello World!"));
        assert_eq!(f.get("x"), Some("✓"));
    }

    #[test]
    fn urlencoded_multi_values_and_empties() {
        let f = FormData::parse(b"&a=1&&a=2&b&c=&a=3&", URLENC).unwrap();
        assert_eq!(f.get_all("a").collect::<Vec<_>>(), ["1", "2", "3"]);
        assert_eq!(f.get("b"), Some(""));
        assert_eq!(f.get("c"), Some(""));
        assert_eq!(f.get("d"), None);
        assert_eq!(f.len(), 5);
        assert!(f.contains("b"));
    }

    #[test]
    fn urlencoded_value_with_equals_and_encoded_names() {
        let f = FormData::parse(b"k%20y=a=b", URLENC).unwrap();
        assert_eq!(f.get("k y"), Some("a=b"));
    }

    #[test]
    fn urlencoded_errors() {
        assert_eq!(
            FormData::parse(b"a=%zz", URLENC),
            Err(FormError::InvalidEncoding)
        );
        assert_eq!(
            FormData::parse(b"a=%ff", URLENC),
            Err(FormError::InvalidUtf8)
        );
        assert_eq!(
            FormData::parse(b"a=\xff", URLENC),
            Err(FormError::InvalidUtf8)
        );
        assert_eq!(
            FormData::parse(b"a=%4", URLENC),
            Err(FormError::InvalidEncoding)
        );
    }

    #[test]
    fn urlencoded_limits() {
        let limits = FormLimits {
            max_parts: 2,
            max_field_bytes: 5,
            ..FormLimits::default()
        };
        assert_eq!(
            FormData::parse_with_limits(b"a=1&b=2&c=3", URLENC, &limits),
            Err(FormError::TooManyParts { limit: 2 })
        );
        assert_eq!(
            FormData::parse_with_limits(b"a=12345", URLENC, &limits),
            Err(FormError::FieldTooLarge { limit: 5 })
        );
        assert!(FormData::parse_with_limits(b"a=123", URLENC, &limits).is_ok());
        let limits = FormLimits {
            max_total_bytes: 3,
            ..FormLimits::default()
        };
        assert_eq!(
            FormData::parse_with_limits(b"a=12", URLENC, &limits),
            Err(FormError::BodyTooLarge { limit: 3 })
        );
    }

    #[test]
    fn content_type_matching() {
        assert!(
            FormData::parse(b"a=1", "Application/X-WWW-Form-Urlencoded; charset=UTF-8").is_ok()
        );
        assert_eq!(FormData::parse(b"", URLENC).unwrap(), FormData::default());
        let e = FormData::parse(b"{}", "application/json").unwrap_err();
        assert_eq!(
            e,
            FormError::UnsupportedContentType("application/json".into())
        );
        assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(FormData::parse(b"", "").unwrap_err().status().as_u16(), 415);
        let h: Headers = [("Content-Length", "3")].into_iter().collect();
        assert_eq!(
            FormData::from_headers(b"a=1", &h, &FormLimits::default())
                .unwrap_err()
                .status()
                .as_u16(),
            415
        );
        let h: Headers = [("content-type", URLENC)].into_iter().collect();
        let f = FormData::from_headers(b"a=1", &h, &FormLimits::default()).unwrap();
        assert_eq!(f.get("a"), Some("1"));
    }

    // ----- text/plain ---------------------------------------------------

    #[test]
    fn text_plain_lines() {
        let f = FormData::parse(b"a=1\r\nb=x=y\r\na=2\r\n", "text/plain").unwrap();
        assert_eq!(f.get_all("a").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(f.get("b"), Some("x=y"));
        // Not percent-decoded; bare LF and a missing final newline accepted.
        let f = FormData::parse(b"a=Hello+%21\nb=2", "text/plain; charset=utf-8").unwrap();
        assert_eq!(f.get("a"), Some("Hello+%21"));
        assert_eq!(f.get("b"), Some("2"));
    }

    #[test]
    fn text_plain_continuation_lines() {
        let f = FormData::parse(
            b"msg=line one\r\nline two\r\n\r\nlast\r\nn=1\r\n",
            "text/plain",
        )
        .unwrap();
        assert_eq!(f.get("msg"), Some("line one\r\nline two\r\n\r\nlast"));
        assert_eq!(f.get("n"), Some("1"));
    }

    #[test]
    fn text_plain_errors_and_limits() {
        assert_eq!(
            FormData::parse(b"no equals\r\n", "text/plain"),
            Err(FormError::MalformedTextPlain)
        );
        assert_eq!(
            FormData::parse(b"\xfe=1", "text/plain"),
            Err(FormError::InvalidUtf8)
        );
        assert!(FormData::parse(b"\r\n\r\n", "text/plain")
            .unwrap()
            .is_empty());
        let limits = FormLimits {
            max_parts: 1,
            max_field_bytes: 6,
            ..FormLimits::default()
        };
        assert_eq!(
            FormData::parse_with_limits(b"a=1\r\nb=2\r\n", "text/plain", &limits),
            Err(FormError::TooManyParts { limit: 1 })
        );
        assert_eq!(
            FormData::parse_with_limits(b"a=1\r\n2\r\n3\r\n4\r\n", "text/plain", &limits),
            Err(FormError::FieldTooLarge { limit: 6 })
        );
        assert_eq!(
            FormData::parse_with_limits(b"a=1234567", "text/plain", &limits),
            Err(FormError::FieldTooLarge { limit: 6 })
        );
    }

    // ----- multipart: content type ---------------------------------------

    #[test]
    fn boundary_parameter_forms() {
        for ct in [
            "multipart/form-data; boundary=XyZ",
            "multipart/form-data;boundary=XyZ",
            "Multipart/Form-Data; charset=utf-8; BOUNDARY=\"XyZ\"",
            "multipart/form-data; boundary=\"XyZ\";",
        ] {
            let f = FormData::parse(TWO_PARTS, ct).unwrap_or_else(|e| panic!("{ct}: {e}"));
            assert_eq!(f.get("a"), Some("first"), "{ct}");
        }
    }

    #[test]
    fn quoted_boundary_with_special_characters() {
        let ct = "multipart/form-data; boundary=\"a b:c=d?\"";
        assert_eq!(
            FormEncoding::from_content_type(ct).unwrap(),
            FormEncoding::Multipart {
                boundary: "a b:c=d?".into()
            }
        );
        let body = b"--a b:c=d?\r\nContent-Disposition: form-data; name=n\r\n\r\nv\r\n--a b:c=d?--";
        assert_eq!(FormData::parse(body, ct).unwrap().get("n"), Some("v"));
    }

    #[test]
    fn bad_boundaries() {
        let cases = [
            ("multipart/form-data", FormError::MissingBoundary),
            ("multipart/form-data; charset=x", FormError::MissingBoundary),
            ("multipart/form-data; boundary=", FormError::InvalidBoundary),
            (
                "multipart/form-data; boundary=\"\"",
                FormError::InvalidBoundary,
            ),
            (
                "multipart/form-data; boundary=\"ends \"",
                FormError::InvalidBoundary,
            ),
            (
                "multipart/form-data; boundary=a<b",
                FormError::InvalidBoundary,
            ),
            (
                "multipart/form-data; boundary=\"unterminated",
                FormError::InvalidBoundary,
            ),
            (
                "multipart/form-data; boundary=a; boundary=b",
                FormError::InvalidBoundary,
            ),
            ("multipart/form-data; boundary", FormError::InvalidBoundary),
            ("multipart/form-data; =x", FormError::InvalidBoundary),
            (
                "multipart/form-data garbage",
                FormError::UnsupportedContentType("multipart/form-data garbage".into()),
            ),
        ];
        for (ct, want) in cases {
            assert_eq!(FormData::parse(b"", ct), Err(want), "{ct}");
        }
        let long = format!("multipart/form-data; boundary={}", "a".repeat(71));
        assert_eq!(FormData::parse(b"", &long), Err(FormError::InvalidBoundary));
        let ok = format!("multipart/form-data; boundary={}", "a".repeat(70));
        assert_eq!(FormData::parse(b"", &ok), Err(FormError::BoundaryNotFound));
        assert!(MultipartParser::new("bad\r\nboundary", FormLimits::default()).is_err());
        assert!(MultipartParser::from_content_type(URLENC, FormLimits::default()).is_err());
    }

    // ----- multipart: structure ------------------------------------------

    #[test]
    fn fields_and_files() {
        let f = mp(TWO_PARTS).unwrap();
        assert_eq!(f.get("a"), Some("first"));
        let file = f.file("f").unwrap();
        assert_eq!(file.filename, "x.bin");
        assert_eq!(file.content_type, "application/octet-stream");
        assert_eq!(file.data, b"\x00\x01\r\n--\xff");
        assert_eq!(file.size(), 7);
        assert!(f.get("f").is_none());
        assert!(f.file("a").is_none());
        assert!(f.contains("f"));
        assert_eq!(f.all_files().len(), 1);
    }

    #[test]
    fn every_chunking_gives_the_same_events() {
        let want = events(TWO_PARTS, "XyZ", TWO_PARTS.len()).unwrap();
        assert_eq!(
            want,
            [
                "start a None",
                "data \"first\"",
                "end",
                "start f Some(\"x.bin\")",
                "data \"\\0\\u{1}\\r\\n--�\"",
                "end",
                "END"
            ]
        );
        for chunk in 1..TWO_PARTS.len() {
            assert_eq!(
                events(TWO_PARTS, "XyZ", chunk).unwrap(),
                want,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn multi_valued_fields_and_multiple_files() {
        let body = b"--XyZ\r\n\
            Content-Disposition: form-data; name=\"t\"\r\n\r\n1\r\n\
            --XyZ\r\n\
            Content-Disposition: form-data; name=\"t\"\r\n\r\n2\r\n\
            --XyZ\r\n\
            Content-Disposition: form-data; name=\"up\"; filename=\"a\"\r\n\r\nA\r\n\
            --XyZ\r\n\
            Content-Disposition: form-data; name=\"up\"; filename=\"b\"\r\n\r\nB\r\n\
            --XyZ--";
        let mut f = mp(body).unwrap();
        assert_eq!(f.get_all("t").collect::<Vec<_>>(), ["1", "2"]);
        let names: Vec<_> = f.files("up").map(|u| u.filename.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        // RFC 7578 default content type.
        assert_eq!(f.file("up").unwrap().content_type, "text/plain");
        assert_eq!(f.fields().len(), 2);
        assert_eq!(f.take_files().len(), 2);
        assert!(f.file("up").is_none());
    }

    #[test]
    fn empty_values_and_empty_file_input() {
        let body = b"--XyZ\r\n\
            Content-Disposition: form-data; name=\"e\"\r\n\r\n\r\n\
            --XyZ\r\n\
            Content-Disposition: form-data; name=\"file\"; filename=\"\"\r\n\
            Content-Type: application/octet-stream\r\n\r\n\r\n\
            --XyZ--\r\n";
        let f = mp(body).unwrap();
        assert_eq!(f.get("e"), Some(""));
        let file = f.file("file").unwrap();
        assert_eq!(file.filename, "");
        assert!(file.data.is_empty());
        assert_eq!(file.safe_filename(), None);
    }

    #[test]
    fn empty_multipart_body() {
        assert!(mp(b"--XyZ--\r\n").unwrap().is_empty());
        assert!(mp(b"--XyZ--").unwrap().is_empty());
    }

    #[test]
    fn preamble_epilogue_and_padding() {
        let body = b"this is a preamble\r\n--XyZ  \t\r\n\
            Content-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n\
            --XyZ-- \r\nepilogue --XyZ garbage";
        assert_eq!(mp(body).unwrap().get("a"), Some("v"));
        assert_eq!(
            events(body, "XyZ", 3).unwrap(),
            ["start a None", "data \"v\"", "end", "END"]
        );
    }

    #[test]
    fn data_resembling_boundaries() {
        let body = b"--XyZ\r\n\
            Content-Disposition: form-data; name=\"a\"\r\n\r\n\
            --XyZ\r--Xy\r\n-XyZ\n--XyZ\r\n--X\r\n\
            --XyZ--";
        assert_eq!(
            mp(body).unwrap().get("a"),
            Some("--XyZ\r--Xy\r\n-XyZ\n--XyZ\r\n--X")
        );
    }

    #[test]
    fn boundary_inside_data_is_an_error() {
        let body = b"--XyZ\r\n\
            Content-Disposition: form-data; name=\"a\"\r\n\r\n\
            x\r\n--XyZW\r\n--XyZ--";
        assert_eq!(mp(body), Err(FormError::MalformedBoundaryLine));
    }

    #[test]
    fn missing_closing_boundary() {
        let body = b"--XyZ\r\n\
            Content-Disposition: form-data; name=\"a\"\r\n\r\nvalue\r\n";
        assert_eq!(mp(body), Err(FormError::MissingClosingBoundary));
        let body = b"--XyZ\r\n\
            Content-Disposition: form-data; name=\"a\"\r\n\r\nvalue\r\n--XyZ\r\n";
        assert_eq!(mp(body), Err(FormError::IncompletePartHeaders));
        assert_eq!(mp(b"--XyZ"), Err(FormError::MissingClosingBoundary));
        assert_eq!(mp(b"--XyZ-"), Err(FormError::MissingClosingBoundary));
        assert_eq!(mp(b"--XyZ\r"), Err(FormError::MissingClosingBoundary));
    }

    #[test]
    fn wrong_boundary_in_body() {
        let body = b"--other\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--other--";
        assert_eq!(mp(body), Err(FormError::BoundaryNotFound));
        assert_eq!(mp(b""), Err(FormError::BoundaryNotFound));
        assert_eq!(mp(b"XyZ--"), Err(FormError::BoundaryNotFound));
    }

    #[test]
    fn malformed_boundary_lines() {
        assert_eq!(mp(b"--XyZx\r\n"), Err(FormError::MalformedBoundaryLine));
        assert_eq!(mp(b"--XyZ\n\r\n"), Err(FormError::MalformedBoundaryLine));
        assert_eq!(mp(b"--XyZ\rx"), Err(FormError::MalformedBoundaryLine));
        assert_eq!(mp(b"--XyZ -- \r\n"), Err(FormError::MalformedBoundaryLine));
    }

    #[test]
    fn headers_without_crlfcrlf() {
        // Only LF line ends: no CRLFCRLF before the closing boundary.
        let body = b"--XyZ\nContent-Disposition: form-data; name=\"a\"\n\nv\n--XyZ--\n";
        assert_eq!(mp(body), Err(FormError::MalformedBoundaryLine));
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\n\nv\r\n--XyZ--\r\n";
        assert_eq!(mp(body), Err(FormError::IncompletePartHeaders));
        // A later CRLFCRLF makes the boundary line part of the header block.
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nv\r\n--XyZ--";
        assert!(matches!(mp(body), Err(FormError::InvalidPartHeader(_))));
    }

    #[test]
    fn strict_part_headers() {
        let cases: &[(&[u8], FormError)] = &[
            (
                b"Content-Disposition form-data; name=a",
                FormError::InvalidPartHeader("header line without a colon"),
            ),
            (
                b"Bad Name: x\r\nContent-Disposition: form-data; name=a",
                FormError::InvalidPartHeader("header name is not a token"),
            ),
            (
                b"Content-Disposition: form-data;\r\n name=a",
                FormError::InvalidPartHeader("folded header line"),
            ),
            (
                b"Content-Disposition: form-data; name=a\nX: y",
                FormError::InvalidPartHeader("control character in header value"),
            ),
            (
                b"X: \x00\r\nContent-Disposition: form-data; name=a",
                FormError::InvalidPartHeader("control character in header value"),
            ),
            (
                b"Content-Disposition: form-data; name=\"\xff\"",
                FormError::InvalidPartHeader("headers are not UTF-8"),
            ),
            (b"", FormError::InvalidContentDisposition("missing")),
            (
                b"Content-Type: text/plain",
                FormError::InvalidContentDisposition("missing"),
            ),
            (
                b"Content-Disposition: attachment; name=a",
                FormError::InvalidContentDisposition("not form-data"),
            ),
            (
                b"Content-Disposition: form-data",
                FormError::InvalidContentDisposition("no name parameter"),
            ),
            (
                b"Content-Disposition: form-data; filename=x",
                FormError::InvalidContentDisposition("no name parameter"),
            ),
            (
                b"Content-Disposition: form-data; name=a; name=b",
                FormError::InvalidContentDisposition("malformed parameters"),
            ),
            (
                b"Content-Disposition: form-data; name=\"a",
                FormError::InvalidContentDisposition("malformed parameters"),
            ),
            (
                b"Content-Disposition: form-data; name=a b",
                FormError::InvalidContentDisposition("malformed parameters"),
            ),
            (
                b"Content-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b",
                FormError::InvalidContentDisposition("repeated"),
            ),
            (
                b"Content-Disposition: form-data; name=a\r\nContent-Type: a/b\r\nContent-Type: c/d",
                FormError::InvalidPartHeader("repeated Content-Type"),
            ),
            (
                b"Content-Disposition: form-data; name=a\r\nContent-Transfer-Encoding: base64",
                FormError::UnsupportedTransferEncoding,
            ),
            (
                b"Content-Disposition: form-data; name=a; filename*=UTF-8''%zz",
                FormError::InvalidContentDisposition("invalid filename*"),
            ),
            (
                b"Content-Disposition: form-data; name=a; filename*=KOI8-R''x",
                FormError::InvalidContentDisposition("invalid filename*"),
            ),
            (
                b"Content-Disposition: form-data; name=a; filename*=UTF-8''%ff",
                FormError::InvalidContentDisposition("invalid filename*"),
            ),
            (
                b"Content-Disposition: form-data; name=a; filename*=noquotes",
                FormError::InvalidContentDisposition("invalid filename*"),
            ),
        ];
        for (headers, want) in cases {
            let mut body = b"--XyZ\r\n".to_vec();
            body.extend_from_slice(headers);
            body.extend_from_slice(b"\r\n\r\nv\r\n--XyZ--\r\n");
            assert_eq!(
                mp(&body).as_ref().err(),
                Some(want),
                "{}",
                String::from_utf8_lossy(headers)
            );
            assert_eq!(want.status().as_u16(), 400);
        }
    }

    #[test]
    fn lenient_but_valid_part_headers() {
        let body = b"--XyZ\r\n\
            content-disposition:FORM-DATA ;name=field;  filename=\"C:\\dir\\a;b \\\"q\\\".txt\"\r\n\
            CONTENT-TYPE:   text/csv; charset=utf-8  \r\n\
            Content-Transfer-Encoding: binary\r\n\
            X-Extra: 1\r\n\r\n\
            a,b\r\n--XyZ--";
        let f = mp(body).unwrap();
        let file = f.file("field").unwrap();
        assert_eq!(file.filename, "C:\\dir\\a;b \"q\".txt");
        assert_eq!(file.safe_filename(), Some("a;b \"q\".txt"));
        assert_eq!(file.content_type, "text/csv; charset=utf-8");
    }

    #[test]
    fn filename_star_takes_precedence() {
        let body = b"--XyZ\r\n\
            Content-Disposition: form-data; name=\"f\"; filename=\"fallback.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt\r\n\r\n\
            x\r\n--XyZ\r\n\
            Content-Disposition: form-data; name=\"g\"; filename*=iso-8859-1'en'%A3.txt\r\n\r\n\
            y\r\n--XyZ--";
        let f = mp(body).unwrap();
        assert_eq!(f.file("f").unwrap().filename, "€ rates.txt");
        assert_eq!(f.file("g").unwrap().filename, "£.txt");
    }

    #[test]
    fn utf8_names_and_filenames_raw() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"ünï\"; filename=\"résumé.pdf\"\r\n\r\nx\r\n--XyZ--"
            .as_bytes();
        let f = mp(body).unwrap();
        assert_eq!(f.file("ünï").unwrap().filename, "résumé.pdf");
    }

    #[test]
    fn non_utf8_field_is_an_error_but_file_is_fine() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n\xff\r\n--XyZ--";
        assert_eq!(mp(body), Err(FormError::InvalidUtf8));
        let body =
            b"--XyZ\r\nContent-Disposition: form-data; name=a; filename=b\r\n\r\n\xff\r\n--XyZ--";
        assert_eq!(mp(body).unwrap().file("a").unwrap().data, b"\xff");
    }

    // ----- multipart: limits ---------------------------------------------

    #[test]
    fn limit_max_parts() {
        let limits = FormLimits {
            max_parts: 1,
            ..FormLimits::default()
        };
        let e = mp_limits(TWO_PARTS, limits).unwrap_err();
        assert_eq!(e, FormError::TooManyParts { limit: 1 });
        assert_eq!(e.status().as_u16(), 413);
    }

    #[test]
    fn limit_part_header_size() {
        let limits = FormLimits {
            max_part_header_bytes: 40,
            ..FormLimits::default()
        };
        let e = mp_limits(TWO_PARTS, limits.clone()).unwrap_err();
        assert_eq!(e, FormError::PartHeadersTooLarge { limit: 40 });
        // Unterminated huge headers are refused before the body ends.
        let mut p = MultipartParser::new("XyZ", limits.clone()).unwrap();
        p.feed(b"--XyZ\r\nX: ").unwrap();
        assert!(p.next_event().unwrap().is_none());
        p.feed(&[b'a'; 100]).unwrap();
        assert_eq!(
            p.next_event().unwrap_err(),
            FormError::PartHeadersTooLarge { limit: 40 }
        );
        // Endless transport padding too.
        let mut p = MultipartParser::new("XyZ", limits).unwrap();
        p.feed(b"--XyZ").unwrap();
        for _ in 0..10 {
            p.feed(b"      ").unwrap();
            if p.next_event().is_err() {
                return;
            }
        }
        panic!("padding never refused");
    }

    #[test]
    fn limit_header_size_exact() {
        let h = b"Content-Disposition: form-data; name=a";
        let body = [&b"--XyZ\r\n"[..], h, b"\r\n\r\nv\r\n--XyZ--"].concat();
        let ok = FormLimits {
            max_part_header_bytes: h.len(),
            ..FormLimits::default()
        };
        assert!(mp_limits(&body, ok).is_ok());
        let small = FormLimits {
            max_part_header_bytes: h.len() - 1,
            ..FormLimits::default()
        };
        assert!(mp_limits(&body, small).is_err());
    }

    #[test]
    fn limit_field_and_file_size() {
        let limits = FormLimits {
            max_field_bytes: 4,
            ..FormLimits::default()
        };
        assert_eq!(
            mp_limits(TWO_PARTS, limits).unwrap_err(),
            FormError::FieldTooLarge { limit: 4 }
        );
        let limits = FormLimits {
            max_field_bytes: 5,
            max_file_bytes: 6,
            ..FormLimits::default()
        };
        assert_eq!(
            mp_limits(TWO_PARTS, limits).unwrap_err(),
            FormError::FileTooLarge { limit: 6 }
        );
        let limits = FormLimits {
            max_field_bytes: 5,
            max_file_bytes: 7,
            ..FormLimits::default()
        };
        assert!(mp_limits(TWO_PARTS, limits).is_ok());
    }

    #[test]
    fn limit_total_streaming() {
        let limits = FormLimits {
            max_total_bytes: 10,
            ..FormLimits::default()
        };
        let mut p = MultipartParser::new("XyZ", limits).unwrap();
        p.feed(b"--XyZ\r\n").unwrap();
        let e = p.feed(b"more than").unwrap_err();
        assert_eq!(e, FormError::BodyTooLarge { limit: 10 });
        // Sticky.
        assert_eq!(p.next_event().unwrap_err(), e);
        assert_eq!(p.finish().unwrap_err(), e);
        assert_eq!(p.feed(b"").unwrap_err(), e);
        assert_eq!(p.bytes_fed(), 16);
        assert_eq!(HttpError::from(e).status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn streaming_memory_stays_bounded() {
        // A 1 MiB file fed in 4 KiB chunks: the buffer never holds much more
        // than one chunk.
        let mut p = MultipartParser::new("XyZ", FormLimits::default()).unwrap();
        p.feed(b"--XyZ\r\nContent-Disposition: form-data; name=f; filename=big\r\n\r\n")
            .unwrap();
        let chunk = [b'z'; 4096];
        let mut got = 0usize;
        for _ in 0..256 {
            p.feed(&chunk).unwrap();
            while let Some(e) = p.next_event().unwrap() {
                if let MultipartEvent::PartData(d) = e {
                    got += d.len();
                }
            }
            assert!(p.buf.len() < 2 * 4096, "buffer grew to {}", p.buf.len());
        }
        p.feed(b"\r\n--XyZ--\r\n").unwrap();
        let mut ends = 0;
        while let Some(e) = p.next_event().unwrap() {
            match e {
                MultipartEvent::PartData(d) => got += d.len(),
                MultipartEvent::PartEnd | MultipartEvent::End => ends += 1,
                MultipartEvent::PartStart(_) => panic!(),
            }
        }
        assert_eq!(ends, 2);
        assert_eq!(got, 256 * 4096);
        assert!(p.is_done());
        p.finish().unwrap();
        // Epilogue bytes are dropped.
        p.feed(b"trailing").unwrap();
        assert!(p.next_event().unwrap().is_none());
        assert!(format!("{p:?}").contains("Epilogue"));
    }

    #[test]
    fn finish_before_draining_reports_truncation() {
        let mut p = MultipartParser::new("XyZ", FormLimits::default()).unwrap();
        p.feed(TWO_PARTS).unwrap();
        assert!(p.finish().is_err());
    }

    // ----- errors ---------------------------------------------------------

    #[test]
    fn error_statuses_and_http_error() {
        assert_eq!(FormError::MissingBoundary.status().as_u16(), 400);
        assert_eq!(FormError::InvalidUtf8.status().as_u16(), 400);
        assert_eq!(FormError::FileTooLarge { limit: 1 }.status().as_u16(), 413);
        let e: HttpError = FormError::UnsupportedContentType("x/".repeat(100)).into();
        assert_eq!(e.status.as_u16(), 415);
        assert!(e.message.len() < 120);
        let e: HttpError = FormError::MissingClosingBoundary.into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("closing boundary"));
    }

    #[test]
    fn uploaded_file_debug_hides_data_and_safe_filename() {
        let f = UploadedFile {
            name: "n".into(),
            filename: "../../etc/passwd".into(),
            content_type: "text/plain".into(),
            data: b"secret-bytes".to_vec(),
        };
        let dbg = format!("{f:?}");
        assert!(!dbg.contains("secret"));
        assert!(dbg.contains("size: 12"));
        assert_eq!(f.safe_filename(), Some("passwd"));
        let mut g = f.clone();
        for (name, want) in [
            ("..", None),
            ("a/..", None),
            ("a\\.", None),
            ("x\u{7}y", None),
            ("ok.txt", Some("ok.txt")),
        ] {
            g.filename = name.into();
            assert_eq!(g.safe_filename(), want, "{name}");
        }
    }

    // ----- robustness -------------------------------------------------------

    /// A tiny deterministic generator, so the fuzz-style tests need no crate.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    #[test]
    fn random_mutations_never_panic() {
        let alphabet: &[u8] = b"-\r\n\"=;: XyZab\\\x00\xff";
        let mut rng = Lcg(7);
        for round in 0..3000 {
            let mut body = TWO_PARTS.to_vec();
            for _ in 0..(round % 6 + 1) {
                let i = rng.next() as usize % (body.len() + 1);
                match rng.next() % 3 {
                    0 if i < body.len() => {
                        body.remove(i);
                    }
                    1 if i < body.len() => body[i] = alphabet[rng.next() as usize % alphabet.len()],
                    _ => body.insert(i, alphabet[rng.next() as usize % alphabet.len()]),
                }
            }
            let whole = mp(&body);
            let chunk = rng.next() as usize % 9 + 1;
            let streamed = events(&body, "XyZ", chunk);
            // The buffered parser fails whenever the streaming one does (it
            // also checks that text fields are UTF-8).
            if streamed.is_err() {
                assert!(whole.is_err(), "{:?}", String::from_utf8_lossy(&body));
            }
            if let Ok(form) = &whole {
                let parts = streamed.as_ref().map(|ev| ev.len()).unwrap_or(0);
                assert_eq!(parts, 3 * (form.len() + form.all_files().len()) + 1);
            }
            let _ = FormData::parse(&body, "text/plain");
            let _ = FormData::parse(&body, URLENC);
        }
    }

    #[test]
    fn random_content_types_never_panic() {
        let alphabet: &[u8] = b"multipart/form-data; boundary=\"\\\t\xc3\xa9";
        let mut rng = Lcg(99);
        for _ in 0..3000 {
            let len = rng.next() as usize % 60;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.next() as usize % alphabet.len()])
                .collect();
            let ct = String::from_utf8_lossy(&bytes);
            let _ = FormEncoding::from_content_type(&ct);
            let _ = parse_disposition(&ct);
            let _ = decode_ext_value(&ct);
        }
    }
}
