//! Static files: safe path resolution under a root directory, validators
//! (`ETag`, `Last-Modified`), conditional requests, byte ranges (one, or
//! several as `multipart/byteranges`) and streaming body readers.
//!
//! # How the server uses this module
//!
//! [`Server::serve_files`](crate::Server::serve_files) does all of this; the
//! pieces are public for handlers that serve files themselves.
//!
//! 1. A [`StaticRoot`] is built once (it canonicalizes the root directory).
//! 2. For each `GET`/`HEAD` no route matched, the decoded request path
//!    ([`decode_path`](crate::url::decode_path)) is split with
//!    [`segments_of`] and [`StaticRoot::resolve_entry`] finds the file or
//!    directory. A [`FileError`] becomes its [`status`](FileError::status);
//!    [`FileError::Redirect`] a `301` to the given `Location`.
//! 3. The [`ResolvedFile`] becomes the response (`Response::from`). While
//!    writing it, the server adds `ETag` and `Last-Modified`, applies the
//!    conditional headers ([`evaluate_preconditions`]: `304`, `412`) and
//!    `Range` ([`parse_range`]: `206`, `416`), and sends the chosen span from
//!    a [`FileBody`] (`sendfile` on Linux, [`FileBody::fill`] elsewhere), or
//!    several spans through a [`MultipartRanges`].
//!
//! A handler starting from a raw, undecoded path can use [`path_segments`]
//! and [`StaticRoot::resolve`] instead of step 2; a handler that already has
//! a file path can return [`Response::file`](crate::Response::file), which
//! gets the same validators.
//!
//! Nothing here panics on any input.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::mime::MimeTypes;
use crate::status::StatusCode;

/// Longest single path segment accepted (bytes); longer ones are `404`.
const MAX_SEGMENT_LEN: usize = 255;
/// Longest total relative path accepted (bytes); longer ones are `404`.
const MAX_PATH_LEN: usize = 4096;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a request path could not be served as a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// `404 Not Found`: nothing servable there. Also used for hidden
    /// (dot) files under [`HiddenFiles::Deny`], for a directory without an
    /// index file, for a file requested with a trailing `/`, and for
    /// over-long or non-UTF-8 paths and paths that cannot be resolved
    /// (dangling symlinks, symlink loops), so as not to reveal what exists.
    #[error("not found")]
    NotFound,
    /// `403 Forbidden`: the path is not acceptable — a segment is `.` or
    /// `..`, is empty before the last one, contains `/`, `\` or NUL, looks
    /// like a drive or absolute prefix (`C:`); the resolved file lies outside
    /// the root (e.g. through a symlink); it is not a regular file (device,
    /// FIFO, socket); or the OS denied access.
    #[error("forbidden")]
    Forbidden,
    /// `301 Moved Permanently`: the path names a directory but did not end
    /// with `/`. The value is a *relative* `Location` (the last segment,
    /// percent-encoded, plus `/`, e.g. `docs/` for `/static/docs`), which
    /// resolves correctly whatever prefix the files are mounted under.
    /// A server that prefers an absolute location can instead append `/` to
    /// the raw request path (keeping the query).
    #[error("redirect to {0}")]
    Redirect(String),
    /// `500 Internal Server Error`: an unexpected I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl FileError {
    /// The HTTP status this error maps to (404, 403, 301 or 500).
    pub fn status(&self) -> StatusCode {
        match self {
            FileError::NotFound => StatusCode::NOT_FOUND,
            FileError::Forbidden => StatusCode::FORBIDDEN,
            FileError::Redirect(_) => StatusCode::MOVED_PERMANENTLY,
            FileError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

// ---------------------------------------------------------------------------
// Path resolution
// ---------------------------------------------------------------------------

/// What to do with path segments that start with `.` (dotfiles such as
/// `.env`, `.git/`, `.htpasswd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HiddenFiles {
    /// Refuse them with [`FileError::NotFound`] (the default). This applies
    /// to every segment of the URL path and to every component of the
    /// resolved (symlink-free) path below the root, so a symlink cannot
    /// expose a dotfile either. Note that this also hides `/.well-known/`.
    #[default]
    Deny,
    /// Serve them like any other file.
    Allow,
}

/// A directory that files are served from, with its serving policy.
///
/// The root is canonicalized once, at construction. A path without symlinks
/// is opened in one step that refuses any symlink on the way (Linux:
/// `openat2` with `RESOLVE_NO_SYMLINKS`), so it is exactly the file below the
/// root; any other path (and every path on other platforms) is
/// canonicalized and must lie below the root.
///
/// Symlinks: a symlink inside the root is followed as long as its final
/// target is also inside the root; one whose target is outside is refused
/// with [`FileError::Forbidden`].
///
/// Limitation: for paths through symlinks the check is done on canonical
/// paths and the canonical path is then opened, so an attacker who can
/// rename or replace directories inside the root *concurrently* could race
/// it. Do not serve directories that untrusted parties can write to.
#[derive(Debug, Clone)]
pub struct StaticRoot {
    root: PathBuf,
    listing: bool,
    hidden: HiddenFiles,
    index: Option<String>,
    mime: MimeTypes,
}

impl StaticRoot {
    /// Canonicalizes `root`, which must be an existing directory, with the
    /// default policy: dotfiles denied, index file `index.html`, built-in
    /// MIME table.
    pub fn new(root: impl AsRef<Path>) -> io::Result<StaticRoot> {
        let root = fs::canonicalize(root.as_ref())?;
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "static root is not a directory",
            ));
        }
        Ok(StaticRoot {
            root,
            listing: false,
            hidden: HiddenFiles::Deny,
            index: Some("index.html".to_owned()),
            mime: MimeTypes::new(),
        })
    }

    /// Sets the dotfile policy (default [`HiddenFiles::Deny`]).
    pub fn with_hidden_files(mut self, policy: HiddenFiles) -> Self {
        self.hidden = policy;
        self
    }

    /// Sets the file served for a directory URL ending in `/` (default
    /// `index.html`); `None` makes such URLs `404` (no directory listings
    /// are ever generated).
    pub fn with_index_file(mut self, name: Option<&str>) -> Self {
        self.index = name.map(str::to_owned);
        self
    }

    /// Replaces the MIME table.
    pub fn with_mime_types(mut self, mime: MimeTypes) -> Self {
        self.mime = mime;
        self
    }

    /// The MIME table, for changes in place.
    pub fn mime_types_mut(&mut self) -> &mut MimeTypes {
        &mut self.mime
    }

    /// The MIME table.
    pub fn mime_types(&self) -> &MimeTypes {
        &self.mime
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The dotfile policy.
    pub fn hidden_files(&self) -> HiddenFiles {
        self.hidden
    }

    /// Resolves and opens the file for a request path.
    ///
    /// `segments` are the path's segments after its leading `/`, already
    /// percent-decoded: `/a/b.txt` → `["a", "b.txt"]`, `/a/` → `["a", ""]`,
    /// `/` → `[""]` or `[]`. A trailing empty segment means the path ended
    /// with `/`; an empty segment anywhere else (`/a//b`, or a leading one
    /// because the caller did not strip the first `/`) is refused.
    ///
    /// Outcomes:
    /// - a regular file, no trailing `/` → `Ok`;
    /// - a regular file with a trailing `/` → [`FileError::NotFound`];
    /// - a directory with a trailing `/` → its index file (see
    ///   [`with_index_file`](Self::with_index_file)), else `NotFound`;
    /// - a directory without a trailing `/` → [`FileError::Redirect`]
    ///   (301, like nginx and Apache);
    /// - refusals as documented on [`FileError`] and [`HiddenFiles`].
    pub fn resolve<S: AsRef<str>>(&self, segments: &[S]) -> Result<ResolvedFile, FileError> {
        match self.resolve_entry(segments)? {
            Resolved::File(f) => Ok(f),
            Resolved::Directory(_) => Err(FileError::NotFound),
        }
    }

    /// Like [`resolve`](Self::resolve), but a directory asked for with a
    /// trailing `/` that has no index file is returned as
    /// [`Resolved::Directory`] (its canonical path, checked to be inside the
    /// root) so the caller can list it.
    pub fn resolve_entry<S: AsRef<str>>(&self, segments: &[S]) -> Result<Resolved, FileError> {
        let (names, trailing_slash) = match segments.split_last() {
            None => (segments, true),
            Some((last, rest)) if last.as_ref().is_empty() => (rest, true),
            Some(_) => (segments, false),
        };

        let mut total = 0usize;
        for seg in names {
            let seg = seg.as_ref();
            check_segment(seg)?;
            if self.hidden == HiddenFiles::Deny && seg.starts_with('.') {
                return Err(FileError::NotFound);
            }
            if seg.len() > MAX_SEGMENT_LEN {
                return Err(FileError::NotFound);
            }
            total = total.saturating_add(seg.len() + 1);
            if total > MAX_PATH_LEN {
                return Err(FileError::NotFound);
            }
        }

        // One allocation for the whole path (it becomes `ResolvedFile::path`).
        let mut candidate = PathBuf::with_capacity(self.root.as_os_str().len() + total + 1);
        candidate.push(&self.root);
        for seg in names {
            candidate.push(seg.as_ref());
        }
        #[cfg(target_os = "linux")]
        if !trailing_slash {
            match self.open_plain(candidate) {
                Ok(found) => return found.map(Resolved::File),
                Err(path) => candidate = path,
            }
        }
        self.resolve_general(names, trailing_slash, &candidate)
    }

    /// Resolution through canonical paths: handles symlinks (followed while
    /// their target stays inside the root and is not hidden), directories
    /// (index file, redirect, listing) and platforms without `openat2`.
    fn resolve_general<S: AsRef<str>>(
        &self,
        names: &[S],
        trailing_slash: bool,
        candidate: &Path,
    ) -> Result<Resolved, FileError> {
        let (canonical, meta) = self.canonical_inside(candidate)?;

        if meta.is_dir() {
            if !trailing_slash {
                // `names` is non-empty here: an empty list means the root,
                // which always counts as ending with `/`.
                let last = names.last().map(|s| s.as_ref()).unwrap_or("");
                let mut loc: String = utf8_percent_encode(last, SEGMENT_ENCODE).collect();
                loc.push('/');
                return Err(FileError::Redirect(loc));
            }
            let Some(index) = self.index.as_deref() else {
                return Ok(Resolved::Directory(canonical));
            };
            return match self.canonical_inside(&canonical.join(index)) {
                Ok((index_path, meta)) if meta.is_file() => {
                    self.open(index_path).map(Resolved::File)
                }
                Ok(_) | Err(FileError::NotFound) => Ok(Resolved::Directory(canonical)),
                Err(e) => Err(e),
            };
        }
        if trailing_slash {
            return Err(FileError::NotFound);
        }
        if !meta.is_file() {
            return Err(FileError::Forbidden);
        }
        self.open(canonical).map(Resolved::File)
    }

    /// Whether directories without an index file are listed (see
    /// [`with_listing`](Self::with_listing)).
    pub fn listing(&self) -> bool {
        self.listing
    }

    /// Lists directories that have no index file (off by default). Hidden
    /// entries follow the [`HiddenFiles`] policy.
    pub fn with_listing(mut self, on: bool) -> Self {
        self.listing = on;
        self
    }

    /// An HTML page listing `dir` (from [`Resolved::Directory`]) for the URL
    /// path `url_path`, sorted by `sort` (`name`, `size` or `date`; a leading
    /// `-` reverses). Names are escaped and links percent-encoded.
    pub fn directory_listing(&self, dir: &Path, url_path: &str, sort: &str) -> io::Result<String> {
        struct Entry {
            name: String,
            is_dir: bool,
            len: u64,
            modified: SystemTime,
        }
        let mut entries = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if self.hidden == HiddenFiles::Deny && name.starts_with('.') {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            entries.push(Entry {
                name,
                is_dir: meta.is_dir(),
                len: meta.len(),
                modified: meta.modified().unwrap_or(UNIX_EPOCH),
            });
        }
        let (key, reverse) = match sort.strip_prefix('-') {
            Some(k) => (k, true),
            None => (sort, false),
        };
        entries.sort_by(|a, b| {
            let o = match key {
                "size" => a.len.cmp(&b.len),
                "date" => a.modified.cmp(&b.modified),
                _ => b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)),
            };
            if reverse {
                o.reverse()
            } else {
                o
            }
        });
        let esc = |s: &str| crate::escape::html_escape(s).into_owned();
        let title = esc(url_path);
        let mut html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title>\n\
             <style>body{{font-family:system-ui,sans-serif;margin:2em}}td,th{{padding:.2em 1em;text-align:left}}\
             td.n{{text-align:right}}</style></head>\n<body><h1>Index of {title}</h1>\n<table>\n\
             <tr><th><a href=\"?sort={n}\">Name</a></th><th><a href=\"?sort={s}\">Size</a></th>\
             <th><a href=\"?sort={d}\">Modified</a></th></tr>\n",
            n = if sort == "name" { "-name" } else { "name" },
            s = if sort == "size" { "-size" } else { "size" },
            d = if sort == "date" { "-date" } else { "date" },
        );
        if url_path != "/" {
            html.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
        }
        for e in &entries {
            let slash = if e.is_dir { "/" } else { "" };
            let href: String = utf8_percent_encode(&e.name, SEGMENT_ENCODE).collect();
            let size = if e.is_dir {
                String::from("-")
            } else {
                e.len.to_string()
            };
            html.push_str(&format!(
                "<tr><td><a href=\"{href}{slash}\">{}{slash}</a></td><td class=\"n\">{size}</td><td>{}</td></tr>\n",
                esc(&e.name),
                http_date(e.modified)
            ));
        }
        html.push_str("</table></body></html>\n");
        Ok(html)
    }

    /// Canonicalizes `path` and checks it is inside the root and, under
    /// [`HiddenFiles::Deny`], has no dot component below the root.
    fn canonical_inside(&self, path: &Path) -> Result<(PathBuf, fs::Metadata), FileError> {
        // Any failure to resolve (missing, ENOTDIR, ELOOP, ENAMETOOLONG, …)
        // is a 404, except a permission problem.
        let canonical = fs::canonicalize(path).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => FileError::Forbidden,
            _ => FileError::NotFound,
        })?;
        let rel = canonical
            .strip_prefix(&self.root)
            .map_err(|_| FileError::Forbidden)?;
        if self.hidden == HiddenFiles::Deny {
            for c in rel.components() {
                match c {
                    Component::Normal(name) => {
                        if name.as_encoded_bytes().first() == Some(&b'.') {
                            return Err(FileError::NotFound);
                        }
                    }
                    _ => return Err(FileError::Forbidden),
                }
            }
        }
        let meta = fs::metadata(&canonical).map_err(map_io)?;
        Ok((canonical, meta))
    }

    /// The fast path (Linux): one `openat2` of `root/segments` that refuses
    /// any symlink on the way (`RESOLVE_NO_SYMLINKS`), then one `fstat`. The
    /// root is canonical and every segment was checked to be one plain name,
    /// so a successful open is exactly that file below the root, and the
    /// dotfile check on the segments covered every component. `Err(path)`
    /// hands `path` back and leaves the decision to the general resolver: a
    /// symlink on the way (`ELOOP`), a directory (index file or redirect), or
    /// a kernel without `openat2`.
    /// Like nginx, this opens before it knows the file type (non-blocking,
    /// so a FIFO cannot stall the loop); anything but a regular file is then
    /// refused.
    #[cfg(target_os = "linux")]
    fn open_plain(&self, path: PathBuf) -> Result<Result<ResolvedFile, FileError>, PathBuf> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        use rustix::io::Errno;
        let opened = rustix::fs::openat2(
            rustix::fs::CWD,
            path.as_path(),
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        );
        match opened {
            Ok(fd) => {
                let file = File::from(fd);
                let meta = match file.metadata() {
                    Ok(meta) => meta,
                    Err(e) => return Ok(Err(map_io(e))),
                };
                if meta.is_dir() {
                    return Err(path);
                }
                Ok(self.resolved(file, &meta, path))
            }
            Err(Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG) => Ok(Err(FileError::NotFound)),
            Err(Errno::ACCESS) => Ok(Err(FileError::Forbidden)),
            Err(_) => Err(path),
        }
    }

    fn open(&self, path: PathBuf) -> Result<ResolvedFile, FileError> {
        let file = open_nonblocking(&path).map_err(map_io)?;
        // Check the opened handle itself: the path may have changed since.
        let meta = file.metadata().map_err(map_io)?;
        self.resolved(file, &meta, path)
    }

    fn resolved(
        &self,
        file: File,
        meta: &fs::Metadata,
        path: PathBuf,
    ) -> Result<ResolvedFile, FileError> {
        if !meta.is_file() {
            return Err(FileError::Forbidden);
        }
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        let mime = self.mime.for_path(&path).to_owned();
        Ok(ResolvedFile {
            file,
            len: meta.len(),
            modified,
            path,
            mime,
        })
    }
}

