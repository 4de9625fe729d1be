//! Cookies: reading the `Cookie` request header ([`Cookies`]) and building
//! `Set-Cookie` response headers ([`SetCookie`]), per RFC 6265.
//!
//! ```
//! use std::time::Duration;
//! use pollserve::cookies::{Cookies, SameSite, SetCookie};
//! use pollserve::{Headers, Response};
//!
//! let headers: Headers = [("Cookie", "session=abc123; theme=dark")].into_iter().collect();
//! let cookies = Cookies::from_headers(&headers);
//! assert_eq!(cookies.get("theme"), Some("dark"));
//!
//! let cookie = SetCookie::new("session", "xyz789").unwrap()
//!     .path("/").unwrap()
//!     .max_age(Duration::from_secs(3600))
//!     .http_only()
//!     .secure()
//!     .same_site(SameSite::Lax);
//! assert_eq!(
//!     cookie.to_header_value(),
//!     "session=xyz789; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"
//! );
//! let response = Response::text("ok").with_cookie(&cookie);
//! assert_eq!(response.headers().get_all("set-cookie").count(), 1);
//! ```
//!
//! Any string can be a value: [`SetCookie::new`] percent-encodes what a
//! cookie cannot hold (a space, `,`, `;`, `"`, `\`, non-ASCII, `%`) and
//! [`Cookies`] decodes it, so the program reads back what it set.
//! [`SetCookie::new_raw`] and [`Cookies::get_raw`] work with the exact bytes
//! instead.
//!
//! Cookie values are client input like any other: escape them before putting
//! them in HTML. `Debug` output of both types shows cookie names only, never
//! values, since those are often session secrets.

use crate::pairs::Pairs;
use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::error::HttpError;
use crate::headers::Headers;

/// Why a [`SetCookie`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// The name is empty or not an RFC 6265 token.
    #[error("invalid cookie name")]
    InvalidName,
    /// The value given to [`SetCookie::new_raw`] holds a character outside
    /// RFC 6265's `cookie-octet` set (space, `"`, `,`, `;`, `\`, control or
    /// non-ASCII characters). [`SetCookie::new`] encodes those instead.
    #[error("invalid cookie value")]
    InvalidValue,
    /// The path is empty, does not start with `/`, or holds `;` or a
    /// control character.
    #[error("invalid cookie Path attribute")]
    InvalidPath,
    /// The domain is not a host name (letters, digits, `-` and `.`).
    #[error("invalid cookie Domain attribute")]
    InvalidDomain,
    /// A cookie named `__Host-…` may not have a `Domain` attribute.
    #[error("__Host- cookies cannot have a Domain attribute")]
    HostPrefixWithDomain,
}

