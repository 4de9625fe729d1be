//! TLS pieces for tests: a test CA and server certificates made at test
//! time with `rcgen` (no key is committed), and a rustls client trusting it.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use pollserve::tls::TlsConfig;
use rustls::pki_types::{CertificateDer, ServerName};

use super::connect;

/// A certificate and its key, as PEM.
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Pair {
    pub fn tls(&self) -> TlsConfig {
        TlsConfig::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes()).unwrap()
    }
}

/// A test CA and the files the external clients read.
pub struct Pki {
    pub ca_der: CertificateDer<'static>,
    pub ca_pem: String,
    pub issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate, for `curl --cacert` and Python's `ssl`.
    pub ca_file: PathBuf,
    /// The first server certificate (chain) and key, for file tests.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub server: Pair,
    _dir: tempfile::TempDir,
}

impl Pki {
    /// A new server certificate for `localhost` and `127.0.0.1`, signed by the CA.
    pub fn issue(&self) -> Pair {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            // The chain: the server's certificate, then the CA's (as a
            // `fullchain.pem` holds its intermediates).
            cert_pem: format!("{}{}", cert.pem(), self.ca_pem),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pollserve test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = params.self_signed(&ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut pki = Pki {
            ca_der: ca.der().clone(),
            ca_pem: ca.pem(),
            issuer: rcgen::Issuer::new(params, ca_key),
            ca_file: dir.path().join("ca.pem"),
            cert_file: dir.path().join("cert.pem"),
            key_file: dir.path().join("key.pem"),
            server: Pair {
                cert_pem: String::new(),
                key_pem: String::new(),
                der: CertificateDer::from(Vec::new()),
            },
            _dir: dir,
        };
        pki.server = pki.issue();
        std::fs::write(&pki.ca_file, ca.pem()).unwrap();
        std::fs::write(&pki.cert_file, &pki.server.cert_pem).unwrap();
        std::fs::write(&pki.key_file, &pki.server.key_pem).unwrap();
        pki
    })
}

/// A rustls client configuration trusting the test CA, offering `http/1.1`.
pub fn client_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki().ca_der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects and completes the handshake.
pub fn tls_connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> TlsStream {
    let conn =
        rustls::ClientConnection::new(config.clone(), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut stream = rustls::StreamOwned::new(conn, connect(addr));
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .expect("handshake");
    }
    stream
}

pub fn tls13() -> Arc<rustls::ClientConfig> {
    client_config(&[&rustls::version::TLS13])
}

pub fn tls12() -> Arc<rustls::ClientConfig> {
    client_config(&[&rustls::version::TLS12])
}