/// Opens read-only. On Linux, with `O_NONBLOCK` so that a FIFO swapped in
/// after the metadata check cannot block the poll loop (the flag has no
/// effect on regular files).
fn open_nonblocking(path: &Path) -> io::Result<File> {
    let mut opts = fs::OpenOptions::new();
    opts.read(true);
    #[cfg(all(
        target_os = "linux",
        any(
            target_arch = "x86_64",
            target_arch = "x86",
            target_arch = "aarch64",
            target_arch = "arm",
            target_arch = "riscv64"
        )
    ))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        const O_NONBLOCK: i32 = 0o4000;
        opts.custom_flags(O_NONBLOCK);
    }
    opts.open(path)
}

fn map_io(e: io::Error) -> FileError {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidInput => {
            FileError::NotFound
        }
        io::ErrorKind::PermissionDenied => FileError::Forbidden,
        _ => FileError::Io(e),
    }
}

/// Refuses segments that could change which directory is addressed.
fn check_segment(seg: &str) -> Result<(), FileError> {
    if seg.is_empty() || seg == "." || seg == ".." {
        return Err(FileError::Forbidden);
    }
    if seg.contains(['/', '\\', '\0']) {
        return Err(FileError::Forbidden);
    }
    // Drive prefix (`C:`), refused on every platform for consistency.
    let b = seg.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err(FileError::Forbidden);
    }
    // Windows: alternate data streams (`file::$DATA`) and other `:` forms.
    if cfg!(windows) && seg.contains(':') {
        return Err(FileError::Forbidden);
    }
    // Whatever the platform's path rules are, the segment must be exactly
    // one normal component.
    let mut comps = Path::new(seg).components();
    match (comps.next(), comps.next()) {
        (Some(Component::Normal(n)), None) if n == seg => Ok(()),
        _ => Err(FileError::Forbidden),
    }
}

/// Characters percent-encoded in a path segment we emit: everything but the
/// RFC 3986 unreserved set, so a segment like `a:b` cannot look like a scheme.
const SEGMENT_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Splits a raw request path (`/a/b%20c/`) into percent-decoded segments
/// suitable for [`StaticRoot::resolve`] (`["a", "b c", ""]`), using
/// [`url::decode_path`](crate::url::decode_path).
///
/// Anything from the first `?` or `#` on is dropped. A path that does not
/// start with `/` or does not decode to UTF-8 is [`FileError::NotFound`].
/// Decoded segments are *not* checked here: `%2F`, `%00` or `..` are left for
/// `resolve` to refuse.
pub fn path_segments(raw_path: &str) -> Result<Vec<String>, FileError> {
    let (path, _) = crate::url::split_target(raw_path);
    let decoded = crate::url::decode_path(path).map_err(|_| FileError::NotFound)?;
    Ok(segments_of(&decoded)
        .into_iter()
        .map(str::to_owned)
        .collect())
}

/// The segments [`StaticRoot::resolve`] expects for a decoded path: a
/// trailing slash (or the root itself) becomes a final empty segment.
pub fn segments_of(decoded: &crate::url::DecodedPath) -> Vec<&str> {
    let mut segs: Vec<&str> = decoded.segments().iter().map(String::as_str).collect();
    if decoded.trailing_slash() || segs.is_empty() {
        segs.push("");
    }
    segs
}

/// What [`StaticRoot::resolve_entry`] found.
#[derive(Debug)]
pub enum Resolved {
    /// A regular file (possibly a directory's index file), opened.
    File(ResolvedFile),
    /// A directory without an index file, by canonical path.
    Directory(PathBuf),
}

/// A file found by [`StaticRoot::resolve`], opened for reading.
#[derive(Debug)]
pub struct ResolvedFile {
    /// The open file (read-only, positioned at 0; bodies read it at offsets).
    pub file: File,
    /// Its length in bytes, from the open handle.
    pub len: u64,
    /// Its modification time (`UNIX_EPOCH` where the platform has none).
    pub modified: SystemTime,
    /// Its canonical path.
    pub path: PathBuf,
    /// Its `Content-Type`, from the root's MIME table.
    pub mime: String,
}

impl ResolvedFile {
    /// The `ETag` value for this file: [`etag`]`(len, modified)`.
    pub fn etag(&self) -> String {
        etag(self.len, self.modified)
    }

    /// The `Last-Modified` value: [`http_date`]`(modified)`.
    pub fn last_modified(&self) -> String {
        http_date(self.modified)
    }

