//! Shared bits of the pollserve benchmark binaries.

/// The body every hello-world server answers with.
pub const HELLO: &str = "Hello, world!\n";

/// Port from the first argument and whether the second is `mt` (multi-thread runtime).
pub fn port_and_mode(usage: &str) -> (u16, bool) {
    let mut args = std::env::args().skip(1);
    let port = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: {usage}");
        std::process::exit(2)
    });
    let mt = match args.next().as_deref() {
        None | Some("st") => false,
        Some("mt") => true,
        Some(other) => {
            eprintln!("unknown mode {other:?} (st|mt); usage: {usage}");
            std::process::exit(2)
        }
    };
    (port, mt)
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
