//! pollserve inside a host program's own event loop: the host waits on the
//! server's descriptor (`AsRawFd`) and `next_deadline()` only — no timer of
//! its own — and calls `poll(Duration::ZERO)` when either fires. It serves
//! keep-alive requests, a WebSocket echo and an event stream, closes a
//! slowloris connection at its header timeout, and does not spin while idle.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::ws::{expect_close, frame, open, read_frame};
use common::{connect, read_response, read_to_close};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use pollserve::sse::{SseEvent, SseId};
use pollserve::ws::WsId;
use pollserve::{Method, Response, Server, ServerConfig};

#[derive(Default)]
struct App {
    sockets: Vec<WsId>,
    streams: Vec<SseId>,
}

struct Host {
    addr: SocketAddr,
    /// Times the host's own poll returned.
    wakeups: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    waker: Arc<mio::Waker>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            t.join().expect("host loop");
        }
    }
}

const SERVER: Token = Token(0);
const STOP: Token = Token(1);

fn host() -> Host {
    let (tx, rx) = mpsc::channel();
    let wakeups = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::spawn({
        let (wakeups, stop) = (wakeups.clone(), stop.clone());
        move || {
            let config = ServerConfig::default().header_timeout(Duration::from_millis(300));
            let mut server = Server::<App>::with_config(config);
            server
                .route("/hello", Method::GET, |_, _| Ok(Response::text("hello")))
                .unwrap();
            server
                .route("/ws", Method::GET, |req, app: &mut App| {
                    let (response, id) = req.accept_websocket()?;
                    app.sockets.push(id);
                    Ok(response)
                })
                .unwrap();
            server
                .route("/events", Method::GET, |req, app: &mut App| {
                    let (response, id) = req.accept_sse()?;
                    app.streams.push(id);
                    Ok(response)
                })
                .unwrap();
            let addr = server.start("127.0.0.1", 0).unwrap();
            // The host's loop: its own poll instance, waiting on the
            // server's descriptor and on a waker of its own, with the
            // server's next deadline as the only timeout.
            let mut host = Poll::new().unwrap();
            let fd = server.as_raw_fd();
            host.registry()
                .register(&mut SourceFd(&fd), SERVER, Interest::READABLE)
                .unwrap();
            let waker = Arc::new(mio::Waker::new(host.registry(), STOP).unwrap());
            tx.send((addr, waker)).unwrap();
            let mut events = Events::with_capacity(16);
            let mut app = App::default();
            while !stop.load(Ordering::SeqCst) {
                let timeout = server
                    .next_deadline()
                    .map(|at| at.saturating_duration_since(Instant::now()));
                host.poll(&mut events, timeout).unwrap();
                wakeups.fetch_add(1, Ordering::SeqCst);
                server.poll(&mut app, Duration::ZERO).unwrap();
                for id in server.ws_ready().to_vec() {
                    while let Some(m) = server.ws(id).receive() {
                        let _ = server.ws(id).send(&m);
                    }
                }
                // A new event stream gets a greeting, once.
                for id in std::mem::take(&mut app.streams) {
                    let _ = server.sse(id).send(&SseEvent::new("greeting"));
                }
            }
        }
    });
    let (addr, waker) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    Host {
        addr,
        wakeups,
        stop,
        waker,
        thread: Some(thread),
    }
}

#[test]
fn a_host_loop_waiting_on_the_descriptor_and_deadline_serves_everything() {
    let host = host();
    // Keep-alive: three requests on one connection.
    let mut c = connect(host.addr);
    for _ in 0..3 {
        c.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let r = read_response(&mut c, false);
        assert_eq!((r.status, r.text()), (200, "hello".to_owned()));
    }
    drop(c);
    // WebSocket echo, then a clean close.
    let mut ws = open(host.addr, "/ws");
    ws.write_all(&frame(true, 1, b"ping me")).unwrap();
    assert_eq!(read_frame(&mut ws).2, b"ping me");
    ws.write_all(&frame(true, 8, &1000u16.to_be_bytes()))
        .unwrap();
    assert_eq!(expect_close(&mut ws), 1000);
    // An event stream receives what the host loop pushes.
    let mut sse = connect(host.addr);
    sse.write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("data: greeting\n\n") {
        let n = sse.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    drop(sse);
    // Slowloris: a head that never ends is closed at the header timeout,
    // with nothing but the descriptor and next_deadline() to wake the host.
    let mut slow = connect(host.addr);
    slow.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    let answer = String::from_utf8_lossy(&read_to_close(&mut slow)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
}

#[test]
fn an_idle_host_loop_wakes_up_rarely() {
    let host = host();
    // One request, then silence: the connection's keep-alive timeout (60 s)
    // is the only deadline.
    let mut c = connect(host.addr);
    c.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut c, false).status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let before = host.wakeups.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(5));
    let idle = host.wakeups.load(Ordering::SeqCst) - before;
    // A loop on a 100 ms timer would wake 50 times, a busy one millions.
    assert!(idle <= 3, "{idle} wake-ups in 5 idle seconds");
    // And it still serves.
    c.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut c, false).status, 200);
}
