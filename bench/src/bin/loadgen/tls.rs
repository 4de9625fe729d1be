//! The load generator's TLS client (`--tls CERT.pem`): rustls' unbuffered
//! client with the `ring` provider (the one pollserve and the tokio peers
//! use), TLS 1.3 only, driven by the same mio loop as the plain sockets.
//!
//! The client shares the machine with the server, so its own cost is kept
//! low:
//!
//! - **Pinned certificate, signature not checked.** The server's certificate
//!   must equal the first certificate of CERT.pem byte for byte; no chain is
//!   built or checked with webpki, and the server's handshake signature
//!   (CertificateVerify) is not verified: the server makes it all the same,
//!   so its work is whole, while the client saves a signature verification
//!   per connection (for ECDSA P-256 about a fifth of its CPU per handshake,
//!   `perf`). A load generator on 127.0.0.1 needs no proof that the server
//!   holds the key; `bench/run.sh` checks every TLS server once with `curl`,
//!   which verifies everything.
//! - **No copy of ciphertext.** A socket read lands in one scratch buffer
//!   shared by every connection (a read takes up to all of it), where rustls
//!   decrypts the records in place; only plaintext is copied (rustls hands
//!   each record over in a buffer of its own, copied into the connection's
//!   buffer). A record cut by the end of a read is kept by the connection
//!   until its rest arrives.
//! - **Session resumption off.** Every new connection makes a full
//!   handshake (what the `Connection: close` rows measure); the session
//!   tickets servers send are read and dropped.
//! - **Cipher suite and group.** TLS13_AES_128_GCM_SHA256 is offered first
//!   (as browsers do), key exchange X25519 first; rustls and OpenSSL servers
//!   follow the client's order by default, so every server negotiates the
//!   same. The result line says what was negotiated (`tls=`).
use std::io;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, UnbufferedClientConnection};
use rustls::crypto::{ring, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::{read_now, write_now};

/// Size of the shared scratch buffer ciphertext is read into: a read of up
/// to this many bytes, its records decrypted there.
pub const SCRATCH: usize = 256 * 1024;

/// What a TLS connection needs: the client configuration and the name the
/// certificate is checked against (the server's IP address: no SNI is sent).
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsClient {
    /// The client for a server at `addr` presenting the first certificate of
    /// the PEM file `cert_path`.
    pub fn new(cert_path: &str, addr: std::net::SocketAddr) -> Result<TlsClient, String> {
        let cert = CertificateDer::pem_file_iter(cert_path)
            .and_then(|mut certs| certs.next().transpose())
            .map_err(|e| format!("read {cert_path}: {e}"))?
            .ok_or_else(|| format!("no certificate in {cert_path}"))?;
        let mut provider = ring::default_provider();
        // AES-128-GCM first, as browsers offer it; the rest as ring lists them.
        provider
            .cipher_suites
            .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        let verifier = PinnedCert {
            cert,
            algorithms: provider.signature_verification_algorithms,
        };
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| format!("TLS client: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        Ok(TlsClient {
            config: Arc::new(config),
            name: ServerName::IpAddress(addr.ip().into()),
        })
    }

    /// A new TLS session for a socket being connected; its ClientHello is
    /// queued, to be written by [`Tls::flush`] once the socket is connected.
    pub fn session(&self) -> Tls {
        let conn = UnbufferedClientConnection::new(self.config.clone(), self.name.clone())
            .unwrap_or_else(|e| super::fail(format!("TLS client: {e}")));
        let mut tls = Tls {
            conn,
            partial: Vec::new(),
            spill: Vec::new(),
            spill_at: 0,
            out: Vec::new(),
            sent: 0,
            drained: false,
            ended: false,
        };
        let mut none = [0u8; 0];
        tls.process(&mut [], &mut none, &mut 0)
            .unwrap_or_else(|e| super::fail(format!("TLS client hello: {e}")));
        tls
    }
}

