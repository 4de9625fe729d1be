//! A small program on the library for the issue-14 attacks: `/ws` echoes
//! every message (receive_into + ws_ready, as the docs suggest for busy
//! servers), `/ws/bcast` broadcasts every text it gets to all `/ws/bcast`
//! sockets. Touching `/tmp/target14-PORT.ask` makes it write
//! `Server::stats()` as JSON to `/tmp/target14-PORT.stats`.
//!
//! `target14 PORT`, settings from the environment (defaults in brackets are
//! the library's own):
//! - `MAX_MSG` max_message_size [16 MiB], `RECV_BUF` max_receive_buffer
//!   [4 MiB], `SEND_BUF` max_send_buffer [8 MiB], `FRAGS` max_fragments
//! - `NO_DEFLATE=1`: WsOptions::deflate = None (the library's default)
//! - `SNCT`/`CNCT` = 0|1: server_/client_no_context_takeover [1, 1]
//! - `LEVEL` [6], `SBITS` server_max_window_bits [15], `CBITS`
//!   client_max_window_bits [none], `MIN_SIZE` [64]
//! - `LAZY_MS`: the program receives only every LAZY_MS milliseconds (a slow
//!   consumer: messages pile up to max_receive_buffer)
//! - `NO_ECHO=1`: receive and drop instead of echoing
//! - `MAX_INFLATED` ServerConfig::max_inflated_bytes [64 MiB],
//!   `PAUSE_MS` inflate_pause_timeout [2000]
use std::time::{Duration, Instant};

use pollserve::ws::{DeflateOptions, Message, WsId, WsOptions};
use pollserve::{Method, Server, ServerConfig};

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[derive(Default)]
struct App {
    options: Option<WsOptions>,
    bcast: Vec<WsId>,
    all: Vec<WsId>,
}

fn main() -> Result<(), pollserve::Error> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5014);
    let mut options = WsOptions::default();
    if let Some(v) = env("MAX_MSG") {
        options.protocol.max_message_size = v;
    }
    if let Some(v) = env("RECV_BUF") {
        options.max_receive_buffer = v;
    }
    if let Some(v) = env("SEND_BUF") {
        options.max_send_buffer = v;
    }
    if let Some(v) = env("FRAGS") {
        options.protocol.max_fragments = v;
    }
    if env::<u8>("NO_DEFLATE") != Some(1) {
        let d = DeflateOptions::default();
        options.deflate = Some(DeflateOptions {
            server_no_context_takeover: env::<u8>("SNCT")
                .map_or(d.server_no_context_takeover, |v| v != 0),
            client_no_context_takeover: env::<u8>("CNCT")
                .map_or(d.client_no_context_takeover, |v| v != 0),
            level: env("LEVEL").unwrap_or(d.level),
            server_max_window_bits: env("SBITS").unwrap_or(d.server_max_window_bits),
            client_max_window_bits: env("CBITS"),
            min_size: env("MIN_SIZE").unwrap_or(d.min_size),
        });
    }
    let lazy = env::<u64>("LAZY_MS").map(Duration::from_millis);
    let no_echo = env::<u8>("NO_ECHO") == Some(1);
    let mut config = ServerConfig::default();
    if let Some(v) = env("MAX_INFLATED") {
        config = config.max_inflated_bytes(v);
    }
    if let Some(v) = env::<u64>("PAUSE_MS") {
        config = config.inflate_pause_timeout(Duration::from_millis(v));
    }
    let mut server = Server::<App>::with_config(config);
    server.route("/ws", Method::GET, |req, app: &mut App| {
        let options = app.options.clone().unwrap_or_default();
        let (resp, id) = req.websocket().options(options).accept()?;
        app.all.push(id);
        Ok(resp)
    })?;
    server.route("/ws/bcast", Method::GET, |req, app: &mut App| {
        let options = app.options.clone().unwrap_or_default();
        let (resp, id) = req.websocket().options(options).accept()?;
        app.bcast.push(id);
        app.all.push(id);
        Ok(resp)
    })?;
    server.start("127.0.0.1", port)?;
    eprintln!("target14 on 127.0.0.1:{port}");
    let mut app = App {
        options: Some(options),
        bcast: Vec::new(),
        all: Vec::new(),
    };
    let mut slot = Message::Binary(Vec::new());
    let mut last_receive = Instant::now();
    let mut ready: Vec<WsId> = Vec::new();
    let mut said: Vec<String> = Vec::new();
    loop {
        server.poll(&mut app, Duration::from_millis(100))?;
        let ask = format!("/tmp/target14-{port}.ask");
        if std::path::Path::new(&ask).exists() {
            let s = server.stats();
            let _ = std::fs::write(
                format!("/tmp/target14-{port}.stats"),
                format!(
                    "{{\"connections\":{},\"input_buffered\":{},\"output_queued\":{},\"output_buffered\":{},\"inflated_held\":{},\"closed_websockets\":{}}}",
                    s.connections, s.input_buffered, s.output_queued, s.output_buffered,
                    s.inflated_held, s.closed_websockets
                ),
            );
            let _ = std::fs::remove_file(&ask);
        }
        if let Some(l) = lazy {
            if last_receive.elapsed() < l {
                continue;
            }
            last_receive = Instant::now();
        }
        ready.clear();
        if lazy.is_some() {
            // ws_ready lists a socket once per arrival: a lazy program
            // visits every socket instead.
            ready.extend_from_slice(&app.all);
        } else {
            ready.extend_from_slice(server.ws_ready());
        }
        for &id in &ready {
            let is_bcast = app.bcast.contains(&id);
            while server.ws(id).receive_into(&mut slot) {
                if is_bcast {
                    if let Message::Text(t) = &slot {
                        said.push(t.clone());
                    }
                } else if !no_echo {
                    let _ = server.ws(id).send(&slot);
                }
            }
        }
        for t in said.drain(..) {
            server.broadcast_text(&app.bcast, &t);
        }
        app.bcast.retain(|&id| !server.ws(id).is_closed());
        app.all.retain(|&id| !server.ws(id).is_closed());
    }
}
