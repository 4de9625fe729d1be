//! Heap bytes of the permessage-deflate codec, counted with a counting
//! global allocator: the numbers documented in `src/proto/deflate.rs`
//! (`Compressor::memory`, `Inflater::MEMORY`) are checked here, and so is
//! the claim that a session inflates and compresses without allocating per
//! message once its buffers are there.
#![cfg(feature = "deflate")]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use pollserve::proto::deflate::{Compressor, DeflateParams, Inflater};
use pollserve::proto::ws::{Event, Message, Role, WsConfig, WsSession};

/// Counts this thread's live heap bytes and allocation calls (tests run on
/// several threads; each measures only itself).
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

fn note(delta: isize, call: bool) {
    // `try_with`: the thread-locals may be gone while a thread exits.
    let _ = LIVE.try_with(|l| l.set(l.get() + delta));
    if call {
        let _ = CALLS.try_with(|c| c.set(c.get() + 1));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize, true);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize), false);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize, true);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize, true);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

fn calls() -> usize {
    CALLS.with(Cell::get)
}

/// Live bytes `make` leaves behind while its result is alive.
fn heap_of<T>(make: impl FnOnce() -> T) -> (T, usize) {
    let before = live();
    let value = make();
    (value, (live() - before) as usize)
}

#[test]
fn compressor_memory_is_as_documented() {
    for bits in 8..=15u8 {
        for level in [1, 6, 9] {
            let (mut c, bytes) = heap_of(|| Compressor::new(level, bits));
            println!("compressor level {level} bits {bits}: {bytes} B");
            assert_eq!(bytes, Compressor::memory(bits), "level {level} bits {bits}");
            // Resetting it allocates nothing.
            let before = calls();
            c.reset();
            assert_eq!(calls(), before);
        }
    }
}

#[test]
fn inflater_memory_is_as_documented() {
    for bits in 8..=15u8 {
        let (i, bytes) = heap_of(|| Inflater::new(bits));
        println!("inflater bits {bits}: {bytes} B");
        assert_eq!(bytes, Inflater::MEMORY, "bits {bits}");
        let mut i = i;
        let before = calls();
        i.reset();
        assert_eq!(calls(), before, "reset allocates nothing");
    }
}

const JSON: &str = r#"{"id":1234,"sensor":"greenhouse-3","readings":[{"t":"2024-05-01T12:00:00Z","temperature":21.5,"humidity":48.2},{"t":"2024-05-01T12:00:10Z","temperature":21.6,"humidity":48.0},{"t":"2024-05-01T12:00:20Z","temperature":21.6,"humidity":47.9}],"status":"ok","battery":0.87,"firmware":"1.4.2","location":{"lat":52.52,"lon":13.405},"notes":"steady readings, fan off, door closed; next calibration due in 12 days"}"#;

/// Client-compressed frames of `JSON`, `n` times, for a session with `p`.
fn client_frames(p: DeflateParams, n: usize) -> Vec<u8> {
    let mut c = WsSession::new(Role::Client, WsConfig::default());
    c.enable_deflate(p, 6, 0);
    let mut wire = Vec::new();
    for _ in 0..n {
        c.send_text(JSON, &mut wire).unwrap();
    }
    wire
}

/// Feeds `input` until it is used up, returning the messages; counts no
/// allocation of its own (the events are moved, not copied).
fn feed_all(s: &mut WsSession, input: &mut [u8], out: &mut Vec<u8>) -> usize {
    let now = Instant::now();
    let mut pos = 0;
    let mut messages = 0;
    while pos < input.len() {
        let f = s.feed(&mut input[pos..], now, out);
        pos += f.consumed;
        match f.event {
            Some(Event::Message(Message::Text(t))) => {
                assert_eq!(t.len(), JSON.len());
                messages += 1;
                // Recycle the buffer, as the driver does.
                assert!(s.offer_buffer(t.into_bytes()).is_none());
            }
            Some(other) => panic!("{other:?}"),
            None => {}
        }
    }
    messages
}

