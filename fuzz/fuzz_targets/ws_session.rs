//! WebSocket frames: a server session fed arbitrary bytes (whole, or one
//! byte at a time, or one byte at a time while dirty recycled buffers are
//! offered before every feed and idle ones taken back after it) never panics
//! and reports the same messages every way.
#![no_main]
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use pollserve::proto::ws::{Event, Role, WsConfig, WsSession};

fn run(data: &[u8], step: usize, recycle: bool) -> Vec<Event> {
    let config = WsConfig {
        max_message_size: 1 << 16,
        max_fragments: 64,
        ..WsConfig::default()
    };
    let mut s = WsSession::new(Role::Server, config);
    let now = Instant::now();
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut buf = data.to_vec();
    let mut pos = 0;
    let mut spare: Vec<Vec<u8>> = Vec::new();
    while pos < buf.len() {
        let end = (pos + step).min(buf.len());
        let mut at = pos;
        loop {
            if recycle {
                let mut dirty = spare.pop().unwrap_or_default();
                dirty.extend_from_slice(b"stale bytes that must never show");
                if let Some(back) = s.offer_buffer(dirty) {
                    spare.push(back);
                }
            }
            let feed = s.feed(&mut buf[at..end], now, &mut out);
            if recycle {
                spare.extend(s.take_idle_buffer());
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

fuzz_target!(|data: &[u8]| {
    let whole = run(data, data.len().max(1), false);
    let bytewise = run(data, 1, false);
    assert_eq!(whole, bytewise);
    let recycled = run(data, 1, true);
    assert_eq!(whole, recycled);
});
