//! Sans-IO WebSocket protocol core (RFC 6455).
//!
//! This module owns no socket, spawns no thread and never reads the clock:
//! the driver hands it bytes, a write buffer and the current [`Instant`], and
//! it hands back how many bytes it consumed plus at most one [`Event`].
//!
//! # Driving a [`WsSession`]
//!
//! * **Reading.** Call [`WsSession::feed`] with the unconsumed part of the
//!   connection's read buffer. Drop the `consumed` bytes, handle the event if
//!   there is one, and call again until a call returns `consumed == 0` with
//!   no event. `feed` only returns early (leaving input unconsumed) when it
//!   has an event; a call without an event has consumed all of its input.
//!   Partial headers and partial payloads are buffered inside the session,
//!   so the driver never needs to keep more than one read's worth of bytes.
//!   `feed` unmasks payload bytes in place, which is why it takes `&mut [u8]`.
//! * **Writing.** Everything the protocol wants to send (pongs, close
//!   replies, close frames on protocol errors, your own messages) is appended
//!   to the `out` buffer passed in. After every call that may have written,
//!   flush `out` to the socket when it is writable.
//! * **Timers.** After every call, re-arm the connection's timer with
//!   [`WsSession::next_deadline`]; when it fires call
//!   [`WsSession::on_timeout`] (`feed` also checks the deadlines itself).
//! * **Shutting down.** When [`WsSession::wants_shutdown`] returns true the
//!   WebSocket is finished: flush `out`, then `shutdown(Write)` the TCP
//!   stream, read and discard until EOF (or a short linger timeout) and close
//!   it. Closing a socket with unread input makes the kernel send RST, which
//!   can destroy the close frame before the peer reads it. RFC 6455 wants the
//!   server to close TCP first; a client may wait for the server's EOF.
//!
//! Pings are answered automatically and never surfaced. After a close frame
//! was sent (by [`WsSession::close`] or because we failed the connection),
//! nothing more can be sent and incoming data frames are discarded until the
//! peer's close arrives or [`WsConfig::close_timeout`] passes.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha1::{Digest, Sha1};

#[cfg(feature = "deflate")]
use crate::proto::deflate::{deflate_bound, InflateError, Inflater, DEFLATE_TAIL};
use crate::proto::deflate::{Compressor, DeflateParams};

/// The GUID appended to `Sec-WebSocket-Key` before hashing (RFC 6455 §1.3).
pub const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Largest close reason in bytes: a control payload minus the 2-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// Longest possible frame header: 2 bytes, 8 bytes of length, 4 of mask key.
pub const MAX_HEADER_LEN: usize = 14;

// ---------------------------------------------------------------------------
// Basic types
// ---------------------------------------------------------------------------

/// A close status code that may legally appear on the wire.
///
/// Allowed: 1000-1003, 1007-1014 and 3000-4999. 1004, 1005, 1006, 1015 and
/// everything else below 3000 or above 4999 cannot be constructed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1007: payload inconsistent with the message type (bad UTF-8 text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation (too many fragments, fragment timeout, ...).
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: (client) the server did not negotiate a required extension.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: (server) unexpected internal condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: service restart (IANA registered).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (IANA registered).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: bad gateway (IANA registered).
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);

    /// Returns the code if it may be sent on the wire, `None` otherwise.
    pub const fn new(code: u16) -> Option<CloseCode> {
        if Self::is_allowed(code) {
            Some(CloseCode(code))
        } else {
            None
        }
    }

    /// Whether `code` may appear in a close frame.
    pub const fn is_allowed(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// The numeric value.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for CloseCode {
    type Error = InvalidCloseCode;

    fn try_from(code: u16) -> Result<Self, Self::Error> {
        CloseCode::new(code).ok_or(InvalidCloseCode(code))
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Error of `CloseCode::try_from`: the code is not allowed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("close code {0} is not allowed on the wire")]
pub struct InvalidCloseCode(pub u16);

/// A frame opcode defined by RFC 6455 (reserved opcodes are not representable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// 0x0: continuation of a fragmented message.
    Continuation = 0x0,
    /// 0x1: first frame of a text message.
    Text = 0x1,
    /// 0x2: first frame of a binary message.
    Binary = 0x2,
    /// 0x8: close.
    Close = 0x8,
    /// 0x9: ping.
    Ping = 0x9,
    /// 0xA: pong.
    Pong = 0xA,
}

impl Opcode {
    /// Parses the low 4 bits of a frame's first byte; reserved values give `None`.
    pub const fn from_u8(value: u8) -> Option<Opcode> {
        match value {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }

    /// The 4-bit wire value.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Whether this is a control opcode (close, ping, pong).
    pub const fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A complete WebSocket message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (always valid UTF-8).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }
}

/// Which end of the connection a session plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Server: expects masked frames, sends unmasked ones.
    Server,
    /// Client: expects unmasked frames, masks what it sends.
    Client,
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// Limits and timeouts of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsConfig {
    /// Largest incoming message (sum of its fragments' payloads), in bytes.
    /// Exceeding it fails the connection with 1009. Default 16 MiB.
    pub max_message_size: usize,
    /// Most frames one incoming message may consist of (the first frame
    /// counts). Exceeding it fails the connection with 1008. Default 131072.
    pub max_fragments: usize,
    /// Longest the peer may go without delivering anything (a frame header
    /// or payload bytes) of an unfinished *fragmented* message; control
    /// frames in between do not count. Exceeding it fails the connection with
    /// 1008. `None` disables the check. Default 30 s.
    pub fragment_timeout: Option<Duration>,
    /// Slowest average rate, in bytes per second, at which an incoming
    /// message may arrive once it has begun: it must be complete by
    /// `fragment_timeout` plus one second per this many bytes received, so
    /// a peer cannot trickle a large frame a byte at a time for ever (each
    /// byte would restart the fragment timeout and answer a keepalive
    /// ping). Exceeding it fails the connection with 1008. 0, or no
    /// `fragment_timeout`, disables it. Default 0 here; the server's
    /// [`WsOptions`](crate::ws::WsOptions) set 1024.
    pub min_message_rate: u64,
    /// Largest payload of a frame we *send*: longer messages are split into
    /// continuation frames. Default 1 MiB; 0 is treated as 1.
    pub max_frame_size: usize,
    /// How long to wait for the peer's close reply after we sent a close
    /// frame; then [`WsSession::wants_shutdown`] becomes true. Default 5 s.
    pub close_timeout: Duration,
    /// After this long without receiving anything, a ping is sent to check
    /// the peer is still there (a vanished peer, a phone that left the
    /// network, sends no FIN). `None` disables keepalive pings. Default
    /// `None` here; the server's [`WsOptions`](crate::ws::WsOptions) turn it
    /// on (30 s).
    pub keepalive_interval: Option<Duration>,
    /// How long the peer has to send anything (its pong, or any frame)
    /// after a keepalive ping; then the connection is failed with
    /// [`ProtocolError::KeepaliveTimeout`]. Default 30 s, so with a 30 s
    /// interval a silent peer is dropped after about a minute.
    pub keepalive_timeout: Duration,
    /// Closes the WebSocket (code 1001) after this long without a data
    /// message from the peer, even if it answers pings. `None` (the default)
    /// keeps quiet clients, such as dashboards that only listen.
    pub idle_timeout: Option<Duration>,
}

impl Default for WsConfig {
    /// Desktop/server defaults: 16 MiB messages, 131072 fragments, 30 s
    /// fragment timeout, 1 MiB outgoing frames, 5 s close timeout; no
    /// keepalive pings (a bare session sends nothing unasked; the server's
    /// [`WsOptions`](crate::ws::WsOptions) turn them on) and no idle timeout.
    fn default() -> Self {
        WsConfig {
            max_message_size: 16 * 1024 * 1024,
            max_fragments: 131_072,
            fragment_timeout: Some(Duration::from_secs(30)),
            min_message_rate: 0,
            max_frame_size: 1024 * 1024,
            close_timeout: Duration::from_secs(5),
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(30),
            idle_timeout: None,
        }
    }
}

impl WsConfig {
    /// The limits of CircuitPython's `adafruit_httpserver`: 4096-byte messages, 16
    /// fragments, 5 s fragment timeout; outgoing frames of at most 4096
    /// bytes and a 5 s close timeout.
    pub fn embedded() -> Self {
        WsConfig {
            max_message_size: 4096,
            max_fragments: 16,
            fragment_timeout: Some(Duration::from_secs(5)),
            max_frame_size: 4096,
            ..WsConfig::default()
        }
    }
}

// ---------------------------------------------------------------------------
// Events and errors
// ---------------------------------------------------------------------------

/// Something the driver or application must know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete (possibly reassembled) message.
    Message(Message),
    /// A pong arrived with this payload (may be ignored).
    Pong(Vec<u8>),
    /// The peer's close frame arrived. If we had not sent a close yet, the
    /// reply (echoing `code`) has already been written to `out`. The session
    /// is now closed: see [`WsSession::wants_shutdown`].
    Close {
        /// The peer's status code, `None` if its close frame had no payload.
        code: Option<CloseCode>,
        /// The peer's reason (valid UTF-8, at most 123 bytes).
        reason: String,
    },
    /// We failed the connection. A close frame with
    /// [`ProtocolError::close_code`] has already been written to `out`
    /// (unless we had sent a close before).
    Error(ProtocolError),
}

/// Why we failed the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Server role: the client sent an unmasked frame.
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// Client role: the server sent a masked frame.
    #[error("server frame is masked")]
    MaskedFrame,
    /// RSV bits set that no negotiated extension allows (bits shifted to 0-7).
    #[error("reserved bits {0:#05b} set")]
    ReservedBits(u8),
    /// A reserved opcode (3-7, 0xB-0xF).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A continuation frame while no fragmented message was open.
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message was open.
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A control frame with more than 125 bytes of payload.
    #[error("control frame payload longer than 125 bytes")]
    ControlTooLong,
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A 64-bit payload length with the most significant bit set.
    #[error("payload length has the most significant bit set")]
    InvalidLength,
    /// A text message that is not valid UTF-8.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// A close frame with a 1-byte payload.
    #[error("close frame payload of 1 byte")]
    InvalidClosePayload,
    /// A close frame with a code not allowed on the wire.
    #[error("close code {0} is not allowed on the wire")]
    InvalidCloseCode(u16),
    /// A close frame whose reason is not valid UTF-8.
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
    /// The message exceeded [`WsConfig::max_message_size`].
    #[error("message too big")]
    MessageTooBig,
    /// The message exceeded [`WsConfig::max_fragments`].
    #[error("too many fragments")]
    TooManyFragments,
    /// A fragmented message stalled longer than [`WsConfig::fragment_timeout`].
    #[error("fragmented message timed out")]
    FragmentTimeout,
    /// Nothing arrived within [`WsConfig::keepalive_timeout`] of a keepalive
    /// ping: the peer is gone.
    #[error("no answer to a keepalive ping")]
    KeepaliveTimeout,
    /// No data message for [`WsConfig::idle_timeout`].
    #[error("idle for too long")]
    IdleTimeout,
    /// A message arrived slower than [`WsConfig::min_message_rate`].
    #[error("message arriving too slowly")]
    MessageTooSlow,
    /// permessage-deflate: RSV1 ("compressed") on a continuation or a
    /// control frame; only a message's first frame may carry it.
    #[error("compressed bit on a continuation or control frame")]
    MisplacedCompressionBit,
    /// permessage-deflate: a compressed message is not valid deflate data.
    #[error("compressed message is not valid deflate data")]
    InvalidCompressedData,
    /// permessage-deflate: the server's budget of inflated bytes stayed
    /// full while this connection waited to inflate more, for longer than
    /// the driver allows ([`ServerConfig::inflate_pause_timeout`](crate::ServerConfig::inflate_pause_timeout));
    /// closed with 1013 (try again later).
    #[error("server busy: no room to inflate the message")]
    InflateBudgetExhausted,
}

impl ProtocolError {
    /// The close code sent to the peer for this error.
    pub const fn close_code(self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::MessageTooBig => CloseCode::MESSAGE_TOO_BIG,
            ProtocolError::TooManyFragments
            | ProtocolError::FragmentTimeout
            | ProtocolError::MessageTooSlow => CloseCode::POLICY_VIOLATION,
            ProtocolError::KeepaliveTimeout | ProtocolError::IdleTimeout => CloseCode::GOING_AWAY,
            ProtocolError::InflateBudgetExhausted => CloseCode::TRY_AGAIN_LATER,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// The reason text of the close frame sent for this error: for the
    /// limits and deadlines a well-behaved client can run into (a message
    /// too big, too many fragments, too slow, idle, a busy server) a short
    /// phrase, so a browser's `CloseEvent.reason` says why; empty for
    /// malformed input, which only a broken or hostile peer sends.
    pub const fn close_reason(self) -> &'static str {
        match self {
            ProtocolError::MessageTooBig => "message too big",
            ProtocolError::TooManyFragments => "too many fragments",
            ProtocolError::FragmentTimeout => "fragmented message timed out",
            ProtocolError::MessageTooSlow => "message arriving too slowly",
            ProtocolError::KeepaliveTimeout => "no answer to keepalive ping",
            ProtocolError::IdleTimeout => "idle for too long",
            ProtocolError::InflateBudgetExhausted => "server busy, try again later",
            _ => "",
        }
    }
}

/// Why a send was refused. Nothing is written to `out` on error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// A close frame was already sent (or the session is closed).
    #[error("connection is closing or closed")]
    Closed,
    /// A ping/pong payload longer than 125 bytes.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(usize),
}

/// Result of one [`WsSession::feed`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feed {
    /// How many input bytes were used; drop them from the read buffer.
    pub consumed: usize,
    /// At most one event; when `None`, all input was consumed.
    pub event: Option<Event>,
}

