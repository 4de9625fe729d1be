//! System information as JSON — `adafruit_httpserver`'s `httpserver_cpu_information.py`.
//!
//! A desktop has no `microcontroller.cpu`; this reports what the standard
//! library and (on Linux) `/proc` and `/sys` tell: CPU count, load average,
//! a thermal zone's temperature if there is one, OS and architecture.
//! Cross-origin requests are allowed, as in `adafruit_httpserver`, with a CORS policy.
//!
//! `cargo run --example cpu_information [PORT]`, then
//! `curl http://127.0.0.1:5000/cpu-information`.
use pollserve::cors::Cors;
use pollserve::{Method, Response, Route, Server};
use serde_json::json;
use std::time::Instant;

/// The 1-minute load average, where `/proc/loadavg` exists.
fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The first thermal zone's temperature in °C, where the kernel reports one.
fn temperature() -> Option<f64> {
    let text = std::fs::read_to_string("/sys/class/thermal/thermal_zone0/temp").ok()?;
    Some(text.trim().parse::<f64>().ok()? / 1000.0)
}

fn main() -> Result<(), pollserve::Error> {
    let mut server = Server::<Instant>::new();
    server.cors(Cors::new().allow_any_origin());
    server.add_route(
        Route::new(
            "/cpu-information",
            Method::GET,
            |_req, started: &mut Instant| {
                Response::json(&json!({
                    "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
                    "load_average": load_average(),
                    "temperature": temperature(),
                    "os": std::env::consts::OS,
                    "arch": std::env::consts::ARCH,
                    "uptime_seconds": started.elapsed().as_secs(),
                }))
            },
        )
        .append_slash(true),
    )?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    server.serve_forever(&mut Instant::now())
}
