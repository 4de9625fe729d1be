//! The server-wide budget of inflated bytes
//! (`ServerConfig::max_inflated_bytes`) and the per-round share of
//! inflation, over real sockets: many small decompression bombs while the
//! program does not receive, the pause and its 1013, a message over the
//! budget (1009), and a bomb that cannot hold a whole poll round.
#![cfg(feature = "deflate")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ws::{frame, handshake, try_read_frame};
use flate2::{Compress, Compression, FlushCompress};
use pollserve::proto::ws::ProtocolError;
use pollserve::ws::{CloseStatus, DeflateOptions, WsId, WsOptions};
use pollserve::{Method, Server, ServerConfig};

const MIB: usize = 1 << 20;
const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate\r\n";

#[derive(Default)]
struct App {
    /// Sockets of `/bomb`: received from only while `release` is set.
    bombs: Vec<WsId>,
    /// Sockets of `/echo` and `/plain`: always received from and echoed.
    echo: Vec<WsId>,
    release: bool,
    /// Sizes of the messages taken from `bombs`.
    taken: Vec<usize>,
    /// Sockets of `bombs` closed with 1013 for want of inflate budget.
    busy: usize,
    /// Highest `Server::stats().inflated_held` seen after a poll.
    max_held: usize,
    /// Polls so far, and the poll after which each socket's first message
    /// was taken (for the round-share test).
    polls: usize,
    first_taken: Vec<(WsId, usize, usize)>,
}

fn options(deflate: bool) -> WsOptions {
    let mut o = WsOptions {
        deflate: deflate.then(DeflateOptions::default),
        ..WsOptions::default()
    };
    o.protocol.max_message_size = 16 * MIB;
    // Large, so the budget, not the per-socket inbox bound, is what holds.
    o.max_receive_buffer = 64 * MIB;
    o
}

fn budget_server(config: ServerConfig) -> common::TestServer<App> {
    let after_poll = |server: &mut Server<App>, app: &mut App| {
        app.polls += 1;
        app.max_held = app.max_held.max(server.stats().inflated_held);
        let polls = app.polls;
        for &id in &app.echo {
            while let Some(m) = server.ws(id).receive() {
                if !app.first_taken.iter().any(|&(i, _, _)| i == id) {
                    app.first_taken.push((id, polls, m.as_bytes().len()));
                }
                let _ = server.ws(id).send(&m);
            }
        }
        if app.release {
            for &id in &app.bombs {
                while let Some(m) = server.ws(id).receive() {
                    app.taken.push(m.as_bytes().len());
                }
            }
        }
        app.busy = app
            .bombs
            .iter()
            .filter(|&&id| {
                server.ws(id).close_status()
                    == Some(CloseStatus::Failed(ProtocolError::InflateBudgetExhausted))
            })
            .count();
    };
    common::serve_loop(config, App::default(), after_poll, |s| {
        s.route("/bomb", Method::GET, |req, app: &mut App| {
            let (resp, id) = req.websocket().options(options(true)).accept()?;
            app.bombs.push(id);
            Ok(resp)
        })
        .unwrap();
        for (path, deflate) in [("/echo", true), ("/plain", false)] {
            s.route(path, Method::GET, move |req, app: &mut App| {
                let (resp, id) = req.websocket().options(options(deflate)).accept()?;
                app.echo.push(id);
                Ok(resp)
            })
            .unwrap();
        }
    })
}