/// Accepts exactly one certificate, and takes the handshake signatures
/// made with its key on trust (see the module documentation).
#[derive(Debug)]
struct PinnedCert {
    cert: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Never called: only TLS 1.3 is offered.
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// One connection's TLS session and the little it keeps between reads.
pub struct Tls {
    conn: UnbufferedClientConnection,
    /// The start of a record cut by the end of the last read (usually empty).
    partial: Vec<u8>,
    /// Decrypted bytes the caller's buffer had no room for, from `spill_at`.
    spill: Vec<u8>,
    spill_at: usize,
    /// Encrypted records not yet written, from `sent` on.
    out: Vec<u8>,
    sent: usize,
    /// The last socket read was short: the socket is drained until the next
    /// readiness event (edge-triggered), so the next `read` ends at once.
    drained: bool,
    /// The server ended the session (close_notify, or end of stream).
    ended: bool,
}

impl Tls {
    /// Whether the handshake is complete (application data may be sent).
    pub fn ready(&self) -> bool {
        !self.conn.is_handshaking()
    }

    /// Protocol, cipher suite and key exchange group negotiated, e.g.
    /// `TLSv1_3/TLS13_AES_128_GCM_SHA256/X25519`.
    pub fn describe(&self) -> String {
        let version = self
            .conn
            .protocol_version()
            .map_or("?".into(), |v| format!("{v:?}"));
        let suite = self
            .conn
            .negotiated_cipher_suite()
            .map_or("?".into(), |s| format!("{:?}", s.suite()));
        let group = self
            .conn
            .negotiated_key_exchange_group()
            .map_or("?".into(), |g| format!("{:?}", g.name()));
        format!("{version}/{suite}/{group}")
    }

    /// Makes the next [`read`](Self::read) ask the socket even after a short
    /// read: for an end of stream that may have come with the last bytes
    /// (it raises no new event).
    pub fn read_on(&mut self) {
        self.drained = false;
    }

