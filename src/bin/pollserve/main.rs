//! The `pollserve` command: `serve` a directory, or run the `demo` dashboard.

mod demo;
mod listing;

use std::path::PathBuf;
use std::process::ExitCode;

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
            eprintln!("pollserve: {e}");
            ExitCode::FAILURE
        }
    }
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
            eprintln!("{}", r.args());
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
