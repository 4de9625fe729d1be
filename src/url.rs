//! Request-target splitting, percent-decoding and query-string parsing.
//!
//! Everything here is strict: a `%` must be followed by two hex digits, and the
//! decoded bytes must be valid UTF-8. Nothing in this module panics, whatever
//! the input.
//!
//! * [`split_target`] cuts an origin-form request target into path and query.
//! * [`decode_path`] splits a raw path on `/` *first* and then decodes every
//!   segment, so an encoded slash (`%2F`) can never act as a separator. The
//!   result ([`DecodedPath`]) is what the router matches against and what a
//!   static-file handler must check ([`DecodedPath::has_unsafe_segment`]).
//! * [`percent_decode_path`] decodes one path segment (`+` stays `+`).
//! * [`decode_form_component`] decodes one `application/x-www-form-urlencoded`
//!   name or value (`+` is a space).
//! * [`QueryParams`] is an ordered, multi-valued list of decoded pairs, for
//!   query strings and urlencoded request bodies alike.

use crate::pairs::Pairs;
use std::borrow::Cow;

/// Error returned when percent-decoding fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A `%` that is not followed by two hexadecimal digits (`%zz`, or a
    /// truncated `%4` at the end of the input).
    #[error("invalid percent-escape at byte {offset}")]
    InvalidEscape {
        /// Byte offset of the offending `%` in the input that was decoded.
        offset: usize,
    },
    /// The decoded bytes are not valid UTF-8.
    #[error("percent-decoded text is not valid UTF-8")]
    InvalidUtf8,
    /// A path handed to [`decode_path`] does not start with `/`.
    #[error("path does not start with '/'")]
    NotAbsolute,
}

/// Splits an origin-form request target into its path and query.
///
/// Any `#fragment` is dropped first (clients should not send one, but some do).
/// The query is everything after the first `?`, without the `?`; it is
/// `Some("")` for a target such as `/a?` and `None` when there is no `?` at all.
/// Neither part is decoded.
///
/// ```text
/// split_target("/a/b?x=1#top")        == ("/a/b", Some("x=1"))
/// split_target("/a#frag?not-a-query") == ("/a", None)
/// ```
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    let target = match memchr::memchr(b'#', target.as_bytes()) {
        Some(i) => &target[..i],
        None => target,
    };
    match memchr::memchr(b'?', target.as_bytes()) {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    }
}

/// Percent-decodes one path segment (or a whole path, see below).
///
/// `%XX` becomes the byte `0xXX`; `+` is left alone (it only means a space in
/// form data). An invalid escape is an error, and so is a result that is not
/// valid UTF-8. Input without any `%` is returned borrowed, without copying.
///
/// Decoding a whole path with this function turns `%2F` into a separator-like
/// `/`; use [`decode_path`] to route or to serve files.
pub fn percent_decode_path(segment: &str) -> Result<Cow<'_, str>, DecodeError> {
    decode_str(segment, false)
}

/// Decodes one `application/x-www-form-urlencoded` component (a query or form
/// field name or value): `+` means a space, then `%XX` escapes are decoded.
///
/// Errors are as for [`percent_decode_path`]. Input with neither `%` nor `+`
/// is returned borrowed.
pub fn decode_form_component(component: &str) -> Result<Cow<'_, str>, DecodeError> {
    decode_str(component, true)
}

