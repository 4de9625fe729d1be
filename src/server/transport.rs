//! The byte stream under a connection: plain TCP, or TLS over it
//! (`super::tls`, feature `tls`). A connection reads and writes only
//! through [`Transport`], so nothing above it knows which.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

use crate::files::FileBody;

/// A non-blocking, pollable byte stream.
pub(crate) trait Transport: mio::event::Source {
    /// Reads into `buf`; `Ok(0)` is the end of the stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes from `bufs` in order; returns how many bytes were taken.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Writes `buf`, which more bytes will follow at once (a response head
    /// before its file body), so they can share a segment.
    fn write_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    /// Whether [`send_file`](Self::send_file) can move file bytes without a
    /// copy through user space.
    fn sends_files(&self) -> bool {
        false
    }
    /// Sends up to `max` bytes of `body`'s next span straight from the file.
    fn send_file(&mut self, body: &mut FileBody, max: usize) -> io::Result<usize> {
        let _ = (body, max);
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Ends one or both directions of the stream (`Write`: the peer sees EOF).
    fn shutdown(&mut self, how: Shutdown) -> io::Result<()>;
    /// Whether the transport holds bytes it took (or made: a TLS handshake
    /// answer, a refusal) that the socket has not taken yet. The connection
    /// then waits for writability and calls [`flush_pending`](Self::flush_pending).
    fn has_pending_output(&self) -> bool {
        false
    }
    /// Writes what the transport holds; returns the bytes written, or
    /// `WouldBlock` when the socket took none.
    fn flush_pending(&mut self) -> io::Result<usize> {
        Ok(0)
    }
    /// Whether input is known to be waiting inside the transport (an end of
    /// stream it has seen but not returned): the connection must read on
    /// after a short read instead of waiting for a readiness event.
    fn has_buffered_input(&self) -> bool {
        false
    }
    /// Bytes the transport holds of its own, for
    /// [`Server::stats`](crate::Server::stats): allocated for input,
    /// queued for output, allocated for output.
    fn held(&self) -> (usize, usize, usize) {
        (0, 0, 0)
    }
    /// Whether the stream is encrypted (TLS).
    fn is_tls(&self) -> bool {
        false
    }
    /// Whether the stream is still being opened (a TLS handshake): the
    /// connection gives it the header timeout, counted from the accept.
    fn is_handshaking(&self) -> bool {
        false
    }
    /// Whether a read error means the transport refused the peer's input
    /// and has its last word to send (a TLS alert, a plain-HTTP `400`):
    /// the connection then writes it and closes with a lingering close.
    fn refused(&self, error: &io::Error) -> bool {
        let _ = error;
        false
    }
}

/// Lets a transport fill a [`ReadBuf`](super::buf::ReadBuf).
pub(crate) struct ReadHalf<'a>(pub &'a mut dyn Transport);

impl Read for ReadHalf<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// Plain TCP.
impl Transport for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Read::read(self, buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match bufs {
            [one] => Write::write(self, one),
            _ => Write::write_vectored(self, bufs),
        }
    }

    // MSG_MORE lets the kernel put a head in one segment with the file's
    // first bytes sent by `send_file`.
    #[cfg(target_os = "linux")]
    fn write_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        rustix::net::send(&*self, buf, rustix::net::SendFlags::MORE).map_err(io::Error::from)
    }

    fn sends_files(&self) -> bool {
        cfg!(target_os = "linux")
    }

    #[cfg(target_os = "linux")]
    fn send_file(&mut self, body: &mut FileBody, max: usize) -> io::Result<usize> {
        body.send_to(&*self, max)
    }

    fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }
}

/// What a connection holds once its socket is closed while its slot stays
/// (a WebSocket whose messages and end the program has yet to read): the
/// descriptor itself is released at once.
pub(crate) struct Closed;

impl mio::event::Source for Closed {
    fn register(&mut self, _: &mio::Registry, _: mio::Token, _: mio::Interest) -> io::Result<()> {
        Ok(())
    }
    fn reregister(&mut self, _: &mio::Registry, _: mio::Token, _: mio::Interest) -> io::Result<()> {
        Ok(())
    }
    fn deregister(&mut self, _: &mio::Registry) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Closed {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
    fn write_vectored(&mut self, _: &[IoSlice<'_>]) -> io::Result<usize> {
        Err(io::ErrorKind::NotConnected.into())
    }
    fn shutdown(&mut self, _: Shutdown) -> io::Result<()> {
        Ok(())
    }
}
