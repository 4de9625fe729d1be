//! permessage-deflate (RFC 7692): the parameters a handshake agreed on and,
//! with the `deflate` feature, the raw-deflate codec a
//! [`WsSession`](crate::proto::ws::WsSession) compresses and inflates
//! messages with (see [`WsSession::enable_deflate`](crate::proto::ws::WsSession::enable_deflate)).
//!
//! # Backend
//!
//! `flate2` over the pure-Rust `zlib-rs` backend: it does raw deflate (no
//! zlib header, as RFC 7692 §7.2.1 wants) with every window size from 9 to
//! 15 bits, which `*_max_window_bits` negotiation needs, and it builds with
//! no C toolchain. `miniz_oxide` (flate2's default backend) cannot set the
//! window size, which is why tungstenite's merged attempt had to skip
//! Autobahn cases 13.3–13.6.
//!
//! # Memory (measured)
//!
//! zlib-rs allocates one block per codec. The numbers are what
//! `tests/deflate_memory.rs` counts with a counting global allocator (it
//! fails when they drift, so they stay true):
//!
//! | window bits | [`Compressor`] (any level) | [`Inflater`] |
//! |-------------|----------------------------|--------------|
//! | 8, 9        | 251 008 B (245 KiB)        | 47 552 B     |
//! | 10          | 253 056 B                  | 47 552 B     |
//! | 11          | 257 152 B                  | 47 552 B     |
//! | 12          | 265 344 B                  | 47 552 B     |
//! | 13          | 281 728 B                  | 47 552 B     |
//! | 14          | 314 496 B                  | 47 552 B     |
//! | 15          | 380 032 B (371 KiB)        | 47 552 B     |
//!
//! A compressor is 248 960 bytes plus `4 << bits`: zlib-rs has a fixed
//! 64 Ki-entry hash table and 16 Ki-symbol literal buffers (zlib's
//! `memLevel` 8, which flate2 does not let us lower), so even a tiny window
//! costs ~245 KiB. An inflater always has a 32 KiB window (zlib-rs
//! allocates it whatever the bits). Hence the lending API on
//! [`WsSession`](crate::proto::ws::WsSession): when a direction keeps no
//! context between messages, its codec can live in a pool between messages.
//!
//! What an idle server session holds beyond a plain one (336 bytes of
//! boxed deflate state from `enable_deflate`, plus its codecs), by mode:
//!
//! | context takeover kept by          | idle session holds                    |
//! |-----------------------------------|---------------------------------------|
//! | both (the default)                | compressor (245–371 KiB) + inflater   |
//! | the client only (`server_no_context_takeover`) | inflater (47 552 B)      |
//! | the server only (`client_no_context_takeover`) | compressor              |
//! | neither                           | nothing (both lent from pools)        |
//!
//! (Codecs are made on first use: a session that never sent or received a
//! compressed message holds none.)

/// What one side of a permessage-deflate handshake agreed on (RFC 7692 §7.1).
///
/// Window bits are 8–15; `server_*` parameters govern what the server
/// compresses, `client_*` ones what the client compresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeflateParams {
    /// The server resets its compression context after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after every message.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window (log2 of bytes) the server compresses with.
    pub server_max_window_bits: u8,
    /// Largest LZ77 window (log2 of bytes) the client compresses with.
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    /// The extension with no parameters: both sides keep context, 15-bit windows.
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

/// The empty stored block a sync flush ends with; RFC 7692 §7.2.1 strips it
/// from every compressed message and §7.2.2 appends it again before inflating.
pub const DEFLATE_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// An upper bound on the raw-deflate size of `len` bytes compressed with a
/// sync flush at the end (before [`DEFLATE_TAIL`] is stripped), from any
/// context, at any level and window size.
///
/// zlib's conservative bound (`deflateBound` for non-default parameters:
/// 1/8 more for the 9-bit literals that level 1's fixed-code blocks may
/// use, 1/64 for block headers, 5 bytes), plus 16 for the sync flush's empty
/// stored block and the bits the previous block left open.
pub const fn deflate_bound(len: usize) -> usize {
    len.saturating_add(len.saturating_add(7) >> 3)
        .saturating_add(len.saturating_add(63) >> 6)
        .saturating_add(5 + 16)
}

