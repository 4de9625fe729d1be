//! permessage-deflate (RFC 7692) over real sockets: negotiation as the
//! server answers it, compressed frames byte by byte, the limits (RSV1 rules,
//! a decompression bomb, bad deflate data, bad UTF-8), and interop with
//! Python `websockets` and Node `ws` with compression on (clients as in
//! `tests/ws_interop.rs`: skipped, saying so, without `./test.sh`'s set-up).
#![cfg(feature = "deflate")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::ws::{frame, handshake};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use pollserve::ws::{DeflateOptions, Message, WsId, WsOptions};
use pollserve::{Method, Server, ServerConfig};

/// Echo endpoints: `/ws` with the default compression options (no context
/// kept by either side), `/ws0` compressing every message with both sides
/// keeping their context, `/small`
/// with a 1 MiB message limit, `/plain` without compression. A text
/// message `params?` is answered with the negotiated parameters.
fn server() -> common::TestServer<Vec<WsId>> {
    let echo = |server: &mut Server<Vec<WsId>>, ids: &mut Vec<WsId>| {
        for &id in ids.iter() {
            while let Some(m) = server.ws(id).receive() {
                if m == Message::Text("params?".into()) {
                    let p = format!("{:?}", server.ws(id).deflate());
                    let _ = server.ws(id).send_text(&p);
                } else {
                    let _ = server.ws(id).send(&m);
                }
            }
        }
        ids.retain(|&id| !server.ws(id).is_closed());
    };
    common::serve_loop(ServerConfig::default(), Vec::new(), echo, |s| {
        for (path, options) in [
            (
                "/ws",
                WsOptions {
                    deflate: Some(DeflateOptions::default()),
                    ..WsOptions::default()
                },
            ),
            (
                "/ws0",
                WsOptions {
                    deflate: Some(DeflateOptions {
                        server_no_context_takeover: false,
                        client_no_context_takeover: false,
                        min_size: 0,
                        ..DeflateOptions::default()
                    }),
                    ..WsOptions::default()
                },
            ),
            ("/small", {
                let mut o = WsOptions {
                    deflate: Some(DeflateOptions::default()),
                    ..WsOptions::default()
                };
                o.protocol.max_message_size = 1 << 20;
                o
            }),
            ("/plain", WsOptions::default()),
        ] {
            s.route(path, Method::GET, move |req, ids: &mut Vec<WsId>| {
                let (resp, id) = req.websocket().options(options.clone()).accept()?;
                ids.push(id);
                Ok(resp)
            })
            .unwrap();
        }
    })
}

fn extensions_of(head: &str) -> Option<String> {
    head.lines().find_map(|l| {
        l.strip_prefix("Sec-WebSocket-Extensions: ")
            .map(str::to_owned)
    })
}

fn timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
}

/// Reads one server frame: (first header byte, payload).
fn read_raw_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).expect("frame header");
    assert_eq!(h[1] & 0x80, 0, "server frames are unmasked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).unwrap();
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).unwrap();
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut p = vec![0; len];
    s.read_exact(&mut p).unwrap();
    (h[0], p)
}

/// A masked client frame with a raw first byte (FIN, RSV, opcode).
fn raw_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = frame(true, 0, payload);
    f[0] = b0;
    f
}

/// Inflates one message's payload (the `00 00 ff ff` tail appended).
fn inflate(d: &mut Decompress, payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    let before = d.total_in();
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .expect("server's deflate data inflates");
    assert_eq!((d.total_in() - before) as usize, input.len());
    out
}

/// Reads frames until a close; returns its code.
fn close_code(s: &mut TcpStream) -> u16 {
    loop {
        let (b0, p) = read_raw_frame(s);
        if b0 & 0x0f == 8 {
            return u16::from_be_bytes([p[0], p[1]]);
        }
    }
}

