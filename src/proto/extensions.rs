//! WebSocket extension negotiation (RFC 6455 §9.1) for permessage-deflate
//! (RFC 7692 §7.1): parsing `Sec-WebSocket-Extensions`, choosing the first
//! offer the server can honour, and the response header value.
//!
//! Sans-IO and allocation-light: offers are parsed from the header values as
//! they are; only the response string is built.

use std::fmt::Write as _;

use super::deflate::DeflateParams;

/// The server's preferences for permessage-deflate on one endpoint; see
/// [`WsOptions::deflate`](crate::ws::WsOptions::deflate).
///
/// Window bits are 8–15 (a window of 2^bits bytes). The defaults favour
/// memory on a server with many sockets: neither side keeps its compression
/// context between messages, so an idle socket holds no compression state
/// at all (one compressor and one inflater are shared by every socket with
/// the same settings). Turn either `*_no_context_takeover` off for a better
/// ratio on streams of similar messages, at the price of a window of
/// 2^bits bytes (and, for the server's side, a compressor of a few hundred
/// KiB) kept per socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateOptions {
    /// Reset the server's compressor after every message (always answered
    /// with `server_no_context_takeover`). Costs some compression ratio on
    /// streams of similar messages; saves a compressor per connection
    /// (hundreds of KiB) and lets a broadcast be compressed once for all
    /// such connections. It also lets a message that deflate does not
    /// shrink (random or already compressed data) go uncompressed, RSV1
    /// clear, so it never costs more on the wire than plain; with context
    /// kept every message goes compressed (the client's inflater must see
    /// all the compressor saw). Default `true`.
    pub server_no_context_takeover: bool,
    /// Ask the client to reset its compressor after every message
    /// (`client_no_context_takeover`, which a server may add to any offer),
    /// so the server keeps no inflate window per connection between
    /// messages. Default `true`.
    pub client_no_context_takeover: bool,
    /// Largest window the server compresses with (8–15). When the client
    /// asks for a smaller one (`server_max_window_bits`), that is used.
    /// Default 15.
    pub server_max_window_bits: u8,
    /// Largest window the client may compress with (8–15), applied when the
    /// client's offer allows it (`client_max_window_bits` in the offer);
    /// `None` accepts the client's choice. 8 is answered as 9 unless the
    /// client asked for 8 itself (zlib-based clients cannot compress with a
    /// 256-byte window and would refuse the connection). Smaller windows shrink the
    /// inflate state the server keeps for a client that keeps context.
    /// Default `None`.
    pub client_max_window_bits: Option<u8>,
    /// Compression level, 1 (fastest) to 9 (smallest); 0 sends deflate
    /// "stored" blocks (RSV1 set, no smaller; with
    /// `server_no_context_takeover` those messages go plain instead, since
    /// stored blocks never shrink them: to turn compression off, set
    /// [`WsOptions::deflate`](crate::ws::WsOptions::deflate) to `None`).
    /// Default 6.
    pub level: u32,
    /// Messages shorter than this many bytes are sent uncompressed (RSV1
    /// clear): tiny messages rarely shrink. Default 64.
    pub min_size: usize,
}

impl Default for DeflateOptions {
    fn default() -> Self {
        DeflateOptions {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: None,
            level: 6,
            min_size: 64,
        }
    }
}

impl DeflateOptions {
    /// Every parameter in range (window bits 8–15, level ≤ 9); otherwise
    /// the offending setting.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !(8..=15).contains(&self.server_max_window_bits) {
            return Err("server_max_window_bits must be 8-15");
        }
        if self
            .client_max_window_bits
            .is_some_and(|b| !(8..=15).contains(&b))
        {
            return Err("client_max_window_bits must be 8-15");
        }
        if self.level > 9 {
            return Err("compression level must be 0-9");
        }
        Ok(())
    }
}