fn decode_str(input: &str, plus_is_space: bool) -> Result<Cow<'_, str>, DecodeError> {
    match decode_bytes(input.as_bytes(), plus_is_space)? {
        // Unchanged input is the original `&str`, so it is already UTF-8.
        Cow::Borrowed(_) => Ok(Cow::Borrowed(input)),
        Cow::Owned(bytes) => String::from_utf8(bytes)
            .map(Cow::Owned)
            .map_err(|_| DecodeError::InvalidUtf8),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` (and `+` when asked) in raw bytes. Returns the input
/// borrowed when it has nothing to decode. Does not check UTF-8.
fn decode_bytes(input: &[u8], plus_is_space: bool) -> Result<Cow<'_, [u8]>, DecodeError> {
    let first = if plus_is_space {
        memchr::memchr2(b'%', b'+', input)
    } else {
        memchr::memchr(b'%', input)
    };
    let Some(first) = first else {
        return Ok(Cow::Borrowed(input));
    };
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&input[..first]);
    let mut i = first;
    while i < input.len() {
        match input[i] {
            b'%' => {
                let hi = input.get(i + 1).copied().and_then(hex_value);
                let lo = input.get(i + 2).copied().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(DecodeError::InvalidEscape { offset: i }),
                }
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(Cow::Owned(out))
}

/// Decodes a form component given as raw bytes (used by
/// [`QueryParams::parse_bytes`], whose input need not be UTF-8).
fn decode_form_bytes(component: &[u8]) -> Result<String, DecodeError> {
    let bytes = decode_bytes(component, true)?;
    match bytes {
        Cow::Borrowed(b) => std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8),
        Cow::Owned(v) => String::from_utf8(v).map_err(|_| DecodeError::InvalidUtf8),
    }
}

/// Whether a *decoded* path segment must never be used as a file-name
/// component: it is `.` or `..`, or it contains `/`, `\` or NUL.
///
/// An empty segment (from `//`) is not considered unsafe here.
pub fn is_unsafe_segment(segment: &str) -> bool {
    segment == "."
        || segment == ".."
        || memchr::memchr3(b'/', b'\\', 0, segment.as_bytes()).is_some()
}

/// A request path split into percent-decoded segments; see [`decode_path`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecodedPath {
    segments: Vec<String>,
    trailing_slash: bool,
    unsafe_segment: bool,
}

impl DecodedPath {
    /// The decoded segments, in order, without the leading `/` and without
    /// the empty segment a trailing `/` would produce: `/` gives `[]`, `/a/b`
    /// and `/a/b/` both give `["a", "b"]`, and `/a//b` gives `["a", "", "b"]`.
    ///
    /// A segment may contain `/` if the client sent `%2F`.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Consumes the path and returns its segments.
    pub fn into_segments(self) -> Vec<String> {
        self.segments
    }

    /// Whether the raw path ended with `/` after at least one segment
    /// (`/a/` yes; `/a` and the root `/` no). Pass this to the router.
    pub fn trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// Whether any decoded segment is `.` or `..` or contains `/`, `\` or NUL
    /// (see [`is_unsafe_segment`]). A static-file handler must refuse such a
    /// path; the router itself does not care.
    pub fn has_unsafe_segment(&self) -> bool {
        self.unsafe_segment
    }

    /// The decoded path as one string: `/` followed by the segments joined
    /// with `/`, plus a final `/` if [`trailing_slash`](Self::trailing_slash).
    ///
    /// This is for display and logging only: a decoded `%2F` is
    /// indistinguishable from a separator here, so make decisions on
    /// [`segments`](Self::segments) instead.
    pub fn path(&self) -> String {
        let mut s =
            String::with_capacity(1 + self.segments.iter().map(|x| x.len() + 1).sum::<usize>());
        s.push('/');
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                s.push('/');
            }
            s.push_str(seg);
        }
        if self.trailing_slash {
            s.push('/');
        }
        s
    }
}

