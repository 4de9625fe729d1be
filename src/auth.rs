//! HTTP authentication: `Basic` (RFC 7617), `Bearer` (RFC 6750) and
//! `adafruit_httpserver`'s `Token` scheme.
//!
//! [`Credentials`] reads an `Authorization` header; [`Authentication`] holds
//! the accepted user/password pairs and tokens, checks a request against them
//! in constant time and produces the `401` challenge.
//!
//! ```
//! use pollserve::auth::Authentication;
//! use pollserve::Headers;
//!
//! let auth = Authentication::new("admin area")
//!     .basic("user", "passw0rd")
//!     .bearer("s3cr3t-t0ken");
//!
//! // "user:passw0rd" in base64.
//! let ok: Headers = [("Authorization", "Basic dXNlcjpwYXNzdzByZA==")].into_iter().collect();
//! assert!(auth.check(&ok));
//! let bad: Headers = [("Authorization", "Bearer wrong")].into_iter().collect();
//! assert!(!auth.check(&bad));
//!
//! let response = auth.unauthorized();
//! assert_eq!(response.status().as_u16(), 401);
//! assert_eq!(
//!     response.headers().get_all("www-authenticate").collect::<Vec<_>>(),
//!     [r#"Basic realm="admin area", charset="UTF-8""#, r#"Bearer realm="admin area""#]
//! );
//! ```
//!
//! Without TLS, Basic credentials and tokens travel in clear text: use these
//! schemes behind HTTPS (a reverse proxy) or on a trusted network only.

use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::hint::black_box;

use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use base64::Engine as _;

use crate::error::HttpError;
use crate::headers::Headers;
use crate::response::Response;
use crate::status::StatusCode;

/// Credentials a client sent in an `Authorization` header.
///
/// `Debug` shows the scheme and the user name only, never a password or
/// token.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Basic base64(user:password)`, decoded as UTF-8.
    Basic {
        /// The part before the first `:`.
        username: String,
        /// The part after the first `:` (may contain `:`).
        password: String,
    },
    /// `Bearer <token>`.
    Bearer(String),
    /// `Token <token>` (as `adafruit_httpserver` accepts).
    Token(String),
}

impl Credentials {
    /// Parses an `Authorization` value. The scheme compares
    /// case-insensitively and is followed by one or more spaces; the rest must
    /// be a single word of visible ASCII characters. `Basic` needs valid
    /// base64 (padding optional) of UTF-8 text holding a `:`. Anything else is
    /// `None`.
    pub fn parse(value: &str) -> Option<Credentials> {
        let value = value.trim_matches([' ', '\t']);
        let (scheme, rest) = value.split_once(' ')?;
        let param = rest.trim_start_matches(' ');
        if param.is_empty() || !param.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        if scheme.eq_ignore_ascii_case("Basic") {
            let decoded = STANDARD_PAD_INDIFFERENT.decode(param).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (username, password) = text.split_once(':')?;
            Some(Credentials::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            })
        } else if scheme.eq_ignore_ascii_case("Bearer") {
            Some(Credentials::Bearer(param.to_owned()))
        } else if scheme.eq_ignore_ascii_case("Token") {
            Some(Credentials::Token(param.to_owned()))
        } else {
            None
        }
    }

    /// The credentials of a request: `None` unless it has exactly one
    /// `Authorization` header and that header parses.
    pub fn from_headers(headers: &Headers) -> Option<Credentials> {
        let mut all = headers.get_all("Authorization");
        let value = all.next()?;
        if all.next().is_some() {
            return None;
        }
        Credentials::parse(value)
    }

    /// The user name, for `Basic` credentials.
    pub fn username(&self) -> Option<&str> {
        match self {
            Credentials::Basic { username, .. } => Some(username),
            _ => None,
        }
    }

    /// The scheme name: `"Basic"`, `"Bearer"` or `"Token"`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Credentials::Basic { .. } => "Basic",
            Credentials::Bearer(_) => "Bearer",
            Credentials::Token(_) => "Token",
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &format_args!("<redacted>"))
                .finish(),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credentials::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// Who a request authenticated as; see [`Authentication::authenticate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    /// A configured Basic user, by name.
    Basic(&'a str),
    /// One of the configured Bearer tokens, by its index in configuration
    /// order.
    Bearer(usize),
    /// One of the configured `Token` tokens, by its index in configuration
    /// order.
    Token(usize),
}

/// One accepted secret: its keyed digest, compared first in constant time,
/// and its bytes, compared only once a digest matched.
#[derive(Clone)]
struct Entry {
    username: String,
    digest: [u64; 2],
    secret: Box<[u8]>,
}

