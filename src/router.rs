//! Route patterns and the router that picks a handler for a request.
//!
//! # Pattern syntax
//!
//! The syntax is that of CircuitPython's `adafruit_httpserver`:
//!
//! | pattern segment | matches |
//! |---|---|
//! | `name` | exactly that (decoded, case-sensitive) segment |
//! | `<name>` | any one non-empty segment, captured as parameter `name` |
//! | `...` | any one non-empty segment, not captured |
//! | `....` | one or more segments (of any content), see [`Params::rest`] |
//!
//! A pattern starts with `/`. A pattern ending in `/` matches only paths that
//! end in `/`; one that does not end in `/` matches only paths that do not,
//! unless it was registered with `append_slash` (then `/a` matches `/a` and
//! `/a/`) or its last segment is `....` (which, as in `adafruit_httpserver`'s regex, also
//! swallows a trailing slash). The rules checked by [`RoutePattern::parse`]
//! are listed on [`RouteError`].
//!
//! Patterns are matched against the *decoded* segments of a request path
//! ([`crate::url::decode_path`]); literal segments are not decoded, so write
//! `/hello world` (not `/hello%20world`) to match `GET /hello%20world`. A
//! parameter may capture a value containing `/` if the client sent `%2F`.
//!
//! # Choosing a route
//!
//! [`Router::find`] returns the first registered route (in `add` order) whose
//! pattern matches and whose methods include the request's method; a route
//! that allows `GET` also answers `HEAD`. If some patterns matched but none
//! allows the method, the answer is [`RouteMatch::MethodNotAllowed`] with the
//! union of their methods (for the `Allow` header); otherwise
//! [`RouteMatch::NotFound`].

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use crate::method::Method;

/// The mask holding every known method.
fn all_methods_mask() -> u16 {
    Method::ALL.iter().fold(0, |m, x| m | x.bit())
}

/// Builds a method bitmask from a list of methods.
pub fn method_mask(methods: &[Method]) -> u16 {
    methods.iter().fold(0, |m, x| m | x.bit())
}

/// Whether `mask` contains `method`.
pub fn mask_contains(mask: u16, method: Method) -> bool {
    mask & method.bit() != 0
}

/// The methods in `mask`, in [`Method::ALL`] order.
pub fn mask_methods(mask: u16) -> impl Iterator<Item = Method> {
    Method::ALL
        .into_iter()
        .filter(move |m| mask_contains(mask, *m))
}

/// Formats a method mask as an `Allow` header value, e.g. `"GET, HEAD, POST"`
/// (empty string for an empty mask).
pub fn allow_header_value(mask: u16) -> String {
    let mut s = String::new();
    for m in mask_methods(mask) {
        if !s.is_empty() {
            s.push_str(", ");
        }
        s.push_str(m.as_str());
    }
    s
}

/// Anything that names a set of methods for a route: a single [`Method`], a
/// slice or array of them, or a raw `u16` mask (as from [`method_mask`]).
pub trait IntoMethodMask {
    /// The set as a bitmask (bits of unknown methods are ignored by the router).
    fn into_method_mask(self) -> u16;
}

impl IntoMethodMask for Method {
    fn into_method_mask(self) -> u16 {
        self.bit()
    }
}

impl IntoMethodMask for u16 {
    fn into_method_mask(self) -> u16 {
        self
    }
}

impl IntoMethodMask for &[Method] {
    fn into_method_mask(self) -> u16 {
        method_mask(self)
    }
}

impl<const N: usize> IntoMethodMask for [Method; N] {
    fn into_method_mask(self) -> u16 {
        method_mask(&self)
    }
}

impl<const N: usize> IntoMethodMask for &[Method; N] {
    fn into_method_mask(self) -> u16 {
        method_mask(self)
    }
}

/// Why a route pattern (or route) was rejected. Every variant names the
/// offending pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The pattern does not start with `/`.
    #[error("route pattern {pattern:?} must start with '/'")]
    MissingLeadingSlash {
        /// The rejected pattern.
        pattern: String,
    },
    /// `append_slash` was asked for a pattern that already ends with `/`
    /// (this includes the root pattern `/`).
    #[error("route pattern {pattern:?} ends with '/', so it cannot use append_slash")]
    AppendSlashWithTrailingSlash {
        /// The rejected pattern.
        pattern: String,
    },
    /// The pattern contains `//` (an empty segment).
    #[error("route pattern {pattern:?} contains '//'")]
    DoubleSlash {
        /// The rejected pattern.
        pattern: String,
    },
    /// The pattern contains `?`, `#` or a control character, which can never
    /// appear in a request path.
    #[error("route pattern {pattern:?} contains the invalid character {ch:?}")]
    InvalidCharacter {
        /// The rejected pattern.
        pattern: String,
        /// The first invalid character.
        ch: char,
    },
    /// A parameter without a name: `<>`.
    #[error("route pattern {pattern:?} has a parameter without a name ('<>')")]
    UnnamedParam {
        /// The rejected pattern.
        pattern: String,
    },
    /// A parameter name that is not an ASCII identifier (`[A-Za-z_][A-Za-z0-9_]*`).
    #[error("route pattern {pattern:?}: parameter name {name:?} is not an identifier")]
    InvalidParamName {
        /// The rejected pattern.
        pattern: String,
        /// The offending name.
        name: String,
    },
    /// Two parameters with the same name.
    #[error("route pattern {pattern:?} uses the parameter name {name:?} twice")]
    DuplicateParam {
        /// The rejected pattern.
        pattern: String,
        /// The repeated name.
        name: String,
    },
    /// A `<` without a closing `>`.
    #[error("route pattern {pattern:?} has a '<' without a matching '>'")]
    UnclosedParam {
        /// The rejected pattern.
        pattern: String,
    },
    /// A `>` without an opening `<`.
    #[error("route pattern {pattern:?} has a '>' without a matching '<'")]
    UnopenedParam {
        /// The rejected pattern.
        pattern: String,
    },
    /// A parameter that shares its segment with other text, as in `/a<b>` or
    /// `/<a><b>`; a parameter must be a whole segment.
    #[error("route pattern {pattern:?}: a parameter must be a whole segment (between slashes)")]
    ParamNotWholeSegment {
        /// The rejected pattern.
        pattern: String,
    },
    /// `...` or `....` that shares its segment with other text, as in `/a...`.
    #[error(
        "route pattern {pattern:?}: '...' and '....' must be whole segments (between slashes)"
    )]
    WildcardNotWholeSegment {
        /// The rejected pattern.
        pattern: String,
    },
    /// A segment of five or more dots.
    #[error("route pattern {pattern:?} has more than four dots in a row")]
    TooManyDots {
        /// The rejected pattern.
        pattern: String,
    },
    /// A `.` or `..` segment, which clients resolve away and so never send.
    #[error("route pattern {pattern:?} has a '.' or '..' segment")]
    DotSegment {
        /// The rejected pattern.
        pattern: String,
    },
    /// The route was given no (known) method.
    #[error("route {pattern:?} has no methods")]
    NoMethods {
        /// The rejected pattern.
        pattern: String,
    },
}

