//! HTTPS and WSS (feature `tls`) over loopback: a rustls client over TLS 1.2
//! and 1.3, curl, Python `websockets` and `httpx`, and raw sockets for the
//! hostile cases. Certificates are made at test time with `rcgen` (a test CA
//! and server certificates it signed); no key is committed.
//!
//! Python is the venv interpreter named by `POLLSERVE_TEST_PYTHON` (see
//! `tests/interop.rs`); without it, or without `curl`, those tests print
//! `SKIPPED` and pass.
#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::tls::*;
use common::*;
use pollserve::sse::SseId;
use pollserve::tls::{TlsConfig, TlsError};
use pollserve::ws::WsId;
use pollserve::{Method, Response, Server, ServerConfig};
use rustls::pki_types::ServerName;

// ---------------------------------------------------------------------------
// Servers and the rustls client
// ---------------------------------------------------------------------------

/// A test server listening on a plain port (`.addr`, from the harness) and
/// on a TLS port (returned) with `tls`.
fn tls_server<S: Send + 'static>(
    config: ServerConfig,
    state: S,
    after_poll: impl FnMut(&mut Server<S>, &mut S) + Send + 'static,
    tls: TlsConfig,
    setup: impl FnOnce(&mut Server<S>) + Send + 'static,
) -> (TestServer<S>, SocketAddr) {
    let (tx, rx) = mpsc::channel();
    let server = serve_loop(config, state, after_poll, move |s| {
        setup(s);
        tx.send(s.start_tls("127.0.0.1", 0, tls).unwrap()).unwrap();
    });
    let https = rx.recv().unwrap();
    (server, https)
}

/// The routes most tests use: `/` and `/<page>` (hello), `/echo` (POST body back),
/// `/chunked`, `/big` (1 MiB from memory).
fn routes<S>(s: &mut Server<S>) {
    s.route("/echo", Method::POST, |req, _| {
        Ok(Response::bytes(
            "application/octet-stream",
            req.body().to_vec(),
        ))
    })
    .unwrap();
    s.route("/chunked", Method::GET, |_, _| {
        Ok(Response::chunked(
            "text/plain",
            (0..50).map(|i| format!("line {i}\n")),
        ))
    })
    .unwrap();
    s.route("/big", Method::GET, |_, _| {
        Ok(Response::bytes(
            "application/octet-stream",
            pattern(1 << 20),
        ))
    })
    .unwrap();
    s.route("/scheme", Method::GET, |req, _| {
        Ok(Response::text(if req.is_tls() { "https" } else { "http" }))
    })
    .unwrap();
    for pattern in ["/", "/<page>"] {
        s.route(pattern, Method::GET, |req, _| {
            Ok(Response::text(format!("hello over {}", req.path())))
        })
        .unwrap();
    }
}

