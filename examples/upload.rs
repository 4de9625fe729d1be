//! An authenticated upload server (not an `adafruit_httpserver` example):
//! files of any size streamed to disk as they arrive, behind Basic
//! authentication on the upload route only, with a cookie remembering the
//! last file's name.
//!
//! - `POST /upload` takes a `multipart/form-data` body of up to 50 MiB
//!   ([`Route::max_body_size`](pollserve::Route::max_body_size) is for
//!   buffered routes; a streaming route states its limit in
//!   [`Route::streaming`](pollserve::Route::streaming)); the rest of the server
//!   keeps the default 1 MiB. Credentials are checked when the request head
//!   arrives ([`Route::require_authentication`](pollserve::Route::require_authentication)):
//!   a client without them gets `401` instead of `100 Continue`, and its body
//!   is never read.
//! - The body goes through a [`MultipartParser`] inside a [`BodySink`], so
//!   memory stays at a few KiB whatever the file size. A body that never
//!   completes (over the limit, a client that leaves) drops the sink without
//!   `finish`: its `Drop` removes the partial file.
//! - The answer sets a cookie holding the file's name; [`SetCookie::new`]
//!   takes any string (spaces, commas, non-ASCII), and `/` reads it back.
//!
//! Needs `log` and `env_logger` beside `pollserve` in a program's own
//! `Cargo.toml` to print the access log as here.
//!
//! `cargo run --example upload [PORT] [DIR]` (files go to DIR, by default a
//! new directory under the system's temporary directory), then
//! `curl -u user:secret -F file=@Cargo.toml http://127.0.0.1:5000/upload`.
use pollserve::cookies::SetCookie;
use pollserve::form::{FormLimits, MultipartEvent, MultipartParser};
use pollserve::server::BodySink;
use pollserve::{
    html_escape, Authentication, HttpError, Method, Request, Response, Route, Server, StatusCode,
};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The largest upload accepted.
const MAX_UPLOAD: u64 = 50 << 20;

/// One upload: the parser, and the files it writes to `dir` as they arrive.
struct UploadSink {
    parser: MultipartParser,
    files: Files,
}

struct Files {
    dir: PathBuf,
    /// The file being written: its final path, a temporary path, the file,
    /// the bytes written.
    current: Option<(PathBuf, PathBuf, File, u64)>,
    /// Files completed so far: name and size.
    saved: Vec<(String, u64)>,
}

fn failed(status: StatusCode, what: &str, e: std::io::Error) -> HttpError {
    HttpError::new(status, format!("{what}: {e}"))
}

impl Files {
    fn event(&mut self, event: MultipartEvent<'_>) -> Result<(), HttpError> {
        let error = StatusCode::INTERNAL_SERVER_ERROR;
        match event {
            MultipartEvent::PartStart(headers) => {
                let Some(name) = headers.safe_filename() else {
                    return Ok(()); // a text field, or a file input left blank
                };
                let path = self.dir.join(name);
                let temporary = self.dir.join(format!(".{name}.part"));
                let file = File::create(&temporary).map_err(|e| failed(error, "create", e))?;
                self.current = Some((path, temporary, file, 0));
            }
            MultipartEvent::PartData(data) => {
                if let Some((_, _, file, written)) = &mut self.current {
                    file.write_all(data)
                        .map_err(|e| failed(error, "write", e))?;
                    *written += data.len() as u64;
                }
            }
            MultipartEvent::PartEnd => {
                if let Some((path, temporary, file, written)) = self.current.take() {
                    drop(file);
                    std::fs::rename(&temporary, &path).map_err(|e| failed(error, "rename", e))?;
                    let name = path.file_name().unwrap_or_default().to_string_lossy();
                    self.saved.push((name.into_owned(), written));
                }
            }
            MultipartEvent::End => {}
        }
        Ok(())
    }
}

/// A body that never completed leaves no partial file behind.
impl Drop for Files {
    fn drop(&mut self) {
        if let Some((_, temporary, _, _)) = self.current.take() {
            let _ = std::fs::remove_file(temporary);
        }
    }
}

impl BodySink for UploadSink {
    fn write(&mut self, chunk: &[u8]) -> Result<(), HttpError> {
        self.parser.feed(chunk)?;
        while let Some(event) = self.parser.next_event()? {
            self.files.event(event)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Response, HttpError> {
        self.parser.finish()?;
        let files = std::mem::take(&mut self.files.saved);
        let Some((last, _)) = files.last() else {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                "no file in the form",
            ));
        };
        let cookie = SetCookie::new("last_upload", last)?.path("/")?.http_only();
        let list: Vec<String> = files
            .iter()
            .map(|(n, size)| format!("{n} ({size} bytes)"))
            .collect();
        Ok(Response::text(format!("saved {}\n", list.join(", "))).with_cookie(&cookie))
    }
}

/// Opens the sink for an upload whose head has arrived (credentials and
/// size already checked by the server).
fn open_upload(req: &Request, dir: &Path) -> Result<Box<dyn BodySink>, HttpError> {
    let boundary = req
        .headers()
        .get_parameter("Content-Type", "boundary")
        .ok_or_else(|| HttpError::new(StatusCode::BAD_REQUEST, "expected multipart/form-data"))?;
    let limits = FormLimits {
        max_total_bytes: MAX_UPLOAD,
        max_file_bytes: MAX_UPLOAD,
        ..FormLimits::default()
    };
    Ok(Box::new(UploadSink {
        parser: MultipartParser::new(boundary, limits)?,
        files: Files {
            dir: dir.to_owned(),
            current: None,
            saved: Vec::new(),
        },
    }))
}

fn main() -> Result<(), pollserve::Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut args = std::env::args().skip(1);
    let port = args.next().and_then(|p| p.parse().ok()).unwrap_or(5000);
    let dir = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("pollserve-uploads-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    println!("saving uploads in {}", dir.display());

    let auth = Authentication::new("uploads").basic("user", "secret");
    let mut server = Server::<()>::new();
    server.route("/", Method::GET, |req, _| {
        let cookies = req.cookies();
        let last = cookies.get("last_upload").unwrap_or("nothing yet");
        Ok(Response::html(format!(
            "<p>Last upload: {}</p>\
             <form method=post action=/upload enctype=multipart/form-data>\
             <input type=file name=file multiple> <input type=submit value=Upload></form>",
            html_escape(last)
        )))
    })?;
    server.add_route(
        Route::streaming("/upload", Method::POST, MAX_UPLOAD, move |req, _| {
            open_upload(req, &dir)
        })
        .require_authentication(auth),
    )?;
    server.start("127.0.0.1", port)?;
    server.serve_forever(&mut ())
}
