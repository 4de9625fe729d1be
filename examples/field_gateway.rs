//! A field gateway, as it would run on a Raspberry Pi behind nginx: a
//! (simulated) sensor is read every 200 ms in the program's own loop and
//! each reading is pushed to every open browser tab over Server-Sent Events
//! and to every WebSocket client; WebSocket clients send commands
//! (`{"led": true}`) and get an acknowledgement; a small JSON API reads the
//! latest value and sets the alarm threshold. Everything, the page included,
//! is behind HTTP Basic authentication.
//!
//! ```sh
//! GATEWAY_USER=pi GATEWAY_PASSWORD=secret cargo run --example field_gateway -- 5001
//! curl -u pi:secret http://127.0.0.1:5001/api/reading
//! curl -u pi:secret -H 'Content-Type: application/json' -d '{"threshold_c": 24.5}' \
//!      http://127.0.0.1:5001/api/threshold
//! curl -u pi:secret -N http://127.0.0.1:5001/events
//! ```
//!
//! It listens on 127.0.0.1 only: clients reach it through nginx on the same
//! machine, configured as in `docs/reverse-proxy.md`, with these changes to
//! match the limits below (the proxy's limits must not exceed the
//! gateway's):
//!
//! ```nginx
//! upstream gateway { server 127.0.0.1:5001; keepalive 8; keepalive_timeout 10s; }
//! limit_conn_zone $binary_remote_addr zone=perip:1m;
//! server {
//!     client_max_body_size 4k;     # = MAX_BODY
//!     limit_conn perip 8;          # the per-client cap (see `config`)
//!     # ... the rest of the block in docs/reverse-proxy.md ...
//! }
//! ```
//!
//! Ctrl-C (SIGINT) or SIGTERM shuts down gracefully: requests in flight are
//! answered, WebSocket clients get close code 1001 (going away), event
//! streams end, and the process exits with status 0. A second Ctrl-C while
//! that runs exits at once (status 130).
//!
//! Logging goes to stderr through `env_logger` (level from `GATEWAY_LOG`:
//! `error`, `warn`, `info` (default), `debug`); the access log is target
//! `pollserve::access`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};
use pollserve::forwarded::TrustedProxies;
use pollserve::sse::{SseEvent, SseId, SseOptions};
use pollserve::ws::{CloseStatus, DeflateOptions, Message, WsConfig, WsId, WsOptions};
use pollserve::{
    Activity, Authentication, HttpError, Method, Request, Response, Server, ServerConfig,
    StatusCode,
};
use serde::{Deserialize, Serialize};

/// How often the sensor is read and the reading pushed.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// How often `Server::stats` goes to the log (`GATEWAY_STATS_SECS` changes it).
const STATS_EVERY: Duration = Duration::from_secs(60);
/// How long a graceful shutdown may take before the rest is dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The JSON API takes only tiny bodies (`{"threshold_c": 24.5}`).
const MAX_BODY: u64 = 4 * 1024;
/// Largest WebSocket message a client may send; a command is ~20 bytes.
/// A larger one closes the connection with 1009 (message too big).
const MAX_WS_MESSAGE: usize = 1024;

/// Limits for a small device (a Pi with a few hundred MB free and at most a
/// handful of users), in place of the library's desktop defaults.
fn config() -> ServerConfig {
    ServerConfig::default()
        // A few tabs, each holding an event stream and a WebSocket, plus
        // nginx's idle keep-alive connections: 64 is plenty, and bounds
        // memory and descriptors. Those beyond wait in a short backlog.
        .max_connections(64)
        .backlog(64)
        // The per-address cap applies to clients that reach the gateway
        // directly; nginx, a trusted proxy (see `main`), is not capped, as
        // every browser arrives from its address. The cap per *browser*
        // behind nginx is nginx's `limit_conn perip 8` (module docs).
        .max_connections_per_ip(Some(8))
        // Only small JSON bodies; heads of a browser behind nginx fit in
        // 8 KiB with room to spare.
        .max_body_size(MAX_BODY)
        .max_request_line(2 * 1024)
        .max_head_size(8 * 1024)
        .max_headers(40)
        // Short deadlines: nothing legitimate here is slow.
        .header_timeout(Duration::from_secs(10))
        .body_timeout(Duration::from_secs(10))
        // Must stay longer than nginx's upstream `keepalive_timeout` (10 s).
        .keep_alive_timeout(Duration::from_secs(15))
        .send_timeout(Duration::from_secs(20))
        // Start probing a silent peer (a phone that left the Wi-Fi) after
        // 30 s; with data in flight, Linux gives up after `send_timeout`.
        .tcp_keepalive(Some(Duration::from_secs(30)))
}

