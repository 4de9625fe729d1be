//! A telemetry dashboard over a compressed WebSocket (permessage-deflate,
//! RFC 7692): every connected browser gets a JSON reading several times a
//! second, commands a client sends are echoed back to it unchanged, and the
//! program prints what each client negotiated
//! ([`WsHandle::deflate`](pollserve::WsHandle::deflate)).
//!
//! Compression is per endpoint and off unless asked for: the `/ws` route
//! accepts with [`WsOptions::deflate`](pollserve::ws::WsOptions::deflate) set.
//! Browsers offer permessage-deflate on every WebSocket, so the page at `/`
//! shows what its connection agreed on (`WebSocket.extensions`).
//!
//! ```text
//! cargo run --example compressed_dashboard [PORT] [OPTIONS]
//!   --no-deflate            decline every offer (messages go uncompressed)
//!   --level N               compression level 0-9 (default 6)
//!   --min-size N            send shorter messages uncompressed (default 64)
//!   --server-window N       largest window the server compresses with, 8-15
//!   --client-window N       largest window the client may compress with, 8-15
//!   --server-context        keep the server's compression context between messages
//!   --client-context        let the client keep its context between messages
//!   --embedded              adafruit_httpserver's limits (4096-byte messages)
//!   --interval-ms N         time between readings (default 200)
//! ```
//!
//! Then open <http://127.0.0.1:5000/>, or send commands from any WebSocket
//! client to `ws://127.0.0.1:5000/ws`. `GET /clients` lists the connected
//! clients and their parameters as JSON.
use pollserve::ws::{DeflateOptions, DeflateParams, Message, WsId, WsOptions};
use pollserve::{Method, Response, Server};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Compressed dashboard</title>
<style>body{font-family:sans-serif;margin:2em} td{padding:0 1em} pre{background:#eee;padding:1em}</style>
</head>
<body>
<h1>Telemetry</h1>
<p>Extensions: <code id="ext">-</code> &middot; readings: <span id="count">0</span>
 &middot; echoes: <span id="echoes">0</span></p>
<pre id="reading">waiting&hellip;</pre>
<form id="cmd"><input name="c" value="led on" autocomplete="off"> <button>Send command</button></form>
<ul id="log"></ul>
<script>
// Everything the headless test reads is on window.dash.
const dash = window.dash = { ext: null, readings: 0, lastReading: null, echoes: [], bad: 0, open: false, closed: null };
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
ws.onopen = () => { dash.open = true; dash.ext = ws.extensions; document.getElementById('ext').textContent = ws.extensions || '(none)'; };
ws.onclose = e => { dash.closed = e.code; };
ws.onmessage = e => {
  if (typeof e.data === 'string' && e.data.startsWith('{"seq":')) {
    let r;
    try { r = JSON.parse(e.data); } catch (_) { dash.bad++; return; }
    dash.readings++;
    dash.lastReading = r;
    document.getElementById('count').textContent = dash.readings;
    document.getElementById('reading').textContent = JSON.stringify(r, null, 1);
  } else {
    dash.echoes.push(e.data);
    document.getElementById('echoes').textContent = dash.echoes.length;
    const li = document.createElement('li');
    li.textContent = 'echo: ' + String(e.data).slice(0, 80);
    document.getElementById('log').appendChild(li);
  }
};
document.getElementById('cmd').onsubmit = ev => { ev.preventDefault(); ws.send(ev.target.c.value); };
</script>
</body>
</html>
"#;

/// One connected client.
struct Client {
    id: WsId,
    addr: Option<SocketAddr>,
    /// What it negotiated, once reported.
    deflate: Option<Option<DeflateParams>>,
}

#[derive(Default)]
struct App {
    clients: Vec<Client>,
    /// The options every `/ws` upgrade is accepted with.
    options: WsOptions,
}

/// Command-line settings.
struct Settings {
    port: u16,
    options: WsOptions,
    interval: Duration,
}

fn parse_args() -> Result<Settings, String> {
    let mut args = std::env::args().skip(1).peekable();
    let mut port = 5000;
    if let Some(p) = args.peek().and_then(|a| a.parse::<u16>().ok()) {
        port = p;
        args.next();
    }
    let mut deflate = Some(DeflateOptions::default());
    let mut embedded = false;
    let mut interval = Duration::from_millis(200);
    // Knobs apply to the deflate options whatever their order with --no-deflate.
    let mut knobs = DeflateOptions::default();
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number"))
        };
        match arg.as_str() {
            "--no-deflate" => deflate = None,
            "--level" => knobs.level = number("--level")? as u32,
            "--min-size" => knobs.min_size = number("--min-size")? as usize,
            "--server-window" => knobs.server_max_window_bits = number("--server-window")? as u8,
            "--client-window" => {
                knobs.client_max_window_bits = Some(number("--client-window")? as u8)
            }
            "--server-context" => knobs.server_no_context_takeover = false,
            "--client-context" => knobs.client_no_context_takeover = false,
            "--embedded" => embedded = true,
            "--interval-ms" => interval = Duration::from_millis(number("--interval-ms")?.max(1)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if deflate.is_some() {
        knobs.validate()?;
        deflate = Some(knobs);
    }
    let mut options = if embedded {
        WsOptions::embedded()
    } else {
        WsOptions::default()
    };
    options.deflate = deflate;
    Ok(Settings {
        port,
        options,
        interval,
    })
}

/// `permessage-deflate; server_max_window_bits=15; ...` or `uncompressed`.
fn describe(params: Option<DeflateParams>) -> String {
    match params {
        None => "uncompressed".to_owned(),
        Some(p) => format!(
            "permessage-deflate server_max_window_bits={} client_max_window_bits={}{}{}",
            p.server_max_window_bits,
            p.client_max_window_bits,
            if p.server_no_context_takeover {
                " server_no_context_takeover"
            } else {
                ""
            },
            if p.client_no_context_takeover {
                " client_no_context_takeover"
            } else {
                ""
            },
        ),
    }
}

/// Readings of a pretend plant: a few rooms, each with a handful of sensors,
/// drifting slowly (so consecutive messages look alike, as telemetry does).
fn reading(seq: u64, out: &mut String) {
    let t = seq as f64 / 10.0;
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    out.clear();
    let _ = write!(out, r#"{{"seq":{seq},"time_ms":{millis},"rooms":["#);
    for (i, room) in ["boiler", "lab", "office", "store"].iter().enumerate() {
        let phase = t + i as f64;
        let _ = write!(
            out,
            r#"{}{{"room":"{room}","temperature_c":{:.2},"humidity_pct":{:.1},"pressure_hpa":{:.1},"co2_ppm":{},"door_open":{}}}"#,
            if i == 0 { "" } else { "," },
            21.0 + 3.0 * phase.sin(),
            45.0 + 10.0 * (phase / 3.0).cos(),
            1013.0 + (phase / 7.0).sin(),
            420 + ((phase * 13.0).sin().abs() * 300.0) as u32,
            (seq / 25 + i as u64) % 5 == 0,
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load1 = load.split_whitespace().next().unwrap_or("0");
    let _ = write!(out, r#"],"host":{{"load1":{load1}}}}}"#);
}

fn main() -> Result<(), pollserve::Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let settings = match parse_args() {
        Ok(s) => s,
        Err(why) => {
            eprintln!("compressed_dashboard: {why}");
            std::process::exit(2);
        }
    };
    let mut server = Server::<App>::new();
    server.route("/", Method::GET, |_req, _app: &mut App| {
        Ok(Response::html(PAGE))
    })?;
    server.route("/ws", Method::GET, |req, app: &mut App| {
        let (response, id) = req.websocket().options(app.options.clone()).accept()?;
        app.clients.push(Client {
            id,
            addr: None,
            deflate: None,
        });
        Ok(response)
    })?;
    server.route("/clients", Method::GET, |_req, app: &mut App| {
        let mut json = String::from("[");
        for (i, c) in app.clients.iter().enumerate() {
            let addr = c.addr.map(|a| a.to_string()).unwrap_or_default();
            let deflate = c.deflate.flatten().map(|p| describe(Some(p)));
            let _ = write!(
                json,
                r#"{}{{"addr":"{addr}","deflate":{}}}"#,
                if i == 0 { "" } else { "," },
                deflate.map_or("null".to_owned(), |d| format!("\"{d}\""))
            );
        }
        json.push(']');
        Ok(Response::bytes("application/json", json.into_bytes()))
    })?;
    server.start("127.0.0.1", settings.port)?;
    println!(
        "open http://127.0.0.1:{}/ (compression: {:?})",
        settings.port, settings.options.deflate
    );

    let mut app = App {
        options: settings.options,
        ..App::default()
    };
    let mut seq = 0;
    let mut text = String::new();
    let mut slot = Message::Text(String::new());
    let mut ids: Vec<WsId> = Vec::new();
    let mut next_reading = Instant::now();
    loop {
        let wait = next_reading.saturating_duration_since(Instant::now());
        server.poll(&mut app, wait)?;

        // New clients: say what they negotiated.
        for c in app.clients.iter_mut().filter(|c| c.deflate.is_none()) {
            let mut ws = server.ws(c.id);
            c.addr = ws.peer_addr();
            let params = ws.deflate();
            c.deflate = Some(params);
            let addr = c.addr.map(|a| a.to_string()).unwrap_or_default();
            println!("client {addr} negotiated {}", describe(params));
        }

        // Commands: echoed back to the sender as they came.
        for id in server.ws_ready().to_vec() {
            while server.ws(id).receive_into(&mut slot) {
                if let Message::Text(cmd) = &slot {
                    let start: String = cmd.chars().take(40).collect();
                    log::info!("command ({} bytes): {start:?}", cmd.len());
                }
                if let Err(e) = server.ws(id).send(&slot) {
                    log::warn!("echo failed: {e}");
                }
            }
        }

        // Readings: one message, sent to every client.
        if Instant::now() >= next_reading {
            reading(seq, &mut text);
            seq += 1;
            ids.clear();
            ids.extend(app.clients.iter().map(|c| c.id));
            server.broadcast_text(&ids, &text);
            next_reading = Instant::now() + settings.interval;
        }

        app.clients.retain(|c| {
            let mut ws = server.ws(c.id);
            if ws.is_closed() {
                println!(
                    "client {} left: {:?}",
                    c.addr.map(|a| a.to_string()).unwrap_or_default(),
                    ws.close_status()
                );
                false
            } else {
                true
            }
        });
    }
}
