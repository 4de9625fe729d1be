//! The connection read buffer.

use std::io::{self, Read};

/// A byte buffer whose whole allocation stays initialised, so socket reads go
/// straight into it without zero-filling on every read; `start..end` holds the
/// bytes not yet consumed.
#[derive(Default)]
pub(crate) struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Reads once from `r` into free space, making room for at least `chunk`
    /// bytes first (moving the unconsumed bytes to the front, or growing).
    /// Returns the count and whether the read filled all the free space (a
    /// short read means the socket had nothing more at that moment).
    pub fn read_from(&mut self, r: &mut impl Read, chunk: usize) -> io::Result<(usize, bool)> {
        if self.buf.len() - self.end < chunk {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < chunk {
                self.buf.resize(self.end + chunk, 0);
            }
        }
        let space = self.buf.len() - self.end;
        let n = r.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok((n, n == space))
    }

    /// Appends `data` after the unconsumed bytes.
    pub fn append(&mut self, data: &[u8]) {
        if self.buf.len() - self.end < data.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() - self.end < data.len() {
                self.buf.resize(self.end + data.len(), 0);
            }
        }
        self.buf[self.end..self.end + data.len()].copy_from_slice(data);
        self.end += data.len();
    }

    /// Moves the unconsumed bytes into a buffer of exactly their size,
    /// leaving `self` (the server's shared scratch buffer) empty with its
    /// capacity: what a connection keeps between polls is what its peer
    /// sent and the server could not use yet, not a read-sized buffer.
    pub fn split_off_remaining(&mut self) -> ReadBuf {
        let own = ReadBuf {
            buf: self.data().to_vec(),
            start: 0,
            end: self.len(),
        };
        self.clear();
        own
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_consumes_and_compacts() {
        let mut b = ReadBuf::default();
        let mut src: &[u8] = b"hello world";
        assert_eq!(b.read_from(&mut src, 4).unwrap(), (4, true));
        assert_eq!(b.data(), b"hell");
        b.consume(2);
        assert_eq!(b.read_from(&mut src, 4).unwrap(), (4, true));
        assert_eq!(b.data(), b"llo wo");
        let own = b.split_off_remaining();
        assert_eq!(own.data(), b"llo wo");
        assert_eq!(own.capacity(), 6);
        assert!(b.is_empty());
        assert!(b.capacity() >= 4);
        // Less than the free space: a short read.
        let mut src: &[u8] = b"x";
        assert_eq!(b.read_from(&mut src, 4).unwrap(), (1, false));
        // Appending compacts first, then grows only as needed.
        b.consume(1);
        b.append(b"abc");
        b.append(b"defghijkl");
        assert_eq!(b.data(), b"abcdefghijkl");
    }
}
