//! One poll loop per core on the same port (`SO_REUSEPORT`): the kernel spreads
//! new connections across the loops, each on its own thread with its own state.
//!
//! `cargo run --release --example multicore [PORT]`
use pollserve::{Method, Response, Server, ServerConfig};
use std::time::Duration;

fn main() {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    let loops = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads: Vec<_> = (0..loops)
        .map(|i| {
            std::thread::spawn(move || -> Result<(), pollserve::Error> {
                let mut server =
                    Server::<u64>::with_config(ServerConfig::default().reuse_port(true));
                server.route("/", Method::GET, move |_, served: &mut u64| {
                    *served += 1;
                    Ok(Response::text(format!(
                        "loop {i} has served {served} requests\n"
                    )))
                })?;
                server.start("127.0.0.1", port)?;
                let mut served = 0;
                loop {
                    server.poll(&mut served, Duration::from_secs(1))?;
                }
            })
        })
        .collect();
    println!("{loops} poll loops on http://127.0.0.1:{port}/");
    for t in threads {
        if let Ok(Err(e)) = t.join() {
            eprintln!("loop failed: {e}");
        }
    }
}