/// An authentication policy: a realm and the accepted Basic user/password
/// pairs, Bearer tokens and `Token` tokens.
///
/// # Constant-time comparison
///
/// `adafruit_httpserver` compares the header with `==`, whose running time tells
/// an attacker how many leading bytes were right. Here every configured
/// secret is reduced, once, to a 128-bit keyed hash (two SipHash instances
/// from [`RandomState`], keyed from OS randomness per process and unknown to
/// the client). A check hashes the presented secret — in time that depends
/// only on its own, client-known, length — and compares that digest with
/// every configured digest using branch-free arithmetic, without stopping at
/// a match. Only when a digest matches are the bytes compared exactly (to
/// rule out a collision), and reaching that point already requires knowing
/// the secret. So neither the content nor the length of any configured
/// secret, nor which entry matched, shows in the timing of a failed attempt.
/// No extra crate (`subtle`) is needed.
///
/// `Debug` shows the realm, the user names and how many tokens there are,
/// never a password or token.
#[derive(Clone)]
pub struct Authentication {
    realm: String,
    keys: [RandomState; 2],
    basic: Vec<Entry>,
    bearer: Vec<Entry>,
    token: Vec<Entry>,
}

impl Authentication {
    /// A policy accepting nothing yet, for `realm` (shown by browsers in the
    /// login dialog). Control characters in the realm are dropped and `"`/`\`
    /// escaped when it is sent, so it cannot break the header.
    pub fn new(realm: &str) -> Authentication {
        Authentication {
            realm: realm.chars().filter(|c| !c.is_control()).collect(),
            keys: [RandomState::new(), RandomState::new()],
            basic: Vec::new(),
            bearer: Vec::new(),
            token: Vec::new(),
        }
    }

    /// Accepts `Basic` credentials for `username` with `password`. A user
    /// name holding `:` can never match (RFC 7617 forbids it).
    pub fn basic(mut self, username: &str, password: &str) -> Authentication {
        let secret = basic_secret(username, password);
        let entry = Entry {
            username: username.to_owned(),
            digest: self.digest(&secret),
            secret: secret.into_boxed_slice(),
        };
        self.basic.push(entry);
        self
    }

    /// Accepts `Authorization: Bearer <token>`. A token with spaces or
    /// non-ASCII characters can never match.
    pub fn bearer(mut self, token: &str) -> Authentication {
        let entry = self.token_entry(token);
        self.bearer.push(entry);
        self
    }

    /// Accepts `Authorization: Token <token>` (`adafruit_httpserver`'s scheme).
    pub fn token(mut self, token: &str) -> Authentication {
        let entry = self.token_entry(token);
        self.token.push(entry);
        self
    }

    fn token_entry(&self, token: &str) -> Entry {
        Entry {
            username: String::new(),
            digest: self.digest(token.as_bytes()),
            secret: token.as_bytes().into(),
        }
    }

    fn digest(&self, bytes: &[u8]) -> [u64; 2] {
        self.keys.each_ref().map(|k| {
            let mut h = k.build_hasher();
            h.write(bytes);
            h.finish()
        })
    }

    /// Whether the request's `Authorization` header matches any accepted
    /// credential (`false` when there is none, or several).
    pub fn check(&self, headers: &Headers) -> bool {
        self.authenticate(headers).is_some()
    }

    /// Whether `credentials` match any accepted credential.
    pub fn check_credentials(&self, credentials: &Credentials) -> bool {
        self.principal(credentials).is_some()
    }

