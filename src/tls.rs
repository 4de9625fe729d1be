//! HTTPS and WSS: the TLS configuration of a listener (feature `tls`).
//!
//! A [`TlsConfig`] is made from a PEM certificate chain and private key
//! (files or bytes), or from a [`rustls::ServerConfig`] built by the program
//! for full control. [`Server::start_tls`](crate::Server::start_tls) listens
//! with it; the same server may listen on a plain port too, and
//! [`Server::reload_tls`](crate::Server::reload_tls) swaps the certificate for
//! new connections without a restart (open connections keep theirs).
//!
//! TLS runs inside the same poll loop as everything else: `rustls` is
//! sans-IO, so the handshake never blocks, and a client that opens a
//! connection and stalls mid-handshake is closed by the header timeout
//! ([`ServerConfig::header_timeout`](crate::ServerConfig::header_timeout))
//! like one that stalls mid-request.
//!
//! What pollserve sets up from PEM: TLS 1.3 and 1.2 with `ring`'s cipher
//! suites, ALPN `http/1.1` only, session resumption (TLS 1.3 and 1.2 session
//! tickets, whose keys rotate every 6 hours and survive a
//! [`reload_tls`](crate::Server::reload_tls), plus a server-side cache of
//! 256 sessions), no client certificates.
//!
//! ```no_run
//! use pollserve::{tls::TlsConfig, Method, Response, Server};
//! use std::time::Duration;
//!
//! let mut server = Server::<()>::new();
//! server.route("/", Method::GET, |_, _| Ok(Response::text("Hello over HTTPS")))?;
//! let tls = TlsConfig::from_pem_files("cert.pem", "key.pem")?;
//! server.start_tls("0.0.0.0", 8443, tls)?;
//! server.start_https_redirect("0.0.0.0", 8080, 8443)?; // http:// → https://
//! loop {
//!     server.poll(&mut (), Duration::from_millis(100))?;
//! }
//! # Ok::<(), pollserve::Error>(())
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ServerSessionMemoryCache;

/// The `rustls` this build uses (0.23, `ring` provider), for programs that
/// build their own [`rustls::ServerConfig`] for [`TlsConfig::from_rustls`]
/// without a `rustls` dependency of their own that could differ.
pub use rustls;

/// TLS sessions the server-side cache keeps for resumption (TLS 1.2 clients
/// without tickets): bounded, oldest dropped first.
const SESSION_CACHE: usize = 256;