    /// Decrypted bytes into `buf`, reading the socket through `scratch`:
    /// `Ok(None)` when the socket has nothing now, `Ok(Some(0))` once the
    /// server has ended the session (close_notify or end of stream).
    /// Handshake records are processed on the way and their answers queued
    /// for [`flush`](Self::flush). Call it until `Ok(None)` on each readable
    /// event: after a short read it returns `Ok(None)` without a system call.
    pub fn read(
        &mut self,
        sock: &mut TcpStream,
        scratch: &mut [u8],
        buf: &mut [u8],
    ) -> io::Result<Option<usize>> {
        if buf.is_empty() {
            // `Ok(Some(0))` would read as the end of the session.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TLS read into a full buffer",
            ));
        }
        let mut filled = 0;
        if self.spill_at < self.spill.len() {
            filled = (self.spill.len() - self.spill_at).min(buf.len());
            buf[..filled].copy_from_slice(&self.spill[self.spill_at..self.spill_at + filled]);
            self.spill_at += filled;
            if self.spill_at == self.spill.len() {
                self.spill.clear();
                self.spill_at = 0;
            }
            return Ok(Some(filled));
        }
        loop {
            if self.ended {
                return Ok(Some(0));
            }
            if self.drained {
                self.drained = false;
                return Ok(None);
            }
            let kept = self.partial.len();
            scratch[..kept].copy_from_slice(&self.partial);
            let Some(n) = read_now(sock, &mut scratch[kept..])? else {
                return Ok(None);
            };
            if n == 0 {
                if kept > 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "TLS: the stream ended inside a record",
                    ));
                }
                self.ended = true;
                continue;
            }
            self.drained = kept + n < scratch.len();
            let end = kept + n;
            let used = self.process(&mut scratch[..end], buf, &mut filled)?;
            self.partial.clear();
            self.partial.extend_from_slice(&scratch[used..end]);
            if filled > 0 {
                return Ok(Some(filled));
            }
        }
    }

    /// Runs the session over the records in `incoming`: application data to
    /// `buf` from `*filled` on (the rest to `spill`), handshake records to
    /// `out`. Returns how many bytes of `incoming` were used up.
    fn process(
        &mut self,
        incoming: &mut [u8],
        buf: &mut [u8],
        filled: &mut usize,
    ) -> io::Result<usize> {
        let mut at = 0;
        loop {
            let status = self.conn.process_tls_records(&mut incoming[at..]);
            let discard = status.discard;
            let more = match status.state.map_err(tls_error)? {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let data = record.map_err(tls_error)?.payload;
                        let n = data.len().min(buf.len() - *filled);
                        buf[*filled..*filled + n].copy_from_slice(&data[..n]);
                        *filled += n;
                        self.spill.extend_from_slice(&data[n..]);
                    }
                    true
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    encode_into(&mut self.out, |out| encode.encode(out))?;
                    true
                }
                ConnectionState::TransmitTlsData(transmit) => {
                    // Kept in order in `out`, written by `flush`.
                    transmit.done();
                    true
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    self.ended = true;
                    false
                }
                // Waiting for more records (BlockedHandshake), or nothing
                // left to read (WriteTraffic).
                _ => false,
            };
            at += discard;
            if !more {
                return Ok(at);
            }
        }
    }

    /// Encrypts `data` (the handshake must be complete) and queues it for
    /// [`flush`](Self::flush).
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        loop {
            let status = self.conn.process_tls_records(&mut []);
            match status.state.map_err(tls_error)? {
                ConnectionState::WriteTraffic(mut traffic) => {
                    let room = data.len() + (data.len() / 16384 + 1) * 64;
                    return fill(&mut self.out, room, |out| {
                        traffic.encrypt(data, out).map_err(Short::from)
                    });
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    encode_into(&mut self.out, |out| encode.encode(out))?
                }
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                other => {
                    return Err(io::Error::other(format!(
                        "TLS: cannot send in state {other:?}"
                    )))
                }
            }
        }
    }

    /// Writes the queued records; `Ok(true)` when none is left.
    pub fn flush(&mut self, sock: &mut TcpStream) -> io::Result<bool> {
        if self.sent < self.out.len() {
            self.sent += write_now(sock, &self.out[self.sent..])?;
        }
        if self.sent < self.out.len() {
            return Ok(false);
        }
        self.out.clear();
        self.sent = 0;
        Ok(true)
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

/// Why rustls wrote nothing into the room it was given.
enum Short {
    /// It needs this many bytes.
    Need(usize),
    /// Something other than room: rustls' words.
    Failed(String),
}

impl From<EncodeError> for Short {
    fn from(e: EncodeError) -> Short {
        match e {
            EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Short::Need(required_size)
            }
            e => Short::Failed(e.to_string()),
        }
    }
}

impl From<EncryptError> for Short {
    fn from(e: EncryptError) -> Short {
        match e {
            EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Short::Need(required_size)
            }
            e => Short::Failed(e.to_string()),
        }
    }
}

/// Runs `encode` (a handshake record) on free space at the end of `out`.
fn encode_into(
    out: &mut Vec<u8>,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> io::Result<()> {
    fill(out, 1024, |buf| encode(buf).map_err(Short::from))
}

/// Runs `write` on `room` free bytes at the end of `out`, again with the
/// room rustls asks for when that was too little; keeps what it wrote.
fn fill(
    out: &mut Vec<u8>,
    mut room: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Short>,
) -> io::Result<()> {
    let start = out.len();
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Short::Need(required)) if required > room => room = required,
            Err(Short::Need(required)) => {
                out.truncate(start);
                return Err(io::Error::other(format!(
                    "TLS: rustls asked for {required} bytes of {room} given"
                )));
            }
            Err(Short::Failed(why)) => {
                out.truncate(start);
                return Err(io::Error::other(format!("TLS: {why}")));
            }
        }
    }
}