impl From<CookieError> for HttpError {
    /// A cookie the server itself tried to build is a server bug: 500.
    fn from(e: CookieError) -> HttpError {
        HttpError::internal(e.to_string())
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// RFC 6265 §4.1.1 `cookie-octet`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// `cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )`.
fn is_cookie_value(v: &str) -> bool {
    let inner = match v.strip_prefix('"') {
        Some(rest) => match rest.strip_suffix('"') {
            Some(inner) => inner,
            None => return false,
        },
        None => v,
    };
    inner.bytes().all(is_cookie_octet)
}

// ---------------------------------------------------------------------------
// Request cookies
// ---------------------------------------------------------------------------

/// The cookies a request sent, in order, from every `Cookie` header.
///
/// Values are percent-decoded, the counterpart of [`SetCookie::new`], which
/// percent-encodes: whatever string a handler set comes back unchanged from
/// [`get`](crate::Pairs::get), [`get_all`](crate::Pairs::get_all) and
/// [`iter`](crate::Pairs::iter). A value without a valid `%XX` escape is
/// returned as sent; so is one whose escapes do not decode to UTF-8 (a
/// value `100%` or `%ff` set by a script comes back as `100%` or `%ff`).
/// A value a script set that happens to contain a valid escape (`a%20b`)
/// is decoded too (`a b`): read it with [`get_raw`](Self::get_raw), which
/// gives the bytes exactly as the browser sent them.
///
/// Parsing is forgiving, as RFC 6265 §5.4 asks of servers: pairs are split
/// on `;`, spaces and tabs around names and values are dropped, a value in
/// double quotes is unquoted, and a pair that is malformed (no `=`, a name
/// that is not a token, a value with characters outside `cookie-octet` other
/// than non-ASCII UTF-8) is skipped without affecting the others. Non-ASCII
/// values are accepted because browsers send what scripts set. A name may
/// appear more than once (cookies set for different paths or domains);
/// [`get`](crate::Pairs::get) returns the first, which browsers send for the most
/// specific path.
///
/// ```
/// use pollserve::cookies::{Cookies, SetCookie};
///
/// let cookie = SetCookie::new("last_upload", "my file, v2.txt").unwrap();
/// assert_eq!(cookie.value(), "my%20file%2C%20v2.txt");
/// // The browser sends it back as it was set:
/// let cookies = Cookies::parse(&format!("last_upload={}; js=100%", cookie.value()));
/// assert_eq!(cookies.get("last_upload"), Some("my file, v2.txt"));
/// assert_eq!(cookies.get_raw("last_upload"), Some("my%20file%2C%20v2.txt"));
/// assert_eq!(cookies.get("js"), Some("100%")); // not an escape: as sent
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Cookies {
    /// Names with percent-decoded values.
    pairs: Pairs,
    /// The same names with the values as sent.
    raw: Pairs,
}

/// The lookups (`get`, `get_all`, `contains`, `iter`, `len`, `is_empty`),
/// over percent-decoded values.
impl std::ops::Deref for Cookies {
    type Target = Pairs;
    fn deref(&self) -> &Pairs {
        &self.pairs
    }
}

impl Cookies {
    /// Parses one `Cookie` header value.
    pub fn parse(header_value: &str) -> Cookies {
        let mut c = Cookies::default();
        c.add_header(header_value);
        c
    }

    /// Parses every `Cookie` header in `headers` (HTTP/2 proxies may split
    /// them; HTTP/1.1 clients should send one).
    pub fn from_headers(headers: &Headers) -> Cookies {
        let mut c = Cookies::default();
        for value in headers.get_all("Cookie") {
            c.add_header(value);
        }
        c
    }

    fn add_header(&mut self, value: &str) {
        for pair in value.split(';') {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let name = name.trim_matches([' ', '\t']);
            let value = value.trim_matches([' ', '\t']);
            if !is_token(name) {
                continue;
            }
            let value = match value.strip_prefix('"') {
                Some(rest) => match rest.strip_suffix('"') {
                    Some(inner) => inner,
                    None => continue,
                },
                None => value,
            };
            if !value.bytes().all(|b| is_cookie_octet(b) || b >= 0x80) {
                continue;
            }
            self.pairs.push(name, decode_value(value));
            self.raw.push(name, value);
        }
    }

    /// The first cookie called `name` with its value exactly as the browser
    /// sent it (unquoted, not percent-decoded), for values that other
    /// software encoded its own way; [`new_raw`](SetCookie::new_raw) is
    /// its counterpart.
    pub fn get_raw(&self, name: &str) -> Option<&str> {
        self.raw.get(name)
    }

    /// Every cookie with its value exactly as sent, in order.
    pub fn raw(&self) -> &Pairs {
        &self.raw
    }

    /// The first cookie called `name`, percent-decoded; `None` if absent or
    /// not UTF-8 once decoded.
    #[deprecated(
        note = "`get` decodes now (and returns undecodable values as sent); `get_raw` gives the value as sent"
    )]
    pub fn get_decoded(&self, name: &str) -> Option<Cow<'_, str>> {
        percent_decode_str(self.get_raw(name)?).decode_utf8().ok()
    }
}

/// Undoes [`SetCookie::new`]'s percent-encoding; a value that holds no
/// valid escape, or whose escapes are not UTF-8, is kept as sent.
fn decode_value(raw: &str) -> Cow<'_, str> {
    if !raw.contains('%') {
        return Cow::Borrowed(raw);
    }
    percent_decode_str(raw)
        .decode_utf8()
        .unwrap_or(Cow::Borrowed(raw))
}

