//! HTML escaping for reflecting untrusted text into pages.
//!
//! Anything that came from a client — query parameters, form fields, cookie
//! values, header values, uploaded file names — must be escaped before it is
//! written into an HTML response, or a crafted value can inject markup and
//! script (cross-site scripting). Unlike `adafruit_httpserver`, whose form and query
//! getters escape by default, pollserve hands out the raw values and leaves the
//! escaping to the place where HTML is produced: call [`html_escape`] there.

use std::borrow::Cow;

/// Escapes `&`, `<`, `>`, `"` and `'` so that `text` can be placed in HTML
/// element content or in a quoted attribute value.
///
/// The replacements are `&amp;`, `&lt;`, `&gt;`, `&quot;` and `&#x27;`. Text
/// with none of these characters is returned borrowed, without allocating.
///
/// This is the helper for reflecting user input into HTML. It is **not**
/// enough for other contexts: an unquoted attribute, a URL in `href`/`src`
/// (check the scheme: `javascript:` survives escaping), inline `<script>` or
/// `<style>` content, or CSS each need their own handling.
///
/// ```
/// use pollserve::html_escape;
/// assert_eq!(html_escape("plain"), "plain");
/// assert_eq!(
///     html_escape(r#"<a href="x">Tom & Jerry's</a>"#),
///     "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#x27;s&lt;/a&gt;"
/// );
/// ```
pub fn html_escape(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let Some(first) = bytes.iter().position(|&b| replacement(b).is_some()) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    let mut last = first;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
        if let Some(rep) = replacement(b) {
            // Every escaped character is ASCII, so `i` and `last` are always
            // on character boundaries.
            out.push_str(&text[last..i]);
            out.push_str(rep);
            last = i + 1;
        }
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

fn replacement(b: u8) -> Option<&'static str> {
    match b {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'>' => Some("&gt;"),
        b'"' => Some("&quot;"),
        b'\'' => Some("&#x27;"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_text_is_borrowed() {
        assert!(matches!(html_escape(""), Cow::Borrowed("")));
        assert!(matches!(html_escape("hello world"), Cow::Borrowed(_)));
        assert!(matches!(html_escape("ünïcödé ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn each_special_character() {
        assert_eq!(html_escape("&"), "&amp;");
        assert_eq!(html_escape("<"), "&lt;");
        assert_eq!(html_escape(">"), "&gt;");
        assert_eq!(html_escape("\""), "&quot;");
        assert_eq!(html_escape("'"), "&#x27;");
    }

    #[test]
    fn script_injection_is_neutralised() {
        let out = html_escape("<script>alert('x')</script>");
        assert_eq!(out, "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;");
        assert!(!out.contains('<'));
    }

    #[test]
    fn attribute_breakout_is_neutralised() {
        let out = html_escape(r#"" onmouseover="alert(1)"#);
        assert!(!out.contains('"'));
        assert_eq!(out, "&quot; onmouseover=&quot;alert(1)");
    }

    #[test]
    fn existing_entities_are_escaped_again() {
        assert_eq!(html_escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn multibyte_text_around_escapes() {
        assert_eq!(html_escape("é<ü>ß"), "é&lt;ü&gt;ß");
        assert_eq!(html_escape("日本&語"), "日本&amp;語");
        assert_eq!(html_escape("<<>>"), "&lt;&lt;&gt;&gt;");
        assert_eq!(html_escape("a<"), "a&lt;");
        assert_eq!(html_escape("<a"), "&lt;a");
    }

    #[test]
    fn every_byte_value_round_trips_without_panic() {
        // All chars up to U+00FF plus some astral ones, mixed with specials.
        let s: String = (0u32..0x100)
            .filter_map(char::from_u32)
            .chain(['😀', '\u{10FFFF}'])
            .collect();
        let out = html_escape(&s);
        assert!(!out.contains(['<', '>', '"', '\'']));
        let back = out
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&amp;", "&");
        assert_eq!(back, s);
    }
}