/// Window bits as the codec uses them: 8..=15 are accepted, and zlib (and
/// zlib-rs) cannot run raw deflate with an 8-bit window, so 8 becomes 9.
///
/// This still honours a peer's `*_max_window_bits=8`: zlib's deflate never
/// emits a distance beyond `w_size - MIN_LOOKAHEAD` (`MAX_DIST`), which at
/// 9 bits is 512 - 262 = 250 bytes, inside a 256-byte window. zlib-rs keeps
/// that rule in every strategy (`State::max_dist` in its quick, fast,
/// medium and slow matchers); `nine_bit_output_inflates_with_an_eight_bit_window`
/// checks it on data with repeats at distances 200–600, against zlib-rs's
/// own inflater set to a 256-byte window. For inflating, a 9-bit window
/// accepts everything an 8-bit compressor can produce.
#[cfg(feature = "deflate")]
const fn effective_bits(bits: u8) -> u8 {
    if bits < 9 {
        9
    } else if bits > 15 {
        15
    } else {
        bits
    }
}

/// A raw-deflate compressor for permessage-deflate messages (a zlib-rs
/// stream). Large (see [`Compressor::memory`]): lend it to sessions that
/// keep no context between messages
/// ([`WsSession::offer_compressor`](crate::proto::ws::WsSession::offer_compressor)).
#[cfg(feature = "deflate")]
pub struct Compressor {
    inner: flate2::Compress,
    level: u32,
    window_bits: u8,
    /// Compressed something since the last reset (a reset of a clean one
    /// is skipped: zlib's clears a 128 KiB hash table).
    dirty: bool,
}

#[cfg(feature = "deflate")]
impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("level", &self.level)
            .field("window_bits", &self.window_bits)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "deflate")]
impl Compressor {
    /// A compressor at `level` (0 = stored only, 1 = fastest … 9 = smallest;
    /// larger values are taken as 9) with a `2^window_bits`-byte LZ77 window
    /// (8–15, clamped; 8 runs as 9, which never references more than 250
    /// bytes back, see the module docs).
    pub fn new(level: u32, window_bits: u8) -> Compressor {
        let level = level.min(9);
        let window_bits = window_bits.clamp(8, 15);
        Compressor {
            inner: flate2::Compress::new_with_window_bits(
                flate2::Compression::new(level),
                false,
                effective_bits(window_bits),
            ),
            level,
            window_bits,
            dirty: false,
        }
    }

    /// The compression level (0–9).
    pub fn level(&self) -> u32 {
        self.level
    }

    /// The window size it was made for, as requested (8–15).
    pub fn window_bits(&self) -> u8 {
        self.window_bits
    }

    /// Whether this compressor produces the same bytes as one made with
    /// `Compressor::new(level, window_bits)` (8 and 9 bits are the same).
    pub(crate) fn fits(&self, level: u32, window_bits: u8) -> bool {
        self.level == level.min(9)
            && effective_bits(self.window_bits) == effective_bits(window_bits)
    }

    /// Forgets the LZ77 context (a fresh stream, as after `new`), without
    /// freeing or allocating. Free when nothing was compressed since the
    /// last reset.
    pub fn reset(&mut self) {
        if std::mem::take(&mut self.dirty) {
            self.inner.reset();
        }
    }

    /// Heap bytes of a compressor with this window (the level does not
    /// matter); measured, see the module docs.
    pub const fn memory(window_bits: u8) -> usize {
        // zlib-rs: one block holding its state, a window of 2 * 2^bits,
        // `prev` of 2 * 2^bits, a 64 Ki-entry u16 hash head, 64 KiB
        // pending and 48 KiB symbol buffers.
        COMPRESSOR_FIXED + (4usize << effective_bits(window_bits))
    }

