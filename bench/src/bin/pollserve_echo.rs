//! pollserve WebSocket echo server for the benchmarks: the seed-style loop
//! (poll, then receive/send), visiting only the sockets that received
//! something (`Server::ws_ready`) instead of every id kept, and receiving
//! into one reused message (`receive_into`) so no message is allocated.
//!
//! `pollserve_echo PORT [--tls CERT KEY] [--deflate MODE]` — serves
//! `ws://127.0.0.1:PORT/ws`, or with `--tls` (PEM certificate chain and key)
//! `wss://127.0.0.1:PORT/ws`. `--deflate` accepts permessage-deflate offers
//! (RFC 7692) with the server's preferences of MODE:
//!
//! * `default`: [`DeflateOptions::default`] (neither side keeps its
//!   compression context between messages);
//! * `server-takeover`: the server keeps its compressor's context, the
//!   client is asked not to keep its own (`client_no_context_takeover`);
//! * `takeover`: both keep their context;
//! * `off`: offers are declined (the same as no `--deflate`).
use pollserve::ws::{DeflateOptions, Message, WsId, WsOptions};
use pollserve::{tls::TlsConfig, Method, Server, ServerConfig};
use std::time::Duration;

const USAGE: &str =
    "pollserve_echo PORT [--tls CERT KEY] [--deflate default|server-takeover|takeover|off]";

/// Takes `--deflate MODE` out of the command line: the endpoint's
/// permessage-deflate preferences (`None`: declined) and the other arguments.
fn deflate_mode(args: Vec<String>) -> (Option<DeflateOptions>, Vec<String>) {
    let Some(at) = args.iter().position(|a| a == "--deflate") else {
        return (None, args);
    };
    let bad = |why: &str| -> ! {
        eprintln!("{why}; usage: {USAGE}");
        std::process::exit(2)
    };
    let mode = args
        .get(at + 1)
        .unwrap_or_else(|| bad("--deflate needs a mode"));
    let options = match mode.as_str() {
        "default" => Some(DeflateOptions::default()),
        "server-takeover" => Some(DeflateOptions {
            server_no_context_takeover: false,
            client_no_context_takeover: true,
            ..DeflateOptions::default()
        }),
        "takeover" => Some(DeflateOptions {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            ..DeflateOptions::default()
        }),
        "off" => None,
        _ => bad(&format!("unknown --deflate mode {mode:?}")),
    };
    let mut rest = args;
    rest.drain(at..at + 2);
    (options, rest)
}

fn main() -> Result<(), pollserve::Error> {
    let (deflate, rest) = deflate_mode(std::env::args().skip(1).collect());
    let args = pollserve_bench::peer_args_from(USAGE, rest.into_iter());
    if args.mt {
        eprintln!("pollserve_echo has one poll loop: no st|mt mode");
        std::process::exit(2);
    }
    let mut server = Server::<()>::with_config(ServerConfig::default().max_connections(30_000));
    let options = WsOptions {
        deflate,
        ..WsOptions::default()
    };
    server.route("/ws", Method::GET, move |req, _| {
        Ok(req.websocket().options(options.clone()).accept()?.0)
    })?;
    match args.tls {
        None => server.start("127.0.0.1", args.port)?,
        Some((cert, key)) => server.start_tls(
            "127.0.0.1",
            args.port,
            TlsConfig::from_pem_files(cert, key)?,
        )?,
    };
    let mut ready: Vec<WsId> = Vec::new();
    let mut slot = Message::Binary(Vec::new());
    loop {
        server.poll(&mut (), Duration::from_millis(100))?;
        ready.clear();
        ready.extend_from_slice(server.ws_ready());
        for &id in &ready {
            while server.ws(id).receive_into(&mut slot) {
                let _ = server.ws(id).send(&slot);
            }
        }
    }
}