    /// A body reader for the whole file or for the range in `decision`
    /// (an `Unsatisfiable` decision gives an empty body). Several ranges
    /// are not one span: a `Multiple` decision is an `InvalidInput` error
    /// (build a [`MultipartRanges`] from the file instead).
    pub fn into_body(self, decision: &RangeDecision) -> io::Result<FileBody> {
        match *decision {
            RangeDecision::Full => FileBody::new(self.file, 0, self.len),
            RangeDecision::Partial {
                start,
                end_inclusive,
            } => FileBody::new(
                self.file,
                start,
                end_inclusive.saturating_sub(start).saturating_add(1),
            ),
            RangeDecision::Unsatisfiable => FileBody::new(self.file, 0, 0),
            RangeDecision::Multiple(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "several ranges are sent as a MultipartRanges body",
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// Validators
// ---------------------------------------------------------------------------

/// The `ETag` for a file of `len` bytes modified at `mtime`:
/// `"<len in hex>-<mtime in nanoseconds since the epoch, hex>"`, quoted,
/// e.g. `"1f4-17a2b3c4d5e6f708"`.
///
/// It is sent as a *strong* validator (no `W/`), as nginx and Apache do, so
/// that `If-Range` works with it. It is a heuristic: a change that keeps
/// both the size and the nanosecond mtime (or the filesystem's coarser
/// mtime granularity) goes unnoticed. Times before the epoch count as 0.
pub fn etag(len: u64, mtime: SystemTime) -> String {
    let mut buf = [0u8; ETAG_MAX];
    etag_in(&mut buf, len, mtime).to_owned()
}

/// Longest [`etag`]: quotes, 16 hex digits of the length, a dash and 32 of
/// the nanoseconds.
pub(crate) const ETAG_MAX: usize = 51;

/// [`etag`] written into `buf`, without allocating (the static-file path
/// builds one per request).
pub(crate) fn etag_in(buf: &mut [u8; ETAG_MAX], len: u64, mtime: SystemTime) -> &str {
    fn hex(out: &mut [u8], at: usize, mut v: u128) -> usize {
        let mut digits = [0u8; 32];
        let mut n = 0;
        loop {
            digits[n] = b"0123456789abcdef"[(v & 0xF) as usize];
            n += 1;
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        for (i, d) in digits[..n].iter().rev().enumerate() {
            out[at + i] = *d;
        }
        at + n
    }
    let nanos = mtime
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    buf[0] = b'"';
    let at = hex(buf, 1, u128::from(len));
    buf[at] = b'-';
    let at = hex(buf, at + 1, nanos);
    buf[at] = b'"';
    // Only ASCII was written.
    std::str::from_utf8(&buf[..at + 1]).unwrap_or_default()
}

/// Latest time an HTTP date can express (9999-12-31T23:59:59Z).
const MAX_HTTP_DATE_SECS: u64 = 253_402_300_799;

/// Formats `t` as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) for
/// `Last-Modified`, clamped to 1970..=9999 (where `httpdate` alone would
/// panic).
pub fn http_date(t: SystemTime) -> String {
    let mut buf = [0u8; 29];
    http_date_in(&mut buf, t).to_owned()
}

/// [`http_date`] written into `buf` (IMF-fixdate is always 29 bytes), without
/// allocating or `core::fmt`.
pub(crate) fn http_date_in(buf: &mut [u8; 29], t: SystemTime) -> &str {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .min(MAX_HTTP_DATE_SECS);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian; the
    // era-based method: 400-year eras of 146,097 days, from 0000-03-01).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let two = |v: u64| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
    buf[0..3].copy_from_slice(WEEKDAYS[(days % 7) as usize]);
    buf[3..5].copy_from_slice(b", ");
    buf[5..7].copy_from_slice(&two(day));
    buf[7] = b' ';
    buf[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    buf[11] = b' ';
    buf[12..14].copy_from_slice(&two(year / 100));
    buf[14..16].copy_from_slice(&two(year % 100));
    buf[16] = b' ';
    buf[17..19].copy_from_slice(&two(rem / 3_600));
    buf[19] = b':';
    buf[20..22].copy_from_slice(&two(rem / 60 % 60));
    buf[22] = b':';
    buf[23..25].copy_from_slice(&two(rem % 60));
    buf[25..29].copy_from_slice(b" GMT");
    std::str::from_utf8(buf).unwrap_or_default()
}

/// Whole seconds since the epoch, rounded down (negative before it).
fn floor_secs(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        Err(e) => {
            let d = e.duration();
            let s = -i128::from(d.as_secs());
            if d.subsec_nanos() > 0 {
                s - 1
            } else {
                s
            }
        }
    }
}

/// Trims HTTP optional whitespace (space, tab) only — not other Unicode
/// whitespace such as NBSP.
fn ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn parse_date_secs(value: &str) -> Option<i128> {
    httpdate::parse_http_date(ows(value)).ok().map(floor_secs)
}

/// One element of an entity-tag list.
#[derive(Debug, PartialEq, Eq)]
struct Tag<'a> {
    weak: bool,
    /// The opaque tag without its quotes.
    opaque: &'a str,
}

/// Splits our own etag (possibly `W/`-prefixed) into weakness and opaque part.
fn own_tag(etag: &str) -> Tag<'_> {
    let t = ows(etag);
    let (weak, rest) = match t.strip_prefix("W/") {
        Some(r) => (true, r),
        None => (false, t),
    };
    let opaque = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(rest);
    Tag { weak, opaque }
}

/// Parses a `#entity-tag` list leniently: quoted tags may contain commas;
/// unquoted tokens (sent by some old clients) are taken up to the next
/// comma. A stray unterminated quote ends the list.
fn tag_list(s: &str) -> Vec<Tag<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        let (weak, r) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if let Some(r) = r.strip_prefix('"') {
            match r.find('"') {
                Some(end) => {
                    out.push(Tag {
                        weak,
                        opaque: &r[..end],
                    });
                    rest = &r[end + 1..];
                }
                None => break,
            }
        } else {
            let end = r.find(',').unwrap_or(r.len());
            let tok = ows(&r[..end]);
            if !tok.is_empty() {
                out.push(Tag { weak, opaque: tok });
            }
            rest = &r[end..];
        }
    }
    out
}

fn is_star(s: &str) -> bool {
    ows(s) == "*"
}

/// Weak comparison (RFC 9110 §8.8.3.2): opaque tags equal, `W/` ignored.
fn matches_weak(list: &str, etag: &str) -> bool {
    let own = own_tag(etag);
    is_star(list) || tag_list(list).iter().any(|t| t.opaque == own.opaque)
}

/// Strong comparison: both tags strong and opaque tags equal.
fn matches_strong(list: &str, etag: &str) -> bool {
    let own = own_tag(etag);
    is_star(list)
        || (!own.weak
            && tag_list(list)
                .iter()
                .any(|t| !t.weak && t.opaque == own.opaque))
}

// ---------------------------------------------------------------------------
// Conditional requests
// ---------------------------------------------------------------------------

/// Result of evaluating the conditional headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Go on and serve the request (then look at `Range`).
    Proceed,
    /// `304 Not Modified`: send no body, but do send `ETag`,
    /// `Last-Modified`, `Cache-Control`, `Vary`… as a 200 would.
    NotModified,
    /// `412 Precondition Failed` (from `If-Match` / `If-Unmodified-Since`,
    /// or `If-None-Match` matching on a method other than GET/HEAD).
    PreconditionFailed,
}

/// The conditional request header values (each the raw field value; if a
/// header appears several times, join the values with `", "`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Preconditions<'a> {
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a str>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a str>,
}

/// Evaluates `If-None-Match` and `If-Modified-Since` (RFC 9110 §13.2.2,
/// steps 3–4). Shorthand for [`evaluate_preconditions`] without `If-Match`
/// and `If-Unmodified-Since`.
///
/// - `If-None-Match` takes precedence: when present, `If-Modified-Since` is
///   ignored. It uses weak comparison (`W/"x"` matches `"x"`), accepts lists
///   and `*` (the file exists, so `*` matches). A match gives `NotModified`
///   for GET/HEAD and `PreconditionFailed` otherwise.
/// - `If-Modified-Since` only applies to GET/HEAD; compared at one-second
///   resolution: `NotModified` if the file's mtime (rounded down to the
///   second) is not after the date. An invalid date is ignored.
pub fn evaluate_conditions(
    method_is_get_or_head: bool,
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    etag: &str,
    mtime: SystemTime,
) -> Condition {
    evaluate_preconditions(
        method_is_get_or_head,
        &Preconditions {
            if_none_match,
            if_modified_since,
            ..Preconditions::default()
        },
        etag,
        mtime,
    )
}

/// Evaluates all four conditional headers in the order of RFC 9110 §13.2.2:
///
/// 1. `If-Match` (strong comparison, `*` matches): no match → `PreconditionFailed`.
/// 2. Else `If-Unmodified-Since` (valid date): mtime after it → `PreconditionFailed`.
/// 3. `If-None-Match` (weak comparison): match → `NotModified` for GET/HEAD,
///    `PreconditionFailed` otherwise.
/// 4. Else, for GET/HEAD, `If-Modified-Since` (valid date): mtime not after
///    it → `NotModified`.
///
/// `If-Range` is not handled here but by [`parse_range`].
pub fn evaluate_preconditions(
    method_is_get_or_head: bool,
    headers: &Preconditions<'_>,
    etag: &str,
    mtime: SystemTime,
) -> Condition {
    let mtime_secs = floor_secs(mtime);
    if let Some(im) = headers.if_match {
        if !matches_strong(im, etag) {
            return Condition::PreconditionFailed;
        }
    } else if let Some(ius) = headers.if_unmodified_since.and_then(parse_date_secs) {
        if mtime_secs > ius {
            return Condition::PreconditionFailed;
        }
    }
    if let Some(inm) = headers.if_none_match {
        if matches_weak(inm, etag) {
            return if method_is_get_or_head {
                Condition::NotModified
            } else {
                Condition::PreconditionFailed
            };
        }
    } else if method_is_get_or_head {
        if let Some(ims) = headers.if_modified_since.and_then(parse_date_secs) {
            if mtime_secs <= ims {
                return Condition::NotModified;
            }
        }
    }
    Condition::Proceed
}

// ---------------------------------------------------------------------------
// Ranges
// ---------------------------------------------------------------------------

/// Most ranges one `Range` header may list (empty list elements aside); a
/// longer list is ignored, and the whole file sent (RFC 9110 §14.2 lets a
/// server ignore ranges: many small ones are a denial-of-service pattern).
pub const MAX_RANGES: usize = 16;

/// One span of a file, both ends inclusive: `start <= end_inclusive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset, inclusive.
    pub end_inclusive: u64,
}

impl ByteRange {
    /// Number of bytes in the span (at least 1).
    pub fn byte_count(&self) -> u64 {
        self.end_inclusive
            .saturating_sub(self.start)
            .saturating_add(1)
    }

    /// Whether the spans overlap or are adjacent (so they can be sent as one).
    fn touches(&self, other: &ByteRange) -> bool {
        self.start <= other.end_inclusive.saturating_add(1)
            && other.start <= self.end_inclusive.saturating_add(1)
    }
}

/// Two to [`MAX_RANGES`] spans of a file of [`complete_len`](Self::complete_len)
/// bytes, as [`parse_range`] chose them: satisfiable, none overlapping or
/// adjacent to another, in the order they were asked for. Fixed-size and
/// `Copy`: deciding on a `Range` allocates nothing.
#[derive(Clone, Copy)]
pub struct ByteRanges {
    /// The first `count` are the spans; the rest mean nothing.
    ranges: [ByteRange; MAX_RANGES],
    count: u8,
    complete_len: u64,
}

impl PartialEq for ByteRanges {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice() && self.complete_len == other.complete_len
    }
}

impl Eq for ByteRanges {}

impl std::fmt::Debug for ByteRanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteRanges")
            .field("ranges", &self.as_slice())
            .field("complete_len", &self.complete_len)
            .finish()
    }
}

impl ByteRanges {
    /// The spans, in the order they are sent.
    pub fn as_slice(&self) -> &[ByteRange] {
        &self.ranges[..usize::from(self.count)]
    }

    /// The length of the whole file (the `/len` of each `Content-Range`).
    pub fn complete_len(&self) -> u64 {
        self.complete_len
    }

    /// Bytes of the file the spans select (the multipart body adds a
    /// header per part: see [`MultipartRanges::content_length`]).
    pub fn byte_count(&self) -> u64 {
        self.as_slice()
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(r.byte_count()))
    }
}

/// What to send in answer to a `Range` header.
// `Multiple` holds its spans inline (about 270 bytes) rather than boxed:
// deciding on a `Range`, once per file request, then allocates nothing and
// the decision stays `Copy`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeDecision {
    /// `200 OK` with the whole file: no `Range`, a `Range` that is ignored
    /// (not `bytes`, syntactically invalid, more than [`MAX_RANGES`]
    /// ranges, or ranges asking for more bytes in all than the file has),
    /// or an `If-Range` that does not match.
    Full,
    /// `206 Partial Content` with
    /// `Content-Range: bytes start-end_inclusive/len`.
    Partial {
        /// First byte offset.
        start: u64,
        /// Last byte offset, inclusive; `start <= end_inclusive < len`.
        end_inclusive: u64,
    },
    /// `206 Partial Content` as `multipart/byteranges`, one part per span,
    /// each with its own `Content-Range` ([`MultipartRanges`] writes it).
    Multiple(ByteRanges),
    /// `416 Range Not Satisfiable` with `Content-Range: bytes */len`.
    Unsatisfiable,
}

impl RangeDecision {
    /// The `Content-Range` value to send for a file of `len` bytes, if any
    /// (`None` for `Full`, and for `Multiple`, whose parts carry their own).
    pub fn content_range(&self, len: u64) -> Option<String> {
        match *self {
            RangeDecision::Full | RangeDecision::Multiple(_) => None,
            RangeDecision::Partial {
                start,
                end_inclusive,
            } => Some(format!("bytes {start}-{end_inclusive}/{len}")),
            RangeDecision::Unsatisfiable => Some(format!("bytes */{len}")),
        }
    }

    /// The HTTP status: 200, 206 or 416.
    pub fn status(&self) -> StatusCode {
        match self {
            RangeDecision::Full => StatusCode::OK,
            RangeDecision::Partial { .. } | RangeDecision::Multiple(_) => {
                StatusCode::PARTIAL_CONTENT
            }
            RangeDecision::Unsatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        }
    }