    /// Compresses `input` with a sync flush, appending the raw deflate
    /// bytes (ending with [`DEFLATE_TAIL`]) to `out`. Returns `false` if the
    /// stream failed (zlib-rs reports that only for misuse); `out` may then
    /// hold a partial result and the caller must reset the compressor.
    ///
    /// Writes into `out`'s spare capacity: reserve [`deflate_bound`] bytes
    /// first and it needs one call and no reallocation.
    pub(crate) fn compress_sync(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        self.dirty = true;
        let mut rest = input;
        // Each round either consumes input or fills the spare room, which
        // grows every round; a round with neither is a stuck stream.
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(deflate_bound(rest.len()));
            }
            let (in0, out0) = (self.inner.total_in(), self.inner.total_out());
            if self
                .inner
                .compress_vec(rest, out, flate2::FlushCompress::Sync)
                .is_err()
            {
                return false;
            }
            let used = (self.inner.total_in() - in0) as usize;
            let produced = self.inner.total_out() - out0;
            rest = rest.get(used..).unwrap_or_default();
            // The flush is complete once all input is in and deflate
            // returned with output space left (zlib's rule).
            if rest.is_empty() && out.len() < out.capacity() {
                return true;
            }
            if used == 0 && produced == 0 && out.len() < out.capacity() {
                return false;
            }
        }
    }
}

/// Heap bytes of a [`Compressor`] besides its window-dependent part.
#[cfg(feature = "deflate")]
const COMPRESSOR_FIXED: usize = 248_960;

/// Stands in for the compressor when the `deflate` feature is off, so
/// [`WsSession::encode_shared`](crate::proto::ws::WsSession::encode_shared)
/// keeps one signature; it has no values (the `Option` is always `None`).
#[cfg(not(feature = "deflate"))]
#[derive(Debug)]
pub enum Compressor {}

/// Why inflating a message failed.
#[cfg(feature = "deflate")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// The inflated message would exceed the limit.
    TooBig,
    /// The compressed data is not valid deflate.
    Invalid,
}

/// A raw-deflate decompressor for permessage-deflate messages (a zlib-rs
/// stream). See [`Inflater::MEMORY`]; lend it to sessions whose peer keeps
/// no context between messages
/// ([`WsSession::offer_inflater`](crate::proto::ws::WsSession::offer_inflater)).
#[cfg(feature = "deflate")]
pub struct Inflater {
    inner: flate2::Decompress,
    window_bits: u8,
    /// The peer's deflate stream ended (a block with BFINAL set, RFC 7692
    /// §7.2.3.4) exactly where the input so far ended: the next bytes start
    /// a new stream, or are the appended tail, which is then skipped.
    ended: bool,
    /// Inflated something since the last reset.
    dirty: bool,
}

#[cfg(feature = "deflate")]
impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("window_bits", &self.window_bits)
            .finish_non_exhaustive()
    }
}

/// Smallest growth step of a message buffer while inflating into it.
#[cfg(feature = "deflate")]
const INFLATE_GROW: usize = 4096;

#[cfg(feature = "deflate")]
impl Inflater {
    /// An inflater for a peer compressing with at most a
    /// `2^window_bits`-byte window (8–15, clamped).
    ///
    /// It always runs with a 15-bit window: zlib-rs allocates a 32 KiB
    /// window whatever the bits (so a smaller one saves nothing), a larger
    /// window accepts everything a smaller compressor produced, and
    /// flate2 resets only a 15-bit inflater in place (it rebuilds the
    /// zlib-rs state of any other, an allocation per message for sessions
    /// that reset after every message).
    pub fn new(window_bits: u8) -> Inflater {
        Inflater {
            inner: flate2::Decompress::new_with_window_bits(false, 15),
            window_bits: window_bits.clamp(8, 15),
            ended: false,
            dirty: false,
        }
    }

    /// The window size it was made for, as requested (8–15).
    pub fn window_bits(&self) -> u8 {
        self.window_bits
    }

    /// Forgets the LZ77 context (a fresh stream, as after `new`), without
    /// freeing or allocating.
    pub fn reset(&mut self) {
        if std::mem::take(&mut self.dirty) {
            self.inner.reset(false);
        }
        self.ended = false;
    }