/// The TLS settings of a listener: certificate chain, private key and
/// protocol options.
///
/// Cloning is cheap (the settings are shared).
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) rustls: Arc<rustls::ServerConfig>,
    /// Built by pollserve from a certificate and key (not the program's own
    /// `ServerConfig`): a reload may carry the ticket keys and session cache
    /// of the configuration it replaces over to it.
    pub(crate) managed: bool,
    /// Where the certificate came from (file names, PEM bytes, or the
    /// program's own `ServerConfig`), for `Debug` and log lines.
    source: Arc<str>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key: only what identifies the settings.
        f.debug_struct("TlsConfig")
            .field("source", &&*self.source)
            .field("alpn_protocols", &self.rustls.alpn_protocols.len())
            .field("managed", &self.managed)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads a PEM certificate chain (the server's certificate first, then
    /// the intermediates, as Let's Encrypt's `fullchain.pem`) and a PEM
    /// private key (PKCS#8, PKCS#1 RSA or SEC1 EC; the first key in the file).
    ///
    /// Errors name the file: unreadable, no certificate or no key in it,
    /// not PEM, or a key that does not belong to the certificate.
    ///
    /// ```no_run
    /// use pollserve::tls::{TlsConfig, TlsError};
    /// match TlsConfig::from_pem_files("/etc/pollserve/fullchain.pem", "/etc/pollserve/privkey.pem") {
    ///     Ok(tls) => { /* server.start_tls("0.0.0.0", 443, tls)? */ }
    ///     Err(TlsError::KeyMismatch { certificate, key }) => {
    ///         eprintln!("{key} is not the key of {certificate}");
    ///     }
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// ```
    pub fn from_pem_files(
        cert_chain_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<TlsConfig, TlsError> {
        let (cert_path, key_path) = (cert_chain_path.as_ref(), key_path.as_ref());
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        build(
            &cert_pem,
            &key_pem,
            &format!("{cert_path:?}"),
            &format!("{key_path:?}"),
        )
    }

    /// Like [`from_pem_files`](Self::from_pem_files), from PEM text already
    /// in memory (errors name "the certificate PEM" and "the private key PEM").
    ///
    /// ```
    /// use pollserve::tls::{TlsConfig, TlsError};
    /// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    /// let tls = TlsConfig::from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes());
    /// assert!(tls.is_ok());
    /// // A key of another certificate is refused, naming both.
    /// let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    /// let err = TlsConfig::from_pem(cert.cert.pem().as_bytes(), other.signing_key.serialize_pem().as_bytes());
    /// assert!(matches!(err, Err(TlsError::KeyMismatch { .. })));
    /// ```
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsConfig, TlsError> {
        build(
            cert_pem,
            key_pem,
            "the certificate PEM",
            "the private key PEM",
        )
    }

    /// Uses a `rustls::ServerConfig` the program built itself: client
    /// certificates, a certificate resolver (several names by SNI), other
    /// protocol versions or cipher suites. pollserve uses it as it is; in
    /// particular it does not set its ALPN protocols (set
    /// `alpn_protocols = vec![b"http/1.1".to_vec()]`, or leave it empty;
    /// pollserve speaks HTTP/1.1 only) or its session resumption.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use pollserve::tls::TlsConfig;
    /// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    /// let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let mut config = rustls::ServerConfig::builder_with_provider(provider)
    ///     .with_protocol_versions(&[&rustls::version::TLS13])?
    ///     .with_no_client_auth()
    ///     .with_single_cert(vec![cert.cert.der().clone()], key)?;
    /// config.alpn_protocols = vec![b"http/1.1".to_vec()];
    /// let tls = TlsConfig::from_rustls(Arc::new(config));
    /// # let _ = tls;
    /// # Ok::<(), rustls::Error>(())
    /// ```
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> TlsConfig {
        TlsConfig {
            rustls: config,
            managed: false,
            source: Arc::from("a rustls ServerConfig"),
        }
    }

    /// The `rustls` configuration in force.
    pub fn rustls_config(&self) -> &Arc<rustls::ServerConfig> {
        &self.rustls
    }

    /// This configuration with the session-ticket keys and session cache of
    /// `old`, when both were built by pollserve: clients keep resuming their
    /// sessions across a certificate reload.
    pub(crate) fn carrying_sessions_of(self, old: &TlsConfig) -> TlsConfig {
        if !(self.managed && old.managed) {
            return self;
        }
        let mut config = (*self.rustls).clone();
        config.ticketer = old.rustls.ticketer.clone();
        config.session_storage = old.rustls.session_storage.clone();
        TlsConfig {
            rustls: Arc::new(config),
            managed: true,
            source: self.source,
        }
    }
}

/// Parses the PEM pair and builds pollserve's rustls configuration;
/// `cert_origin` and `key_origin` name where each came from in errors.
fn build(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_origin: &str,
    key_origin: &str,
) -> Result<TlsConfig, TlsError> {
    let pem_error = |origin: &str| {
        let origin = origin.to_string();
        move |source| TlsError::Pem { origin, source }
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(cert_origin))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            origin: cert_origin.to_string(),
        });
    }
    if is_encrypted_key(key_pem) {
        return Err(TlsError::EncryptedKey {
            origin: key_origin.to_string(),
        });
    }
    let key = match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoPrivateKey {
                origin: key_origin.to_string(),
            })
        }
        Err(e) => return Err(pem_error(key_origin)(e)),
    };
    let rustls_error = |origin: &str| {
        let origin = origin.to_string();
        move |source| TlsError::Rustls { origin, source }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = || {
        rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map(|b| b.with_no_client_auth())
    };
    let mismatch = |e: &rustls::Error| {
        matches!(
            e,
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)
        )
    };
    let mut config = match builder()
        .map_err(rustls_error(cert_origin))?
        .with_single_cert(chain.clone(), key.clone_key())
    {
        Ok(config) => config,
        Err(e) if mismatch(&e) => {
            // The key may belong to a later certificate of the file: the
            // chain is then in the wrong order (the server's own
            // certificate must come first).
            let belongs_later = (1..chain.len()).any(|i| {
                let mut reordered = chain.clone();
                reordered.swap(0, i);
                builder().is_ok_and(|b| b.with_single_cert(reordered, key.clone_key()).is_ok())
            });
            return Err(if belongs_later {
                TlsError::ChainOrder {
                    origin: cert_origin.to_string(),
                }
            } else {
                TlsError::KeyMismatch {
                    certificate: cert_origin.to_string(),
                    key: key_origin.to_string(),
                }
            });
        }
        Err(e) => return Err(rustls_error(key_origin)(e)),
    };
    // pollserve speaks HTTP/1.1 only: a client offering only h2 is refused
    // in the handshake (RFC 7301) instead of speaking the wrong protocol.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(rustls_error(cert_origin))?;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok(TlsConfig {
        rustls: Arc::new(config),
        managed: true,
        source: Arc::from(format!("{cert_origin} with {key_origin}")),
    })
}

