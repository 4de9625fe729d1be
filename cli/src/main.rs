//! The `pollserve` command: `serve` a directory, or run the `demo` dashboard.

mod demo;
mod listing;
mod tls;

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
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
    let _ = writeln!(std::io::stderr().lock(), "{line}");
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