    /// Heap bytes of an inflater (any window bits); measured, see the
    /// module docs.
    pub const MEMORY: usize = INFLATER_MEMORY;

    /// Inflates `input` (a piece of a message's compressed payload, or the
    /// [`DEFLATE_TAIL`] when `tail`), appending to `msg`, which never grows
    /// past `limit + 1` bytes of capacity by this call's doing: the message
    /// fails with [`InflateError::TooBig`] as soon as more than `limit`
    /// bytes came out. (A buffer lent with a larger capacity may take up to
    /// its capacity in one step before the check: no more memory is used.)
    ///
    /// `stop_at` pauses inflating: once `msg` holds that many bytes, the
    /// call returns with the rest of `input` unused (and `msg` never grows
    /// its capacity past `stop_at` either). Returns how many bytes of
    /// `input` were used; fewer than all only when it paused. The inflater
    /// may hold up to one match (258 bytes) of output that did not fit,
    /// which comes out with the next input (the tail at the latest).
    pub(crate) fn inflate_into(
        &mut self,
        input: &[u8],
        msg: &mut Vec<u8>,
        limit: usize,
        stop_at: usize,
        tail: bool,
    ) -> Result<usize, InflateError> {
        if input.is_empty() {
            return Ok(0);
        }
        if self.ended {
            // The peer's stream ended with a final block: what follows is a
            // new stream (RFC 7692 §7.2.3.4 sends a stored-block header
            // after it, which the appended tail completes), or the tail
            // itself when nothing followed.
            self.reset();
            if tail {
                return Ok(input.len());
            }
        }
        // Capacity never grows past this: one byte over the limit proves
        // the message too big, and the pause point is a bound on memory.
        let grow_to = stop_at.min(limit.saturating_add(1));
        let mut rest = input;
        loop {
            if msg.len() > limit {
                return Err(InflateError::TooBig);
            }
            if msg.len() >= stop_at {
                return Ok(input.len() - rest.len());
            }
            if msg.len() == msg.capacity() {
                // Grow geometrically from 4 KiB, never past `grow_to`.
                let cap = msg.capacity();
                let target = cap
                    .saturating_mul(2)
                    .max(cap.saturating_add(INFLATE_GROW))
                    .min(grow_to);
                msg.reserve_exact(target.saturating_sub(msg.len()));
            }
            self.dirty = true;
            let (in0, out0) = (self.inner.total_in(), self.inner.total_out());
            // Inflates straight into the message buffer's spare capacity:
            // no intermediate copy.
            let status = self
                .inner
                .decompress_vec(rest, msg, flate2::FlushDecompress::None)
                .map_err(|_| InflateError::Invalid)?;
            let used = (self.inner.total_in() - in0) as usize;
            let produced = self.inner.total_out() - out0;
            rest = rest.get(used..).unwrap_or_default();
            if msg.len() > limit {
                return Err(InflateError::TooBig);
            }
            if status == flate2::Status::StreamEnd {
                if tail {
                    // The final block ended inside the tail: done.
                    self.reset();
                    return Ok(input.len());
                }
                if rest.is_empty() {
                    self.ended = true;
                    return Ok(input.len());
                }
                // A new stream follows in the same message. Its context
                // starts empty: zlib cannot carry a window across streams.
                self.reset();
                continue;
            }
            let room = msg.len() < msg.capacity();
            if rest.is_empty() && room {
                // All input in and output space left: everything decodable
                // so far has been written (inflate stops only for lack of
                // input or output).
                return Ok(input.len());
            }
            if used == 0 && produced == 0 && room {
                // No progress with input and room: cannot happen with a
                // sane stream; refuse rather than spin.
                return Err(InflateError::Invalid);
            }
        }
    }
}

/// Heap bytes of an [`Inflater`].
#[cfg(feature = "deflate")]
const INFLATER_MEMORY: usize = 47_552;

#[cfg(all(test, feature = "deflate"))]
mod tests {
    use super::*;

