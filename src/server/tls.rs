//! TLS under a connection: a [`Transport`] over a TCP stream and a
//! `rustls::ServerConnection`, for HTTPS and WSS in the same poll loop.
//!
//! rustls is sans-IO: this file moves TLS records between the socket and
//! rustls, and plaintext between rustls and the connection. Three points
//! matter with edge-triggered readiness:
//!
//! - **Input inside rustls.** `read` decrypts until the caller's buffer is
//!   full or the socket says `WouldBlock`; a short read therefore means the
//!   socket is drained, as with plain TCP. What rustls still holds is
//!   reported by [`has_buffered_input`](Transport::has_buffered_input), so
//!   the connection reads on without waiting for an event that will not come.
//! - **Output inside rustls.** Plaintext taken by `write_vectored` is
//!   encrypted at once; records the socket did not take stay in rustls and
//!   are reported by [`has_pending_output`](Transport::has_pending_output),
//!   so the connection keeps waiting for writability and its send timeout
//!   runs. No new plaintext is taken while old records wait, and rustls
//!   holds at most [`TLS_BUFFER_LIMIT`] bytes of them.
//! - **The handshake** runs inside `read` (and its answers are written
//!   there, or later by [`flush_pending`](Transport::flush_pending)), while
//!   the connection is in its head phase: the header timeout covers it.
//!
//! A peer that breaks the protocol (plain HTTP on the TLS port, a bad
//! ClientHello, a fatal alert, a corrupt record) makes `read` fail with
//! [`io::ErrorKind::InvalidData`] after queueing the last word (a `400`
//! saying that the port speaks HTTPS, or the TLS alert): the connection
//! then writes it and closes with a lingering close, reading and
//! discarding whatever else arrives.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;
use rustls::ServerConnection;

use super::transport::Transport;

/// Most encrypted bytes rustls may hold for one connection before it takes
/// no more plaintext (a few records; the connection's own write buffer
/// holds the rest, under its own bounds).
pub(crate) const TLS_BUFFER_LIMIT: usize = 64 * 1024;

/// Every TLS connection starts with a handshake record (content type 22).
const HANDSHAKE_RECORD: u8 = 0x16;

/// The answer to a plain-HTTP request on the TLS port (as nginx does).
const PLAIN_HTTP_ON_TLS_PORT: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 49\r\n\
Connection: close\r\n\
\r\n\
This port speaks HTTPS: use an https:// address.\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No byte received yet: the first one tells TLS from plain HTTP.
    Fresh,
    /// Speaking TLS.
    Tls,
    /// Plain HTTP arrived: the `400` is being written (from this offset),
    /// then input is only discarded.
    PlainHttp(usize),
    /// The TLS session failed: its alert (if any) is written, then input is
    /// only discarded.
    Failed,
}

pub(crate) struct TlsTransport {
    sock: TcpStream,
    tls: Box<ServerConnection>,
    state: State,
    /// The socket reached end of stream.
    eof: bool,
    /// The peer's end of input (close_notify or EOF) is known but not yet
    /// returned by `read`, which returned the plaintext before it first.
    end_pending: bool,
}

impl TlsTransport {
    pub fn new(sock: TcpStream, mut tls: ServerConnection) -> TlsTransport {
        tls.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        TlsTransport {
            sock,
            tls: Box::new(tls),
            state: State::Fresh,
            eof: false,
            end_pending: false,
        }
    }

    /// Writes the TLS records rustls holds until none is left or the socket
    /// is full (`WouldBlock`); returns the bytes written.
    fn write_records(&mut self) -> io::Result<usize> {
        let mut written = 0;
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && written > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// Like [`write_records`](Self::write_records), where a full socket is
    /// not an error (the records wait in rustls for writability).
    fn write_records_now(&mut self) -> io::Result<()> {
        match self.write_records() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }

    /// Reads and discards (after the session failed): what the peer still
    /// sends is not answered, only drained until it closes.
    fn discard(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        let n = Read::read(&mut self.sock, buf)?;
        self.eof = n == 0;
        Ok(n)
    }

    /// Reads TLS records from the socket into rustls once and processes
    /// them. `Ok(false)`: the socket had nothing (`WouldBlock`).
    fn receive(&mut self) -> io::Result<bool> {
        let mut sniff = Sniff {
            sock: &mut self.sock,
            state: &mut self.state,
        };
        match self.tls.read_tls(&mut sniff) {
            Ok(0) => {
                self.eof = true;
                return Ok(true);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => {
                if self.state == State::PlainHttp(0) {
                    // The first byte was not a TLS record: plain HTTP (or
                    // junk) on the TLS port gets a short 400 naming HTTPS.
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "plain HTTP on the HTTPS port: answered 400",
                    ));
                }
                self.state = State::Failed;
                return Err(e);
            }
        }
        if let Err(e) = self.tls.process_new_packets() {
            // rustls queued the alert to send, if the error calls for one.
            self.state = State::Failed;
            let _ = self.write_records();
            let when = if self.tls.is_handshaking() {
                "TLS handshake failed"
            } else {
                "TLS session failed"
            };
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{when}: {e}"),
            ));
        }
        // Handshake answers, session tickets, a key update's reply.
        self.write_records_now()?;
        Ok(true)
    }
}