/// A `Sec-WebSocket-Extensions` header that does not follow the grammar of
/// RFC 6455 §9.1 (the handshake is refused with `400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed Sec-WebSocket-Extensions header: {0}")]
pub struct MalformedExtensions(pub &'static str);

/// The outcome of negotiating permessage-deflate for one handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// What both sides now use.
    pub params: DeflateParams,
    /// The value of the response's `Sec-WebSocket-Extensions` header.
    pub response: String,
}

/// Chooses permessage-deflate parameters for a handshake whose
/// `Sec-WebSocket-Extensions` header values are `values` (all of them, in
/// order), under the server's preferences `prefs`.
///
/// Offers are considered in the client's order; the first permessage-deflate
/// offer the server can honour is accepted. An offer with an unknown,
/// duplicated or out-of-range parameter, or a value where none is allowed,
/// is declined and the next one considered (RFC 7692 §5, §7.1). Other
/// extensions are declined silently. `Ok(None)`: nothing accepted (the
/// connection goes on uncompressed). `Err`: the header breaks the grammar
/// of RFC 6455 §9.1 (answer `400`).
pub fn negotiate<'a>(
    values: impl IntoIterator<Item = &'a str>,
    prefs: &DeflateOptions,
) -> Result<Option<Negotiated>, MalformedExtensions> {
    let mut chosen = None;
    for value in values {
        for ext in Extensions::new(value) {
            let ext = ext?;
            if chosen.is_some() || !ext.name.eq_ignore_ascii_case("permessage-deflate") {
                // Keep parsing: a malformed header is refused as a whole.
                for p in ext.params() {
                    p?;
                }
                continue;
            }
            chosen = accept_offer(&ext, prefs)?;
        }
    }
    Ok(chosen)
}

/// A client's permessage-deflate offer as parsed (window bits: `Some(None)`
/// for `client_max_window_bits` without a value).
#[derive(Debug, Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<Option<u8>>,
}

/// Accepts one offer or declines it (`Ok(None)`); `Err` only for grammar.
fn accept_offer(
    ext: &Extension<'_>,
    prefs: &DeflateOptions,
) -> Result<Option<Negotiated>, MalformedExtensions> {
    let mut offer = Offer::default();
    let mut valid = true;
    for p in ext.params() {
        let (name, value) = p?;
        if !valid {
            continue;
        }
        valid = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => {
                value.is_none() && !std::mem::replace(&mut offer.server_no_context_takeover, true)
            }
            "client_no_context_takeover" => {
                value.is_none() && !std::mem::replace(&mut offer.client_no_context_takeover, true)
            }
            "server_max_window_bits" => match value.as_deref().and_then(window_bits) {
                Some(bits) if offer.server_max_window_bits.is_none() => {
                    offer.server_max_window_bits = Some(bits);
                    true
                }
                _ => false,
            },
            "client_max_window_bits" => match value {
                _ if offer.client_max_window_bits.is_some() => false,
                None => {
                    offer.client_max_window_bits = Some(None);
                    true
                }
                Some(v) => match window_bits(&v) {
                    Some(bits) => {
                        offer.client_max_window_bits = Some(Some(bits));
                        true
                    }
                    None => false,
                },
            },
            _ => false,
        };
    }
    if !valid {
        return Ok(None);
    }
    let server_bits = offer
        .server_max_window_bits
        .map_or(prefs.server_max_window_bits, |b| {
            b.min(prefs.server_max_window_bits)
        });
    let client_bits = match offer.client_max_window_bits {
        // The client did not say it can limit its window: it may use 15.
        None => None,
        Some(offered) => match (offered, prefs.client_max_window_bits) {
            // A preference of 8 is answered as 9 unless the client asked
            // for 8 itself: zlib cannot compress raw deflate with a 256-byte
            // window, so zlib-based clients (Python's `websockets`) refuse
            // an answer of 8.
            (Some(o), Some(p)) => Some(o.min(p.max(9))),
            (Some(o), None) => Some(o),
            (None, Some(p)) => Some(p.max(9)),
            (None, None) => None,
        },
    };
    let params = DeflateParams {
        server_no_context_takeover: offer.server_no_context_takeover
            || prefs.server_no_context_takeover,
        client_no_context_takeover: offer.client_no_context_takeover
            || prefs.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits.unwrap_or(15),
    };
    let mut response = String::from("permessage-deflate");
    if params.server_no_context_takeover {
        response.push_str("; server_no_context_takeover");
    }
    if params.client_no_context_takeover {
        response.push_str("; client_no_context_takeover");
    }
    // Only answered when offered (§7.1.2.1 allows a server to add it, but
    // some clients refuse a response parameter they did not offer); without
    // it the server still compresses with its own smaller window, which any
    // client inflates.
    if offer.server_max_window_bits.is_some() {
        let _ = write!(response, "; server_max_window_bits={server_bits}");
    }
    if let Some(bits) = client_bits {
        // §7.1.2.2: only when the offer had the parameter.
        let _ = write!(response, "; client_max_window_bits={bits}");
    }
    Ok(Some(Negotiated { params, response }))
}

