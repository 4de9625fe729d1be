//! Access log format, start/stop log lines, and stop() finishing requests in flight.

mod common;

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use pollserve::{Method, Response, Server};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        LINES
            .lock()
            .unwrap()
            .push(format!("{}|{}", r.target(), r.args()));
    }
    fn flush(&self) {}
}

#[test]
fn access_log_stop_with_request_in_flight_and_restart() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Info);

    let mut server = Server::<()>::new();
    server
        .route("/echo", Method::POST, |req, _| {
            Ok(Response::bytes("text/plain", req.body().to_vec()))
        })
        .unwrap();
    let addr = server.start("127.0.0.1", 0).unwrap();
    let poll = |server: &mut Server<()>| server.poll(&mut (), Duration::from_millis(5)).unwrap();

    // A request whose body is still arriving when the server stops.
    let mut client = common::connect(addr);
    client
        .write_all(b"POST /echo?secret=x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello")
        .unwrap();
    let mut idle = common::connect(addr);
    for _ in 0..20 {
        poll(&mut server);
    }
    assert_eq!(server.connection_count(), 2);
    server.stop();
    assert!(!server.is_listening());
    // The idle connection is closed at once, the busy one is not.
    assert_eq!(server.connection_count(), 1);
    assert!(common::read_to_close(&mut idle).is_empty());

    let reader = std::thread::spawn(move || {
        client.write_all(b"world").unwrap();
        let r = common::read_response(&mut client, false);
        (
            r.status,
            r.text(),
            r.header("connection").map(str::to_owned),
            common::read_to_close(&mut client),
        )
    });
    while !reader.is_finished() {
        poll(&mut server);
    }
    let (status, body, connection, rest) = reader.join().unwrap();
    assert_eq!((status, body.as_str()), (200, "helloworld"));
    assert_eq!(
        connection.as_deref(),
        Some("close"),
        "a stopping server closes after the response"
    );
    assert!(rest.is_empty());

    let addr2 = server.start("127.0.0.1", addr.port()).unwrap();
    assert_eq!(addr2, addr);
    server.stop();

    let lines = LINES.lock().unwrap().clone();
    let access: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("pollserve::access|"))
        .collect();
    assert_eq!(access.len(), 1, "{lines:#?}");
    // The seed's format: {ip} -- "{method} {path}" {request size} -- "{status}" {response size} -- {ms}ms
    let line = access[0].split_once('|').unwrap().1;
    let parts: Vec<&str> = line.split(" -- ").collect();
    assert_eq!(parts.len(), 4, "{line}");
    assert_eq!(parts[0], "127.0.0.1");
    assert_eq!(
        parts[1], "\"POST /echo\" 71",
        "the query string is not logged: {line}"
    );
    let (status, size) = parts[2].rsplit_once(' ').unwrap();
    assert_eq!(status, "\"200 OK\"");
    assert!(size.parse::<usize>().unwrap() > 10, "{line}");
    assert!(
        parts[3].ends_with("ms") && parts[3].trim_end_matches("ms").parse::<u64>().is_ok(),
        "{line}"
    );
    let port = addr.port().to_string();
    assert_eq!(lines.iter().filter(|l| l.contains("pollserve listening on http://127.0.0.1:") && l.ends_with(&port)).count(), 2);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("stopped listening"))
            .count(),
        2
    );
}