    /// Who the request authenticated as, or `None`.
    pub fn authenticate(&self, headers: &Headers) -> Option<Principal<'_>> {
        self.principal(&Credentials::from_headers(headers)?)
    }

    fn principal(&self, credentials: &Credentials) -> Option<Principal<'_>> {
        match credentials {
            Credentials::Basic { username, password } => {
                let i = self.find(&self.basic, &basic_secret(username, password))?;
                Some(Principal::Basic(&self.basic[i].username))
            }
            Credentials::Bearer(t) => self.find(&self.bearer, t.as_bytes()).map(Principal::Bearer),
            Credentials::Token(t) => self.find(&self.token, t.as_bytes()).map(Principal::Token),
        }
    }

    /// The index of the entry whose secret is `presented`, looking at every
    /// entry whatever the outcome.
    fn find(&self, entries: &[Entry], presented: &[u8]) -> Option<usize> {
        if entries.is_empty() {
            return None;
        }
        let d = self.digest(presented);
        let mut found = usize::MAX;
        for (i, e) in entries.iter().enumerate() {
            let diff = black_box((d[0] ^ e.digest[0]) | (d[1] ^ e.digest[1]));
            // All ones when diff == 0, else zero, without a branch.
            let is_zero = ((diff | diff.wrapping_neg()) >> 63) ^ 1;
            let mask = (is_zero as usize).wrapping_neg();
            found = (i & mask) | (found & !mask);
        }
        let entry = entries.get(black_box(found))?;
        // Reached only with the right digest: the exact check rules out a
        // (2^-128) collision and reveals nothing new.
        (*entry.secret == *presented).then_some(found)
    }

    /// The `WWW-Authenticate` values to send with a 401, one per configured
    /// scheme: `Basic realm="…", charset="UTF-8"` when Basic users exist,
    /// `Bearer realm="…"` when Bearer tokens exist, `Token realm="…"` when
    /// `Token` tokens exist; just the Basic one when nothing is configured
    /// (a 401 must carry at least one challenge). Browsers show their login
    /// dialog only for a Basic challenge.
    pub fn challenge(&self) -> Vec<String> {
        let realm = quote(&self.realm);
        let mut out = Vec::new();
        if !self.basic.is_empty() || (self.bearer.is_empty() && self.token.is_empty()) {
            out.push(format!("Basic realm={realm}, charset=\"UTF-8\""));
        }
        if !self.bearer.is_empty() {
            out.push(format!("Bearer realm={realm}"));
        }
        if !self.token.is_empty() {
            out.push(format!("Token realm={realm}"));
        }
        out
    }

    /// A `401 Unauthorized` response with the [`challenge`](Self::challenge)
    /// as `WWW-Authenticate` header(s) and a short plain-text body.
    ///
    /// ```
    /// # use pollserve::{auth::Authentication, Headers, Response, HttpError};
    /// # let auth = Authentication::new("x").token("t");
    /// fn handler(headers: &Headers, auth: &Authentication) -> Result<Response, HttpError> {
    ///     if !auth.check(headers) {
    ///         return Ok(auth.unauthorized());
    ///     }
    ///     Ok(Response::text("secret stuff"))
    /// }
    /// # assert_eq!(handler(&Headers::new(), &auth).unwrap().status().as_u16(), 401);
    /// ```
    pub fn unauthorized(&self) -> Response {
        self.unauthorized_error().into()
    }

    /// The `401` of [`unauthorized`](Self::unauthorized) as an [`HttpError`].
    pub fn unauthorized_error(&self) -> HttpError {
        self.challenge().iter().fold(
            HttpError::new(StatusCode::UNAUTHORIZED, "Unauthorized"),
            |e, c| e.with_header("WWW-Authenticate", c),
        )
    }

    /// `adafruit_httpserver`'s `require_authentication`: who authenticated, or the `401`
    /// to return, so a handler can write `auth.require(req.headers())?;`.
    ///
    /// ```
    /// # use pollserve::{auth::Authentication, Headers};
    /// let auth = Authentication::new("x").token("t");
    /// let err = auth.require(&Headers::new()).unwrap_err();
    /// assert_eq!(err.status.as_u16(), 401);
    /// assert_eq!(err.headers.get("www-authenticate"), Some(r#"Token realm="x""#));
    /// ```
    pub fn require(&self, headers: &Headers) -> Result<Principal<'_>, HttpError> {
        self.authenticate(headers)
            .ok_or_else(|| self.unauthorized_error())
    }

    /// The realm, as given (without control characters).
    pub fn realm(&self) -> &str {
        &self.realm
    }
}

/// `len(user) || user || password`: unambiguous, unlike `user:password`
/// when a configured user name holds `:`.
fn basic_secret(username: &str, password: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + username.len() + password.len());
    v.extend_from_slice(&(username.len() as u64).to_le_bytes());
    v.extend_from_slice(username.as_bytes());
    v.extend_from_slice(password.as_bytes());
    v
}

