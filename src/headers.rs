//! Case-insensitive, multi-valued HTTP header lists.

use std::fmt;

/// An ordered list of HTTP header fields with case-insensitive names.
///
/// A name may appear several times (`Set-Cookie`, `Accept` split over lines…);
/// [`get`](Headers::get) returns the first value and [`get_all`](Headers::get_all)
/// every one. All fields live in one string buffer, so a parsed request costs two
/// allocations however many headers it carries, and a reused `Headers` costs none.
#[derive(Clone, Default)]
pub struct Headers {
    data: String,
    entries: Vec<Entry>,
}

#[derive(Clone, Copy)]
struct Entry {
    start: u32,
    name_len: u32,
    value_len: u32,
}

impl Headers {
    /// An empty header list.
    pub fn new() -> Headers {
        Headers::default()
    }

    fn name_of(&self, e: &Entry) -> &str {
        let s = e.start as usize;
        &self.data[s..s + e.name_len as usize]
    }

    fn value_of(&self, e: &Entry) -> &str {
        let s = e.start as usize + e.name_len as usize;
        &self.data[s..s + e.value_len as usize]
    }

    /// An empty header list with room for `fields` fields of `bytes` bytes
    /// of names and values in all, so filling it does not reallocate.
    pub fn with_capacity(bytes: usize, fields: usize) -> Headers {
        Headers {
            data: String::with_capacity(bytes),
            entries: Vec::with_capacity(fields),
        }
    }

    /// Appends a field, keeping any existing field of the same name.
    ///
    /// The caller is responsible for the name being a valid token and the value
    /// holding no CR or LF; [`Response`](crate::Response) builders check this.
    pub fn add(&mut self, name: &str, value: &str) {
        let start = self.data.len() as u32;
        self.data.push_str(name);
        self.data.push_str(value);
        self.entries.push(Entry {
            start,
            name_len: name.len() as u32,
            value_len: value.len() as u32,
        });
    }

    /// Replaces every field called `name` with one field holding `value`.
    pub fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.add(name, value);
    }

    /// Removes every field called `name`; returns whether any was present.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        let data = &self.data;
        self.entries.retain(|e| {
            let s = e.start as usize;
            !data[s..s + e.name_len as usize].eq_ignore_ascii_case(name)
        });
        before != self.entries.len()
    }

    /// The first value of the field called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| self.name_of(e).eq_ignore_ascii_case(name))
            .map(|e| self.value_of(e))
    }

    /// Every value of the field called `name`, in order of appearance.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |e| self.name_of(e).eq_ignore_ascii_case(name))
            .map(move |e| self.value_of(e))
    }

    /// Whether a field called `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether the comma-separated list in any field called `name` holds `token`
    /// (compared case-insensitively), as for `Connection: keep-alive, Upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The first directive of a field: the part before the first `;`, trimmed.
    ///
    /// `Content-Type: text/html; charset=utf-8` gives `text/html`. Same as the
    /// `Headers.get_directive` of `adafruit_httpserver`.
    pub fn get_directive(&self, name: &str) -> Option<&str> {
        self.get(name)
            .map(|v| v.split(';').next().unwrap_or("").trim())
    }

    /// The value of a `;`-separated parameter of a field, unquoted.
    ///
    /// `Content-Type: multipart/form-data; boundary="xyz"` with parameter
    /// `boundary` gives `xyz`. Parameter names compare case-insensitively.
    pub fn get_parameter(&self, name: &str, parameter: &str) -> Option<&str> {
        let value = self.get(name)?;
        value.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            if !k.trim().eq_ignore_ascii_case(parameter) {
                return None;
            }
            let v = v.trim();
            Some(
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v),
            )
        })
    }

    /// Iterates over `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries
            .iter()
            .map(|e| (self.name_of(e), self.value_of(e)))
    }

    /// Number of fields (a repeated name counts each time).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every field, keeping the allocated capacity.
    pub fn clear(&mut self) {
        self.data.clear();
        self.entries.clear();
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Headers {
    fn from_iter<T: IntoIterator<Item = (&'a str, &'a str)>>(iter: T) -> Self {
        let mut h = Headers::new();
        for (n, v) in iter {
            h.add(n, v);
        }
        h
    }
}

/// Whether `name` is a valid header field name (an RFC 9110 token).
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` may be sent as a header field value (RFC 9110 §5.5:
/// visible characters, spaces, tabs and non-ASCII; no CR, LF, NUL or other
/// control character, which strict clients refuse and naive ones may split
/// on).
pub(crate) fn is_valid_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_refuse_every_control_character_but_tab() {
        assert!(is_valid_value("text/html; charset=utf-8"));
        assert!(is_valid_value("a\tb é ✓"));
        assert!(is_valid_value(""));
        for bad in ["a\rb", "a\nb", "a\0b", "a\x01b", "a\x1fb", "a\x7fb"] {
            assert!(!is_valid_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn case_insensitive_multi_valued() {
        let mut h = Headers::new();
        h.add("Accept", "text/html");
        h.add("accept", "application/json");
        h.add("Host", "x");
        assert_eq!(h.get("ACCEPT"), Some("text/html"));
        assert_eq!(
            h.get_all("accept").collect::<Vec<_>>(),
            ["text/html", "application/json"]
        );
        h.set("ACCEPT", "*/*");
        assert_eq!(h.get_all("accept").collect::<Vec<_>>(), ["*/*"]);
        assert_eq!(h.len(), 2);
        assert!(h.remove("host"));
        assert!(!h.contains("Host"));
    }

    #[test]
    fn directives_and_parameters() {
        let h: Headers = [
            (
                "Content-Type",
                "multipart/form-data; charset=utf-8;  Boundary=\"a b\"",
            ),
            ("Connection", "keep-alive, Upgrade"),
        ]
        .into_iter()
        .collect();
        assert_eq!(h.get_directive("content-type"), Some("multipart/form-data"));
        assert_eq!(h.get_parameter("content-type", "boundary"), Some("a b"));
        assert_eq!(h.get_parameter("content-type", "charset"), Some("utf-8"));
        assert_eq!(h.get_parameter("content-type", "missing"), None);
        assert!(h.has_token("connection", "upgrade"));
        assert!(!h.has_token("connection", "close"));
    }

    #[test]
    fn validates_names_and_values() {
        assert!(is_valid_name("X-Custom_1"));
        assert!(!is_valid_name("Bad Name"));
        assert!(!is_valid_name(""));
        assert!(is_valid_value("a; b=c"));
        assert!(!is_valid_value("a\r\nInjected: 1"));
    }
}
