//! `--tls-cert FILE --tls-key FILE` on `serve` and `demo`: HTTPS instead of
//! HTTP, and the certificate reloaded without a restart — on `SIGHUP`, and
//! when either file's modification time changes (checked every few seconds
//! from the poll loop; no thread). A reload that fails keeps the old
//! certificate and says why.

pub use imp::TlsArgs;

#[cfg(feature = "tls")]
mod imp {
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    use pollserve::tls::TlsConfig;
    use pollserve::{Error, Server};

    /// How often the certificate files' modification times are looked at.
    const CHECK_EVERY: Duration = Duration::from_secs(2);

    /// The TLS options of a subcommand.
    #[derive(clap::Args, Clone, Default)]
    pub struct TlsArgs {
        /// Serve HTTPS (and wss://) with this PEM certificate chain (the
        /// server's certificate first, as in a fullchain.pem). Reloaded on
        /// SIGHUP and when the file changes.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        pub tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        pub tls_key: Option<PathBuf>,
        /// Also listen for plain HTTP on this port and redirect every
        /// request to the HTTPS address (301 for GET/HEAD, 308 otherwise).
        #[arg(long, value_name = "PORT", requires = "tls_cert")]
        pub redirect_port: Option<u16>,
    }

    impl TlsArgs {
        /// Starts `server` on `host:port`, with TLS when the files are given.
        /// Returns the address, the URL scheme (`http` or `https`) and, for
        /// TLS, the watcher that reloads the certificate.
        pub fn start<S>(
            &self,
            server: &mut Server<S>,
            host: &str,
            port: u16,
        ) -> Result<(SocketAddr, &'static str, Option<CertWatch>), Error> {
            let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
                return Ok((server.start(host, port)?, "http", None));
            };
            let tls = TlsConfig::from_pem_files(cert, key)?;
            let addr = server.start_tls(host, port, tls)?;
            if let Some(redirect) = self.redirect_port {
                server.start_https_redirect(host, redirect, addr.port())?;
            }
            let hangup = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())?;
            let watch = CertWatch {
                cert: cert.clone(),
                key: key.clone(),
                seen: modified(cert, key),
                next_check: Instant::now() + CHECK_EVERY,
                hangup,
            };
            Ok((addr, "https", Some(watch)))
        }
    }

    /// Reloads the certificate when asked (`SIGHUP`) or when its files change.
    pub struct CertWatch {
        cert: PathBuf,
        key: PathBuf,
        /// The files' modification times at the last (re)load.
        seen: [Option<SystemTime>; 2],
        next_check: Instant,
        hangup: Arc<AtomicBool>,
    }

    impl CertWatch {
        /// Call after every poll: cheap unless a check or a reload is due.
        pub fn check<S>(&mut self, server: &mut Server<S>) {
            let signalled = self.hangup.swap(false, Ordering::SeqCst);
            let now = Instant::now();
            if !signalled && now < self.next_check {
                return;
            }
            self.next_check = now + CHECK_EVERY;
            let times = modified(&self.cert, &self.key);
            if !signalled && times == self.seen {
                return;
            }
            // A renewal that writes one file and then the other is retried when
            // the second changes.
            self.seen = times;
            let why = if signalled { "SIGHUP" } else { "files changed" };
            match TlsConfig::from_pem_files(&self.cert, &self.key) {
                Ok(tls) => {
                    server.reload_tls(tls);
                    log::info!(
                        "pollserve: TLS certificate reloaded from {} ({why})",
                        self.cert.display()
                    );
                }
                Err(e) => {
                    log::warn!(
                        "pollserve: TLS reload failed ({why}), keeping the old certificate: {e}"
                    )
                }
            }
        }
    }

    fn modified(cert: &Path, key: &Path) -> [Option<SystemTime>; 2] {
        let time = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        [time(cert), time(key)]
    }
}

/// Without the `tls` feature: no options, plain HTTP.
#[cfg(not(feature = "tls"))]
mod imp {
    use std::net::SocketAddr;

    use pollserve::{Error, Server};

    /// The TLS options of a subcommand (none without the `tls` feature).
    #[derive(clap::Args, Clone, Default)]
    pub struct TlsArgs {}

    impl TlsArgs {
        /// Starts `server` on `host:port` over plain HTTP.
        pub fn start<S>(
            &self,
            server: &mut Server<S>,
            host: &str,
            port: u16,
        ) -> Result<(SocketAddr, &'static str, Option<CertWatch>), Error> {
            Ok((server.start(host, port)?, "http", None))
        }
    }

    /// Never made without the `tls` feature.
    pub enum CertWatch {}

    impl CertWatch {
        /// Nothing to check.
        pub fn check<S>(&mut self, _server: &mut Server<S>) {
            match *self {}
        }
    }
}