/// `8`–`15` in decimal without leading zeros (RFC 7692 §7.1.2).
fn window_bits(v: &str) -> Option<u8> {
    match v.as_bytes() {
        [b'8'] => Some(8),
        [b'9'] => Some(9),
        [b'1', d @ b'0'..=b'5'] => Some(10 + (d - b'0')),
        _ => None,
    }
}

/// The offer a client sends for `prefs` (the client role: tests and tools).
pub fn client_offer(prefs: &DeflateOptions) -> String {
    let mut offer = String::from("permessage-deflate");
    if prefs.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if prefs.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if prefs.server_max_window_bits < 15 {
        let _ = write!(
            offer,
            "; server_max_window_bits={}",
            prefs.server_max_window_bits
        );
    }
    match prefs.client_max_window_bits {
        Some(bits) => {
            let _ = write!(offer, "; client_max_window_bits={bits}");
        }
        None => offer.push_str("; client_max_window_bits"),
    }
    offer
}

/// Reads a server's response to [`client_offer`] (the client role): the
/// parameters in effect, or why the response is unacceptable.
pub fn accept_response(
    value: &str,
    offered: &DeflateOptions,
) -> Result<DeflateParams, MalformedExtensions> {
    let mut found = None;
    for ext in Extensions::new(value) {
        let ext = ext?;
        if !ext.name.eq_ignore_ascii_case("permessage-deflate") || found.is_some() {
            return Err(MalformedExtensions("unexpected extension in response"));
        }
        let mut params = DeflateParams::default();
        let mut seen = [false; 4];
        for p in ext.params() {
            let (name, value) = p?;
            let (i, ok) = match (name.to_ascii_lowercase().as_str(), value.as_deref()) {
                ("server_no_context_takeover", None) => {
                    params.server_no_context_takeover = true;
                    (0, true)
                }
                ("client_no_context_takeover", None) => {
                    params.client_no_context_takeover = true;
                    (1, true)
                }
                ("server_max_window_bits", Some(v)) => match window_bits(v) {
                    Some(b) if b <= offered.server_max_window_bits => {
                        params.server_max_window_bits = b;
                        (2, true)
                    }
                    _ => (2, false),
                },
                ("client_max_window_bits", Some(v)) => match window_bits(v) {
                    Some(b) if b <= offered.client_max_window_bits.unwrap_or(15) => {
                        params.client_max_window_bits = b;
                        (3, true)
                    }
                    _ => (3, false),
                },
                _ => (0, false),
            };
            if !ok || std::mem::replace(&mut seen[i], true) {
                return Err(MalformedExtensions(
                    "unacceptable permessage-deflate parameter",
                ));
            }
        }
        if offered.server_no_context_takeover && !params.server_no_context_takeover {
            return Err(MalformedExtensions(
                "server_no_context_takeover not honoured",
            ));
        }
        if let Some(bits) = offered.client_max_window_bits {
            params.client_max_window_bits = params.client_max_window_bits.min(bits);
        }
        found = Some(params);
    }
    found.ok_or(MalformedExtensions("no extension in response"))
}

// --- grammar ----------------------------------------------------------------