    /// Compresses `data` as one message (tail stripped).
    fn compress(c: &mut Compressor, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(deflate_bound(data.len()));
        assert!(c.compress_sync(data, &mut out));
        assert!(out.ends_with(&DEFLATE_TAIL));
        out.truncate(out.len() - 4);
        out
    }

    fn inflate(i: &mut Inflater, data: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
        let mut msg = Vec::new();
        i.inflate_into(data, &mut msg, limit, usize::MAX, false)?;
        i.inflate_into(&DEFLATE_TAIL, &mut msg, limit, usize::MAX, true)?;
        Ok(msg)
    }

    /// Data whose repeats sit `distance` bytes back: random blocks of
    /// `distance` bytes each sent twice.
    fn repeats_at(distance: usize, total: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(total + 2 * distance);
        while out.len() < total {
            let block: Vec<u8> = (0..distance)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            out.extend_from_slice(&block);
            out.extend_from_slice(&block);
        }
        out
    }

    /// A bare RFC 1951 decoder (after zlib's `puff.c`) that reports the
    /// longest distance the stream uses. zlib-rs's inflater cannot show a
    /// window violation: it always allocates a 32 KiB window and checks
    /// distances against that, whatever window bits it was given.
    mod puff {
        pub struct Bits<'a> {
            data: &'a [u8],
            pos: usize,
        }

