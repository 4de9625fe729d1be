//! The client's address behind reverse proxies: `Forwarded` (RFC 7239) and
//! `X-Forwarded-For`, believed only when they come from a configured proxy.
//!
//! Anyone can send these headers, so a server that believed them from every
//! peer would let clients choose the address it logs and rate-limits by.
//! [`TrustedProxies`] names the proxies whose word is taken: the address
//! chain is walked from the nearest hop outward, through trusted proxies
//! only, and the first address that is not a trusted proxy is the client.
//!
//! ```
//! use pollserve::forwarded::TrustedProxies;
//! use pollserve::Headers;
//! let proxies = TrustedProxies::new().trust("10.0.0.0/8")?;
//! let mut headers = Headers::new();
//! headers.add("X-Forwarded-For", "203.0.113.7, 10.0.0.2");
//! let via_proxy = proxies.client_ip("10.0.0.1".parse().unwrap(), &headers);
//! assert_eq!(via_proxy.to_string(), "203.0.113.7");
//! // The same header from a peer that is not a proxy is ignored.
//! let direct = proxies.client_ip("198.51.100.9".parse().unwrap(), &headers);
//! assert_eq!(direct.to_string(), "198.51.100.9");
//! # Ok::<(), pollserve::forwarded::InvalidNetwork>(())
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::headers::Headers;

/// A network in CIDR notation that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid proxy address or network {0:?} (expected e.g. 10.0.0.1, 10.0.0.0/8 or ::1)")]
pub struct InvalidNetwork(pub String);

