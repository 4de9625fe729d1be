//! Response heads: for any status, fields, body kind and request facts,
//! `write_response_head` never panics, writes a head that parses back as a
//! response, and the framing fields in it say what the returned
//! `ResponseFraming` says (one framing field at most, none for a bodiless
//! status, chunked only for HTTP/1.1, a close-delimited body only on a
//! connection that closes, the `Connection` field that matches).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pollserve::proto::http::{
    write_response_head, BodyDelimiter, ResponseBody, ResponseContext, ResponseFraming, Version,
};
use pollserve::{Headers, StatusCode};

const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
/// Names worth colliding with: the framing fields the encoder owns, and a
/// few the defaults may also set, in varying case.
const NAMES: &[&str] = &[
    "Content-Length",
    "content-length",
    "Transfer-Encoding",
    "TRANSFER-ENCODING",
    "Connection",
    "connection",
    "Content-Type",
    "Server",
    "server",
    "Set-Cookie",
    "Upgrade",
];
const VALUES: &[&str] = &[
    "close",
    "Close",
    "keep-alive, close",
    "keep-alive",
    "chunked",
    "Upgrade",
    "0",
    "12",
];
const TCHAR: &[u8] =
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Reads the fuzzer's bytes as a sequence of small decisions.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |n, _| n << 8 | u64::from(self.byte()))
    }

    fn name(&mut self) -> String {
        match self.byte() {
            n if (n as usize) < NAMES.len() * 16 => NAMES[n as usize % NAMES.len()].to_owned(),
            n => (0..1 + n % 12)
                .map(|_| TCHAR[self.byte() as usize % TCHAR.len()] as char)
                .collect(),
        }
    }

    fn value(&mut self) -> String {
        match self.byte() {
            n if n < 128 => VALUES[n as usize % VALUES.len()].to_owned(),
            n => (0..n % 24)
                // RFC 9110 field-value characters: visible ASCII, space,
                // tab and (as UTF-8) obs-text.
                .map(|_| match self.byte() % 97 {
                    94 => ' ',
                    95 => '\t',
                    96 => 'é',
                    c => (b'!' + c) as char,
                })
                .collect(),
        }
    }

    fn headers(&mut self, framing_names: bool) -> Headers {
        let mut headers = Headers::new();
        for _ in 0..self.byte() % 8 {
            let (name, value) = (self.name(), self.value());
            if framing_names || !is_framing(&name) {
                headers.add(&name, &value);
            }
        }
        headers
    }
}

fn is_framing(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection"]
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f))
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let code = 100 + (u16::from(input.byte()) << 8 | u16::from(input.byte())) % 900;
    let status = StatusCode::new(code).unwrap();
    let body = match input.byte() % 5 {
        0 => ResponseBody::Empty,
        1 => ResponseBody::Length(input.u64()),
        2 => ResponseBody::Stream,
        3 => ResponseBody::EventStream,
        _ => ResponseBody::Upgrade,
    };
    let facts = input.byte();
    let cx = ResponseContext {
        version: if facts & 1 == 0 {
            Version::Http11
        } else {
            Version::Http10
        },
        head_request: facts & 2 != 0,
        keep_alive: facts & 4 != 0,
    };
    let fields = input.headers(true);
    // Defaults hold no framing fields (a documented precondition).
    let defaults = input.headers(false);
    let mut out = b"previous response bytes".to_vec();
    let start = out.len();
    let framing = write_response_head(&mut out, status, DATE, &fields, &defaults, body, cx);
    check(&out[start..], status, &fields, &defaults, framing, cx);
});

fn check(
    head: &[u8],
    status: StatusCode,
    fields: &Headers,
    defaults: &Headers,
    f: ResponseFraming,
    cx: ResponseContext,
) {
    let mut slots = [httparse::EMPTY_HEADER; 40];
    let mut parsed = httparse::Response::new(&mut slots);
    let parsed_len = parsed.parse(head).expect("the head parses as a response");
    assert_eq!(parsed_len, httparse::Status::Complete(head.len()));
    assert_eq!(parsed.version, Some(1));
    assert_eq!(parsed.code, Some(status.as_u16()));
    assert_eq!(parsed.reason, Some(status.reason()));

    // Every field written: Date, the defaults the response does not
    // override, the response's own, minus the framing fields.
    let written: Vec<(&str, &[u8])> = parsed.headers.iter().map(|h| (h.name, h.value)).collect();
    let mut expected: Vec<(&str, &str)> = vec![("Date", DATE)];
    expected.extend(defaults.iter().filter(|(n, _)| !fields.contains(n)));
    expected.extend(fields.iter().filter(|(n, _)| !is_framing(n)));
    let (ordinary, framing): (Vec<_>, Vec<_>) = written.iter().partition(|(n, _)| !is_framing(n));
    assert_eq!(ordinary.len(), expected.len());
    for ((name, value), (want_name, want_value)) in ordinary.iter().zip(&expected) {
        assert_eq!(name, want_name);
        // httparse drops the value's surrounding whitespace.
        assert_eq!(*value, want_value.trim_matches([' ', '\t']).as_bytes());
    }

    let values = |wanted: &str| -> Vec<&[u8]> {
        framing
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(wanted))
            .map(|(_, v)| *v)
            .collect()
    };
    let (lengths, codings, connection) = (
        values("content-length"),
        values("transfer-encoding"),
        values("connection"),
    );
    let announced = match (&lengths[..], &codings[..]) {
        ([], []) if status.forbids_body() => BodyDelimiter::None,
        ([], []) => BodyDelimiter::CloseDelimited,
        ([n], []) => BodyDelimiter::Length(
            std::str::from_utf8(n)
                .unwrap()
                .parse()
                .expect("a decimal Content-Length"),
        ),
        ([], [c]) if *c == b"chunked" => BodyDelimiter::Chunked,
        _ => panic!("framing fields {lengths:?} {codings:?}"),
    };
    assert_eq!(announced, f.body);
    assert!(!status.forbids_body() || announced == BodyDelimiter::None);
    assert!(announced != BodyDelimiter::Chunked || cx.version == Version::Http11);
    assert_eq!(f.send_body, !cx.head_request && !status.forbids_body());
    // A body that ends at close leaves nothing to reuse.
    assert!(!(f.send_body && announced == BodyDelimiter::CloseDelimited && f.keep_alive));
    // The response can only turn keep-alive off, and does when asked to.
    assert!(!f.keep_alive || cx.keep_alive);
    if fields
        .get_all("connection")
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("close"))
    {
        assert!(!f.keep_alive);
    }
    let expected_connection: &[&[u8]] = if f.upgrade {
        &[b"Upgrade"]
    } else if !f.keep_alive {
        &[b"close"]
    } else if cx.version == Version::Http10 {
        &[b"keep-alive"]
    } else {
        &[]
    };
    assert_eq!(connection, expected_connection);
    assert!(!f.upgrade || status == StatusCode::SWITCHING_PROTOCOLS);
}
