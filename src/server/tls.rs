//! TLS under a connection: a [`Transport`] over a TCP stream and rustls'
//! unbuffered `UnbufferedServerConnection`, for HTTPS and WSS in the same
//! poll loop.
//!
//! rustls is sans-IO, and its unbuffered API leaves every buffer to the
//! caller: this transport keeps received records it could not use yet and
//! encrypted records the socket has not taken, each in a buffer that exists
//! only while it holds something. An idle TLS connection therefore holds no
//! buffer at all, only rustls' session state and keys (the buffered API
//! keeps a 4 KiB receive buffer per connection for ever).
//!
//! Three points matter with edge-triggered readiness:
//!
//! - **Input.** `read` decrypts until the caller's buffer is full or the
//!   socket says `WouldBlock`; a short read therefore means the socket is
//!   drained, as with plain TCP. What is known but not yet returned (the
//!   end of the stream, decrypted bytes beyond a full buffer) is reported
//!   by [`has_buffered_input`](Transport::has_buffered_input), so the
//!   connection reads on without waiting for an event that will not come.
//! - **Output.** Plaintext taken by `write_vectored` is encrypted at once
//!   (at most [`TLS_WRITE_CHUNK`] bytes a call); records the socket does not
//!   take are kept and reported by
//!   [`has_pending_output`](Transport::has_pending_output), so the
//!   connection keeps waiting for writability and its send timeout runs.
//!   No new plaintext is taken while old records wait.
//! - **The handshake** runs inside `read` (its answers are written there,
//!   or later by [`flush_pending`](Transport::flush_pending)), while the
//!   connection is in its head phase: the header timeout covers it.
//!
//! A peer that breaks the protocol (plain HTTP on the TLS port, a bad
//! ClientHello, a fatal alert, a corrupt record) makes `read` fail with
//! [`io::ErrorKind::InvalidData`] after queueing the last word (a `400`
//! saying that the port speaks HTTPS, or the TLS alert): the connection
//! then writes it and closes with a lingering close, reading and
//! discarding whatever else arrives.

use std::cell::Cell;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};

use super::transport::Transport;

/// Most plaintext bytes encrypted by one `write_vectored` (four full
/// records): the encrypted records kept for a slow peer stay this small,
/// and the connection's own write buffer holds the rest under its bounds.
pub(crate) const TLS_WRITE_CHUNK: usize = 64 * 1024;

/// Bytes asked of the socket per read: a full TLS record with room to spare.
const RECORD_READ: usize = 18 * 1024;

/// Socket reads one `read` call may do: a peer that keeps the socket full
/// of records carrying little or no data cannot hold the loop, and the
/// connection's per-round read share applies to TLS as to plain TCP.
const RECEIVES_PER_READ: usize = 4;

/// Unprocessed TLS bytes a session may hold once its handshake is done: one
/// record of the largest size (TLS 1.2 allows 2^14 + 2048 bytes of
/// ciphertext, plus the 5-byte header). More means a handshake message
/// reassembled across records (a 64 KiB `KeyUpdate`), which a server never
/// needs.
const HOLD_AFTER_HANDSHAKE: usize = 16 * 1024 + 2048 + 5;

/// Unprocessed TLS bytes a handshake may hold: a ClientHello (with its
/// records) larger than this is refused.
const HOLD_IN_HANDSHAKE: usize = 36 * 1024;

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

/// What one step of the session asks for next.
enum Step {
    /// Go on processing.
    More,
    /// Nothing more can be done with the records at hand.
    Idle,
}

pub(crate) struct TlsTransport {
    sock: TcpStream,
    tls: Box<UnbufferedServerConnection>,
    state: State,
    /// Received TLS bytes not yet processed (a partial record); empty, with
    /// no allocation, between reads.
    incoming: Vec<u8>,
    /// The processed front of `incoming` (dropped at the next receive).
    used: usize,
    /// A read stopped at [`RECEIVES_PER_READ`]: the socket may hold more.
    more_input: bool,
    /// Decrypted bytes that did not fit the caller's buffer.
    plaintext: Vec<u8>,
    /// Encrypted records not yet written, from `sent` on; no allocation
    /// once all is written.
    outgoing: Vec<u8>,
    sent: usize,
    /// The socket reached end of stream.
    eof: bool,
    /// The peer's end of input (close_notify or EOF) is known; `read`
    /// returns it once the plaintext before it is taken.
    end_pending: bool,
}