    /// Number of file bytes sent for a file of `len` bytes: the
    /// `Content-Length` of all but `Multiple`, whose multipart body adds
    /// part headers ([`MultipartRanges::content_length`]); 0 for
    /// `Unsatisfiable` (send no body).
    pub fn body_len(&self, len: u64) -> u64 {
        match *self {
            RangeDecision::Full => len,
            RangeDecision::Partial {
                start,
                end_inclusive,
            } => end_inclusive.saturating_sub(start).saturating_add(1),
            RangeDecision::Multiple(ranges) => ranges.byte_count(),
            RangeDecision::Unsatisfiable => 0,
        }
    }
}

/// Decides how to answer a `Range` header (RFC 9110 §14) for a file of
/// `len` bytes with validators `etag` and `mtime`.
///
/// Evaluate conditional requests first ([`evaluate_conditions`]); this only
/// applies to GET (a server may also apply it to HEAD for the headers).
///
/// - No `Range` → `Full`.
/// - `If-Range` present: an entity-tag must match `etag` by *strong*
///   comparison (a `W/` tag never matches); a date must equal `mtime` at
///   one-second resolution. Otherwise (or if unparsable) → `Full`.
/// - The unit must be `bytes` (case-insensitive) or the header is ignored
///   → `Full`.
/// - Each range is `a-b`, `a-` or `-n`; whitespace around tokens is
///   tolerated; empty list elements are skipped. Anything syntactically
///   invalid (non-digits, `b < a`, `+1`, `bytes=-`) in any range → `Full`,
///   as RFC 9110 says an invalid `Range` is ignored.
/// - A range with `a >= len` (including any range on an empty file, and
///   `-0`) is unsatisfiable and dropped; if every range is → `Unsatisfiable`.
///   `b` is clamped to `len - 1`; a suffix longer than the file selects the
///   whole file (as `206`). Numbers too large for `u64` are treated as
///   infinitely large (so `a` → unsatisfiable, `b` and `n` → clamped).
/// - Against range amplification (RFC 9110 §14.2 allows ignoring ranges):
///   more than [`MAX_RANGES`] ranges, or ranges that together ask for more
///   bytes than the file has (overlaps counted twice), → `Full`. The
///   satisfiable ranges are then coalesced where they overlap or touch
///   (into the earlier one's place; the order is otherwise kept), so no
///   byte is sent twice.
/// - One range left → `Partial`; several → `Multiple`.
pub fn parse_range(
    header: Option<&str>,
    if_range: Option<&str>,
    etag: &str,
    mtime: SystemTime,
    len: u64,
) -> RangeDecision {
    let Some(header) = header else {
        return RangeDecision::Full;
    };
    if let Some(ir) = if_range {
        if !if_range_matches(ir, etag, mtime) {
            return RangeDecision::Full;
        }
    }
    let Some((unit, set)) = header.split_once('=') else {
        return RangeDecision::Full;
    };
    if !ows(unit).eq_ignore_ascii_case("bytes") {
        return RangeDecision::Full;
    }
    let mut ranges = [ByteRange::default(); MAX_RANGES];
    let mut count = 0;
    let mut listed = 0;
    let mut requested = 0u64;
    for spec in set.split(',').map(ows).filter(|s| !s.is_empty()) {
        listed += 1;
        if listed > MAX_RANGES {
            return RangeDecision::Full;
        }
        match parse_range_spec(spec, len) {
            RangeSpec::Invalid => return RangeDecision::Full,
            RangeSpec::Unsatisfiable => {}
            RangeSpec::Satisfiable(range) => {
                requested = requested.saturating_add(range.byte_count());
                ranges[count] = range;
                count += 1;
            }
        }
    }
    if listed == 0 {
        return RangeDecision::Full;
    }
    if count == 0 {
        return RangeDecision::Unsatisfiable;
    }
    if requested > len {
        return RangeDecision::Full;
    }
    let count = coalesce(&mut ranges[..count]);
    if count == 1 {
        return RangeDecision::Partial {
            start: ranges[0].start,
            end_inclusive: ranges[0].end_inclusive,
        };
    }
    RangeDecision::Multiple(ByteRanges {
        ranges,
        // `count <= MAX_RANGES`, which fits.
        count: count as u8,
        complete_len: len,
    })
}

/// One element of a `Range` list, resolved against the file's length.
enum RangeSpec {
    Invalid,
    Unsatisfiable,
    Satisfiable(ByteRange),
}

fn parse_range_spec(spec: &str, len: u64) -> RangeSpec {
    let Some((first, last)) = spec.split_once('-') else {
        return RangeSpec::Invalid;
    };
    let (first, last) = (ows(first), ows(last));
    if first.is_empty() {
        // Suffix range: the last `n` bytes.
        let Some(n) = parse_num(last) else {
            return RangeSpec::Invalid;
        };
        if n == 0 || len == 0 {
            return RangeSpec::Unsatisfiable;
        }
        return RangeSpec::Satisfiable(ByteRange {
            start: len - n.min(len),
            end_inclusive: len - 1,
        });
    }
    let Some(start) = parse_num(first) else {
        return RangeSpec::Invalid;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match parse_num(last) {
            Some(end) if end >= start => end,
            _ => return RangeSpec::Invalid,
        }
    };
    if start >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Satisfiable(ByteRange {
        start,
        end_inclusive: end.min(len - 1),
    })
}

/// Merges ranges that overlap or touch, each into the earlier one's place,
/// keeping the order otherwise; returns how many are left (at the front).
fn coalesce(ranges: &mut [ByteRange]) -> usize {
    let mut count = ranges.len();
    // At most MAX_RANGES passes over at most MAX_RANGES ranges.
    let mut merged = true;
    while merged {
        merged = false;
        let mut i = 0;
        while i < count {
            let mut j = i + 1;
            while j < count {
                if ranges[i].touches(&ranges[j]) {
                    ranges[i] = ByteRange {
                        start: ranges[i].start.min(ranges[j].start),
                        end_inclusive: ranges[i].end_inclusive.max(ranges[j].end_inclusive),
                    };
                    ranges.copy_within(j + 1..count, j);
                    count -= 1;
                    merged = true;
                } else {
                    j += 1;
                }
            }
            i += 1;
        }
    }
    count
}

/// Parses ASCII digits; saturates at `u64::MAX` on overflow. `None` if empty
/// or anything but digits.
fn parse_num(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

fn if_range_matches(if_range: &str, etag: &str, mtime: SystemTime) -> bool {
    let v = ows(if_range);
    if v.starts_with('"') || v.starts_with("W/") {
        let own = own_tag(etag);
        let tags = tag_list(v);
        matches!(tags.as_slice(), [t] if !t.weak && !own.weak && t.opaque == own.opaque)
    } else {
        parse_date_secs(v) == Some(floor_secs(mtime))
    }
}

// ---------------------------------------------------------------------------
// Streaming body
// ---------------------------------------------------------------------------

/// Most bytes [`FileBody::fill`] appends in one call.
const MAX_FILL: usize = 8 << 20;

/// Streams a byte span of a file in chunks, without reading it whole.
///
/// Reads are positional (`pread`, `sendfile` with an offset): the file's own
/// position is neither used nor moved, so no seek is needed per response.
#[derive(Debug)]
pub struct FileBody {
    file: File,
    pos: u64,
    remaining: u64,
}

impl FileBody {
    /// A body of the `len` bytes of `file` starting at offset `start`.
    pub fn new(file: File, start: u64, len: u64) -> io::Result<FileBody> {
        Ok(FileBody {
            file,
            pos: start,
            remaining: len,
        })
    }

    /// Reads at the body's offset into `buf`, advancing the span.
    fn read_span(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = read_at(&mut self.file, buf, self.pos)?;
        self.pos += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }

    /// Bytes still to be sent.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Whether everything has been read.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Appends up to `max` bytes (and no more than [`remaining`](Self::remaining),
    /// nor more than 8 MiB per call, so a careless `max` cannot force a huge
    /// allocation)
    /// to `out`, returning how many were appended. `Ok(0)` means done (or
    /// `max == 0`).
    ///
    /// If the file turns out shorter than promised (truncated while being
    /// served) this returns `Err(UnexpectedEof)` once the available bytes
    /// are exhausted: the response's `Content-Length` can then not be met,
    /// so the server must close the connection. After a read error that
    /// follows some successful reads, those bytes are returned first and
    /// the error is reported on the next call.
    pub fn fill(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let max = max.min(MAX_FILL);
        let want = usize::try_from(self.remaining.min(max as u64)).unwrap_or(max);
        if want == 0 {
            return Ok(0);
        }
        let old = out.len();
        out.resize(old + want, 0);
        let mut filled = 0;
        let mut result = Ok(());
        while filled < want {
            let at = self.pos + filled as u64;
            match read_at(&mut self.file, &mut out[old + filled..old + want], at) {
                Ok(0) => {
                    result = Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shorter than its announced length",
                    ));
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        out.truncate(old + filled);
        self.pos += filled as u64;
        self.remaining -= filled as u64;
        match result {
            Err(e) if filled == 0 => Err(e),
            _ => Ok(filled),
        }
    }
}

impl FileBody {
    /// Sends up to `max` bytes of the span straight from the file to
    /// `socket` with `sendfile(2)` (no copy through user memory), returning
    /// how many were sent. `WouldBlock` when the socket is full; an error
    /// if the file turns out shorter than announced.
    #[cfg(target_os = "linux")]
    pub fn send_to(&mut self, socket: impl std::os::fd::AsFd, max: usize) -> io::Result<usize> {
        let want = usize::try_from(self.remaining.min(max as u64)).unwrap_or(max);
        if want == 0 {
            return Ok(0);
        }
        // With an offset: the kernel advances `pos`, not the file position.
        let n = rustix::fs::sendfile(socket, &self.file, Some(&mut self.pos), want)
            .map_err(io::Error::from)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than its announced length",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

impl Read for FileBody {
    /// Reads at most [`remaining`](FileBody::remaining) bytes.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.remaining.min(buf.len() as u64)).unwrap_or(buf.len());
        if want == 0 {
            return Ok(0);
        }
        self.read_span(&mut buf[..want])
    }
}

/// A `multipart/byteranges` body (RFC 9110 §14.6): one part per span of a
/// [`ByteRanges`], each with its `Content-Type` and `Content-Range`, read
/// from the file piece by piece as the client takes it (never whole).
///
/// The server sends one for a `Range` that [`parse_range`] answers with
/// [`RangeDecision::Multiple`]; a handler serving a file itself can too:
///
/// ```
/// use std::io::Write;
/// use pollserve::files::{parse_range, MultipartRanges, RangeDecision};
///
/// let mut file = tempfile::tempfile()?;
/// file.write_all(b"0123456789abcdefghijklmnopqrstuvwxyz")?;
/// let mtime = std::time::SystemTime::UNIX_EPOCH;
/// let RangeDecision::Multiple(ranges) = parse_range(Some("bytes=0-3,-4"), None, "\"t\"", mtime, 36)
/// else { unreachable!() };
/// let mut body = MultipartRanges::new(file, ranges, Some("text/plain"))?;
/// let content_type = body.content_type(); // multipart/byteranges; boundary=…
/// let mut out = Vec::new();
/// while !body.is_done() {
///     body.fill(&mut out, 16 * 1024)?;
/// }
/// assert_eq!(out.len() as u64, body.content_length());
/// let b = body.boundary();
/// let expected = format!(
///     "--{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-3/36\r\n\r\n0123\r\n\
///      --{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 32-35/36\r\n\r\nwxyz\r\n\
///      --{b}--\r\n"
/// );
/// assert_eq!(String::from_utf8(out).unwrap(), expected);
/// assert!(content_type.ends_with(b));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct MultipartRanges {
    /// Re-aimed at each part's span in turn.
    body: FileBody,
    ranges: ByteRanges,
    boundary: String,
    part_type: Option<String>,
    /// The part whose head is written next.
    next: usize,
    /// `body` holds the rest of the current part's bytes.
    in_part: bool,
    done: bool,
    content_length: u64,
}

impl MultipartRanges {
    /// A body of the spans `ranges` of `file`; each part is labelled with
    /// `part_type` (the file's own `Content-Type`), if given. A fresh random
    /// boundary is chosen. `InvalidInput` if `part_type` is not a valid header
    /// value (a line break would forge part headers).
    pub fn new(file: File, ranges: ByteRanges, part_type: Option<&str>) -> io::Result<Self> {
        if part_type.is_some_and(|t| !crate::headers::is_valid_value(t)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "part content type is not a valid header value",
            ));
        }
        let mut body = MultipartRanges {
            body: FileBody::new(file, 0, 0)?,
            ranges,
            boundary: random_boundary(),
            part_type: part_type.map(str::to_owned),
            next: 0,
            in_part: false,
            done: false,
            content_length: 0,
        };
        let mut head = Vec::with_capacity(128);
        let mut total = 0u64;
        for (i, range) in ranges.as_slice().iter().enumerate() {
            head.clear();
            body.write_part_head(i, &mut head);
            total = total
                .saturating_add(head.len() as u64)
                .saturating_add(range.byte_count())
                .saturating_add(2);
        }
        body.content_length = total.saturating_add(body.boundary.len() as u64 + 6);
        Ok(body)
    }

    /// The response's `Content-Type`: `multipart/byteranges; boundary=…`.
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// The boundary between parts.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The exact length of the whole body (`Content-Length`).
    pub fn content_length(&self) -> u64 {
        self.content_length
    }

    /// Whether everything has been written.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Appends about `max` more bytes of the body to `out` (a part's head
    /// or the closing boundary may go a little over), returning how many.
    /// Errors are [`FileBody::fill`]'s: a file shorter than it was when the
    /// ranges were chosen cannot fill the announced length, and the
    /// connection must close.
    pub fn fill(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let start = out.len();
        while out.len() - start < max && !self.done {
            match self.span() {
                Some(body) => {
                    body.fill(out, max - (out.len() - start))?;
                }
                None => self.advance(out),
            }
        }
        Ok(out.len() - start)
    }

    /// The rest of the current part's file bytes, while there are any: for
    /// a writer that sends them straight from the file (`sendfile`).
    pub(crate) fn span(&mut self) -> Option<&mut FileBody> {
        (self.in_part && !self.body.is_done()).then_some(&mut self.body)
    }

    /// With no file bytes left in the current part ([`span`](Self::span)
    /// is `None`): appends what comes next to `out` — the end of the part
    /// and the next part's head, or the closing boundary (then the body is
    /// done).
    pub(crate) fn advance(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if self.in_part {
            out.extend_from_slice(b"\r\n");
            self.in_part = false;
        }
        if let Some(range) = self.ranges.as_slice().get(self.next).copied() {
            self.write_part_head(self.next, out);
            self.body.pos = range.start;
            self.body.remaining = range.byte_count();
            self.next += 1;
            self.in_part = true;
        } else {
            out.extend_from_slice(b"--");
            out.extend_from_slice(self.boundary.as_bytes());
            out.extend_from_slice(b"--\r\n");
            self.done = true;
        }
    }

    /// The boundary line and headers of part `i`.
    fn write_part_head(&self, i: usize, out: &mut Vec<u8>) {
        use crate::proto::http::push_decimal;
        let range = self.ranges.as_slice()[i];
        out.extend_from_slice(b"--");
        out.extend_from_slice(self.boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(t) = &self.part_type {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Content-Range: bytes ");
        push_decimal(out, range.start);
        out.push(b'-');
        push_decimal(out, range.end_inclusive);
        out.push(b'/');
        push_decimal(out, self.ranges.complete_len());
        out.extend_from_slice(b"\r\n\r\n");
    }
}

/// A boundary unlikely to occur in any file: 64 random bits (the standard
/// library's per-instance random hash keys), with a counter and the clock
/// mixed in.
fn random_boundary() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    format!("pollserve-{:016x}", h.finish())
}

/// Reads at `offset` without using the file position where the platform can.
fn read_at(file: &mut File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }
    #[cfg(not(any(unix, windows)))]
    {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(offset))?;
        file.read(buf)
    }
}