#[test]
fn compressed_messages_need_no_allocation_once_buffers_are_there() {
    for (nct, lend) in [(true, true), (false, false)] {
        let p = DeflateParams {
            server_no_context_takeover: nct,
            client_no_context_takeover: nct,
            ..DeflateParams::default()
        };
        let mut s = WsSession::new(Role::Server, WsConfig::default());
        s.enable_deflate(p, 6, 0);
        let mut out = Vec::with_capacity(1 << 16);
        assert!(s.offer_buffer(Vec::with_capacity(1 << 16)).is_none());
        let mut wire = client_frames(p, 5);
        // The first message is as long as one sent alone.
        let one = client_frames(p, 1).len();
        let (first, rest) = wire.split_at_mut(one);
        // The first message makes the codecs (or they are lent).
        if lend {
            assert!(s.offer_inflater(Inflater::new(15)).is_none());
            assert!(s.offer_compressor(Compressor::new(6, 15)).is_none());
        }
        assert_eq!(feed_all(&mut s, first, &mut out), 1);
        s.send_text(JSON, &mut out).unwrap();
        out.clear();
        let before = calls();
        assert_eq!(feed_all(&mut s, rest, &mut out), 4);
        for _ in 0..4 {
            s.send_text(JSON, &mut out).unwrap();
            assert!(out.len() < JSON.len(), "compressed");
            out.clear();
        }
        assert_eq!(
            calls(),
            before,
            "no allocation per message (takeover: {})",
            !nct
        );
        if lend {
            // Between messages the codecs can go back to a pool.
            assert!(s.take_idle_inflater().is_some());
            assert!(s.take_idle_compressor().is_some());
        }
    }
}

#[test]
fn deflate_state_of_an_idle_session_is_small() {
    let mut s = WsSession::new(Role::Server, WsConfig::default());
    let p = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let ((), bytes) = heap_of(|| s.enable_deflate(p, 6, 0));
    println!("enable_deflate: {bytes} B on the heap");
    assert!(bytes <= 512, "{bytes}");
}

/// A closed WebSocket's slot stays for a while (so the program can read how
/// it ended and take its messages), but its codecs cannot be used any more:
/// sockets that keep context hold a compressor and an inflater of several
/// hundred KiB between messages, and a closed slot kept them until it
/// expired — opening and closing such sockets quickly made the server hold
/// gigabytes with no socket open (attack review, `attack/review-s23`).
/// Here 24 of them each exchange a compressed message and vanish; the
/// server (polled on this thread, whose allocations are counted) then
/// holds at most the codecs its pool keeps (8 of each kind), not 24 pairs.
#[test]
fn closed_slots_of_context_keeping_sockets_hold_no_codecs() {
    use common::ws::handshake;
    use pollserve::ws::{DeflateOptions, WsId, WsOptions};
    use pollserve::{Method, Server, ServerConfig};
    use std::io::{Read, Write};
    use std::time::Duration;

    const SOCKETS: usize = 24;
    let mut server = Server::<Vec<WsId>>::with_config(
        // Closed slots stay the whole test.
        ServerConfig::default().linger_timeout(Duration::from_secs(60)),
    );
    let options = WsOptions {
        deflate: Some(DeflateOptions {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            ..DeflateOptions::default()
        }),
        ..WsOptions::default()
    };
    server
        .route("/ws", Method::GET, move |req, ids: &mut Vec<WsId>| {
            let (response, id) = req.websocket().options(options.clone()).accept()?;
            ids.push(id);
            Ok(response)
        })
        .unwrap();
    server.start("127.0.0.1", 0).unwrap();
    let addr = server.local_addr().unwrap();
    let mut ids = Vec::new();
    server.poll(&mut ids, Duration::ZERO).unwrap();
    let before = live();

    let clients = std::thread::spawn(move || {
        for _ in 0..SOCKETS {
            let (mut s, head) = handshake(
                addr,
                "/ws",
                "Sec-WebSocket-Extensions: permessage-deflate\r\n",
            );
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            assert!(head.contains("permessage-deflate"), "{head}");
            // One compressed message each way, then the socket vanishes.
            s.write_all(&client_frames(DeflateParams::default(), 1))
                .unwrap();
            let mut echo = [0u8; 2];
            s.read_exact(&mut echo).unwrap();
            assert_eq!(echo[0], 0xC1, "a compressed text frame comes back");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut done = false;
    while !done {
        assert!(Instant::now() < deadline, "the clients did not finish");
        server.poll(&mut ids, Duration::from_millis(5)).unwrap();
        for id in server.ws_ready().to_vec() {
            while let Some(message) = server.ws(id).receive() {
                // Compressed with the socket's own (context-keeping) compressor.
                let _ = server.ws(id).send(&message);
            }
        }
        done = clients.is_finished()
            && ids.len() == SOCKETS
            && ids.iter().all(|&id| server.ws(id).is_closed());
    }
    clients.join().unwrap();
    let codecs = Compressor::memory(15) + Inflater::MEMORY;
    let held = live() - before;
    println!("{SOCKETS} closed context-keeping sockets: {held} B held; one codec pair {codecs} B");
    assert!(
        held < (12 * codecs) as isize,
        "{held} B held by {SOCKETS} closed sockets (a codec pair is {codecs} B)"
    );
    // The slots are still there: their ids report how the sockets ended.
    assert_eq!(server.stats().closed_websockets, SOCKETS);
}
