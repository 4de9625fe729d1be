//! The `pollserve` command: `serve` a directory, or run the `demo` dashboard.

mod demo;
mod listing;
mod tls;

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "pollserve",
    version,
    about = "HTTP/1.1 + WebSocket server in one poll loop"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a directory over HTTP (like `python -m http.server`, done well).
    Serve(ServeArgs),
    /// Run the demo dashboard: live stats, chat, echo console, colour picker.
    Demo(demo::DemoArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Directory to serve.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 5000)]
    port: u16,
    /// Do not list directories without an index.html.
    #[arg(long)]
    no_listing: bool,
    /// Require HTTP Basic authentication, as `user:password`.
    #[arg(long, value_name = "USER:PASS")]
    auth: Option<String>,
    /// Extra response header, as `'Name: value'` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    #[command(flatten)]
    tls: tls::TlsArgs,
    /// No access log.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => listing::run(args),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_err(format_args!("pollserve: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes one line to stdout and ignores failure. `println!` panics when the
/// write fails, and a reader that went away (`pollserve serve | head -n 1`)
/// makes every write fail with EPIPE: a message must never end the server.
pub(crate) fn print_out(line: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// [`print_out`] for stderr (where `eprintln!` panics the same way).
pub(crate) fn print_err(line: fmt::Arguments<'_>) {
    use std::sync::atomic::AtomicU64;
    /// Lines dropped while stderr had no room, reported with the next one.
    static DROPPED: AtomicU64 = AtomicU64::new(0);
    // One write of at most a page, and only when stderr has room for it:
    // a pipe nobody reads drops lines instead of stopping the server.
    let mut text = line.to_string();
    if text.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text.push('\n');
    if !stderr_has_room() {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let dropped = DROPPED.swap(0, Ordering::Relaxed);
    let mut out = std::io::stderr().lock();
    if dropped > 0 {
        let _ = writeln!(
            out,
            "pollserve: {dropped} log lines dropped: stderr was not being read"
        );
    }
    let _ = out.write_all(text.as_bytes());
}

/// The longest log line written (a page, less the ellipsis and newline).
const MAX_LINE: usize = 4000;

/// Whether stderr can take a line of up to a page now without blocking.
#[cfg(target_os = "linux")]
fn stderr_has_room() -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let stderr = std::io::stderr();
    let mut fds = [PollFd::new(&stderr, PollFlags::OUT)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // An error (a closed pipe) is for the write to report: it cannot block.
    poll(&mut fds, Some(&zero)).map_or(true, |n| n > 0)
}

/// Whether stderr can take a line now (assumed elsewhere than Linux).
#[cfg(not(target_os = "linux"))]
fn stderr_has_room() -> bool {
    true
}

/// How long a shutdown (SIGTERM, or Ctrl-C) waits for requests in flight,
/// WebSocket close replies and the last events to go out.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Set when SIGTERM or SIGINT arrives; the poll loops check it after every
/// poll (the signal also interrupts a waiting poll). A second SIGINT while
/// shutting down exits at once.
pub(crate) fn termination_requested() -> Result<Arc<AtomicBool>, pollserve::Error> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(SIGINT, 130, flag.clone())?;
    signal_hook::flag::register(SIGINT, flag.clone())?;
    signal_hook::flag::register(SIGTERM, flag.clone())?;
    Ok(flag)
}

/// Shuts `server` down gracefully and says how it went.
pub(crate) fn shut_down<S>(
    server: &mut pollserve::Server<S>,
    state: &mut S,
) -> Result<(), pollserve::Error> {
    log::info!("pollserve: shutting down");
    let dropped = server.shutdown(state, SHUTDOWN_GRACE)?;
    if dropped > 0 {
        log::warn!("pollserve: {dropped} connections still open after {SHUTDOWN_GRACE:?}, dropped");
    }
    Ok(())
}

/// A minimal logger for the access log and server messages on stderr.
struct StderrLog {
    level: log::LevelFilter,
}

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= self.level
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            print_err(*r.args());
        }
    }
    fn flush(&self) {}
}

pub(crate) fn init_log(quiet: bool) {
    let level = if quiet {
        log::LevelFilter::Warn
    } else {
        log::LevelFilter::Info
    };
    let logger = Box::leak(Box::new(StderrLog { level }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