impl TlsTransport {
    pub fn new(sock: TcpStream, tls: UnbufferedServerConnection) -> TlsTransport {
        TlsTransport {
            sock,
            tls: Box::new(tls),
            state: State::Fresh,
            incoming: Vec::new(),
            used: 0,
            more_input: false,
            plaintext: Vec::new(),
            outgoing: Vec::new(),
            sent: 0,
            eof: false,
            end_pending: false,
        }
    }

    /// Writes the kept records until none is left or the socket is full;
    /// returns the bytes written (`WouldBlock` when none could be).
    fn write_records(&mut self) -> io::Result<usize> {
        let mut written = 0;
        while self.sent < self.outgoing.len() {
            match Write::write(&mut self.sock, &self.outgoing[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.sent += n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && written > 0 => break,
                Err(e) => return Err(e),
            }
        }
        if self.sent == self.outgoing.len() {
            // Nothing kept between writes.
            self.outgoing = Vec::new();
            self.sent = 0;
        }
        Ok(written)
    }

    /// Like [`write_records`](Self::write_records), where a full socket is
    /// not an error (the records wait for writability).
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

    /// Reads once from the socket into `incoming`. `Ok(false)`: nothing
    /// there (`WouldBlock`).
    fn receive(&mut self) -> io::Result<bool> {
        if self.used > 0 {
            // The processed front goes once per read, not once per record.
            self.incoming.drain(..self.used);
            self.used = 0;
        }
        let start = self.incoming.len();
        self.incoming.resize(start + RECORD_READ, 0);
        let result = Read::read(&mut self.sock, &mut self.incoming[start..]);
        let n = *result.as_ref().unwrap_or(&0);
        self.incoming.truncate(start + n);
        match result {
            Ok(0) => self.eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if self.state == State::Fresh && n > 0 {
            if self.incoming[0] != HANDSHAKE_RECORD {
                // Plain HTTP (or junk) on the TLS port gets a short 400
                // naming HTTPS.
                self.state = State::PlainHttp(0);
                self.incoming = Vec::new();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "plain HTTP on the HTTPS port: answered 400",
                ));
            }
            self.state = State::Tls;
        }
        Ok(true)
    }

    /// Runs the session over the records at hand: decrypted bytes go to
    /// `buf` from `*filled` on (what does not fit, to `plaintext`),
    /// handshake answers to `outgoing`. Stops when `buf` is full or the
    /// records at hand are used up.
    fn process(&mut self, buf: &mut [u8], filled: &mut usize) -> io::Result<()> {
        while *filled < buf.len() {
            let used = self.used;
            let status = self.tls.process_tls_records(&mut self.incoming[used..]);
            let discard = status.discard;
            let step = match status.state {
                Ok(ConnectionState::ReadTraffic(mut records)) => {
                    while let Some(record) = records.next_record() {
                        let data = record.map_err(|e| fatal(&e))?.payload;
                        let n = data.len().min(buf.len() - *filled);
                        buf[*filled..*filled + n].copy_from_slice(&data[..n]);
                        *filled += n;
                        self.plaintext.extend_from_slice(&data[n..]);
                    }
                    Ok(Step::More)
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    encode_into(&mut self.outgoing, |out| encode.encode(out)).map(|_| Step::More)
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    // Kept in order in `outgoing`, written below.
                    transmit.done();
                    Ok(Step::More)
                }
                Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => {
                    self.end_pending = true;
                    Ok(Step::Idle)
                }
                Ok(_) => Ok(Step::Idle),
                Err(e) => Err(e),
            };
            self.used = (self.used + discard).min(self.incoming.len());
            match step {
                Ok(Step::More) => {}
                Ok(Step::Idle) => break,
                Err(e) => return Err(self.fail(&e)),
            }
        }
        self.write_records_now()
    }