#[test]
fn negotiation_as_answered_on_the_wire() {
    let srv = server();
    for (path, offer, want) in [
        (
            "/ws",
            "permessage-deflate",
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ),
        (
            "/ws",
            "permessage-deflate; client_max_window_bits",
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ),
        (
            "/ws",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9, permessage-deflate",
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"),
        ),
        (
            "/ws",
            "permessage-deflate; foo, permessage-deflate; client_no_context_takeover",
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ),
        (
            "/ws0",
            "permessage-deflate; client_max_window_bits; client_no_context_takeover",
            Some("permessage-deflate; client_no_context_takeover"),
        ),
        ("/ws0", "permessage-deflate", Some("permessage-deflate")),
        ("/ws", "x-webkit-deflate-frame", None),
        ("/ws", "permessage-deflate; server_max_window_bits=16", None),
        ("/plain", "permessage-deflate", None),
    ] {
        let (mut s, head) = handshake(
            srv.addr,
            path,
            &format!("Sec-WebSocket-Extensions: {offer}\r\n"),
        );
        timeouts(&s);
        assert!(head.starts_with("HTTP/1.1 101 "), "{offer}: {head}");
        assert_eq!(extensions_of(&head).as_deref(), want, "{path} {offer}");
        // What the handle reports agrees with the header.
        s.write_all(&frame(true, 1, b"params?")).unwrap();
        let (b0, p) = read_raw_frame(&mut s);
        let p = if b0 & 0x40 != 0 {
            inflate(&mut Decompress::new_with_window_bits(false, 15), &p)
        } else {
            p
        };
        let p = String::from_utf8(p).unwrap();
        assert_eq!(p.starts_with("Some("), want.is_some(), "{offer}: {p}");
        if let Some(w) = want {
            assert_eq!(
                p.contains("server_no_context_takeover: true"),
                w.contains("server_no_context_takeover"),
                "{p}"
            );
        }
    }
    // A header that breaks the grammar refuses the handshake.
    for bad in ["permessage-deflate;", "permessage-deflate; =1", "a; b=\"c"] {
        let (_, head) = handshake(
            srv.addr,
            "/ws",
            &format!("Sec-WebSocket-Extensions: {bad}\r\n"),
        );
        assert!(head.starts_with("HTTP/1.1 400 "), "{bad}: {head}");
    }
}

#[test]
fn rfc_7692_examples_and_context_takeover() {
    let srv = server();
    let (mut s, head) = handshake(
        srv.addr,
        "/ws0",
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    );
    timeouts(&s);
    assert_eq!(extensions_of(&head).as_deref(), Some("permessage-deflate"));
    // §7.2.3.1: "Hello" compressed; then §7.2.3.2: the second "Hello" refers
    // back to the first (the client keeps its context).
    s.write_all(&raw_frame(
        0xc1,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
    ))
    .unwrap();
    s.write_all(&raw_frame(0xc1, &[0xf2, 0x00, 0x11, 0x00, 0x00]))
        .unwrap();
    // §7.2.3.3: an uncompressed (stored) deflate block.
    s.write_all(&raw_frame(
        0xc1,
        &[
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ],
    ))
    .unwrap();
    // §7.2.3.1 fragmented: RSV1 on the first frame only.
    let mut first = raw_frame(0x41, &[0xf2, 0x48, 0xcd]);
    first[0] = 0x41; // text, RSV1, not FIN
    s.write_all(&first).unwrap();
    s.write_all(&raw_frame(0x80, &[0xc9, 0xc9, 0x07, 0x00]))
        .unwrap();
    // A message sent without compression on the same connection.
    s.write_all(&raw_frame(0x81, b"Hello")).unwrap();

    let mut d = Decompress::new_with_window_bits(false, 15);
    let mut sizes = Vec::new();
    for _ in 0..5 {
        let (b0, p) = read_raw_frame(&mut s);
        assert_eq!(b0, 0xc1, "FIN, RSV1 and text on every echo (min_size 0)");
        sizes.push(p.len());
        assert_eq!(inflate(&mut d, &p), b"Hello");
    }
    // The server keeps its context on /ws0: later "Hello"s refer back.
    assert!(sizes[1] < sizes[0], "{sizes:?}");
}

#[test]
fn no_context_takeover_by_default_and_small_messages_go_plain() {
    let srv = server();
    let (mut s, _) = handshake(
        srv.addr,
        "/ws",
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    );
    timeouts(&s);
    let msg = br#"{"sensor":"t1","celsius":21.5,"note":"the same reading again and again"}"#;
    let mut sizes = Vec::new();
    for _ in 0..3 {
        // The server asked for client_no_context_takeover: a fresh context
        // for every message.
        let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
        let mut out = Vec::with_capacity(msg.len() + 64);
        c.compress_vec(msg, &mut out, FlushCompress::Sync).unwrap();
        out.truncate(out.len() - 4);
        s.write_all(&raw_frame(0xc1, &out)).unwrap();
        let (b0, p) = read_raw_frame(&mut s);
        assert_eq!(b0, 0xc1);
        sizes.push(p.len());
        // Each reply inflates on its own (the server reset its context).
        let mut fresh = Decompress::new_with_window_bits(false, 15);
        assert_eq!(inflate(&mut fresh, &p), msg);
    }
    assert!(sizes.iter().all(|&n| n == sizes[0]), "{sizes:?}");
    assert!(sizes[0] < msg.len(), "{sizes:?} vs {}", msg.len());
    // Under the default min_size (64 bytes): sent as is.
    s.write_all(&raw_frame(0x81, b"short")).unwrap();
    assert_eq!(read_raw_frame(&mut s), (0x81, b"short".to_vec()));
}

