//! permessage-deflate sessions. The first byte picks the negotiated
//! parameters (window bits 8–15 each way, context takeover each way) and
//! the frame size; then:
//!
//! * the rest, fed as client bytes to a server session with deflate on
//!   (whole, one byte at a time, and one byte at a time while recycled
//!   message buffers, inflaters and compressors are lent before every feed
//!   and idle ones taken back after it), never panics and gives the same
//!   events every way;
//! * the rest, cut into messages at `0xFF` bytes, sent compressed by a
//!   client session and by a server session (fragmented when the frame size
//!   is small), comes out of the other role unchanged, and a
//!   [`WsSession::encode_shared`] encoding, where there is one, equals what
//!   the server sent.
#![no_main]
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use pollserve::proto::deflate::{Compressor, DeflateParams, Inflater};
use pollserve::proto::ws::{Event, Message, Role, WsConfig, WsSession};

fn setup(cfg: u8) -> (DeflateParams, WsConfig) {
    let params = DeflateParams {
        server_no_context_takeover: cfg & 1 != 0,
        client_no_context_takeover: cfg & 2 != 0,
        server_max_window_bits: 8 + ((cfg >> 2) & 7),
        client_max_window_bits: 15 - ((cfg >> 5) & 7),
    };
    let config = WsConfig {
        max_message_size: 1 << 16,
        max_fragments: 1 << 12,
        max_frame_size: if cfg & 0x10 != 0 { 5 } else { 1 << 20 },
        ..WsConfig::default()
    };
    (params, config)
}

fn session(role: Role, cfg: u8) -> WsSession {
    let (params, config) = setup(cfg);
    let mut s = WsSession::new(role, config);
    s.enable_deflate(params, u32::from(cfg % 10), 0);
    s
}

#[derive(Default)]
struct Spares {
    buffers: Vec<Vec<u8>>,
    inflaters: Vec<Inflater>,
    compressors: Vec<Compressor>,
}

fn run(cfg: u8, data: &[u8], step: usize, spares: Option<&mut Spares>) -> Vec<Event> {
    let mut s = session(Role::Server, cfg);
    let now = Instant::now();
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut buf = data.to_vec();
    let mut pos = 0;
    let mut spares = spares;
    while pos < buf.len() {
        let end = (pos + step).min(buf.len());
        let mut at = pos;
        loop {
            if let Some(sp) = spares.as_deref_mut() {
                let mut dirty = sp.buffers.pop().unwrap_or_default();
                dirty.extend_from_slice(b"stale bytes that must never show");
                if let Some(back) = s.offer_buffer(dirty) {
                    sp.buffers.push(back);
                }
                let inflater = sp.inflaters.pop().unwrap_or_else(|| Inflater::new(15));
                sp.inflaters.extend(s.offer_inflater(inflater));
                let compressor = sp
                    .compressors
                    .pop()
                    .unwrap_or_else(|| Compressor::new(u32::from(cfg % 10), 8 + ((cfg >> 2) & 7)));
                sp.compressors.extend(s.offer_compressor(compressor));
            }
            let feed = s.feed(&mut buf[at..end], now, &mut out);
            if let Some(sp) = spares.as_deref_mut() {
                sp.buffers.extend(s.take_idle_buffer());
                sp.inflaters.extend(s.take_idle_inflater());
                sp.compressors.extend(s.take_idle_compressor());
            }
            assert!(feed.consumed <= end - at);
            at += feed.consumed;
            match feed.event {
                Some(e) => events.push(e),
                None => break,
            }
        }
        pos = end;
    }
    events
}

fn round_trip(cfg: u8, data: &[u8]) {
    let msgs: Vec<Message> = data
        .split(|&b| b == 0xFF)
        .enumerate()
        .map(|(i, part)| match std::str::from_utf8(part) {
            Ok(t) if i % 2 == 0 => Message::Text(t.to_owned()),
            _ => Message::Binary(part.to_vec()),
        })
        .collect();
    let mut client = session(Role::Client, cfg);
    let mut server = session(Role::Server, cfg);
    let mut compressor = None;
    send_and_check(&mut client, &mut server, &msgs, &mut compressor);
    send_and_check(&mut server, &mut client, &msgs, &mut compressor);
}

fn send_and_check(
    from: &mut WsSession,
    to: &mut WsSession,
    msgs: &[Message],
    compressor: &mut Option<Compressor>,
) {
    let now = Instant::now();
    {
        let mut wire = Vec::new();
        for m in msgs {
            let shared = from.shared_encoding(m.len());
            let before = wire.len();
            from.send(m, &mut wire).unwrap();
            assert!(wire.len() - before <= from.message_wire_len(m.len()));
            if let Some(enc) = shared {
                let mut alone = Vec::new();
                let text = matches!(m, Message::Text(_));
                WsSession::encode_shared(enc, text, m.as_bytes(), compressor, &mut alone);
                assert_eq!(alone, wire[before..]);
            }
        }
        let mut got = Vec::new();
        let mut pos = 0;
        let mut out = Vec::new();
        while pos < wire.len() {
            let f = to.feed(&mut wire[pos..], now, &mut out);
            pos += f.consumed;
            got.extend(f.event);
            if f.consumed == 0 {
                break;
            }
        }
        let expect: Vec<Event> = msgs.iter().cloned().map(Event::Message).collect();
        assert!(got == expect);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let whole = run(cfg, rest, rest.len().max(1), None);
    let bytewise = run(cfg, rest, 1, None);
    assert_eq!(whole, bytewise);
    let recycled = run(cfg, rest, 1, Some(&mut Spares::default()));
    assert_eq!(whole, recycled);
    round_trip(cfg, rest);
});