/// Coarse session state, see [`WsSession::state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Messages may flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's (nothing can be sent).
    Closing,
    /// The WebSocket is finished; the driver should shut the TCP stream.
    Closed,
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`: base64 of the
/// SHA-1 of the key (as given, already trimmed) followed by [`WS_GUID`].
pub fn accept_key(client_key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(client_key.as_bytes());
    sha.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Whether a `Sec-WebSocket-Key` value (already trimmed) is padded base64
/// decoding to exactly 16 bytes, as RFC 6455 §4.1 requires.
pub fn is_valid_client_key(key: &str) -> bool {
    if key.len() != 24 {
        return false;
    }
    let mut buf = [0u8; 18];
    matches!(
        base64::engine::general_purpose::STANDARD.decode_slice(key, &mut buf),
        Ok(16)
    )
}

/// XORs `buf` with the 4-byte `mask`, where `buf[0]` is byte number `offset`
/// of the payload (so masking can resume mid-payload). Works on 32-byte
/// blocks, which the compiler vectorises: with AVX2 registers where the CPU
/// has them (x86-64, detected at run time), else with the baseline ones. The
/// operation is its own inverse.
#[allow(unsafe_code)] // the AVX2 call below; see its SAFETY note
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let pattern = mask_pattern(mask, offset);
    #[cfg(target_arch = "x86_64")]
    if buf.len() >= AVX2_MIN && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the only requirement for calling a function compiled with
        // `target_feature(enable = "avx2")` is that the CPU supports AVX2,
        // checked just above; the function's body is safe code.
        unsafe { xor_blocks_avx2(buf, &pattern) };
        return;
    }
    xor_blocks(buf, &pattern);
}

/// The mask repeated over 32 bytes, starting at payload byte `offset`: XOR
/// over fixed 32-byte blocks is what the compiler turns into SIMD registers
/// (a u64-at-a-time loop measured 0.4x memcpy speed on 16 KiB buffers).
fn mask_pattern(mask: [u8; 4], offset: usize) -> [u8; 32] {
    let mut m = mask;
    m.rotate_left(offset % 4);
    std::array::from_fn(|i| m[i % 4])
}

/// Appends `src` to `dst` unmasked with `mask` (`src[0]` being payload byte
/// `offset`): the copy out of the read buffer and the unmasking in one pass
/// over the bytes, where unmasking in place and then copying made two (the
/// copy was 5 % of a 16 KiB echo's CPU). `None`: a plain copy.
#[allow(unsafe_code)] // the AVX2 call and `set_len`; see their SAFETY notes
pub(crate) fn extend_unmasked(dst: &mut Vec<u8>, src: &[u8], mask: Option<[u8; 4]>, offset: usize) {
    let Some(mask) = mask else {
        dst.extend_from_slice(src);
        return;
    };
    let pattern = mask_pattern(mask, offset);
    dst.reserve(src.len());
    let Some(spare) = dst.spare_capacity_mut().get_mut(..src.len()) else {
        // Not reached: `reserve` made the room.
        let start = dst.len();
        dst.extend_from_slice(src);
        apply_mask(dst.get_mut(start..).unwrap_or_default(), mask, offset);
        return;
    };
    #[cfg(target_arch = "x86_64")]
    if src.len() >= AVX2_MIN && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above; the function's
        // body is safe code.
        unsafe { xor_into_avx2(spare, src, &pattern) };
    } else {
        xor_into(spare, src, &pattern);
    }
    #[cfg(not(target_arch = "x86_64"))]
    xor_into(spare, src, &pattern);
    // SAFETY: `spare` is the first `src.len()` elements of the spare
    // capacity, and `xor_into` wrote every one of them (it pairs each
    // element of `dst` with one of `src`, and the two are equally long).
    unsafe { dst.set_len(dst.len() + src.len()) };
}

/// Writes `src[i] ^ pattern[i % 32]` to every `dst[i]`; `dst` and `src` are
/// equally long ([`extend_unmasked`] relies on every element being written).
#[inline(always)]
fn xor_into(dst: &mut [std::mem::MaybeUninit<u8>], src: &[u8], pattern: &[u8; 32]) {
    let mut out = dst.chunks_exact_mut(32);
    let mut inp = src.chunks_exact(32);
    for (o, i) in (&mut out).zip(&mut inp) {
        for ((o, i), k) in o.iter_mut().zip(i).zip(pattern) {
            o.write(i ^ k);
        }
    }
    for ((o, i), k) in out
        .into_remainder()
        .iter_mut()
        .zip(inp.remainder())
        .zip(pattern)
    {
        o.write(i ^ k);
    }
}

/// [`xor_into`] compiled for AVX2, as [`xor_blocks_avx2`].
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)] // `target_feature` functions must be `unsafe` before Rust 1.86 (MSRV 1.85)
unsafe fn xor_into_avx2(dst: &mut [std::mem::MaybeUninit<u8>], src: &[u8], pattern: &[u8; 32]) {
    xor_into(dst, src, pattern)
}

/// Shortest buffer worth the AVX2 path (shorter ones are a few blocks).
#[cfg(target_arch = "x86_64")]
const AVX2_MIN: usize = 128;

/// XORs `buf` with `pattern` repeated (`buf[0]` at `pattern[0]`).
#[inline(always)]
fn xor_blocks(buf: &mut [u8], pattern: &[u8; 32]) {
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for (b, k) in block.iter_mut().zip(pattern.iter()) {
            *b ^= k;
        }
    }
    // The remainder starts at a multiple of 32, so the pattern still lines up.
    for (b, k) in blocks.into_remainder().iter_mut().zip(pattern.iter()) {
        *b ^= k;
    }
}

/// [`xor_blocks`] compiled for AVX2 (32-byte registers, twice the baseline
/// SSE2 width); measured 0.42–0.80× `memcpy` on 16 KiB without it.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)] // `target_feature` functions must be `unsafe` before Rust 1.86 (MSRV 1.85)
unsafe fn xor_blocks_avx2(buf: &mut [u8], pattern: &[u8; 32]) {
    xor_blocks(buf, pattern)
}

/// Appends a frame header with the shortest length encoding. RSV bits are
/// zero. `payload_len` must be below 2^63 (any real buffer is).
pub fn write_frame_header(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    payload_len: u64,
) {
    let b0 = if fin { 0x80 } else { 0 } | opcode.as_u8();
    let (head, len) = encode_header(b0, mask, payload_len);
    out.extend_from_slice(head.get(..len).unwrap_or_default());
}

/// A frame header with first byte `b0` (FIN, RSV, opcode) and the shortest
/// length encoding: the bytes and how many of them are used.
fn encode_header(b0: u8, mask: Option<[u8; 4]>, payload_len: u64) -> ([u8; MAX_HEADER_LEN], usize) {
    let mut h = [0u8; MAX_HEADER_LEN];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    h[0] = b0;
    let mut n = 2;
    if payload_len <= MAX_CONTROL_PAYLOAD as u64 {
        h[1] = mask_bit | payload_len as u8;
    } else if let Ok(len) = u16::try_from(payload_len) {
        h[1] = mask_bit | 126;
        h[2..4].copy_from_slice(&len.to_be_bytes());
        n = 4;
    } else {
        h[1] = mask_bit | 127;
        h[2..10].copy_from_slice(&payload_len.to_be_bytes());
        n = 10;
    }
    if let Some(m) = mask {
        h[n..n + 4].copy_from_slice(&m);
        n += 4;
    }
    (h, n)
}

/// Length of the header [`encode_header`] writes for a payload of `len`.
#[cfg(feature = "deflate")]
fn header_size(len: usize, masked: bool) -> usize {
    let ext = if len <= MAX_CONTROL_PAYLOAD {
        0
    } else if len <= usize::from(u16::MAX) {
        2
    } else {
        8
    };
    2 + ext + if masked { 4 } else { 0 }
}

/// A data message as frames of at most `max` payload bytes (`max` ≥ 1),
/// each with the mask `mask` gives (masked in `out`: one copy). An empty
/// message is one empty frame.
fn write_plain_message(
    out: &mut Vec<u8>,
    opcode: Opcode,
    data: &[u8],
    max: usize,
    mut mask: impl FnMut() -> Option<[u8; 4]>,
) {
    if data.is_empty() {
        write_frame(out, true, opcode, &[], mask());
        return;
    }
    out.reserve(
        data.len()
            .saturating_add(data.len().div_ceil(max).saturating_mul(MAX_HEADER_LEN)),
    );
    let mut chunks = data.chunks(max).peekable();
    let mut op = opcode;
    while let Some(chunk) = chunks.next() {
        write_frame(out, chunks.peek().is_none(), op, chunk, mask());
        op = Opcode::Continuation;
    }
}

/// Compresses `data` as one permessage-deflate message into `out`, after a
/// gap left for the first frame's header (RFC 7692 §7.2.1: sync flush, the
/// `00 00 ff ff` tail stripped). Returns the gap and the compressed length,
/// or `None` (with `out` as it was) if the compressor failed, which leaves
/// it to be reset.
///
/// The gap is the header size of the frame the deflate bound predicts, so
/// a message that fits one frame is usually compressed where it stays.
#[cfg(feature = "deflate")]
fn compress_after_gap(
    c: &mut Compressor,
    data: &[u8],
    max: usize,
    masked: bool,
    out: &mut Vec<u8>,
) -> Option<(usize, usize)> {
    let start = out.len();
    let bound = deflate_bound(data.len());
    let gap = header_size(bound.min(max), masked);
    // All the frames' headers too, so framing needs no reallocation.
    let headers = bound.div_ceil(max).max(1).saturating_mul(MAX_HEADER_LEN);
    out.reserve(bound.saturating_add(headers));
    out.resize(start + gap, 0);
    let ok = c.compress_sync(data, out);
    let clen = out.len() - start - gap;
    if !ok || clen < DEFLATE_TAIL.len() || !out.ends_with(&DEFLATE_TAIL) {
        out.truncate(start);
        return None;
    }
    let clen = clen - DEFLATE_TAIL.len();
    out.truncate(start + gap + clen);
    Some((gap, clen))
}

/// Frames compressed bytes `out[start + gap..]` (`clen` of them, as
/// [`compress_after_gap`] left them) in place: frames of at most `max`
/// bytes, RSV1 on the first only (RFC 7692 §6.1), each header with the
/// shortest length encoding and the mask `mask` gives when `masked`.
///
/// The chunks move at most once (`copy_within`): one frame whose header is
/// the size of the gap does not move at all; otherwise the bytes after
/// the first frame shift right to make room for the later headers.
#[cfg(feature = "deflate")]
#[allow(clippy::too_many_arguments)]
fn frame_compressed(
    out: &mut Vec<u8>,
    start: usize,
    gap: usize,
    clen: usize,
    opcode: Opcode,
    max: usize,
    masked: bool,
    mut mask: impl FnMut() -> Option<[u8; 4]>,
) {
    let n = clen.div_ceil(max).max(1);
    let last_len = clen - (n - 1) * max;
    let full_h = header_size(max, masked);
    let last_h = header_size(last_len, masked);
    let len_of = |i: usize| if i + 1 == n { last_len } else { max };
    // Where chunk `i`'s payload starts once framed, and where it is now.
    // Every frame before `i` is full (`max` bytes, `full_h` of header).
    let dest = |i: usize| start + i * (full_h + max) + header_size(len_of(i), masked);
    let src = |i: usize| start + gap + i * max;
    let end = start + (n - 1) * (full_h + max) + last_h + last_len;
    if end > out.len() {
        out.resize(end, 0);
    }
    // Shifts grow with `i`: chunks moving left go first, in order; chunks
    // moving right go last-first, so none overwrites one not yet moved.
    for i in 0..n {
        let (d, s) = (dest(i), src(i));
        if d >= s {
            break;
        }
        out.copy_within(s..s + len_of(i), d);
    }
    for i in (0..n).rev() {
        let (d, s) = (dest(i), src(i));
        if d <= s {
            break;
        }
        out.copy_within(s..s + len_of(i), d);
    }
    out.truncate(end);
    for i in 0..n {
        let fin = if i + 1 == n { 0x80 } else { 0 };
        let b0 = if i == 0 {
            fin | 0x40 | opcode.as_u8()
        } else {
            fin
        };
        let m = if masked { mask() } else { None };
        let len = len_of(i);
        let (head, hlen) = encode_header(b0, m, len as u64);
        let d = dest(i);
        if let (Some(dst), Some(src)) = (out.get_mut(d - hlen..d), head.get(..hlen)) {
            dst.copy_from_slice(src);
        }
        if let (Some(m), Some(payload)) = (m, out.get_mut(d..d + len)) {
            apply_mask(payload, m, 0);
        }
    }
}

/// Header then payload, masked in `out` if `mask` is given (one copy).
fn write_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    write_frame_header(out, fin, opcode, mask, payload.len() as u64);
    let start = out.len();
    out.extend_from_slice(payload);
    if let (Some(m), Some(written)) = (mask, out.get_mut(start..)) {
        apply_mask(written, m, 0);
    }
}

/// The longest prefix of `reason` that fits [`MAX_CLOSE_REASON`] bytes and
/// ends on a char boundary.
fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.get(..end).unwrap_or_default()
}

fn write_close_frame(
    out: &mut Vec<u8>,
    code: Option<CloseCode>,
    reason: &str,
    mask: Option<[u8; 4]>,
) {
    let mut buf = [0u8; MAX_CONTROL_PAYLOAD];
    let mut len = 0;
    if let Some(code) = code {
        let reason = truncate_reason(reason).as_bytes();
        buf[..2].copy_from_slice(&code.get().to_be_bytes());
        len = 2 + reason.len();
        if let Some(dst) = buf.get_mut(2..len) {
            dst.copy_from_slice(reason);
        }
    }
    write_frame(
        out,
        true,
        Opcode::Close,
        buf.get(..len).unwrap_or_default(),
        mask,
    );
}

fn parse_close_payload(payload: &[u8]) -> Result<(Option<CloseCode>, String), ProtocolError> {
    match payload {
        [] => Ok((None, String::new())),
        [_] => Err(ProtocolError::InvalidClosePayload),
        [hi, lo, reason @ ..] => {
            let raw = u16::from_be_bytes([*hi, *lo]);
            let code = CloseCode::new(raw).ok_or(ProtocolError::InvalidCloseCode(raw))?;
            let reason =
                std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok((Some(code), reason.to_owned()))
        }
    }
}

/// Header length implied by the second header byte.
fn header_len(b1: u8) -> usize {
    let ext = match b1 & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    2 + ext + mask
}

/// Turns a message buffer already validated as UTF-8 into a `String`
/// (without scanning a message of up to 16 MiB a second time).
#[allow(unsafe_code)]
fn into_validated_string(bytes: Vec<u8>) -> String {
    debug_assert!(std::str::from_utf8(&bytes).is_ok());
    // SAFETY: every byte of `bytes` went through `WsSession::check_utf8`,
    // and `complete_message` verified that the validated prefix covers the
    // whole buffer (no incomplete trailing sequence) before calling us.
    unsafe { String::from_utf8_unchecked(bytes) }
}

// ---------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    CloseSent { deadline: Option<Instant> },
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MsgKind {
    Text,
    Binary,
}

/// The frame whose payload is being received.
#[derive(Clone, Copy, Debug)]
struct Frame {
    fin: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    remaining: u64,
    /// Payload position modulo 4, for resuming the mask.
    phase: usize,
}

/// permessage-deflate state of a session (boxed: sessions without it pay
/// one pointer).
#[cfg(feature = "deflate")]
struct DeflateState {
    params: DeflateParams,
    level: u32,
    /// Messages shorter than this go uncompressed (empty ones always do).
    min_size: usize,
    /// Window bits we compress with, and whether we reset after every
    /// message (no context takeover in our direction).
    tx_bits: u8,
    tx_reset: bool,
    /// Whether the peer resets after every message (so do we, and our
    /// inflater may be lent out between messages).
    rx_reset: bool,
    /// Created when first needed, or lent by the driver.
    compressor: Option<Compressor>,
    inflater: Option<Inflater>,
    /// The inflater holds part of the message being received.
    rx_busy: bool,
    /// Set by the driver before feeding: the most bytes a received message
    /// may inflate to besides `max_message_size` (a server-wide budget),
    /// and how many more bytes may be inflated before pausing.
    rx_limit: usize,
    rx_room: usize,
    /// Inflating paused for want of room (see `rx_room`), input left.
    rx_stalled: bool,
    /// Bytes inflated since the session began (the driver counts work).
    rx_produced: u64,
    /// The message last completed was compressed.
    rx_last_compressed: bool,
}

#[cfg(feature = "deflate")]
impl DeflateState {
    /// Whether a `len`-byte message is sent compressed. Empty messages
    /// never are: an empty uncompressed frame is 2 bytes where a compressed
    /// one is 3 (RFC 7692 §7.2.3.6), and every receiver accepts it.
    fn compresses(&self, len: usize) -> bool {
        len > 0 && len >= self.min_size
    }
}

/// What the frame bytes of a data message depend on when a session sends
/// it, beyond its payload and type: sessions with equal encodings send
/// identical bytes for it, so a broadcast can encode (and compress) a
/// message once per encoding with [`WsSession::encode_shared`]. From
/// [`WsSession::shared_encoding`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SharedEncoding(EncodingKind);

impl SharedEncoding {
    /// The compressor settings (level, window bits) this encoding needs, if
    /// it compresses (crate-internal: the driver picks a pooled one).
    #[cfg(feature = "deflate")]
    pub(crate) fn compressor_settings(&self) -> Option<(u32, u8)> {
        match self.0 {
            EncodingKind::Compressed { level, bits, .. } => Some((level, bits)),
            EncodingKind::Plain | EncodingKind::Fragmented { .. } => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum EncodingKind {
    /// One unmasked, uncompressed frame.
    Plain,
    /// Unmasked, uncompressed, split into frames of at most `max_frame`
    /// bytes (a message longer than one frame).
    Fragmented { max_frame: usize },
    /// Compressed from a fresh context (no context takeover) and framed
    /// in frames of at most `max_frame` bytes.
    #[cfg(feature = "deflate")]
    Compressed {
        level: u32,
        /// Effective window bits (8 runs as 9: the same bytes).
        bits: u8,
        max_frame: usize,
    },
}

/// One endpoint's complete WebSocket protocol state. See the module docs
/// for how to drive it.
pub struct WsSession {
    role: Role,
    config: WsConfig,
    state: State,
    /// RSV bits (as in the first header byte, mask 0x70) that negotiated
    /// extensions allow: 0x40 (RSV1) once permessage-deflate is enabled.
    rsv_allowed: u8,
    #[cfg(feature = "deflate")]
    deflate: Option<Box<DeflateState>>,
    /// The message being received is compressed (its first frame had RSV1).
    #[cfg(feature = "deflate")]
    msg_compressed: bool,
    /// Compressed payload bytes of that message so far.
    #[cfg(feature = "deflate")]
    msg_wire: u64,
    // Frame decoding.
    hdr: [u8; MAX_HEADER_LEN],
    hdr_len: usize,
    frame: Option<Frame>,
    ctrl: [u8; MAX_CONTROL_PAYLOAD],
    ctrl_len: usize,
    // Message assembly.
    msg: Vec<u8>,
    msg_kind: Option<MsgKind>,
    msg_frames: usize,
    /// Length of the prefix of `msg` known to be valid UTF-8; the at most 3
    /// bytes after it are an incomplete code point awaiting more input.
    utf8_ok: usize,
    frag_deadline: Option<Instant>,
    /// When the message being assembled began (its first frame's header).
    msg_started: Option<Instant>,
    /// When bytes last arrived (keepalive), once the timers are started.
    last_rx: Option<Instant>,
    /// When the last data message completed (idle timeout).
    last_message: Option<Instant>,
    /// A keepalive ping was sent at this instant and nothing arrived since.
    ping_sent: Option<Instant>,
    /// xorshift64 state for client mask keys. Not cryptographic: the client
    /// role exists for tests and benchmark load generators.
    rng: u64,
}

impl fmt::Debug for WsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsSession")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("message_len", &self.msg.len())
            .field("message_frames", &self.msg_frames)
            .field("deflate", &self.deflate_params())
            .finish_non_exhaustive()
    }
}

impl WsSession {
    /// A new open session (call after the HTTP upgrade handshake).
    pub fn new(role: Role, config: WsConfig) -> Self {
        let seed = RandomState::new().hash_one(0x5EED_u64) | 1;
        WsSession {
            role,
            config,
            state: State::Open,
            rsv_allowed: 0,
            #[cfg(feature = "deflate")]
            deflate: None,
            #[cfg(feature = "deflate")]
            msg_compressed: false,
            #[cfg(feature = "deflate")]
            msg_wire: 0,
            hdr: [0; MAX_HEADER_LEN],
            hdr_len: 0,
            frame: None,
            ctrl: [0; MAX_CONTROL_PAYLOAD],
            ctrl_len: 0,
            msg: Vec::new(),
            msg_kind: None,
            msg_frames: 0,
            utf8_ok: 0,
            frag_deadline: None,
            msg_started: None,
            last_rx: None,
            last_message: None,
            ping_sent: None,
            rng: seed,
        }
    }

    /// This session's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// This session's configuration.
    pub fn config(&self) -> &WsConfig {
        &self.config
    }

    /// Offers an allocation for assembling the next message, so a program
    /// that recycles the buffers of received messages allocates nothing per
    /// message. Taken (cleared) only when no message is being assembled and
    /// the session holds no allocation; otherwise handed back.
    pub fn offer_buffer(&mut self, mut buf: Vec<u8>) -> Option<Vec<u8>> {
        if self.msg.capacity() == 0 && self.msg_kind.is_none() {
            buf.clear();
            self.msg = buf;
            None
        } else {
            Some(buf)
        }
    }

    /// Takes back the message allocation while no message is being
    /// assembled, so an idle session holds none.
    pub fn take_idle_buffer(&mut self) -> Option<Vec<u8>> {
        (self.msg.capacity() > 0 && self.msg_kind.is_none()).then(|| std::mem::take(&mut self.msg))
    }

    /// Turns permessage-deflate (RFC 7692) on with the parameters the
    /// handshake agreed on; call it right after the handshake, before the
    /// first [`feed`](Self::feed) or send.
    ///
    /// Frames with RSV1 then carry compressed messages. The role picks the
    /// direction: a server compresses with the `server_*` parameters and
    /// inflates with the `client_*` ones, a client the reverse. We compress
    /// at `level` (0–9) every message of at least `min_size` bytes (never an
    /// empty one), with the negotiated window, and reset our context after
    /// every message when ours is `*_no_context_takeover`.
    ///
    /// Receiving, [`WsConfig::max_message_size`] limits the *inflated*
    /// size, enforced while inflating (a decompression bomb fails with
    /// 1009 after at most the limit was produced); invalid deflate data
    /// fails with 1007; UTF-8 of compressed text is checked as it inflates.
    ///
    /// Codecs are made when first needed; see
    /// [`offer_compressor`](Self::offer_compressor) and
    /// [`offer_inflater`](Self::offer_inflater) to lend pooled ones.
    #[cfg(feature = "deflate")]
    pub fn enable_deflate(&mut self, params: DeflateParams, level: u32, min_size: usize) {
        let (tx_bits, tx_reset, rx_reset) = match self.role {
            Role::Server => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            ),
            Role::Client => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            ),
        };
        self.rsv_allowed |= 0x40;
        self.deflate = Some(Box::new(DeflateState {
            params,
            level: level.min(9),
            min_size,
            tx_bits: tx_bits.clamp(8, 15),
            tx_reset,
            rx_reset,
            compressor: None,
            inflater: None,
            rx_busy: false,
            rx_limit: usize::MAX,
            rx_room: usize::MAX,
            rx_stalled: false,
            rx_produced: 0,
            rx_last_compressed: false,
        }));
    }

    /// Bounds inflating received messages beyond [`WsConfig::max_message_size`]
    /// (for a driver sharing a budget of inflated bytes between sessions):
    /// a compressed message inflating to more than `limit` bytes fails
    /// with 1009, and [`feed`](Self::feed) inflates at most `room` more
    /// bytes before it pauses, leaving the rest of the frame's input
    /// unconsumed (see [`inflate_stalled`](Self::inflate_stalled)). Both
    /// stay in force until set again; without deflate this does nothing.
    #[cfg(feature = "deflate")]
    pub fn set_inflate_bounds(&mut self, limit: usize, room: usize) {
        if let Some(d) = self.deflate.as_deref_mut() {
            d.rx_limit = limit;
            d.rx_room = room;
        }
    }

    /// Whether the last [`feed`](Self::feed) stopped inflating because the
    /// room given to [`set_inflate_bounds`](Self::set_inflate_bounds) ran
    /// out, with compressed input left to inflate.
    #[cfg(feature = "deflate")]
    pub fn inflate_stalled(&self) -> bool {
        self.deflate.as_ref().is_some_and(|d| d.rx_stalled)
    }

    /// Bytes inflated since the session began (received messages only).
    #[cfg(feature = "deflate")]
    pub fn inflated_total(&self) -> u64 {
        self.deflate.as_ref().map_or(0, |d| d.rx_produced)
    }

    /// Bytes of the compressed message being received that have been
    /// inflated so far (0 between messages or for an uncompressed one).
    #[cfg(feature = "deflate")]
    pub fn inflating_len(&self) -> usize {
        if self.msg_compressed {
            self.msg.len()
        } else {
            0
        }
    }

    /// Whether the data message [`feed`](Self::feed) returned last was
    /// compressed on the wire.
    #[cfg(feature = "deflate")]
    pub fn last_message_compressed(&self) -> bool {
        self.deflate.as_ref().is_some_and(|d| d.rx_last_compressed)
    }

    /// Drops the message being received, freeing its buffer (the
    /// connection under the session is gone; nothing more will arrive).
    pub fn discard_message(&mut self) {
        self.reset_message();
        self.frame = None;
        self.msg = Vec::new();
    }

    /// Fails the session because the driver could not give it room to
    /// inflate in time: a close with 1013 (try again later) goes to `out`,
    /// the partial message is dropped (its memory freed), and the returned
    /// event is [`Event::Error`] with [`ProtocolError::InflateBudgetExhausted`].
    pub fn fail_busy(&mut self, now: Instant, out: &mut Vec<u8>) -> Event {
        // (Not `discard_message`: `fail` resets the message itself.)
        let event = self.fail(ProtocolError::InflateBudgetExhausted, true, now, out);
        self.msg = Vec::new();
        event
    }

    /// The permessage-deflate parameters in effect, if enabled.
    pub fn deflate_params(&self) -> Option<DeflateParams> {
        #[cfg(feature = "deflate")]
        {
            self.deflate.as_ref().map(|d| d.params)
        }
        #[cfg(not(feature = "deflate"))]
        {
            None
        }
    }

    /// Lends a compressor. Taken (reset first, free if it is clean) only
    /// when deflate is enabled, the session holds none, and its level and
    /// window are the ones this session compresses with; otherwise handed
    /// back.
    #[cfg(feature = "deflate")]
    pub fn offer_compressor(&mut self, mut c: Compressor) -> Option<Compressor> {
        match self.deflate.as_deref_mut() {
            Some(d) if d.compressor.is_none() && c.fits(d.level, d.tx_bits) => {
                c.reset();
                d.compressor = Some(c);
                None
            }
            _ => Some(c),
        }
    }

    /// Gives the compressor back when it keeps no context between messages
    /// (no context takeover in our direction: it is reset after every
    /// message, so an idle session needs none). Never while context
    /// takeover is in effect.
    #[cfg(feature = "deflate")]
    pub fn take_idle_compressor(&mut self) -> Option<Compressor> {
        let d = self.deflate.as_deref_mut()?;
        if d.tx_reset {
            d.compressor.take()
        } else {
            None
        }
    }

    /// Lends an inflater. Taken (reset first, free if it is clean) only
    /// when deflate is enabled and the session holds none; any inflater
    /// fits (they all run with a 15-bit window, see [`Inflater::new`]).
    /// Otherwise handed back.
    #[cfg(feature = "deflate")]
    pub fn offer_inflater(&mut self, mut i: Inflater) -> Option<Inflater> {
        match self.deflate.as_deref_mut() {
            Some(d) if d.inflater.is_none() => {
                i.reset();
                d.inflater = Some(i);
                None
            }
            _ => Some(i),
        }
    }

    /// Gives the inflater back between messages when the peer keeps no
    /// context between them (it is reset after every message). Never while
    /// a compressed message is being inflated, nor when the peer takes over
    /// context.
    #[cfg(feature = "deflate")]
    pub fn take_idle_inflater(&mut self) -> Option<Inflater> {
        let d = self.deflate.as_deref_mut()?;
        if d.rx_reset && !d.rx_busy {
            d.inflater.take()
        } else {
            None
        }
    }

    /// Takes the compressor and the inflater out, whatever the context
    /// takeover, for a session that will neither send nor receive again
    /// (its connection is gone): a context-keeping session's codecs are
    /// hundreds of KiB that nothing could use any more. The partial
    /// message, if any, must have been discarded first.
    #[cfg(feature = "deflate")]
    pub fn release_codecs(&mut self) -> (Option<Compressor>, Option<Inflater>) {
        let Some(d) = self.deflate.as_deref_mut() else {
            return (None, None);
        };
        d.rx_busy = false;
        (d.compressor.take(), d.inflater.take())
    }

    /// Coarse state: open, closing (our close sent) or closed.
    pub fn state(&self) -> SessionState {
        match self.state {
            State::Open => SessionState::Open,
            State::CloseSent { .. } => SessionState::Closing,
            State::Closed => SessionState::Closed,
        }
    }

    /// Whether messages can still be sent.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// True once the WebSocket is finished (both closes exchanged, the peer's
    /// close answered, a fatal protocol error, or the close timeout passed):
    /// flush `out` and shut the TCP stream down.
    pub fn wants_shutdown(&self) -> bool {
        self.state == State::Closed
    }

    /// Starts the keepalive and idle timers at `now` (the driver calls this
    /// when the upgrade completes; otherwise they start with the first
    /// [`feed`](Self::feed)).
    pub fn start_timers(&mut self, now: Instant) {
        self.last_rx = Some(now);
        self.last_message = Some(now);
    }

    /// The earliest instant at which [`WsSession::on_timeout`] has work to
    /// do (fragment, keepalive, idle or close timeout), if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Open => [
                self.frag_deadline,
                self.message_deadline(),
                self.keepalive_deadline(),
                self.idle_deadline(),
            ]
            .into_iter()
            .flatten()
            .min(),
            State::CloseSent { deadline } => deadline,
            State::Closed => None,
        }
    }

    /// When the next keepalive ping is due, or the answer to the last one.
    fn keepalive_deadline(&self) -> Option<Instant> {
        let interval = self.config.keepalive_interval?;
        match self.ping_sent {
            Some(at) => at.checked_add(self.config.keepalive_timeout),
            None => self.last_rx?.checked_add(interval),
        }
    }

    /// When the message being assembled must be complete, from
    /// [`WsConfig::min_message_rate`].
    fn message_deadline(&self) -> Option<Instant> {
        let rate = self.config.min_message_rate;
        if rate == 0 {
            return None;
        }
        let allowance = Duration::from_secs(self.msg.len() as u64 / rate);
        self.msg_started?
            .checked_add(self.config.fragment_timeout?)?
            .checked_add(allowance)
    }

    fn idle_deadline(&self) -> Option<Instant> {
        self.last_message?.checked_add(self.config.idle_timeout?)
    }

    /// Handles expired deadlines. A fragment timeout fails the connection
    /// (close 1008 written to `out`, returns [`Event::Error`]); a due
    /// keepalive writes a ping to `out`; an unanswered one fails the
    /// connection at once (close 1001, [`wants_shutdown`](Self::wants_shutdown)
    /// becomes true: the peer is not there to answer); the idle timeout
    /// starts the closing handshake with 1001; a close timeout just makes
    /// [`WsSession::wants_shutdown`] true.
    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<Event> {
        match self.state {
            State::Open => {
                let due = |d: Option<Instant>| d.is_some_and(|d| now >= d);
                if due(self.frag_deadline) {
                    Some(self.fail(ProtocolError::FragmentTimeout, true, now, out))
                } else if due(self.message_deadline()) {
                    Some(self.fail(ProtocolError::MessageTooSlow, true, now, out))
                } else if due(self.keepalive_deadline()) {
                    if self.ping_sent.is_some() {
                        return Some(self.fail(ProtocolError::KeepaliveTimeout, false, now, out));
                    }
                    let mask = self.next_mask();
                    write_frame(out, true, Opcode::Ping, b"", mask);
                    self.ping_sent = Some(now);
                    None
                } else if due(self.idle_deadline()) {
                    Some(self.fail(ProtocolError::IdleTimeout, true, now, out))
                } else {
                    None
                }
            }
            State::CloseSent { deadline: Some(d) } if now >= d => {
                self.state = State::Closed;
                None
            }
            _ => None,
        }
    }

    /// Processes received bytes; see the module docs for the calling loop.
    /// Payload bytes are unmasked in place in `input`. Any split of the byte
    /// stream is accepted; partial headers and payloads are consumed and
    /// buffered internally. Returns early only to deliver an event.
    pub fn feed(&mut self, input: &mut [u8], now: Instant, out: &mut Vec<u8>) -> Feed {
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_deref_mut() {
            d.rx_stalled = false;
        }
        if !input.is_empty() {
            // The peer is there: any byte answers a keepalive ping.
            self.last_rx = Some(now);
            self.ping_sent = None;
            self.last_message.get_or_insert(now);
        }
        if let Some(event) = self.on_timeout(now, out) {
            return Feed {
                consumed: 0,
                event: Some(event),
            };
        }
        let mut pos = 0;
        while pos < input.len() {
            if self.state == State::Closed {
                // Nothing may follow the peer's close; after a fatal error the
                // stream is not trusted. Discard.
                return Feed {
                    consumed: input.len(),
                    event: None,
                };
            }
            let Some(rest) = input.get_mut(pos..) else {
                break;
            };
            let (used, event) = if self.frame.is_some() {
                self.read_payload(rest, now, out)
            } else {
                self.read_header(rest, now, out)
            };
            pos += used;
            if event.is_some() {
                return Feed {
                    consumed: pos,
                    event,
                };
            }
            if used == 0 {
                break;
            }
        }
        Feed {
            consumed: pos,
            event: None,
        }
    }

    // --- receiving -------------------------------------------------------

    fn fill_header(&mut self, input: &[u8], upto: usize) -> usize {
        let take = upto.saturating_sub(self.hdr_len).min(input.len());
        match (
            self.hdr.get_mut(self.hdr_len..self.hdr_len + take),
            input.get(..take),
        ) {
            (Some(dst), Some(src)) => {
                dst.copy_from_slice(src);
                self.hdr_len += take;
                take
            }
            _ => 0,
        }
    }

    fn read_header(
        &mut self,
        input: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> (usize, Option<Event>) {
        let mut used = 0;
        if self.hdr_len < 2 {
            used = self.fill_header(input, 2);
            if self.hdr_len < 2 {
                return (used, None);
            }
            // Validate as soon as the first two bytes are known (fail fast).
            if let Err(err) = self.check_first_bytes(self.hdr[0], self.hdr[1]) {
                self.hdr_len = 0;
                return (used, Some(self.fail(err, false, now, out)));
            }
        }
        let total = header_len(self.hdr[1]);
        used += self.fill_header(input.get(used..).unwrap_or_default(), total);
        if self.hdr_len < total {
            return (used, None);
        }
        self.hdr_len = 0;
        (used, self.begin_frame(now, out))
    }

    /// Whether the frame starting at `input` would fail the connection on
    /// its first two header bytes (reserved bits or opcode, masking, control
    /// frame rules, continuation order). Only answers at a frame boundary of
    /// an open session with two bytes available; otherwise `false`.
    ///
    /// Lets a driver hand the program the messages that arrived before a bad
    /// frame — so it can answer them — before the close goes out.
    pub fn next_frame_fails(&self, input: &[u8]) -> bool {
        match input {
            [b0, b1, ..]
                if self.frame.is_none() && self.hdr_len == 0 && self.state == State::Open =>
            {
                self.check_first_bytes(*b0, *b1).is_err()
            }
            _ => false,
        }
    }

    fn check_first_bytes(&self, b0: u8, b1: u8) -> Result<(), ProtocolError> {
        let rsv = b0 & 0x70;
        if rsv & !self.rsv_allowed != 0 {
            return Err(ProtocolError::ReservedBits(rsv >> 4));
        }
        let opcode = Opcode::from_u8(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0F))?;
        if rsv & 0x40 != 0 && (opcode.is_control() || opcode == Opcode::Continuation) {
            // RFC 7692 §6.1: RSV1 marks a compressed message on its first
            // frame only.
            return Err(ProtocolError::MisplacedCompressionBit);
        }
        let masked = b1 & 0x80 != 0;
        match (self.role, masked) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if opcode.is_control() {
            if b0 & 0x80 == 0 {
                return Err(ProtocolError::FragmentedControl);
            }
            if usize::from(b1 & 0x7F) > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlTooLong);
            }
        } else if self.state == State::Open {
            match (opcode, self.msg_kind.is_some()) {
                (Opcode::Continuation, false) => return Err(ProtocolError::UnexpectedContinuation),
                (Opcode::Text | Opcode::Binary, true) => {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The full header is in `self.hdr`: set up payload reception.
    fn begin_frame(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<Event> {
        let h = self.hdr;
        let fin = h[0] & 0x80 != 0;
        let Some(opcode) = Opcode::from_u8(h[0] & 0x0F) else {
            return Some(self.fail(ProtocolError::ReservedOpcode(h[0] & 0x0F), false, now, out));
        };
        let (len, mask_at) = match h[1] & 0x7F {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => (
                u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
                10,
            ),
            n => (u64::from(n), 2),
        };
        if len >> 63 != 0 {
            return Some(self.fail(ProtocolError::InvalidLength, false, now, out));
        }
        let mask = if h[1] & 0x80 != 0 {
            let mut key = [0u8; 4];
            if let Some(src) = h.get(mask_at..mask_at + 4) {
                key.copy_from_slice(src);
            }
            Some(key)
        } else {
            None
        };
        let frame = Frame {
            fin,
            opcode,
            mask,
            remaining: len,
            phase: 0,
        };
        let mut event = None;
        if opcode.is_control() {
            self.ctrl_len = 0;
        } else if self.state == State::Open {
            let compressed = h[0] & 0x40 != 0;
            if let Err(err) = self.start_data_frame(fin, opcode, compressed, len, now) {
                // Framing is intact: skip this frame's payload, await the
                // peer's close.
                event = Some(self.fail(err, true, now, out));
            }
        }
        if len == 0 {
            if event.is_none() {
                event = self.finish_frame(frame, now, out);
            }
        } else {
            self.frame = Some(frame);
        }
        event
    }

    /// Bookkeeping and limits for a data frame header (state is Open).
    /// `compressed`: RSV1, which `check_first_bytes` allowed only on a
    /// message's first frame of a session with permessage-deflate.
    fn start_data_frame(
        &mut self,
        fin: bool,
        opcode: Opcode,
        compressed: bool,
        len: u64,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        #[cfg(not(feature = "deflate"))]
        let _ = compressed;
        match opcode {
            Opcode::Text | Opcode::Binary => {
                #[cfg(feature = "deflate")]
                {
                    self.msg_compressed = compressed;
                    self.msg_wire = 0;
                    if let Some(d) = self.deflate.as_deref_mut() {
                        d.rx_last_compressed = false;
                    }
                }
                self.msg.clear();
                self.utf8_ok = 0;
                self.msg_frames = 1;
                self.msg_started = Some(now);
                self.msg_kind = Some(if opcode == Opcode::Text {
                    MsgKind::Text
                } else {
                    MsgKind::Binary
                });
            }
            _ => {
                if self.frag_deadline.is_some_and(|d| now >= d) {
                    return Err(ProtocolError::FragmentTimeout);
                }
                self.msg_frames = self.msg_frames.saturating_add(1);
                if self.msg_frames > self.config.max_fragments {
                    return Err(ProtocolError::TooManyFragments);
                }
            }
        }
        #[cfg(feature = "deflate")]
        let check_plain = if self.msg_compressed {
            // The limit applies to the inflated size, checked while
            // inflating. The compressed bytes are bounded too, so a stream
            // of empty blocks cannot go on for ever: at most what any zlib
            // compresses `max_message_size` bytes into, plus a flush per
            // frame.
            self.msg_wire = self.msg_wire.saturating_add(len);
            let frames = self.msg_frames as u64;
            let cap = (deflate_bound(self.config.max_message_size) as u64)
                .saturating_add(frames.saturating_mul(8));
            if self.msg_wire > cap {
                return Err(ProtocolError::MessageTooBig);
            }
            false
        } else {
            true
        };
        #[cfg(not(feature = "deflate"))]
        let check_plain = true;
        if check_plain {
            if (self.msg.len() as u64).saturating_add(len) > self.config.max_message_size as u64 {
                return Err(ProtocolError::MessageTooBig);
            }
            // One allocation for the frame instead of a doubling chain as
            // its payload arrives in pieces; capped so an
            // announced-but-unsent frame reserves little.
            self.msg.reserve(len.min(1 << 20) as usize);
        }
        if !fin || opcode == Opcode::Continuation {
            self.frag_deadline = self.fragment_deadline(now);
        }
        Ok(())
    }

    fn fragment_deadline(&self, now: Instant) -> Option<Instant> {
        self.config
            .fragment_timeout
            .and_then(|t| now.checked_add(t))
    }

    fn read_payload(
        &mut self,
        input: &mut [u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> (usize, Option<Event>) {
        let Some(mut frame) = self.frame else {
            return (0, None);
        };
        let n = usize::try_from(frame.remaining).map_or(input.len(), |r| r.min(input.len()));
        let Some(chunk) = input.get_mut(..n) else {
            return (0, None);
        };
        let phase = frame.phase;
        frame.remaining -= n as u64;
        frame.phase = (phase + n) % 4;
        self.frame = (frame.remaining > 0).then_some(frame);

        if frame.opcode.is_control() {
            if let Some(m) = frame.mask {
                apply_mask(chunk, m, phase);
            }
            if let Some(dst) = self.ctrl.get_mut(self.ctrl_len..self.ctrl_len + n) {
                dst.copy_from_slice(chunk);
                self.ctrl_len += n;
            }
        } else if self.state == State::Open {
            #[cfg(feature = "deflate")]
            if self.msg_compressed {
                if let Some(m) = frame.mask {
                    apply_mask(chunk, m, phase);
                }
                match self.inflate(chunk, false) {
                    Err(err) => return (n, Some(self.fail(err, true, now, out))),
                    Ok(used) if used < n => {
                        // Paused for want of room: the rest of the chunk
                        // stays in the caller's buffer, masked again (the
                        // mask is its own inverse) so it is read as new.
                        if let (Some(m), Some(rest)) = (frame.mask, chunk.get_mut(used..)) {
                            apply_mask(rest, m, phase + used);
                        }
                        let mut back = frame;
                        back.remaining += (n - used) as u64;
                        back.phase = (phase + used) % 4;
                        self.frame = Some(back);
                        if let Some(d) = self.deflate.as_deref_mut() {
                            d.rx_stalled = true;
                        }
                        if self.msg_kind == Some(MsgKind::Text) {
                            if let Err(err) = self.check_utf8() {
                                return (used, Some(self.fail(err, true, now, out)));
                            }
                        }
                        return (used, None);
                    }
                    Ok(_) => {}
                }
            } else {
                extend_unmasked(&mut self.msg, chunk, frame.mask, phase);
            }
            #[cfg(not(feature = "deflate"))]
            extend_unmasked(&mut self.msg, chunk, frame.mask, phase);
            if self.msg_kind == Some(MsgKind::Text) {
                if let Err(err) = self.check_utf8() {
                    return (n, Some(self.fail(err, true, now, out)));
                }
            }
            if self.frag_deadline.is_some() {
                self.frag_deadline = self.fragment_deadline(now);
            }
        } // else: data after our close frame is discarded.

        if frame.remaining > 0 {
            (n, None)
        } else {
            (n, self.finish_frame(frame, now, out))
        }
    }

    /// Validates the newly appended part of a text message. An incomplete
    /// code point at the end (at most 3 bytes) stays pending.
    fn check_utf8(&mut self) -> Result<(), ProtocolError> {
        let tail = self.msg.get(self.utf8_ok..).unwrap_or_default();
        match simdutf8::compat::from_utf8(tail) {
            Ok(_) => {
                self.utf8_ok = self.msg.len();
                Ok(())
            }
            Err(e) if e.error_len().is_none() => {
                self.utf8_ok += e.valid_up_to();
                Ok(())
            }
            Err(_) => Err(ProtocolError::InvalidUtf8),
        }
    }

    fn finish_frame(&mut self, frame: Frame, now: Instant, out: &mut Vec<u8>) -> Option<Event> {
        let len = std::mem::take(&mut self.ctrl_len);
        match frame.opcode {
            Opcode::Ping => {
                if self.state == State::Open {
                    let mask = self.next_mask();
                    write_frame(
                        out,
                        true,
                        Opcode::Pong,
                        self.ctrl.get(..len).unwrap_or_default(),
                        mask,
                    );
                }
                None
            }
            Opcode::Pong => Some(Event::Pong(
                self.ctrl.get(..len).unwrap_or_default().to_vec(),
            )),
            Opcode::Close => self.on_close_frame(len, now, out),
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                if frame.fin && self.state == State::Open {
                    #[cfg(feature = "deflate")]
                    if self.msg_compressed {
                        if let Err(err) = self.finish_inflating() {
                            return Some(self.fail(err, true, now, out));
                        }
                    }
                    self.complete_message(now, out)
                } else {
                    None
                }
            }
        }
    }

    fn complete_message(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<Event> {
        let kind = self.msg_kind.take();
        self.frag_deadline = None;
        self.msg_started = None;
        self.msg_frames = 0;
        let validated = std::mem::take(&mut self.utf8_ok);
        let data = std::mem::take(&mut self.msg);
        let kind = kind?;
        self.last_message = Some(now);
        match kind {
            MsgKind::Binary => Some(Event::Message(Message::Binary(data))),
            MsgKind::Text => {
                if validated != data.len() {
                    // Ends inside a code point.
                    return Some(self.fail(ProtocolError::InvalidUtf8, true, now, out));
                }
                Some(Event::Message(Message::Text(into_validated_string(data))))
            }
        }
    }

    fn on_close_frame(&mut self, len: usize, now: Instant, out: &mut Vec<u8>) -> Option<Event> {
        let parsed = parse_close_payload(self.ctrl.get(..len).unwrap_or_default());
        match self.state {
            State::Open => match parsed {
                Ok((code, reason)) => {
                    let mask = self.next_mask();
                    write_close_frame(out, code, "", mask);
                    self.reset_message();
                    self.state = State::Closed;
                    Some(Event::Close { code, reason })
                }
                // The peer is done sending: no need to wait for anything.
                Err(err) => Some(self.fail(err, false, now, out)),
            },
            State::CloseSent { .. } => {
                self.state = State::Closed;
                Some(match parsed {
                    Ok((code, reason)) => Event::Close { code, reason },
                    Err(err) => Event::Error(err),
                })
            }
            State::Closed => None,
        }
    }

    /// Inflates a piece of the compressed message being received (or the
    /// tail) into `msg`, making or using the session's inflater.
    /// Returns how much of `input` was used: all of it unless inflating
    /// paused at the room the driver gave (never for the tail, which adds
    /// at most a few hundred bytes).
    #[cfg(feature = "deflate")]
    fn inflate(&mut self, input: &[u8], tail: bool) -> Result<usize, ProtocolError> {
        let Some(d) = self.deflate.as_deref_mut() else {
            return Err(ProtocolError::InvalidCompressedData);
        };
        let inflater = d.inflater.get_or_insert_with(|| Inflater::new(15));
        d.rx_busy = true;
        let limit = self.config.max_message_size.min(d.rx_limit);
        let stop_at = match self.msg.len().saturating_add(d.rx_room) {
            // Room up to the limit: one byte more proves the message too
            // big (1009), where a pause would wait for room that no other
            // message can free.
            _ if tail => usize::MAX,
            stop if stop >= limit => usize::MAX,
            stop => stop,
        };
        let before = self.msg.len();
        let result = inflater.inflate_into(input, &mut self.msg, limit, stop_at, tail);
        let produced = self.msg.len().saturating_sub(before);
        d.rx_produced = d.rx_produced.saturating_add(produced as u64);
        d.rx_room = d.rx_room.saturating_sub(produced);
        result.map_err(|e| match e {
            InflateError::TooBig => ProtocolError::MessageTooBig,
            InflateError::Invalid => ProtocolError::InvalidCompressedData,
        })
    }

    /// The last frame of a compressed message arrived: inflate the tail
    /// (RFC 7692 §7.2.2), check the UTF-8 it may have completed, and reset
    /// the inflater when the peer keeps no context.
    #[cfg(feature = "deflate")]
    fn finish_inflating(&mut self) -> Result<(), ProtocolError> {
        self.inflate(&DEFLATE_TAIL, true)?;
        if self.msg_kind == Some(MsgKind::Text) {
            self.check_utf8()?;
        }
        self.msg_compressed = false;
        if let Some(d) = self.deflate.as_deref_mut() {
            d.rx_busy = false;
            d.rx_last_compressed = true;
            if d.rx_reset {
                if let Some(i) = d.inflater.as_mut() {
                    i.reset();
                }
            }
        }
        Ok(())
    }

    fn reset_message(&mut self) {
        #[cfg(feature = "deflate")]
        {
            self.msg_compressed = false;
            self.msg_wire = 0;
            if let Some(d) = self.deflate.as_deref_mut() {
                if std::mem::take(&mut d.rx_busy) {
                    // A message broke off mid-stream: never leave (or lend)
                    // an inflater in the middle of one.
                    if let Some(i) = d.inflater.as_mut() {
                        i.reset();
                    }
                }
            }
        }
        self.msg.clear();
        self.msg_kind = None;
        self.msg_frames = 0;
        self.utf8_ok = 0;
        self.frag_deadline = None;
        self.msg_started = None;
    }

    /// Fails the connection: writes a close frame with the error's code (if
    /// we have not sent one yet) and moves to `CloseSent` (framing intact:
    /// keep parsing so the peer's close can be read) or `Closed`.
    fn fail(
        &mut self,
        err: ProtocolError,
        framing_intact: bool,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Event {
        self.reset_message();
        match self.state {
            State::Open => {
                let mask = self.next_mask();
                write_close_frame(out, Some(err.close_code()), err.close_reason(), mask);
                self.state = if framing_intact {
                    State::CloseSent {
                        deadline: now.checked_add(self.config.close_timeout),
                    }
                } else {
                    State::Closed
                };
            }
            State::CloseSent { .. } => {
                if !framing_intact {
                    self.state = State::Closed;
                }
            }
            State::Closed => {}
        }
        Event::Error(err)
    }

    // --- sending ---------------------------------------------------------

    /// A fresh mask key in the client role, `None` in the server role.
    fn next_mask(&mut self) -> Option<[u8; 4]> {
        match self.role {
            Role::Server => None,
            Role::Client => {
                // xorshift64: fine for tests and load generation, not for
                // browser-grade unpredictability.
                let mut x = self.rng;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                self.rng = x;
                Some((x as u32).to_ne_bytes())
            }
        }
    }

    fn send_data(
        &mut self,
        opcode: Opcode,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        #[cfg(feature = "deflate")]
        if self.compresses(data.len()) && self.send_compressed(opcode, data, out) {
            return Ok(());
        }
        let max = self.config.max_frame_size.max(1);
        write_plain_message(out, opcode, data, max, || self.next_mask());
        Ok(())
    }

    /// Whether a `len`-byte message would be sent compressed.
    #[cfg(feature = "deflate")]
    fn compresses(&self, len: usize) -> bool {
        self.deflate.as_ref().is_some_and(|d| d.compresses(len))
    }

    /// Writes `data` as a compressed message; `false` (nothing written) if
    /// the compressor failed, or if we keep no context and compressing did
    /// not make it smaller, and the message goes uncompressed instead.
    #[cfg(feature = "deflate")]
    fn send_compressed(&mut self, opcode: Opcode, data: &[u8], out: &mut Vec<u8>) -> bool {
        let max = self.config.max_frame_size.max(1);
        let masked = self.role == Role::Client;
        let Some(d) = self.deflate.as_deref_mut() else {
            return false;
        };
        let (level, bits) = (d.level, d.tx_bits);
        let c = d
            .compressor
            .get_or_insert_with(|| Compressor::new(level, bits));
        let start = out.len();
        let layout = compress_after_gap(c, data, max, masked, out);
        if d.tx_reset || layout.is_none() {
            // No context takeover, or a failed stream: start afresh. (The
            // peer's context is unaffected by an uncompressed message.)
            c.reset();
        }
        let Some((gap, clen)) = layout else {
            return false;
        };
        if d.tx_reset && clen >= data.len() {
            // Incompressible (random, already compressed): the plain frame
            // is smaller, so it goes plain, RSV1 clear (RFC 7692 §6: a
            // message may be sent uncompressed). Only without context
            // takeover: with it, the peer's inflater must see every byte
            // our compressor saw, and it never sees a plain message, so the
            // next compressed message could point back into bytes the
            // peer does not have.
            out.truncate(start);
            return false;
        }
        frame_compressed(out, start, gap, clen, opcode, max, masked, || {
            self.next_mask()
        });
        true
    }

    /// At most how many bytes a data message with a `len`-byte payload takes
    /// on the wire when this session sends it (its frames' headers
    /// included), so a sender can check a buffer bound before writing.
    /// For a compressed message: the deflate bound (deflate may expand
    /// incompressible data slightly) in frames.
    pub fn message_wire_len(&self, len: usize) -> usize {
        #[cfg(feature = "deflate")]
        let len = if self.compresses(len) {
            deflate_bound(len)
        } else {
            len
        };
        let frames = len.div_ceil(self.config.max_frame_size.max(1)).max(1);
        len.saturating_add(frames.saturating_mul(MAX_HEADER_LEN))
    }

    /// Whether a data message can be sent now: `Err(Closed)` once our close
    /// frame went out (or the session ended).
    pub fn can_send(&self) -> Result<(), SendError> {
        if self.state == State::Open {
            Ok(())
        } else {
            Err(SendError::Closed)
        }
    }

    /// How this session would encode a `len`-byte data message, if the
    /// bytes depend only on that encoding (not on this session's state):
    /// the server role, and either an uncompressed message (one frame, or
    /// frames of [`WsConfig::max_frame_size`]) or a compressed message with
    /// no context takeover in our direction. `None` otherwise (client
    /// masks, a compressor that keeps context).
    pub fn shared_encoding(&self, len: usize) -> Option<SharedEncoding> {
        if self.role != Role::Server {
            return None;
        }
        let max = self.config.max_frame_size.max(1);
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_deref() {
            if d.compresses(len) {
                return d
                    .tx_reset
                    .then_some(SharedEncoding(EncodingKind::Compressed {
                        level: d.level,
                        bits: d.tx_bits.max(9),
                        max_frame: max,
                    }));
            }
        }
        Some(SharedEncoding(if len <= max {
            EncodingKind::Plain
        } else {
            EncodingKind::Fragmented { max_frame: max }
        }))
    }

    /// Writes to `out` exactly the bytes [`send_text`](Self::send_text)
    /// (`text`) or [`send_binary`](Self::send_binary) would write on any
    /// session whose [`shared_encoding`](Self::shared_encoding) for
    /// `payload.len()` is `enc`: encode a broadcast once per encoding and
    /// copy the bytes to each connection. A compressed encoding uses
    /// `compressor`, making one (into the `Option`) if it is empty or does
    /// not fit, and leaves it reset.
    pub fn encode_shared(
        enc: SharedEncoding,
        text: bool,
        payload: &[u8],
        compressor: &mut Option<Compressor>,
        out: &mut Vec<u8>,
    ) {
        let opcode = if text { Opcode::Text } else { Opcode::Binary };
        match enc.0 {
            EncodingKind::Plain => {
                #[cfg(not(feature = "deflate"))]
                let _ = compressor;
                write_frame(out, true, opcode, payload, None);
            }
            EncodingKind::Fragmented { max_frame } => {
                #[cfg(not(feature = "deflate"))]
                let _ = compressor;
                write_plain_message(out, opcode, payload, max_frame, || None);
            }
            #[cfg(feature = "deflate")]
            EncodingKind::Compressed {
                level,
                bits,
                max_frame,
            } => {
                if !compressor.as_ref().is_some_and(|c| c.fits(level, bits)) {
                    *compressor = Some(Compressor::new(level, bits));
                }
                let Some(c) = compressor.as_mut() else {
                    return;
                };
                c.reset();
                let start = out.len();
                let layout = compress_after_gap(c, payload, max_frame, false, out);
                c.reset();
                match layout {
                    // No context is kept in this encoding, so an
                    // incompressible message goes plain, as `send_compressed`
                    // sends it.
                    Some((gap, clen)) if clen < payload.len() => {
                        frame_compressed(out, start, gap, clen, opcode, max_frame, false, || None)
                    }
                    _ => {
                        out.truncate(start);
                        write_plain_message(out, opcode, payload, max_frame, || None)
                    }
                }
            }
        }
    }

    /// Writes a text message to `out`, split into frames of at most
    /// [`WsConfig::max_frame_size`] bytes.
    pub fn send_text(&mut self, text: &str, out: &mut Vec<u8>) -> Result<(), SendError> {
        self.send_data(Opcode::Text, text.as_bytes(), out)
    }

    /// [`send_text`](Self::send_text) for text already known to be UTF-8
    /// (crate-internal: the driver's vectored path works on bytes).
    pub(crate) fn send_text_bytes(
        &mut self,
        text: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        self.send_data(Opcode::Text, text, out)
    }

    /// Writes only the header of an unfragmented, unmasked data frame of
    /// `len` bytes, for a driver that sends the payload from the caller's
    /// buffer itself (a vectored write: no copy into `out`). Returns
    /// `Ok(false)`, writing nothing, where that does not apply: the client
    /// role (its payloads must be masked) or a payload longer than
    /// [`WsConfig::max_frame_size`] (which [`send_binary`](Self::send_binary)
    /// splits), or a message that would be compressed. Fails like the
    /// `send_*` methods once closing.
    pub fn write_data_header(
        &mut self,
        text: bool,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<bool, SendError> {
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        if self.role == Role::Client || len > self.config.max_frame_size.max(1) {
            return Ok(false);
        }
        #[cfg(feature = "deflate")]
        if self.compresses(len) {
            return Ok(false);
        }
        let opcode = if text { Opcode::Text } else { Opcode::Binary };
        write_frame_header(out, true, opcode, None, len as u64);
        Ok(true)
    }

    /// Writes a binary message to `out`, split like [`WsSession::send_text`].
    pub fn send_binary(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.send_data(Opcode::Binary, data, out)
    }

    /// Writes a message of either kind to `out`.
    pub fn send(&mut self, message: &Message, out: &mut Vec<u8>) -> Result<(), SendError> {
        match message {
            Message::Text(s) => self.send_text(s, out),
            Message::Binary(b) => self.send_binary(b, out),
        }
    }

    fn send_control(
        &mut self,
        opcode: Opcode,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong(payload.len()));
        }
        let mask = self.next_mask();
        write_frame(out, true, opcode, payload, mask);
        Ok(())
    }

    /// Writes a ping (payload at most 125 bytes) to `out`.
    pub fn send_ping(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.send_control(Opcode::Ping, payload, out)
    }

    /// Writes an unsolicited pong (payload at most 125 bytes) to `out`.
    pub fn send_pong(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.send_control(Opcode::Pong, payload, out)
    }

    /// Starts the closing handshake: writes a close frame with `code` and
    /// `reason` (truncated to 123 bytes on a char boundary) to `out`. From
    /// now on nothing can be sent and incoming data frames are discarded;
    /// the session closes when the peer's close arrives or at
    /// `now + close_timeout`.
    pub fn close(
        &mut self,
        code: CloseCode,
        reason: &str,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        let mask = self.next_mask();
        write_close_frame(out, Some(code), reason, mask);
        self.reset_message();
        self.state = State::CloseSent {
            deadline: now.checked_add(self.config.close_timeout),
        };
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

    /// Deterministic xorshift PRNG for tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
        fn text(&mut self, n_chars: usize) -> String {
            const CHARS: [char; 7] = ['a', 'z', ' ', 'é', '€', '𝄞', 'ß'];
            (0..n_chars)
                .map(|_| CHARS[self.below(CHARS.len())])
                .collect()
        }
    }

    /// A frame with raw first byte `b0` (FIN/RSV/opcode), optional mask.
    fn raw(b0: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        write_frame(&mut v, true, Opcode::Text, payload, mask);
        v[0] = b0;
        v
    }

    /// A masked (client → server) frame.
    fn cf(b0: u8, payload: &[u8]) -> Vec<u8> {
        raw(b0, Some(MASK), payload)
    }

    fn server() -> WsSession {
        WsSession::new(Role::Server, WsConfig::default())
    }

    /// Drives `feed` like a driver would, returning all events.
    fn drive(s: &mut WsSession, input: &[u8], now: Instant, out: &mut Vec<u8>) -> Vec<Event> {
        let mut buf = input.to_vec();
        let mut pos = 0;
        let mut events = Vec::new();
        for _ in 0..1_000_000 {
            let f = s.feed(&mut buf[pos..], now, out);
            assert!(f.consumed <= buf.len() - pos);
            pos += f.consumed;
            match f.event {
                Some(e) => events.push(e),
                None => {
                    assert_eq!(pos, buf.len(), "no event but input left");
                    if f.consumed == 0 {
                        return events;
                    }
                }
            }
        }
        panic!("feed loop did not terminate");
    }

    /// Feeds `input` in the given piece sizes, emulating a driver's read
    /// buffer that keeps unconsumed bytes.
    fn drive_split(
        s: &mut WsSession,
        input: &[u8],
        cuts: &[usize],
        now: Instant,
    ) -> (Vec<Event>, Vec<u8>) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        let mut rbuf: Vec<u8> = Vec::new();
        let mut start = 0;
        let mut pieces: Vec<&[u8]> = Vec::new();
        for &c in cuts {
            pieces.push(&input[start..c]);
            start = c;
        }
        pieces.push(&input[start..]);
        for piece in pieces {
            rbuf.extend_from_slice(piece);
            loop {
                let f = s.feed(&mut rbuf, now, &mut out);
                rbuf.drain(..f.consumed);
                let done = f.consumed == 0 && f.event.is_none();
                events.extend(f.event);
                if done {
                    break;
                }
            }
        }
        (events, out)
    }

    /// Decodes everything in `bytes` with a fresh session of `role`.
    fn decode_as(role: Role, bytes: &[u8]) -> Vec<Event> {
        let mut s = WsSession::new(role, WsConfig::default());
        let mut out = Vec::new();
        drive(&mut s, bytes, Instant::now(), &mut out)
    }

    /// Code of the single unmasked close frame at the start of `out`.
    fn close_code_of(out: &[u8]) -> Option<u16> {
        assert_eq!(out[0], 0x88, "not a close frame: {out:?}");
        let len = usize::from(out[1] & 0x7F);
        assert!(len != 1);
        (len >= 2).then(|| u16::from_be_bytes([out[2], out[3]]))
    }

    fn expect_error(stream: &[u8], err: ProtocolError, code: u16) {
        let mut s = server();
        let mut out = Vec::new();
        let ev = drive(&mut s, stream, Instant::now(), &mut out);
        assert_eq!(ev.last(), Some(&Event::Error(err)), "events: {ev:?}");
        assert_eq!(close_code_of(&out), Some(code));
        assert_eq!(err.close_code().get(), code);
        assert!(!s.is_open());
    }

    // --- helpers -----------------------------------------------------------

    #[test]
    fn accept_key_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn client_key_validation() {
        assert!(is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_client_key(""));
        assert!(!is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ")); // unpadded
        assert!(!is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ==="));
        assert!(!is_valid_client_key("dGhlIHNhbXBsZSBub25j!Q=="));
        assert!(!is_valid_client_key("aGVsbG8gd29ybGQgaGVsbG8=")); // 17 bytes
        assert!(!is_valid_client_key("AAAAAAAAAAAAAAAAAAAAAAAA")); // 18 bytes
        assert!(is_valid_client_key("AAAAAAAAAAAAAAAAAAAAAA=="));
    }

    #[test]
    fn mask_matches_reference() {
        let masks = [MASK, [0, 0, 0, 0], [0xFF, 1, 0x80, 0x7F]];
        for mask in masks {
            for offset in (0..9).chain([1_000_003, usize::MAX]) {
                for len in 0..70 {
                    let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                    let mut fast = data.clone();
                    apply_mask(&mut fast, mask, offset);
                    let reference: Vec<u8> = data
                        .iter()
                        .enumerate()
                        .map(|(i, b)| b ^ mask[(offset % 4 + i) % 4])
                        .collect();
                    assert_eq!(fast, reference, "offset {offset} len {len}");
                    apply_mask(&mut fast, mask, offset);
                    assert_eq!(fast, data);
                }
            }
        }
    }

    #[test]
    fn mask_paths_agree_on_every_length_and_phase() {
        // Both the run-time-selected path (AVX2 on CPUs that have it) and the
        // portable one, against the byte-by-byte definition.
        let mut rng = Rng(7);
        // Under Miri (scripts/miri.sh) each length costs about a second:
        // there, lengths on both sides of AVX2_MIN (128) with every remainder
        // mod 32.
        let lengths: Vec<usize> = if cfg!(miri) {
            (0..40).chain(120..170).collect()
        } else {
            (0..300).chain([4095, 4096, 4097, 16_384, 65_537]).collect()
        };
        for len in lengths {
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            for offset in 0..8 {
                let mask = (rng.next() as u32).to_le_bytes();
                let reference: Vec<u8> = data
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ mask[(offset + i) % 4])
                    .collect();
                let mut selected = data.clone();
                apply_mask(&mut selected, mask, offset);
                assert_eq!(selected, reference, "len {len} offset {offset}");
                let mut m = mask;
                m.rotate_left(offset % 4);
                let pattern: [u8; 32] = std::array::from_fn(|i| m[i % 4]);
                let mut portable = data.clone();
                xor_blocks(&mut portable, &pattern);
                assert_eq!(portable, reference, "portable, len {len} offset {offset}");
                // Copying while unmasking, after bytes already there.
                let mut appended = vec![0xA5; offset];
                extend_unmasked(&mut appended, &data, Some(mask), offset);
                assert_eq!(appended[..offset], vec![0xA5; offset][..]);
                assert_eq!(
                    appended[offset..],
                    reference[..],
                    "appended, len {len} offset {offset}"
                );
                // (Below AVX2_MIN bytes this is the portable `xor_into`.)
            }
        }
        #[cfg(target_arch = "x86_64")]
        eprintln!(
            "avx2 on this CPU: {}",
            std::arch::is_x86_feature_detected!("avx2")
        );
    }

    #[test]
    fn mask_resumes_mid_payload() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, MASK, 0);
        for split in 0..100 {
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(split);
            apply_mask(a, MASK, 0);
            apply_mask(b, MASK, split);
            assert_eq!(parts, whole);
        }
    }

    #[test]
    fn header_length_encodings() {
        let cases: [(u64, &[u8]); 5] = [
            (0, &[0x82, 0x00]),
            (125, &[0x82, 125]),
            (126, &[0x82, 126, 0, 126]),
            (65535, &[0x82, 126, 0xFF, 0xFF]),
            (65536, &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ];
        for (len, expect) in cases {
            let mut v = Vec::new();
            write_frame_header(&mut v, true, Opcode::Binary, None, len);
            assert_eq!(v, expect);
        }
        let mut v = Vec::new();
        write_frame_header(&mut v, false, Opcode::Text, Some([1, 2, 3, 4]), 5);
        assert_eq!(v, [0x01, 0x85, 1, 2, 3, 4]);
    }

    #[test]
    fn close_code_validity() {
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            assert_eq!(CloseCode::new(c).map(CloseCode::get), Some(c));
            assert_eq!(CloseCode::try_from(c).map(u16::from), Ok(c));
        }
        for c in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert_eq!(CloseCode::new(c), None);
            assert_eq!(CloseCode::try_from(c), Err(InvalidCloseCode(c)));
        }
        assert_eq!(CloseCode::INVALID_PAYLOAD.get(), 1007);
        assert_eq!(CloseCode::MANDATORY_EXTENSION.get(), 1010);
        assert_eq!(CloseCode::INTERNAL_ERROR.to_string(), "1011");
    }

    #[test]
    fn opcode_parsing() {
        for v in 0..16u8 {
            match Opcode::from_u8(v) {
                Some(op) => {
                    assert_eq!(op.as_u8(), v);
                    assert_eq!(op.is_control(), v >= 8);
                }
                None => assert!(matches!(v, 3..=7 | 0xB..=0xF)),
            }
        }
    }

    #[test]
    fn configs() {
        let d = WsConfig::default();
        assert_eq!(d.max_message_size, 16 << 20);
        assert_eq!(d.max_fragments, 131_072);
        assert_eq!(d.fragment_timeout, Some(Duration::from_secs(30)));
        assert_eq!(d.close_timeout, Duration::from_secs(5));
        let e = WsConfig::embedded();
        assert_eq!((e.max_message_size, e.max_fragments), (4096, 16));
        assert_eq!(e.fragment_timeout, Some(Duration::from_secs(5)));
    }

    // --- decoding ----------------------------------------------------------

    #[test]
    fn simple_messages() {
        let mut stream = cf(0x81, "héllo".as_bytes());
        stream.extend(cf(0x82, &[0, 1, 2, 255]));
        stream.extend(cf(0x81, b""));
        stream.extend(cf(0x82, b""));
        let ev = decode_as(Role::Server, &stream);
        assert_eq!(
            ev,
            [
                Event::Message(Message::Text("héllo".into())),
                Event::Message(Message::Binary(vec![0, 1, 2, 255])),
                Event::Message(Message::Text(String::new())),
                Event::Message(Message::Binary(Vec::new())),
            ]
        );
    }

    #[test]
    fn rfc_example_frames() {
        // RFC 6455 §5.7: unmasked "Hello" to a client, masked to a server.
        let ev = decode_as(Role::Client, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(ev, [Event::Message(Message::Text("Hello".into()))]);
        let masked = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let ev = decode_as(Role::Server, &masked);
        assert_eq!(ev, [Event::Message(Message::Text("Hello".into()))]);
        // Fragmented unmasked text.
        let ev = decode_as(
            Role::Client,
            &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f],
        );
        assert_eq!(ev, [Event::Message(Message::Text("Hello".into()))]);
    }

    #[test]
    fn non_minimal_lengths_are_accepted() {
        let payload = b"abcde";
        let mut masked = payload.to_vec();
        apply_mask(&mut masked, MASK, 0);
        let mut s16 = vec![0x82, 0x80 | 126, 0, 5];
        s16.extend_from_slice(&MASK);
        s16.extend_from_slice(&masked);
        let mut s64 = vec![0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 5];
        s64.extend_from_slice(&MASK);
        s64.extend_from_slice(&masked);
        for s in [s16, s64] {
            assert_eq!(
                decode_as(Role::Server, &s),
                [Event::Message(Message::Binary(payload.to_vec()))]
            );
        }
    }

    #[test]
    fn ping_answered_not_surfaced() {
        let mut s = server();
        let mut out = Vec::new();
        let ev = drive(
            &mut s,
            &cf(0x89, b"are you there"),
            Instant::now(),
            &mut out,
        );
        assert!(ev.is_empty());
        let mut expect = Vec::new();
        write_frame(&mut expect, true, Opcode::Pong, b"are you there", None);
        assert_eq!(out, expect);
        // Empty ping.
        out.clear();
        assert!(drive(&mut s, &cf(0x89, b""), Instant::now(), &mut out).is_empty());
        assert_eq!(out, [0x8A, 0x00]);
    }

    #[test]
    fn pong_surfaced() {
        let ev = decode_as(Role::Server, &cf(0x8A, b"xyz"));
        assert_eq!(ev, [Event::Pong(b"xyz".to_vec())]);
    }

    #[test]
    fn offered_buffers_are_used_between_messages_only() {
        let mut s = server();
        let mut out = Vec::new();
        let now = Instant::now();
        // Between messages: taken, cleared, and the message is built in it.
        let mut stale = Vec::with_capacity(64);
        stale.extend_from_slice(b"stale bytes");
        assert!(s.offer_buffer(stale).is_none());
        let ev = drive(&mut s, &cf(0x82, b"new"), now, &mut out);
        let Event::Message(Message::Binary(data)) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(
            (data.as_slice(), data.capacity() >= 64),
            (&b"new"[..], true)
        );
        // Inside a fragmented message: refused, and the idle buffer is kept.
        drive(&mut s, &cf(0x01, b"Hel"), now, &mut out);
        assert!(s.offer_buffer(Vec::with_capacity(8)).is_some());
        assert!(s.take_idle_buffer().is_none());
        let ev = drive(&mut s, &cf(0x80, b"lo"), now, &mut out);
        assert_eq!(ev, [Event::Message(Message::Text("Hello".into()))]);
        // After it completes the session holds no allocation to give back.
        assert!(s.take_idle_buffer().is_none());
    }

    #[test]
    fn fragmented_with_ping_in_middle() {
        let mut stream = cf(0x01, b"Hel");
        stream.extend(cf(0x89, b"p1"));
        stream.extend(cf(0x00, b"lo, "));
        stream.extend(cf(0x8A, b"q"));
        stream.extend(cf(0x89, b"p2"));
        stream.extend(cf(0x80, b"world"));
        let mut s = server();
        let mut out = Vec::new();
        let ev = drive(&mut s, &stream, Instant::now(), &mut out);
        assert_eq!(
            ev,
            [
                Event::Pong(b"q".to_vec()),
                Event::Message(Message::Text("Hello, world".into())),
            ]
        );
        assert_eq!(
            decode_as(Role::Client, &out),
            [Event::Pong(b"p1".to_vec()), Event::Pong(b"p2".to_vec())]
        );
    }

    #[test]
    fn message_only_when_complete_across_feeds() {
        let mut s = server();
        let mut out = Vec::new();
        let now = Instant::now();
        assert!(drive(&mut s, &cf(0x02, &[1, 2]), now, &mut out).is_empty());
        assert!(drive(&mut s, &cf(0x00, &[3]), now, &mut out).is_empty());
        let ev = drive(&mut s, &cf(0x80, &[4]), now, &mut out);
        assert_eq!(ev, [Event::Message(Message::Binary(vec![1, 2, 3, 4]))]);
        assert!(out.is_empty());
    }

    #[test]
    fn large_frame_is_streamed() {
        let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let stream = cf(0x82, &payload);
        let mut s = server();
        let mut out = Vec::new();
        let now = Instant::now();
        let mut buf = stream.clone();
        let mut events = Vec::new();
        for chunk in buf.chunks_mut(4096) {
            let f = s.feed(chunk, now, &mut out);
            // Every byte is consumed right away: nothing piles up.
            assert_eq!(f.consumed, chunk.len());
            events.extend(f.event);
        }
        assert_eq!(events, [Event::Message(Message::Binary(payload))]);
    }

    #[test]
    fn utf8_split_across_fragments() {
        // "€" = E2 82 AC split 1|2 and 2|1; "𝄞" = F0 9D 84 9E split 1|1|1|1.
        let euro = "€".as_bytes();
        let clef = "𝄞".as_bytes();
        let mut stream = cf(0x01, &[b'a', euro[0]]);
        stream.extend(cf(0x80, &[euro[1], euro[2], b'b']));
        stream.extend(cf(0x01, &euro[..2]));
        stream.extend(cf(0x80, &euro[2..]));
        stream.extend(cf(0x01, &clef[..1]));
        stream.extend(cf(0x00, &clef[1..2]));
        stream.extend(cf(0x89, b"ping"));
        stream.extend(cf(0x00, &clef[2..3]));
        stream.extend(cf(0x80, &clef[3..]));
        assert_eq!(
            decode_as(Role::Server, &stream),
            [
                Event::Message(Message::Text("a€b".into())),
                Event::Message(Message::Text("€".into())),
                Event::Message(Message::Text("𝄞".into())),
            ]
        );
    }

    #[test]
    fn utf8_invalid_split_across_fragments() {
        // Lead byte of "€" followed by a non-continuation byte in the next frame.
        let mut stream = cf(0x01, &[b'a', 0xE2, 0x82]);
        stream.extend(cf(0x80, b"z"));
        expect_error(&stream, ProtocolError::InvalidUtf8, 1007);
        // Message ends inside a code point.
        let mut stream = cf(0x01, b"ok");
        stream.extend(cf(0x80, &[0xF0, 0x9D]));
        expect_error(&stream, ProtocolError::InvalidUtf8, 1007);
        // Single unfragmented frame ending inside a code point.
        expect_error(&cf(0x81, &[b'x', 0xC3]), ProtocolError::InvalidUtf8, 1007);
        // Surrogates and overlongs.
        expect_error(
            &cf(0x81, &[0xED, 0xA0, 0x80]),
            ProtocolError::InvalidUtf8,
            1007,
        );
        expect_error(&cf(0x81, &[0xC0, 0xAF]), ProtocolError::InvalidUtf8, 1007);
        expect_error(
            &cf(0x81, &[0xF4, 0x90, 0x80, 0x80]),
            ProtocolError::InvalidUtf8,
            1007,
        );
    }

    #[test]
    fn utf8_fails_fast_inside_frame() {
        let mut payload = vec![b'a'; 1_000_000];
        payload[10] = 0xFF;
        let stream = cf(0x81, &payload);
        let mut s = server();
        let mut out = Vec::new();
        let mut part = stream[..14 + 100].to_vec(); // header (2+8+4) + 100 bytes
        let f = s.feed(&mut part, Instant::now(), &mut out);
        assert_eq!(f.event, Some(Event::Error(ProtocolError::InvalidUtf8)));
        assert_eq!(close_code_of(&out), Some(1007));
        // Incomplete sequence at a chunk end is not an error yet.
        let mut s = server();
        out.clear();
        let mut payload = "x€".as_bytes().to_vec();
        payload.extend(vec![b'y'; 1000]);
        let stream = cf(0x81, &payload);
        let mut part = stream[..4 + 4 + 3].to_vec(); // header + "x" + E2 82
        let f = s.feed(&mut part, Instant::now(), &mut out);
        assert_eq!((f.consumed, f.event), (part.len(), None));
        assert!(out.is_empty());
    }

    #[test]
    fn error_after_payload_fail_waits_for_peer_close() {
        let mut payload = vec![b'a'; 300];
        payload[5] = 0xFF;
        let mut stream = cf(0x81, &payload);
        stream.extend(cf(0x82, b"ignored"));
        stream.extend(cf(0x88, &1002u16.to_be_bytes()));
        let mut s = server();
        let mut out = Vec::new();
        let ev = drive(&mut s, &stream, Instant::now(), &mut out);
        assert_eq!(
            ev,
            [
                Event::Error(ProtocolError::InvalidUtf8),
                Event::Close {
                    code: Some(CloseCode::PROTOCOL_ERROR),
                    reason: String::new()
                },
            ]
        );
        assert!(s.wants_shutdown());
        assert_eq!(out, [0x88, 2, 0x03, 0xEF]); // exactly one close (1007)
    }

    // --- protocol errors -----------------------------------------------------

    #[test]
    fn server_rejects_unmasked() {
        expect_error(&raw(0x81, None, b"hi"), ProtocolError::UnmaskedFrame, 1002);
    }

    #[test]
    fn client_rejects_masked() {
        let mut s = WsSession::new(Role::Client, WsConfig::default());
        let mut out = Vec::new();
        let ev = drive(&mut s, &cf(0x81, b"hi"), Instant::now(), &mut out);
        assert_eq!(ev, [Event::Error(ProtocolError::MaskedFrame)]);
        // The client's close is masked; decode it as a server would.
        assert_eq!(
            decode_as(Role::Server, &out),
            [Event::Close {
                code: Some(CloseCode::PROTOCOL_ERROR),
                reason: String::new()
            }]
        );
        assert!(s.wants_shutdown());
    }

    #[test]
    fn rsv_bits_rejected() {
        for (bit, shifted) in [(0x40, 4), (0x20, 2), (0x10, 1), (0x70, 7)] {
            expect_error(
                &cf(0x81 | bit, b"x"),
                ProtocolError::ReservedBits(shifted),
                1002,
            );
            expect_error(
                &cf(0x89 | bit, b""),
                ProtocolError::ReservedBits(shifted),
                1002,
            );
        }
    }

    #[test]
    fn reserved_opcodes_rejected() {
        for op in (3..=7).chain(0xB..=0xF) {
            expect_error(&cf(0x80 | op, b""), ProtocolError::ReservedOpcode(op), 1002);
            expect_error(
                &cf(0x80 | op, b"abc"),
                ProtocolError::ReservedOpcode(op),
                1002,
            );
        }
    }

    #[test]
    fn continuation_errors() {
        expect_error(&cf(0x80, b"x"), ProtocolError::UnexpectedContinuation, 1002);
        expect_error(&cf(0x00, b"x"), ProtocolError::UnexpectedContinuation, 1002);
        let mut s = cf(0x01, b"a");
        s.extend(cf(0x81, b"b"));
        expect_error(&s, ProtocolError::ExpectedContinuation, 1002);
        let mut s = cf(0x02, b"a");
        s.extend(cf(0x02, b"b"));
        expect_error(&s, ProtocolError::ExpectedContinuation, 1002);
    }

    #[test]
    fn control_frame_errors() {
        // 126-byte ping (detected from the first two bytes).
        expect_error(&cf(0x89, &[0; 126]), ProtocolError::ControlTooLong, 1002);
        expect_error(&cf(0x88, &[0; 200]), ProtocolError::ControlTooLong, 1002);
        // Non-FIN ping/close/pong.
        expect_error(&cf(0x09, b"x"), ProtocolError::FragmentedControl, 1002);
        expect_error(&cf(0x08, b""), ProtocolError::FragmentedControl, 1002);
        expect_error(&cf(0x0A, b""), ProtocolError::FragmentedControl, 1002);
        // 125 is fine.
        let mut s = server();
        let mut out = Vec::new();
        assert!(drive(&mut s, &cf(0x89, &[7; 125]), Instant::now(), &mut out).is_empty());
        assert_eq!(out.len(), 2 + 125);
    }

    #[test]
    fn length_top_bit_rejected() {
        let mut stream = vec![0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1];
        stream.extend_from_slice(&MASK);
        expect_error(&stream, ProtocolError::InvalidLength, 1002);
    }

    #[test]
    fn invalid_close_payloads() {
        expect_error(&cf(0x88, &[3]), ProtocolError::InvalidClosePayload, 1002);
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            expect_error(
                &cf(0x88, &code.to_be_bytes()),
                ProtocolError::InvalidCloseCode(code),
                1002,
            );
        }
        let mut p = 1000u16.to_be_bytes().to_vec();
        p.extend_from_slice(&[b'o', b'k', 0xFF]);
        expect_error(&cf(0x88, &p), ProtocolError::InvalidCloseReason, 1002);
        // After an invalid close the session is closed immediately.
        let mut s = server();
        let mut out = Vec::new();
        drive(&mut s, &cf(0x88, &[3]), Instant::now(), &mut out);
        assert!(s.wants_shutdown());
    }

    // --- limits ----------------------------------------------------------------

    #[test]
    fn message_too_big() {
        let cfg = WsConfig::embedded();
        let mut s = WsSession::new(Role::Server, cfg.clone());
        let mut out = Vec::new();
        let ok = vec![b'a'; 4096];
        let ev = drive(&mut s, &cf(0x81, &ok), Instant::now(), &mut out);
        assert_eq!(ev.len(), 1);
        // One frame too big: detected from the header, before the payload.
        let mut s = WsSession::new(Role::Server, cfg.clone());
        let big = cf(0x82, &[0; 4097]);
        let f = s.feed(&mut big[..8].to_vec(), Instant::now(), &mut out);
        assert_eq!(f.event, Some(Event::Error(ProtocolError::MessageTooBig)));
        assert_eq!(close_code_of(&out), Some(1009));
        // Too big across fragments.
        let mut stream = cf(0x02, &[0; 3000]);
        stream.extend(cf(0x80, &[0; 1097]));
        let mut s = WsSession::new(Role::Server, cfg);
        out.clear();
        let ev = drive(&mut s, &stream, Instant::now(), &mut out);
        assert_eq!(ev, [Event::Error(ProtocolError::MessageTooBig)]);
        assert_eq!(close_code_of(&out), Some(1009));
    }

    #[test]
    fn limit_closes_say_why_and_malformed_input_gets_no_reason() {
        // The whole close frame: the code, then the reason text.
        let close_payload = |out: &[u8]| -> Vec<u8> {
            assert_eq!(out[0], 0x88, "not a close frame: {out:?}");
            out[2..2 + usize::from(out[1] & 0x7F)].to_vec()
        };
        let mut s = WsSession::new(Role::Server, WsConfig::embedded());
        let mut out = Vec::new();
        let big = cf(0x82, &[0; 4097]);
        s.feed(&mut big[..8].to_vec(), Instant::now(), &mut out);
        assert_eq!(close_payload(&out), b"\x03\xf1message too big");
        let mut s = server();
        out.clear();
        let now = Instant::now();
        let ev = s.fail_busy(now, &mut out);
        assert_eq!(ev, Event::Error(ProtocolError::InflateBudgetExhausted));
        assert_eq!(close_payload(&out), b"\x03\xf5server busy, try again later");
        // A reserved opcode: code only.
        let mut s = server();
        out.clear();
        drive(&mut s, &cf(0x83, b""), Instant::now(), &mut out);
        assert_eq!(close_payload(&out), b"\x03\xea");
        // Every reason fits a control frame.
        for err in [
            ProtocolError::MessageTooBig,
            ProtocolError::TooManyFragments,
            ProtocolError::FragmentTimeout,
            ProtocolError::MessageTooSlow,
            ProtocolError::KeepaliveTimeout,
            ProtocolError::IdleTimeout,
            ProtocolError::InflateBudgetExhausted,
        ] {
            assert!(!err.close_reason().is_empty() && err.close_reason().len() <= 123);
        }
    }

    #[test]
    fn too_many_fragments() {
        let cfg = WsConfig::embedded();
        let build = |n: usize| {
            let mut stream = cf(0x01, b"a");
            for _ in 0..n - 2 {
                stream.extend(cf(0x00, b"b"));
            }
            stream.extend(cf(0x80, b"c"));
            stream
        };
        let mut s = WsSession::new(Role::Server, cfg.clone());
        let mut out = Vec::new();
        let ev = drive(&mut s, &build(16), Instant::now(), &mut out);
        assert_eq!(
            ev,
            [Event::Message(Message::Text(format!(
                "a{}c",
                "b".repeat(14)
            )))]
        );
        let mut s = WsSession::new(Role::Server, cfg);
        let ev = drive(&mut s, &build(17), Instant::now(), &mut out);
        assert_eq!(ev, [Event::Error(ProtocolError::TooManyFragments)]);
        assert_eq!(close_code_of(&out), Some(1008));
    }

    #[test]
    fn fragment_timeout_via_on_timeout() {
        let t0 = Instant::now();
        let mut s = server();
        let mut out = Vec::new();
        assert_eq!(s.next_deadline(), None);
        drive(&mut s, &cf(0x01, b"part"), t0, &mut out);
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(30)));
        // A continuation refreshes the deadline; a ping does not.
        let t1 = t0 + Duration::from_secs(20);
        drive(&mut s, &cf(0x00, b"more"), t1, &mut out);
        drive(
            &mut s,
            &cf(0x89, b""),
            t1 + Duration::from_secs(5),
            &mut out,
        );
        let d = t1 + Duration::from_secs(30);
        assert_eq!(s.next_deadline(), Some(d));
        out.clear();
        assert_eq!(s.on_timeout(d - Duration::from_millis(1), &mut out), None);
        assert!(out.is_empty());
        assert_eq!(
            s.on_timeout(d, &mut out),
            Some(Event::Error(ProtocolError::FragmentTimeout))
        );
        assert_eq!(close_code_of(&out), Some(1008));
        // Now waiting for the peer's close, with the close timeout armed.
        assert_eq!(s.state(), SessionState::Closing);
        assert_eq!(s.next_deadline(), Some(d + Duration::from_secs(5)));
    }

    #[test]
    fn fragment_timeout_via_feed_and_embedded() {
        let t0 = Instant::now();
        let mut s = WsSession::new(Role::Server, WsConfig::embedded());
        let mut out = Vec::new();
        drive(&mut s, &cf(0x01, b"part"), t0, &mut out);
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(5)));
        let ev = drive(
            &mut s,
            &cf(0x80, b"late"),
            t0 + Duration::from_secs(6),
            &mut out,
        );
        assert_eq!(ev, [Event::Error(ProtocolError::FragmentTimeout)]);
        assert_eq!(close_code_of(&out), Some(1008));
        // Unfragmented messages never arm the timer.
        let mut s = server();
        drive(&mut s, &cf(0x81, b"whole"), t0, &mut out);
        assert_eq!(s.next_deadline(), None);
        // Completing the message disarms it.
        let mut s = server();
        drive(&mut s, &cf(0x01, b"a"), t0, &mut out);
        drive(&mut s, &cf(0x80, b"b"), t0, &mut out);
        assert_eq!(s.next_deadline(), None);
        // Disabled timeout.
        let cfg = WsConfig {
            fragment_timeout: None,
            ..WsConfig::default()
        };
        let mut s = WsSession::new(Role::Server, cfg);
        drive(&mut s, &cf(0x01, b"a"), t0, &mut out);
        assert_eq!(s.next_deadline(), None);
    }

    // --- close handshake ---------------------------------------------------------

    #[test]
    fn peer_initiated_close_is_echoed() {
        for code in [1000u16, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
            let mut p = code.to_be_bytes().to_vec();
            p.extend_from_slice("bye ☺".as_bytes());
            let mut s = server();
            let mut out = Vec::new();
            let ev = drive(&mut s, &cf(0x88, &p), Instant::now(), &mut out);
            assert_eq!(
                ev,
                [Event::Close {
                    code: CloseCode::new(code),
                    reason: "bye ☺".into()
                }]
            );
            assert_eq!(out, [0x88, 2, (code >> 8) as u8, code as u8]);
            assert!(s.wants_shutdown());
            assert_eq!(s.send_text("x", &mut out), Err(SendError::Closed));
        }
        // Empty close → empty close reply.
        let mut s = server();
        let mut out = Vec::new();
        let ev = drive(&mut s, &cf(0x88, b""), Instant::now(), &mut out);
        assert_eq!(
            ev,
            [Event::Close {
                code: None,
                reason: String::new()
            }]
        );
        assert_eq!(out, [0x88, 0]);
        // Anything after the close is discarded.
        let ev = drive(&mut s, &cf(0x81, b"late"), Instant::now(), &mut out);
        assert!(ev.is_empty());
        assert_eq!(out, [0x88, 0]);
    }

    #[test]
    fn close_interrupts_fragmented_message() {
        let mut stream = cf(0x01, b"half");
        stream.extend(cf(0x88, &1001u16.to_be_bytes()));
        let ev = decode_as(Role::Server, &stream);
        assert_eq!(
            ev,
            [Event::Close {
                code: Some(CloseCode::GOING_AWAY),
                reason: String::new()
            }]
        );
    }

    #[test]
    fn locally_initiated_close() {
        let t0 = Instant::now();
        let mut s = server();
        let mut out = Vec::new();
        s.close(CloseCode::GOING_AWAY, "restart", t0, &mut out)
            .unwrap();
        let mut expect = vec![0x88, 9, 0x03, 0xE9];
        expect.extend_from_slice(b"restart");
        assert_eq!(out, expect);
        assert_eq!(s.state(), SessionState::Closing);
        assert!(!s.wants_shutdown());
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(5)));
        // Nothing more can be sent.
        out.clear();
        assert_eq!(s.send_text("x", &mut out), Err(SendError::Closed));
        assert_eq!(s.send_binary(b"x", &mut out), Err(SendError::Closed));
        assert_eq!(s.send_ping(b"x", &mut out), Err(SendError::Closed));
        assert_eq!(s.send_pong(b"x", &mut out), Err(SendError::Closed));
        assert_eq!(
            s.close(CloseCode::NORMAL, "", t0, &mut out),
            Err(SendError::Closed)
        );
        // Data frames (even fragmented or invalid UTF-8) are ignored; pings not answered.
        let mut stream = cf(0x81, b"ignored");
        stream.extend(cf(0x01, &[0xFF]));
        stream.extend(cf(0x89, b"p"));
        stream.extend(cf(0x80, b"x"));
        stream.extend(cf(0x88, &1000u16.to_be_bytes()));
        let ev = drive(&mut s, &stream, t0, &mut out);
        assert_eq!(
            ev,
            [Event::Close {
                code: Some(CloseCode::NORMAL),
                reason: String::new()
            }]
        );
        assert!(out.is_empty());
        assert!(s.wants_shutdown());
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn close_timeout() {
        let t0 = Instant::now();
        let mut s = server();
        let mut out = Vec::new();
        s.close(CloseCode::NORMAL, "", t0, &mut out).unwrap();
        assert_eq!(s.on_timeout(t0 + Duration::from_secs(4), &mut out), None);
        assert!(!s.wants_shutdown());
        assert_eq!(s.on_timeout(t0 + Duration::from_secs(5), &mut out), None);
        assert!(s.wants_shutdown());
        assert_eq!(s.next_deadline(), None);
        // feed also notices an expired close timeout.
        let mut s = server();
        s.close(CloseCode::NORMAL, "", t0, &mut out).unwrap();
        let f = s.feed(&mut cf(0x81, b"x"), t0 + Duration::from_secs(6), &mut out);
        assert_eq!(f.event, None);
        assert!(s.wants_shutdown());
    }

    #[test]
    fn close_handshake_between_two_sessions() {
        let t0 = Instant::now();
        let mut client = WsSession::new(Role::Client, WsConfig::default());
        let mut server = server();
        let (mut c_out, mut s_out) = (Vec::new(), Vec::new());
        client
            .close(CloseCode::NORMAL, "done", t0, &mut c_out)
            .unwrap();
        let ev = drive(&mut server, &c_out, t0, &mut s_out);
        assert_eq!(
            ev,
            [Event::Close {
                code: Some(CloseCode::NORMAL),
                reason: "done".into()
            }]
        );
        assert!(server.wants_shutdown());
        c_out.clear();
        let ev = drive(&mut client, &s_out, t0, &mut c_out);
        assert_eq!(
            ev,
            [Event::Close {
                code: Some(CloseCode::NORMAL),
                reason: String::new()
            }]
        );
        assert!(client.wants_shutdown());
        assert!(c_out.is_empty());
    }

    #[test]
    fn close_reason_truncation() {
        let mut out = Vec::new();
        let mut s = server();
        let reason = "é".repeat(70); // 140 bytes; 123 would split a char
        s.close(CloseCode::NORMAL, &reason, Instant::now(), &mut out)
            .unwrap();
        assert_eq!(usize::from(out[1]), 2 + 122);
        let ev = decode_as(Role::Client, &out);
        assert_eq!(
            ev,
            [Event::Close {
                code: Some(CloseCode::NORMAL),
                reason: "é".repeat(61)
            }]
        );
        let mut out = Vec::new();
        let mut s = server();
        s.close(
            CloseCode::NORMAL,
            &"a".repeat(300),
            Instant::now(),
            &mut out,
        )
        .unwrap();
        assert_eq!(usize::from(out[1]), 125);
        assert_eq!(truncate_reason("𝄞𝄞"), "𝄞𝄞");
        let r = format!("{}𝄞", "a".repeat(121));
        assert_eq!(truncate_reason(&r), "a".repeat(121));
    }

    // --- sending ------------------------------------------------------------------

    #[test]
    fn control_payload_limit_on_send() {
        let mut s = server();
        let mut out = Vec::new();
        assert_eq!(
            s.send_ping(&[0; 126], &mut out),
            Err(SendError::ControlTooLong(126))
        );
        assert_eq!(
            s.send_pong(&[0; 200], &mut out),
            Err(SendError::ControlTooLong(200))
        );
        assert!(out.is_empty());
        s.send_ping(&[1; 125], &mut out).unwrap();
        s.send_pong(b"", &mut out).unwrap();
        let ev = decode_as(Role::Client, &out);
        assert_eq!(ev, [Event::Pong(Vec::new())]);
    }

    #[test]
    fn server_frames_split_by_max_frame_size() {
        let cfg = WsConfig {
            max_frame_size: 10,
            ..WsConfig::default()
        };
        let mut s = WsSession::new(Role::Server, cfg);
        let mut out = Vec::new();
        s.send_binary(&[9; 25], &mut out).unwrap();
        // 3 frames: 10 + 10 + 5, opcodes BIN, CONT, CONT+FIN.
        assert_eq!(out.len(), 3 * 2 + 25);
        assert_eq!(out[0], 0x02);
        assert_eq!(out[12], 0x00);
        assert_eq!(out[24], 0x80);
        assert_eq!(
            decode_as(Role::Client, &out),
            [Event::Message(Message::Binary(vec![9; 25]))]
        );
        out.clear();
        s.send_text("", &mut out).unwrap();
        assert_eq!(out, [0x81, 0]);
    }

    #[test]
    fn client_encode_server_decode_round_trip() {
        let mut rng = Rng(42);
        for max_frame in [1, 3, 7, 64, 1000, 1 << 20] {
            let cfg = WsConfig {
                max_frame_size: max_frame,
                ..WsConfig::default()
            };
            let mut client = WsSession::new(Role::Client, cfg);
            let mut wire = Vec::new();
            let mut expect = Vec::new();
            for i in 0..20 {
                let m = if i % 2 == 0 {
                    Message::Text({
                        let n = rng.below(300);
                        rng.text(n)
                    })
                } else {
                    Message::Binary({
                        let n = rng.below(3000);
                        rng.bytes(n)
                    })
                };
                client.send(&m, &mut wire).unwrap();
                expect.push(Event::Message(m));
            }
            client.send_ping(b"hello", &mut wire).unwrap();
            let mut server = server();
            let mut s_out = Vec::new();
            assert_eq!(
                drive(&mut server, &wire, Instant::now(), &mut s_out),
                expect
            );
            // The pong goes back to the client, which surfaces it.
            let mut c_out = Vec::new();
            let ev = drive(&mut client, &s_out, Instant::now(), &mut c_out);
            assert_eq!(ev, [Event::Pong(b"hello".to_vec())]);
        }
    }

    #[test]
    fn a_long_plain_message_has_a_shared_fragmented_encoding() {
        let config = WsConfig {
            max_frame_size: 100,
            ..WsConfig::default()
        };
        let mut s = WsSession::new(Role::Server, config);
        let mut compressor = None;
        for len in [0, 99, 100, 101, 1000, 1001] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let enc = s.shared_encoding(len).expect("server role, no compression");
            let mut sent = Vec::new();
            s.send_binary(&data, &mut sent).unwrap();
            let mut shared = Vec::new();
            WsSession::encode_shared(enc, false, &data, &mut compressor, &mut shared);
            assert_eq!(shared, sent, "len {len}");
        }
        assert_ne!(s.shared_encoding(100), s.shared_encoding(101));
    }

    #[test]
    fn client_frames_are_masked() {
        let mut c = WsSession::new(Role::Client, WsConfig::default());
        let mut out = Vec::new();
        c.send_text("Hello", &mut out).unwrap();
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1], 0x85);
        let mut payload = out[6..].to_vec();
        let key = [out[2], out[3], out[4], out[5]];
        apply_mask(&mut payload, key, 0);
        assert_eq!(payload, b"Hello");
    }

    // --- stream splitting -----------------------------------------------------------

    /// A random mixed stream of masked frames and the events it must produce.
    fn random_stream(rng: &mut Rng, n_msgs: usize) -> (Vec<u8>, Vec<Event>) {
        let mut stream = Vec::new();
        let mut events = Vec::new();
        for _ in 0..n_msgs {
            let text = rng.below(2) == 0;
            let payload = if text {
                {
                    let n = rng.below(200);
                    rng.text(n)
                }
                .into_bytes()
            } else {
                {
                    let n = rng.below(2000);
                    rng.bytes(n)
                }
            };
            let n_frames = 1 + rng.below(5);
            let mut cuts: Vec<usize> = (0..n_frames - 1)
                .map(|_| rng.below(payload.len() + 1))
                .collect();
            cuts.sort_unstable();
            cuts.push(payload.len());
            let mut start = 0;
            for (i, &end) in cuts.iter().enumerate() {
                let op = match (i, text) {
                    (0, true) => Opcode::Text,
                    (0, false) => Opcode::Binary,
                    _ => Opcode::Continuation,
                };
                let mask = (rng.next() as u32).to_ne_bytes();
                // A control frame before each data frame: between messages
                // or between fragments. Its pong event precedes the message.
                match rng.below(6) {
                    0 => {
                        let p = {
                            let n = rng.below(126);
                            rng.bytes(n)
                        };
                        write_frame(&mut stream, true, Opcode::Ping, &p, Some(mask));
                    }
                    1 => {
                        let p = {
                            let n = rng.below(20);
                            rng.bytes(n)
                        };
                        write_frame(&mut stream, true, Opcode::Pong, &p, Some(mask));
                        events.push(Event::Pong(p));
                    }
                    _ => {}
                }
                write_frame(
                    &mut stream,
                    i + 1 == cuts.len(),
                    op,
                    &payload[start..end],
                    Some(mask),
                );
                start = end;
            }
            events.push(Event::Message(if text {
                Message::Text(String::from_utf8(payload).unwrap())
            } else {
                Message::Binary(payload)
            }));
        }
        stream.extend(cf(0x88, &1000u16.to_be_bytes()));
        events.push(Event::Close {
            code: Some(CloseCode::NORMAL),
            reason: String::new(),
        });
        (stream, events)
    }

    #[test]
    fn one_byte_at_a_time_equals_whole() {
        let mut rng = Rng(7);
        let (stream, expect) = random_stream(&mut rng, 30);
        let now = Instant::now();
        let mut whole = server();
        let mut whole_out = Vec::new();
        let ev = drive(&mut whole, &stream, now, &mut whole_out);
        assert_eq!(ev, expect);
        let mut bytewise = server();
        let mut out = Vec::new();
        let mut events = Vec::new();
        for &b in &stream {
            let mut one = [b];
            let f = bytewise.feed(&mut one, now, &mut out);
            assert_eq!(f.consumed, 1);
            events.extend(f.event);
        }
        assert_eq!(events, expect);
        assert_eq!(out, whole_out);
        assert!(bytewise.wants_shutdown());
    }

    #[test]
    fn random_splits_of_random_streams() {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let now = Instant::now();
        for _ in 0..60 {
            let (stream, expect) = {
                let n = 1 + rng.below(15);
                random_stream(&mut rng, n)
            };
            let mut reference = server();
            let mut ref_out = Vec::new();
            assert_eq!(drive(&mut reference, &stream, now, &mut ref_out), expect);
            for _ in 0..5 {
                let n_cuts = rng.below(stream.len() / 2 + 1);
                let mut cuts: Vec<usize> =
                    (0..n_cuts).map(|_| rng.below(stream.len() + 1)).collect();
                cuts.sort_unstable();
                let mut s = server();
                let (events, out) = drive_split(&mut s, &stream, &cuts, now);
                assert_eq!(events, expect);
                assert_eq!(out, ref_out);
            }
        }
    }

    #[test]
    fn garbage_never_panics_and_terminates() {
        let mut rng = Rng(99);
        let now = Instant::now();
        for round in 0..400 {
            // Mutated valid streams reach deeper states than pure noise.
            let (mut stream, _) = random_stream(&mut rng, 3);
            if round % 4 == 0 {
                stream = {
                    let n = rng.below(500);
                    rng.bytes(n)
                };
            } else {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(stream.len());
                    stream[i] = rng.next() as u8;
                }
            }
            for role in [Role::Server, Role::Client] {
                let cfg = if round % 2 == 0 {
                    WsConfig::embedded()
                } else {
                    WsConfig::default()
                };
                let mut s = WsSession::new(role, cfg);
                let cuts: Vec<usize> = {
                    let mut c: Vec<usize> = (0..rng.below(20))
                        .map(|_| rng.below(stream.len() + 1))
                        .collect();
                    c.sort_unstable();
                    c
                };
                let (events, _) = drive_split(&mut s, &stream, &cuts, now);
                // At most one error/close ends things; nothing follows Closed.
                let ends = events
                    .iter()
                    .position(|e| matches!(e, Event::Close { .. }))
                    .unwrap_or(events.len());
                assert!(ends + 1 >= events.len());
                let _ = s.on_timeout(now + Duration::from_secs(3600), &mut Vec::new());
                assert!(!s.is_open() || s.next_deadline().is_none());
            }
        }
    }

    #[test]
    fn keepalive_pings_a_silent_peer_and_fails_one_that_never_answers() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut s = WsSession::new(
            Role::Server,
            WsConfig {
                keepalive_interval: Some(secs(10)),
                keepalive_timeout: secs(5),
                ..WsConfig::default()
            },
        );
        s.start_timers(t0);
        assert_eq!(s.next_deadline(), Some(t0 + secs(10)));
        let mut out = Vec::new();
        assert_eq!(s.on_timeout(t0 + secs(9), &mut out), None);
        assert!(out.is_empty(), "nothing is due before the interval");
        assert_eq!(s.on_timeout(t0 + secs(10), &mut out), None);
        assert_eq!(out, [0x89, 0x00], "an empty ping");
        assert_eq!(s.next_deadline(), Some(t0 + secs(15)));
        // Any frame answers it (here the pong) and restarts the interval.
        let ev = drive(&mut s, &cf(0x8A, b""), t0 + secs(12), &mut out);
        assert_eq!(ev, [Event::Pong(Vec::new())]);
        assert_eq!(s.next_deadline(), Some(t0 + secs(22)));
        out.clear();
        assert_eq!(s.on_timeout(t0 + secs(22), &mut out), None);
        assert_eq!(out, [0x89, 0x00]);
        out.clear();
        // No answer within the timeout: failed at once with 1001.
        let ev = s.on_timeout(t0 + secs(27), &mut out);
        assert_eq!(ev, Some(Event::Error(ProtocolError::KeepaliveTimeout)));
        assert_eq!(close_code_of(&out), Some(1001));
        assert!(s.wants_shutdown());
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn a_message_trickled_below_the_minimum_rate_fails() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let config = WsConfig {
            fragment_timeout: Some(secs(10)),
            min_message_rate: 1024,
            ..WsConfig::default()
        };
        // A 100 KiB frame announced, then a few bytes now and then: each
        // byte would restart the fragment timeout, but the message is due
        // by 10 s + 1 s per KiB received.
        let mut s = WsSession::new(Role::Server, config.clone());
        let mut head = vec![0x82, 0x80 | 127];
        head.extend_from_slice(&(100u64 << 10).to_be_bytes());
        head.extend_from_slice(&MASK);
        let mut out = Vec::new();
        assert!(drive(&mut s, &head, t0, &mut out).is_empty());
        assert_eq!(s.next_deadline(), Some(t0 + secs(10)));
        for i in 1..10 {
            assert!(drive(&mut s, &[7; 8], t0 + secs(i), &mut out).is_empty());
        }
        let ev = s.on_timeout(t0 + secs(10), &mut out);
        assert_eq!(ev, Some(Event::Error(ProtocolError::MessageTooSlow)));
        assert_eq!(close_code_of(&out), Some(1008));
        // The same message at a healthy rate completes, however long.
        let mut s = WsSession::new(Role::Server, config);
        let mut out = Vec::new();
        drive(&mut s, &head, t0, &mut out);
        let mut events = Vec::new();
        for i in 0..25u64 {
            events.extend(drive(&mut s, &[7; 4096], t0 + secs(i), &mut out));
            assert_eq!(s.on_timeout(t0 + secs(i), &mut out), None);
        }
        assert!(
            matches!(events.as_slice(), [Event::Message(Message::Binary(b))] if b.len() == 100 << 10)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn idle_timeout_counts_only_data_messages() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut s = WsSession::new(
            Role::Server,
            WsConfig {
                idle_timeout: Some(secs(20)),
                ..WsConfig::default()
            },
        );
        s.start_timers(t0);
        assert_eq!(s.next_deadline(), Some(t0 + secs(20)));
        let mut out = Vec::new();
        drive(&mut s, &cf(0x81, b"hi"), t0 + secs(5), &mut out);
        assert_eq!(s.next_deadline(), Some(t0 + secs(25)));
        // Pings keep the connection alive but do not make it active.
        drive(&mut s, &cf(0x89, b"p"), t0 + secs(15), &mut out);
        assert_eq!(s.next_deadline(), Some(t0 + secs(25)));
        out.clear();
        let ev = s.on_timeout(t0 + secs(25), &mut out);
        assert_eq!(ev, Some(Event::Error(ProtocolError::IdleTimeout)));
        assert_eq!(close_code_of(&out), Some(1001));
        // A closing handshake: the peer may still answer.
        assert_eq!(s.state(), SessionState::Closing);
    }

    /// permessage-deflate in the session: round trips between the client
    /// and server roles, RFC 7692's examples, limits and the lending API.
    #[cfg(feature = "deflate")]
    mod deflate_session {
        use super::*;
        use crate::proto::deflate::{Compressor, DeflateParams, Inflater};

        fn params(sb: u8, cb: u8, snct: bool, cnct: bool) -> DeflateParams {
            DeflateParams {
                server_no_context_takeover: snct,
                client_no_context_takeover: cnct,
                server_max_window_bits: sb,
                client_max_window_bits: cb,
            }
        }

        fn session(role: Role, p: DeflateParams, config: WsConfig, min_size: usize) -> WsSession {
            let mut s = WsSession::new(role, config);
            s.enable_deflate(p, 6, min_size);
            s
        }

        /// Sends `msgs` from `from` and feeds the bytes to `to` cut at
        /// random points; the same messages must come out.
        fn transfer(from: &mut WsSession, to: &mut WsSession, msgs: &[Message], rng: &mut Rng) {
            let mut wire = Vec::new();
            for m in msgs {
                from.send(m, &mut wire).unwrap();
            }
            let n_cuts = rng.below(12);
            let mut cuts: Vec<usize> = (0..n_cuts).map(|_| rng.below(wire.len() + 1)).collect();
            cuts.sort_unstable();
            let (events, _) = drive_split(to, &wire, &cuts, Instant::now());
            let expect: Vec<Event> = msgs.iter().cloned().map(Event::Message).collect();
            assert!(events == expect, "{} messages differ", msgs.len());
        }

        fn messages(rng: &mut Rng, sizes: &[usize]) -> Vec<Message> {
            let mut msgs = Vec::new();
            for &n in sizes {
                // Text of a few distinct chars (compressible, multibyte
                // code points cut anywhere) and random binary (stored
                // blocks).
                let mut t = rng.text(n);
                while t.len() > n {
                    t.pop();
                }
                msgs.push(Message::Text(t));
                msgs.push(Message::Binary(rng.bytes(n)));
            }
            msgs
        }

        #[test]
        fn incompressible_messages_go_plain_without_our_context() {
            let mut rng = Rng(0x5EED_0001);
            let random = rng.bytes(1000);
            for (snct, plain) in [(true, true), (false, false)] {
                let p = params(15, 15, snct, true);
                let mut s = session(Role::Server, p, WsConfig::default(), 0);
                let mut out = Vec::new();
                s.send_binary(&random, &mut out).unwrap();
                assert_eq!(out[0] & 0x40 == 0, plain, "snct {snct}");
                let mut c = session(Role::Client, p, WsConfig::default(), 0);
                let (events, _) = drive_split(&mut c, &out, &[], Instant::now());
                assert_eq!(events, [Event::Message(Message::Binary(random.clone()))]);
            }
            // Broadcast encodings (never with context) do the same.
            let s = session(
                Role::Server,
                params(15, 15, true, true),
                WsConfig::default(),
                0,
            );
            let enc = s.shared_encoding(random.len()).unwrap();
            let mut out = Vec::new();
            WsSession::encode_shared(enc, false, &random, &mut None, &mut out);
            assert_eq!(out[0], 0x82);
            assert_eq!(&out[out.len() - random.len()..], &random[..]);
        }

        #[test]
        fn inflating_pauses_at_the_room_given_and_resumes_intact() {
            let p = params(15, 15, true, true);
            let mut c = session(Role::Client, p, WsConfig::default(), 0);
            let mut s = session(Role::Server, p, WsConfig::default(), 0);
            let text: String = (0..400_000u32)
                .map(|i| char::from(b"pollserve "[(i % 10) as usize]))
                .collect();
            let mut wire = Vec::new();
            c.send_text(&text, &mut wire).unwrap();
            c.send_text("after", &mut wire).unwrap();
            let mut out = Vec::new();
            let (mut pos, mut pauses, mut events) = (0, 0, Vec::new());
            while pos < wire.len() {
                s.set_inflate_bounds(usize::MAX, 50_000);
                let feed = s.feed(&mut wire[pos..], Instant::now(), &mut out);
                pos += feed.consumed;
                assert!(s.inflating_len() % 50_000 == 0 || feed.event.is_some());
                if s.inflate_stalled() {
                    pauses += 1;
                }
                events.extend(feed.event);
                assert!(pauses < 100, "stuck");
            }
            assert!(pauses >= 7, "{pauses}");
            assert_eq!(
                events,
                [
                    Event::Message(Message::Text(text)),
                    Event::Message(Message::Text("after".into()))
                ]
            );
            // "after" went plain: deflate does not shrink 5 bytes, and the
            // client keeps no context.
            assert!(!s.last_message_compressed());
            // A message inflating past the limit given fails with 1009
            // rather than pausing at it.
            let mut wire = Vec::new();
            c.send_binary(&[0u8; 300_000], &mut wire).unwrap();
            s.set_inflate_bounds(200_000, 200_000);
            let feed = s.feed(&mut wire, Instant::now(), &mut out);
            assert_eq!(feed.event, Some(Event::Error(ProtocolError::MessageTooBig)));
        }

        #[test]
        fn every_parameter_combination_round_trips_both_ways() {
            let mut rng = Rng(0xDEF1_A7E5);
            let frames = [1 << 20, 1000, 7, 125, 126];
            let mut combo = 0;
            for sb in [8, 9, 12, 15] {
                for cb in [8, 9, 12, 15] {
                    for snct in [false, true] {
                        for cnct in [false, true] {
                            let p = params(sb, cb, snct, cnct);
                            let config = WsConfig {
                                max_frame_size: frames[combo % frames.len()],
                                ..WsConfig::default()
                            };
                            combo += 1;
                            let mut c = session(Role::Client, p, config.clone(), 0);
                            let mut s = session(Role::Server, p, config, 0);
                            for _ in 0..2 {
                                let msgs = messages(&mut rng, &[0, 1, 100, 10 << 10]);
                                transfer(&mut c, &mut s, &msgs, &mut rng);
                                let msgs = messages(&mut rng, &[0, 1, 100, 10 << 10]);
                                transfer(&mut s, &mut c, &msgs, &mut rng);
                            }
                        }
                    }
                }
            }
        }

        #[test]
        fn one_mebibyte_messages_round_trip() {
            let mut rng = Rng(77);
            for (bits, nct) in [(8, false), (8, true), (15, false), (15, true)] {
                let p = params(bits, bits, nct, nct);
                let config = WsConfig {
                    max_frame_size: 300_000,
                    ..WsConfig::default()
                };
                let mut c = session(Role::Client, p, config.clone(), 0);
                let mut s = session(Role::Server, p, config, 0);
                let msgs = messages(&mut rng, &[1 << 20]);
                transfer(&mut c, &mut s, &msgs, &mut rng);
                transfer(&mut s, &mut c, &msgs, &mut rng);
            }
        }

        #[test]
        fn min_size_and_empty_messages_go_uncompressed() {
            let mut s = session(
                Role::Server,
                DeflateParams::default(),
                WsConfig::default(),
                10,
            );
            let mut out = Vec::new();
            s.send_text("short", &mut out).unwrap();
            assert_eq!(out, b"\x81\x05short");
            out.clear();
            s.send_binary(b"", &mut out).unwrap();
            assert_eq!(out, [0x82, 0x00]);
            out.clear();
            s.send_text("long enough", &mut out).unwrap();
            assert_eq!(out[0], 0xC1, "compressed: RSV1");
            // The vectored path must not be taken for a compressed message.
            assert_eq!(s.write_data_header(true, 11, &mut out), Ok(false));
            let before = out.len();
            assert_eq!(s.write_data_header(true, 5, &mut out), Ok(true));
            assert_eq!(out[before..], [0x81, 0x05]);
        }

        #[test]
        fn context_takeover_shows_on_the_wire() {
            let text = "{\"sensor\":\"temperature\",\"value\":21.5,\"unit\":\"C\"}".repeat(3);
            for role in [Role::Server, Role::Client] {
                for nct in [false, true] {
                    let mut s = session(role, params(15, 15, nct, nct), WsConfig::default(), 0);
                    let mut first = Vec::new();
                    s.send_text(&text, &mut first).unwrap();
                    let mut second = Vec::new();
                    s.send_text(&text, &mut second).unwrap();
                    assert!(first.len() < text.len(), "compressed");
                    if nct {
                        assert_eq!(first.len(), second.len(), "{role:?}: no takeover");
                        if role == Role::Server {
                            assert_eq!(first, second);
                        }
                    } else {
                        assert!(second.len() < first.len(), "{role:?}: takeover");
                    }
                }
            }
        }

        #[test]
        fn we_compress_hello_as_rfc_7692_does() {
            // §7.2.3.1 and §7.2.3.2: "Hello", then again with the shared
            // sliding window.
            let mut s = session(
                Role::Server,
                DeflateParams::default(),
                WsConfig::default(),
                0,
            );
            let mut out = Vec::new();
            s.send_text("Hello", &mut out).unwrap();
            assert_eq!(out, [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
            out.clear();
            s.send_text("Hello", &mut out).unwrap();
            assert_eq!(out, [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
        }

        /// Decodes server frames (unmasked) with a client session, and the
        /// same frames masked with a server session.
        fn decode_both(frames: &[&[u8]]) -> Vec<Vec<Event>> {
            let mut results = Vec::new();
            let mut c = session(
                Role::Client,
                DeflateParams::default(),
                WsConfig::default(),
                0,
            );
            let unmasked: Vec<u8> = frames.concat();
            results.push(drive(&mut c, &unmasked, Instant::now(), &mut Vec::new()));
            let mut s = session(
                Role::Server,
                DeflateParams::default(),
                WsConfig::default(),
                0,
            );
            let mut masked = Vec::new();
            for f in frames {
                let len = usize::from(f[1]);
                assert!(len < 126);
                masked.extend(cf(f[0], &f[2..2 + len]));
            }
            results.push(drive(&mut s, &masked, Instant::now(), &mut Vec::new()));
            // Byte by byte as well.
            let mut s = session(
                Role::Server,
                DeflateParams::default(),
                WsConfig::default(),
                0,
            );
            let every: Vec<usize> = (1..masked.len()).collect();
            results.push(drive_split(&mut s, &masked, &every, Instant::now()).0);
            results
        }

        fn hello() -> Event {
            Event::Message(Message::Text("Hello".into()))
        }

        /// A named example: its frames and the events they decode to.
        type Example<'a> = (&'a str, Vec<&'a [u8]>, Vec<Event>);

        #[test]
        fn rfc_7692_examples_decode() {
            let cases: Vec<Example> = vec![
                (
                    "7.2.3.1 one frame",
                    vec![&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]],
                    vec![hello()],
                ),
                (
                    "7.2.3.1 fragmented",
                    vec![
                        &[0x41, 0x03, 0xf2, 0x48, 0xcd],
                        &[0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00],
                    ],
                    vec![hello()],
                ),
                (
                    "7.2.3.2 shared sliding window",
                    vec![
                        &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                        &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00],
                    ],
                    vec![hello(), hello()],
                ),
                (
                    "7.2.3.3 no compression",
                    vec![&[
                        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f,
                        0x00,
                    ]],
                    vec![hello()],
                ),
                (
                    "7.2.3.4 BFINAL",
                    vec![&[0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]],
                    vec![hello()],
                ),
                (
                    "7.2.3.5 two blocks",
                    vec![&[
                        0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9,
                        0xc9, 0x07, 0x00,
                    ]],
                    vec![hello()],
                ),
                (
                    "7.2.3.6 empty",
                    vec![&[0xc1, 0x01, 0x00]],
                    vec![Event::Message(Message::Text(String::new()))],
                ),
                (
                    "uncompressed message between compressed ones",
                    vec![
                        &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                        b"\x81\x05Hello",
                        &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00],
                    ],
                    vec![hello(), hello(), hello()],
                ),
            ];
            for (name, frames, expect) in cases {
                for got in decode_both(&frames) {
                    assert_eq!(got, expect, "{name}");
                }
            }
        }

        #[test]
        fn misplaced_rsv1_fails_with_1002() {
            let p = DeflateParams::default();
            let z = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
            let cases: Vec<Vec<u8>> = vec![
                // RSV1 on the continuation of a compressed message.
                [cf(0x41, &z[..3]), cf(0xC0, &z[3..])].concat(),
                // ... and of an uncompressed one.
                [cf(0x01, b"He"), cf(0xC0, b"llo")].concat(),
                cf(0xC9, b"ping"),
                cf(0xCA, b"pong"),
                cf(0xC8, &[0x03, 0xE8]),
            ];
            for stream in cases {
                let mut s = session(Role::Server, p, WsConfig::default(), 0);
                let mut out = Vec::new();
                let ev = drive(&mut s, &stream, Instant::now(), &mut out);
                assert_eq!(ev, [Event::Error(ProtocolError::MisplacedCompressionBit)]);
                assert_eq!(close_code_of(&out), Some(1002));
            }
            // RSV2 and RSV3 stay reserved.
            let mut s = session(Role::Server, p, WsConfig::default(), 0);
            let mut out = Vec::new();
            let ev = drive(&mut s, &cf(0xA1, b"x"), Instant::now(), &mut out);
            assert_eq!(ev, [Event::Error(ProtocolError::ReservedBits(2))]);
            // Without negotiation RSV1 is reserved too.
            expect_error(&cf(0xC1, &z), ProtocolError::ReservedBits(4), 1002);
        }

        #[test]
        fn invalid_deflate_data_fails_with_1007() {
            for payload in [
                &[0xff, 0xff, 0xff][..],
                &[0x07],
                // "Hello", then a stored block whose length and its complement disagree.
                &[
                    0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00,
                ],
            ] {
                let mut s = session(
                    Role::Server,
                    DeflateParams::default(),
                    WsConfig::default(),
                    0,
                );
                let mut out = Vec::new();
                let ev = drive(&mut s, &cf(0xC2, payload), Instant::now(), &mut out);
                assert_eq!(
                    ev,
                    [Event::Error(ProtocolError::InvalidCompressedData)],
                    "{payload:?}"
                );
                assert_eq!(close_code_of(&out), Some(1007));
            }
        }

        #[test]
        fn invalid_utf8_in_compressed_text_fails_before_the_message_ends() {
            let mut rng = Rng(5);
            let mut text = b"abc\xffdef".to_vec();
            text.extend(rng.text(50_000).bytes());
            let mut c = session(
                Role::Client,
                DeflateParams::default(),
                WsConfig::default(),
                0,
            );
            let mut wire = Vec::new();
            // Binary, to get the invalid bytes compressed; relabel as text.
            c.send_binary(&text, &mut wire).unwrap();
            assert_eq!(wire[0], 0xC2);
            wire[0] = 0xC1;
            assert!(wire.len() > 20_000);
            let mut s = session(
                Role::Server,
                DeflateParams::default(),
                WsConfig::default(),
                0,
            );
            let mut out = Vec::new();
            let ev = drive(&mut s, &wire[..2000], Instant::now(), &mut out);
            assert_eq!(ev, [Event::Error(ProtocolError::InvalidUtf8)]);
            assert_eq!(close_code_of(&out), Some(1007));
        }

        #[test]
        fn a_decompression_bomb_stops_at_the_limit() {
            // 1 GiB of zeros in one compressed frame, built without 1 GiB:
            // after the first MiB, every further MiB of zeros compresses
            // (from a window of zeros) to the same bytes.
            let zeros = vec![0u8; 1 << 20];
            let mut c = Compressor::new(9, 15);
            let mut first = Vec::new();
            assert!(c.compress_sync(&zeros, &mut first));
            let mut next = Vec::new();
            assert!(c.compress_sync(&zeros, &mut next));
            let mut again = Vec::new();
            assert!(c.compress_sync(&zeros, &mut again));
            assert_eq!(next, again, "steady state");
            let mut payload = first.clone();
            for _ in 1..1024 {
                payload.extend_from_slice(&next);
            }
            assert!(payload.len() < 4 << 20, "{}", payload.len());
            // It really is zeros all the way (checked on its first MiBs).
            let mut i = Inflater::new(15);
            let mut check = Vec::new();
            i.inflate_into(
                &payload[..first.len() + 2 * next.len()],
                &mut check,
                3 << 20,
                usize::MAX,
                false,
            )
            .unwrap();
            assert!(check.len() == 3 << 20 && check.iter().all(|&b| b == 0));

            let limit = 1 << 20;
            let config = WsConfig {
                max_message_size: limit,
                ..WsConfig::default()
            };
            let mut s = session(Role::Server, DeflateParams::default(), config, 0);
            let mut frame = Vec::new();
            let mask = [1, 2, 3, 4];
            write_frame(&mut frame, true, Opcode::Binary, &payload, Some(mask));
            frame[0] |= 0x40;
            let mut out = Vec::new();
            let ev = drive(&mut s, &frame, Instant::now(), &mut out);
            assert_eq!(ev, [Event::Error(ProtocolError::MessageTooBig)]);
            assert_eq!(close_code_of(&out), Some(1009));
            assert!(s.msg.capacity() <= limit + 1, "{}", s.msg.capacity());
        }

        #[test]
        fn compressed_bytes_are_bounded_even_when_they_inflate_to_nothing() {
            // Empty stored blocks inflate to nothing; a peer could send
            // them for ever. Past the deflate bound of the limit: 1009.
            let config = WsConfig {
                max_message_size: 1000,
                ..WsConfig::default()
            };
            let empty_blocks: Vec<u8> = [0x00, 0x00, 0x00, 0xff, 0xff].repeat(500);
            let mut s = session(Role::Server, DeflateParams::default(), config, 0);
            let mut out = Vec::new();
            let ev = drive(&mut s, &cf(0xC2, &empty_blocks), Instant::now(), &mut out);
            assert_eq!(ev, [Event::Error(ProtocolError::MessageTooBig)]);
            // Within the bound they are fine.
            let mut s = session(
                Role::Server,
                DeflateParams::default(),
                WsConfig::default(),
                0,
            );
            let ev = drive(&mut s, &cf(0xC2, &empty_blocks), Instant::now(), &mut out);
            assert_eq!(ev, [Event::Message(Message::Binary(Vec::new()))]);
        }

        #[test]
        fn wire_length_bound_holds_for_incompressible_data() {
            let mut rng = Rng(3);
            for max in [1 << 20, 1000, 126, 125, 3] {
                for role in [Role::Server, Role::Client] {
                    let config = WsConfig {
                        max_frame_size: max,
                        ..WsConfig::default()
                    };
                    let mut s = session(role, DeflateParams::default(), config, 0);
                    for len in [1, 100, 125, 126, 5000, 70_000] {
                        let data = rng.bytes(len);
                        let mut out = vec![9; 3];
                        s.send_binary(&data, &mut out).unwrap();
                        assert!(out.len() - 3 <= s.message_wire_len(len), "{max} {len}");
                        assert_eq!(out[..3], [9, 9, 9]);
                    }
                }
            }
        }

        #[test]
        fn shared_encodings_give_the_bytes_a_session_sends() {
            let mut rng = Rng(11);
            let mut compressor = None;
            for (bits, level, max, min_size) in [
                (8, 6, 1 << 20, 0),
                (9, 6, 1 << 20, 0),
                (12, 1, 1000, 50),
                (15, 9, 126, 0),
                (15, 6, 7, 0),
            ] {
                let config = WsConfig {
                    max_frame_size: max,
                    ..WsConfig::default()
                };
                let p = params(bits, 15, true, false);
                let mut s = WsSession::new(Role::Server, config.clone());
                s.enable_deflate(p, level, min_size);
                for _ in 0..4 {
                    for len in [0, 10, 100, 3000] {
                        let text = {
                            let mut t = rng.text(len);
                            while t.len() > len {
                                t.pop();
                            }
                            t
                        };
                        let Some(enc) = s.shared_encoding(text.len()) else {
                            assert!(text.len() > max, "only a long plain message has none");
                            continue;
                        };
                        // A fresh session with the same parameters agrees.
                        let mut fresh = WsSession::new(Role::Server, config.clone());
                        fresh.enable_deflate(p, level, min_size);
                        assert_eq!(fresh.shared_encoding(text.len()), Some(enc));
                        let mut sent = Vec::new();
                        s.send_text(&text, &mut sent).unwrap();
                        let mut shared = Vec::new();
                        WsSession::encode_shared(
                            enc,
                            true,
                            text.as_bytes(),
                            &mut compressor,
                            &mut shared,
                        );
                        assert_eq!(
                            shared, sent,
                            "bits {bits} level {level} max {max} len {len}"
                        );
                    }
                }
            }
            // Context takeover and the client role depend on session state.
            let mut s = WsSession::new(Role::Server, WsConfig::default());
            s.enable_deflate(DeflateParams::default(), 6, 0);
            assert_eq!(s.shared_encoding(100), None);
            assert!(s.shared_encoding(0).is_some(), "empty: plain");
            let c = WsSession::new(Role::Client, WsConfig::default());
            assert_eq!(c.shared_encoding(10), None);
            // A plain server session and one compressing only above 1000
            // share the plain encoding of short messages.
            let plain = WsSession::new(Role::Server, WsConfig::default());
            let mut high = WsSession::new(Role::Server, WsConfig::default());
            high.enable_deflate(params(15, 15, true, true), 6, 1000);
            assert_eq!(plain.shared_encoding(10), high.shared_encoding(10));
            assert_ne!(plain.shared_encoding(2000), high.shared_encoding(2000));
        }

        #[test]
        fn codecs_are_made_lazily_and_lent_only_without_context() {
            let mut rng = Rng(8);
            let now = Instant::now();
            // No takeover either way: both codecs may go back to a pool
            // between messages.
            let p = params(15, 15, true, true);
            let mut s = session(Role::Server, p, WsConfig::default(), 0);
            let mut c = session(Role::Client, p, WsConfig::default(), 0);
            assert!(
                s.take_idle_compressor().is_none(),
                "an idle session holds none"
            );
            assert!(s.take_idle_inflater().is_none());
            let msgs = messages(&mut rng, &[300]);
            transfer(&mut c, &mut s, &msgs, &mut rng);
            let inflater = s.take_idle_inflater().expect("made for the message");
            assert!(s.take_idle_inflater().is_none());
            let mut out = Vec::new();
            s.send_text("some text to compress", &mut out).unwrap();
            let compressor = s.take_idle_compressor().expect("made for the message");
            assert_eq!((compressor.level(), compressor.window_bits()), (6, 15));
            // Lent back: used, and no new ones are made.
            assert!(s.offer_compressor(compressor).is_none());
            assert!(s.offer_inflater(inflater).is_none());
            // A second one is handed back while it holds one.
            assert!(s.offer_inflater(Inflater::new(9)).is_some());
            assert!(s.offer_compressor(Compressor::new(6, 15)).is_some());
            transfer(&mut c, &mut s, &msgs, &mut rng);
            // A compressor of another level or window does not fit.
            let _ = s.take_idle_compressor();
            assert!(s.offer_compressor(Compressor::new(5, 15)).is_some());
            assert!(s.offer_compressor(Compressor::new(6, 14)).is_some());
            // Not mid-message: the inflater holds part of it.
            let mut wire = Vec::new();
            // (Compressible: random bytes would go plain, see
            // `incompressible_messages_go_plain_without_our_context`.)
            let text: Vec<u8> = (0..5000u32)
                .map(|i| b"abcdefgh"[(i % 7) as usize])
                .collect();
            c.send_binary(&text, &mut wire).unwrap();
            let (events, _) = drive_split(&mut s, &wire[..wire.len() / 2], &[], now);
            assert!(events.is_empty());
            assert!(s.take_idle_inflater().is_none(), "mid-message");
            let (events, _) = drive_split(&mut s, &wire[wire.len() / 2..], &[], now);
            assert_eq!(events.len(), 1);
            assert!(s.take_idle_inflater().is_some());

            // With takeover the codecs stay.
            let p = DeflateParams::default();
            let mut s = session(Role::Server, p, WsConfig::default(), 0);
            let mut c = session(Role::Client, p, WsConfig::default(), 0);
            transfer(&mut c, &mut s, &msgs, &mut rng);
            transfer(&mut s, &mut c, &msgs, &mut rng);
            assert!(s.take_idle_inflater().is_none());
            assert!(s.take_idle_compressor().is_none());
            // Not enabled: nothing is taken.
            let mut plain = server();
            assert!(plain.offer_compressor(Compressor::new(6, 15)).is_some());
            assert!(plain.offer_inflater(Inflater::new(15)).is_some());
        }

        #[test]
        fn a_lent_dirty_inflater_does_not_leak_its_context() {
            // An inflater that was in the middle of a message elsewhere is
            // reset when lent: the next message decodes from scratch.
            let p = params(15, 15, true, true);
            let mut dirty = Inflater::new(15);
            let mut sink = Vec::new();
            dirty
                .inflate_into(&[0xf2, 0x48, 0xcd], &mut sink, 100, usize::MAX, false)
                .unwrap();
            let mut s = session(Role::Server, p, WsConfig::default(), 0);
            assert!(s.offer_inflater(dirty).is_none());
            let ev = drive(
                &mut s,
                &cf(0xC1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
                Instant::now(),
                &mut Vec::new(),
            );
            assert_eq!(ev, [hello()]);
        }

        #[test]
        fn a_failed_message_leaves_the_inflater_clean() {
            let p = params(15, 15, true, true);
            let mut s = session(Role::Server, p, WsConfig::default(), 0);
            let mut out = Vec::new();
            // Half a message, then our close: the rest is discarded.
            drive(
                &mut s,
                &cf(0x41, &[0xf2, 0x48, 0xcd]),
                Instant::now(),
                &mut out,
            );
            s.close(CloseCode::NORMAL, "", Instant::now(), &mut out)
                .unwrap();
            let mut i = s.take_idle_inflater().expect("reset and idle");
            let mut msg = Vec::new();
            i.inflate_into(
                &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                &mut msg,
                100,
                usize::MAX,
                false,
            )
            .unwrap();
            assert_eq!(msg, b"Hello");
            assert_eq!(s.can_send(), Err(SendError::Closed));
        }
    }

    /// Split invariance of the session decoder: client frames (fragmented
    /// messages, control frames between fragments, closes, corrupted bytes)
    /// cut at arbitrary points give the same events and replies as whole.
    mod split_properties {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::Index;

        #[derive(Debug, Clone)]
        enum Piece {
            /// A text or binary message sent as fragments cut at `cuts`, with
            /// a ping after every fragment but the last when `pings`.
            Message {
                text: bool,
                payload: Vec<u8>,
                cuts: Vec<Index>,
                pings: bool,
            },
            /// A ping (`0x9`) or pong (`0xA`).
            Control { ping: bool, payload: Vec<u8> },
            /// A close with an optional code (valid or not) and reason.
            Close { code: Option<u16>, reason: String },
            /// Any first byte, masked or not.
            Raw {
                b0: u8,
                masked: bool,
                payload: Vec<u8>,
            },
        }

        fn piece() -> impl Strategy<Value = Piece> {
            let text = ".{0,60}".prop_map(String::into_bytes);
            let binary = prop_oneof![
                4 => prop::collection::vec(any::<u8>(), 0..300),
                // Past 2^16: the 64-bit length encoding.
                1 => (any::<u8>(), 65_536usize..65_600).prop_map(|(b, n)| vec![b; n]),
            ];
            prop_oneof![
                6 => (
                    prop_oneof![text.prop_map(|p| (true, p)), binary.prop_map(|p| (false, p))],
                    prop::collection::vec(any::<Index>(), 0..4),
                    any::<bool>(),
                )
                    .prop_map(|((text, payload), cuts, pings)| Piece::Message {
                        text,
                        payload,
                        cuts,
                        pings,
                    }),
                2 => (any::<bool>(), prop::collection::vec(any::<u8>(), 0..130))
                    .prop_map(|(ping, payload)| Piece::Control { ping, payload }),
                1 => (
                    prop::option::of(prop_oneof![Just(1000u16), Just(1001), Just(4000), 0u16..5000]),
                    ".{0,8}",
                )
                    .prop_map(|(code, reason)| Piece::Close { code, reason }),
                1 => (any::<u8>(), prop::bool::weighted(0.8), prop::collection::vec(any::<u8>(), 0..20))
                    .prop_map(|(b0, masked, payload)| Piece::Raw { b0, masked, payload }),
            ]
        }

        fn render(pieces: &[Piece], mask: u32) -> Vec<u8> {
            let mut stream = Vec::new();
            // A different mask for every frame, so unmasking must track each.
            let mut frame = 0u32;
            let mut next_mask = || {
                frame += 1;
                mask.wrapping_mul(frame).rotate_left(frame).to_le_bytes()
            };
            for piece in pieces {
                match piece {
                    Piece::Message {
                        text,
                        payload,
                        cuts,
                        pings,
                    } => {
                        let mut at: Vec<usize> =
                            cuts.iter().map(|c| c.index(payload.len() + 1)).collect();
                        at.sort_unstable();
                        at.push(payload.len());
                        let mut start = 0;
                        for (i, &end) in at.iter().enumerate() {
                            let last = i + 1 == at.len();
                            let opcode = match (i, text) {
                                (0, true) => 0x1,
                                (0, false) => 0x2,
                                _ => 0x0,
                            };
                            let b0 = if last { 0x80 } else { 0 } | opcode;
                            stream.extend(raw(b0, Some(next_mask()), &payload[start..end]));
                            if *pings && !last {
                                stream.extend(raw(0x89, Some(next_mask()), b"between"));
                            }
                            start = end;
                        }
                    }
                    Piece::Control { ping, payload } => {
                        let b0 = if *ping { 0x89 } else { 0x8A };
                        stream.extend(raw(b0, Some(next_mask()), payload));
                    }
                    Piece::Close { code, reason } => {
                        let mut payload = Vec::new();
                        if let Some(code) = code {
                            payload.extend_from_slice(&code.to_be_bytes());
                            payload.extend_from_slice(reason.as_bytes());
                        }
                        stream.extend(raw(0x88, Some(next_mask()), &payload));
                    }
                    Piece::Raw {
                        b0,
                        masked,
                        payload,
                    } => {
                        let mask = masked.then(&mut next_mask);
                        stream.extend(raw(*b0, mask, payload));
                    }
                }
            }
            stream
        }

        fn config(which: u8) -> WsConfig {
            match which % 3 {
                0 => WsConfig::default(),
                1 => WsConfig::embedded(),
                _ => WsConfig {
                    max_message_size: 200,
                    max_fragments: 3,
                    ..WsConfig::default()
                },
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            #[test]
            fn session_events_are_the_same_however_frames_arrive(
                pieces in prop::collection::vec(piece(), 1..6),
                mask in any::<u32>(),
                edits in prop_oneof![
                    3 => Just(Vec::new()),
                    1 => prop::collection::vec((any::<Index>(), any::<u8>()), 1..3),
                ],
                cuts in prop::collection::vec(any::<Index>(), 0..10),
                which in any::<u8>(),
            ) {
                let mut stream = render(&pieces, mask);
                for (at, byte) in edits {
                    let i = at.index(stream.len());
                    stream[i] = byte;
                }
                let now = Instant::now();
                let mut whole_session = WsSession::new(Role::Server, config(which));
                let whole = drive_split(&mut whole_session, &stream, &[], now);
                let mut cuts: Vec<usize> =
                    cuts.into_iter().map(|c| c.index(stream.len() + 1)).collect();
                cuts.sort_unstable();
                let mut split_session = WsSession::new(Role::Server, config(which));
                let split = drive_split(&mut split_session, &stream, &cuts, now);
                prop_assert_eq!(&split, &whole);
                prop_assert_eq!(split_session.state(), whole_session.state());
                if stream.len() < 2048 {
                    let every: Vec<usize> = (1..stream.len()).collect();
                    let mut bytewise_session = WsSession::new(Role::Server, config(which));
                    let bytewise = drive_split(&mut bytewise_session, &stream, &every, now);
                    prop_assert_eq!(&bytewise, &whole);
                }
            }
        }
    }
}