// ---------------------------------------------------------------------------
// Content-Disposition
// ---------------------------------------------------------------------------

/// RFC 8187 `attr-char`s are left as they are; everything else is encoded.
const ATTR_CHAR_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// A `Content-Disposition` value that makes the browser download the
/// response under `filename` (RFC 6266, RFC 8187):
/// `attachment; filename="fallback"; filename*=UTF-8''percent-encoded`.
///
/// The quoted ASCII fallback replaces non-ASCII characters, control
/// characters, `"`, `\`, `/` and `%` with `_` (old browsers percent-decode
/// it). Only the last path component of `filename` is used in either form
/// (after `/` or `\`); an empty name becomes `download`.
pub fn attachment_header(filename: &str) -> String {
    let name = filename.rsplit(['/', '\\']).next().unwrap_or("");
    let name = if name.is_empty() { "download" } else { name };
    let mut out = String::with_capacity(name.len() * 4 + 40);
    out.push_str("attachment; filename=\"");
    for c in name.chars() {
        let keep = c.is_ascii() && !c.is_ascii_control() && !matches!(c, '"' | '\\' | '/' | '%');
        out.push(if keep { c } else { '_' });
    }
    out.push_str("\"; filename*=UTF-8''");
    out.extend(utf8_percent_encode(name, ATTR_CHAR_ENCODE));
    out
}

/// `?` on a [`FileError`] in a handler answers with its status (a redirect
/// becomes a `301` with `Location`).
impl From<FileError> for crate::error::HttpError {
    fn from(e: FileError) -> crate::error::HttpError {
        use crate::status::StatusCode;
        match e {
            FileError::NotFound => crate::error::HttpError::not_found(),
            FileError::Forbidden => crate::error::HttpError::forbidden(),
            FileError::Redirect(location) => {
                crate::error::HttpError::new(StatusCode::MOVED_PERMANENTLY, "Moved Permanently")
                    .with_header("Location", &location)
            }
            FileError::Io(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::time::Duration;

    fn write(path: &Path, data: &[u8]) {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).unwrap();
        }
        let mut f = File::create(path).unwrap();
        f.write_all(data).unwrap();
    }

    /// A temp dir holding `root/` (served) and `outside/` (not served).
    fn fixture() -> (tempfile::TempDir, StaticRoot) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        write(&root.join("hello.txt"), b"hello world");
        write(&root.join("index.html"), b"<h1>home</h1>");
        write(&root.join("Pic.PNG"), b"\x89PNG");
        write(&root.join("sub/index.html"), b"sub index");
        write(&root.join("sub/deep/file.css"), b"body{}");
        write(&root.join("noindex/a.txt"), b"a");
        write(&root.join(".env"), b"SECRET=1");
        write(&root.join(".git/config"), b"[core]");
        write(&root.join("a b/c.txt"), b"space");
        write(&root.join("noext"), b"x");
        write(&tmp.path().join("outside/secret.txt"), b"secret");
        let sr = StaticRoot::new(&root).unwrap();
        (tmp, sr)
    }

    fn read_all(r: ResolvedFile) -> Vec<u8> {
        let mut body = r.into_body(&RangeDecision::Full).unwrap();
        let mut out = Vec::new();
        while body.fill(&mut out, 3).unwrap() > 0 {}
        out
    }

    fn err(r: Result<ResolvedFile, FileError>) -> u16 {
        match r {
            Ok(f) => panic!("expected an error, resolved {:?}", f.path),
            Err(e) => e.status().as_u16(),
        }
    }

    // ----- resolution ---------------------------------------------------

    #[test]
    fn resolves_plain_files() {
        let (_t, sr) = fixture();
        let f = sr.resolve(&["hello.txt"]).unwrap();
        assert_eq!(f.len, 11);
        assert_eq!(f.mime, "text/plain; charset=utf-8");
        assert!(f.path.starts_with(sr.root()));
        assert_eq!(read_all(f), b"hello world");

        let f = sr.resolve(&["sub", "deep", "file.css"]).unwrap();
        assert_eq!(f.mime, "text/css; charset=utf-8");
        let f = sr.resolve(&["Pic.PNG"]).unwrap();
        assert_eq!(f.mime, "image/png");
        let f = sr.resolve(&["noext"]).unwrap();
        assert_eq!(f.mime, "application/octet-stream");
        // Owned segments work too.
        let segs = vec!["a b".to_string(), "c.txt".to_string()];
        assert_eq!(read_all(sr.resolve(&segs).unwrap()), b"space");
    }

    #[test]
    fn missing_files_are_404() {
        let (_t, sr) = fixture();
        assert_eq!(err(sr.resolve(&["nope.txt"])), 404);
        assert_eq!(err(sr.resolve(&["nope", "x"])), 404);
        // A file used as a directory (ENOTDIR).
        assert_eq!(err(sr.resolve(&["hello.txt", "x"])), 404);
        // A file requested with a trailing slash.
        assert_eq!(err(sr.resolve(&["hello.txt", ""])), 404);
    }

    #[test]
    fn traversal_segments_are_403() {
        let (_t, sr) = fixture();
        let cases: &[&[&str]] = &[
            &[".."],
            &["..", "outside", "secret.txt"],
            &["sub", "..", "..", "outside", "secret.txt"],
            &["sub", "..", "hello.txt"],
            &["."],
            &[".", "hello.txt"],
            &["sub", ".", "index.html"],
            &["../outside/secret.txt"],
            &["sub/../hello.txt"],
            &["..\\outside\\secret.txt"],
            &["sub\\index.html"],
            &["hello.txt\0.png"],
            &["\0"],
            &["/etc/passwd"],
            &["/"],
            &["C:"],
            &["c:\\windows"],
            &["C:hello.txt"],
            &["sub", "", "index.html"],
            &["", "hello.txt"],
            &["", ""],
        ];
        for segs in cases {
            assert_eq!(err(sr.resolve(segs)), 403, "{segs:?}");
        }
        // Same refusals even when dotfiles are allowed.
        let sr = sr.with_hidden_files(HiddenFiles::Allow);
        for segs in cases {
            assert_eq!(err(sr.resolve(segs)), 403, "{segs:?}");
        }
    }

    #[test]
    fn decoded_traversal_from_raw_paths() {
        let (_t, sr) = fixture();
        let resolve_raw = |raw: &str| path_segments(raw).and_then(|s| sr.resolve(&s));
        for raw in [
            "/%2e%2e/outside/secret.txt",
            "/%2E%2E%2Foutside%2Fsecret.txt",
            "/sub/%2e%2e/%2e%2e/outside/secret.txt",
            "/..%5coutside%5csecret.txt",
            "/hello.txt%00.png",
            "/%2fetc%2fpasswd",
            "//etc/passwd",
            "/sub//index.html",
        ] {
            assert_eq!(err(resolve_raw(raw)), 403, "{raw}");
        }
        assert_eq!(err(resolve_raw("/%ff%fe")), 404);
        assert_eq!(err(resolve_raw("hello.txt")), 404);
        assert_eq!(
            read_all(resolve_raw("/a%20b/c.txt?x=1#f").unwrap()),
            b"space"
        );
        assert_eq!(read_all(resolve_raw("/").unwrap()), b"<h1>home</h1>");
        assert_eq!(
            path_segments("/a/b%2Fc/").unwrap(),
            vec!["a".to_string(), "b/c".to_string(), String::new()]
        );
    }

    #[test]
    fn directories_index_and_redirect() {
        let (_t, sr) = fixture();
        let empty: &[&str] = &[];
        assert_eq!(read_all(sr.resolve(empty).unwrap()), b"<h1>home</h1>");
        let f = sr.resolve(&[""]).unwrap();
        assert_eq!(f.mime, "text/html; charset=utf-8");
        assert_eq!(read_all(sr.resolve(&["sub", ""]).unwrap()), b"sub index");
        match sr.resolve(&["sub"]) {
            Err(FileError::Redirect(loc)) => assert_eq!(loc, "sub/"),
            other => panic!("{other:?}"),
        }
        match sr.resolve(&["sub", "deep"]) {
            Err(FileError::Redirect(loc)) => assert_eq!(loc, "deep/"),
            other => panic!("{other:?}"),
        }
        match sr.resolve(&["a b"]) {
            Err(e @ FileError::Redirect(_)) => {
                assert_eq!(e.status().as_u16(), 301);
                assert!(matches!(e, FileError::Redirect(ref l) if l == "a%20b/"));
            }
            other => panic!("{other:?}"),
        }
        // Directory without index: 404, never a listing.
        assert_eq!(err(sr.resolve(&["noindex", ""])), 404);
        assert_eq!(err(sr.resolve(&["sub", "deep", ""])), 404);
        // Index disabled.
        let sr = sr.with_index_file(None);
        assert_eq!(err(sr.resolve(&["sub", ""])), 404);
        assert_eq!(err(sr.resolve(empty)), 404);
    }

