//! Micro-benchmarks of pollserve's hot paths (criterion). Run by `bench/run.sh`;
//! alone: `cargo bench -p pollserve-bench --bench micro`.
use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pollserve::proto::deflate::DeflateParams;
use pollserve::proto::http::{parse_request_head, HttpLimits, RequestHead};
use pollserve::proto::ws::{apply_mask, Role, WsConfig, WsSession};
use pollserve::router::Router;
use pollserve::Method;

/// Masked client frames carrying `count` binary (or text) messages of `payload`.
fn client_frames(payload: &[u8], count: usize, text: bool) -> Vec<u8> {
    let mut client = WsSession::new(Role::Client, WsConfig::default());
    let mut out = Vec::new();
    for _ in 0..count {
        if text {
            client
                .send_text(std::str::from_utf8(payload).expect("utf-8"), &mut out)
                .expect("send");
        } else {
            client.send_binary(payload, &mut out).expect("send");
        }
    }
    out
}

/// Feeds all of `input` to `server`, returning the number of messages.
fn feed_all(server: &mut WsSession, input: &mut [u8], out: &mut Vec<u8>) -> usize {
    let now = Instant::now();
    let mut pos = 0;
    let mut messages = 0;
    while pos < input.len() {
        let f = server.feed(&mut input[pos..], now, out);
        pos += f.consumed;
        if f.event.is_some() {
            messages += 1;
        } else if f.consumed == 0 {
            break;
        }
        black_box(f.event);
    }
    messages
}

fn mixed_text(len: usize) -> String {
    let mut s = String::with_capacity(len + 16);
    let words = [
        "hello ",
        "wörld ",
        "✓ ",
        "日本語 ",
        "ascii-only-words ",
        "naïve ",
        "😀 ",
    ];
    let mut i = 0;
    while s.len() + 8 < len {
        s.push_str(words[i % words.len()]);
        i += 1;
    }
    while s.len() < len {
        s.push('.');
    }
    s
}

fn ws_feed(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws_feed");
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        (
            "binary_20B_x1000",
            client_frames(&[7u8; 20], 1000, false),
            1000,
        ),
        (
            "binary_16KiB",
            client_frames(&vec![7u8; 16384], 1, false),
            1,
        ),
        (
            "binary_64KiB",
            client_frames(&vec![b'a'; 65536], 1, false),
            1,
        ),
        (
            "text_64KiB",
            client_frames(mixed_text(65536).as_bytes(), 1, true),
            1,
        ),
    ];
    for (name, frames, expect) in cases {
        g.throughput(Throughput::Bytes(frames.len() as u64));
        let mut server = WsSession::new(Role::Server, WsConfig::default());
        let mut out = Vec::new();
        // Check once that every message decodes.
        assert_eq!(
            feed_all(&mut server, &mut frames.clone(), &mut out),
            expect,
            "{name}"
        );
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || frames.clone(),
                |input| feed_all(&mut server, input, &mut out),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// A telemetry-like JSON message of about 1 KiB.
fn json_1k() -> String {
    let mut s = String::from("{\"device\":\"greenhouse-3\",\"readings\":[");
    let mut i = 0u32;
    while s.len() < 960 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"t\":{},\"temperature\":{}.{},\"humidity\":{}}}",
            1_714_564_800 + i * 10,
            20 + i % 3,
            i * 7 % 10,
            45 + i % 5
        ));
        i += 1;
    }
    s.push_str("],\"status\":\"ok\"}");
    s
}