/// WebSocket limits: commands are tiny, readings go one way.
fn ws_options() -> WsOptions {
    WsOptions {
        protocol: WsConfig {
            max_message_size: MAX_WS_MESSAGE,
            max_fragments: 4,
            fragment_timeout: Some(Duration::from_secs(5)),
            // Ping a silent client after 20 s (inside nginx's 60 s
            // `proxy_read_timeout`), drop it 10 s later without an answer.
            keepalive_interval: Some(Duration::from_secs(20)),
            keepalive_timeout: Duration::from_secs(10),
            // Dashboards only listen: no idle timeout.
            idle_timeout: None,
            ..WsConfig::embedded()
        },
        // A reading is ~100 bytes, 5 a second: once the kernel's socket
        // buffers are full, 32 KiB is about another minute of readings for
        // a tab that stopped reading; then it is dropped.
        max_send_buffer: 32 * 1024,
        // Commands the loop has not taken yet; beyond this the socket is
        // not read (TCP flow control).
        max_receive_buffer: 8 * 1024,
        // Browsers offer permessage-deflate: JSON readings shrink on a slow
        // radio link, and with the defaults no socket keeps compression
        // state between messages.
        deflate: Some(DeflateOptions::default()),
    }
}

/// Event-stream limits, as for the WebSocket's send side.
fn sse_options() -> SseOptions {
    SseOptions {
        heartbeat: Some(Duration::from_secs(15)),
        max_send_buffer: 32 * 1024,
    }
}

/// One reading, as sent to clients and by `GET /api/reading`.
#[derive(Serialize, Clone, Copy, Default)]
struct Reading {
    seq: u64,
    uptime_ms: u64,
    temperature_c: f64,
    threshold_c: f64,
    alarm: bool,
    led: bool,
}

/// Everything handlers and the loop share.
struct App {
    latest: Reading,
    threshold_c: f64,
    led: bool,
    sockets: Vec<WsId>,
    streams: Vec<SseId>,
}

/// A command from a WebSocket client.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Command {
    led: bool,
}

/// The body of `POST /api/threshold`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Threshold {
    threshold_c: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse()?,
        None => 5001,
    };
    let user = std::env::var("GATEWAY_USER").unwrap_or_else(|_| "gateway".into());
    let password = std::env::var("GATEWAY_PASSWORD").unwrap_or_else(|_| {
        warn!("GATEWAY_PASSWORD is not set: using the default password, change it");
        "change-me".into()
    });

    let mut server = Server::<App>::with_config(config());
    // Every route, the page, the event stream and the WebSocket included.
    server.require_authentication(Authentication::new("field gateway").basic(&user, &password));
    // nginx on this machine: believe its X-Forwarded-For for client_ip()
    // and the access log.
    server.trust_proxies(TrustedProxies::loopback());
    server.default_header("Cache-Control", "no-store");
    server
        .route("/", Method::GET, |_req, _app: &mut App| {
            Ok(Response::html(PAGE))
        })?
        .route("/events", Method::GET, |req, app: &mut App| {
            let (response, id) = req.accept_sse_with(sse_options())?;
            info!("event stream opened by {}", req.client_ip());
            app.streams.push(id);
            Ok(response)
        })?
        .route("/ws", Method::GET, |req, app: &mut App| {
            // Browsers send stored Basic credentials with a WebSocket
            // handshake from any site: accept only pages from this host
            // (clients that are not browsers send no Origin).
            let host = req.header("host").unwrap_or("");
            let (response, id) = req
                .websocket()
                .options(ws_options())
                .check_origin(|origin| origin.is_none_or(|o| same_host(o, host)))
                .accept()?;
            info!("WebSocket opened by {}", req.client_ip());
            app.sockets.push(id);
            Ok(response)
        })?
        .route("/api/reading", Method::GET, |_req, app: &mut App| {
            Response::json(&app.latest)
        })?
        .route("/api/threshold", Method::POST, set_threshold)?;

    let addr = server.start("127.0.0.1", port)?;
    info!("field gateway on http://{addr}/ (user {user:?})");

    // Ctrl-C / SIGTERM set the flag; the loop notices within one sample
    // period. The conditional shutdown is registered first, so a second
    // signal, once the flag is set, exits at once.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }

    let mut app = App {
        latest: Reading::default(),
        threshold_c: 25.0,
        led: false,
        sockets: Vec::new(),
        streams: Vec::new(),
    };
    let mut sensor = Sensor::new();
    let started = Instant::now();
    let mut next_sample = started;
    let stats_every = std::env::var("GATEWAY_STATS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(STATS_EVERY, Duration::from_secs);
    let mut next_stats = started + stats_every;
    let mut since_report = Activity::default();

    while !stop.load(Ordering::SeqCst) {
        let wait = next_sample.saturating_duration_since(Instant::now());
        let activity = server.poll(&mut app, wait)?;
        since_report += activity;

        // Commands from WebSocket clients.
        let ready = server.ws_ready().to_vec();
        for &id in &ready {
            while let Some(message) = server.ws(id).receive() {
                let reply = command(&mut app, &message);
                server.ws(id).send_text_quiet(&reply);
            }
        }
        if !ready.is_empty() {
            forget_closed_sockets(&mut server, &mut app);
        }

        let now = Instant::now();
        if now >= next_sample {
            sample(&mut server, &mut app, &mut sensor, now - started);
            next_sample += SAMPLE_EVERY;
            if next_sample < now {
                next_sample = now + SAMPLE_EVERY; // fell behind: skip, don't burst
            }
        }
        if now >= next_stats {
            let s = server.stats();
            info!(
                "stats: {} connections ({} WebSocket, {} event streams), {} B input buffered, \
                 {} B output queued; since the last report: {} accepted, {} responses, {} closed, {} timed out",
                s.connections,
                app.sockets.len(),
                app.streams.len(),
                s.input_buffered,
                s.output_queued,
                since_report.accepted,
                since_report.responses,
                since_report.closed,
                since_report.timed_out,
            );
            since_report = Activity::default();
            next_stats += stats_every;
        }
    }

    info!(
        "shutting down: {} WebSocket clients, {} event streams",
        app.sockets.len(),
        app.streams.len()
    );
    let dropped = server.shutdown(&mut app, SHUTDOWN_GRACE)?;
    info!("stopped ({dropped} connections dropped after the grace period)");
    Ok(())
}