/// One extension of a header value: its name and the unparsed parameters.
struct Extension<'a> {
    name: &'a str,
    params: &'a str,
}

impl<'a> Extension<'a> {
    /// The parameters: `(name, value)`, a quoted value unquoted.
    fn params(&self) -> Params<'a> {
        Params { rest: self.params }
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Splits a header value on top-level commas (not inside quoted strings).
struct Extensions<'a> {
    rest: Option<&'a str>,
}

impl<'a> Extensions<'a> {
    fn new(value: &'a str) -> Self {
        Extensions { rest: Some(value) }
    }
}

/// The end of the top-level element starting at `s` (at a `sep` outside
/// quotes, or the end), or `Err` for an unterminated quoted string.
fn element_end(s: &str, sep: u8) -> Result<usize, MalformedExtensions> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quoted = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => quoted = !quoted,
            b'\\' if quoted => i += 1,
            c if c == sep && !quoted => return Ok(i),
            _ => {}
        }
        i += 1;
    }
    if quoted {
        return Err(MalformedExtensions("unterminated quoted string"));
    }
    Ok(b.len())
}

impl<'a> Iterator for Extensions<'a> {
    type Item = Result<Extension<'a>, MalformedExtensions>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let s = self.rest?;
            let end = match element_end(s, b',') {
                Ok(e) => e,
                Err(e) => {
                    self.rest = None;
                    return Some(Err(e));
                }
            };
            let (elem, rest) = (&s[..end], s.get(end + 1..));
            self.rest = rest;
            let elem = trim_ows(elem);
            if elem.is_empty() {
                // Empty list elements are allowed and ignored (RFC 9110 §5.6.1).
                continue;
            }
            let (name, params) = match elem.find(';') {
                Some(i) => (trim_ows(&elem[..i]), &elem[i + 1..]),
                None => (elem, ""),
            };
            if !is_token(name) {
                self.rest = None;
                return Some(Err(MalformedExtensions("extension name is not a token")));
            }
            if elem.contains(';') && params.is_empty() {
                return Some(Err(MalformedExtensions("empty extension parameter")));
            }
            return Some(Ok(Extension { name, params }));
        }
    }
}

