//! Static files over real loopback sockets: index files, redirects, MIME
//! types, streaming of large files, path-traversal refusals, validators,
//! conditional requests, byte ranges and `Response::file` in handlers.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use pollserve::{Method, Response};

/// Text only the file outside the served root holds; no response may contain it.
const SECRET: &str = "TOP-SECRET-7f3a9c";
const BIG_LEN: usize = 5 << 20;

/// Deterministic pseudo-random bytes (xorshift64*), so a mismatch is reproducible.
fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// The site every test serves:
///
/// ```text
/// tmp/secret                 outside the root
/// tmp/outside/secret.txt     outside the root
/// tmp/root/index.html, style.css, app.js, logo.png, data.json, blob.xyz,
///          README, range.bin, big.bin, .env, .git/config, report.pdf
/// tmp/root/dir/index.html, dir/page.html, sub/file.txt, empty/
/// tmp/root/leak -> tmp/secret, outdir -> tmp/outside, hidden-link -> .env
/// ```
struct Site {
    _tmp: tempfile::TempDir,
    tmp: PathBuf,
    root: PathBuf,
    big: Vec<u8>,
    range: Vec<u8>,
}

fn site() -> Site {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().to_path_buf();
    let root = t.join("root");
    write(&t.join("secret"), SECRET.as_bytes());
    write(&t.join("outside/secret.txt"), SECRET.as_bytes());
    write(&root.join("index.html"), b"<h1>home</h1>");
    write(&root.join("style.css"), b"body { color: red }");
    write(&root.join("app.js"), b"console.log(1)");
    write(&root.join("logo.png"), b"\x89PNG\r\n\x1a\nfake");
    write(&root.join("data.json"), b"{\"a\":1}");
    write(&root.join("blob.xyz"), b"unknown kind");
    write(&root.join("README"), b"no extension");
    write(&root.join(".env"), SECRET.as_bytes());
    write(&root.join(".git/config"), SECRET.as_bytes());
    write(&root.join("dir/index.html"), b"<h1>dir</h1>");
    write(&root.join("dir/page.html"), b"<p>page</p>");
    write(&root.join("sub/file.txt"), b"sub file");
    write(&root.join("report.pdf"), b"%PDF-1.4 fake");
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let range: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    write(&root.join("range.bin"), &range);
    let big = pseudo_random(BIG_LEN, 0x9e37_79b9_7f4a_7c15);
    write(&root.join("big.bin"), &big);
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink(t.join("secret"), root.join("leak")).unwrap();
        symlink(t.join("outside"), root.join("outdir")).unwrap();
        symlink(root.join(".env"), root.join("hidden-link")).unwrap();
        // A symlink staying inside the root is followed.
        symlink(root.join("dir/page.html"), root.join("page-link.html")).unwrap();
    }
    Site {
        _tmp: tmp,
        tmp: t,
        root,
        big,
        range,
    }
}

/// Serves the site's root plus a few routes.
fn file_server(site: &Site) -> TestServer {
    let root = site.root.clone();
    serve(move |s| {
        s.serve_files(&root).unwrap();
        // Routes win over files of the same path.
        s.route("/style.css", Method::GET, |_, _| {
            Ok(Response::text("from the route"))
        })
        .unwrap();
        s.route("/dir/", Method::GET, |_, _| Ok(Response::text("dir route")))
            .unwrap();
        let report = root.join("report.pdf");
        s.route("/download", Method::GET, move |_, _| {
            Ok(Response::file(&report)?.as_attachment("report é.pdf"))
        })
        .unwrap();
        let missing = root.join("no-such-file.pdf");
        s.route("/missing", Method::GET, move |_, _| {
            Ok(Response::file(&missing)?.as_attachment("x.pdf"))
        })
        .unwrap();
        let dir = root.join("dir");
        s.route("/a-directory", Method::GET, move |_, _| {
            Response::file(&dir)
        })
        .unwrap();
    })
}

/// Static files only, no routes.
fn plain_server(site: &Site) -> TestServer {
    let root = site.root.clone();
    serve(move |s| {
        s.serve_files(&root).unwrap();
    })
}

/// Sends `raw` (which should ask for `Connection: close`) and splits what
/// comes back until close into the head (without the blank line) and all
/// bytes after it — so a body that should not be there is seen.
fn raw_split(addr: SocketAddr, raw: &str) -> (String, Vec<u8>) {
    let out = exchange(addr, raw.as_bytes());
    let at = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&out)));
    (
        String::from_utf8(out[..at].to_vec()).unwrap(),
        out[at + 4..].to_vec(),
    )
}

fn head_field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn status_of(head: &str) -> u16 {
    head[9..12].parse().unwrap()
}

