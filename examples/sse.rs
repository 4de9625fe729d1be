//! Server-Sent Events — `adafruit_httpserver`'s `httpserver_sse.py` (`SSEResponse`).
//!
//! `/client` is the page; `/connect-client` accepts an event stream and
//! keeps its `SseId`; the main loop sends the CPU's temperature (°C, two
//! decimals) to every open stream once a second and forgets streams that
//! closed. Unlike `adafruit_httpserver`'s example, which closes the previous
//! stream when a client connects, any number of clients may listen at once.
//!
//! Where a board has `microcontroller.cpu`, a computer has its sensors in
//! `/sys/class/thermal` on Linux; without one (a container, another OS) each
//! event says `no sensor`.
//!
//! `cargo run --example sse [PORT]`, then open <http://127.0.0.1:5000/client>
//! or `curl -N http://127.0.0.1:5000/connect-client`.
use pollserve::sse::{SseEvent, SseId};
use pollserve::{Method, Response, Server};
use std::time::{Duration, Instant};

const PAGE: &str = r#"<!doctype html>
<title>Server-Sent Events client</title>
<p>CPU temperature: <strong>-</strong> &deg;C</p>
<script>
  const events = new EventSource('/connect-client');
  const temp = document.querySelector('strong');
  events.onmessage = event => temp.textContent = event.data;
  events.onerror = () => temp.textContent = '(reconnecting)';
</script>
"#;

/// The first thermal zone's reading, in °C.
fn cpu_temperature() -> Option<f64> {
    let millidegrees = std::fs::read_to_string("/sys/class/thermal/thermal_zone0/temp").ok()?;
    Some(millidegrees.trim().parse::<f64>().ok()? / 1000.0)
}

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<Vec<SseId>>::new();
    server.route("/client", Method::GET, |_req, _| Ok(Response::html(PAGE)))?;
    server.route(
        "/connect-client",
        Method::GET,
        |req, streams: &mut Vec<SseId>| {
            let (response, id) = req.accept_sse()?;
            streams.push(id);
            Ok(response)
        },
    )?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;

    let mut streams = Vec::new();
    let mut next_event = Instant::now();
    loop {
        let timeout = next_event.saturating_duration_since(Instant::now());
        server.poll(&mut streams, timeout)?;
        if Instant::now() >= next_event {
            let data = match cpu_temperature() {
                Some(celsius) => format!("{celsius:.2}"),
                None => "no sensor".to_owned(),
            };
            server.broadcast_event(&streams, &SseEvent::new(&data));
            streams.retain(|&id| !server.sse(id).is_closed());
            next_event += Duration::from_secs(1);
        }
    }
}