/// One compiled pattern element. `....` compiles to `ManyHead` followed by
/// `Star`, so every element but `Star` consumes exactly one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A literal segment.
    Lit(Box<str>),
    /// `<name>`: index into the pattern's names.
    Param(usize),
    /// `...`
    One,
    /// First segment of `....` (may be empty, like `adafruit_httpserver`'s `.+`).
    ManyHead,
    /// Rest of `....`: zero or more segments.
    Star,
}

impl Tok {
    fn matches_one(&self, seg: &str) -> bool {
        match self {
            Tok::Lit(l) => **l == *seg,
            Tok::Param(_) | Tok::One => !seg.is_empty(),
            Tok::ManyHead => true,
            Tok::Star => false,
        }
    }
}

/// How a pattern treats a trailing slash on the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slash {
    /// Path must not end with `/`.
    Forbidden,
    /// Path must end with `/`.
    Required,
    /// Either.
    Optional,
}

/// A parsed route pattern; see the [module documentation](self) for the syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    source: Box<str>,
    append_slash: bool,
    toks: Box<[Tok]>,
    names: Box<[Box<str>]>,
    slash: Slash,
    /// Number of non-`Star` elements: the minimum segment count.
    fixed: usize,
    has_star: bool,
    /// Index in `toks` of the last `ManyHead`.
    last_many: Option<usize>,
    /// Number of elements after the last `Star`.
    tail: usize,
}

fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl RoutePattern {
    /// Parses and validates `pattern`. With `append_slash`, a pattern that
    /// does not end in `/` also matches the same path followed by `/`.
    ///
    /// The checks, in order, are those of `adafruit_httpserver` (leading `/`,
    /// `append_slash` with a trailing `/`, `//`, unnamed parameter, parameter
    /// or wildcard not a whole segment, five or more dots) plus: `?`, `#` and
    /// control characters, unclosed `<` / unopened `>`, parameter names that
    /// are not identifiers, duplicate names, and `.`/`..` segments. Each has
    /// its own [`RouteError`] variant.
    pub fn parse(pattern: &str, append_slash: bool) -> Result<RoutePattern, RouteError> {
        let owned = || pattern.to_owned();
        let Some(body) = pattern.strip_prefix('/') else {
            return Err(RouteError::MissingLeadingSlash { pattern: owned() });
        };
        if append_slash && pattern.ends_with('/') {
            return Err(RouteError::AppendSlashWithTrailingSlash { pattern: owned() });
        }
        if pattern.contains("//") {
            return Err(RouteError::DoubleSlash { pattern: owned() });
        }
        if let Some(ch) = pattern
            .chars()
            .find(|c| matches!(c, '?' | '#') || c.is_control())
        {
            return Err(RouteError::InvalidCharacter {
                pattern: owned(),
                ch,
            });
        }
        let (body, ends_with_slash) = match body.strip_suffix('/') {
            Some(b) => (b, true),
            None => (body, false),
        };

        let mut toks = Vec::new();
        let mut names: Vec<Box<str>> = Vec::new();
        if !body.is_empty() {
            for seg in body.split('/') {
                Self::parse_segment(pattern, seg, &mut toks, &mut names)?;
            }
        }

        let last_is_many = toks.last() == Some(&Tok::Star);
        let slash = if ends_with_slash {
            Slash::Required
        } else if append_slash || last_is_many {
            Slash::Optional
        } else {
            Slash::Forbidden
        };
        let last_star = toks.iter().rposition(|t| *t == Tok::Star);
        Ok(RoutePattern {
            source: pattern.into(),
            append_slash,
            fixed: toks.iter().filter(|t| **t != Tok::Star).count(),
            has_star: last_star.is_some(),
            last_many: toks.iter().rposition(|t| *t == Tok::ManyHead),
            tail: last_star.map_or(0, |i| toks.len() - i - 1),
            toks: toks.into(),
            names: names.into(),
            slash,
        })
    }

    fn parse_segment(
        pattern: &str,
        seg: &str,
        toks: &mut Vec<Tok>,
        names: &mut Vec<Box<str>>,
    ) -> Result<(), RouteError> {
        let owned = || pattern.to_owned();
        if let Some(inner) = seg.strip_prefix('<') {
            let Some(name) = inner.strip_suffix('>') else {
                return Err(if inner.contains('>') {
                    RouteError::ParamNotWholeSegment { pattern: owned() }
                } else {
                    RouteError::UnclosedParam { pattern: owned() }
                });
            };
            if name.is_empty() {
                return Err(RouteError::UnnamedParam { pattern: owned() });
            }
            if name.contains(['<', '>']) {
                return Err(RouteError::ParamNotWholeSegment { pattern: owned() });
            }
            if !is_identifier(name) {
                return Err(RouteError::InvalidParamName {
                    pattern: owned(),
                    name: name.to_owned(),
                });
            }
            if names.iter().any(|n| **n == *name) {
                return Err(RouteError::DuplicateParam {
                    pattern: owned(),
                    name: name.to_owned(),
                });
            }
            toks.push(Tok::Param(names.len()));
            names.push(name.into());
            return Ok(());
        }
        if seg.contains('<') {
            return Err(if seg.contains('>') {
                RouteError::ParamNotWholeSegment { pattern: owned() }
            } else {
                RouteError::UnclosedParam { pattern: owned() }
            });
        }
        if seg.contains('>') {
            return Err(RouteError::UnopenedParam { pattern: owned() });
        }
        if seg.bytes().all(|b| b == b'.') {
            match seg.len() {
                3 => toks.push(Tok::One),
                4 => toks.extend([Tok::ManyHead, Tok::Star]),
                0..=2 => return Err(RouteError::DotSegment { pattern: owned() }),
                _ => return Err(RouteError::TooManyDots { pattern: owned() }),
            }
            return Ok(());
        }
        if seg.contains("...") {
            return Err(RouteError::WildcardNotWholeSegment { pattern: owned() });
        }
        toks.push(Tok::Lit(seg.into()));
        Ok(())
    }

    /// The pattern text as given to [`parse`](Self::parse).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern was parsed with `append_slash`.
    pub fn append_slash(&self) -> bool {
        self.append_slash
    }

    /// The parameter names, in pattern order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    /// The literal first segment, if the pattern starts with one (used by the
    /// router's index).
    fn first_literal(&self) -> Option<&str> {
        match self.toks.first() {
            Some(Tok::Lit(l)) => Some(l),
            _ => None,
        }
    }

    /// Cheap checks that need no segment comparison.
    fn shape_ok(&self, n: usize, trailing_slash: bool) -> bool {
        let slash_ok = match self.slash {
            Slash::Forbidden => !trailing_slash,
            Slash::Required => trailing_slash,
            Slash::Optional => true,
        };
        slash_ok && n >= self.fixed && (self.has_star || n == self.fixed)
    }

    /// Matches the elements against `segs`, calling `on_match(element,
    /// segment)` for every one-segment element matched. This is the classic
    /// two-pointer wildcard algorithm: on a mismatch it only backtracks to the
    /// most recent `Star`, letting it absorb one more segment. That is complete
    /// because every other element consumes exactly one segment, and it costs
    /// O(segments × elements) at worst (O(segments) without `....`), never
    /// exponential. When a pattern has several `....` and the split is
    /// ambiguous, earlier ones take as few segments as possible. After a
    /// successful run, the last call made for each element describes the match.
    fn walk<S: AsRef<str>>(&self, segs: &[S], mut on_match: impl FnMut(usize, usize)) -> bool {
        let toks = &*self.toks;
        let (m, n) = (toks.len(), segs.len());
        let (mut ti, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        loop {
            if ti == m && si == n {
                return true;
            }
            if let Some(tok) = toks.get(ti) {
                if *tok == Tok::Star {
                    star = Some((ti, si));
                    ti += 1;
                    continue;
                }
                if let Some(seg) = segs.get(si) {
                    if tok.matches_one(seg.as_ref()) {
                        on_match(ti, si);
                        ti += 1;
                        si += 1;
                        continue;
                    }
                }
            }
            match star {
                Some((st, ss)) if ss < n => {
                    star = Some((st, ss + 1));
                    ti = st + 1;
                    si = ss + 1;
                }
                _ => return false,
            }
        }
    }

    /// Whether the pattern matches, without capturing anything.
    fn is_match<S: AsRef<str>>(&self, segs: &[S], trailing_slash: bool) -> bool {
        self.shape_ok(segs.len(), trailing_slash) && self.walk(segs, |_, _| {})
    }

    /// Captures parameters from a path already known to match.
    fn capture<'r, 's, S: AsRef<str>>(&'r self, segs: &'s [S]) -> Params<'r, 's> {
        if self.names.is_empty() && self.last_many.is_none() {
            return Params::default();
        }
        let mut pairs: Vec<(&'r str, &'s str)> = self.names.iter().map(|n| (&**n, "")).collect();
        let mut many_start = 0;
        self.walk(segs, |ti, si| match self.toks.get(ti) {
            Some(Tok::Param(p)) => {
                if let (Some(slot), Some(seg)) = (pairs.get_mut(*p), segs.get(si)) {
                    slot.1 = seg.as_ref();
                }
            }
            Some(Tok::ManyHead) if Some(ti) == self.last_many => many_start = si,
            _ => {}
        });
        let rest = self
            .last_many
            .map(|_| many_start..segs.len().saturating_sub(self.tail).max(many_start));
        Params { pairs, rest }
    }

    /// Matches this pattern against a decoded, split path (see
    /// [`crate::url::DecodedPath`]): `segments` without the empty segment of a
    /// trailing `/`, and `trailing_slash` telling whether there was one.
    /// Returns the captured parameters, or `None` if it does not match.
    pub fn matches<'r, 's, S: AsRef<str>>(
        &'r self,
        segments: &'s [S],
        trailing_slash: bool,
    ) -> Option<Params<'r, 's>> {
        if self.is_match(segments, trailing_slash) {
            Some(self.capture(segments))
        } else {
            None
        }
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Parameters captured by a matched route.
///
/// Names borrow from the router (`'r`), values from the segments that were
/// matched (`'s`). Building an empty `Params` does not allocate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params<'r, 's> {
    pairs: Vec<(&'r str, &'s str)>,
    rest: Option<Range<usize>>,
}

impl<'r, 's> Params<'r, 's> {
    /// The value of parameter `name` (`<name>` in the pattern).
    pub fn get(&self, name: &str) -> Option<&'s str> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// `(name, value)` pairs in pattern order.
    pub fn iter(&self) -> impl Iterator<Item = (&'r str, &'s str)> + '_ {
        self.pairs.iter().copied()
    }

    /// Number of named parameters.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no named parameters.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// For a pattern containing `....`: the range of indices, into the
    /// segment slice that was matched, covered by its **last** `....` (for
    /// `/static/....` and `/static/css/a.css`, `1..3`). Always non-empty. Join
    /// those segments to get the remainder path; whether the request had a
    /// trailing slash is the caller's `trailing_slash`. `None` if the pattern
    /// has no `....`. `...` wildcards are never reported.
    pub fn rest(&self) -> Option<Range<usize>> {
        self.rest.clone()
    }
}

impl<'a, 'r, 's> IntoIterator for &'a Params<'r, 's> {
    type Item = (&'r str, &'s str);
    type IntoIter = std::iter::Copied<std::slice::Iter<'a, (&'r str, &'s str)>>;
    fn into_iter(self) -> Self::IntoIter {
        self.pairs.iter().copied()
    }
}

/// One entry of a [`Router`]: a pattern, the methods it answers, and a
/// handler of any type `H`.
///
/// Build one with [`RouteEntry::new`] away from the router and register it
/// later with [`Router::add_route`]. (A [`Server`](crate::Server)'s routes
/// are built with [`crate::Route`], which wraps one of these.)
#[derive(Debug, Clone)]
pub struct RouteEntry<H> {
    pattern: RoutePattern,
    /// Methods as registered (unknown bits removed).
    methods: u16,
    /// `methods` plus `HEAD` when it has `GET`.
    answers: u16,
    handler: H,
}

impl<H> RouteEntry<H> {
    /// Parses `pattern` and builds a route. Fails if the pattern is invalid
    /// or `methods` holds no known method.
    pub fn new(
        pattern: &str,
        methods: impl IntoMethodMask,
        append_slash: bool,
        handler: H,
    ) -> Result<RouteEntry<H>, RouteError> {
        Self::from_pattern(
            RoutePattern::parse(pattern, append_slash)?,
            methods,
            handler,
        )
    }

    /// Builds a route from an already parsed pattern.
    pub fn from_pattern(
        pattern: RoutePattern,
        methods: impl IntoMethodMask,
        handler: H,
    ) -> Result<RouteEntry<H>, RouteError> {
        let methods = methods.into_method_mask() & all_methods_mask();
        if methods == 0 {
            return Err(RouteError::NoMethods {
                pattern: pattern.source.into(),
            });
        }
        let answers = if mask_contains(methods, Method::GET) {
            methods | Method::HEAD.bit()
        } else {
            methods
        };
        Ok(RouteEntry {
            pattern,
            methods,
            answers,
            handler,
        })
    }

    /// The route's pattern.
    pub fn pattern(&self) -> &RoutePattern {
        &self.pattern
    }

    /// The methods as registered (without the implied `HEAD`).
    pub fn methods(&self) -> u16 {
        self.methods
    }

    /// The methods the route answers: [`methods`](Self::methods), plus `HEAD`
    /// if it has `GET`.
    pub fn answers(&self) -> u16 {
        self.answers
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Consumes the route, returning its handler.
    pub fn into_handler(self) -> H {
        self.handler
    }
}

/// Identifies a route in a [`Router`]: its registration index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId(usize);

impl RouteId {
    /// The registration index (0 for the first route added).
    pub fn index(self) -> usize {
        self.0
    }
}

/// The router's answer for a request.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum RouteMatch<'r, 's, T> {
    /// A route matched the path and allows the method.
    Found {
        /// Which route.
        id: RouteId,
        /// Its handler (`&H` from [`Router::find`], `&mut H` from
        /// [`Router::find_mut`]).
        handler: T,
        /// Captured parameters.
        params: Params<'r, 's>,
    },
    /// Some routes matched the path, but none allows the method: answer
    /// `405 Method Not Allowed` with `Allow:` [`allow_header_value`]`(allow)`.
    /// `allow` is the union of the methods of those routes, with `HEAD`
    /// included wherever `GET` is. An unhandled `OPTIONS` request ends up
    /// here too, so a server can answer it from `allow`.
    MethodNotAllowed {
        /// Bitmask of allowed methods.
        allow: u16,
    },
    /// No route matched the path: `404 Not Found` (or try static files).
    NotFound,
}

enum Located {
    Found(usize),
    NotAllowed(u16),
    NotFound,
}

/// Ascending merge of two ascending index lists.
struct Merged<'a> {
    a: &'a [usize],
    b: &'a [usize],
}