/// Splits a raw (still encoded) path on `/` and percent-decodes each segment.
///
/// The path must start with `/` ([`DecodeError::NotAbsolute`] otherwise; give
/// it the path part of [`split_target`]). Splitting happens *before*
/// decoding, so `/a%2Fb` is the single segment `"a/b"`, never two segments.
/// `+` is not a space in a path. Any invalid escape or non-UTF-8 segment makes
/// the whole path an error (the server should answer `400 Bad Request`).
///
/// Dot segments are *not* resolved: `/a/../b` yields `["a", "..", "b"]` and
/// sets [`DecodedPath::has_unsafe_segment`].
pub fn decode_path(raw_path: &str) -> Result<DecodedPath, DecodeError> {
    let Some(rest) = raw_path.strip_prefix('/') else {
        return Err(DecodeError::NotAbsolute);
    };
    let mut out = DecodedPath::default();
    if rest.is_empty() {
        return Ok(out);
    }
    let rest = match rest.strip_suffix('/') {
        Some(r) => {
            out.trailing_slash = true;
            r
        }
        None => rest,
    };
    let mut offset = 1;
    for raw in rest.split('/') {
        let seg = percent_decode_path(raw).map_err(|e| match e {
            DecodeError::InvalidEscape { offset: o } => {
                DecodeError::InvalidEscape { offset: o + offset }
            }
            other => other,
        })?;
        offset += raw.len() + 1;
        out.unsafe_segment |= is_unsafe_segment(&seg);
        out.segments.push(seg.into_owned());
    }
    Ok(out)
}

/// An ordered, multi-valued list of percent-decoded `(name, value)` pairs, as
/// found in a query string or an `application/x-www-form-urlencoded` body.
///
/// Parsing rules ([`parse`](Self::parse)):
///
/// * pairs are separated by `&` (`;` is not a separator); empty pairs, as in
///   `a=1&&b=2` or a trailing `&`, are skipped;
/// * a pair is split at its first `=`: `c=` has the value `""`, a pair with no
///   `=` at all (`b`) is present with the value `""`, and `=x` has the name
///   `""`;
/// * names and values are decoded with [`decode_form_component`] (`+` is a
///   space);
/// * **a pair whose name or value fails to decode (invalid escape, or not
///   UTF-8) is dropped** and counted in [`malformed`](Self::malformed), so a
///   server that wants to be strict can answer `400` when that count is not 0.
///
/// Names are case-sensitive; order and duplicates are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryParams {
    pairs: Pairs,
    malformed: usize,
}

/// The lookups (`get`, `get_all`, `contains`, `iter`, `len`, `is_empty`).
impl std::ops::Deref for QueryParams {
    type Target = Pairs;
    fn deref(&self) -> &Pairs {
        &self.pairs
    }
}

impl QueryParams {
    /// Parses a query string (without the leading `?`). Never fails; see the
    /// type's documentation for what happens to malformed pairs.
    pub fn parse(query: &str) -> QueryParams {
        Self::parse_bytes(query.as_bytes())
    }

