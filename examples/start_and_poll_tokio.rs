//! pollserve inside a tokio program — `adafruit_httpserver`'s
//! `httpserver_start_and_poll_asyncio.py`: the server's `poll()` in one task,
//! the program's own work in another, on one thread.
//!
//! The asyncio example polls in a loop that yields with `sleep(0)`, which
//! keeps the CPU busy. Here the server task sleeps until the server's
//! descriptor is readable ([`tokio::io::unix::AsyncFd`] over the `Server`,
//! which implements `AsRawFd`) or its next deadline comes
//! ([`Server::next_deadline`]), so an idle program uses no CPU and no timeout
//! runs late. The other task "reads a sensor" every 100 ms and keeps a
//! running average of the last ten samples; `/` shows it and how many
//! samples were taken. (The Python example's tasks only suggest that work in
//! a comment, and its `/` returns its static folder's `index.html`; here the
//! static folder, `examples/static`, serves every path but `/`.)
//!
//! `cargo run --example start_and_poll_tokio [PORT]`, then open
//! <http://127.0.0.1:5000/>.
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use pollserve::{Method, Response, Server};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::{sleep, sleep_until, Instant};

/// What both tasks share (one thread: no lock needed).
#[derive(Default)]
struct Sensor {
    samples: VecDeque<f64>,
    taken: u64,
}

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let sensor = Rc::new(RefCell::new(Sensor::default()));
        let port = std::env::args()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(5000);
        let server = tokio::task::spawn_local(handle_http_requests(sensor.clone(), port));
        tokio::task::spawn_local(do_something_useful(sensor));
        server.await.expect("server task")
    })
}

/// The server's task: waits for the descriptor or the next deadline, then
/// lets `poll` do what is ready without blocking.
async fn handle_http_requests(
    sensor: Rc<RefCell<Sensor>>,
    port: u16,
) -> Result<(), pollserve::Error> {
    let mut server = Server::<Rc<RefCell<Sensor>>>::new();
    server.route("/", Method::GET, |_req, sensor| {
        let s = sensor.borrow();
        let average = s.samples.iter().sum::<f64>() / s.samples.len().max(1) as f64;
        Ok(Response::text(format!(
            "average of the last {} samples: {average:.2}\nsamples taken: {}\n",
            s.samples.len(),
            s.taken
        )))
    })?;
    server.serve_files(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/static"))?;
    server.start("127.0.0.1", port)?;
    // SAFETY: tokio needs the descriptor to stay open and the same while
    // the `AsyncFd` owns the server; a `Server`'s descriptor is its own poll
    // instance's, opened in `Server::new` and closed only when it is dropped.
    #[allow(unsafe_code)]
    let mut server = unsafe { AsyncFd::register_with_interest(server, Interest::READABLE) }
        .map_err(|e| pollserve::Error::Io(e.into()))?;
    let mut state = sensor;
    loop {
        let deadline = server.get_ref().next_deadline().map(Instant::from_std);
        tokio::select! {
            ready = server.readable_mut() => {
                let mut guard = ready?;
                let activity = guard.get_inner_mut().poll(&mut state, Duration::ZERO)?;
                if activity.handled > 0 {
                    // Something to do only after a route answered a request.
                }
                // Wait for the next readiness edge; anything `poll` left
                // behind shows up in `next_deadline` as "now".
                guard.clear_ready();
            }
            _ = sleep_until(deadline.unwrap_or_else(far_future)) => {
                server.get_mut().poll(&mut state, Duration::ZERO)?;
            }
        }
    }
}

/// The program's own work, in a task of its own.
async fn do_something_useful(sensor: Rc<RefCell<Sensor>>) {
    let started = Instant::now();
    loop {
        sleep(Duration::from_millis(100)).await;
        let mut s = sensor.borrow_mut();
        let t = started.elapsed().as_secs_f64();
        s.samples.push_back(20.0 + (t / 5.0).sin());
        if s.samples.len() > 10 {
            s.samples.pop_front();
        }
        s.taken += 1;
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(24 * 3600)
}
