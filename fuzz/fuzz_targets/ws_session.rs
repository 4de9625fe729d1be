//! WebSocket frames: a server session fed arbitrary bytes (whole, or one
//! byte at a time) never panics and reports the same messages either way.
#![no_main]
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use pollserve::proto::ws::{Event, Role, WsConfig, WsSession};

fn run(data: &[u8], step: usize) -> Vec<Event> {
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
    while pos < buf.len() {
        let end = (pos + step).min(buf.len());
        let mut at = pos;
        loop {
            let feed = s.feed(&mut buf[at..end], now, &mut out);
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
    let whole = run(data, data.len().max(1));
    let bytewise = run(data, 1);
    assert_eq!(whole, bytewise);
});
