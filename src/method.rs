//! HTTP request methods.

use std::fmt;

/// An HTTP request method (RFC 9110 §9).
///
/// Only the methods registered in RFC 9110 and `PATCH` (RFC 5789) are known; a
/// request with any other method is answered `501 Not Implemented` by the server.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `GET`
    GET,
    /// `HEAD`
    HEAD,
    /// `POST`
    POST,
    /// `PUT`
    PUT,
    /// `DELETE`
    DELETE,
    /// `PATCH`
    PATCH,
    /// `OPTIONS`
    OPTIONS,
    /// `TRACE`
    TRACE,
    /// `CONNECT`
    CONNECT,
}

impl Method {
    /// Every known method, in a fixed order (used for `Allow` headers).
    pub const ALL: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ];

    /// Parses a method token; methods are case-sensitive (RFC 9110 §9.1).
    pub fn from_bytes(token: &[u8]) -> Option<Method> {
        Some(match token {
            b"GET" => Method::GET,
            b"HEAD" => Method::HEAD,
            b"POST" => Method::POST,
            b"PUT" => Method::PUT,
            b"DELETE" => Method::DELETE,
            b"PATCH" => Method::PATCH,
            b"OPTIONS" => Method::OPTIONS,
            b"TRACE" => Method::TRACE,
            b"CONNECT" => Method::CONNECT,
            _ => return None,
        })
    }

    /// The method's name as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::GET => "GET",
            Method::HEAD => "HEAD",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::PATCH => "PATCH",
            Method::OPTIONS => "OPTIONS",
            Method::TRACE => "TRACE",
            Method::CONNECT => "CONNECT",
        }
    }

    /// A bit for this method, so that a set of methods fits in a `u16`.
    pub(crate) fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Method {
    type Err = UnknownMethod;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::from_bytes(s.as_bytes()).ok_or_else(|| UnknownMethod(s.to_owned()))
    }
}

/// Error returned when a string is not a known [`Method`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown HTTP method {0:?}")]
pub struct UnknownMethod(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_method() {
        for m in Method::ALL {
            assert_eq!(Method::from_bytes(m.as_str().as_bytes()), Some(m));
            assert_eq!(m.as_str().parse::<Method>(), Ok(m));
        }
        assert_eq!(Method::from_bytes(b"get"), None);
        assert!("BREW".parse::<Method>().is_err());
    }
}