impl fmt::Debug for Cookies {
    /// Names only: values are often secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cookies")
            .field(
                "names",
                &self.pairs.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Set-Cookie
// ---------------------------------------------------------------------------

/// The `SameSite` attribute (RFC 6265bis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// Sent only with same-site requests.
    Strict,
    /// Also sent on top-level navigations from other sites (browsers' default).
    Lax,
    /// Sent with cross-site requests too. Browsers ignore `SameSite=None`
    /// without `Secure`, so choosing it makes the cookie `Secure`.
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// Characters [`SetCookie::new`] percent-encodes: everything that is not
/// an RFC 6265 §4.1.1 `cookie-octet` (controls, space, `"`, `,`, `;`, `\`;
/// non-ASCII bytes are always encoded), plus `%` itself, so decoding is
/// unambiguous.
const COOKIE_VALUE_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// The HTTP date of the Unix epoch, used to expire cookies.
const EPOCH_DATE: &str = "Thu, 01 Jan 1970 00:00:00 GMT";

/// The latest instant `httpdate` can format (the end of year 9999).
const MAX_HTTP_DATE_SECS: u64 = 253_402_300_799;

/// A `Set-Cookie` header value, built and checked piece by piece.
///
/// The value may be any string: [`new`](Self::new) percent-encodes what a
/// cookie cannot hold, and [`Cookies`] decodes it again, so a file name
/// such as `my file, v2.txt` goes out and comes back unchanged. Values
/// made only of `cookie-octet`s without `%` (`abc123`, `dark`, base64
/// tokens) are sent byte for byte. [`new_raw`](Self::new_raw) sends exact
/// bytes and refuses what a cookie cannot hold.
///
/// Names are checked to be RFC 6265 tokens (a name is the program's own
/// constant, so a bad one is an error, not something to encode), paths and
/// domains free of `;` and control characters, so nothing given to the
/// builder can add attributes or header lines.
///
/// Enforced rules: `SameSite=None` always comes with `Secure`; a name
/// starting with `__Secure-` gets `Secure`, and one starting with `__Host-`
/// gets `Secure` and `Path=/` and refuses a `Domain` (RFC 6265bis cookie
/// prefixes, which browsers reject otherwise).
#[derive(Clone, PartialEq, Eq)]
pub struct SetCookie {
    name: String,
    value: String,
    path: Option<String>,
    domain: Option<String>,
    max_age: Option<u64>,
    expires: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: Option<SameSite>,
}

impl SetCookie {
    /// A cookie `name=value` with no attributes (a session cookie for the
    /// current path). `value` may be any string: bytes outside RFC 6265's
    /// `cookie-octet` set, and `%`, are percent-encoded (UTF-8), which
    /// [`Cookies::get`](crate::Pairs::get) undoes. The only error is a
    /// `name` that is not an RFC 6265 token ([`CookieError::InvalidName`]).
    ///
    /// ```
    /// use pollserve::{Response, SetCookie};
    /// let cookie = SetCookie::new("last_upload", "my file, v2.txt")?.path("/")?;
    /// assert_eq!(cookie.to_header_value(), "last_upload=my%20file%2C%20v2.txt; Path=/");
    /// assert_eq!(SetCookie::new("theme", "dark")?.value(), "dark"); // unchanged
    /// let response = Response::text("saved").with_cookie(&cookie);
    /// # let _ = response;
    /// # Ok::<(), pollserve::cookies::CookieError>(())
    /// ```
    pub fn new(name: &str, value: &str) -> Result<SetCookie, CookieError> {
        let encoded: Cow<'_, str> = utf8_percent_encode(value, COOKIE_VALUE_ENCODE).into();
        SetCookie::new_raw(name, &encoded)
    }

    /// A cookie whose value is sent exactly as given, for a value another
    /// program reads undecoded. It must consist of `cookie-octet`s or be a
    /// double-quoted string of them ([`CookieError::InvalidValue`]
    /// otherwise); read it back with [`Cookies::get_raw`].
    ///
    /// ```
    /// use pollserve::cookies::{CookieError, SetCookie};
    /// assert_eq!(SetCookie::new_raw("q", "\"v1\"")?.to_header_value(), "q=\"v1\"");
    /// assert_eq!(SetCookie::new_raw("q", "a b").err(), Some(CookieError::InvalidValue));
    /// # Ok::<(), CookieError>(())
    /// ```
    pub fn new_raw(name: &str, value: &str) -> Result<SetCookie, CookieError> {
        if !is_token(name) {
            return Err(CookieError::InvalidName);
        }
        if !is_cookie_value(value) {
            return Err(CookieError::InvalidValue);
        }
        let mut c = SetCookie {
            name: name.to_owned(),
            value: value.to_owned(),
            path: None,
            domain: None,
            max_age: None,
            expires: None,
            secure: false,
            http_only: false,
            same_site: None,
        };
        if has_prefix(name, "__Host-") {
            c.path = Some("/".to_owned());
        }
        Ok(c)
    }

    /// A cookie whose value is any text, percent-encoded where needed: the
    /// same as [`new`](Self::new).
    #[deprecated(note = "`new` percent-encodes any value now; use `new`")]
    pub fn new_encoded(name: &str, value: &str) -> Result<SetCookie, CookieError> {
        SetCookie::new(name, value)
    }

    /// A cookie that deletes `name` from the browser: an empty value,
    /// `Max-Age=0` and an `Expires` in 1970.
    ///
    /// The browser only deletes a cookie whose name, `Path` and `Domain` all
    /// match, so set the same [`path`](Self::path) and
    /// [`domain`](Self::domain) that created it.
    pub fn removal(name: &str) -> Result<SetCookie, CookieError> {
        let mut c = SetCookie::new(name, "")?;
        c.max_age = Some(0);
        c.expires = Some(EPOCH_DATE.to_owned());
        Ok(c)
    }

    /// Sets `Path`; it must start with `/` and hold no `;` or control
    /// character. Ignored for `__Host-` cookies, which must use `/`.
    pub fn path(mut self, path: &str) -> Result<SetCookie, CookieError> {
        if !path.starts_with('/') || path.chars().any(|c| c == ';' || c.is_control()) {
            return Err(CookieError::InvalidPath);
        }
        if !has_prefix(&self.name, "__Host-") {
            self.path = Some(path.to_owned());
        }
        Ok(self)
    }

    /// Sets `Domain` (the cookie is then sent to subdomains too). A leading
    /// dot is dropped; the rest must be labels of ASCII letters, digits and
    /// `-` separated by single dots.
    pub fn domain(mut self, domain: &str) -> Result<SetCookie, CookieError> {
        if has_prefix(&self.name, "__Host-") {
            return Err(CookieError::HostPrefixWithDomain);
        }
        let d = domain.strip_prefix('.').unwrap_or(domain);
        let valid = !d.is_empty()
            && d.len() <= 253
            && d.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(CookieError::InvalidDomain);
        }
        self.domain = Some(d.to_owned());
        Ok(self)
    }

    /// Sets `Max-Age` in whole seconds (fractions are dropped); zero deletes
    /// the cookie at once.
    pub fn max_age(mut self, age: Duration) -> SetCookie {
        self.max_age = Some(age.as_secs());
        self
    }

    /// Sets `Expires`. Browsers prefer `Max-Age` when both are present.
    /// Instants before 1970 are sent as the epoch and those after year 9999 as
    /// the end of 9999, the range HTTP dates can express.
    pub fn expires(mut self, when: SystemTime) -> SetCookie {
        let secs = when
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .min(MAX_HTTP_DATE_SECS);
        let clamped = UNIX_EPOCH + Duration::from_secs(secs);
        self.expires = Some(httpdate::fmt_http_date(clamped));
        self
    }

    /// Adds `Secure`: the cookie is sent over HTTPS only.
    pub fn secure(mut self) -> SetCookie {
        self.secure = true;
        self
    }

    /// Adds `HttpOnly`: scripts cannot read the cookie.
    pub fn http_only(mut self) -> SetCookie {
        self.http_only = true;
        self
    }

    /// Sets `SameSite`. [`SameSite::None`] also sets [`secure`](Self::secure).
    pub fn same_site(mut self, same_site: SameSite) -> SetCookie {
        self.same_site = Some(same_site);
        if same_site == SameSite::None {
            self.secure = true;
        }
        self
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cookie's value, as it will be sent (percent-encoded by
    /// [`new`](Self::new) where needed).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The `Set-Cookie` header value, attributes in a fixed order:
    /// `name=value; Path; Domain; Max-Age; Expires; Secure; HttpOnly; SameSite`.
    pub fn to_header_value(&self) -> String {
        let mut out = String::with_capacity(self.name.len() + self.value.len() + 64);
        out.push_str(&self.name);
        out.push('=');
        out.push_str(&self.value);
        if let Some(p) = &self.path {
            out.push_str("; Path=");
            out.push_str(p);
        }
        if let Some(d) = &self.domain {
            out.push_str("; Domain=");
            out.push_str(d);
        }
        if let Some(age) = self.max_age {
            out.push_str("; Max-Age=");
            out.push_str(&age.to_string());
        }
        if let Some(e) = &self.expires {
            out.push_str("; Expires=");
            out.push_str(e);
        }
        let prefixed = has_prefix(&self.name, "__Secure-") || has_prefix(&self.name, "__Host-");
        if self.secure || prefixed || self.same_site == Some(SameSite::None) {
            out.push_str("; Secure");
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        if let Some(s) = self.same_site {
            out.push_str("; SameSite=");
            out.push_str(s.as_str());
        }
        out
    }
}

/// RFC 6265bis matches cookie prefixes case-insensitively.
fn has_prefix(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

impl fmt::Display for SetCookie {
    /// Same as [`to_header_value`](SetCookie::to_header_value).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header_value())
    }
}

impl fmt::Debug for SetCookie {
    /// Everything but the value, which is often a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetCookie")
            .field("name", &self.name)
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .field("path", &self.path)
            .field("domain", &self.domain)
            .field("max_age", &self.max_age)
            .field("expires", &self.expires)
            .field("secure", &self.secure)
            .field("http_only", &self.http_only)
            .field("same_site", &self.same_site)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::Response;

    fn pairs(c: &Cookies) -> Vec<(&str, &str)> {
        c.iter().collect()
    }

    #[test]
    fn parses_simple_header() {
        let c = Cookies::parse("a=1; b=2");
        assert_eq!(pairs(&c), [("a", "1"), ("b", "2")]);
        assert_eq!(c.get("b"), Some("2"));
        assert_eq!(c.get("B"), None);
        assert_eq!(c.len(), 2);
        assert!(c.contains("a"));
    }

    #[test]
    fn spaces_quotes_and_empty_values() {
        let c = Cookies::parse("  a = 1 ;b=\"quoted\";\tc=;d=\"\" ; e=x=y");
        assert_eq!(
            pairs(&c),
            [
                ("a", "1"),
                ("b", "quoted"),
                ("c", ""),
                ("d", ""),
                ("e", "x=y")
            ]
        );
    }

    #[test]
    fn invalid_pairs_are_skipped() {
        let c = Cookies::parse(
            "good=1; noequals; =novalue; bad name=2; q=\"open; sp=a b; co=a,b; bs=a\\b; ok2=3; dq=a\"b",
        );
        assert_eq!(pairs(&c), [("good", "1"), ("ok2", "3")]);
        assert!(Cookies::parse("").is_empty());
        assert!(Cookies::parse(";;; ;").is_empty());
    }

    #[test]
    fn non_ascii_values_are_kept() {
        let c = Cookies::parse("name=Jürgen; e=😀");
        assert_eq!(c.get("name"), Some("Jürgen"));
        assert_eq!(c.get("e"), Some("😀"));
    }

    #[test]
    fn several_headers_and_duplicates() {
        let h: Headers = [("Cookie", "a=1; b=2"), ("Host", "x"), ("cookie", "a=3")]
            .into_iter()
            .collect();
        let c = Cookies::from_headers(&h);
        assert_eq!(c.get("a"), Some("1"));
        assert_eq!(c.get_all("a").collect::<Vec<_>>(), ["1", "3"]);
        assert_eq!(c.len(), 3);
        assert!(Cookies::from_headers(&Headers::new()).is_empty());
    }

    #[test]
    fn debug_hides_values() {
        let c = Cookies::parse("session=topsecret");
        let dbg = format!("{c:?}");
        assert!(dbg.contains("session"));
        assert!(!dbg.contains("topsecret"));
        let s = SetCookie::new("session", "topsecret").unwrap();
        let dbg = format!("{s:?}");
        assert!(dbg.contains("session") && !dbg.contains("topsecret"));
    }

    #[test]
    fn builder_full() {
        let when = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let c = SetCookie::new("id", "a3fWa")
            .unwrap()
            .path("/docs")
            .unwrap()
            .domain(".Example.com")
            .unwrap()
            .max_age(Duration::from_millis(2500))
            .expires(when)
            .http_only()
            .secure()
            .same_site(SameSite::Strict);
        assert_eq!(
            c.to_header_value(),
            "id=a3fWa; Path=/docs; Domain=Example.com; Max-Age=2; \
             Expires=Sun, 06 Nov 1994 08:49:37 GMT; Secure; HttpOnly; SameSite=Strict"
        );
        assert_eq!(c.to_string(), c.to_header_value());
        assert_eq!(c.name(), "id");
        assert_eq!(c.value(), "a3fWa");
    }

    #[test]
    fn minimal_and_quoted_values() {
        assert_eq!(SetCookie::new("a", "").unwrap().to_header_value(), "a=");
        assert_eq!(
            SetCookie::new_raw("a", "\"q v\"").err(),
            Some(CookieError::InvalidValue)
        );
        assert_eq!(
            SetCookie::new_raw("a", "\"qv\"").unwrap().to_header_value(),
            "a=\"qv\""
        );
        // `new` encodes the quotes, so the value comes back with them
        // (a quoted raw value is unquoted by the parser).
        let c = SetCookie::new("a", "\"q v\"").unwrap();
        assert_eq!(c.to_header_value(), "a=%22q%20v%22");
        assert_eq!(
            Cookies::parse(&c.to_header_value()).get("a"),
            Some("\"q v\"")
        );
    }

    #[test]
    fn same_site_none_requires_secure() {
        let c = SetCookie::new("a", "b").unwrap().same_site(SameSite::None);
        assert_eq!(c.to_header_value(), "a=b; Secure; SameSite=None");
        let c = SetCookie::new("a", "b").unwrap().same_site(SameSite::Lax);
        assert_eq!(c.to_header_value(), "a=b; SameSite=Lax");
    }

    #[test]
    fn cookie_prefixes() {
        let c = SetCookie::new("__Secure-id", "1").unwrap();
        assert_eq!(c.to_header_value(), "__Secure-id=1; Secure");
        let c = SetCookie::new("__Host-id", "1")
            .unwrap()
            .path("/x")
            .unwrap();
        assert_eq!(c.to_header_value(), "__Host-id=1; Path=/; Secure");
        assert_eq!(
            SetCookie::new("__host-id", "1")
                .unwrap()
                .domain("a.com")
                .err(),
            Some(CookieError::HostPrefixWithDomain)
        );
    }

    #[test]
    fn removal_cookie() {
        let c = SetCookie::removal("session").unwrap().path("/").unwrap();
        assert_eq!(
            c.to_header_value(),
            "session=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(
            SetCookie::removal("bad name").err(),
            Some(CookieError::InvalidName)
        );
    }

    #[test]
    fn injection_attempts_are_refused() {
        for name in [
            "",
            "a b",
            "a;b",
            "a=b",
            "a\r\nSet-Cookie: x",
            "a,b",
            "ä",
            "a\"",
            "a(b)",
        ] {
            for built in [SetCookie::new(name, "v"), SetCookie::new_raw(name, "v")] {
                assert_eq!(built.err(), Some(CookieError::InvalidName), "{name:?}");
            }
        }
        for value in [
            "a;b",
            "a b",
            "a,b",
            "a\\b",
            "a\"b",
            "\"",
            "a\r\nX: y",
            "é",
            "\"a",
            "a\u{7f}",
        ] {
            assert_eq!(
                SetCookie::new_raw("n", value).err(),
                Some(CookieError::InvalidValue),
                "{value:?}"
            );
            // `new` encodes them: nothing reaches the header unescaped.
            let header = SetCookie::new("n", value).unwrap().to_header_value();
            let sent = header.strip_prefix("n=").unwrap();
            assert!(sent.bytes().all(is_cookie_octet), "{value:?} -> {header:?}");
            assert_eq!(Cookies::parse(&header).get("n"), Some(value), "{value:?}");
        }
        let base = || SetCookie::new("n", "v").unwrap();
        for path in ["", "rel", "/a;Domain=evil", "/a\r\nX: y", "/a\u{0}"] {
            assert_eq!(
                base().path(path).err(),
                Some(CookieError::InvalidPath),
                "{path:?}"
            );
        }
        for domain in [
            "",
            ".",
            "a..b",
            "a b",
            "evil.com;Secure",
            "a_b.com",
            "a.com\r\n",
            "é.com",
        ] {
            assert_eq!(
                base().domain(domain).err(),
                Some(CookieError::InvalidDomain),
                "{domain:?}"
            );
        }
        assert_eq!(
            base().domain(&format!("{}.com", "a".repeat(64))).err(),
            Some(CookieError::InvalidDomain)
        );
    }

    #[test]
    fn encoded_values_round_trip() {
        let text = "Hello, World; 100% \"sure\" \\ é";
        let c = SetCookie::new("msg", text).unwrap();
        assert!(c.value().bytes().all(is_cookie_octet));
        let header = format!("msg={}", c.value());
        let parsed = Cookies::parse(&header);
        assert_eq!(parsed.get("msg"), Some(text));
        assert_eq!(parsed.get_all("msg").collect::<Vec<_>>(), [text]);
        assert_eq!(pairs(&parsed), [("msg", text)]);
        assert_eq!(parsed.get_raw("msg"), Some(c.value()));
        assert_eq!(parsed.raw().get("msg"), Some(c.value()));
        assert_eq!(parsed.get("none"), None);
        assert_eq!(parsed.get_raw("none"), None);
    }

    #[test]
    fn values_that_are_not_escapes_come_back_as_sent() {
        // Set by scripts or other servers, not by `SetCookie::new`.
        let c = Cookies::parse("pct=100%; bad=%zz; latin1=%ff; half=%4; mixed=50%25%2");
        assert_eq!(c.get("pct"), Some("100%"));
        assert_eq!(c.get("bad"), Some("%zz"));
        assert_eq!(c.get("latin1"), Some("%ff"));
        assert_eq!(c.get("half"), Some("%4"));
        // Valid escapes decode, invalid ones stay.
        assert_eq!(c.get("mixed"), Some("50%%2"));
        assert_eq!(c.get_raw("mixed"), Some("50%25%2"));
    }

    #[test]
    #[allow(deprecated)]
    fn deprecated_aliases_keep_their_behaviour() {
        let text = "café; à bientôt";
        let c = SetCookie::new_encoded("note", text).unwrap();
        assert_eq!(c, SetCookie::new("note", text).unwrap());
        let parsed = Cookies::parse(&c.to_header_value());
        assert_eq!(parsed.get_decoded("note").as_deref(), Some(text));
        assert_eq!(parsed.get_decoded("none"), None);
        assert_eq!(Cookies::parse("x=%ff").get_decoded("x"), None);
    }

    #[test]
    fn cookie_octet_values_are_sent_unchanged() {
        for value in [
            "abc123",
            "dark",
            "dGVzdA==",
            "a/b:c?d=e!#$&'()*+-.<>@[]^_`{|}~",
        ] {
            let c = SetCookie::new("n", value).unwrap();
            assert_eq!(c.value(), value);
            assert_eq!(c, SetCookie::new_raw("n", value).unwrap());
        }
        assert_eq!(SetCookie::new("n", "5%").unwrap().value(), "5%25");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// `cookie-octet`s other than `%`.
        fn plain_octet() -> impl Strategy<Value = char> {
            (0x21u8..=0x7e)
                .prop_filter("cookie-octet without %", |&b| {
                    is_cookie_octet(b) && b != b'%'
                })
                .prop_map(char::from)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn any_string_round_trips(value in any::<String>()) {
                let c = SetCookie::new("n", &value).unwrap();
                prop_assert!(c.value().bytes().all(is_cookie_octet));
                let parsed = Cookies::parse(&c.to_header_value());
                prop_assert_eq!(parsed.get("n"), Some(value.as_str()));
                prop_assert_eq!(parsed.get_raw("n"), Some(c.value()));
            }

            #[test]
            fn plain_values_are_byte_identical(
                value in proptest::collection::vec(plain_octet(), 0..40)
            ) {
                let value: String = value.into_iter().collect();
                let c = SetCookie::new("n", &value).unwrap();
                prop_assert_eq!(c.value(), value.as_str());
                let parsed = Cookies::parse(&c.to_header_value());
                prop_assert_eq!(parsed.get("n"), Some(value.as_str()));
            }
        }
    }

    #[test]
    fn expires_out_of_range_is_clamped_not_panicking() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        let c = SetCookie::new("a", "b").unwrap().expires(before);
        assert!(c
            .to_header_value()
            .ends_with("Expires=Thu, 01 Jan 1970 00:00:00 GMT"));
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        let c = SetCookie::new("a", "b").unwrap().expires(far);
        assert!(c
            .to_header_value()
            .ends_with("Expires=Fri, 31 Dec 9999 23:59:59 GMT"));
    }

    #[test]
    fn max_age_large() {
        let c = SetCookie::new("a", "b").unwrap().max_age(Duration::MAX);
        assert_eq!(c.to_header_value(), format!("a=b; Max-Age={}", u64::MAX));
    }

    #[test]
    fn set_cookie_header_is_accepted_by_response() {
        let c = SetCookie::new("a", "1").unwrap().http_only();
        let d = SetCookie::removal("b").unwrap();
        let r = Response::text("x")
            .add_header("Set-Cookie", &c.to_header_value())
            .add_header("Set-Cookie", &d.to_header_value());
        let all: Vec<_> = r.headers().get_all("set-cookie").collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], "a=1; HttpOnly");
    }

    #[test]
    fn error_maps_to_500() {
        let e: HttpError = CookieError::InvalidValue.into();
        assert_eq!(e.status.as_u16(), 500);
    }

    #[test]
    fn random_headers_never_panic_and_round_trip_valid_ones() {
        let alphabet: &[u8] = b"ab=; \"\t,\\\xc3\xa9";
        let mut seed = 1u64;
        for _ in 0..3000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let len = (seed >> 40) as usize % 24;
            let bytes: Vec<u8> = (0..len)
                .map(|i| alphabet[((seed >> (i % 48)) as usize + i) % alphabet.len()])
                .collect();
            let s = String::from_utf8_lossy(&bytes);
            for (n, v) in Cookies::parse(&s).raw().iter() {
                assert!(is_token(n));
                assert!(!v.contains([';', '"', ' ', ',', '\\']));
            }
            let c = SetCookie::new("n", &s).unwrap();
            assert!(!c.to_header_value().contains([';', '\r', '\n']));
            if let Ok(c) = SetCookie::new_raw("n", &s) {
                assert!(!c.to_header_value().contains([';', '\r', '\n']));
            }
        }
    }
}
