//! System information as JSON — `adafruit_httpserver`'s `httpserver_cpu_information.py`.
//!
//! The Python example answers with `microcontroller.cpu`'s `temperature` (°C),
//! `frequency` (Hz) and `voltage` (V). A computer has no such object: the
//! same three keys come from Linux's `/sys` and `/proc` (a thermal zone, the
//! first CPU's clock), and a reading the machine does not offer is `null` —
//! `voltage` always, since no standard place reports a CPU's core voltage.
//! Added: CPU count, load average, the server's uptime, OS and architecture.
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

/// The first CPU's current clock in Hz: Linux's `cpufreq` where the kernel
/// drives it, else the first `cpu MHz` line of `/proc/cpuinfo` (x86).
fn frequency() -> Option<u64> {
    let cpufreq = || {
        let path = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq";
        let khz: u64 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
        khz.checked_mul(1000)
    };
    let cpuinfo = || {
        let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
        let line = text.lines().find(|l| l.starts_with("cpu MHz"))?;
        let mhz: f64 = line.split_once(':')?.1.trim().parse().ok()?;
        (mhz > 0.0).then(|| (mhz * 1e6).round() as u64)
    };
    cpufreq().or_else(cpuinfo)
}

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<Instant>::new();
    server.cors(Cors::new().allow_any_origin());
    server.add_route(
        Route::new(
            "/cpu-information",
            Method::GET,
            |_req, started: &mut Instant| {
                Response::json(&json!({
                    "temperature": temperature(),
                    "frequency": frequency(),
                    "voltage": None::<f64>,
                    "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
                    "load_average": load_average(),
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
