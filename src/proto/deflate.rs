//! permessage-deflate (RFC 7692): the parameters a handshake agreed on.
//! (The codec and the session's use of it follow.)

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