#[test]
fn incompressible_messages_go_plain_only_without_server_context() {
    let srv = server();
    // 1000 random bytes: deflate cannot make them smaller.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let random: Vec<u8> = (0..1000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    // /ws: server_no_context_takeover: the echo goes plain, RSV1 clear.
    let (mut s, _) = handshake(srv.addr, "/ws", offer);
    timeouts(&s);
    for _ in 0..2 {
        s.write_all(&frame(true, 2, &random)).unwrap();
        assert_eq!(read_raw_frame(&mut s), (0x82, random.clone()));
    }
    // Compressible text on the same socket is still compressed.
    let text = "compressible, ".repeat(40);
    s.write_all(&frame(true, 1, text.as_bytes())).unwrap();
    let (b0, p) = read_raw_frame(&mut s);
    assert_eq!(b0, 0xc1);
    assert_eq!(
        inflate(&mut Decompress::new_with_window_bits(false, 15), &p),
        text.as_bytes()
    );
    // /ws0: the server keeps its context, so everything goes compressed
    // (the client's inflater must see every byte), and inflates intact
    // through one kept context.
    let (mut s, _) = handshake(srv.addr, "/ws0", offer);
    timeouts(&s);
    let mut d = Decompress::new_with_window_bits(false, 15);
    for i in 0..2 {
        s.write_all(&frame(true, 2, &random)).unwrap();
        let (b0, p) = read_raw_frame(&mut s);
        assert_eq!(b0, 0xc2, "FIN, RSV1, binary");
        if i == 0 {
            assert!(p.len() >= random.len(), "random data does not shrink");
        } else {
            // The repeat refers back into the first: context at work.
            assert!(p.len() < 100, "{}", p.len());
        }
        assert_eq!(inflate(&mut d, &p), random);
    }
}

#[test]
fn rsv1_where_it_does_not_belong_is_1002() {
    let srv = server();
    let offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    // On a continuation frame.
    let (mut s, _) = handshake(srv.addr, "/ws", offer);
    timeouts(&s);
    let mut first = raw_frame(0x41, &[0xf2, 0x48]);
    first[0] = 0x41;
    s.write_all(&first).unwrap();
    s.write_all(&raw_frame(0xc0, &[0xcd, 0xc9])).unwrap();
    assert_eq!(close_code(&mut s), 1002);
    // On a ping.
    let (mut s, _) = handshake(srv.addr, "/ws", offer);
    timeouts(&s);
    s.write_all(&raw_frame(0xc9, b"")).unwrap();
    assert_eq!(close_code(&mut s), 1002);
    // Without the extension negotiated.
    let (mut s, _) = handshake(srv.addr, "/plain", offer);
    timeouts(&s);
    s.write_all(&raw_frame(
        0xc1,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
    ))
    .unwrap();
    assert_eq!(close_code(&mut s), 1002);
}

#[test]
fn bad_deflate_data_and_bad_utf8_inside_are_1007() {
    let srv = server();
    let offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    // Block type 3 is reserved.
    let (mut s, _) = handshake(srv.addr, "/ws", offer);
    timeouts(&s);
    s.write_all(&raw_frame(0xc1, &[0xff, 0xff, 0xff, 0xff]))
        .unwrap();
    assert_eq!(close_code(&mut s), 1007);
    // Invalid UTF-8 in compressed text: closed before the message ends.
    let (mut s, _) = handshake(srv.addr, "/ws", offer);
    timeouts(&s);
    let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
    let mut out = Vec::with_capacity(256);
    c.compress_vec(
        b"valid start \xff\xfe then more",
        &mut out,
        FlushCompress::Sync,
    )
    .unwrap();
    let mut first = raw_frame(0x41, &out);
    first[0] = 0x41; // RSV1, text, not FIN: the message never ends
    s.write_all(&first).unwrap();
    assert_eq!(close_code(&mut s), 1007);
}

