//! Start the server, then poll it from your own loop and do other work in
//! between — `adafruit_httpserver`'s `httpserver_start_and_poll.py`.
//!
//! The loop "reads a sensor" every 100 ms, keeps a running average of the
//! last ten samples, and reacts to [`Activity`](pollserve::Activity), the
//! counterpart of `adafruit_httpserver`'s `REQUEST_HANDLED_RESPONSE_SENT`.
//! The Python example only suggests that work in a comment, and its `/`
//! returns its static folder's `index.html`; here `/` shows the average and
//! the request count, and the static folder (`examples/static`) serves every
//! other path, `index.html` at `/index.html`.
//!
//! `cargo run --example start_and_poll [PORT]`, then open <http://127.0.0.1:5000/>.
use pollserve::{Method, Response, Server};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Sensor {
    samples: VecDeque<f64>,
    requests_handled: u64,
}

impl Sensor {
    fn average(&self) -> f64 {
        self.samples.iter().sum::<f64>() / self.samples.len().max(1) as f64
    }
}

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<Sensor>::new();
    server.route("/", Method::GET, |_req, sensor: &mut Sensor| {
        Ok(Response::text(format!(
            "average of the last {} samples: {:.2}\nrequests handled before this one: {}\n",
            sensor.samples.len(),
            sensor.average(),
            sensor.requests_handled,
        )))
    })?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.serve_files(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/static"))?;
    server.start("127.0.0.1", port)?;

    let mut sensor = Sensor::default();
    let started = Instant::now();
    let mut next_sample = started;
    loop {
        // Your own work between polls: sample a (simulated) sensor every 100 ms.
        if Instant::now() >= next_sample {
            let t = started.elapsed().as_secs_f64();
            sensor.samples.push_back(20.0 + (t / 5.0).sin());
            if sensor.samples.len() > 10 {
                sensor.samples.pop_front();
            }
            next_sample += Duration::from_millis(100);
        }

        // Wait for network activity no longer than the time to the next sample.
        let timeout = next_sample.saturating_duration_since(Instant::now());
        let activity = server.poll(&mut sensor, timeout)?;
        if activity.handled > 0 {
            // Something to do only after a request was answered by a route.
            sensor.requests_handled += activity.handled as u64;
        }
        // `server.stop()` may be called anywhere to stop listening;
        // `server.start(..)` listens again.
    }
}