impl Iterator for Merged<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        match (self.a.split_first(), self.b.split_first()) {
            (Some((&x, ra)), Some((&y, _))) if x < y => {
                self.a = ra;
                Some(x)
            }
            (_, Some((&y, rb))) => {
                self.b = rb;
                Some(y)
            }
            (Some((&x, ra)), None) => {
                self.a = ra;
                Some(x)
            }
            (None, None) => None,
        }
    }
}

/// An ordered set of routes; the first registered match wins.
///
/// # Cost
///
/// Routes are indexed by their first segment when it is a literal (a
/// `HashMap` from that literal to route indices); routes starting with a
/// parameter or wildcard, and the root route, are kept in a second list. A
/// lookup hashes the request's first segment once, then walks the two
/// candidate lists merged in registration order. For each candidate, a
/// segment-count and trailing-slash check rejects most routes in O(1); the
/// rest are compared segment by segment (O(segments), or O(segments ×
/// pattern length) for patterns with several `....`). With ~100 routes spread
/// over a handful of first segments, a lookup touches a few routes and takes
/// well under a microsecond. A lookup never allocates, except the one `Vec`
/// holding the parameters of the route found, when that route has any.
/// Every candidate whose pattern matches is visited when the method is not
/// allowed (to build the `Allow` set).
#[derive(Debug, Clone)]
pub struct Router<H> {
    routes: Vec<RouteEntry<H>>,
    by_first: HashMap<Box<str>, Vec<usize>>,
    other: Vec<usize>,
    /// Lookups made so far, so tests can check a request is routed once.
    #[cfg(test)]
    pub(crate) lookups: std::cell::Cell<usize>,
}

impl<H> Default for Router<H> {
    fn default() -> Self {
        Router {
            routes: Vec::new(),
            by_first: HashMap::new(),
            other: Vec::new(),
            #[cfg(test)]
            lookups: std::cell::Cell::new(0),
        }
    }
}

impl<H> Router<H> {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `pattern` and adds a route for `methods` (a [`Method`], a slice
    /// or array of them, or a `u16` mask). Routes that allow `GET` also answer
    /// `HEAD`; to give `HEAD` its own handler, add that route first.
    pub fn add(
        &mut self,
        pattern: &str,
        methods: impl IntoMethodMask,
        append_slash: bool,
        handler: H,
    ) -> Result<RouteId, RouteError> {
        Ok(self.add_route(RouteEntry::new(pattern, methods, append_slash, handler)?))
    }

    /// Adds an already built route.
    pub fn add_route(&mut self, route: RouteEntry<H>) -> RouteId {
        let idx = self.routes.len();
        match route.pattern.first_literal() {
            Some(first) => match self.by_first.get_mut(first) {
                Some(list) => list.push(idx),
                None => {
                    self.by_first.insert(first.into(), vec![idx]);
                }
            },
            None => self.other.push(idx),
        }
        self.routes.push(route);
        RouteId(idx)
    }

    /// Adds several routes, in order (`adafruit_httpserver`'s `add_routes`).
    pub fn add_routes(&mut self, routes: impl IntoIterator<Item = RouteEntry<H>>) -> Vec<RouteId> {
        routes.into_iter().map(|r| self.add_route(r)).collect()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route with this id.
    pub fn route(&self, id: RouteId) -> Option<&RouteEntry<H>> {
        self.routes.get(id.0)
    }

    /// The route with this id, mutably.
    pub fn route_mut(&mut self, id: RouteId) -> Option<&mut RouteEntry<H>> {
        self.routes.get_mut(id.0)
    }

    /// All routes, in registration order.
    pub fn routes(&self) -> impl Iterator<Item = (RouteId, &RouteEntry<H>)> {
        self.routes.iter().enumerate().map(|(i, r)| (RouteId(i), r))
    }

    fn candidates(&self, first: Option<&str>) -> Merged<'_> {
        let a = first
            .and_then(|f| self.by_first.get(f))
            .map_or(&[][..], |v| &v[..]);
        Merged { a, b: &self.other }
    }

    fn locate<S: AsRef<str>>(&self, method: Method, segs: &[S], trailing_slash: bool) -> Located {
        #[cfg(test)]
        self.lookups.set(self.lookups.get() + 1);
        let bit = method.bit();
        let mut allow = 0;
        for i in self.candidates(segs.first().map(AsRef::as_ref)) {
            let Some(route) = self.routes.get(i) else {
                continue;
            };
            if route.pattern.is_match(segs, trailing_slash) {
                if route.answers & bit != 0 {
                    return Located::Found(i);
                }
                allow |= route.answers;
            }
        }
        if allow != 0 {
            Located::NotAllowed(allow)
        } else {
            Located::NotFound
        }
    }

    /// Finds the handler for a request, given its method and its decoded path
    /// split as by [`crate::url::decode_path`] (`segments`, `trailing_slash`).
    pub fn find<'r, 's, S: AsRef<str>>(
        &'r self,
        method: Method,
        segments: &'s [S],
        trailing_slash: bool,
    ) -> RouteMatch<'r, 's, &'r H> {
        match self.locate(method, segments, trailing_slash) {
            Located::Found(i) => match self.routes.get(i) {
                Some(route) => RouteMatch::Found {
                    id: RouteId(i),
                    handler: &route.handler,
                    params: route.pattern.capture(segments),
                },
                None => RouteMatch::NotFound,
            },
            Located::NotAllowed(allow) => RouteMatch::MethodNotAllowed { allow },
            Located::NotFound => RouteMatch::NotFound,
        }
    }

