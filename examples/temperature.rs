//! `/temperature` answers with the CPU's temperature in degrees Celsius, as
//! plain text.
//!
//! This is `httpserver_temperature.py`, an example `adafruit_httpserver`
//! shipped from 0.1.1 to 1.1.0 and dropped in 2.0.0; the current release
//! has no such file. Its examples now read the same sensor,
//! `microcontroller.cpu.temperature`, in `httpserver_cpu_information.py`
//! (JSON, here `cpu_information`) and push it in `httpserver_sse.py` and
//! `httpserver_websocket.py` (here `sse` and `websocket`); this one is the
//! plain-text route on its own.
//!
//! Where a board has `microcontroller.cpu`, a computer has its sensors in
//! `/sys/class/thermal` on Linux, read here on every request.
//! Where there is none (a container, another OS) the answer is
//! `503 Service Unavailable`, saying so.
//!
//! `cargo run --example temperature [PORT]`, then
//! `curl http://127.0.0.1:5000/temperature`.
use pollserve::{HttpError, Method, Response, Server, StatusCode};

/// The first thermal zone's reading, in °C.
fn cpu_temperature() -> Option<f64> {
    let millidegrees = std::fs::read_to_string("/sys/class/thermal/thermal_zone0/temp").ok()?;
    Some(millidegrees.trim().parse::<f64>().ok()? / 1000.0)
}

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<()>::new();
    server.route(
        "/temperature",
        Method::GET,
        |_req, _| match cpu_temperature() {
            Some(celsius) => Ok(Response::text(format!("{celsius:.1}"))),
            None => Err(HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this machine has no temperature sensor to read",
            )),
        },
    )?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    server.serve_forever(&mut ())
}
