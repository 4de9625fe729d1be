//! Server-Sent Events encoding (HTML Living Standard, "Server-sent events").

/// One event to send on an event stream.
///
/// ```
/// use pollserve::proto::sse::SseEvent;
/// let mut out = Vec::new();
/// SseEvent::new("line one\nline two").event("update").id("0").retry(2500).encode(&mut out).unwrap();
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     "event: update\nid: 0\nretry: 2500\ndata: line one\ndata: line two\n\n"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent<'a> {
    data: &'a str,
    event: Option<&'a str>,
    id: Option<&'a str>,
    retry: Option<u64>,
    fields: Vec<(&'a str, &'a str)>,
}

/// Why an event cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// An event type, id, custom field name or value holds CR or LF (which
    /// would end the field early and let the rest inject other fields).
    #[error("SSE {0} must not contain CR or LF")]
    LineBreak(&'static str),
    /// An id holds NUL; clients ignore such ids (the standard says so), which
    /// would silently break `Last-Event-ID` resumption.
    #[error("SSE id must not contain NUL")]
    NulInId,
    /// A custom field name that is empty, holds `:`, or is one of the standard
    /// fields (`data`, `event`, `id`, `retry`; use the dedicated setters).
    #[error("invalid SSE field name {0:?}")]
    FieldName(String),
}

impl<'a> SseEvent<'a> {
    /// An event carrying `data` (may be empty; newlines split it into several
    /// `data:` lines, which the client joins back with `\n`).
    pub fn new(data: &'a str) -> SseEvent<'a> {
        SseEvent {
            data,
            ..SseEvent::default()
        }
    }

    /// The event type (`addEventListener(type, …)` in browsers).
    pub fn event(mut self, event: &'a str) -> Self {
        self.event = Some(event);
        self
    }

    /// The event id, echoed by a reconnecting client as `Last-Event-ID`.
    /// `"0"` is a valid id and is sent (`adafruit_httpserver` drops it).
    pub fn id(mut self, id: &'a str) -> Self {
        self.id = Some(id);
        self
    }

    /// The reconnection delay the client should use, in milliseconds.
    pub fn retry(mut self, millis: u64) -> Self {
        self.retry = Some(millis);
        self
    }

    /// A custom field (clients ignore unknown fields; some tools read them).
    pub fn field(mut self, name: &'a str, value: &'a str) -> Self {
        self.fields.push((name, value));
        self
    }

    /// Appends the encoded event, ending with the blank line that dispatches
    /// it. Nothing is written on error.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), SseError> {
        let no_break = |s: &str| !s.contains(['\r', '\n']);
        if let Some(e) = self.event {
            if !no_break(e) {
                return Err(SseError::LineBreak("event type"));
            }
        }
        if let Some(id) = self.id {
            if !no_break(id) {
                return Err(SseError::LineBreak("id"));
            }
            if id.contains('\0') {
                return Err(SseError::NulInId);
            }
        }
        for (name, value) in &self.fields {
            if name.is_empty()
                || name.contains(':')
                || !no_break(name)
                || matches!(*name, "data" | "event" | "id" | "retry")
            {
                return Err(SseError::FieldName((*name).to_owned()));
            }
            if !no_break(value) {
                return Err(SseError::LineBreak("field value"));
            }
        }
        // Written straight into `out` (no intermediate string): every check
        // is done above, so nothing is written on error.
        out.reserve(self.data.len() + 32);
        if let Some(e) = self.event {
            field(out, "event", e.as_bytes());
        }
        if let Some(id) = self.id {
            field(out, "id", id.as_bytes());
        }
        if let Some(r) = self.retry {
            out.extend_from_slice(b"retry: ");
            crate::proto::http::push_decimal(out, r);
            out.push(b'\n');
        }
        for (name, value) in &self.fields {
            field(out, name, value.as_bytes());
        }
        for line in split_lines(self.data) {
            field(out, "data", line.as_bytes());
        }
        out.push(b'\n');
        Ok(())
    }
}

/// Appends one `name: value` line.
fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Splits on CRLF, LF or CR, as the event-stream parser does; an empty string
/// is one empty line (so an empty `data:` is still sent).
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let t = rest?;
        // memchr2: a vectorised search (a `char` pattern checks byte by byte,
        // which dominated the cost of encoding a 4 KiB event).
        match memchr::memchr2(b'\r', b'\n', t.as_bytes()) {
            None => {
                rest = None;
                Some(t)
            }
            Some(i) => {
                let skip = if t[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&t[i + skip..]);
                Some(&t[..i])
            }
        }
    })
}

/// Appends a comment (`: text`), which clients ignore; used as a heartbeat to
/// keep proxies from closing an idle stream. Line breaks in `text` start new
/// comment lines.
pub fn encode_comment(text: &str, out: &mut Vec<u8>) {
    for line in split_lines(text) {
        out.extend_from_slice(b": ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(e: SseEvent<'_>) -> String {
        let mut out = Vec::new();
        e.encode(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn multi_line_data_and_fields() {
        assert_eq!(
            enc(SseEvent::new("a\r\nb\rc\nd")),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(enc(SseEvent::new("")), "data: \n\n");
        assert_eq!(enc(SseEvent::new("x\n")), "data: x\ndata: \n\n");
        assert_eq!(enc(SseEvent::new("x").id("0")), "id: 0\ndata: x\n\n");
        assert_eq!(
            enc(SseEvent::new("x").field("source", "s1")),
            "source: s1\ndata: x\n\n"
        );
    }

    #[test]
    fn every_field_in_order_appended_to_what_is_there() {
        let mut out = b"before\n".to_vec();
        SseEvent::new("d1\nd2")
            .event("tick")
            .id("7")
            .retry(0)
            .field("source", "s1")
            .encode(&mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "before\nevent: tick\nid: 7\nretry: 0\nsource: s1\ndata: d1\ndata: d2\n\n"
        );
        for r in [1, 9, 10, 5_000, 1_234_567_890, u64::MAX] {
            assert_eq!(
                enc(SseEvent::new("x").retry(r)),
                format!("retry: {r}\ndata: x\n\n")
            );
        }
    }

    #[test]
    fn refuses_injection() {
        let mut out = Vec::new();
        assert_eq!(
            SseEvent::new("x").event("a\nb").encode(&mut out),
            Err(SseError::LineBreak("event type"))
        );
        assert_eq!(
            SseEvent::new("x").id("1\r").encode(&mut out),
            Err(SseError::LineBreak("id"))
        );
        assert_eq!(
            SseEvent::new("x").id("a\0").encode(&mut out),
            Err(SseError::NulInId)
        );
        assert!(SseEvent::new("x")
            .field("data", "y")
            .encode(&mut out)
            .is_err());
        assert!(SseEvent::new("x")
            .field("a:b", "y")
            .encode(&mut out)
            .is_err());
        assert!(SseEvent::new("x")
            .field("a", "y\nz")
            .encode(&mut out)
            .is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn comments() {
        let mut out = Vec::new();
        encode_comment("keep-alive", &mut out);
        encode_comment("a\nb", &mut out);
        assert_eq!(out, b": keep-alive\n\n: a\n: b\n\n");
    }
}