fn get_with(addr: SocketAddr, path: &str, extra: &str) -> Resp {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n"),
    )
}

#[test]
fn index_files_and_directory_redirects() {
    let site = site();
    let srv = plain_server(&site);
    let r = get(srv.addr, "/");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>home</h1>"));
    let r = get(srv.addr, "/index.html");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>home</h1>"));
    let r = get(srv.addr, "/dir/");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>dir</h1>"));
    assert_eq!(
        r.header("content-type"),
        Some("text/html; charset=utf-8"),
        "index files get the MIME type of index.html"
    );
    assert_eq!(get(srv.addr, "/dir/page.html").text(), "<p>page</p>");
    // A directory without its slash: 301 to the slashed URL. The Location is
    // relative ("dir/"), which resolves against /dir to /dir/ (RFC 3986 §5.2).
    let r = get(srv.addr, "/dir");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("dir/"));
    let r = get(srv.addr, "/sub");
    assert_eq!((r.status, r.header("location")), (301, Some("sub/")));
    // The query is not part of the path, and a redirect keeps it.
    assert_eq!(get(srv.addr, "/dir/?x=1").text(), "<h1>dir</h1>");
    let r = get(srv.addr, "/dir?x=1&y=%20");
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("dir/?x=1&y=%20"))
    );
    // A directory without an index file: 404 (no listings).
    assert_eq!(get(srv.addr, "/sub/").status, 404);
    assert_eq!(get(srv.addr, "/empty/").status, 404);
    // A file with a trailing slash, and things that do not exist.
    assert_eq!(get(srv.addr, "/index.html/").status, 404);
    assert_eq!(get(srv.addr, "/nope.html").status, 404);
    assert_eq!(get(srv.addr, "/nope/deeper.html").status, 404);
    assert_eq!(get(srv.addr, "/index.html/deeper").status, 404);
    // Encoded ordinary characters are decoded.
    assert_eq!(get(srv.addr, "/%64ir/page%2Ehtml").text(), "<p>page</p>");
}