/// Reads the sensor and pushes the reading to every client.
fn sample(server: &mut Server<App>, app: &mut App, sensor: &mut Sensor, uptime: Duration) {
    let temperature_c = sensor.read(uptime);
    let reading = Reading {
        seq: app.latest.seq + 1,
        uptime_ms: uptime.as_millis() as u64,
        temperature_c,
        threshold_c: app.threshold_c,
        alarm: temperature_c > app.threshold_c,
        led: app.led,
    };
    app.latest = reading;
    let json = serde_json::to_string(&reading).expect("a reading is JSON");
    let seq = reading.seq.to_string();
    server.broadcast_event(
        &app.streams,
        &SseEvent::new(&json).event("reading").id(&seq),
    );
    server.broadcast_text(&app.sockets, &json);
    app.streams.retain(|&id| {
        let closed = server.sse(id).is_closed();
        if closed {
            info!("event stream {id:?} ended");
        }
        !closed
    });
    forget_closed_sockets(server, app);
}

/// Drops the WebSockets that are closing or closed from the list the
/// readings go to, logging how each ended.
fn forget_closed_sockets(server: &mut Server<App>, app: &mut App) {
    app.sockets.retain(|&id| {
        let mut ws = server.ws(id);
        if !ws.is_closed() {
            return true;
        }
        match ws.close_status() {
            Some(CloseStatus::Failed(error)) => warn!(
                "WebSocket {id:?} failed: {error} (sent close {})",
                error.close_code()
            ),
            Some(status) => info!("WebSocket {id:?} ended: {status:?}"),
            None => info!("WebSocket {id:?} closing"),
        }
        false
    });
}

/// Carries out one WebSocket command; returns the reply.
fn command(app: &mut App, message: &Message) -> String {
    let Message::Text(text) = message else {
        return r#"{"error":"commands are JSON text messages"}"#.into();
    };
    match serde_json::from_str::<Command>(text) {
        Ok(Command { led }) => {
            if app.led != led {
                // Only changes: a client repeating a command cannot flood the log.
                info!("LED {}", if led { "on" } else { "off" });
            }
            app.led = led;
            serde_json::json!({ "ack": "led", "led": led }).to_string()
        }
        Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
    }
}