/// `data` deflated as one permessage-deflate message (tail stripped).
fn deflated(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new_with_window_bits(Compression::best(), false, 15);
    let mut out = Vec::with_capacity(data.len() / 100 + 1024);
    loop {
        let consumed = c.total_in() as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(64 << 10);
        }
        c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .unwrap();
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// A masked client frame of one compressed binary message (RSV1 set).
fn compressed_frame(data: &[u8]) -> Vec<u8> {
    let mut f = frame(true, 2, &deflated(data));
    f[0] |= 0x40;
    f
}

fn connect_ws(srv: &common::TestServer<App>, path: &str) -> TcpStream {
    let (s, head) = handshake(srv.addr, path, OFFER);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Waits (polling the server's state) until `done` holds, up to 20 s.
fn wait_for(srv: &common::TestServer<App>, done: fn(&mut Server<App>, &App) -> bool) {
    let start = Instant::now();
    while !srv.on_server(move |s, app| done(s, app)) {
        if start.elapsed() > Duration::from_secs(20) {
            let state = srv.on_server(|s, app| {
                format!(
                    "{:?} taken {:?} first {:?}",
                    s.stats(),
                    app.taken,
                    app.first_taken
                )
            });
            panic!("timed out waiting: {state}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads frames until a close frame; its code, or `None` if the socket
/// ended first.
fn close_code(s: &mut TcpStream) -> Option<u16> {
    while let Some((_, op, p)) = try_read_frame(s) {
        if op == 8 {
            return Some(u16::from_be_bytes([p[0], p[1]]));
        }
    }
    None
}

/// The server thread held by a job until [`release`](Self::release), so
/// that what the test writes meanwhile waits in the sockets and the next
/// poll finds it all at once.
struct ServerHeld {
    hold: Arc<AtomicBool>,
    job: std::thread::JoinHandle<()>,
}

impl ServerHeld {
    /// Returns once the server thread runs the holding job.
    fn hold(srv: &Arc<common::TestServer<App>>) -> ServerHeld {
        let hold = Arc::new(AtomicBool::new(true));
        let started = Arc::new(AtomicBool::new(false));
        let job = std::thread::spawn({
            let (srv, hold, started) = (srv.clone(), hold.clone(), started.clone());
            move || {
                srv.on_server(move |_, _| {
                    started.store(true, Ordering::SeqCst);
                    while hold.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            }
        });
        while !started.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        ServerHeld { hold, job }
    }

    fn release(self) {
        self.hold.store(false, Ordering::SeqCst);
        self.job.join().unwrap();
    }
}

/// Closes every socket from the client side and checks the close codes
/// they got: 1000 (answering ours) for the `taken` whose message the
/// program took, 1013 for the `busy` ones refused for want of budget.
fn assert_close_codes(socks: &mut [TcpStream], taken: usize, busy: usize) {
    let mut codes: Vec<u16> = socks
        .iter_mut()
        .map(|s| {
            let _ = s.write_all(&frame(true, 8, &1000u16.to_be_bytes()));
            close_code(s).unwrap_or(0)
        })
        .collect();
    codes.sort_unstable();
    let want: Vec<u16> = [1000]
        .repeat(taken)
        .into_iter()
        .chain([1013].repeat(busy))
        .collect();
    assert_eq!(codes, want);
}

/// A compressed echo round trip on `/echo` (the default mode: no context
/// kept by either side, so each message inflates on its own).
fn compressed_echo(srv: &common::TestServer<App>, text: &[u8]) {
    let mut s = connect_ws(srv, "/echo");
    let mut f = frame(true, 1, &deflated(text));
    f[0] |= 0x40;
    s.write_all(&f).unwrap();
    let (fin, op, p) = try_read_frame(&mut s).expect("an echo");
    assert!(fin && op == 1);
    let mut d = flate2::Decompress::new_with_window_bits(false, 15);
    let mut input = p;
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(text.len() + 64);
    d.decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
        .unwrap();
    assert_eq!(out, text);
}

#[test]
fn many_bombs_stay_within_the_budget_and_complete_or_get_1013() {
    const BUDGET: usize = 8 * MIB;
    const BOMB: usize = 3 * MIB;
    const CONNS: usize = 10;
    let srv = budget_server(
        ServerConfig::default()
            .max_inflated_bytes(BUDGET)
            .inflate_pause_timeout(Duration::from_millis(500)),
    );
    let bomb = compressed_frame(&vec![0u8; BOMB]);
    assert!(bomb.len() < 8 << 10, "a small bomb: {} bytes", bomb.len());
    let mut socks: Vec<TcpStream> = (0..CONNS).map(|_| connect_ws(&srv, "/bomb")).collect();
    for s in &mut socks {
        s.write_all(&bomb).unwrap();
    }
    // The budget fills (whole messages and partial ones, 1 MiB per socket
    // per round), then the other sockets wait.
    wait_for(&srv, |s, _| s.stats().inflated_held >= BUDGET - BOMB);
    std::thread::sleep(Duration::from_millis(300));
    let held = srv.on_server(|s, _| s.stats().inflated_held);
    // Margin: a pending match or the tail per message (a few hundred bytes).
    assert!(held <= BUDGET + 64 * 1024, "held {held} > budget {BUDGET}");
    // Others are still served meanwhile: plain WebSocket echo and HTTP.
    let mut p = connect_ws(&srv, "/plain");
    // (A compressed client would wait too: the budget is full.)
    p.write_all(&frame(true, 1, b"plain still works")).unwrap();
    let (_, op, echoed) = try_read_frame(&mut p).expect("plain echo");
    assert_eq!((op, echoed.as_slice()), (1, &b"plain still works"[..]));
    let r = common::get(srv.addr, "/nothing-here");
    assert_eq!(r.status, 404);
    // The program receives: the paused sockets go on, the one furthest
    // along first. Each bomb arrives whole, or its socket is closed with
    // 1013 after waiting 500 ms with the budget full (partial messages
    // that can only finish when another gives its bytes back); the budget
    // is never overrun.
    srv.on_server(|_, app| app.release = true);
    wait_for(&srv, |_, app| app.taken.len() + app.busy == CONNS);
    let (taken, busy, max_held) =
        srv.on_server(|_, app| (app.taken.clone(), app.busy, app.max_held));
    assert!(taken.iter().all(|&n| n == BOMB), "{taken:?}");
    assert!(
        taken.len() >= 3,
        "{} completed, {busy} got 1013",
        taken.len()
    );
    assert!(max_held <= BUDGET + 64 * 1024, "max held {max_held}");
    wait_for(&srv, |s, _| s.stats().inflated_held == 0);
    // A legitimate compressed client works.
    compressed_echo(
        &srv,
        "a legitimate compressed message, ".repeat(20).as_bytes(),
    );
    // What each client sees: its close code (1000 answering ours, or 1013).
    assert_close_codes(&mut socks, taken.len(), busy);
}

#[test]
fn a_socket_paused_too_long_gets_1013_and_one_over_the_budget_1009() {
    const BUDGET: usize = 4 * MIB;
    let srv = budget_server(
        ServerConfig::default()
            .max_inflated_bytes(BUDGET)
            .inflate_pause_timeout(Duration::from_millis(300)),
    );
    // A message over the budget (but under max_message_size) is too big.
    let mut c = connect_ws(&srv, "/bomb");
    c.write_all(&compressed_frame(&vec![0u8; 5 * MIB])).unwrap();
    assert_eq!(close_code(&mut c), Some(1009));
    wait_for(&srv, |s, _| s.stats().inflated_held == 0);
    // A holds 3 MiB the program does not take; B then pauses at the 1 MiB
    // left and, past the pause bound, is closed with 1013.
    let mut a = connect_ws(&srv, "/bomb");
    a.write_all(&compressed_frame(&vec![0u8; 3 * MIB])).unwrap();
    wait_for(&srv, |s, _| s.stats().inflated_held == 3 * MIB);
    let mut b = connect_ws(&srv, "/bomb");
    b.write_all(&compressed_frame(&vec![7u8; 3 * MIB])).unwrap();
    assert_eq!(close_code(&mut b), Some(1013));
    // B's partial message is freed; A's message still waits.
    wait_for(&srv, |s, _| s.stats().inflated_held == 3 * MIB);
    let max_held = srv.on_server(|_, app| app.max_held);
    assert!(max_held <= BUDGET + 64 * 1024, "max held {max_held}");
    // Once the program takes A's message, compressed clients go on.
    srv.on_server(|_, app| app.release = true);
    wait_for(&srv, |_, app| app.taken == [3 * MIB]);
    compressed_echo(&srv, "after the pause, ".repeat(30).as_bytes());
    a.write_all(&frame(true, 8, &1000u16.to_be_bytes()))
        .unwrap();
    assert_eq!(close_code(&mut a), Some(1000));
}

#[test]
fn a_bomb_does_not_hold_a_whole_round() {
    let srv = budget_server(ServerConfig::default());
    let mut bomb_sock = connect_ws(&srv, "/echo");
    let mut plain_sock = connect_ws(&srv, "/plain");
    // Both messages wait in the sockets before the server's next poll: a
    // job holds the server thread while they are written.
    let srv = Arc::new(srv);
    let held = ServerHeld::hold(&srv);
    // (Under the default 8 MiB send bound for the compressed echo.)
    const BOMB: usize = 6 * MIB;
    bomb_sock
        .write_all(&compressed_frame(&vec![0u8; BOMB]))
        .unwrap();
    plain_sock.write_all(&frame(true, 1, b"me too")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    held.release();
    wait_for(&srv, |_, app| app.first_taken.len() == 2);
    let taken = srv.on_server(|_, app| app.first_taken.clone());
    let poll_of = |len: usize| {
        let t = taken.iter().find(|t| t.2 == len);
        t.map(|t| t.1).unwrap_or_else(|| panic!("{taken:?}"))
    };
    let (bomb_poll, plain_poll) = (poll_of(BOMB), poll_of(6));
    // 6 MiB at 1 MiB per connection per round: the bomb takes at least 6
    // rounds, and the small message is taken well before it completes.
    assert!(
        plain_poll + 3 <= bomb_poll,
        "plain message after poll {plain_poll}, bomb after poll {bomb_poll}"
    );
    // The bomb's echo (compressed by the server) arrives intact.
    let (_, op, p) = try_read_frame(&mut plain_sock).unwrap();
    assert_eq!((op, p.as_slice()), (1, &b"me too"[..]));
    let mut head = [0u8; 2];
    bomb_sock.read_exact(&mut head).unwrap();
    assert_eq!(head[0], 0xc2, "FIN, RSV1, binary");
}

/// Several large messages started at once fill the budget with partial
/// messages none of which can finish: the jam is relieved at once (one
/// gives its bytes back, 1013), not after `inflate_pause_timeout`, which
/// is far longer than the test waits.
#[test]
fn partial_messages_that_jam_the_budget_are_relieved_without_waiting_for_the_timeout() {
    const BUDGET: usize = 8 * MIB;
    const BOMB: usize = 6 * MIB;
    const CONNS: usize = 4;
    let srv = budget_server(
        ServerConfig::default()
            .max_inflated_bytes(BUDGET)
            .inflate_pause_timeout(Duration::from_secs(600)),
    );
    srv.on_server(|_, app| app.release = true);
    let bomb = compressed_frame(&vec![0u8; BOMB]);
    let mut socks: Vec<TcpStream> = (0..CONNS).map(|_| connect_ws(&srv, "/bomb")).collect();
    // Every bomb waits in its socket before the server's next poll (a job
    // holds the server thread meanwhile), so all start together.
    let srv = Arc::new(srv);
    let held = ServerHeld::hold(&srv);
    for s in &mut socks {
        s.write_all(&bomb).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    held.release();
    // 4 x 6 MiB into 8 MiB: at 1 MiB per socket per round, partial
    // messages fill the budget after two rounds. Every socket ends (its
    // message taken whole, or 1013) well within the 600 s pause bound.
    wait_for(&srv, |_, app| app.taken.len() + app.busy == CONNS);
    let (taken, busy, max_held) =
        srv.on_server(|_, app| (app.taken.clone(), app.busy, app.max_held));
    assert!(taken.iter().all(|&n| n == BOMB), "{taken:?}");
    assert!(!taken.is_empty(), "none completed; {busy} got 1013");
    assert!(max_held <= BUDGET + 64 * 1024, "max held {max_held}");
    wait_for(&srv, |s, _| s.stats().inflated_held == 0);
    assert_close_codes(&mut socks, taken.len(), busy);
}

/// Sockets that hold the budget with partial messages they never finish
/// (a cheap way to deny compressed service) give it up to a client that
/// needs room: the one whose partial message has gone longest without
/// growing is closed with 1013, and the client's message goes through.
#[test]
fn idle_partial_messages_give_their_room_to_a_client_that_needs_it() {
    const BUDGET: usize = 8 * MIB;
    let srv = budget_server(
        ServerConfig::default()
            .max_inflated_bytes(BUDGET)
            .inflate_pause_timeout(Duration::from_secs(600)),
    );
    // Two holders: the first frame of a compressed message each, 4 MiB
    // inflated, and no more.
    let mut holders: Vec<TcpStream> = (0..2).map(|_| connect_ws(&srv, "/bomb")).collect();
    for (i, h) in holders.iter_mut().enumerate() {
        let mut f = frame(false, 2, &deflated(&vec![i as u8; 4 * MIB]));
        f[0] |= 0x40;
        h.write_all(&f).unwrap();
        // One after the other: the first one's partial is the older.
        wait_for(&srv, |s, _| {
            s.stats().inflated_held % (4 * MIB) == 0 && s.stats().inflated_held > 0
        });
    }
    wait_for(&srv, |s, _| s.stats().inflated_held == BUDGET);
    // A compressed client needs room: it gets it.
    let text = "needs room in the budget; ".repeat(4000);
    compressed_echo(&srv, text.as_bytes());
    let codes: Vec<Option<u16>> = holders
        .iter_mut()
        .map(|h| {
            h.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut head = [0u8; 4];
            match h.read_exact(&mut head) {
                Ok(()) if head[0] == 0x88 => Some(u16::from_be_bytes([head[2], head[3]])),
                _ => None,
            }
        })
        .collect();
    assert_eq!(codes, [Some(1013), None], "the older holder gave way");
    let held = srv.on_server(|s, _| s.stats().inflated_held);
    assert_eq!(held, 4 * MIB, "the other holder's partial remains");
}