    /// Parses raw bytes, such as an urlencoded request body, with the same
    /// rules as [`parse`](Self::parse). A pair whose decoded name or value is
    /// not UTF-8 is dropped and counted as malformed.
    pub fn parse_bytes(query: &[u8]) -> QueryParams {
        let mut out = QueryParams::default();
        for pair in query.split(|&b| b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match memchr::memchr(b'=', pair) {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            match (decode_form_bytes(name), decode_form_bytes(value)) {
                (Ok(n), Ok(v)) => out.pairs.push(n, v),
                _ => out.malformed += 1,
            }
        }
        out
    }

    /// Number of pairs that were dropped because they failed to decode.
    pub fn malformed(&self) -> usize {
        self.malformed
    }
}

impl<'a> IntoIterator for &'a QueryParams {
    type Item = (&'a str, &'a str);
    type IntoIter = <&'a Pairs as IntoIterator>::IntoIter;
    fn into_iter(self) -> Self::IntoIter {
        (&self.pairs).into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_target_cases() {
        assert_eq!(split_target("/"), ("/", None));
        assert_eq!(split_target("/a?"), ("/a", Some("")));
        assert_eq!(split_target("/a?b=1?c"), ("/a", Some("b=1?c")));
        assert_eq!(split_target("/a?b#c?d"), ("/a", Some("b")));
        assert_eq!(split_target("/a#?b"), ("/a", None));
        assert_eq!(split_target(""), ("", None));
        assert_eq!(split_target("?x"), ("", Some("x")));
    }

    #[test]
    fn path_decoding() {
        assert_eq!(percent_decode_path("abc").unwrap(), "abc");
        assert!(matches!(
            percent_decode_path("abc").unwrap(),
            Cow::Borrowed(_)
        ));
        assert_eq!(percent_decode_path("a%20b").unwrap(), "a b");
        assert_eq!(percent_decode_path("a+b").unwrap(), "a+b");
        assert_eq!(percent_decode_path("%2b").unwrap(), "+");
        assert_eq!(percent_decode_path("%2F").unwrap(), "/");
        assert_eq!(percent_decode_path("caf%C3%A9").unwrap(), "café");
        assert_eq!(percent_decode_path("café").unwrap(), "café");
        assert_eq!(percent_decode_path("%25").unwrap(), "%");
        assert_eq!(percent_decode_path("%2525").unwrap(), "%25");
        assert_eq!(percent_decode_path("").unwrap(), "");
    }

    #[test]
    fn invalid_escapes() {
        for (s, off) in [
            ("%", 0),
            ("%4", 0),
            ("a%zz", 1),
            ("%g0", 0),
            ("%0g", 0),
            ("ab%4", 2),
            ("%41%", 3),
            ("%%41", 0),
            ("%é", 0),
        ] {
            assert_eq!(
                percent_decode_path(s),
                Err(DecodeError::InvalidEscape { offset: off }),
                "{s}"
            );
            assert_eq!(
                decode_form_component(s),
                Err(DecodeError::InvalidEscape { offset: off }),
                "{s}"
            );
        }
    }

    #[test]
    fn non_utf8_is_an_error() {
        for s in ["%FF", "%C3", "%C3%28", "a%80b", "%ED%A0%80", "%C0%AF"] {
            assert_eq!(percent_decode_path(s), Err(DecodeError::InvalidUtf8), "{s}");
            assert_eq!(
                decode_form_component(s),
                Err(DecodeError::InvalidUtf8),
                "{s}"
            );
        }
    }

    #[test]
    fn form_plus_is_space() {
        assert_eq!(decode_form_component("a+b").unwrap(), "a b");
        assert_eq!(decode_form_component("a%2Bb").unwrap(), "a+b");
        assert_eq!(decode_form_component("+%20+").unwrap(), "   ");
        assert!(matches!(
            decode_form_component("ab").unwrap(),
            Cow::Borrowed(_)
        ));
        assert_eq!(decode_form_component("").unwrap(), "");
    }

    #[test]
    fn decode_path_splits_before_decoding() {
        let p = decode_path("/files/a%2Fb/c").unwrap();
        assert_eq!(p.segments(), ["files", "a/b", "c"]);
        assert!(p.has_unsafe_segment());
        assert!(!p.trailing_slash());
        assert_eq!(p.path(), "/files/a/b/c");

        let p = decode_path("/a/b/").unwrap();
        assert_eq!(p.segments(), ["a", "b"]);
        assert!(p.trailing_slash());
        assert!(!p.has_unsafe_segment());
        assert_eq!(p.path(), "/a/b/");

        let p = decode_path("/").unwrap();
        assert!(p.segments().is_empty());
        assert!(!p.trailing_slash());
        assert_eq!(p.path(), "/");

        let p = decode_path("/a//b").unwrap();
        assert_eq!(p.segments(), ["a", "", "b"]);
        assert!(!p.has_unsafe_segment());

        let p = decode_path("//").unwrap();
        assert_eq!(p.segments(), [""]);
        assert!(p.trailing_slash());

        let p = decode_path("/hello%20world/a+b").unwrap();
        assert_eq!(p.segments(), ["hello world", "a+b"]);
    }

    #[test]
    fn decode_path_flags_unsafe_segments() {
        for raw in [
            "/a/../b",
            "/a/./b",
            "/a/%2e%2e/b",
            "/%2E",
            "/a/.%2E",
            "/a%5Cb",
            "/a\\b",
            "/a%00b",
            "/a%2f..",
            "/..",
        ] {
            assert!(decode_path(raw).unwrap().has_unsafe_segment(), "{raw}");
        }
        for raw in ["/a/...", "/.hidden", "/a..b", "/a/b.txt", "/"] {
            assert!(!decode_path(raw).unwrap().has_unsafe_segment(), "{raw}");
        }
    }

    #[test]
    fn decode_path_errors() {
        assert_eq!(decode_path(""), Err(DecodeError::NotAbsolute));
        assert_eq!(decode_path("a/b"), Err(DecodeError::NotAbsolute));
        assert_eq!(decode_path("*"), Err(DecodeError::NotAbsolute));
        // Offsets are relative to the whole raw path.
        assert_eq!(
            decode_path("/ab/c%zz"),
            Err(DecodeError::InvalidEscape { offset: 5 })
        );
        assert_eq!(
            decode_path("/%4"),
            Err(DecodeError::InvalidEscape { offset: 1 })
        );
        assert_eq!(decode_path("/ok/%FF"), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn query_multi_values() {
        let q = QueryParams::parse("a=1&a=2&b&c=");
        assert_eq!(q.len(), 4);
        assert_eq!(q.get("a"), Some("1"));
        assert_eq!(q.get_all("a").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(q.get("b"), Some(""));
        assert_eq!(q.get("c"), Some(""));
        assert!(q.contains("b"));
        assert!(!q.contains("d"));
        assert_eq!(q.get("d"), None);
        assert_eq!(q.get_all("d").count(), 0);
        assert_eq!(
            q.iter().collect::<Vec<_>>(),
            [("a", "1"), ("a", "2"), ("b", ""), ("c", "")]
        );
        assert_eq!((&q).into_iter().count(), 4);
        assert_eq!(q.malformed(), 0);
    }

    #[test]
    fn query_case_sensitive_and_decoded() {
        let q = QueryParams::parse("Name=A+B&name=%C3%A9&x%20y=1%2B1&=v&e=a=b");
        assert_eq!(q.get("Name"), Some("A B"));
        assert_eq!(q.get("name"), Some("é"));
        assert_eq!(q.get("x y"), Some("1+1"));
        assert_eq!(q.get(""), Some("v"));
        assert_eq!(q.get("e"), Some("a=b"));
        assert_eq!(q.get("NAME"), None);
    }

    #[test]
    fn query_empty_and_separators() {
        assert!(QueryParams::parse("").is_empty());
        assert!(QueryParams::parse("&&&").is_empty());
        let q = QueryParams::parse("&a=1&&b=2&");
        assert_eq!(q.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "2")]);
        let q = QueryParams::parse("a=1;b=2");
        assert_eq!(q.get("a"), Some("1;b=2"));
        let q = QueryParams::parse("=");
        assert_eq!(q.iter().collect::<Vec<_>>(), [("", "")]);
    }

    #[test]
    fn query_malformed_pairs_are_dropped() {
        let q = QueryParams::parse("a=%zz&b=2&%FF=x&c=%4&d=ok");
        assert_eq!(q.iter().collect::<Vec<_>>(), [("b", "2"), ("d", "ok")]);
        assert_eq!(q.malformed(), 3);
        assert!(!q.contains("a"));
    }

    #[test]
    fn query_from_bytes() {
        let q = QueryParams::parse_bytes(b"a=1&b=\xff&c=%C3%A9");
        assert_eq!(q.iter().collect::<Vec<_>>(), [("a", "1"), ("c", "é")]);
        assert_eq!(q.malformed(), 1);
    }

    /// Deterministic pseudo-random inputs: nothing may panic.
    #[test]
    fn no_panics_on_garbage() {
        let alphabet: &[&str] = &[
            "%", "2", "F", "f", "z", "+", "&", "=", "/", "?", "#", "é", "\u{0}", ".", "a", "%C3",
            "%A9", "%FF", "\\",
        ];
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..5000 {
            let mut s = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 12) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let _ = split_target(&s);
            let _ = percent_decode_path(&s);
            let _ = decode_form_component(&s);
            let _ = QueryParams::parse(&s);
            let _ = decode_path(&s);
            let slashed = format!("/{s}");
            if let Ok(p) = decode_path(&slashed) {
                let _ = p.path();
            }
        }
    }
}