#[test]
fn mime_types_by_extension() {
    let site = site();
    let srv = plain_server(&site);
    for (path, mime, body) in [
        (
            "/index.html",
            "text/html; charset=utf-8",
            &b"<h1>home</h1>"[..],
        ),
        (
            "/style.css",
            "text/css; charset=utf-8",
            b"body { color: red }",
        ),
        (
            "/app.js",
            "text/javascript; charset=utf-8",
            b"console.log(1)",
        ),
        ("/logo.png", "image/png", b"\x89PNG\r\n\x1a\nfake"),
        ("/data.json", "application/json", b"{\"a\":1}"),
        ("/report.pdf", "application/pdf", b"%PDF-1.4 fake"),
        ("/blob.xyz", "application/octet-stream", b"unknown kind"),
        ("/README", "application/octet-stream", b"no extension"),
    ] {
        let r = get(srv.addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(mime), "{path}");
        assert_eq!(
            r.header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(r.body, body, "{path}");
    }
}

#[test]
fn head_gives_headers_without_body() {
    let site = site();
    let srv = plain_server(&site);
    let get_r = get(srv.addr, "/data.json");
    let (head, rest) = raw_split(
        srv.addr,
        "HEAD /data.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&head), 200);
    assert!(rest.is_empty(), "HEAD sent a body: {rest:?}");
    for name in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "accept-ranges",
    ] {
        assert_eq!(head_field(&head, name), get_r.header(name), "{name}");
    }
    // HEAD of the big file: its length, no body, and the connection goes on.
    let mut c = connect(srv.addr);
    c.write_all(
        b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /data.json HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let h = read_response(&mut c, true);
    assert_eq!(
        (h.status, h.header("content-length")),
        (200, Some("5242880"))
    );
    assert_eq!(read_response(&mut c, false).text(), "{\"a\":1}");
    // HEAD of a directory without its slash redirects as GET does.
    let (head, rest) = raw_split(
        srv.addr,
        "HEAD /dir HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((status_of(&head), rest.len()), (301, 0));
}

#[test]
fn large_file_arrives_byte_identical() {
    let site = site();
    let srv = plain_server(&site);
    let r = get(srv.addr, "/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("5242880"));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(r.body == site.big, "big.bin differs");
    // Twice on one keep-alive connection: the framing after a streamed body holds.
    let mut c = connect(srv.addr);
    for _ in 0..2 {
        c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let r = read_response(&mut c, false);
        assert!(r.body == site.big, "big.bin differs on keep-alive");
    }
    // A large range from the middle.
    let r = get_with(srv.addr, "/big.bin", "Range: bytes=1000000-3999999\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some("bytes 1000000-3999999/5242880")
    );
    assert!(r.body == site.big[1_000_000..4_000_000], "range differs");
}

#[test]
fn pipelined_after_a_large_file_and_clients_that_leave_mid_file() {
    let site = site();
    let srv = plain_server(&site);
    // Requests pipelined behind a large file are answered after it, in order.
    let mut c = connect(srv.addr);
    c.write_all(
        b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /data.json HTTP/1.1\r\nHost: t\r\n\r\nGET /range.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=-3\r\n\r\n",
    )
    .unwrap();
    assert!(read_response(&mut c, false).body == site.big);
    assert_eq!(read_response(&mut c, false).text(), "{\"a\":1}");
    assert_eq!(read_response(&mut c, false).body, &site.range[997..]);
    // Clients that hang up part-way through big bodies do not hurt the server.
    for _ in 0..5 {
        let mut c = connect(srv.addr);
        c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut buf = vec![0u8; 100_000];
        c.read_exact(&mut buf).unwrap();
        drop(c);
    }
    let r = get(srv.addr, "/big.bin");
    assert!(r.body == site.big);
}

/// A client socket with a small receive buffer, so the server's writes block
/// early and it has to stream under back-pressure.
fn small_buffer_connect(addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(8 * 1024).unwrap();
    s.connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn large_file_to_a_slow_reader() {
    let site = site();
    let srv = plain_server(&site);
    let mut slow = small_buffer_connect(srv.addr);
    slow.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // Let the server fill every buffer and hit WouldBlock.
    std::thread::sleep(Duration::from_millis(300));
    let head = read_response(&mut slow, true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("5242880"));

    let mut body = Vec::with_capacity(BIG_LEN);
    let mut buf = vec![0u8; 8192];
    let mut reads = 0usize;
    let mut checked_other_client = false;
    let started = Instant::now();
    while body.len() < BIG_LEN {
        // Small, varying pieces (1..=8192 bytes).
        let want = (1 + reads * 977 % 8192).min(BIG_LEN - body.len());
        let n = slow.read(&mut buf[..want]).expect("slow read");
        assert!(n > 0, "server closed after {} bytes", body.len());
        body.extend_from_slice(&buf[..n]);
        reads += 1;
        if reads % 64 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        if !checked_other_client && body.len() > BIG_LEN / 3 {
            // A long pause mid-body; meanwhile the server answers others.
            std::thread::sleep(Duration::from_millis(250));
            let t = Instant::now();
            assert_eq!(get(srv.addr, "/data.json").text(), "{\"a\":1}");
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "another client waited {:?} behind the slow one",
                t.elapsed()
            );
            checked_other_client = true;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "slow read took too long"
        );
    }
    assert!(checked_other_client);
    assert!(body == site.big, "big.bin differs for the slow reader");
    // The connection is still in sync for another request.
    slow.write_all(b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut slow, false).text(), "{\"a\":1}");
}

/// Every way of leaving the root or reaching a hidden file, with the status
/// the server answers. Nothing may ever contain the secret.
#[test]
fn traversal_attempts_are_refused() {
    let site = site();
    let srv = plain_server(&site);
    let cases: &[(&str, u16)] = &[
        // `..` plain and percent-encoded (both cases), alone or with an
        // encoded separator: the segment is `..` or contains `/` → 403.
        ("/../secret", 403),
        ("/sub/../../secret", 403),
        ("/%2e%2e/secret", 403),
        ("/%2E%2E/secret", 403),
        ("/%2e%2e%2fsecret", 403),
        ("/%2E%2E%2Fsecret", 403),
        ("/sub/..%2f..%2fsecret", 403),
        ("/sub/%2e%2e%2f%2e%2e%2fsecret", 403),
        ("/./secret", 403),
        ("/%2e/index.html", 403),
        // Encoded backslashes.
        ("/..%5csecret", 403),
        ("/..%5c..%5csecret", 403),
        ("/sub%5c..%5c..%5csecret", 403),
        ("/%5c..%5csecret", 403),
        // NUL.
        ("/secret%00", 403),
        ("/index.html%00.png", 403),
        ("/%00/../secret", 403),
        // Empty segments and absolute paths.
        ("//etc/passwd", 403),
        ("//secret", 403),
        ("/sub//file.txt", 403),
        ("/%2fetc%2fpasswd", 403),
        ("/%2Fetc%2Fpasswd", 403),
        // Windows-ish drive prefixes.
        ("/C:/Windows/win.ini", 403),
        ("/C:%5Csecret", 403),
        ("/c:..%5csecret", 403),
        ("/C%3A%5Csecret", 403),
        ("/C:", 403),
        // Symlinks whose target is outside the root.
        ("/leak", 403),
        ("/outdir/secret.txt", 403),
        ("/outdir/", 403),
        // Dotfiles (and a symlink to one): 404, as if absent.
        ("/.env", 404),
        ("/%2eenv", 404),
        ("/.git/config", 404),
        ("/.git/", 404),
        ("/.git", 404),
        ("/hidden-link", 404),
        // Double encoding is decoded once: a literal file name "%2e%2e".
        ("/%252e%252e/secret", 404),
        // Not UTF-8 after decoding (overlong `.`): the path is a bad request.
        ("/%c0%ae%c0%ae/secret", 400),
    ];
    let mut failures = Vec::new();
    for &(path, want) in cases {
        let r = get(srv.addr, path);
        assert!(
            !r.text().contains(SECRET),
            "{path} returned the secret: {r:?}"
        );
        if r.status != want {
            failures.push(format!("{path}: got {}, want {want}", r.status));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    // Raw targets that a URL library would normalise, sent as bytes. The head
    // parser lets a literal backslash through; the file resolver refuses the
    // segment (403). A target not starting with `/` is a bad request.
    for (target, want) in [
        ("/..\\secret", 403),
        ("/sub\\..\\..\\secret", 403),
        ("/C:\\secret", 403),
        ("/sub/..", 403),
        ("/..", 403),
        ("\\..\\secret", 400),
        ("../secret", 400),
        ("secret", 400),
    ] {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let out = String::from_utf8_lossy(&exchange(srv.addr, raw.as_bytes())).into_owned();
        assert!(!out.contains(SECRET), "{target} returned the secret");
        let status: u16 = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert_eq!(status, want, "{target}: {out:?}");
    }
    // The secret really is where `..` would lead, and the in-root symlink works.
    assert_eq!(
        std::fs::read_to_string(site.tmp.join("secret")).unwrap(),
        SECRET
    );
    #[cfg(unix)]
    assert_eq!(get(srv.addr, "/page-link.html").text(), "<p>page</p>");
}

#[test]
fn validators_and_conditional_requests() {
    let site = site();
    let srv = plain_server(&site);
    let r = get(srv.addr, "/data.json");
    let etag = r.header("etag").expect("ETag").to_owned();
    let last_modified = r.header("last-modified").expect("Last-Modified").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag: {etag}"
    );
    assert!(
        httpdate::parse_http_date(&last_modified).is_ok(),
        "{last_modified}"
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    // The same file gives the same validators.
    assert_eq!(get(srv.addr, "/data.json").header("etag"), Some(&*etag));

    // If-None-Match with the ETag: 304, validators repeated, no body at all.
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".into(),
    ] {
        let (head, rest) = raw_split(
            srv.addr,
            &format!(
                "GET /data.json HTTP/1.1\r\nHost: t\r\nIf-None-Match: {inm}\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(status_of(&head), 304, "If-None-Match: {inm}");
        assert!(rest.is_empty(), "304 with a body: {rest:?}");
        assert_eq!(head_field(&head, "etag"), Some(&*etag));
        assert_eq!(head_field(&head, "content-length"), None);
    }
    // A 304 keeps the connection usable.
    let mut c = connect(srv.addr);
    write!(
        c,
        "GET /data.json HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\nGET /app.js HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    .unwrap();
    assert_eq!(read_response(&mut c, false).status, 304);
    assert_eq!(read_response(&mut c, false).text(), "console.log(1)");
    // Another tag: full response.
    let r = get_with(srv.addr, "/data.json", "If-None-Match: \"other\"\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "{\"a\":1}"));

    // If-Modified-Since: its own Last-Modified or later → 304; earlier → 200.
    let (head, rest) = raw_split(
        srv.addr,
        &format!("GET /data.json HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {last_modified}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!((status_of(&head), rest.len()), (304, 0));
    let r = get_with(
        srv.addr,
        "/data.json",
        "If-Modified-Since: Fri, 31 Dec 2100 23:59:59 GMT\r\n",
    );
    assert_eq!(r.status, 304);
    let r = get_with(
        srv.addr,
        "/data.json",
        "If-Modified-Since: Thu, 01 Jan 1970 00:00:01 GMT\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "{\"a\":1}"));
    // An unparsable date is ignored.
    let r = get_with(srv.addr, "/data.json", "If-Modified-Since: yesterday\r\n");
    assert_eq!(r.status, 200);
    // If-None-Match wins over If-Modified-Since.
    let r = get_with(
        srv.addr,
        "/data.json",
        &format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {last_modified}\r\n"),
    );
    assert_eq!(r.status, 200);
    // HEAD is conditional too.
    let (head, rest) = raw_split(
        srv.addr,
        &format!("HEAD /data.json HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!((status_of(&head), rest.len()), (304, 0));

    // If-Match / If-Unmodified-Since.
    let r = get_with(srv.addr, "/data.json", "If-Match: \"other\"\r\n");
    assert_eq!(r.status, 412);
    let r = get_with(srv.addr, "/data.json", &format!("If-Match: {etag}\r\n"));
    assert_eq!(r.status, 200);
    let r = get_with(
        srv.addr,
        "/data.json",
        "If-Unmodified-Since: Thu, 01 Jan 1970 00:00:01 GMT\r\n",
    );
    assert_eq!(r.status, 412);

    // Changing the file changes the ETag; the old one no longer matches.
    std::fs::write(site.root.join("data.json"), b"{\"a\":2,\"b\":3}").unwrap();
    let r = get_with(
        srv.addr,
        "/data.json",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!((r.status, r.text().as_str()), (200, "{\"a\":2,\"b\":3}"));
    assert_ne!(r.header("etag"), Some(&*etag));
}

#[test]
fn byte_ranges() {
    let site = site();
    let srv = plain_server(&site);
    let data = &site.range;
    let len = data.len();

    let r = get_with(srv.addr, "/range.bin", "Range: bytes=0-9\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-9/1000"));
    assert_eq!(r.header("content-length"), Some("10"));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.body, &data[..10]);

    // Exactly those bytes: nothing follows the 10 bytes on the wire.
    let (head, rest) = raw_split(
        srv.addr,
        "GET /range.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&head), 206);
    assert_eq!(rest, &data[..10]);

    // Suffix.
    let r = get_with(srv.addr, "/range.bin", "Range: bytes=-5\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 995-999/1000"));
    assert_eq!(r.body, &data[len - 5..]);
    // Open-ended.
    let r = get_with(srv.addr, "/range.bin", "Range: bytes=10-\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 10-999/1000"));
    assert_eq!(r.body, &data[10..]);
    // End past the file: clamped.
    let r = get_with(srv.addr, "/range.bin", "Range: bytes=990-5000\r\n");
    assert_eq!(r.header("content-range"), Some("bytes 990-999/1000"));
    assert_eq!(r.body, &data[990..]);
    // A one-byte range in the middle.
    let r = get_with(srv.addr, "/range.bin", "Range: bytes=500-500\r\n");
    assert_eq!((r.status, r.body.as_slice()), (206, &data[500..501]));

    // Unsatisfiable: 416 with the current length, no body.
    let (head, rest) = raw_split(
        srv.addr,
        "GET /range.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=999999-\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&head), 416);
    assert_eq!(head_field(&head, "content-range"), Some("bytes */1000"));
    assert!(rest.is_empty(), "{rest:?}");
    let r = get_with(srv.addr, "/range.bin", "Range: bytes=1000-1000\r\n");
    assert_eq!(r.status, 416);

    // Ranges the server cannot parse: ignored, full 200. (Several ranges
    // are answered: see `several_byte_ranges_answer_206_multipart`.)
    for h in ["bytes=9-5", "items=0-9", "bytes=abc", "bytes=0-1,abc"] {
        let r = get_with(srv.addr, "/range.bin", &format!("Range: {h}\r\n"));
        assert_eq!((r.status, r.body.len()), (200, len), "Range: {h}");
        assert_eq!(r.header("content-range"), None);
    }

    // If-Range: the current ETag or date → range; a stale ETag → full 200.
    let full = get(srv.addr, "/range.bin");
    let etag = full.header("etag").unwrap();
    let lm = full.header("last-modified").unwrap();
    let r = get_with(
        srv.addr,
        "/range.bin",
        &format!("Range: bytes=0-9\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &data[..10]));
    let r = get_with(
        srv.addr,
        "/range.bin",
        &format!("Range: bytes=0-9\r\nIf-Range: {lm}\r\n"),
    );
    assert_eq!(r.status, 206);
    let r = get_with(
        srv.addr,
        "/range.bin",
        "Range: bytes=0-9\r\nIf-Range: \"3e8-0\"\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-range"), None);
    assert_eq!(r.body, *data);
    // HEAD with a range: 206 head, no body.
    let (head, rest) = raw_split(
        srv.addr,
        "HEAD /range.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&head), 206);
    assert_eq!(head_field(&head, "content-length"), Some("10"));
    assert!(rest.is_empty());
}

/// The `multipart/byteranges` body expected for `spans` of `data`, with
/// the boundary the response announced and parts labelled `part_type`.
fn multipart_body(
    boundary: &str,
    part_type: &str,
    data: &[u8],
    spans: &[(usize, usize)],
) -> Vec<u8> {
    let mut out = Vec::new();
    for &(start, end) in spans {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: {part_type}\r\nContent-Range: bytes {start}-{end}/{}\r\n\r\n",
                data.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&data[start..=end]);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// The boundary of a `multipart/byteranges` Content-Type.
fn boundary_of(content_type: &str) -> &str {
    content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart/byteranges: {content_type}"))
}

#[test]
fn several_byte_ranges_answer_206_multipart() {
    let site = site();
    let srv = file_server(&site);
    let data = &site.range;
    let octets = "application/octet-stream";

    // Two ranges: 206, one part each, exact Content-Length, exact bytes
    // (read on a kept-alive connection: the next response parses after it).
    let mut c = connect(srv.addr);
    for _ in 0..2 {
        c.write_all(b"GET /range.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9,20-29\r\n\r\n")
            .unwrap();
        let r = read_response(&mut c, false);
        assert_eq!(r.status, 206);
        assert_eq!(r.header("content-range"), None);
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert!(r.header("etag").is_some());
        let boundary = boundary_of(r.header("content-type").unwrap());
        let expected = multipart_body(boundary, octets, data, &[(0, 9), (20, 29)]);
        assert_eq!(
            r.header("content-length"),
            Some(&*expected.len().to_string())
        );
        assert_eq!(r.body, expected);
    }
    c.write_all(b"GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut c, false).text(), "{\"a\":1}");

    // Exactly those bytes on the wire, nothing after; order as asked,
    // suffix and open ranges, overlapping ones coalesced.
    let (head, rest) = raw_split(
        srv.addr,
        "GET /range.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=-10, 100-199,150-249, 5-5\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&head), 206);
    let boundary = boundary_of(head_field(&head, "content-type").unwrap());
    let spans = [(990, 999), (100, 249), (5, 5)];
    assert_eq!(rest, multipart_body(boundary, octets, data, &spans));
    assert_eq!(
        head_field(&head, "content-length"),
        Some(&*rest.len().to_string())
    );

    // Adjacent ranges coalesce into one: today's single-range answer.
    let r = get_with(srv.addr, "/range.bin", "Range: bytes=0-9,10-19\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-19/1000"));
    assert_eq!(r.header("content-type"), Some(octets));
    assert_eq!(r.body, &data[..20]);
    // An unsatisfiable range among others is dropped; all of them: 416.
    let r = get_with(srv.addr, "/range.bin", "Range: bytes=0-9,5000-\r\n");
    assert_eq!(
        (r.status, r.header("content-range")),
        (206, Some("bytes 0-9/1000"))
    );
    let r = get_with(srv.addr, "/range.bin", "Range: bytes=2000-3000,5000-\r\n");
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */1000"))
    );

    // Amplification: more bytes in all than the file, or more than 16
    // ranges, get the whole file once.
    let seventeen: Vec<String> = (0..17).map(|i| format!("{}-{}", i * 10, i * 10)).collect();
    let sixteen = &seventeen[..16];
    for h in [
        "bytes=0-,0-".to_owned(),
        "bytes=0-999,0-999,0-999".to_owned(),
        format!("bytes={}", seventeen.join(",")),
    ] {
        let r = get_with(srv.addr, "/range.bin", &format!("Range: {h}\r\n"));
        assert_eq!((r.status, r.body.as_slice()), (200, data.as_slice()), "{h}");
        assert_eq!(r.header("content-type"), Some(octets));
    }
    let r = get_with(
        srv.addr,
        "/range.bin",
        &format!("Range: bytes={}\r\n", sixteen.join(",")),
    );
    assert_eq!(r.status, 206);
    let spans: Vec<(usize, usize)> = (0..16).map(|i| (i * 10, i * 10)).collect();
    let boundary = boundary_of(r.header("content-type").unwrap());
    assert_eq!(r.body, multipart_body(boundary, octets, data, &spans));

    // HEAD: the same head, no body.
    let (head, rest) = raw_split(
        srv.addr,
        "HEAD /range.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9,20-29\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&head), 206);
    let boundary = boundary_of(head_field(&head, "content-type").unwrap());
    let len = multipart_body(boundary, octets, data, &[(0, 9), (20, 29)]).len();
    assert_eq!(head_field(&head, "content-length"), Some(&*len.to_string()));
    assert!(rest.is_empty());

    // Response::file in a handler, with its own type.
    let pdf = b"%PDF-1.4 fake";
    let r = get_with(srv.addr, "/download", "Range: bytes=0-3,9-12\r\n");
    assert_eq!(r.status, 206);
    let boundary = boundary_of(r.header("content-type").unwrap());
    assert_eq!(
        r.body,
        multipart_body(boundary, "application/pdf", pdf, &[(0, 3), (9, 12)])
    );
    assert!(r.header("content-disposition").is_some());

    // Large parts of a 5 MiB file stream through (never whole in memory).
    let big = &site.big;
    let (a, b) = ((1000, 1_500_999), (3_000_000, BIG_LEN - 1));
    let r = get_with(
        srv.addr,
        "/big.bin",
        &format!("Range: bytes={}-{},{}-\r\n", a.0, a.1, b.0),
    );
    assert_eq!(r.status, 206);
    let boundary = boundary_of(r.header("content-type").unwrap());
    let expected = multipart_body(boundary, octets, big, &[a, b]);
    assert_eq!(r.body.len(), expected.len());
    assert!(r.body == expected, "multipart body of big.bin differs");
}

#[test]
fn several_byte_ranges_read_by_curl() {
    if have_curl("several_byte_ranges_read_by_curl").is_none() {
        return;
    }
    let site = site();
    let srv = plain_server(&site);
    let out = run(curl().args(["-D", "-", "-r", "0-9,20-29", &srv.url("/range.bin")]));
    assert!(out.status.success(), "curl failed: {}", out.stderr);
    let at = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head");
    let head = String::from_utf8(out.stdout[..at].to_vec()).unwrap();
    assert_eq!(status_of(&head), 206);
    let boundary = boundary_of(head_field(&head, "content-type").unwrap());
    let expected = multipart_body(
        boundary,
        "application/octet-stream",
        &site.range,
        &[(0, 9), (20, 29)],
    );
    assert_eq!(out.stdout[at + 4..], expected);
}

#[test]
fn several_byte_ranges_parsed_by_python() {
    let Some(py) = python("several_byte_ranges_parsed_by_python") else {
        return;
    };
    let site = site();
    let srv = plain_server(&site);
    let v = run_python(
        &py,
        r#"
import email.parser, email.policy, requests
r = requests.get(base + "/range.bin", headers={"Range": "bytes=0-9,20-29,-5"}, timeout=T)
raw = b"Content-Type: " + r.headers["content-type"].encode() + b"\r\n\r\n" + r.content
msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
parts = [
    {"type": p.get_content_type(), "range": p["Content-Range"], "hex": p.get_payload(decode=True).hex()}
    for p in msg.iter_parts()
]
print(json.dumps({
    "status": r.status_code,
    "multipart": msg.get_content_type(),
    "length": int(r.headers["content-length"]) == len(r.content),
    "parts": parts,
}))
"#,
        &srv.url(""),
        &[],
    );
    assert_eq!(v["status"], 206);
    assert_eq!(v["multipart"], "multipart/byteranges");
    assert_eq!(v["length"], true);
    let parts = v["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3, "{v}");
    let data = &site.range;
    for (part, (start, end)) in parts.iter().zip([(0, 9), (20, 29), (995, 999)]) {
        assert_eq!(part["type"], "application/octet-stream");
        assert_eq!(part["range"], format!("bytes {start}-{end}/1000"));
        let hex: String = data[start..=end]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(part["hex"], hex, "{part}");
    }
}

#[test]
fn routes_take_precedence_over_files() {
    let site = site();
    let srv = file_server(&site);
    let r = get(srv.addr, "/style.css");
    assert_eq!((r.status, r.text().as_str()), (200, "from the route"));
    assert_eq!(get(srv.addr, "/dir/").text(), "dir route");
    // Other files are still served.
    assert_eq!(get(srv.addr, "/dir/page.html").text(), "<p>page</p>");
    assert_eq!(get(srv.addr, "/").text(), "<h1>home</h1>");
}

/// The server serves files for GET and HEAD only. Any other method on a
/// path the static root serves gets `405 Method Not Allowed` with
/// `Allow: GET, HEAD` (the resource exists); a path it does not serve stays
/// `404`.
#[test]
fn other_methods_on_static_paths() {
    let site = site();
    let srv = plain_server(&site);
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for path in ["/data.json", "/", "/dir/", "/dir"] {
            let r = request(
                srv.addr,
                &format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"),
            );
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
            assert!(!r.text().contains("{\"a\""), "{method} {path}");
        }
        // Missing, hidden, outside the root, or a directory without an index
        // (no listings here): not served, so 404 (403 is not revealed).
        for path in ["/nope.json", "/.env", "/sub/", "/leak"] {
            let r = request(
                srv.addr,
                &format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"),
            );
            assert_eq!(r.status, 404, "{method} {path}");
        }
    }
    // The file itself is unchanged.
    assert_eq!(get(srv.addr, "/data.json").text(), "{\"a\":1}");
}

#[test]
fn response_file_in_a_handler() {
    let site = site();
    let srv = file_server(&site);
    let r = get(srv.addr, "/download");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "%PDF-1.4 fake");
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"report _.pdf\"; filename*=UTF-8''report%20%C3%A9.pdf")
    );
    // Validators and ranges apply to handler files as well.
    let etag = r.header("etag").expect("ETag").to_owned();
    assert!(r.header("last-modified").is_some());
    let r = get_with(srv.addr, "/download", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(r.status, 304);
    let r = get_with(srv.addr, "/download", "Range: bytes=0-3\r\n");
    assert_eq!((r.status, r.text().as_str()), (206, "%PDF"));
    // A missing file is a 404, a directory too.
    let r = get(srv.addr, "/missing");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-disposition"), None);
    assert_eq!(get(srv.addr, "/a-directory").status, 404);
}

/// A file shorter than the length its response promised (truncated after it
/// was opened; simulated by inflating `ResolvedFile::len`): the bytes that
/// exist are sent and the connection is closed, so the client sees a short
/// body instead of waiting or reading the next response as body. Both the
/// small-file path (read after the head) and the large-file path
/// (sendfile / streamed) are covered; the server keeps serving.
#[test]
fn file_shorter_than_promised_ends_the_connection() {
    let site = site();
    let root = site.root.clone();
    let srv = serve(move |s| {
        for (route, name) in [("/short-small", "range.bin"), ("/short-big", "big.bin")] {
            let sr = pollserve::files::StaticRoot::new(&root).unwrap();
            s.route(route, Method::GET, move |_, _| {
                let mut f = sr.resolve(&[name]).map_err(pollserve::HttpError::from)?;
                f.len += 100;
                Ok(Response::from(f))
            })
            .unwrap();
        }
    });
    // Each twice: the server keeps serving after cutting a response short.
    let cases = [("/short-small", &site.range), ("/short-big", &site.big)];
    for (route, real) in cases.into_iter().chain(cases) {
        let mut c = connect(srv.addr);
        c.write_all(format!("GET {route} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        let all = read_to_close(&mut c);
        let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&all[..split]).to_string();
        assert_eq!(status_of(&head), 200, "{head}");
        let promised: usize = head_field(&head, "content-length")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(promised, real.len() + 100);
        assert!(
            &all[split..] == real.as_slice(),
            "{route}: body differs from the file"
        );
    }
}

/// Several ranges to a client that does not read: the parts' file bytes go
/// from the file to the socket (`sendfile`, as for one range), so the
/// server's write buffer holds at most a part head, not a copy of the file.
#[cfg(target_os = "linux")]
#[test]
fn several_byte_ranges_to_a_non_reader_hold_no_copy_of_the_file() {
    let site = site();
    let srv = plain_server(&site);
    let half = BIG_LEN / 2;
    let mut s = connect_with_buffers(srv.addr, Some(4096), None);
    write!(
        s,
        "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-{},{}-\r\n\r\n",
        half - 2,
        half
    )
    .unwrap();
    // The server writes until the socket is full, then waits.
    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let stats = srv.on_server(|server, _| server.stats());
        if stats.connections == 1 && stats.output_buffered > 0 || Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(200));
    let stats = srv.on_server(move |server, _| {
        let now = server.stats();
        (stats, now)
    });
    let (_, now) = stats;
    assert_eq!(now.connections, 1);
    assert!(
        now.output_buffered < 4096,
        "a non-reader of a {BIG_LEN}-byte multi-range answer holds {} bytes of output",
        now.output_buffered
    );
    // And the whole body is right once the client reads.
    let (head, body) = {
        let mut all = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let boundary_end = loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early");
            all.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&all);
            if let Some(b) = text
                .split("boundary=")
                .nth(1)
                .and_then(|r| r.split("\r\n").next())
            {
                let end = format!("--{b}--\r\n");
                if all.ends_with(end.as_bytes()) {
                    break end;
                }
            }
        };
        let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let _ = boundary_end;
        (
            String::from_utf8_lossy(&all[..split]).into_owned(),
            all[split..].to_vec(),
        )
    };
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    let length: usize = head_field(&head, "content-length")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(body.len(), length);
    // Both parts' bytes, in order, between their heads.
    let first = &site.big[..half - 1];
    let second = &site.big[half..];
    let at = body
        .windows(first.len().min(64))
        .position(|w| w == &first[..64])
        .unwrap();
    assert_eq!(&body[at..at + first.len()], first);
    let at2 = body.windows(64).rposition(|w| w == &second[..64]).unwrap();
    assert_eq!(&body[at2..at2 + second.len()], second);
}
