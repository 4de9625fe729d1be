//! HTML escaping for reflecting user input into pages.

use std::borrow::Cow;

/// Escapes `&`, `<`, `>`, `"` and `'` so `text` can be placed in HTML element
/// content or a quoted attribute value without being interpreted as markup.
///
/// Use it on anything that came from a client — query parameters, form
/// fields, headers, path segments — before writing it into an HTML response.
/// Returns the input unchanged (borrowed) when nothing needs escaping.
///
/// ```
/// use pollserve::html_escape;
/// assert_eq!(html_escape("<b>Tom & \"Jerry\"</b>"), "&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt;");
/// assert_eq!(html_escape("plain"), "plain");
/// ```
pub fn html_escape(text: &str) -> Cow<'_, str> {
    let needs = |b: u8| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'');
    let Some(first) = text.bytes().position(needs) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}