        impl Bits<'_> {
            fn bit(&mut self) -> Result<u32, &'static str> {
                let byte = self.data.get(self.pos / 8).ok_or("out of input")?;
                let b = (byte >> (self.pos % 8)) & 1;
                self.pos += 1;
                Ok(u32::from(b))
            }
            fn bits(&mut self, n: u32) -> Result<u32, &'static str> {
                let mut v = 0;
                for i in 0..n {
                    v |= self.bit()? << i;
                }
                Ok(v)
            }
        }

        struct Huffman {
            counts: [u16; 16],
            symbols: Vec<u16>,
        }

        impl Huffman {
            fn new(lengths: &[u8]) -> Huffman {
                let mut counts = [0u16; 16];
                for &l in lengths {
                    counts[usize::from(l)] += 1;
                }
                counts[0] = 0;
                let mut offs = [0u16; 16];
                for len in 1..15 {
                    offs[len + 1] = offs[len] + counts[len];
                }
                let mut symbols = vec![0u16; lengths.len()];
                for (sym, &l) in lengths.iter().enumerate() {
                    if l != 0 {
                        symbols[usize::from(offs[usize::from(l)])] = sym as u16;
                        offs[usize::from(l)] += 1;
                    }
                }
                Huffman { counts, symbols }
            }
            fn decode(&self, s: &mut Bits<'_>) -> Result<u16, &'static str> {
                let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
                for len in 1..16 {
                    code |= s.bit()? as i32;
                    let count = i32::from(self.counts[len]);
                    if code - first < count {
                        return Ok(self.symbols[(index + code - first) as usize]);
                    }
                    index += count;
                    first = (first + count) << 1;
                    code <<= 1;
                }
                Err("bad code")
            }
        }

        const LBASE: [u16; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
            115, 131, 163, 195, 227, 258,
        ];
        const LEXT: [u32; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        const DBASE: [u16; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        const DEXT: [u32; 30] = [
            0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
            12, 13, 13,
        ];
        const ORDER: [usize; 19] = [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ];

        /// Decodes a whole raw deflate stream (blocks until the input ends
        /// at a block boundary, or a final block): the output and the
        /// longest distance used.
        pub fn inflate(data: &[u8]) -> Result<(Vec<u8>, usize), &'static str> {
            let mut s = Bits { data, pos: 0 };
            let mut out = Vec::new();
            let mut max_dist = 0;
            while s.pos + 8 <= data.len() * 8 {
                let last = s.bit()?;
                match s.bits(2)? {
                    0 => {
                        s.pos = s.pos.div_ceil(8) * 8;
                        let len = s.bits(16)? as usize;
                        let nlen = s.bits(16)? as usize;
                        if len != !nlen & 0xFFFF {
                            return Err("stored length");
                        }
                        for _ in 0..len {
                            out.push(s.bits(8)? as u8);
                        }
                    }
                    t @ (1 | 2) => {
                        let (lit, dist) = if t == 1 {
                            let mut l = [8u8; 288];
                            l[144..256].fill(9);
                            l[256..280].fill(7);
                            (Huffman::new(&l), Huffman::new(&[5u8; 30]))
                        } else {
                            let nlen = s.bits(5)? as usize + 257;
                            let ndist = s.bits(5)? as usize + 1;
                            let ncode = s.bits(4)? as usize + 4;
                            let mut cl = [0u8; 19];
                            for &i in &ORDER[..ncode] {
                                cl[i] = s.bits(3)? as u8;
                            }
                            let clh = Huffman::new(&cl);
                            let mut lengths = Vec::new();
                            while lengths.len() < nlen + ndist {
                                let sym = clh.decode(&mut s)?;
                                let (val, rep) = match sym {
                                    0..=15 => (sym as u8, 1),
                                    16 => (*lengths.last().ok_or("repeat")?, 3 + s.bits(2)?),
                                    17 => (0, 3 + s.bits(3)?),
                                    _ => (0, 11 + s.bits(7)?),
                                };
                                for _ in 0..rep {
                                    lengths.push(val);
                                }
                            }
                            (
                                Huffman::new(&lengths[..nlen]),
                                Huffman::new(&lengths[nlen..]),
                            )
                        };
                        loop {
                            let sym = lit.decode(&mut s)?;
                            if sym < 256 {
                                out.push(sym as u8);
                            } else if sym == 256 {
                                break;
                            } else {
                                let i = usize::from(sym - 257);
                                let len = usize::from(LBASE[i]) + s.bits(LEXT[i])? as usize;
                                let d = usize::from(dist.decode(&mut s)?);
                                let d = usize::from(DBASE[d]) + s.bits(DEXT[d])? as usize;
                                if d > out.len() {
                                    return Err("distance before the start");
                                }
                                max_dist = max_dist.max(d);
                                for _ in 0..len {
                                    out.push(out[out.len() - d]);
                                }
                            }
                        }
                    }
                    _ => return Err("reserved block type"),
                }
                if last == 1 {
                    break;
                }
            }
            Ok((out, max_dist))
        }
    }

    #[test]
    fn every_window_size_is_honoured_and_eight_bits_stay_within_256() {
        for bits in 8..=15u8 {
            // zlib's MAX_DIST: the window minus MIN_LOOKAHEAD (258 + 3 + 1).
            let max_dist = (1usize << bits.max(9)) - 262;
            for level in 1..=9 {
                for distance in [200, 250, 256, 300, 400, 600, 3000] {
                    let data =
                        repeats_at(distance, 12_000, distance as u64 * 31 + u64::from(level));
                    let mut c = Compressor::new(level, bits);
                    // Two messages with context takeover: the second may
                    // reach back into the first. The receiver sees one
                    // stream: each message with its tail put back.
                    let mut stream = compress(&mut c, &data);
                    stream.extend_from_slice(&DEFLATE_TAIL);
                    stream.extend(compress(&mut c, &data));
                    stream.extend_from_slice(&DEFLATE_TAIL);
                    let (got, used) = puff::inflate(&stream).unwrap();
                    assert_eq!(got.len(), 2 * data.len());
                    assert!(got[..data.len()] == data[..] && got[data.len()..] == data[..]);
                    assert!(
                        used <= max_dist,
                        "bits {bits} level {level}: distance {used} > {max_dist}"
                    );
                    if bits == 8 {
                        assert!(used <= 256);
                    }
                }
            }
        }
    }

    #[test]
    fn the_distance_check_can_fail() {
        // A 10-bit compressor uses distances around 500, beyond 256.
        let data = repeats_at(500, 6000, 7);
        let mut z = compress(&mut Compressor::new(6, 10), &data);
        z.extend_from_slice(&DEFLATE_TAIL);
        let (got, used) = puff::inflate(&z).unwrap();
        assert_eq!(got, data);
        assert!(used > 256, "{used}");
    }

    #[test]
    fn output_stays_within_the_bound() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut random = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        for level in 0..=9 {
            for bits in [9, 12, 15] {
                let mut c = Compressor::new(level, bits);
                for len in [1, 2, 8, 9, 100, 1000, 16_383, 16_384, 70_000, 300_000] {
                    let data = random(len);
                    let mut out = Vec::new();
                    assert!(c.compress_sync(&data, &mut out));
                    assert!(
                        out.len() <= deflate_bound(len),
                        "level {level} bits {bits} len {len}: {} > {}",
                        out.len(),
                        deflate_bound(len)
                    );
                }
            }
        }
    }

    #[test]
    fn inflating_stops_at_the_limit() {
        let zeros = vec![0u8; 200_000];
        let z = compress(&mut Compressor::new(6, 15), &zeros);
        let mut i = Inflater::new(15);
        assert_eq!(inflate(&mut i, &z, 200_000).unwrap().len(), 200_000);
        i.reset();
        let mut msg = Vec::new();
        assert_eq!(
            i.inflate_into(&z, &mut msg, 10_000, usize::MAX, false),
            Err(InflateError::TooBig)
        );
        assert_eq!(msg.len(), 10_001);
        assert!(msg.capacity() <= 10_001);
    }

    #[test]
    fn inflating_pauses_at_the_stop_and_resumes_where_it_left_off() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let z = compress(&mut Compressor::new(6, 15), &data);
        let mut i = Inflater::new(15);
        let mut msg = Vec::new();
        let mut pos = 0;
        let mut pauses = 0;
        while pos < z.len() {
            let stop = msg.len() + 10_000;
            let used = i
                .inflate_into(&z[pos..], &mut msg, 1 << 20, stop, false)
                .unwrap();
            // Never past the stop by more than the capacity allows.
            assert!(msg.len() <= stop && msg.capacity() <= stop.max(4096));
            if used < z.len() - pos {
                pauses += 1;
            }
            pos += used;
        }
        i.inflate_into(&DEFLATE_TAIL, &mut msg, 1 << 20, usize::MAX, true)
            .unwrap();
        assert!(pauses >= 10, "{pauses}");
        assert_eq!(msg, data);
    }

    #[test]
    fn garbage_is_invalid() {
        let mut i = Inflater::new(15);
        // BTYPE 11 is reserved.
        assert_eq!(
            inflate(&mut i, &[0xFF, 0xFF, 0xFF], 100),
            Err(InflateError::Invalid)
        );
    }

    #[test]
    fn a_final_block_is_followed_by_a_new_stream_or_the_tail() {
        let hello_final = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let mut i = Inflater::new(15);
        // RFC 7692 §7.2.3.4: "Hello" in a final block, then a stored-block
        // header that the tail completes.
        let mut with_header = hello_final.to_vec();
        with_header.push(0x00);
        assert_eq!(inflate(&mut i, &with_header, 100).unwrap(), b"Hello");
        // Without the extra header byte: the tail is skipped.
        assert_eq!(inflate(&mut i, &hello_final, 100).unwrap(), b"Hello");
        // The same again, fed a byte at a time.
        let mut msg = Vec::new();
        for b in &with_header {
            i.inflate_into(std::slice::from_ref(b), &mut msg, 100, usize::MAX, false)
                .unwrap();
        }
        i.inflate_into(&DEFLATE_TAIL, &mut msg, 100, usize::MAX, true)
            .unwrap();
        assert_eq!(msg, b"Hello");
        // Then the next message inflates from a clean stream.
        let z = compress(&mut Compressor::new(6, 15), b"world");
        assert_eq!(inflate(&mut i, &z, 100).unwrap(), b"world");
        // Garbage after a final block is still garbage.
        let mut bad = hello_final.to_vec();
        bad.push(0xFF);
        assert_eq!(inflate(&mut i, &bad, 100), Err(InflateError::Invalid));
    }
}
