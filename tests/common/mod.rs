//! Test harness: a server on its own thread, raw loopback clients.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pollserve::{Server, ServerConfig};

/// A server polled on its own thread until dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Connections accepted so far (the sum of `Activity::accepted`, updated
    /// after each `poll` returns).
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn from_parts(
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        thread: JoinHandle<()>,
    ) -> TestServer {
        TestServer {
            addr,
            stop,
            accepted: Arc::new(AtomicUsize::new(0)),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a server configured by `setup` with application state `state`.
pub fn serve_with<S: Send + 'static>(
    config: ServerConfig,
    state: S,
    setup: impl FnOnce(&mut Server<S>) + Send + 'static,
) -> TestServer {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let stop2 = stop.clone();
    let accepted = Arc::new(AtomicUsize::new(0));
    let accepted2 = accepted.clone();
    let thread = std::thread::spawn(move || {
        let mut state = state;
        let mut server = Server::with_config(config);
        setup(&mut server);
        let addr = server.start("127.0.0.1", 0).expect("start");
        tx.send(addr).unwrap();
        while !stop2.load(Ordering::SeqCst) {
            let activity = server
                .poll(&mut state, Duration::from_millis(20))
                .expect("poll");
            accepted2.fetch_add(activity.accepted, Ordering::SeqCst);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server started");
    TestServer {
        addr,
        accepted,
        stop,
        thread: Some(thread),
    }
}

pub fn serve(setup: impl FnOnce(&mut Server<()>) + Send + 'static) -> TestServer {
    serve_with(ServerConfig::default(), (), setup)
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sends `raw` and reads until the server closes (or 10 s pass).
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    read_to_close(&mut s)
}

pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read failed after {} bytes: {e}", out.len()),
        }
        assert!(Instant::now() < deadline, "server did not close");
    }
    out
}

/// One parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads exactly one response from `s` (`head_request` = no body expected).
pub fn read_response(s: &mut TcpStream, head_request: bool) -> Resp {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read head");
        assert!(
            n == 1,
            "connection closed inside a response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if head_request || status == 304 || status == 204 || status < 200 {
        return resp;
    }
    if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().unwrap();
        let mut body = vec![0; len];
        s.read_exact(&mut body).unwrap();
        resp.body = body;
    } else if resp.header("transfer-encoding").is_some() {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                s.read_exact(&mut byte).unwrap();
                line.push(byte[0]);
            }
            let size =
                usize::from_str_radix(std::str::from_utf8(&line[..line.len() - 2]).unwrap(), 16)
                    .unwrap();
            let mut chunk = vec![0; size + 2];
            s.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            resp.body.extend_from_slice(&chunk[..size]);
        }
    } else {
        resp.body = read_to_close(s);
    }
    resp
}

/// Sends one request on a new connection and reads one response.
pub fn request(addr: SocketAddr, raw: &str) -> Resp {
    let mut s = connect(addr);
    s.write_all(raw.as_bytes()).unwrap();
    read_response(&mut s, raw.starts_with("HEAD "))
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    )
}