/// The socket as rustls reads it, checking the connection's first byte.
struct Sniff<'a> {
    sock: &'a mut TcpStream,
    state: &'a mut State,
}

impl Read for Sniff<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = Read::read(self.sock, buf)?;
        if *self.state == State::Fresh && n > 0 {
            if buf[0] != HANDSHAKE_RECORD {
                *self.state = State::PlainHttp(0);
                return Err(io::Error::new(io::ErrorKind::InvalidData, "not TLS"));
            }
            *self.state = State::Tls;
        }
        Ok(n)
    }
}

impl mio::event::Source for TlsTransport {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.sock.register(registry, token, interests)
    }
    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.sock.reregister(registry, token, interests)
    }
    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        self.sock.deregister(registry)
    }
}

impl Transport for TlsTransport {
    /// Decrypted bytes, until `buf` is full or the socket has nothing more;
    /// `Ok(0)` after the peer's close_notify or at a bare end of stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if matches!(self.state, State::PlainHttp(_) | State::Failed) {
            return self.discard(buf);
        }
        if self.end_pending {
            return Ok(0);
        }
        let mut filled = 0;
        let mut drained = false;
        loop {
            match self.tls.reader().read(&mut buf[filled..]) {
                Ok(0) => {
                    // close_notify: the end of input.
                    self.end_pending = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // End of stream without close_notify: for HTTP the framing
                // says whether a message was cut short, so it is an end.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.end_pending = true;
                    break;
                }
                Err(e) => return Err(e),
            }
            if filled == buf.len() || drained || self.eof {
                break;
            }
            drained = !self.receive()?;
        }
        if filled > 0 {
            Ok(filled)
        } else if self.end_pending {
            Ok(0)
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.state != State::Tls {
            return Err(io::ErrorKind::NotConnected.into());
        }
        // Old records first: no new plaintext while they wait.
        self.write_records()?;
        if self.tls.wants_write() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let taken = self.tls.writer().write_vectored(bufs)?;
        if taken == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Taken means encrypted: what the socket refuses now stays in
        // rustls, reported by `has_pending_output`.
        self.write_records_now()?;
        Ok(taken)
    }

    fn has_pending_output(&self) -> bool {
        match self.state {
            State::PlainHttp(at) => at < PLAIN_HTTP_ON_TLS_PORT.len(),
            _ => self.tls.wants_write(),
        }
    }

    fn flush_pending(&mut self) -> io::Result<usize> {
        match self.state {
            State::PlainHttp(at) => {
                let n = Write::write(&mut self.sock, &PLAIN_HTTP_ON_TLS_PORT[at..])?;
                self.state = State::PlainHttp(at + n);
                Ok(n)
            }
            _ => self.write_records(),
        }
    }

    fn has_buffered_input(&self) -> bool {
        // Decrypted bytes beyond a full read are found by the caller reading
        // on (its buffer was filled); an end already seen must be returned.
        self.end_pending || self.eof
    }

    fn refused(&self, error: &io::Error) -> bool {
        error.kind() == io::ErrorKind::InvalidData
            && matches!(self.state, State::PlainHttp(_) | State::Failed)
    }

    fn is_handshaking(&self) -> bool {
        matches!(self.state, State::Fresh | State::Tls) && self.tls.is_handshaking()
    }

    /// `Write`: close_notify (when the session is sound and the socket
    /// takes it now), then the TCP write side.
    fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if how != Shutdown::Read && self.state == State::Tls {
            self.tls.send_close_notify();
            let _ = self.write_records();
        }
        self.sock.shutdown(how)
    }
}
