//! MIME types by file extension.
//!
//! [`MimeTypes`] is a small, configurable table mapping a file extension
//! (`"html"`, `"png"`, …) to a `Content-Type` value. It starts from a built-in
//! set of common web types ([`MimeTypes::new`]), or empty
//! ([`MimeTypes::empty`]), and entries can be added, replaced or removed.
//!
//! Lookups are case-insensitive (ASCII) and never allocate: the table is one
//! vector kept sorted by lower-case extension and searched with a binary
//! search that lower-cases the query on the fly. Extensions without an entry
//! map to the default type, `application/octet-stream` unless changed with
//! [`MimeTypes::set_default`].

use std::borrow::Cow;
use std::cmp::Ordering;
use std::path::Path;

/// The type served for extensions the table does not know.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Built-in defaults, sorted by extension (lower case, unique).
///
/// Textual types carry `; charset=utf-8` so browsers do not have to sniff.
const DEFAULTS: &[(&str, &str)] = &[
    ("7z", "application/x-7z-compressed"),
    ("aac", "audio/aac"),
    ("apng", "image/apng"),
    ("avif", "image/avif"),
    ("bin", "application/octet-stream"),
    ("bmp", "image/bmp"),
    ("css", "text/css; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("eot", "application/vnd.ms-fontobject"),
    ("epub", "application/epub+zip"),
    ("flac", "audio/flac"),
    ("gif", "image/gif"),
    ("gz", "application/gzip"),
    ("htm", "text/html; charset=utf-8"),
    ("html", "text/html; charset=utf-8"),
    ("ico", "image/x-icon"),
    ("ics", "text/calendar; charset=utf-8"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("jsonld", "application/ld+json"),
    ("m4a", "audio/mp4"),
    ("m4v", "video/mp4"),
    ("map", "application/json"),
    ("md", "text/markdown; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("mov", "video/quicktime"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("oga", "audio/ogg"),
    ("ogg", "audio/ogg"),
    ("ogv", "video/ogg"),
    ("opus", "audio/ogg"),
    ("otf", "font/otf"),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("rss", "application/rss+xml"),
    ("svg", "image/svg+xml"),
    ("tar", "application/x-tar"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("ttf", "font/ttf"),
    ("txt", "text/plain; charset=utf-8"),
    ("wasm", "application/wasm"),
    ("wav", "audio/wav"),
    ("weba", "audio/webm"),
    ("webm", "video/webm"),
    ("webmanifest", "application/manifest+json"),
    ("webp", "image/webp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("xhtml", "application/xhtml+xml"),
    ("xml", "application/xml"),
    ("zip", "application/zip"),
];

/// Why [`MimeTypes::insert`] or [`MimeTypes::set_default`] refused a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MimeError {
    /// The extension was empty (after removing one leading `.`), or contained
    /// `.`, `/`, `\`, whitespace or a control character.
    #[error("invalid file extension {0:?}")]
    InvalidExtension(String),
    /// The MIME value was empty, or contained a control character (CR, LF,
    /// NUL, …) or a non-ASCII character, so it cannot be sent as a header.
    #[error("invalid MIME type {0:?}")]
    InvalidMime(String),
}

/// A table from file extension to `Content-Type` value.
///
/// Cloning copies the table; lookups borrow from it.
#[derive(Debug, Clone)]
pub struct MimeTypes {
    /// Sorted by key; keys are ASCII-lower-cased and unique.
    entries: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    default: Cow<'static, str>,
}

impl Default for MimeTypes {
    /// Same as [`MimeTypes::new`]: the built-in table.
    fn default() -> Self {
        Self::new()
    }
}

impl MimeTypes {
    /// The built-in table of common web types, with `application/octet-stream`
    /// as the fallback.
    pub fn new() -> Self {
        MimeTypes {
            entries: DEFAULTS
                .iter()
                .map(|&(e, m)| (Cow::Borrowed(e), Cow::Borrowed(m)))
                .collect(),
            default: Cow::Borrowed(OCTET_STREAM),
        }
    }

    /// An empty table: every lookup yields the default type.
    pub fn empty() -> Self {
        MimeTypes {
            entries: Vec::new(),
            default: Cow::Borrowed(OCTET_STREAM),
        }
    }

    /// Adds or replaces the type for `ext`.
    ///
    /// `ext` is matched case-insensitively; one leading `.` is ignored
    /// (`".css"` and `"css"` are the same). Returns the type previously
    /// stored for that extension, if any.
    pub fn insert(&mut self, ext: &str, mime: &str) -> Result<Option<String>, MimeError> {
        let key = normalize_ext(ext)?;
        check_mime(mime)?;
        let value = Cow::Owned(mime.to_owned());
        match self.search(&key) {
            Ok(i) => {
                let old = std::mem::replace(&mut self.entries[i].1, value);
                Ok(Some(old.into_owned()))
            }
            Err(i) => {
                self.entries.insert(i, (Cow::Owned(key), value));
                Ok(None)
            }
        }
    }

    /// Removes the entry for `ext` (case-insensitive, one leading `.`
    /// ignored), so it falls back to the default type. Returns the removed
    /// type, if there was one.
    pub fn remove(&mut self, ext: &str) -> Option<String> {
        let ext = ext.strip_prefix('.').unwrap_or(ext);
        match self.search(ext) {
            Ok(i) => Some(self.entries.remove(i).1.into_owned()),
            Err(_) => None,
        }
    }

    /// Sets the type used for unknown extensions and for files without one.
    pub fn set_default(&mut self, mime: &str) -> Result<(), MimeError> {
        check_mime(mime)?;
        self.default = Cow::Owned(mime.to_owned());
        Ok(())
    }

    /// The type used for unknown extensions.
    pub fn default_type(&self) -> &str {
        &self.default
    }

    /// The type stored for `ext` (case-insensitive, one leading `.` ignored),
    /// or `None` when the table has no entry for it.
    pub fn get(&self, ext: &str) -> Option<&str> {
        let ext = ext.strip_prefix('.').unwrap_or(ext);
        match self.search(ext) {
            Ok(i) => Some(&self.entries[i].1),
            Err(_) => None,
        }
    }

    /// The type for `ext`, or the default type when there is no entry.
    pub fn lookup(&self, ext: &str) -> &str {
        self.get(ext).unwrap_or(&self.default)
    }

    /// The type for a path's extension (the part after the last `.` of the
    /// file name, as [`Path::extension`] defines it), or the default type
    /// when there is none, it is not UTF-8, or the table has no entry.
    pub fn for_path(&self, path: &Path) -> &str {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) => self.lookup(ext),
            None => &self.default,
        }
    }

    /// Number of entries in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn search(&self, ext: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(key, _)| cmp_lower(key, ext))
    }
}

/// Compares an already lower-case `key` with `query` lower-cased on the fly.
fn cmp_lower(key: &str, query: &str) -> Ordering {
    key.bytes()
        .cmp(query.bytes().map(|b| b.to_ascii_lowercase()))
}

fn normalize_ext(ext: &str) -> Result<String, MimeError> {
    let e = ext.strip_prefix('.').unwrap_or(ext);
    let bad = e.is_empty()
        || e.chars()
            .any(|c| c == '.' || c == '/' || c == '\\' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(MimeError::InvalidExtension(ext.to_owned()));
    }
    Ok(e.to_ascii_lowercase())
}

fn check_mime(mime: &str) -> Result<(), MimeError> {
    let bad = mime.trim().is_empty()
        || mime
            .bytes()
            .any(|b| !(b == b'\t' || (0x20..0x7f).contains(&b)));
    if bad {
        return Err(MimeError::InvalidMime(mime.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_sorted_unique_lowercase_and_valid() {
        for w in DEFAULTS.windows(2) {
            assert!(w[0].0 < w[1].0, "{} !< {}", w[0].0, w[1].0);
        }
        for (e, m) in DEFAULTS {
            assert_eq!(normalize_ext(e).unwrap(), *e);
            check_mime(m).unwrap();
        }
    }

    #[test]
    fn common_types() {
        let t = MimeTypes::new();
        assert_eq!(t.lookup("html"), "text/html; charset=utf-8");
        assert_eq!(t.lookup("htm"), "text/html; charset=utf-8");
        assert_eq!(t.lookup("js"), "text/javascript; charset=utf-8");
        assert_eq!(t.lookup("mjs"), "text/javascript; charset=utf-8");
        assert_eq!(t.lookup("css"), "text/css; charset=utf-8");
        assert_eq!(t.lookup("json"), "application/json");
        assert_eq!(t.lookup("svg"), "image/svg+xml");
        assert_eq!(t.lookup("png"), "image/png");
        assert_eq!(t.lookup("jpg"), "image/jpeg");
        assert_eq!(t.lookup("jpeg"), "image/jpeg");
        assert_eq!(t.lookup("woff2"), "font/woff2");
        assert_eq!(t.lookup("wasm"), "application/wasm");
        assert_eq!(t.lookup("mp4"), "video/mp4");
        assert_eq!(t.lookup("pdf"), "application/pdf");
        assert_eq!(t.lookup("txt"), "text/plain; charset=utf-8");
    }

    #[test]
    fn case_insensitive_and_leading_dot() {
        let t = MimeTypes::new();
        assert_eq!(t.lookup("HTML"), "text/html; charset=utf-8");
        assert_eq!(t.lookup("Png"), "image/png");
        assert_eq!(t.lookup(".png"), "image/png");
        assert_eq!(t.get("PnG"), Some("image/png"));
    }

    #[test]
    fn fallback() {
        let t = MimeTypes::new();
        assert_eq!(t.lookup("nope"), OCTET_STREAM);
        assert_eq!(t.lookup(""), OCTET_STREAM);
        assert_eq!(t.lookup("ÄÖÜ"), OCTET_STREAM);
        assert_eq!(t.get("nope"), None);
        assert_eq!(t.for_path(Path::new("Makefile")), OCTET_STREAM);
        assert_eq!(t.for_path(Path::new(".bashrc")), OCTET_STREAM);
        assert_eq!(t.for_path(Path::new("a/b.tar.GZ")), "application/gzip");
        assert_eq!(t.for_path(Path::new("x.")), OCTET_STREAM);
    }

    #[test]
    fn insert_remove_default() {
        let mut t = MimeTypes::new();
        let n = t.len();
        assert_eq!(t.insert(".Foo", "application/x-foo").unwrap(), None);
        assert_eq!(t.len(), n + 1);
        assert_eq!(t.lookup("FOO"), "application/x-foo");
        assert_eq!(
            t.insert("json", "application/json; charset=utf-8").unwrap(),
            Some("application/json".to_owned())
        );
        assert_eq!(t.lookup("json"), "application/json; charset=utf-8");
        assert_eq!(t.remove("PNG"), Some("image/png".to_owned()));
        assert_eq!(t.remove("png"), None);
        assert_eq!(t.lookup("png"), OCTET_STREAM);
        t.set_default("text/plain").unwrap();
        assert_eq!(t.lookup("png"), "text/plain");
        assert_eq!(t.default_type(), "text/plain");
        // Still sorted after edits.
        for w in t.entries.windows(2) {
            assert!(w[0].0 < w[1].0);
        }
    }

    #[test]
    fn rejects_bad_values() {
        let mut t = MimeTypes::empty();
        assert!(t.is_empty());
        assert!(t.insert("", "a/b").is_err());
        assert!(t.insert(".", "a/b").is_err());
        assert!(t.insert("tar.gz", "a/b").is_err());
        assert!(t.insert("a/b", "a/b").is_err());
        assert!(t.insert("x", "text/html\r\nX-Evil: 1").is_err());
        assert!(t.insert("x", "").is_err());
        assert!(t.insert("x", "tëxt/plain").is_err());
        assert!(t.set_default("a\nb").is_err());
        assert_eq!(t.default_type(), OCTET_STREAM);
        assert!(t.is_empty());
    }
}