/// permessage-deflate: inflating and compressing a 1 KiB JSON message.
fn ws_deflate(c: &mut Criterion) {
    let json = json_1k();
    let mut g = c.benchmark_group("ws_deflate");
    let no_takeover = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..DeflateParams::default()
    };
    // 100 compressed client messages. Without context takeover each frame
    // inflates on its own, so the same bytes can be fed again and again.
    let mut client = WsSession::new(Role::Client, WsConfig::default());
    client.enable_deflate(no_takeover, 6, 0);
    let mut frames = Vec::new();
    for _ in 0..100 {
        client.send_text(&json, &mut frames).expect("send");
    }
    let plain = client_frames(json.as_bytes(), 100, true);
    g.throughput(Throughput::Bytes(json.len() as u64 * 100));
    for (name, input, deflate) in [
        ("feed_json_1KiB_x100_deflate", &frames, true),
        ("feed_json_1KiB_x100_plain", &plain, false),
    ] {
        let mut server = WsSession::new(Role::Server, WsConfig::default());
        if deflate {
            server.enable_deflate(no_takeover, 6, 0);
        }
        let mut out = Vec::new();
        assert_eq!(feed_all(&mut server, &mut input.clone(), &mut out), 100);
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || input.clone(),
                |input| feed_all(&mut server, input, &mut out),
                BatchSize::SmallInput,
            )
        });
    }
    g.throughput(Throughput::Bytes(json.len() as u64));
    // With takeover the same message again compresses against the last one
    // (long matches, fast); without, every message starts cold and the
    // compressor is reset (zlib-rs clears its 128 KiB hash table).
    for (name, params, level) in [
        ("send_json_1KiB_no_takeover", no_takeover, 6),
        ("send_json_1KiB_no_takeover_level1", no_takeover, 1),
        ("send_json_1KiB_takeover", DeflateParams::default(), 6),
    ] {
        let mut server = WsSession::new(Role::Server, WsConfig::default());
        server.enable_deflate(params, level, 0);
        let mut out = Vec::with_capacity(4096);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                server.send_text(black_box(&json), &mut out).expect("send");
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn mask(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask");
    for size in [16384usize, 1 << 20] {
        let mut buf = vec![0x5Au8; size];
        let src = vec![0xA5u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("apply_mask/{size}"), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box([1, 2, 3, 4]), 0))
        });
        g.bench_function(format!("memcpy/{size}"), |b| {
            b.iter(|| black_box(&mut buf).copy_from_slice(black_box(&src)))
        });
    }
    g.finish();
}

fn utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8");
    let text = mixed_text(65536).into_bytes();
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("simdutf8_64KiB", |b| {
        b.iter(|| simdutf8::compat::from_utf8(black_box(&text)).is_ok())
    });
    g.bench_function("std_64KiB", |b| {
        b.iter(|| std::str::from_utf8(black_box(&text)).is_ok())
    });
    g.finish();
}

fn http(c: &mut Criterion) {
    let req = b"GET /api/v1/items/12345?sort=asc&limit=20 HTTP/1.1\r\n\
Host: example.com:8080\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\n\
Cookie: session=abcdef0123456789; theme=dark\r\n\
Cache-Control: max-age=0\r\n\r\n";
    let limits = HttpLimits::default();
    let mut head = RequestHead::default();
    assert_eq!(
        parse_request_head(req, &limits, &mut head).expect("parses"),
        Some(req.len())
    );
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_request_head", |b| {
        b.iter(|| parse_request_head(black_box(req), &limits, &mut head).is_ok())
    });
    g.finish();
}

fn router(c: &mut Criterion) {
    let groups = ["api", "users", "items", "admin", "blog"];
    let mut r: Router<usize> = Router::new();
    for i in 0..100 {
        r.add(
            &format!("/{}/v{i}/<id>", groups[i % groups.len()]),
            Method::GET,
            false,
            i,
        )
        .expect("route");
    }
    let last: Vec<String> = ["blog", "v99", "123"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let miss: Vec<String> = ["nothing", "here"].iter().map(|s| s.to_string()).collect();
    assert!(matches!(
        r.find(Method::GET, &last, false),
        pollserve::router::RouteMatch::Found { handler: &99, .. }
    ));
    let mut g = c.benchmark_group("router");
    g.throughput(Throughput::Elements(1));
    g.bench_function("100_routes_last", |b| {
        b.iter(|| {
            matches!(
                r.find(Method::GET, black_box(&last), false),
                pollserve::router::RouteMatch::Found { .. }
            )
        })
    });
    g.bench_function("100_routes_miss", |b| {
        b.iter(|| {
            matches!(
                r.find(Method::GET, black_box(&miss), false),
                pollserve::router::RouteMatch::NotFound
            )
        })
    });
    g.finish();
}

criterion_group!(benches, ws_feed, ws_deflate, mask, utf8, http, router);
criterion_main!(benches);