/// Bytes of resident memory of this process (the server runs in it).
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn a_message_inflating_to_1_gib_is_stopped_at_the_limit() {
    let srv = server();
    let (mut s, head) = handshake(
        srv.addr,
        "/small",
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    );
    timeouts(&s);
    assert!(extensions_of(&head).is_some(), "{head}");
    // 1 GiB of zeros (about 1 MiB deflated) in one frame whose header
    // announces the whole compressed length: 1 MiB of zeros deflated after a
    // full flush (which resets the compressor, so every such chunk is the
    // same bytes), repeated 1,024 times.
    let zeros = vec![0u8; 1 << 20];
    let mut c = Compress::new_with_window_bits(Compression::best(), false, 15);
    let chunk = |c: &mut Compress| {
        let mut out = Vec::with_capacity(64 << 10);
        c.compress_vec(&zeros, &mut out, FlushCompress::Full)
            .unwrap();
        assert_eq!(c.total_in() % (1 << 20), 0, "all input taken");
        out
    };
    let first = chunk(&mut c);
    assert_eq!(
        chunk(&mut c),
        first,
        "a full flush makes chunks independent"
    );
    let mut check = Decompress::new_with_window_bits(false, 15);
    let mut out = Vec::with_capacity(2 << 20);
    check
        .decompress_vec(
            &[first.as_slice(), &first].concat(),
            &mut out,
            FlushDecompress::Sync,
        )
        .unwrap();
    assert_eq!(out.len(), 2 << 20, "two chunks inflate to 2 MiB of zeros");
    let payload = first.repeat(1024);
    let before = rss();
    let mut f = raw_frame(0xc2, &payload);
    f[0] = 0xc2; // FIN, RSV1, binary
                 // Send until the server closes (it may stop reading once it failed).
    let _ = s.write_all(&f);
    assert_eq!(close_code(&mut s), 1009);
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "the server grew by {grown} bytes stopping a 1 GiB message at 1 MiB"
    );
    // Others are still served.
    let (mut t, _) = handshake(srv.addr, "/ws", "");
    timeouts(&t);
    t.write_all(&frame(true, 1, b"still here")).unwrap();
    assert_eq!(read_raw_frame(&mut t), (0x81, b"still here".to_vec()));
}

const PY_CLIENT: &str = r#"
import asyncio, sys, websockets
async def main(url):
    async with websockets.connect(url, max_size=None, compression="deflate") as ws:
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert ext.startswith("permessage-deflate"), ext
        await ws.send("héllo " * 50); assert await ws.recv() == "héllo " * 50
        big = bytes(i * 7 % 251 for i in range(2_000_000))
        await ws.send(big); assert await ws.recv() == big
        json = '{"seq": %d, "celsius": 21.5, "samples": [1, 2, 3, 4, 5, 6, 7, 8]}'
        for i in range(300):
            await ws.send(json % i)
        for i in range(300):
            assert await ws.recv() == json % i
        # A fragmented compressed message: an iterable goes out as fragments.
        parts = ["frag " * 100, "ment " * 100, "ed é" * 100]
        await ws.send(parts); assert await ws.recv() == "".join(parts)
        waiter = await ws.ping(b"py"); await asyncio.wait_for(waiter, 5)
    assert ws.close_code == 1000, ws.close_code
    print("python websockets deflate interop: ok", ext)
asyncio.run(main(sys.argv[1]))
"#;

#[test]
fn python_websockets_with_compression() {
    let Some(python) = common::python("python_websockets_with_compression") else {
        return;
    };
    let srv = server();
    for path in ["/ws", "/ws0"] {
        let mut cmd = Command::new(&python);
        cmd.arg("-c")
            .arg(PY_CLIENT)
            .arg(format!("ws://{}{path}", srv.addr));
        let out = common::run(&mut cmd);
        let text = format!("{}{}", out.stdout_text(), out.stderr);
        assert!(
            out.status.success() && text.contains("python websockets deflate interop: ok"),
            "{path}: {text}"
        );
    }
}

#[test]
fn node_ws_with_compression() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    if !dir.join("node_modules/ws").exists()
        || Command::new("node").arg("--version").output().is_err()
    {
        return common::skipped(
            "node_ws_with_compression: node or tests/node/node_modules missing (run ./test.sh)",
        );
    }
    let srv = server();
    for path in ["/ws", "/ws0"] {
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("ws_deflate_client.mjs"))
            .arg(format!("ws://{}{path}", srv.addr));
        let out = common::run(&mut cmd);
        let text = format!("{}{}", out.stdout_text(), out.stderr);
        assert!(
            out.status.success() && text.contains("node ws deflate interop: ok"),
            "{path}: {text}"
        );
    }
}
