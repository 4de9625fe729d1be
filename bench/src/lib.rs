//! Shared bits of the pollserve benchmark binaries.

/// The body every hello-world server answers with.
pub const HELLO: &str = "Hello, world!\n";

/// A server binary's command line: `PORT [st|mt] [--tls CERT KEY]`.
pub struct PeerArgs {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// `mt`: the default multi-thread runtime (else current-thread).
    pub mt: bool,
    /// `--tls CERT KEY`: PEM certificate chain and private key (HTTPS, WSS).
    pub tls: Option<(String, String)>,
}

/// Parses `PORT [st|mt] [--tls CERT KEY]`; exits with `usage` when malformed.
pub fn peer_args(usage: &str) -> PeerArgs {
    peer_args_from(usage, std::env::args().skip(1))
}

/// [`peer_args`] over `args` (the command line without the program name),
/// for a server that takes its own flags out first.
pub fn peer_args_from(usage: &str, args: impl Iterator<Item = String>) -> PeerArgs {
    let bad = |why: String| -> ! {
        eprintln!("{why}; usage: {usage}");
        std::process::exit(2)
    };
    let mut args = args.peekable();
    let port = args
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| bad("no port".into()));
    let mt = match args.next_if(|a| a != "--tls").as_deref() {
        None | Some("st") => false,
        Some("mt") => true,
        Some(other) => bad(format!("unknown mode {other:?} (st|mt)")),
    };
    let tls = match args.next().as_deref() {
        None => None,
        Some("--tls") => match (args.next(), args.next()) {
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => bad("--tls needs CERT and KEY".into()),
        },
        Some(other) => bad(format!("unexpected argument {other:?}")),
    };
    if let Some(extra) = args.next() {
        bad(format!("unexpected argument {extra:?}"));
    }
    PeerArgs { port, mt, tls }
}

/// Port from the first argument and whether the second is `mt`
/// (multi-thread runtime), for the servers without TLS.
pub fn port_and_mode(usage: &str) -> (u16, bool) {
    let args = peer_args(usage);
    if args.tls.is_some() {
        eprintln!("this server has no TLS; usage: {usage}");
        std::process::exit(2)
    }
    (args.port, args.mt)
}

/// pollserve's own rustls configuration for a PEM pair (TLS 1.3 and 1.2,
/// the `ring` provider, ALPN `http/1.1`, session tickets), so the tokio
/// peers behind `tokio-rustls` run exactly the TLS pollserve runs; exits
/// on a bad pair.
pub fn rustls_server_config(cert: &str, key: &str) -> std::sync::Arc<rustls::ServerConfig> {
    match pollserve::tls::TlsConfig::from_pem_files(cert, key) {
        Ok(tls) => tls.rustls_config().clone(),
        Err(e) => {
            eprintln!("TLS: {e}");
            std::process::exit(2)
        }
    }
}

/// A tokio runtime: current-thread, or the default multi-thread one.
pub fn runtime(mt: bool) -> tokio::runtime::Runtime {
    if mt {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .expect("tokio runtime")
}

/// Accepts TCP connections on 127.0.0.1:`port` on a tokio runtime (`mt`:
/// multi-thread) and spawns `serve` for each, with `TCP_NODELAY` set — the
/// accept loop every tokio peer server shares.
pub fn serve_tcp<F, Fut>(port: u16, mt: bool, serve: F)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    runtime(mt).block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream));
        }
    });
}

/// [`serve_tcp`] behind `tokio-rustls`: each accepted connection does its
/// TLS handshake (with `config`) in its own task, then `serve` gets the
/// encrypted stream. A failed handshake drops the connection.
pub fn serve_tls<F, Fut>(
    port: u16,
    mt: bool,
    config: std::sync::Arc<rustls::ServerConfig>,
    serve: F,
) where
    F: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let serve = std::sync::Arc::new(serve);
    serve_tcp(port, mt, move |stream| {
        let (acceptor, serve) = (acceptor.clone(), serve.clone());
        async move {
            if let Ok(tls) = acceptor.accept(stream).await {
                serve(tls).await;
            }
        }
    });
}

/// Capacity of the `tokio::sync::broadcast` channel of the fan-out peers
/// (`fws_fanout`, `tungstenite_fanout`, `hyper_sse`): messages a subscriber
/// may fall behind before it is dropped (`RecvError::Lagged` ends its
/// connection, which `loadgen fanout` reports as a failure). `loadgen
/// fanout` keeps at most its window (8) in flight, the memory row at most 3.
pub const FANOUT_CHANNEL: usize = 64;