    /// Like [`find`](Self::find), but hands out the handler mutably (for
    /// `FnMut` handlers).
    pub fn find_mut<'r, 's, S: AsRef<str>>(
        &'r mut self,
        method: Method,
        segments: &'s [S],
        trailing_slash: bool,
    ) -> RouteMatch<'r, 's, &'r mut H> {
        match self.locate(method, segments, trailing_slash) {
            Located::Found(i) => match self.routes.get_mut(i) {
                Some(RouteEntry {
                    pattern, handler, ..
                }) => {
                    let pattern: &'r RoutePattern = pattern;
                    RouteMatch::Found {
                        id: RouteId(i),
                        handler,
                        params: pattern.capture(segments),
                    }
                }
                None => RouteMatch::NotFound,
            },
            Located::NotAllowed(allow) => RouteMatch::MethodNotAllowed { allow },
            Located::NotFound => RouteMatch::NotFound,
        }
    }

    /// The union of the methods answered by every route whose pattern matches
    /// the path (`HEAD` included wherever `GET` is); 0 if none does. Useful to
    /// answer `OPTIONS`.
    pub fn allowed_methods<S: AsRef<str>>(&self, segments: &[S], trailing_slash: bool) -> u16 {
        self.candidates(segments.first().map(AsRef::as_ref))
            .filter_map(|i| self.routes.get(i))
            .filter(|r| r.pattern.is_match(segments, trailing_slash))
            .fold(0, |m, r| m | r.answers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::decode_path;

    fn p(s: &str) -> RoutePattern {
        RoutePattern::parse(s, false).unwrap()
    }

    fn pa(s: &str) -> RoutePattern {
        RoutePattern::parse(s, true).unwrap()
    }

    /// Splits a path the way `decode_path` does, for tests.
    fn split(path: &str) -> (Vec<String>, bool) {
        let d = decode_path(path).unwrap();
        let t = d.trailing_slash();
        (d.into_segments(), t)
    }

    fn m(pat: &RoutePattern, path: &str) -> Option<Vec<(String, String)>> {
        let (segs, t) = split(path);
        pat.matches(&segs, t).map(|ps| {
            ps.iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect()
        })
    }

    fn yes(pat: &RoutePattern, path: &str) -> bool {
        m(pat, path).is_some()
    }

    fn rest(pat: &RoutePattern, path: &str) -> Option<Vec<String>> {
        let (segs, t) = split(path);
        let ps = pat.matches(&segs, t)?;
        ps.rest().map(|r| segs[r].to_vec())
    }

    #[test]
    fn literal_segments() {
        let r = p("/a/b.txt");
        assert!(yes(&r, "/a/b.txt"));
        assert!(!yes(&r, "/a/b.txt/"));
        assert!(!yes(&r, "/a/bxtxt"));
        assert!(!yes(&r, "/A/b.txt"));
        assert!(!yes(&r, "/a"));
        assert!(!yes(&r, "/a/b.txt/c"));
        assert!(yes(&r, "/a/b%2etxt"));
        assert_eq!(r.as_str(), "/a/b.txt");
        assert_eq!(r.to_string(), "/a/b.txt");

        let sp = p("/hello world");
        assert!(yes(&sp, "/hello%20world"));
        assert!(!yes(&sp, "/hello+world"));
    }

    #[test]
    fn root_pattern() {
        let r = p("/");
        assert!(yes(&r, "/"));
        assert!(!yes(&r, "/a"));
        assert!(!yes(&r, "//"));
        assert_eq!(
            RoutePattern::parse("/", true),
            Err(RouteError::AppendSlashWithTrailingSlash {
                pattern: "/".into()
            })
        );
    }

    #[test]
    fn parameters() {
        let r = p("/users/<id>/posts/<post_id>");
        assert_eq!(r.param_names().collect::<Vec<_>>(), ["id", "post_id"]);
        assert_eq!(
            m(&r, "/users/42/posts/7").unwrap(),
            [
                ("id".to_owned(), "42".to_owned()),
                ("post_id".to_owned(), "7".to_owned())
            ]
        );
        assert!(!yes(&r, "/users//posts/7"));
        assert!(!yes(&r, "/users/42/posts"));
        assert!(!yes(&r, "/users/42/posts/7/"));
        assert!(!yes(&r, "/users/4/2/posts/7"));

        // Decoded values; %2F stays inside one segment.
        let r = p("/files/<name>");
        assert_eq!(m(&r, "/files/a%2Fb").unwrap()[0].1, "a/b");
        assert_eq!(m(&r, "/files/caf%C3%A9").unwrap()[0].1, "café");
        assert_eq!(m(&r, "/files/a+b").unwrap()[0].1, "a+b");
        assert!(!yes(&r, "/files/a/b"));

        let (segs, t) = split("/users/42/posts/7");
        let r = p("/users/<id>/posts/<post_id>");
        let ps = r.matches(&segs, t).unwrap();
        assert_eq!(ps.get("id"), Some("42"));
        assert_eq!(ps.get("post_id"), Some("7"));
        assert_eq!(ps.get("nope"), None);
        assert_eq!(ps.len(), 2);
        assert!(ps.rest().is_none());
        assert_eq!((&ps).into_iter().count(), 2);
    }

    #[test]
    fn single_wildcard() {
        let r = p("/a/.../c");
        assert!(yes(&r, "/a/b/c"));
        assert!(yes(&r, "/a/anything.here/c"));
        assert!(!yes(&r, "/a/c"));
        assert!(!yes(&r, "/a//c"));
        assert!(!yes(&r, "/a/b/b/c"));
        assert_eq!(m(&r, "/a/b/c").unwrap(), []);
        let r = p("/...");
        assert!(yes(&r, "/x"));
        assert!(!yes(&r, "/"));
        assert!(!yes(&r, "/x/"));
        assert!(!yes(&r, "/x/y"));
    }

    #[test]
    fn multi_wildcard() {
        let r = p("/a/..../z");
        assert!(yes(&r, "/a/b/z"));
        assert!(yes(&r, "/a/b/c/d/z"));
        assert!(!yes(&r, "/a/z"));
        assert!(!yes(&r, "/a/b/z/"));
        assert!(yes(&r, "/a/z/z"));
        assert_eq!(rest(&r, "/a/b/c/z").unwrap(), ["b", "c"]);
        assert_eq!(rest(&r, "/a/z/z/z").unwrap(), ["z", "z"]);

        // A final `....` swallows a trailing slash, like `adafruit_httpserver`'s `.+`.
        let r = p("/static/....");
        assert!(yes(&r, "/static/a"));
        assert!(yes(&r, "/static/css/site.css"));
        assert!(yes(&r, "/static/css/"));
        assert!(!yes(&r, "/static"));
        assert!(!yes(&r, "/static/"));
        assert!(!yes(&r, "/other/a"));
        assert_eq!(
            rest(&r, "/static/css/site.css").unwrap(),
            ["css", "site.css"]
        );
        assert_eq!(rest(&r, "/static/css/").unwrap(), ["css"]);
        // ...but a pattern ending in `..../` requires it.
        let r = p("/static/..../");
        assert!(yes(&r, "/static/a/"));
        assert!(!yes(&r, "/static/a"));

        // `....` may contain empty segments (`adafruit_httpserver`'s `.+` matches "/").
        let r = p("/x/....");
        assert!(yes(&r, "/x//"));
        assert!(yes(&r, "/x//a"));

        // Parameters around a `....`.
        let r = p("/<a>/..../<b>");
        let (segs, t) = split("/1/2/3/4");
        let ps = r.matches(&segs, t).unwrap();
        assert_eq!(ps.get("a"), Some("1"));
        assert_eq!(ps.get("b"), Some("4"));
        assert_eq!(ps.rest(), Some(1..3));
    }

    #[test]
    fn several_multi_wildcards() {
        let r = p("/..../x/..../y");
        assert!(yes(&r, "/a/x/b/y"));
        assert!(yes(&r, "/a/x/x/x/b/y"));
        assert!(yes(&r, "/a/b/x/c/d/y"));
        assert!(!yes(&r, "/x/b/y"));
        assert!(!yes(&r, "/a/x/y"));
        assert!(!yes(&r, "/a/b/c/y"));
        // The last `....` is reported; earlier ones take as few as possible.
        assert_eq!(rest(&r, "/a/x/x/x/b/y").unwrap(), ["x", "x", "b"]);

        let r = p("/..../<k>/..../<v>");
        let (segs, t) = split("/a/b/c/d/e");
        let ps = r.matches(&segs, t).unwrap();
        assert_eq!(ps.get("k"), Some("b"));
        assert_eq!(ps.get("v"), Some("e"));
        assert_eq!(ps.rest(), Some(2..4));

        // Worst case stays polynomial (this would be exponential with naive
        // backtracking).
        let r = p("/..../..../..../..../..../..../..../..../a");
        let segs = vec!["b"; 2000];
        assert!(r.matches(&segs, false).is_none());
    }

    #[test]
    fn trailing_slash_rules() {
        let r = p("/a");
        assert!(yes(&r, "/a"));
        assert!(!yes(&r, "/a/"));
        let r = pa("/a");
        assert!(r.append_slash());
        assert!(yes(&r, "/a"));
        assert!(yes(&r, "/a/"));
        assert!(!yes(&r, "/a//"));
        let r = p("/a/");
        assert!(!yes(&r, "/a"));
        assert!(yes(&r, "/a/"));
        let r = pa("/a/<x>");
        assert_eq!(m(&r, "/a/1/").unwrap()[0].1, "1");
        assert_eq!(m(&r, "/a/1").unwrap()[0].1, "1");
        let r = pa("/a/...");
        assert!(yes(&r, "/a/b/"));
    }

    fn err(pattern: &str) -> RouteError {
        RoutePattern::parse(pattern, false).unwrap_err()
    }

    #[test]
    fn validation_errors() {
        let s = |x: &str| x.to_owned();
        assert_eq!(
            err("a/b"),
            RouteError::MissingLeadingSlash { pattern: s("a/b") }
        );
        assert_eq!(err(""), RouteError::MissingLeadingSlash { pattern: s("") });
        assert_eq!(
            RoutePattern::parse("/a/", true).unwrap_err(),
            RouteError::AppendSlashWithTrailingSlash { pattern: s("/a/") }
        );
        assert_eq!(
            err("/a//b"),
            RouteError::DoubleSlash {
                pattern: s("/a//b")
            }
        );
        assert_eq!(err("//"), RouteError::DoubleSlash { pattern: s("//") });
        assert_eq!(
            err("/a?b"),
            RouteError::InvalidCharacter {
                pattern: s("/a?b"),
                ch: '?'
            }
        );
        assert_eq!(
            err("/a#"),
            RouteError::InvalidCharacter {
                pattern: s("/a#"),
                ch: '#'
            }
        );
        assert!(matches!(
            err("/a\0"),
            RouteError::InvalidCharacter { ch: '\0', .. }
        ));
        assert_eq!(err("/<>"), RouteError::UnnamedParam { pattern: s("/<>") });
        assert_eq!(
            err("/<a-b>"),
            RouteError::InvalidParamName {
                pattern: s("/<a-b>"),
                name: s("a-b")
            }
        );
        assert!(matches!(err("/<1a>"), RouteError::InvalidParamName { .. }));
        assert!(matches!(err("/<a b>"), RouteError::InvalidParamName { .. }));
        assert!(matches!(err("/<é>"), RouteError::InvalidParamName { .. }));
        assert_eq!(
            err("/<id>/x/<id>"),
            RouteError::DuplicateParam {
                pattern: s("/<id>/x/<id>"),
                name: s("id")
            }
        );
        assert_eq!(
            err("/<id"),
            RouteError::UnclosedParam { pattern: s("/<id") }
        );
        assert_eq!(
            err("/a<id"),
            RouteError::UnclosedParam {
                pattern: s("/a<id")
            }
        );
        assert_eq!(err("/<"), RouteError::UnclosedParam { pattern: s("/<") });
        assert_eq!(
            err("/id>"),
            RouteError::UnopenedParam { pattern: s("/id>") }
        );
        for bad in ["/a<b>", "/<a>b", "/<a><b>", "/x/<a>.json", "/<<a>>"] {
            assert_eq!(
                err(bad),
                RouteError::ParamNotWholeSegment { pattern: s(bad) },
                "{bad}"
            );
        }
        for bad in ["/a...", "/...a", "/a..../b", "/x/....y", "/a...b"] {
            assert_eq!(
                err(bad),
                RouteError::WildcardNotWholeSegment { pattern: s(bad) },
                "{bad}"
            );
        }
        assert_eq!(
            err("/....."),
            RouteError::TooManyDots {
                pattern: s("/.....")
            }
        );
        assert_eq!(
            err("/a/......./b"),
            RouteError::TooManyDots {
                pattern: s("/a/......./b")
            }
        );
        assert_eq!(
            err("/a/.."),
            RouteError::DotSegment {
                pattern: s("/a/..")
            }
        );
        assert_eq!(err("/./a"), RouteError::DotSegment { pattern: s("/./a") });
        assert_eq!(
            RouteEntry::new("/x", 0u16, false, ()).unwrap_err(),
            RouteError::NoMethods { pattern: s("/x") }
        );
        assert_eq!(
            RouteEntry::new("/x", 0x8000u16, false, ()).unwrap_err(),
            RouteError::NoMethods { pattern: s("/x") }
        );
        // Messages name the pattern.
        assert!(err("/<a-b>").to_string().contains("\"/<a-b>\""));
        assert!(err("nope").to_string().contains("\"nope\""));
    }

    #[test]
    fn accepted_patterns() {
        for ok in [
            "/",
            "/a",
            "/a/",
            "/a.b",
            "/a..b",
            "/.hidden",
            "/x/.../y",
            "/x/..../y",
            "/....",
            "/...",
            "/<_>",
            "/<a1>/<B_2>",
            "/a-b/c~d/%41",
            "/é/ü",
            "/..a",
            "/a..",
        ] {
            assert!(RoutePattern::parse(ok, false).is_ok(), "{ok}");
        }
    }

    fn router_with(patterns: &[(&str, &[Method], bool)]) -> Router<usize> {
        let mut r = Router::new();
        for (i, (pat, ms, slash)) in patterns.iter().enumerate() {
            let id = r.add(pat, *ms, *slash, i).unwrap();
            assert_eq!(id.index(), i);
        }
        r
    }

    fn find_id(r: &Router<usize>, method: Method, path: &str) -> Result<usize, u16> {
        let (segs, t) = split(path);
        match r.find(method, &segs, t) {
            RouteMatch::Found { handler, id, .. } => {
                assert_eq!(*handler, id.index());
                Ok(*handler)
            }
            RouteMatch::MethodNotAllowed { allow } => Err(allow),
            RouteMatch::NotFound => Err(0),
        }
    }

    use Method::*;

    #[test]
    fn first_match_wins() {
        let r = router_with(&[
            ("/a/<x>", &[GET], false),
            ("/a/b", &[GET], false),
            ("/a/b", &[POST], false),
            ("/<y>/b", &[GET, POST], false),
            ("/....", &[GET], false),
        ]);
        assert_eq!(find_id(&r, GET, "/a/b"), Ok(0));
        assert_eq!(find_id(&r, POST, "/a/b"), Ok(2));
        assert_eq!(find_id(&r, POST, "/c/b"), Ok(3));
        assert_eq!(find_id(&r, GET, "/c/b"), Ok(3));
        assert_eq!(find_id(&r, GET, "/c/d/e"), Ok(4));
        assert_eq!(find_id(&r, GET, "/a"), Ok(4));
        assert_eq!(find_id(&r, GET, "/"), Err(0));
    }

    #[test]
    fn head_is_implied_by_get() {
        let r = router_with(&[("/x", &[GET], false), ("/y", &[HEAD], false)]);
        assert_eq!(find_id(&r, HEAD, "/x"), Ok(0));
        assert_eq!(find_id(&r, HEAD, "/y"), Ok(1));
        assert_eq!(find_id(&r, GET, "/y"), Err(HEAD.bit()));
        let route = r.route(RouteId(0)).unwrap();
        assert_eq!(route.methods(), GET.bit());
        assert_eq!(route.answers(), GET.bit() | HEAD.bit());

        // A HEAD route added first takes precedence over the implied one.
        let r = router_with(&[("/x", &[HEAD], false), ("/x", &[GET], false)]);
        assert_eq!(find_id(&r, HEAD, "/x"), Ok(0));
        assert_eq!(find_id(&r, GET, "/x"), Ok(1));
    }

    #[test]
    fn method_not_allowed_sets() {
        let r = router_with(&[
            ("/items", &[GET], false),
            ("/items", &[POST], false),
            ("/items/<id>", &[PUT, DELETE], false),
            ("/<any>/<id>", &[PATCH], false),
            ("/other", &[GET], false),
        ]);
        assert_eq!(
            find_id(&r, DELETE, "/items"),
            Err(GET.bit() | HEAD.bit() | POST.bit())
        );
        assert_eq!(
            allow_header_value(find_id(&r, DELETE, "/items").unwrap_err()),
            "GET, HEAD, POST"
        );
        assert_eq!(
            find_id(&r, GET, "/items/3"),
            Err(PUT.bit() | DELETE.bit() | PATCH.bit())
        );
        assert_eq!(find_id(&r, PATCH, "/items/3"), Ok(3));
        assert_eq!(find_id(&r, OPTIONS, "/other"), Err(GET.bit() | HEAD.bit()));
        assert_eq!(find_id(&r, GET, "/nothing"), Err(0));
        let (segs, t) = split("/items/3");
        assert_eq!(
            r.allowed_methods(&segs, t),
            PUT.bit() | DELETE.bit() | PATCH.bit()
        );
        let (segs, t) = split("/nope/nope/nope");
        assert_eq!(r.allowed_methods(&segs, t), 0);
    }

    #[test]
    fn method_helpers() {
        assert_eq!(method_mask(&[GET, POST]), GET.bit() | POST.bit());
        assert_eq!(GET.into_method_mask(), GET.bit());
        assert_eq!([GET, PUT].into_method_mask(), GET.bit() | PUT.bit());
        assert_eq!((&[GET, PUT]).into_method_mask(), GET.bit() | PUT.bit());
        assert_eq!(allow_header_value(0), "");
        assert_eq!(
            allow_header_value(all_methods_mask()).split(", ").count(),
            9
        );
        assert!(mask_contains(method_mask(&[TRACE]), TRACE));
        assert_eq!(
            mask_methods(method_mask(&[POST, GET])).collect::<Vec<_>>(),
            [GET, POST]
        );
    }

    #[test]
    fn find_mut_with_fnmut_handlers() {
        type Handler = Box<dyn FnMut(&str) -> String>;
        let mut r: Router<Handler> = Router::new();
        let mut count = 0;
        r.add(
            "/count/<who>",
            GET,
            false,
            Box::new(move |who: &str| {
                count += 1;
                format!("{who}:{count}")
            }),
        )
        .unwrap();
        for expected in ["bob:1", "bob:2"] {
            let segs = ["count", "bob"];
            match r.find_mut(GET, &segs, false) {
                RouteMatch::Found {
                    handler, params, ..
                } => assert_eq!(handler(params.get("who").unwrap()), expected),
                _ => panic!("not found"),
            }
        }
        assert!(matches!(
            r.find_mut(POST, &["count", "x"], false),
            RouteMatch::MethodNotAllowed { .. }
        ));
        let id = RouteId(0);
        assert_eq!((r.route_mut(id).unwrap().handler_mut())("z"), "z:3");
    }

    #[test]
    fn params_do_not_allocate_without_parameters() {
        let r = p("/a/.../b");
        let ps = r.matches(&["a", "x", "b"], false).unwrap();
        assert_eq!(ps.pairs.capacity(), 0);
        assert!(ps.is_empty());
        let r = p("/static/....");
        let ps = r.matches(&["static", "x"], false).unwrap();
        assert_eq!(ps.pairs.capacity(), 0);
        assert_eq!(ps.rest(), Some(1..2));
    }

    #[test]
    fn add_routes_and_as_route_style() {
        let built = vec![
            RouteEntry::new("/a", GET, true, "a").unwrap(),
            RouteEntry::new("/b/<x>", [GET, POST], false, "b").unwrap(),
        ];
        let mut r = Router::new();
        let ids = r.add_routes(built);
        assert_eq!(ids, [RouteId(0), RouteId(1)]);
        assert_eq!(r.len(), 2);
        assert!(!r.is_empty());
        assert!(matches!(
            r.find(GET, &["a"], true),
            RouteMatch::Found { handler: &"a", .. }
        ));
        assert_eq!(r.routes().count(), 2);
        assert_eq!(r.route(ids[1]).unwrap().pattern().as_str(), "/b/<x>");
        assert!(r.route(RouteId(9)).is_none());
        assert!(r.add("bad", GET, false, "c").is_err());
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn empty_router() {
        let r: Router<()> = Router::new();
        assert!(r.is_empty());
        assert!(matches!(
            r.find::<&str>(GET, &[], false),
            RouteMatch::NotFound
        ));
    }

    /// A tiny deterministic PRNG (xorshift64) for the generated tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// 100 generated routes; `Router::find` must agree with a naive scan of
    /// every route in order.
    #[test]
    fn hundred_routes_agree_with_linear_scan() {
        let words = ["api", "v1", "users", "items", "static", "a", "b", "x.json"];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut router = Router::new();
        let mut all = Vec::new();
        while router.len() < 100 {
            let nseg = rng.below(5);
            let mut pat = String::new();
            let mut pn = 0;
            for _ in 0..nseg {
                pat.push('/');
                match rng.below(10) {
                    0 => {
                        pat.push_str(&format!("<p{pn}>"));
                        pn += 1;
                    }
                    1 => pat.push_str("..."),
                    2 => pat.push_str("...."),
                    _ => pat.push_str(words[rng.below(words.len())]),
                }
            }
            if pat.is_empty() || rng.below(6) == 0 {
                pat.push('/');
            }
            let append = !pat.ends_with('/') && rng.below(3) == 0;
            let methods = (rng.next() as u16) & all_methods_mask();
            let Ok(route) = RouteEntry::new(&pat, methods, append, all.len()) else {
                continue;
            };
            all.push(route.clone());
            router.add_route(route);
        }
        assert_eq!(router.len(), 100);

        let mut checked_found = 0;
        let mut checked_405 = 0;
        for _ in 0..20_000 {
            let nseg = rng.below(6);
            let segs: Vec<&str> = (0..nseg)
                .map(|_| {
                    if rng.below(12) == 0 {
                        ""
                    } else {
                        words[rng.below(words.len())]
                    }
                })
                .collect();
            let trailing = nseg > 0 && rng.below(3) == 0;
            let method = Method::ALL[rng.below(Method::ALL.len())];

            // Naive reference.
            let mut expected = None;
            let mut allow = 0;
            for (i, route) in all.iter().enumerate() {
                if let Some(ps) = route.pattern().matches(&segs, trailing) {
                    if mask_contains(route.answers(), method) {
                        expected = Some((i, ps));
                        break;
                    }
                    allow |= route.answers();
                }
            }
            match (router.find(method, &segs, trailing), expected) {
                (
                    RouteMatch::Found {
                        id,
                        handler,
                        params,
                    },
                    Some((i, ps)),
                ) => {
                    assert_eq!(id.index(), i);
                    assert_eq!(*handler, i);
                    assert_eq!(params, ps);
                    checked_found += 1;
                }
                (RouteMatch::MethodNotAllowed { allow: a }, None) => {
                    assert_eq!(a, allow);
                    assert_ne!(a, 0);
                    checked_405 += 1;
                }
                (RouteMatch::NotFound, None) => assert_eq!(allow, 0),
                (got, want) => panic!("{segs:?} {trailing} {method}: {got:?} vs {want:?}"),
            }
        }
        assert!(checked_found > 1000, "{checked_found}");
        assert!(checked_405 > 100, "{checked_405}");
    }

    /// The segment matcher agrees with a brute-force recursive matcher on
    /// generated wildcard patterns.
    #[test]
    fn matcher_agrees_with_brute_force() {
        fn brute(toks: &[Tok], segs: &[&str]) -> bool {
            match toks.split_first() {
                None => segs.is_empty(),
                Some((Tok::Star, rest)) => (0..=segs.len()).any(|k| brute(rest, &segs[k..])),
                Some((t, rest)) => match segs.split_first() {
                    Some((s, srest)) => t.matches_one(s) && brute(rest, srest),
                    None => false,
                },
            }
        }
        let elems = ["a", "b", "<p>", "...", "...."];
        let mut rng = Rng(12345);
        for _ in 0..5000 {
            let n = 1 + rng.below(5);
            let mut pat = String::new();
            let mut pn = 0;
            for _ in 0..n {
                pat.push('/');
                let e = elems[rng.below(elems.len())];
                if e == "<p>" {
                    pat.push_str(&format!("<p{pn}>"));
                    pn += 1;
                } else {
                    pat.push_str(e);
                }
            }
            let r = p(&pat);
            let segs: Vec<&str> = (0..rng.below(7))
                .map(|_| ["a", "b", ""][rng.below(3)])
                .collect();
            let expected = brute(&r.toks, &segs);
            assert_eq!(r.walk(&segs, |_, _| {}), expected, "{pat} {segs:?}");
            if let Some(ps) = r.matches(&segs, false) {
                // Captured values are consistent with a real match: substitute
                // them back as literals and check again.
                let mut lit = String::new();
                for tok in r.toks.iter() {
                    match tok {
                        Tok::Param(i) => {
                            lit.push('/');
                            lit.push_str(ps.pairs[*i].1);
                        }
                        Tok::Lit(l) => {
                            lit.push('/');
                            lit.push_str(l);
                        }
                        Tok::One => lit.push_str("/..."),
                        Tok::ManyHead => lit.push_str("/...."),
                        Tok::Star => {}
                    }
                }
                let lp = p(&lit);
                assert!(lp.walk(&segs, |_, _| {}), "{pat} -> {lit} {segs:?}");
                let range = ps.rest();
                assert_eq!(range.is_some(), r.last_many.is_some());
                if let Some(range) = range {
                    assert!(range.start < range.end && range.end <= segs.len());
                }
            }
        }
    }

    /// Garbage patterns and paths never panic.
    #[test]
    fn no_panics_on_garbage() {
        let pieces = [
            "/", "<", ">", ".", "a", "<x>", "...", "....", "é", "\0", "?", "//", "_", "1",
        ];
        let mut rng = Rng(0xDEAD_BEEF);
        let mut router = Router::new();
        for i in 0..20_000 {
            let s: String = (0..rng.below(8))
                .map(|_| pieces[rng.below(pieces.len())])
                .collect();
            let append = rng.below(2) == 0;
            if let Ok(pat) = RoutePattern::parse(&s, append) {
                let segs: Vec<&str> = (0..rng.below(5))
                    .map(|_| pieces[rng.below(pieces.len())])
                    .collect();
                let _ = pat.matches(&segs, append);
                if router.len() < 200 {
                    let _ = router.add_route(RouteEntry::from_pattern(pat, GET, i).unwrap());
                }
                let _ = router.find(Method::ALL[i % 9], &segs, rng.below(2) == 0);
            }
        }
    }
}
