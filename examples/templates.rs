//! HTML from templates with `minijinja` — `adafruit_httpserver`'s `httpserver_templates.py`
//! (which uses `adafruit_templateengine`): a directory listing of
//! `examples/static/`.
//!
//! `?path=` names a file or directory under the root. It is resolved with
//! [`StaticRoot::resolve_entry`], which refuses `..`, dotfiles and symlinks
//! out of the root, instead of filtering the string as the Python example
//! does. Files are returned as they are; directories are rendered by the
//! template, whose `.html` name turns on minijinja's HTML auto-escaping for
//! the file names. As in the Python example's template, sub-directories come
//! first, `..` leads to the parent directory, and a search box hides the
//! entries that do not match what is typed.
//!
//! `cargo run --example templates [PORT]`, then open <http://127.0.0.1:5000/>.
use minijinja::{context, Environment};
use pollserve::files::{FileError, Resolved, StaticRoot};
use pollserve::{HttpError, Method, Request, Response, Server};
use std::path::{Path, PathBuf};

const LISTING: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>/{{ path }}</title></head>
<body>
  <h1>Index of /{{ path }}</h1>
  <input type="search" placeholder="Search...">
  <ul>
    {% if path %}<li><a href="/?path={{ parent | urlencode }}">..</a></li>{% endif %}
    {% for item in items %}
    <li><a href="/?path={{ (path ~ item) | urlencode }}">{{ item }}</a></li>
    {% endfor %}
  </ul>
  <script>
    const search = document.querySelector('input[type=search]');
    search.oninput = () => {
      const term = search.value.toLowerCase();
      for (const entry of document.querySelectorAll('li')) {
        entry.hidden = !entry.textContent.toLowerCase().includes(term);
      }
    };
  </script>
</body>
</html>
"#;

struct App {
    templates: Environment<'static>,
    root: StaticRoot,
}

/// Directory entries, sub-directories first (with a trailing `/`), dotfiles left out.
fn entries(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut items = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let is_dir = entry.file_type()?.is_dir();
        items.push(if is_dir { format!("{name}/") } else { name });
    }
    items.sort_by_key(|item| (!item.ends_with('/'), item.clone()));
    Ok(items)
}

/// The directory above `path`, with its trailing slash: `a/b/` gives `a/`,
/// `a/` gives the root, ``.
fn parent(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    trimmed.rfind('/').map_or("", |slash| &path[..=slash])
}

fn browse(req: &Request, app: &mut App) -> Result<Response, HttpError> {
    let mut path = req.query().get("path").unwrap_or("").to_owned();
    let mut found = app.root.resolve_entry(&path.split('/').collect::<Vec<_>>());
    if let Err(FileError::Redirect(_)) = found {
        // A directory named without its trailing slash: list it all the same.
        path.push('/');
        found = app.root.resolve_entry(&path.split('/').collect::<Vec<_>>());
    }
    let dir = match found {
        Ok(Resolved::File(file)) => return Response::file(&file.path),
        Ok(Resolved::Directory(dir)) => dir,
        Err(FileError::Forbidden) => return Err(HttpError::forbidden()),
        Err(_) => return Err(HttpError::not_found()),
    };
    let items = entries(&dir)?;
    let html = app
        .templates
        .get_template("listing.html")
        .and_then(|t| t.render(context! { parent => parent(&path), path, items }))
        .map_err(|e| HttpError::internal(format!("template error: {e}")))?;
    Ok(Response::html(html))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut templates = Environment::new();
    templates.add_template("listing.html", LISTING)?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/static");
    // No index file: every directory is listed by the template.
    let root = StaticRoot::new(dir)?.with_index_file(None);

    let mut server = Server::<App>::new();
    server.route("/", Method::GET, browse)?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    server.serve_forever(&mut App { templates, root })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parent;

    #[test]
    fn parent_directories() {
        assert_eq!(parent("docs/"), "");
        assert_eq!(parent("docs/sub/"), "docs/");
        assert_eq!(parent("a/b/c/"), "a/b/");
        assert_eq!(parent(""), "");
    }
}