    /// The session failed: the alert rustls has for the peer is queued and
    /// written (best effort); the error to return.
    fn fail(&mut self, error: &rustls::Error) -> io::Error {
        let handshaking = self.tls.is_handshaking();
        self.state = State::Failed;
        // The alert waits in rustls' queue, which `process_tls_records`
        // empties before it looks at the input again; it must not look
        // again (the bad record would fail, and alert, a second time).
        while self.tls.wants_write() {
            let used = self.used;
            match self
                .tls
                .process_tls_records(&mut self.incoming[used..])
                .state
            {
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    if encode_into(&mut self.outgoing, |out| encode.encode(out)).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
        self.incoming = Vec::new();
        self.used = 0;
        let _ = self.write_records();
        let when = if handshaking {
            "TLS handshake failed"
        } else {
            "TLS session failed"
        };
        io::Error::new(io::ErrorKind::InvalidData, format!("{when}: {error}"))
    }

    /// Encrypts up to [`TLS_WRITE_CHUNK`] bytes of `bufs` into `outgoing`;
    /// returns how many were taken (`WouldBlock` while the handshake runs).
    fn encrypt(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        loop {
            let used = self.used;
            let status = self.tls.process_tls_records(&mut self.incoming[used..]);
            let discard = status.discard;
            let result = match status.state {
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let outgoing = &mut self.outgoing;
                    let taken = seal_gathered(bufs, &mut |data: &[u8]| {
                        encrypt_into(outgoing, data.len(), |out| traffic.encrypt(data, out))
                    })?;
                    Ok(Some(taken))
                }
                // Records received before this write (the connection was
                // not reading): kept for the next read, in order.
                Ok(ConnectionState::ReadTraffic(mut records)) => {
                    while let Some(record) = records.next_record() {
                        let data = record.map_err(|e| fatal(&e))?.payload;
                        self.plaintext.extend_from_slice(data);
                    }
                    Ok(None)
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    encode_into(&mut self.outgoing, |out| encode.encode(out)).map(|_| None)
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    Ok(None)
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.end_pending = true;
                    Ok(None)
                }
                Ok(ConnectionState::Closed) => {
                    self.end_pending = true;
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                Ok(_) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(e) => Err(e),
            };
            self.used = (self.used + discard).min(self.incoming.len());
            match result {
                Ok(Some(taken)) => return Ok(taken),
                Ok(None) => {}
                Err(e) => return Err(self.fail(&e)),
            }
        }
    }
}

/// Plaintext bytes of a full TLS record.
const RECORD_PLAINTEXT: usize = 16 * 1024;

thread_local! {
    /// Where the small slices of one vectored write are gathered into a
    /// record: one buffer per thread, not per connection (an idle TLS
    /// connection holds no buffer).
    static GATHER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Hands up to [`TLS_WRITE_CHUNK`] bytes of `bufs`, in order, to `seal`
/// (which encrypts them into records); returns the bytes taken. Small
/// slices are gathered until they fill a record: a vectored write of 64
/// queued broadcast frames becomes a few full records, not 64 small ones
/// (each record costs 22 to 29 bytes on the wire and a call of the
/// cipher). Copying into the gather buffer costs far less than the
/// encryption it saves setting up. A slice of a full record or more, and a
/// slice that comes alone, are sealed from where they are.
fn seal_gathered(
    bufs: &[IoSlice<'_>],
    seal: &mut impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<usize> {
    let mut gather = GATHER.take();
    gather.clear();
    let last = bufs.iter().rposition(|b| !b.is_empty());
    let mut run = || -> io::Result<usize> {
        let mut taken = 0;
        for (i, buf) in bufs.iter().enumerate() {
            let room = TLS_WRITE_CHUNK - taken;
            if room == 0 {
                break;
            }
            let mut data = &buf[..buf.len().min(room)];
            taken += data.len();
            let alone = Some(i) == last || taken == TLS_WRITE_CHUNK;
            if !gather.is_empty() {
                let fill = data.len().min(RECORD_PLAINTEXT - gather.len());
                gather.extend_from_slice(&data[..fill]);
                data = &data[fill..];
                if gather.len() == RECORD_PLAINTEXT {
                    seal(&gather)?;
                    gather.clear();
                }
            }
            if data.is_empty() {
                continue;
            }
            if data.len() >= RECORD_PLAINTEXT || (alone && gather.is_empty()) {
                seal(data)?;
            } else {
                if gather.capacity() < RECORD_PLAINTEXT {
                    gather.reserve_exact(RECORD_PLAINTEXT);
                }
                gather.extend_from_slice(data);
            }
        }
        if !gather.is_empty() {
            seal(&gather)?;
        }
        Ok(taken)
    };
    let result = run();
    GATHER.set(gather);
    result
}

/// An error of a record rustls handed over (not expected: decryption
/// errors surface from `process_tls_records`).
fn fatal(e: &rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

/// Runs `encode` on free space at the end of `out`, growing it to the size
/// rustls asks for.
fn encode_into(
    out: &mut Vec<u8>,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), rustls::Error> {
    let start = out.len();
    let mut room = 512;
    loop {
        out.resize(start + room, 0);
        match encode(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                room = required_size;
            }
            Err(e) => {
                out.truncate(start);
                return Err(rustls::Error::General(e.to_string()));
            }
        }
    }
}

/// [`encode_into`] for `len` bytes of application data.
fn encrypt_into(
    out: &mut Vec<u8>,
    len: usize,
    mut encrypt: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> io::Result<()> {
    let start = out.len();
    // Enough for every record's header, nonce and tag (22 to 29 bytes), so
    // rustls need not be asked twice.
    let mut room = len + (len / 16384 + 1) * 64;
    loop {
        out.resize(start + room, 0);
        match encrypt(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                room = required_size;
            }
            Err(e) => {
                out.truncate(start);
                return Err(io::Error::other(format!("TLS: {e}")));
            }
        }
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
        let mut filled = self.plaintext.len().min(buf.len());
        buf[..filled].copy_from_slice(&self.plaintext[..filled]);
        self.plaintext.drain(..filled);
        if self.plaintext.is_empty() {
            self.plaintext = Vec::new();
        }
        let mut drained = false;
        let mut receives = 0;
        self.more_input = false;
        while filled < buf.len() && !self.end_pending {
            if self.used < self.incoming.len() {
                self.process(buf, &mut filled)?;
            }
            if filled == buf.len() || self.end_pending || drained {
                break;
            }
            if self.eof {
                // End of stream without close_notify: for HTTP the framing
                // says whether a message was cut short, so it is an end.
                self.end_pending = true;
                break;
            }
            if receives == RECEIVES_PER_READ {
                self.more_input = true;
                break;
            }
            receives += 1;
            drained = !self.receive()?;
        }
        let held = self.incoming.len() - self.used;
        let limit = if self.tls.is_handshaking() {
            HOLD_IN_HANDSHAKE
        } else {
            HOLD_AFTER_HANDSHAKE
        };
        if held > limit {
            // A handshake message reassembled across many records: refused
            // rather than held (a connection keeps at most one record).
            let error = rustls::Error::General(format!(
                "{held} bytes of TLS records held without a complete message"
            ));
            return Err(self.fail(&error));
        }
        if held == 0 {
            self.incoming = Vec::new();
            self.used = 0;
        } else {
            // A partial record: kept in a buffer of its size.
            self.incoming.drain(..self.used);
            self.used = 0;
            self.incoming.shrink_to_fit();
        }
        if filled > 0 {
            Ok(filled)
        } else if self.end_pending {
            Ok(0)
        } else if self.more_input {
            // Nothing decrypted yet from a full socket: read on (within the
            // connection's share of the round).
            Err(io::ErrorKind::Interrupted.into())
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
        if self.has_pending_output() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let taken = self.encrypt(bufs)?;
        // Taken means encrypted: what the socket refuses now is kept,
        // reported by `has_pending_output`.
        self.write_records_now()?;
        Ok(taken)
    }

    fn has_pending_output(&self) -> bool {
        match self.state {
            State::PlainHttp(at) => at < PLAIN_HTTP_ON_TLS_PORT.len(),
            _ => self.sent < self.outgoing.len(),
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
        // Decrypted bytes beyond a full read, or an end already seen.
        self.end_pending || self.eof || self.more_input || !self.plaintext.is_empty()
    }

    fn held(&self) -> (usize, usize, usize) {
        (
            self.incoming.capacity() + self.plaintext.capacity(),
            self.outgoing.len() - self.sent,
            self.outgoing.capacity(),
        )
    }

    fn refused(&self, error: &io::Error) -> bool {
        error.kind() == io::ErrorKind::InvalidData
            && matches!(self.state, State::PlainHttp(_) | State::Failed)
    }

    fn is_tls(&self) -> bool {
        true
    }

    fn is_handshaking(&self) -> bool {
        matches!(self.state, State::Fresh | State::Tls) && self.tls.is_handshaking()
    }

    /// `Write`: close_notify (when the session is sound and the socket
    /// takes it now), then the TCP write side.
    fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if how != Shutdown::Read && self.state == State::Tls && !self.tls.is_handshaking() {
            let used = self.used;
            if let Ok(ConnectionState::WriteTraffic(mut traffic)) = self
                .tls
                .process_tls_records(&mut self.incoming[used..])
                .state
            {
                let _ = encrypt_into(&mut self.outgoing, 2, |out| traffic.queue_close_notify(out));
            }
            let _ = self.write_records();
        }
        self.sock.shutdown(how)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `seal_gathered` hands to the cipher for `bufs`: the sealed
    /// pieces in order, and the bytes taken.
    fn sealed(bufs: &[&[u8]]) -> (Vec<Vec<u8>>, usize) {
        let slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
        let mut pieces = Vec::new();
        let taken = seal_gathered(&slices, &mut |data: &[u8]| {
            pieces.push(data.to_vec());
            Ok(())
        })
        .unwrap();
        (pieces, taken)
    }

    #[test]
    fn small_slices_are_gathered_into_full_records_in_order() {
        let frames: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 300]).collect();
        let bufs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        let (pieces, taken) = sealed(&bufs);
        assert_eq!(taken, 64 * 300);
        // 19,200 bytes: one full record's worth and the rest, not 64 records.
        assert_eq!(
            pieces.iter().map(Vec::len).collect::<Vec<_>>(),
            [RECORD_PLAINTEXT, 64 * 300 - RECORD_PLAINTEXT]
        );
        assert_eq!(pieces.concat(), frames.concat());
    }

    #[test]
    fn large_and_lone_slices_are_sealed_where_they_are() {
        let big = vec![7u8; 40_000];
        let (pieces, taken) = sealed(&[b"head", &big, b"tail"]);
        assert_eq!(taken, 40_008);
        // The head fills a record with the start of the big slice; the rest
        // of it is sealed directly, and so is the last slice.
        assert_eq!(
            pieces.iter().map(Vec::len).collect::<Vec<_>>(),
            [RECORD_PLAINTEXT, 40_004 - RECORD_PLAINTEXT, 4]
        );
        assert_eq!(pieces.concat(), [&b"head"[..], &big, b"tail"].concat());
        let (pieces, _) = sealed(&[b"alone"]);
        assert_eq!(pieces, [b"alone".to_vec()]);
    }

    #[test]
    fn one_write_takes_at_most_a_write_chunk() {
        let frames: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 4096]).collect();
        let bufs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        let (pieces, taken) = sealed(&bufs);
        assert_eq!(taken, TLS_WRITE_CHUNK);
        assert_eq!(pieces.concat(), frames.concat()[..TLS_WRITE_CHUNK]);
        assert!(pieces.iter().all(|p| p.len() == RECORD_PLAINTEXT));
    }
}