    #[test]
    fn custom_index_file() {
        let (t, sr) = fixture();
        write(&t.path().join("root/docs/default.htm"), b"default");
        let sr = sr.with_index_file(Some("default.htm"));
        assert_eq!(read_all(sr.resolve(&["docs", ""]).unwrap()), b"default");
    }

    #[test]
    fn redirect_location_is_escaped() {
        let (t, sr) = fixture();
        fs::create_dir(t.path().join("root/ab:c")).unwrap();
        fs::create_dir(t.path().join("root/é?#")).unwrap();
        match sr.resolve(&["ab:c"]) {
            Err(FileError::Redirect(loc)) => assert_eq!(loc, "ab%3Ac/"),
            other => panic!("{other:?}"),
        }
        match sr.resolve(&["é?#"]) {
            Err(FileError::Redirect(loc)) => assert_eq!(loc, "%C3%A9%3F%23/"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dotfiles_denied_by_default() {
        let (_t, sr) = fixture();
        assert_eq!(sr.hidden_files(), HiddenFiles::Deny);
        assert_eq!(err(sr.resolve(&[".env"])), 404);
        assert_eq!(err(sr.resolve(&[".git", "config"])), 404);
        assert_eq!(err(sr.resolve(&[".git"])), 404);
        assert_eq!(err(sr.resolve(&[".git", ""])), 404);
        assert_eq!(err(sr.resolve(&["..."])), 404);
        let sr = sr.with_hidden_files(HiddenFiles::Allow);
        assert_eq!(read_all(sr.resolve(&[".env"]).unwrap()), b"SECRET=1");
        assert_eq!(
            read_all(sr.resolve(&[".git", "config"]).unwrap()),
            b"[core]"
        );
    }

    #[test]
    fn over_long_paths_are_404() {
        let (_t, sr) = fixture();
        let long = "a".repeat(300);
        assert_eq!(err(sr.resolve(&[long.as_str()])), 404);
        let many: Vec<&str> = std::iter::repeat_n("abcdefghij", 500).collect();
        assert_eq!(err(sr.resolve(&many)), 404);
    }

    #[test]
    fn root_must_be_a_directory() {
        let (t, _sr) = fixture();
        assert!(StaticRoot::new(t.path().join("root/hello.txt")).is_err());
        assert!(StaticRoot::new(t.path().join("missing")).is_err());
    }

    #[cfg(unix)]
    mod unix {
        use super::*;
        use std::os::unix::fs::symlink;

        #[test]
        fn symlink_leaving_root_is_403() {
            let (t, sr) = fixture();
            let root = t.path().join("root");
            symlink(t.path().join("outside/secret.txt"), root.join("leak.txt")).unwrap();
            symlink(t.path().join("outside"), root.join("leakdir")).unwrap();
            symlink("/etc/passwd", root.join("passwd")).unwrap();
            symlink("../outside/secret.txt", root.join("rel.txt")).unwrap();
            assert_eq!(err(sr.resolve(&["leak.txt"])), 403);
            assert_eq!(err(sr.resolve(&["leakdir", "secret.txt"])), 403);
            assert_eq!(err(sr.resolve(&["leakdir"])), 403);
            assert_eq!(err(sr.resolve(&["leakdir", ""])), 403);
            assert_eq!(err(sr.resolve(&["passwd"])), 403);
            assert_eq!(err(sr.resolve(&["rel.txt"])), 403);
            // Dangling symlink.
            symlink(root.join("nothing"), root.join("dangling")).unwrap();
            assert_eq!(err(sr.resolve(&["dangling"])), 404);
        }

        #[test]
        fn symlink_within_root_is_followed() {
            let (t, sr) = fixture();
            let root = t.path().join("root");
            symlink("hello.txt", root.join("alias.txt")).unwrap();
            symlink(root.join("sub"), root.join("subalias")).unwrap();
            let f = sr.resolve(&["alias.txt"]).unwrap();
            assert_eq!(f.path, sr.root().join("hello.txt"));
            assert_eq!(read_all(f), b"hello world");
            let f = sr.resolve(&["subalias", "deep", "file.css"]).unwrap();
            assert_eq!(f.mime, "text/css; charset=utf-8");
            assert_eq!(
                read_all(sr.resolve(&["subalias", ""]).unwrap()),
                b"sub index"
            );
            // A symlink whose own name has a known extension but whose
            // target does not: MIME follows the target.
            symlink("noext", root.join("fake.html")).unwrap();
            assert_eq!(
                sr.resolve(&["fake.html"]).unwrap().mime,
                "application/octet-stream"
            );
        }

        #[test]
        fn symlink_to_dotfile_is_hidden() {
            let (t, sr) = fixture();
            let root = t.path().join("root");
            symlink(".env", root.join("env.txt")).unwrap();
            symlink(".git", root.join("git")).unwrap();
            assert_eq!(err(sr.resolve(&["env.txt"])), 404);
            assert_eq!(err(sr.resolve(&["git", "config"])), 404);
            let sr = sr.with_hidden_files(HiddenFiles::Allow);
            assert_eq!(read_all(sr.resolve(&["env.txt"]).unwrap()), b"SECRET=1");
        }

        #[test]
        fn index_symlink_leaving_root_is_403() {
            let (t, sr) = fixture();
            let root = t.path().join("root");
            fs::create_dir(root.join("trap")).unwrap();
            symlink(
                t.path().join("outside/secret.txt"),
                root.join("trap/index.html"),
            )
            .unwrap();
            assert_eq!(err(sr.resolve(&["trap", ""])), 403);
        }

        #[test]
        fn root_given_through_symlink() {
            let (t, _sr) = fixture();
            symlink(t.path().join("root"), t.path().join("link")).unwrap();
            let sr = StaticRoot::new(t.path().join("link")).unwrap();
            assert_eq!(sr.root(), fs::canonicalize(t.path().join("root")).unwrap());
            assert_eq!(
                read_all(sr.resolve(&["hello.txt"]).unwrap()),
                b"hello world"
            );
            assert_eq!(err(sr.resolve(&["..", "outside", "secret.txt"])), 403);
        }

        #[test]
        fn special_files_are_refused() {
            let (t, sr) = fixture();
            let sock = t.path().join("root/sock");
            let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
            assert_eq!(err(sr.resolve(&["sock"])), 403);
        }

        /// The `openat2` fast path and the canonical-path resolver agree on
        /// every kind of entry: whenever the fast path decides, it decides
        /// what the general resolver would (same status, same file, same
        /// canonical path, same MIME type).
        #[cfg(target_os = "linux")]
        #[test]
        fn fast_path_agrees_with_general_resolver() {
            let (t, sr) = fixture();
            let root = t.path().join("root");
            symlink("hello.txt", root.join("alias.txt")).unwrap();
            symlink(t.path().join("outside/secret.txt"), root.join("leak.txt")).unwrap();
            symlink(".env", root.join("env.txt")).unwrap();
            symlink(root.join("sub"), root.join("subalias")).unwrap();
            symlink("nothing", root.join("dangling")).unwrap();
            let sock = root.join("sock");
            let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
            let cases: &[&[&str]] = &[
                &["hello.txt"],
                &["Pic.PNG"],
                &["sub", "deep", "file.css"],
                &["a b", "c.txt"],
                &["noext"],
                &["missing.txt"],
                &["hello.txt", "x"],
                &["sub"],
                &["sub", "deep"],
                &["alias.txt"],
                &["leak.txt"],
                &["env.txt"],
                &["subalias", "index.html"],
                &["dangling"],
                &["sock"],
                &["noindex", "a.txt"],
            ];
            let mut decided = 0;
            for &case in cases {
                let mut candidate = sr.root().to_path_buf();
                case.iter().for_each(|seg| candidate.push(seg));
                let general = sr.resolve_general(case, false, &candidate);
                let Ok(fast) = sr.open_plain(candidate.clone()) else {
                    continue;
                };
                decided += 1;
                match (fast, general) {
                    (Ok(a), Ok(Resolved::File(b))) => {
                        assert_eq!(
                            (&a.path, &a.mime, a.len),
                            (&b.path, &b.mime, b.len),
                            "{case:?}"
                        );
                        assert_eq!(read_all(a), read_all(b), "{case:?}");
                    }
                    (Err(a), Err(b)) => assert_eq!(a.status(), b.status(), "{case:?}"),
                    (a, b) => panic!("{case:?}: fast {a:?} vs general {b:?}"),
                }
            }
            // Plain files, missing ones and a file used as a directory are
            // decided by the fast path; symlinks, directories and the socket
            // (`open` fails with ENXIO) are left to the general resolver.
            assert_eq!(decided, 8);
        }

        #[test]
        fn symlink_loop_does_not_panic() {
            let (t, sr) = fixture();
            let root = t.path().join("root");
            symlink("loop2", root.join("loop1")).unwrap();
            symlink("loop1", root.join("loop2")).unwrap();
            assert_eq!(err(sr.resolve(&["loop1"])), 404);
        }
    }

    // ----- validators -----------------------------------------------------

    #[test]
    fn etag_format() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123);
        let nanos = 1_700_000_000u128 * 1_000_000_000 + 123;
        assert_eq!(etag(500, t), format!("\"1f4-{nanos:x}\""));
        assert_eq!(etag(0, UNIX_EPOCH), "\"0-0\"");
        assert_eq!(etag(1, UNIX_EPOCH - Duration::from_secs(5)), "\"1-0\"");
        assert_ne!(etag(1, t), etag(2, t));
        assert_ne!(etag(1, t), etag(1, t + Duration::from_nanos(1)));
    }

    #[test]
    fn http_date_matches_httpdate() {
        let mut secs: Vec<u64> = vec![
            0,
            59,
            86_399,
            86_400,
            951_782_400,   // 2000-02-29
            951_868_800,   // 2000-03-01
            4_107_542_400, // 2100-03-01 (2100 is no leap year)
            4_102_444_799, // 2099-12-31T23:59:59
            MAX_HTTP_DATE_SECS,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            secs.push(x % (MAX_HTTP_DATE_SECS + 1));
        }
        let mut buf = [0u8; 29];
        for s in secs {
            let t = UNIX_EPOCH + Duration::from_secs(s);
            assert_eq!(http_date_in(&mut buf, t), httpdate::fmt_http_date(t), "{s}");
        }
    }

    #[test]
    fn etag_in_matches_format() {
        let mut buf = [0u8; ETAG_MAX];
        for (len, nanos) in [
            (0u64, 0u128),
            (1, 1),
            (u64::MAX, u128::from(u64::MAX) * 1_000),
            (0x1234, 0xabc),
        ] {
            let t = UNIX_EPOCH
                + Duration::from_nanos(0)
                + Duration::new(
                    (nanos / 1_000_000_000) as u64,
                    (nanos % 1_000_000_000) as u32,
                );
            let nanos = t
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            assert_eq!(etag_in(&mut buf, len, t), format!("\"{len:x}-{nanos:x}\""));
        }
    }

    #[test]
    fn http_date_clamps() {
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            http_date(UNIX_EPOCH - Duration::from_secs(10)),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        if let Some(far) = UNIX_EPOCH.checked_add(Duration::from_secs(400_000_000_000)) {
            assert_eq!(http_date(far), "Fri, 31 Dec 9999 23:59:59 GMT");
        }
    }

    #[test]
    fn resolved_file_validators() {
        let (_t, sr) = fixture();
        let f = sr.resolve(&["hello.txt"]).unwrap();
        assert_eq!(f.etag(), etag(11, f.modified));
        assert!(f.etag().starts_with("\"b-"));
        assert!(f.last_modified().ends_with(" GMT"));
    }

    // ----- conditional requests -----------------------------------------

    const TAG: &str = "\"b-123\"";

    fn mt() -> SystemTime {
        // Sun, 06 Nov 1994 08:49:37 GMT plus half a second.
        UNIX_EPOCH + Duration::from_millis(784_111_777_500)
    }

    fn cond(get: bool, inm: Option<&str>, ims: Option<&str>) -> Condition {
        evaluate_conditions(get, inm, ims, TAG, mt())
    }

    #[test]
    fn if_none_match() {
        use Condition::*;
        assert_eq!(cond(true, None, None), Proceed);
        assert_eq!(cond(true, Some(TAG), None), NotModified);
        assert_eq!(cond(true, Some("W/\"b-123\""), None), NotModified);
        assert_eq!(cond(true, Some("\"x\", \"b-123\""), None), NotModified);
        assert_eq!(
            cond(true, Some("\"x\",W/\"b-123\" , \"y\""), None),
            NotModified
        );
        assert_eq!(cond(true, Some("\"x\", \"y\""), None), Proceed);
        assert_eq!(cond(true, Some("*"), None), NotModified);
        assert_eq!(cond(true, Some(" * "), None), NotModified);
        assert_eq!(cond(true, Some("\"b-12\""), None), Proceed);
        assert_eq!(cond(true, Some("\"b-123"), None), Proceed);
        assert_eq!(cond(true, Some(""), None), Proceed);
        // Unquoted legacy token.
        assert_eq!(cond(true, Some("b-123"), None), NotModified);
        // Commas inside quoted tags do not split.
        assert_eq!(
            evaluate_conditions(true, Some("\"a,b\""), None, "\"a,b\"", mt()),
            NotModified
        );
        assert_eq!(
            evaluate_conditions(true, Some("\"a\", \"b\""), None, "\"a,b\"", mt()),
            Proceed
        );
        // Our tag weak: still matches under weak comparison.
        assert_eq!(
            evaluate_conditions(true, Some(TAG), None, "W/\"b-123\"", mt()),
            NotModified
        );
        // Match on an unsafe method: 412.
        assert_eq!(cond(false, Some(TAG), None), PreconditionFailed);
        assert_eq!(cond(false, Some("*"), None), PreconditionFailed);
        assert_eq!(cond(false, Some("\"x\""), None), Proceed);
    }

    #[test]
    fn if_modified_since() {
        use Condition::*;
        let same = "Sun, 06 Nov 1994 08:49:37 GMT";
        let before = "Sun, 06 Nov 1994 08:49:36 GMT";
        let after = "Mon, 07 Nov 1994 08:49:37 GMT";
        // Sub-second part of the mtime is ignored.
        assert_eq!(cond(true, None, Some(same)), NotModified);
        assert_eq!(cond(true, None, Some(after)), NotModified);
        assert_eq!(cond(true, None, Some(before)), Proceed);
        // Other date formats httpdate accepts.
        assert_eq!(
            cond(true, None, Some("Sunday, 06-Nov-94 08:49:37 GMT")),
            NotModified
        );
        assert_eq!(
            cond(true, None, Some("Sun Nov  6 08:49:37 1994")),
            NotModified
        );
        // Invalid dates are ignored.
        assert_eq!(cond(true, None, Some("yesterday")), Proceed);
        assert_eq!(cond(true, None, Some("")), Proceed);
        assert_eq!(cond(true, None, Some(&format!("{same}, {same}"))), Proceed);
        // Only for GET/HEAD.
        assert_eq!(cond(false, None, Some(same)), Proceed);
        // If-None-Match takes precedence.
        assert_eq!(cond(true, Some("\"other\""), Some(same)), Proceed);
        assert_eq!(cond(true, Some(TAG), Some(before)), NotModified);
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        use Condition::*;
        let ev = |im: Option<&str>, ius: Option<&str>| {
            evaluate_preconditions(
                false,
                &Preconditions {
                    if_match: im,
                    if_unmodified_since: ius,
                    ..Default::default()
                },
                TAG,
                mt(),
            )
        };
        assert_eq!(ev(Some(TAG), None), Proceed);
        assert_eq!(ev(Some("*"), None), Proceed);
        assert_eq!(ev(Some("\"x\", \"b-123\""), None), Proceed);
        assert_eq!(ev(Some("\"x\""), None), PreconditionFailed);
        // Strong comparison: weak tags never match.
        assert_eq!(ev(Some("W/\"b-123\""), None), PreconditionFailed);
        assert_eq!(ev(Some(""), None), PreconditionFailed);
        let same = "Sun, 06 Nov 1994 08:49:37 GMT";
        let before = "Sun, 06 Nov 1994 08:49:36 GMT";
        assert_eq!(ev(None, Some(same)), Proceed);
        assert_eq!(ev(None, Some(before)), PreconditionFailed);
        assert_eq!(ev(None, Some("garbage")), Proceed);
        // If-Match present: If-Unmodified-Since ignored.
        assert_eq!(ev(Some(TAG), Some(before)), Proceed);
        // If-Match passes, If-None-Match then matches on GET: 304.
        let c = evaluate_preconditions(
            true,
            &Preconditions {
                if_match: Some(TAG),
                if_none_match: Some(TAG),
                ..Default::default()
            },
            TAG,
            mt(),
        );
        assert_eq!(c, NotModified);
    }

    // ----- ranges ---------------------------------------------------------

    fn range(h: &str, len: u64) -> RangeDecision {
        parse_range(Some(h), None, TAG, mt(), len)
    }

    fn part(start: u64, end_inclusive: u64) -> RangeDecision {
        RangeDecision::Partial {
            start,
            end_inclusive,
        }
    }

    #[test]
    fn range_forms() {
        use RangeDecision::*;
        assert_eq!(parse_range(None, None, TAG, mt(), 100), Full);
        assert_eq!(range("bytes=0-9", 100), part(0, 9));
        assert_eq!(range("bytes=10-10", 100), part(10, 10));
        assert_eq!(range("bytes=90-", 100), part(90, 99));
        assert_eq!(range("bytes=0-", 100), part(0, 99));
        assert_eq!(range("bytes=-10", 100), part(90, 99));
        assert_eq!(range("bytes=-100", 100), part(0, 99));
        // Suffix longer than the file: whole file as 206.
        assert_eq!(range("bytes=-500", 100), part(0, 99));
        // End clamped.
        assert_eq!(range("bytes=50-1000", 100), part(50, 99));
        assert_eq!(range("bytes=99-99", 100), part(99, 99));
        // Whitespace and case.
        assert_eq!(range(" bytes = 0 - 9 ", 100), part(0, 9));
        assert_eq!(range("Bytes=0-9", 100), part(0, 9));
        assert_eq!(range("BYTES=\t5-6\t", 100), part(5, 6));
        assert_eq!(range("bytes=0-9,", 100), part(0, 9));
        assert_eq!(range("bytes=, 0-9", 100), part(0, 9));
    }

    #[test]
    fn range_unsatisfiable() {
        use RangeDecision::*;
        assert_eq!(range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(range("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(range("bytes=-1", 0), Unsatisfiable);
        assert_eq!(range("bytes=99999999999999999999999-", 100), Unsatisfiable);
        assert_eq!(
            range("bytes=18446744073709551615-18446744073709551615", 100),
            Unsatisfiable
        );
    }

    #[test]
    fn range_ignored() {
        use RangeDecision::*;
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=abc",
            "bytes=5",
            "bytes=a-b",
            "bytes=9-5",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=-+2",
            "bytes=0x10-20",
            "bytes=1.5-2",
            "bytes=1 0-20",
            "bytes=--5",
            "bytes=1-2-3",
            "bytes=0-1=2",
            "items=0-9",
            "bits=0-9",
            "=0-9",
            "bytes=٣-٤",
            "bytes=0-9\u{a0}",
            // One invalid range spoils the list.
            "bytes=0-1,abc",
            "bytes=0-1,9-5",
            "bytes=0-1, ,2-3,-",
        ] {
            assert_eq!(range(h, 100), Full, "{h:?}");
        }
    }

    fn multiple(len: u64, spans: &[(u64, u64)]) -> RangeDecision {
        let mut ranges = [ByteRange::default(); MAX_RANGES];
        for (slot, &(start, end_inclusive)) in ranges.iter_mut().zip(spans) {
            *slot = ByteRange {
                start,
                end_inclusive,
            };
        }
        RangeDecision::Multiple(ByteRanges {
            ranges,
            count: spans.len() as u8,
            complete_len: len,
        })
    }

    #[test]
    fn several_ranges() {
        assert_eq!(
            range("bytes=0-9,20-29", 100),
            multiple(100, &[(0, 9), (20, 29)])
        );
        // Suffix and open ranges, in the order asked for.
        assert_eq!(
            range("bytes=-5, 0-1", 100),
            multiple(100, &[(95, 99), (0, 1)])
        );
        assert_eq!(
            range("bytes=90-,0-1,50-60", 100),
            multiple(100, &[(90, 99), (0, 1), (50, 60)])
        );
        // Empty elements are skipped; the end is clamped.
        assert_eq!(
            range("bytes=,0-1,,98-1000,", 100),
            multiple(100, &[(0, 1), (98, 99)])
        );
        let d = range("bytes=0-9,20-29", 100);
        assert_eq!(d.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(d.content_range(100), None);
        assert_eq!(d.body_len(100), 20);
    }

    #[test]
    fn several_ranges_coalesce_where_they_overlap_or_touch() {
        // Adjacent and overlapping ranges become one: a single range again.
        assert_eq!(range("bytes=0-1,2-3", 100), part(0, 3));
        assert_eq!(range("bytes=0-9,5-14", 100), part(0, 14));
        assert_eq!(range("bytes=10-19,0-9", 100), part(0, 19));
        assert_eq!(range("bytes=-10,80-89", 100), part(80, 99));
        // The merged range takes the earlier one's place.
        assert_eq!(
            range("bytes=50-59,0-9,60-69", 100),
            multiple(100, &[(50, 69), (0, 9)])
        );
        // A merge that makes a range touch an earlier one merges again.
        assert_eq!(
            range("bytes=0-4,10-14,5-9,30-31", 100),
            multiple(100, &[(0, 14), (30, 31)])
        );
        assert_eq!(range("bytes=20-29,0-9,10-19", 100), part(0, 29));
    }

    #[test]
    fn several_ranges_unsatisfiable_ones_are_dropped() {
        use RangeDecision::*;
        assert_eq!(range("bytes=0-9,200-300", 100), part(0, 9));
        assert_eq!(
            range("bytes=0-9,200-,20-29,-0", 100),
            multiple(100, &[(0, 9), (20, 29)])
        );
        // None satisfiable: 416.
        assert_eq!(range("bytes=200-300,400-500", 100), Unsatisfiable);
        assert_eq!(range("bytes=0-1,-1", 0), Unsatisfiable);
    }

    #[test]
    fn several_ranges_asking_too_much_are_ignored() {
        use RangeDecision::*;
        // More bytes in all than the file has (overlaps counted twice).
        assert_eq!(range("bytes=0-,0-", 100), Full);
        assert_eq!(range("bytes=0-60,40-99", 100), Full);
        assert_eq!(range("bytes=-100,-1", 100), Full);
        // Exactly the file, in pieces: allowed (and coalesced).
        assert_eq!(range("bytes=0-49,50-99", 100), part(0, 99));
        // At most MAX_RANGES ranges.
        let list = |n: u64| {
            let specs: Vec<String> = (0..n).map(|i| format!("{}-{}", i * 3, i * 3)).collect();
            format!("bytes={}", specs.join(","))
        };
        let sixteen = range(&list(16), 100);
        let RangeDecision::Multiple(ranges) = sixteen else {
            panic!("{sixteen:?}");
        };
        assert_eq!(ranges.as_slice().len(), 16);
        assert_eq!(
            ranges.as_slice()[15],
            ByteRange {
                start: 45,
                end_inclusive: 45
            }
        );
        assert_eq!(ranges.complete_len(), 100);
        assert_eq!(ranges.byte_count(), 16);
        assert_eq!(range(&list(17), 100), Full);
        // Unsatisfiable and empty elements count against the cap too... the
        // unsatisfiable ones do, empty ones do not.
        let mut many = list(16);
        many.push_str(",,,");
        assert!(matches!(range(&many, 100), Multiple(_)));
        many.push_str(",500-600");
        assert_eq!(range(&many, 100), Full);
    }

    #[test]
    fn multipart_ranges_body_fills_in_small_steps_to_its_exact_length() {
        use std::io::Write;
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let RangeDecision::Multiple(ranges) = range("bytes=900-,0-99,-50,400-599", 1000) else {
            panic!()
        };
        assert_eq!(
            ranges.as_slice(),
            [
                ByteRange {
                    start: 900,
                    end_inclusive: 999
                },
                ByteRange {
                    start: 0,
                    end_inclusive: 99
                },
                ByteRange {
                    start: 400,
                    end_inclusive: 599
                },
            ]
        );
        for (step, part_type) in [(1, None), (7, Some("application/x-test")), (1 << 20, None)] {
            let mut body =
                MultipartRanges::new(file.try_clone().unwrap(), ranges, part_type).unwrap();
            let b = body.boundary().to_owned();
            assert!(body.content_type().ends_with(&format!("; boundary={b}")));
            let mut out = Vec::new();
            let mut calls = 0;
            while !body.is_done() {
                let n = body.fill(&mut out, step).unwrap();
                assert!(n > 0);
                calls += 1;
                assert!(calls < 10_000);
            }
            assert_eq!(body.fill(&mut out, step).unwrap(), 0);
            assert_eq!(out.len() as u64, body.content_length(), "step {step}");
            let mut expected = Vec::new();
            for (start, end) in [(900, 999), (0, 99), (400, 599)] {
                expected.extend_from_slice(format!("--{b}\r\n").as_bytes());
                if let Some(t) = part_type {
                    expected.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
                }
                expected.extend_from_slice(
                    format!("Content-Range: bytes {start}-{end}/1000\r\n\r\n").as_bytes(),
                );
                expected.extend_from_slice(&data[start..=end]);
                expected.extend_from_slice(b"\r\n");
            }
            expected.extend_from_slice(format!("--{b}--\r\n").as_bytes());
            assert_eq!(out, expected, "step {step}");
        }
        // Two bodies get different boundaries.
        let a = MultipartRanges::new(file.try_clone().unwrap(), ranges, None).unwrap();
        let b = MultipartRanges::new(file.try_clone().unwrap(), ranges, None).unwrap();
        assert_ne!(a.boundary(), b.boundary());
        // A part type that would forge headers is refused.
        let bad = MultipartRanges::new(file.try_clone().unwrap(), ranges, Some("a\r\nX: y"));
        assert_eq!(bad.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn multipart_ranges_body_reports_a_truncated_file() {
        use std::io::Write;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[b'x'; 100]).unwrap();
        let RangeDecision::Multiple(ranges) = range("bytes=0-9,90-99", 100) else {
            panic!()
        };
        let mut body = MultipartRanges::new(file.try_clone().unwrap(), ranges, None).unwrap();
        file.set_len(50).unwrap();
        let mut out = Vec::new();
        let err = loop {
            match body.fill(&mut out, 1 << 20) {
                Ok(_) => assert!(!body.is_done(), "a short file cannot complete"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn range_huge_numbers() {
        assert_eq!(range("bytes=0-99999999999999999999999", 100), part(0, 99));
        assert_eq!(range("bytes=-99999999999999999999999", 100), part(0, 99));
        assert_eq!(range("bytes=5-18446744073709551615", 100), part(5, 99));
        assert_eq!(range("bytes=0-", u64::MAX), part(0, u64::MAX - 1));
        assert_eq!(
            range("bytes=-18446744073709551615", u64::MAX),
            part(0, u64::MAX - 1)
        );
        let p = part(0, u64::MAX - 1);
        assert_eq!(p.body_len(u64::MAX), u64::MAX);
    }

    #[test]
    fn if_range() {
        use RangeDecision::*;
        let ir = |v: &str| parse_range(Some("bytes=0-4"), Some(v), TAG, mt(), 100);
        assert_eq!(ir(TAG), part(0, 4));
        assert_eq!(ir(" \"b-123\" "), part(0, 4));
        assert_eq!(ir("\"other\""), Full);
        // Weak tags never satisfy If-Range (strong comparison).
        assert_eq!(ir("W/\"b-123\""), Full);
        assert_eq!(
            parse_range(Some("bytes=0-4"), Some(TAG), "W/\"b-123\"", mt(), 100),
            Full
        );
        // Lists are not allowed in If-Range.
        assert_eq!(ir("\"b-123\", \"b-123\""), Full);
        // Dates: exact match at one-second resolution.
        assert_eq!(ir("Sun, 06 Nov 1994 08:49:37 GMT"), part(0, 4));
        assert_eq!(ir("Sun, 06 Nov 1994 08:49:36 GMT"), Full);
        assert_eq!(ir("Sun, 06 Nov 1994 08:49:38 GMT"), Full);
        assert_eq!(ir("not a date"), Full);
        assert_eq!(ir(""), Full);
        // If-Range matching but Range unsatisfiable: still 416.
        assert_eq!(
            parse_range(Some("bytes=200-"), Some(TAG), TAG, mt(), 100),
            Unsatisfiable
        );
        // If-Range without Range: Full.
        assert_eq!(parse_range(None, Some(TAG), TAG, mt(), 100), Full);
    }

    #[test]
    fn range_headers_and_status() {
        assert_eq!(
            part(0, 9).content_range(100).as_deref(),
            Some("bytes 0-9/100")
        );
        assert_eq!(
            RangeDecision::Unsatisfiable.content_range(100).as_deref(),
            Some("bytes */100")
        );
        assert_eq!(RangeDecision::Full.content_range(100), None);
        assert_eq!(RangeDecision::Full.status().as_u16(), 200);
        assert_eq!(part(0, 0).status().as_u16(), 206);
        assert_eq!(RangeDecision::Unsatisfiable.status().as_u16(), 416);
        assert_eq!(part(10, 19).body_len(100), 10);
        assert_eq!(RangeDecision::Full.body_len(100), 100);
        assert_eq!(RangeDecision::Unsatisfiable.body_len(100), 0);
    }

    #[test]
    fn no_panic_on_odd_inputs() {
        let odd = [
            "",
            " ",
            ",",
            "\"",
            "W/",
            "W/\"",
            "\"\"",
            "W/W/\"x\"",
            ",,,\"a",
            "é",
            "bytes=é-ü",
            "bytes=-é",
            "\u{0}",
            "*,*",
            "bytes==",
            "bytes=-,-",
            "🦀=1-2",
            "W/\"é\"",
        ];
        for a in odd {
            for b in odd {
                let _ = parse_range(Some(a), Some(b), b, mt(), 10);
                let _ = parse_range(Some(a), Some(b), a, UNIX_EPOCH, 0);
                let _ = evaluate_preconditions(
                    true,
                    &Preconditions {
                        if_match: Some(a),
                        if_none_match: Some(b),
                        if_modified_since: Some(a),
                        if_unmodified_since: Some(b),
                    },
                    a,
                    mt(),
                );
                let _ = attachment_header(a);
                let _ = path_segments(a);
            }
        }
    }

    // ----- body streaming ------------------------------------------------

    #[test]
    fn file_body_streams_a_range() {
        let (_t, sr) = fixture();
        let f = sr.resolve(&["hello.txt"]).unwrap();
        let d = parse_range(Some("bytes=6-"), None, &f.etag(), f.modified, f.len);
        assert_eq!(d.content_range(f.len).as_deref(), Some("bytes 6-10/11"));
        let mut body = f.into_body(&d).unwrap();
        assert_eq!(body.remaining(), 5);
        let mut out = b"HDR".to_vec();
        assert_eq!(body.fill(&mut out, 0).unwrap(), 0);
        assert_eq!(out.len(), 3);
        assert_eq!(body.fill(&mut out, 2).unwrap(), 2);
        assert_eq!(out, b"HDRwo");
        assert_eq!(body.fill(&mut out, 100).unwrap(), 3);
        assert_eq!(out, b"HDRworld");
        assert!(body.is_done());
        assert_eq!(body.fill(&mut out, 100).unwrap(), 0);
        assert_eq!(out, b"HDRworld");
    }

    #[test]
    fn file_body_suffix_and_read_impl() {
        let (_t, sr) = fixture();
        let f = sr.resolve(&["hello.txt"]).unwrap();
        let d = parse_range(Some("bytes=-3"), None, "", f.modified, f.len);
        let mut body = f.into_body(&d).unwrap();
        let mut s = String::new();
        body.read_to_string(&mut s).unwrap();
        assert_eq!(s, "rld");

        let f = sr.resolve(&["hello.txt"]).unwrap();
        let body = f.into_body(&RangeDecision::Unsatisfiable).unwrap();
        assert!(body.is_done());

        let f = sr.resolve(&["hello.txt"]).unwrap();
        let d = parse_range(Some("bytes=0-1,-3"), None, "", f.modified, f.len);
        assert!(matches!(d, RangeDecision::Multiple(_)), "{d:?}");
        let e = f.into_body(&d).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn file_body_reports_truncation() {
        let (t, sr) = fixture();
        let f = sr.resolve(&["hello.txt"]).unwrap();
        let mut body = f.into_body(&RangeDecision::Full).unwrap();
        // Shrink the file after its length was announced.
        File::create(t.path().join("root/hello.txt"))
            .unwrap()
            .write_all(b"hey")
            .unwrap();
        let mut out = Vec::new();
        assert_eq!(body.fill(&mut out, 100).unwrap(), 3);
        assert_eq!(out, b"hey");
        let e = body.fill(&mut out, 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(out, b"hey");
        assert_eq!(body.remaining(), 8);
    }

    #[test]
    fn file_body_large_file_in_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        write(&tmp.path().join("big.bin"), &data);
        let sr = StaticRoot::new(tmp.path()).unwrap();
        let f = sr.resolve(&["big.bin"]).unwrap();
        let d = parse_range(Some("bytes=1000-150999"), None, "", f.modified, f.len);
        let mut body = f.into_body(&d).unwrap();
        let mut out = Vec::new();
        while body.fill(&mut out, 16 * 1024).unwrap() > 0 {}
        assert_eq!(out, &data[1000..151_000]);
        // A huge `max` is capped, not allocated.
        let f = sr.resolve(&["big.bin"]).unwrap();
        let mut body = f.into_body(&RangeDecision::Full).unwrap();
        let mut out = Vec::new();
        assert_eq!(body.fill(&mut out, usize::MAX).unwrap(), 200_000);
    }

    // ----- Content-Disposition --------------------------------------------

    #[test]
    fn attachment_headers() {
        assert_eq!(
            attachment_header("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            attachment_header("résumé 2024.pdf"),
            "attachment; filename=\"r_sum_ 2024.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%202024.pdf"
        );
        assert_eq!(
            attachment_header("日本.txt"),
            "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"
        );
        assert_eq!(
            attachment_header("a\"b\tc\r\nd%e.txt"),
            "attachment; filename=\"a_b_c__d_e.txt\"; filename*=UTF-8''a%22b%09c%0D%0Ad%25e.txt"
        );
        assert_eq!(
            attachment_header("dir/sub\\x.txt"),
            "attachment; filename=\"x.txt\"; filename*=UTF-8''x.txt"
        );
        assert_eq!(
            attachment_header(""),
            "attachment; filename=\"download\"; filename*=UTF-8''download"
        );
        assert_eq!(
            attachment_header("a/"),
            "attachment; filename=\"download\"; filename*=UTF-8''download"
        );
        // Never anything that could break the header line.
        for name in ["x\r\nSet-Cookie: a=b", "\u{0}\u{7f}\u{85}", "é\n"] {
            let h = attachment_header(name);
            assert!(h.bytes().all(|b| (0x20..0x7f).contains(&b)), "{h:?}");
        }
    }
}