/// The proxies whose forwarding headers are believed. Empty by default:
/// then every request's client is its TCP peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// No trusted proxies.
    pub fn new() -> TrustedProxies {
        TrustedProxies::default()
    }

    /// The loopback addresses (`127.0.0.0/8`, `::1`): a proxy on the same
    /// machine.
    pub fn loopback() -> TrustedProxies {
        TrustedProxies {
            networks: vec![
                (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
                (IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
            ],
        }
    }

    /// Also trusts `network`: an address (`10.0.0.1`, `::1`) or a network
    /// in CIDR notation (`10.0.0.0/8`, `fd00::/8`).
    pub fn trust(mut self, network: &str) -> Result<TrustedProxies, InvalidNetwork> {
        let invalid = || InvalidNetwork(network.to_owned());
        let (addr, bits) = match network.trim().split_once('/') {
            Some((addr, bits)) => (addr, Some(bits.parse::<u8>().map_err(|_| invalid())?)),
            None => (network.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        if bits > max {
            return Err(invalid());
        }
        self.networks.push((addr, bits));
        Ok(self)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks
            .iter()
            .any(|&(net, bits)| in_network(ip, net, bits))
    }

    /// The client of a request that arrived from `peer` with `headers`:
    /// `peer` itself unless it is a trusted proxy; then the addresses of
    /// `Forwarded` (or, without it, `X-Forwarded-For`) are walked from the
    /// nearest hop outward while they are trusted proxies, and the first
    /// other one is the client. An entry that is not an address (`unknown`,
    /// an obfuscated name) stops the walk at the last address known.
    pub fn client_ip(&self, peer: IpAddr, headers: &Headers) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let forwarded: Vec<Option<IpAddr>> = if headers.contains("Forwarded") {
            headers
                .get_all("Forwarded")
                .flat_map(|v| v.split(','))
                .map(forwarded_for)
                .collect()
        } else {
            headers
                .get_all("X-Forwarded-For")
                .flat_map(|v| v.split(','))
                .map(parse_node)
                .collect()
        };
        let mut client = peer;
        for hop in forwarded.into_iter().rev() {
            if !self.contains(client) {
                break;
            }
            match hop {
                Some(ip) => client = ip,
                None => break,
            }
        }
        client
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`, as a dual-stack
/// socket reports IPv4 peers) is treated as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, canonical(net)) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The `for=` address of one `Forwarded` element (RFC 7239 §4, §6).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        parse_node(value.trim().trim_matches('"'))
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Some(rest) = node.strip_prefix('[') {
        let (addr, _port) = rest.split_once(']')?;
        return addr.parse::<Ipv6Addr>().ok().map(IpAddr::V6).map(canonical);
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    // IPv4 with a port.
    let (addr, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    addr.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in pairs {
            h.add(n, v);
        }
        h
    }

    #[test]
    fn networks_parse_and_match() {
        let p = TrustedProxies::new()
            .trust("10.0.0.0/8")
            .unwrap()
            .trust("192.168.1.5")
            .unwrap()
            .trust("fd00::/8")
            .unwrap();
        assert!(p.contains(ip("10.255.0.1")));
        assert!(!p.contains(ip("11.0.0.1")));
        assert!(p.contains(ip("192.168.1.5")));
        assert!(!p.contains(ip("192.168.1.6")));
        assert!(p.contains(ip("fd12::1")));
        assert!(!p.contains(ip("fe80::1")));
        assert!(p.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(TrustedProxies::new()
            .trust("0.0.0.0/0")
            .unwrap()
            .contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "::/129", "nonsense", "10.0.0.0/x", ""] {
            assert!(TrustedProxies::new().trust(bad).is_err(), "{bad}");
        }
        assert!(TrustedProxies::loopback().contains(ip("127.0.0.1")));
        assert!(TrustedProxies::loopback().contains(ip("::1")));
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let p = TrustedProxies::new().trust("10.0.0.0/8").unwrap();
        let xff = |v: &str| headers(&[("X-Forwarded-For", v)]);
        // Through two trusted proxies.
        let h = xff("203.0.113.7, 10.0.0.2");
        assert_eq!(p.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        // A spoofed entry left of the real client is not believed.
        let h = xff("1.2.3.4, 203.0.113.7, 10.0.0.2");
        assert_eq!(p.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        // Several header lines read as one list.
        let h = headers(&[
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-For", "10.0.0.2"),
        ]);
        assert_eq!(p.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        // From an untrusted peer: the header is ignored.
        assert_eq!(
            p.client_ip(ip("198.51.100.1"), &xff("1.2.3.4")),
            ip("198.51.100.1")
        );
        // Garbage stops the walk at the last address known.
        let h = xff("203.0.113.7, garbage, 10.0.0.2");
        assert_eq!(p.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.2"));
        // Every hop trusted: the leftmost.
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), &xff("10.9.9.9")),
            ip("10.9.9.9")
        );
        // No header at all: the proxy itself.
        assert_eq!(p.client_ip(ip("10.0.0.1"), &Headers::new()), ip("10.0.0.1"));
        // Ports and brackets.
        let h = xff("[2001:db8::1]:4711, 192.0.2.1:80");
        assert_eq!(p.client_ip(ip("10.0.0.1"), &h), ip("192.0.2.1"));
        let all = TrustedProxies::new()
            .trust("192.0.2.0/24")
            .unwrap()
            .trust("10.0.0.0/8")
            .unwrap();
        assert_eq!(all.client_ip(ip("10.0.0.1"), &h), ip("2001:db8::1"));
    }

    #[test]
    fn forwarded_takes_precedence_and_is_parsed_per_rfc_7239() {
        let p = TrustedProxies::loopback();
        let h = headers(&[
            ("X-Forwarded-For", "6.6.6.6"),
            (
                "Forwarded",
                r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#,
            ),
        ]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("Forwarded", "for=unknown")]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        let h = headers(&[("X-Forwarded-For", "203.0.113.9, 127.0.0.1")]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("203.0.113.9"));
        let h = headers(&[("Forwarded", "proto=https;for=198.51.100.17")]);
        assert_eq!(p.client_ip(ip("::1"), &h), ip("198.51.100.17"));
    }
}