/// Whether a PEM private key is encrypted, which rustls cannot read.
fn is_encrypted_key(pem: &[u8]) -> bool {
    let has = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
    has(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || has(b"Proc-Type: 4,ENCRYPTED")
}

/// A PEM error in words (the parser's own messages show markers as bytes).
fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "the file ends without its \"-----END {}-----\" line (cut short?)",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "a malformed \"-----BEGIN\" line: {:?}",
            String::from_utf8_lossy(&line[..line.len().min(80)])
        ),
        pem::Error::Base64Decode(_) => {
            "the text between BEGIN and END is not base64 (an encrypted key, or a damaged file)"
                .to_owned()
        }
        other => other.to_string(),
    }
}

/// Why a [`TlsConfig`] could not be made. Each error names the file (or the
/// PEM text) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("cannot read {path:?}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A file is not valid PEM (a section without its end line, bad base64).
    #[error("{origin} is not valid PEM: {}", pem_reason(source))]
    Pem {
        /// The file (quoted) or the PEM text at fault.
        origin: String,
        /// The parser's error.
        #[source]
        source: pem::Error,
    },
    /// The certificate file holds no `BEGIN CERTIFICATE` section.
    #[error("no certificate (BEGIN CERTIFICATE) in {origin}")]
    NoCertificate {
        /// The file (quoted) or the PEM text at fault.
        origin: String,
    },
    /// The key file holds no private key section.
    #[error("no private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in {origin}")]
    NoPrivateKey {
        /// The file (quoted) or the PEM text at fault.
        origin: String,
    },
    /// The private key is encrypted (`ENCRYPTED PRIVATE KEY`, or a
    /// `Proc-Type: 4,ENCRYPTED` header): pollserve reads unencrypted keys only.
    #[error(
        "the private key in {origin} is encrypted; pollserve needs it unencrypted \
         (openssl pkey -in KEY -out KEY.plain, then keep KEY.plain readable only by the server)"
    )]
    EncryptedKey {
        /// The file (or "the private key PEM").
        origin: String,
    },
    /// The private key matches a certificate of the chain other than the
    /// first: the server's own certificate must come first, then the
    /// intermediates.
    #[error(
        "the certificate chain in {origin} is in the wrong order: the server's own certificate \
         must come first, then the intermediates"
    )]
    ChainOrder {
        /// The file (or "the certificate PEM").
        origin: String,
    },
    /// The private key is not the key of the chain's first certificate.
    #[error("the private key in {key} does not match the certificate in {certificate}")]
    KeyMismatch {
        /// Where the certificate chain came from.
        certificate: String,
        /// Where the key came from.
        key: String,
    },
    /// rustls refused the certificate or key (an unsupported key type, a
    /// certificate it cannot parse).
    #[error("rustls refused {origin}: {source}")]
    Rustls {
        /// The file (quoted) or the PEM text at fault.
        origin: String,
        /// rustls' error.
        #[source]
        source: rustls::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_errors_never_show_key_material() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key_pem = cert.signing_key.serialize_pem();
        // A line from the middle of the key's base64.
        let secret = key_pem.lines().nth(2).unwrap();
        let tls = TlsConfig::from_pem(cert.cert.pem().as_bytes(), key_pem.as_bytes()).unwrap();
        assert!(!format!("{tls:?}").contains(secret));
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let errors = [
            TlsConfig::from_pem(
                cert.cert.pem().as_bytes(),
                other.signing_key.serialize_pem().as_bytes(),
            ),
            TlsConfig::from_pem(key_pem.as_bytes(), key_pem.as_bytes()),
            TlsConfig::from_pem(cert.cert.pem().as_bytes(), cert.cert.pem().as_bytes()),
        ];
        for e in errors {
            let e = e.unwrap_err();
            for text in [format!("{e}"), format!("{e:?}")] {
                assert!(!text.contains(secret), "{text}");
            }
        }
    }

    #[test]
    fn a_reload_keeps_the_ticket_keys_of_managed_configurations_only() {
        let pair = || {
            let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
            TlsConfig::from_pem(
                c.cert.pem().as_bytes(),
                c.signing_key.serialize_pem().as_bytes(),
            )
            .unwrap()
        };
        let (old, new) = (pair(), pair());
        let carried = new.clone().carrying_sessions_of(&old);
        assert!(Arc::ptr_eq(&carried.rustls.ticketer, &old.rustls.ticketer));
        assert!(Arc::ptr_eq(
            &carried.rustls.session_storage,
            &old.rustls.session_storage
        ));
        // The program's own configuration is used as it is.
        let own = TlsConfig::from_rustls(new.rustls.clone());
        let kept = own.carrying_sessions_of(&old);
        assert!(Arc::ptr_eq(&kept.rustls, &new.rustls));
    }
}