fn basic_server() -> (TestServer, SocketAddr) {
    tls_server(
        ServerConfig::default(),
        (),
        idle,
        pki().server.tls(),
        routes,
    )
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn https_get(addr: SocketAddr, path: &str) -> Resp {
    let mut s = tls_connect(addr, &tls13());
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_response(&mut s, false)
}

fn curl_available(test: &str) -> bool {
    if Command::new("curl").arg("--version").output().is_ok() {
        return true;
    }
    skipped(&format!("{test}: no curl on the PATH"));
    false
}

// ---------------------------------------------------------------------------
// Protocol: versions, ALPN, keep-alive, pipelining, resumption
// ---------------------------------------------------------------------------

#[test]
fn tls13_and_tls12_keep_alive_pipelining_and_alpn() {
    let (srv, https) = basic_server();
    for (config, version) in [
        (tls13(), rustls::ProtocolVersion::TLSv1_3),
        (tls12(), rustls::ProtocolVersion::TLSv1_2),
    ] {
        let mut s = tls_connect(https, &config);
        assert_eq!(s.conn.protocol_version(), Some(version));
        assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        // Three pipelined requests in one write, a POST with a body among them.
        let body = pattern(100_000);
        let mut raw = b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec();
        raw.extend_from_slice(
            format!(
                "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        raw.extend_from_slice(&body);
        raw.extend_from_slice(b"GET /chunked HTTP/1.1\r\nHost: localhost\r\n\r\n");
        s.write_all(&raw).unwrap();
        let a = read_response(&mut s, false);
        assert_eq!((a.status, a.text()), (200, "hello over /a".to_string()));
        let echo = read_response(&mut s, false);
        assert_eq!(echo.status, 200);
        assert!(echo.body == body, "echoed body differs");
        let chunked = read_response(&mut s, false);
        assert_eq!(chunked.header("transfer-encoding"), Some("chunked"));
        assert!(chunked.text().starts_with("line 0\nline 1\n"));
        assert!(chunked.text().ends_with("line 49\n"));
        // Kept alive: one more request, then the server closes on request.
        s.write_all(b"GET /big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let big = read_response(&mut s, false);
        assert!(big.body == pattern(1 << 20), "1 MiB body differs");
        assert_eq!(
            read_to_close(&mut s),
            b"",
            "close_notify after the last response"
        );
    }
    assert_eq!(srv.accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[test]
fn session_resumption_on_a_second_connection() {
    let (_srv, https) = basic_server();
    for config in [tls13(), tls12()] {
        for round in 0..2 {
            let mut s = tls_connect(https, &config);
            s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            assert_eq!(read_response(&mut s, false).status, 200);
            // TLS 1.3 tickets arrive after the handshake: read to the end.
            read_to_close(&mut s);
            let expected = if round == 0 {
                rustls::HandshakeKind::Full
            } else {
                rustls::HandshakeKind::Resumed
            };
            assert_eq!(
                s.conn.handshake_kind(),
                Some(expected),
                "round {round} with {:?}",
                s.conn.protocol_version()
            );
        }
    }
}

#[test]
fn a_plain_and_a_tls_listener_on_one_server() {
    let (srv, https) = basic_server();
    assert_eq!(get(srv.addr, "/p").text(), "hello over /p");
    assert_eq!(https_get(https, "/t").text(), "hello over /t");
    // A handler can tell which listener the request came through.
    assert_eq!(get(srv.addr, "/scheme").text(), "http");
    assert_eq!(https_get(https, "/scheme").text(), "https");
    let addrs = srv.on_server(|s, _| (s.local_addr(), s.tls_local_addr()));
    assert_eq!(addrs, (Some(srv.addr), Some(https)));
}

// ---------------------------------------------------------------------------
// Independent clients: curl, Python
// ---------------------------------------------------------------------------

#[test]
fn curl_over_tls12_and_tls13() {
    if !curl_available("curl_over_tls12_and_tls13") {
        return;
    }
    let (_srv, https) = basic_server();
    for (flags, version) in [
        (&["--tlsv1.2", "--tls-max", "1.2"][..], "TLSv1.2"),
        (&["--tlsv1.3"][..], "TLSv1.3"),
    ] {
        let out = run(Command::new("curl")
            .args(["-sS", "-v", "--max-time", "20", "--cacert"])
            .arg(&pki().ca_file)
            .args(flags)
            .arg(format!("https://localhost:{}/curl", https.port()))
            .args([
                "--resolve",
                &format!("localhost:{}:127.0.0.1", https.port()),
            ]));
        assert!(out.status.success(), "curl failed: {}", out.stderr);
        assert_eq!(out.stdout_text(), "hello over /curl");
        assert!(
            out.stderr.contains(version),
            "curl did not report {version}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("http/1.1"), "ALPN: {}", out.stderr);
    }
}

#[test]
fn ten_mib_file_intact_over_https_and_with_range() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(10 << 20);
    std::fs::write(dir.path().join("big.bin"), &data).unwrap();
    let root = dir.path().to_path_buf();
    let (_srv, https) = tls_server(
        ServerConfig::default(),
        (),
        idle,
        pki().server.tls(),
        move |s| {
            s.serve_files(&root).unwrap();
        },
    );
    for config in [tls13(), tls12()] {
        let mut s = tls_connect(https, &config);
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let whole = read_response(&mut s, false);
        assert_eq!(whole.status, 200);
        assert_eq!(whole.body.len(), data.len());
        assert!(whole.body == data, "file bytes differ");
        // Same connection: a range across the middle.
        let (from, to) = (1_000_003usize, 7_654_321usize);
        write!(
            s,
            "GET /big.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes={from}-{to}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let part = read_response(&mut s, false);
        assert_eq!(part.status, 206);
        assert_eq!(
            part.header("content-range"),
            Some(format!("bytes {from}-{to}/{}", data.len()).as_str())
        );
        assert!(part.body == data[from..=to], "range bytes differ");
    }
}

#[test]
fn a_large_file_to_a_client_that_reads_late_arrives_whole() {
    // The server fills the socket, keeps the rest (in rustls and its own
    // buffer) and resumes on writability.
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(4 << 20);
    std::fs::write(dir.path().join("f.bin"), &data).unwrap();
    let root = dir.path().to_path_buf();
    let (_srv, https) = tls_server(
        ServerConfig::default(),
        (),
        idle,
        pki().server.tls(),
        move |s| {
            s.serve_files(&root).unwrap();
        },
    );
    let mut s = tls_connect(https, &tls13());
    s.write_all(b"GET /f.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let r = read_response(&mut s, false);
    assert!(r.body == data, "file bytes differ");
}

/// `/ws` accepts a WebSocket; after every poll each message is echoed.
fn ws_echo(server: &mut Server<Vec<WsId>>, ids: &mut Vec<WsId>) {
    for &id in ids.iter() {
        while let Some(m) = server.ws(id).receive() {
            server.ws(id).send(&m).unwrap();
        }
    }
    ids.retain(|&id| !server.ws(id).is_closed());
}

fn ws_route(s: &mut Server<Vec<WsId>>) {
    s.route("/ws", Method::GET, |req, ids: &mut Vec<WsId>| {
        let (resp, id) = req.accept_websocket()?;
        ids.push(id);
        Ok(resp)
    })
    .unwrap();
}

#[test]
fn wss_with_python_websockets_fragments_and_ping() {
    let Some(py) = python("wss_with_python_websockets_fragments_and_ping") else {
        return;
    };
    let (_srv, https) = tls_server(
        ServerConfig::default(),
        Vec::new(),
        ws_echo,
        pki().server.tls(),
        ws_route,
    );
    let script = r#"
import asyncio, ssl, sys, websockets
async def main(url, ca):
    ctx = ssl.create_default_context(cafile=ca)
    async with websockets.connect(url, ssl=ctx, max_size=None) as ws:
        await ws.send("héllo"); assert await ws.recv() == "héllo"
        big = bytes(i * 7 % 251 for i in range(1_000_000))
        await ws.send(big); assert await ws.recv() == big
        await ws.send(["frag", "ment", "ed é"]); assert await ws.recv() == "fragmented é"
        await ws.send([b"\x00\x01", b"\x02"]); assert await ws.recv() == b"\x00\x01\x02"
        waiter = await ws.ping(b"py"); await asyncio.wait_for(waiter, 5)
        for i in range(100):
            await ws.send(f"m{i}")
        for i in range(100):
            assert await ws.recv() == f"m{i}"
    assert ws.close_code == 1000, ws.close_code
    print("wss ok", ws.transport.get_extra_info("ssl_object").version())
asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;
    let out = run(Command::new(&py)
        .arg("-c")
        .arg(script)
        .arg(format!("wss://localhost:{}/ws", https.port()))
        .arg(&pki().ca_file));
    let text = format!("{}{}", out.stdout_text(), out.stderr);
    assert!(
        out.status.success() && text.contains("wss ok TLSv1.3"),
        "{text}"
    );
}

#[test]
fn sse_over_https_with_httpx() {
    let Some(py) = python("sse_over_https_with_httpx") else {
        return;
    };
    #[derive(Default)]
    struct State {
        streams: Vec<SseId>,
        sent: usize,
    }
    let push = |server: &mut Server<State>, st: &mut State| {
        for &id in &st.streams {
            if st.sent < 3
                && server
                    .sse(id)
                    .send_data(&format!("tick {}", st.sent))
                    .is_ok()
            {
                st.sent += 1;
            }
        }
    };
    let (_srv, https) = tls_server(
        ServerConfig::default(),
        State::default(),
        push,
        pki().server.tls(),
        |s| {
            s.route("/events", Method::GET, |req, st: &mut State| {
                let (resp, id) = req.accept_sse()?;
                st.streams.push(id);
                Ok(resp)
            })
            .unwrap();
        },
    );
    let v = run_python(
        &py,
        r#"
import httpx
ca = args[0]
data = []
with httpx.Client(timeout=T, verify=ca) as client:
    with client.stream("GET", base + "/events") as r:
        ctype = r.headers.get("content-type")
        for line in r.iter_lines():
            if line.startswith("data:"):
                data.append(line[5:].strip())
            if len(data) == 3:
                break
print(json.dumps({"ctype": ctype, "data": data}))
"#,
        &format!("https://localhost:{}", https.port()),
        &[pki().ca_file.to_str().unwrap()],
    );
    assert_eq!(v["ctype"], "text/event-stream");
    assert_eq!(v["data"], serde_json::json!(["tick 0", "tick 1", "tick 2"]));
}

// ---------------------------------------------------------------------------
// Hostile and broken clients
// ---------------------------------------------------------------------------

/// The first bytes of a real ClientHello.
fn half_a_client_hello() -> Vec<u8> {
    let mut conn =
        rustls::ClientConnection::new(tls13(), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello.truncate(hello.len() / 2);
    hello
}

/// Whether the server closed `s` (EOF or reset) before `s`'s read timeout.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn stalled_handshakes_do_not_delay_others_and_end_at_the_header_timeout() {
    let config = ServerConfig::default()
        .header_timeout(Duration::from_millis(500))
        .keep_alive_timeout(Duration::from_secs(60));
    let (srv, https) = tls_server(config, (), idle, pki().server.tls(), routes);
    let mut silent = connect(https);
    let mut half = connect(https);
    half.write_all(&half_a_client_hello()).unwrap();
    // Another client is served while both stall.
    assert_eq!(https_get(https, "/other").text(), "hello over /other");
    assert!(closed_by_server(&mut silent), "silent client not closed");
    assert!(closed_by_server(&mut half), "half-hello client not closed");
    // A completed handshake is an idle keep-alive connection, not a
    // stalled head: it outlives the header timeout.
    let mut idle_tls = tls_connect(https, &tls13());
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(srv.on_server(|s, _| s.connection_count()), 1);
    idle_tls
        .write_all(b"GET /late HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut idle_tls, false).text(),
        "hello over /late"
    );
}

/// A ClientHello announced at 65,000 bytes and sent in full 16 KiB records,
/// never finished: the server refuses it once it holds more than a
/// handshake may (36 KiB) instead of keeping ~64 KiB until the header
/// timeout (60 s here, so a close within the test's 20 s read timeout is
/// the refusal).
#[test]
fn a_huge_unfinished_client_hello_is_refused_not_held() {
    let config = ServerConfig::default().header_timeout(Duration::from_secs(60));
    let (srv, https) = tls_server(config, (), idle, pki().server.tls(), routes);
    let mut s = connect(https);
    let mut message = vec![1u8, 0x00, 0xfd, 0xe8]; // ClientHello, 65,000 bytes
    message.resize(4 * 16384, 0x41);
    for record in message.chunks(16384).take(3) {
        let mut r = vec![0x16, 0x03, 0x01];
        r.extend_from_slice(&(record.len() as u16).to_be_bytes());
        r.extend_from_slice(record);
        if s.write_all(&r).is_err() {
            break; // already refused
        }
    }
    assert!(closed_by_server(&mut s), "the oversized hello was held");
    // And the server serves others meanwhile and after.
    assert_eq!(https_get(https, "/after").text(), "hello over /after");
    let held = srv.on_server(|server, _| server.stats().input_buffered);
    assert!(held < 36 * 1024, "{held} bytes still held");
}

#[test]
fn plain_http_on_the_tls_port_gets_400_naming_https() {
    let (_srv, https) = basic_server();
    let answer = exchange(https, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("Connection: close"), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(body.contains("HTTPS"), "{text}");
    let len: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(len, body.len(), "Content-Length matches the body");
    // The server is fine afterwards.
    assert_eq!(https_get(https, "/").status, 200);
}

#[test]
fn failed_handshakes_cost_nothing_else() {
    let (_srv, https) = basic_server();
    // A client that does not trust the server's CA gives up with an alert.
    let other_ca = {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.self_signed(&key).unwrap().der().clone()
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(other_ca).unwrap();
    let untrusting = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let conn =
        rustls::ClientConnection::new(untrusting, ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut s = rustls::StreamOwned::new(conn, connect(https));
    let err = loop {
        match s.conn.complete_io(&mut s.sock) {
            Ok(_) if s.conn.is_handshaking() => continue,
            Ok(_) => panic!("handshake succeeded with an untrusted CA"),
            Err(e) => break e,
        }
    };
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    // A record header announcing a ClientHello followed by junk.
    let mut junk = connect(https);
    junk.write_all(&[0x16, 0x03, 0x01, 0x00, 0x10]).unwrap();
    junk.write_all(&[0xff; 16]).unwrap();
    assert!(closed_by_server(&mut junk), "bad ClientHello not closed");
    // A client offering only h2 is refused (ALPN has no overlap).
    let mut h2 = (*tls13()).clone();
    h2.alpn_protocols = vec![b"h2".to_vec()];
    let conn =
        rustls::ClientConnection::new(Arc::new(h2), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut s = rustls::StreamOwned::new(conn, connect(https));
    let refused = loop {
        match s.conn.complete_io(&mut s.sock) {
            Ok(_) if s.conn.is_handshaking() => continue,
            Ok(_) => break false,
            Err(_) => break true,
        }
    };
    assert!(refused, "an h2-only client was not refused");
    // Everyone else is served.
    assert_eq!(https_get(https, "/after").text(), "hello over /after");
}

#[test]
fn two_hundred_concurrent_tls_clients() {
    let (srv, https) = basic_server();
    let config = tls13();
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let config = config.clone();
            std::thread::spawn(move || {
                let mut s = tls_connect(https, &config);
                write!(
                    s,
                    "GET /c{i} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                read_response(&mut s, false).text() == format!("hello over /c{i}")
            })
        })
        .collect();
    let ok = clients
        .into_iter()
        .filter_map(|c| c.join().ok())
        .filter(|&ok| ok)
        .count();
    assert_eq!(ok, 200);
    assert_eq!(srv.accepted.load(std::sync::atomic::Ordering::SeqCst), 200);
}

// ---------------------------------------------------------------------------
// Certificate reload, redirect, configuration errors
// ---------------------------------------------------------------------------

#[test]
fn reloaded_certificate_is_served_to_new_connections_while_old_ones_keep_theirs() {
    let (srv, https) = basic_server();
    let mut old = tls_connect(https, &tls13());
    old.write_all(b"GET /1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut old, false).status, 200);
    let first = old.conn.peer_certificates().unwrap()[0].clone();
    assert_eq!(first, pki().server.der);

    let renewed = pki().issue();
    let renewed_der = renewed.der.clone();
    let tls = renewed.tls();
    assert_eq!(srv.on_server(move |s, _| s.reload_tls(tls)), 1);

    // A new connection (a fresh client, no resumption) sees the new certificate.
    let mut new = tls_connect(https, &tls13());
    assert_eq!(new.conn.peer_certificates().unwrap()[0], renewed_der);
    new.write_all(b"GET /2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut new, false).text(), "hello over /2");
    // The kept-alive connection goes on, with its certificate.
    old.write_all(b"GET /3 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut old, false).text(), "hello over /3");
    assert_eq!(old.conn.peer_certificates().unwrap()[0], first);
}

#[test]
fn redirect_listener_sends_the_same_host_and_target_to_https() {
    let (tx, rx) = mpsc::channel();
    let srv = serve_loop(ServerConfig::default(), (), idle, move |s| {
        routes(s);
        s.default_header("Strict-Transport-Security", "max-age=63072000");
        tx.send(s.start_https_redirect("127.0.0.1", 0, 8443).unwrap())
            .unwrap();
    });
    let redirect = rx.recv().unwrap();
    // A Host that is not a URI host is refused, never copied into Location.
    for host in ["evil.com/x", "a b", "user@evil.com", "x\"<y", "h:80x"] {
        let r = request(
            redirect,
            &format!("GET /p HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!((r.status, r.header("location")), (400, None), "{host}");
    }
    let r = request(
        redirect,
        "GET /a/b?c=1 HTTP/1.1\r\nHost: example.test:8080\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://example.test:8443/a/b?c=1")
    );
    // HSTS is sent over HTTPS only (RFC 6797 §8.1), not on the redirect.
    assert_eq!(r.header("strict-transport-security"), None);
    let r = request(
        redirect,
        "POST /form HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("https://[::1]:8443/form"));
    // Routes are not consulted on the redirect port, and are on the plain one.
    assert_eq!(
        request(
            redirect,
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        .status,
        301
    );
    assert_eq!(get(srv.addr, "/").status, 200);
}

#[test]
fn configuration_errors_name_the_file() {
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    match TlsConfig::from_pem_files(&missing, &p.key_file) {
        Err(TlsError::Read { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let e = TlsConfig::from_pem_files(&empty, &p.key_file).unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e:?}");
    assert!(e.to_string().contains("empty.pem"), "{e}");
    // The certificate where the key should be.
    let e = TlsConfig::from_pem_files(&p.cert_file, &p.cert_file).unwrap_err();
    assert!(matches!(e, TlsError::NoPrivateKey { .. }), "{e:?}");
    assert!(e.to_string().contains("cert.pem"), "{e}");
    // Another certificate's key.
    let other = dir.path().join("other-key.pem");
    std::fs::write(&other, p.issue().key_pem).unwrap();
    let e = TlsConfig::from_pem_files(&p.cert_file, &other).unwrap_err();
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e:?}");
    assert!(
        e.to_string().contains("other-key.pem") && e.to_string().contains("cert.pem"),
        "{e}"
    );
    // Broken PEM.
    let broken = dir.path().join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    let e = TlsConfig::from_pem_files(&broken, &p.key_file).unwrap_err();
    assert!(matches!(e, TlsError::Pem { .. }), "{e:?}");
    assert!(e.to_string().contains("broken.pem"), "{e}");
    let e = TlsConfig::from_pem(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n",
        p.server.key_pem.as_bytes(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("without its \"-----END CERTIFICATE-----\" line"),
        "the marker in words: {e}"
    );
    // An encrypted key is named as such, in both PEM forms.
    for encrypted in [
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMIIB\n-----END RSA PRIVATE KEY-----\n",
    ] {
        let e = TlsConfig::from_pem(p.server.cert_pem.as_bytes(), encrypted.as_bytes()).unwrap_err();
        assert!(matches!(e, TlsError::EncryptedKey { .. }), "{e:?}");
        assert!(e.to_string().contains("openssl pkey"), "{e}");
    }
    // The CA first, the server's certificate second: the order is named,
    // not a key mismatch.
    let wrong_order = format!("{}{}", p.ca_pem, p.server.cert_pem);
    let e = TlsConfig::from_pem(wrong_order.as_bytes(), p.server.key_pem.as_bytes()).unwrap_err();
    assert!(matches!(e, TlsError::ChainOrder { .. }), "{e:?}");
    let right_order = format!("{}{}", p.server.cert_pem, p.ca_pem);
    let tls = TlsConfig::from_pem(right_order.as_bytes(), p.server.key_pem.as_bytes()).unwrap();
    // Debug names the source, never the key.
    assert!(
        format!("{tls:?}").contains("the certificate PEM"),
        "{tls:?}"
    );
    // And the good pair works, from files.
    let tls = TlsConfig::from_pem_files(&p.cert_file, &p.key_file).unwrap();
    assert!(format!("{tls:?}").contains("key.pem"), "{tls:?}");
}

#[test]
fn a_handshake_and_a_request_trickled_in_pieces_complete() {
    let (_srv, https) = basic_server();
    let mut conn =
        rustls::ClientConnection::new(tls13(), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut sock = connect(https);
    // The ClientHello a few bytes per segment: the server sees partial
    // records and keeps them until the rest arrives.
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    for piece in hello.chunks(7) {
        sock.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("handshake");
    }
    // The request one byte per TLS record.
    let request = b"GET /trickled HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    for byte in request {
        conn.writer().write_all(&[*byte]).unwrap();
        conn.write_tls(&mut sock).unwrap();
    }
    let mut s = rustls::StreamOwned::new(conn, sock);
    let r = read_response(&mut s, false);
    assert_eq!(r.text(), "hello over /trickled");
}

#[test]
fn a_corrupt_record_after_the_handshake_ends_only_that_connection() {
    let (_srv, https) = basic_server();
    let mut s = tls_connect(https, &tls13());
    s.write_all(b"GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, false).text(), "hello over /first");
    // An application-data record whose bytes are not what was encrypted.
    let mut bad = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    bad.extend((0..0x40u8).map(|i| i.wrapping_mul(37)));
    s.sock.write_all(&bad).unwrap();
    // The server answers with an alert and closes.
    let mut buf = [0u8; 256];
    let ended = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e) => {
                break e.to_string().contains("alert") || e.kind() != std::io::ErrorKind::WouldBlock
            }
        }
    };
    assert!(ended);
    assert_eq!(https_get(https, "/after").text(), "hello over /after");
}

#[test]
fn idle_tls_connections_hold_no_more_buffers_than_plain_ones() {
    // The same requests on kept-alive plain and TLS connections: once
    // answered, TLS adds nothing to what the server holds for them (the
    // unbuffered transport keeps no buffer between reads and writes).
    let (srv, https) = basic_server();
    let request = b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut plain: Vec<TcpStream> = (0..20).map(|_| connect(srv.addr)).collect();
    for s in &mut plain {
        s.write_all(request).unwrap();
        assert_eq!(read_response(s, false).body.len(), 1 << 20);
    }
    let plain_stats = srv.on_server(|s, _| s.stats());
    let mut tls: Vec<TlsStream> = (0..20).map(|_| tls_connect(https, &tls13())).collect();
    for s in &mut tls {
        s.write_all(request).unwrap();
        assert_eq!(read_response(s, false).body.len(), 1 << 20);
    }
    let both = srv.on_server(|s, _| s.stats());
    assert_eq!(both.connections, 40);
    assert_eq!(both.input_buffered, 2 * plain_stats.input_buffered);
    assert_eq!(both.output_queued, 0);
    assert_eq!(both.output_buffered, 2 * plain_stats.output_buffered);
}

#[test]
fn a_client_that_stops_reading_is_closed_by_the_send_timeout() {
    // Encrypted records the socket does not take keep the connection's
    // send timeout running, as unwritten plaintext does.
    let config = ServerConfig::default().send_timeout(Duration::from_millis(500));
    let (srv, https) = tls_server(config, (), idle, pki().server.tls(), routes);
    let sock = connect_with_buffers(https, None, Some(4096));
    let conn =
        rustls::ClientConnection::new(tls13(), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("handshake");
    }
    for _ in 0..8 {
        s.write_all(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while srv.on_server(|s, _| s.connection_count()) > 0 {
        assert!(std::time::Instant::now() < deadline, "never closed");
        std::thread::sleep(Duration::from_millis(50));
    }
}