/// A quoted-string with `"` and `\` escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl fmt::Debug for Authentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authentication")
            .field("realm", &self.realm)
            .field(
                "basic_users",
                &self.basic.iter().map(|e| &e.username).collect::<Vec<_>>(),
            )
            .field("bearer_tokens", &self.bearer.len())
            .field("tokens", &self.token.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(value: &str) -> Headers {
        [("Authorization", value)].into_iter().collect()
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn parses_basic() {
        let c = Credentials::parse(&format!("Basic {}", b64("user:pa:ss wörd"))).unwrap();
        assert_eq!(
            c,
            Credentials::Basic {
                username: "user".into(),
                password: "pa:ss wörd".into()
            }
        );
        assert_eq!(c.username(), Some("user"));
        assert_eq!(c.scheme(), "Basic");
        // Scheme case, extra spaces, missing padding.
        let c = Credentials::parse("  bAsIc   dXNlcjpwdw ").unwrap();
        assert_eq!(c.username(), Some("user"));
        // Empty user and password are still credentials.
        let c = Credentials::parse(&format!("Basic {}", b64(":"))).unwrap();
        assert_eq!(c.username(), Some(""));
    }

    #[test]
    fn rejects_bad_basic() {
        for v in [
            "Basic".to_owned(),
            "Basic ".to_owned(),
            "Basic !!!!".to_owned(),
            format!("Basic {}", b64("no-colon")),
            format!("Basic {} extra", b64("a:b")),
            "Basic /w==".to_owned(), // 0xff: not UTF-8
            "Basic\tdXNlcjpwdw==".to_owned(),
            "Digest username=x".to_owned(),
            String::new(),
        ] {
            assert_eq!(Credentials::parse(&v), None, "{v:?}");
        }
    }

    #[test]
    fn parses_tokens() {
        assert_eq!(
            Credentials::parse("Bearer abc.DEF-123_~+/=="),
            Some(Credentials::Bearer("abc.DEF-123_~+/==".into()))
        );
        assert_eq!(
            Credentials::parse("token xyz"),
            Some(Credentials::Token("xyz".into()))
        );
        assert_eq!(Credentials::parse("Bearer a b"), None);
        assert_eq!(Credentials::parse("Bearer tök"), None);
        assert_eq!(Credentials::parse("Bearer\u{7f}x"), None);
        assert_eq!(Credentials::Token("t".into()).scheme(), "Token");
        assert_eq!(Credentials::Bearer("t".into()).username(), None);
    }

    #[test]
    fn from_headers_requires_exactly_one() {
        assert_eq!(Credentials::from_headers(&Headers::new()), None);
        let h: Headers = [("Authorization", "Bearer a"), ("authorization", "Bearer b")]
            .into_iter()
            .collect();
        assert_eq!(Credentials::from_headers(&h), None);
        assert_eq!(
            Credentials::from_headers(&hdr("Bearer a")),
            Some(Credentials::Bearer("a".into()))
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credentials::Basic {
            username: "alice".into(),
            password: "hunter2".into(),
        };
        let d = format!("{c:?}");
        assert!(d.contains("alice") && !d.contains("hunter2"));
        assert!(!format!("{:?}", Credentials::Bearer("tok123".into())).contains("tok123"));
        assert!(!format!("{:?}", Credentials::Token("tok123".into())).contains("tok123"));
        let a = Authentication::new("r")
            .basic("alice", "hunter2")
            .bearer("tok123")
            .token("tok456");
        let d = format!("{a:?}");
        assert!(d.contains("alice"));
        assert!(!d.contains("hunter2") && !d.contains("tok123") && !d.contains("tok456"));
        let d = format!("{:#?}", a.clone());
        assert!(!d.contains("hunter2"));
    }

    #[test]
    fn check_basic() {
        let a = Authentication::new("r")
            .basic("alice", "hunter2")
            .basic("bob", "pa:ss");
        assert!(a.check(&hdr(&format!("Basic {}", b64("alice:hunter2")))));
        assert!(a.check(&hdr(&format!("Basic {}", b64("bob:pa:ss")))));
        assert_eq!(
            a.authenticate(&hdr(&format!("Basic {}", b64("bob:pa:ss")))),
            Some(Principal::Basic("bob"))
        );
        for wrong in [
            "alice:hunter",
            "alice:hunter22",
            "alice:",
            "bob:hunter2",
            "Alice:hunter2",
            "alicehunter2:",
        ] {
            assert!(!a.check(&hdr(&format!("Basic {}", b64(wrong)))), "{wrong}");
        }
        assert!(!a.check(&Headers::new()));
        // A Basic password is not a token.
        assert!(!a.check(&hdr("Bearer hunter2")));
    }

    #[test]
    fn basic_user_with_colon_never_matches_a_split() {
        let a = Authentication::new("r").basic("a:b", "c");
        assert!(!a.check(&hdr(&format!("Basic {}", b64("a:b:c")))));
        assert!(!a.check_credentials(&Credentials::Basic {
            username: "a".into(),
            password: "b:c".into()
        }));
        // Only reachable through check_credentials with a hand-made value.
        assert!(a.check_credentials(&Credentials::Basic {
            username: "a:b".into(),
            password: "c".into()
        }));
    }

    #[test]
    fn check_tokens_by_scheme() {
        let a = Authentication::new("r")
            .bearer("b1")
            .bearer("b2")
            .token("t1");
        assert_eq!(
            a.authenticate(&hdr("Bearer b2")),
            Some(Principal::Bearer(1))
        );
        assert_eq!(
            a.authenticate(&hdr("Bearer b1")),
            Some(Principal::Bearer(0))
        );
        assert_eq!(a.authenticate(&hdr("Token t1")), Some(Principal::Token(0)));
        assert!(!a.check(&hdr("Token b1")));
        assert!(!a.check(&hdr("Bearer t1")));
        assert!(!a.check(&hdr("Bearer b")));
        assert!(!a.check(&hdr("Bearer b11")));
        assert!(!a.check(&hdr("Bearer B1")));
        assert!(!Authentication::new("r").check(&hdr("Bearer b1")));
    }

    #[test]
    fn token_with_space_never_matches() {
        let a = Authentication::new("r").token("has space");
        assert!(!a.check(&hdr("Token has space")));
        assert!(!a.check(&hdr("Token has")));
    }

    #[test]
    fn empty_secret_entries() {
        let a = Authentication::new("r").basic("", "").bearer("");
        assert!(a.check(&hdr(&format!("Basic {}", b64(":")))));
        // "Bearer " has no token, so it is not credentials at all.
        assert!(!a.check(&hdr("Bearer ")));
    }

    #[test]
    fn find_scans_every_entry() {
        // The matching entry is found wherever it sits, and duplicates give
        // the last match (no early exit).
        let mut a = Authentication::new("r");
        for i in 0..50 {
            a = a.bearer(&format!("tok{i}"));
        }
        a = a.bearer("tok7");
        for i in 0..50 {
            let want = if i == 7 { 50 } else { i };
            assert_eq!(
                a.authenticate(&hdr(&format!("Bearer tok{i}"))),
                Some(Principal::Bearer(want))
            );
        }
        assert_eq!(a.authenticate(&hdr("Bearer tok50")), None);
    }

    #[test]
    fn challenges() {
        assert_eq!(
            Authentication::new("r").challenge(),
            [r#"Basic realm="r", charset="UTF-8""#]
        );
        assert_eq!(
            Authentication::new("r").bearer("x").challenge(),
            [r#"Bearer realm="r""#]
        );
        assert_eq!(
            Authentication::new("r").token("x").challenge(),
            [r#"Token realm="r""#]
        );
        assert_eq!(
            Authentication::new("r")
                .basic("u", "p")
                .bearer("x")
                .token("y")
                .challenge(),
            [
                r#"Basic realm="r", charset="UTF-8""#,
                r#"Bearer realm="r""#,
                r#"Token realm="r""#
            ]
        );
    }

    #[test]
    fn realm_cannot_inject() {
        let a = Authentication::new("evil\"\r\nSet-Cookie: x=1\\");
        assert_eq!(a.realm(), "evil\"Set-Cookie: x=1\\");
        assert_eq!(
            a.challenge(),
            [r#"Basic realm="evil\"Set-Cookie: x=1\\", charset="UTF-8""#]
        );
        let r = a.unauthorized();
        assert_eq!(r.headers().get_all("www-authenticate").count(), 1);
        assert!(r.headers().get("set-cookie").is_none());
    }

    #[test]
    fn unauthorized_response() {
        let r = Authentication::new("Zone ü")
            .basic("u", "p")
            .bearer("t")
            .unauthorized();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let ch: Vec<_> = r.headers().get_all("WWW-Authenticate").collect();
        assert_eq!(ch.len(), 2);
        assert!(ch[0].starts_with("Basic realm=\"Zone ü\""));
        assert_eq!(r.body_bytes(), Some(&b"Unauthorized\n"[..]));
    }

    #[test]
    fn random_headers_never_panic() {
        let alphabet: &[u8] = b"BasicBearerToken :=+/\xc3\xa9\t";
        let a = Authentication::new("r")
            .basic("a", "b")
            .bearer("c")
            .token("d");
        let mut seed = 3u64;
        for _ in 0..3000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(11);
            let len = (seed >> 40) as usize % 20;
            let bytes: Vec<u8> = (0..len)
                .map(|i| alphabet[((seed >> (i % 50)) as usize ^ i) % alphabet.len()])
                .collect();
            let s = String::from_utf8_lossy(&bytes);
            let _ = Credentials::parse(&s);
            let _ = a.check(&hdr(&s));
        }
    }
}