struct Params<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Params<'a> {
    type Item = Result<(&'a str, Option<String>), MalformedExtensions>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let s = self.rest;
        let end = match element_end(s, b';') {
            Ok(e) => e,
            Err(e) => {
                self.rest = "";
                return Some(Err(e));
            }
        };
        self.rest = s.get(end + 1..).unwrap_or("");
        if end < s.len() && self.rest.is_empty() {
            // A trailing ';' with nothing after it.
            return Some(Err(MalformedExtensions("empty extension parameter")));
        }
        let param = trim_ows(&s[..end]);
        let (name, value) = match param.find('=') {
            Some(i) => (trim_ows(&param[..i]), Some(trim_ows(&param[i + 1..]))),
            None => (param, None),
        };
        if !is_token(name) {
            self.rest = "";
            return Some(Err(MalformedExtensions("parameter name is not a token")));
        }
        let value = match value {
            None => None,
            Some(v) if is_token(v) => Some(v.to_owned()),
            Some(v) if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') => {
                let mut out = String::new();
                let mut chars = v[1..v.len() - 1].chars();
                while let Some(c) = chars.next() {
                    out.push(if c == '\\' {
                        chars.next().unwrap_or('\\')
                    } else {
                        c
                    });
                }
                // RFC 6455 §9.1: a quoted value must be a token once unquoted.
                if !is_token(&out) {
                    self.rest = "";
                    return Some(Err(MalformedExtensions("quoted value is not a token")));
                }
                Some(out)
            }
            Some(_) => {
                self.rest = "";
                return Some(Err(MalformedExtensions("parameter value is not a token")));
            }
        };
        Some(Ok((name, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(values: &[&str]) -> Result<Option<Negotiated>, MalformedExtensions> {
        negotiate(values.iter().copied(), &DeflateOptions::default())
    }

    fn neg_with(values: &[&str], prefs: DeflateOptions) -> Option<Negotiated> {
        negotiate(values.iter().copied(), &prefs).expect("well-formed")
    }

    fn keep_context() -> DeflateOptions {
        DeflateOptions {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            ..DeflateOptions::default()
        }
    }

    #[test]
    fn plain_offer_is_accepted_with_defaults() {
        let n = neg(&["permessage-deflate"]).unwrap().unwrap();
        assert_eq!(
            n.response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert_eq!(
            n.params,
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                ..DeflateParams::default()
            }
        );
        let n = neg_with(&["permessage-deflate"], keep_context()).unwrap();
        assert_eq!(n.response, "permessage-deflate");
        assert_eq!(n.params, DeflateParams::default());
    }

    #[test]
    fn browser_offer() {
        // What Chromium and Firefox send.
        let n = neg_with(
            &["permessage-deflate; client_max_window_bits"],
            keep_context(),
        )
        .unwrap();
        assert_eq!(n.response, "permessage-deflate");
        assert_eq!(n.params.client_max_window_bits, 15);
        let prefs = DeflateOptions {
            client_max_window_bits: Some(10),
            ..keep_context()
        };
        let n = neg_with(&["permessage-deflate; client_max_window_bits"], prefs).unwrap();
        assert_eq!(n.response, "permessage-deflate; client_max_window_bits=10");
        assert_eq!(n.params.client_max_window_bits, 10);
    }

    #[test]
    fn all_four_parameters() {
        let n = neg_with(
            &[
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
               server_max_window_bits=10; client_max_window_bits=9",
            ],
            keep_context(),
        )
        .unwrap();
        assert_eq!(
            n.params,
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 10,
                client_max_window_bits: 9,
            }
        );
        assert_eq!(
            n.response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=9"
        );
    }

    #[test]
    fn window_bits_take_the_smaller_of_offer_and_preference() {
        let prefs = DeflateOptions {
            server_max_window_bits: 12,
            client_max_window_bits: Some(11),
            ..keep_context()
        };
        let n = neg_with(
            &["permessage-deflate; server_max_window_bits=14; client_max_window_bits=13"],
            prefs,
        )
        .unwrap();
        assert_eq!(n.params.server_max_window_bits, 12);
        assert_eq!(n.params.client_max_window_bits, 11);
        let n = neg_with(
            &["permessage-deflate; server_max_window_bits=8; client_max_window_bits=8"],
            prefs,
        )
        .unwrap();
        assert_eq!(n.params.server_max_window_bits, 8);
        assert_eq!(n.params.client_max_window_bits, 8);
        assert_eq!(
            n.response,
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8"
        );
        // Not offered: the server uses its smaller window without saying so,
        // and cannot limit the client's.
        let n = neg_with(&["permessage-deflate"], prefs).unwrap();
        assert_eq!(n.params.server_max_window_bits, 12);
        assert_eq!(n.params.client_max_window_bits, 15);
        assert_eq!(n.response, "permessage-deflate");
    }

    #[test]
    fn a_client_window_preference_of_8_is_answered_as_9_unless_asked() {
        let prefs = DeflateOptions {
            client_max_window_bits: Some(8),
            ..keep_context()
        };
        let n = neg_with(&["permessage-deflate; client_max_window_bits"], prefs).unwrap();
        assert_eq!(n.params.client_max_window_bits, 9);
        assert_eq!(n.response, "permessage-deflate; client_max_window_bits=9");
        let n = neg_with(&["permessage-deflate; client_max_window_bits=8"], prefs).unwrap();
        assert_eq!(n.params.client_max_window_bits, 8);
    }

    #[test]
    fn client_no_context_takeover_may_be_required_by_the_server() {
        let prefs = DeflateOptions {
            client_no_context_takeover: true,
            ..keep_context()
        };
        let n = neg_with(&["permessage-deflate"], prefs).unwrap();
        assert!(n.params.client_no_context_takeover);
        assert_eq!(n.response, "permessage-deflate; client_no_context_takeover");
    }

    #[test]
    fn invalid_offers_are_declined_and_the_next_considered() {
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"x\"",
        ] {
            assert_eq!(neg(&[bad]).unwrap(), None, "{bad}");
            let n = negotiate(
                [format!("{bad}, permessage-deflate; client_max_window_bits=10").as_str()],
                &keep_context(),
            )
            .unwrap()
            .unwrap_or_else(|| panic!("next offer after {bad}"));
            assert_eq!(n.params.client_max_window_bits, 10, "{bad}");
            // The next offer may come in another header line.
            let n = neg(&[bad, "permessage-deflate; client_max_window_bits=11"])
                .unwrap()
                .unwrap();
            assert_eq!(n.params.client_max_window_bits, 11, "{bad}");
        }
    }

    #[test]
    fn first_acceptable_offer_wins() {
        let n = neg(&[
            "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=9, \
             permessage-deflate; client_max_window_bits=12",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(n.params.client_max_window_bits, 9);
    }

    #[test]
    fn quoted_values_and_whitespace_and_case() {
        let n = neg(&["  Permessage-Deflate ;Client_Max_Window_Bits = \"10\" ,"])
            .unwrap()
            .unwrap();
        assert_eq!(n.params.client_max_window_bits, 10);
        let n = neg(&["permessage-deflate;\tserver_max_window_bits=\"1\\2\""])
            .unwrap()
            .unwrap();
        assert_eq!(n.params.server_max_window_bits, 12);
    }

    #[test]
    fn other_extensions_and_empty_elements_are_ignored() {
        assert_eq!(neg(&["foo; bar=1, , baz"]).unwrap(), None);
        assert_eq!(neg(&[""]).unwrap(), None);
        assert_eq!(neg(&[]).unwrap(), None);
        assert!(neg(&[",, permessage-deflate ,"]).unwrap().is_some());
    }

    #[test]
    fn malformed_headers_are_errors() {
        for bad in [
            "permessage-deflate;",
            "permessage-deflate; ; client_max_window_bits",
            "permessage-deflate; =10",
            "permessage-deflate; client_max_window_bits=\"10",
            "permessage-deflate; client_max_window_bits=1 0",
            "permessage-deflate; client_max_window_bits=\"1 0\"",
            "perm(essage",
            "; client_max_window_bits",
            "foo; a=\"unterminated, permessage-deflate",
            // Malformed after an accepted offer still refuses the header.
            "permessage-deflate, foo;",
        ] {
            assert!(neg(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_side_round_trip() {
        for prefs in [
            DeflateOptions::default(),
            keep_context(),
            DeflateOptions {
                server_no_context_takeover: false,
                client_no_context_takeover: true,
                server_max_window_bits: 9,
                client_max_window_bits: Some(10),
                ..DeflateOptions::default()
            },
        ] {
            let offer = client_offer(&prefs);
            let n = neg_with(&[&offer], DeflateOptions::default()).unwrap();
            let client_view = accept_response(&n.response, &prefs).unwrap();
            assert_eq!(client_view, n.params, "{offer} -> {}", n.response);
        }
        let prefs = DeflateOptions::default();
        assert!(accept_response("permessage-deflate; foo", &prefs).is_err());
        assert!(accept_response("permessage-deflate", &prefs).is_err()); // takeover not honoured
        assert!(accept_response("x-other", &keep_context()).is_err());
        assert!(accept_response(
            "permessage-deflate; server_max_window_bits=12",
            &DeflateOptions {
                server_max_window_bits: 10,
                ..keep_context()
            }
        )
        .is_err());
    }

    #[test]
    fn options_validation() {
        assert!(DeflateOptions::default().validate().is_ok());
        for bad in [
            DeflateOptions {
                server_max_window_bits: 7,
                ..DeflateOptions::default()
            },
            DeflateOptions {
                client_max_window_bits: Some(16),
                ..DeflateOptions::default()
            },
            DeflateOptions {
                level: 10,
                ..DeflateOptions::default()
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }
}