/// `POST /api/threshold` with `{"threshold_c": 24.5}`.
fn set_threshold(req: &Request, app: &mut App) -> Result<Response, HttpError> {
    // Only `application/json`: a cross-site HTML form (which a browser would
    // send with the stored Basic credentials) cannot set that type.
    let media_type = req.header("content-type").unwrap_or("");
    let media_type = media_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send application/json",
        ));
    }
    let Threshold { threshold_c } = req.json()?;
    if !(-40.0..=125.0).contains(&threshold_c) {
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_CONTENT,
            "threshold_c must be between -40 and 125",
        ));
    }
    app.threshold_c = threshold_c;
    app.latest.threshold_c = threshold_c;
    app.latest.alarm = app.latest.temperature_c > threshold_c;
    info!("threshold set to {threshold_c} °C by {}", req.client_ip());
    Response::json(&serde_json::json!({ "threshold_c": threshold_c }))
}

/// Whether an `Origin` (`https://pi.local:8443`) names the same host as a
/// `Host` header (`pi.local` from nginx's `$host`, or `pi.local:8443`);
/// ports are ignored, as nginx's `$host` drops them.
fn same_host(origin: &str, host: &str) -> bool {
    fn hostname(authority: &str) -> &str {
        match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.split(':').next().unwrap_or(""),
        }
    }
    let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or("");
    let origin_host = hostname(authority);
    !origin_host.is_empty() && origin_host.eq_ignore_ascii_case(hostname(host))
}

/// A simulated temperature sensor: a slow wave plus a little noise.
struct Sensor {
    noise: u64,
}

impl Sensor {
    fn new() -> Sensor {
        Sensor {
            noise: 0x2545_f491_4f6c_dd1d,
        }
    }

    fn read(&mut self, uptime: Duration) -> f64 {
        // xorshift64: good enough for noise, no extra crate.
        self.noise ^= self.noise << 13;
        self.noise ^= self.noise >> 7;
        self.noise ^= self.noise << 17;
        let jitter = (self.noise % 1000) as f64 / 1000.0 - 0.5;
        let wave = (uptime.as_secs_f64() / 60.0 * std::f64::consts::TAU).sin();
        ((22.0 + 4.0 * wave + 0.2 * jitter) * 100.0).round() / 100.0
    }
}

/// The log on stderr, each line stamped with the seconds since start, its
/// level and target; the level from `GATEWAY_LOG` (`info` when unset; any
/// `env_logger` filter, e.g. `info,pollserve::access=warn`). `env_logger`
/// ignores write failures, so a closed pipe does not stop the gateway.
fn init_logging() {
    let started = Instant::now();
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("GATEWAY_LOG", "info"))
        .format(move |out, record| {
            writeln!(
                out,
                "{:10.3} {:5} {}: {}",
                started.elapsed().as_secs_f64(),
                record.level(),
                record.target(),
                record.args()
            )
        })
        .init();
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Field gateway</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 36em; margin: 2em auto; }
  .big { font-size: 2.5em; font-variant-numeric: tabular-nums; }
  .alarm { color: #b00; }
  pre { background: #f4f4f4; padding: .5em; min-height: 1.2em; }
</style>
<h1>Field gateway</h1>
<h2>Server-Sent Events</h2>
<p class="big" id="sse">…</p>
<h2>WebSocket</h2>
<p class="big" id="ws">…</p>
<p><button id="led">LED on</button> <span id="state">connecting…</span></p>
<pre id="ack"></pre>
<h2>Alarm threshold</h2>
<p><input id="threshold" type="number" step="0.5" value="25"> °C
   <button id="set">Set</button> <span id="result"></span></p>
<script>
  const show = (el, r) => {
    el.textContent = r.temperature_c.toFixed(2) + ' °C  #' + r.seq;
    el.className = 'big' + (r.alarm ? ' alarm' : '');
  };
  const events = new EventSource('/events');
  events.addEventListener('reading', e => show(document.getElementById('sse'), JSON.parse(e.data)));

  let led = false;
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
  const state = document.getElementById('state');
  ws.onopen = () => state.textContent = 'connected';
  ws.onclose = e => state.textContent = 'closed (' + e.code + ')';
  ws.onmessage = e => {
    const m = JSON.parse(e.data);
    if ('seq' in m) {
      show(document.getElementById('ws'), m);
      led = m.led;
      document.getElementById('led').textContent = led ? 'LED off' : 'LED on';
    } else {
      document.getElementById('ack').textContent = e.data;
    }
  };
  document.getElementById('led').onclick = () => ws.send(JSON.stringify({ led: !led }));

  document.getElementById('set').onclick = async () => {
    const value = parseFloat(document.getElementById('threshold').value);
    const r = await fetch('/api/threshold', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ threshold_c: value }),
    });
    document.getElementById('result').textContent = r.ok ? 'saved' : await r.text();
  };
</script>
</html>
"#;
