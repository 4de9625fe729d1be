//! Raw WebSocket client pieces for tests: the handshake, masked client
//! frames, reading server frames, the closing handshake.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::connect;

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

pub fn handshake(addr: SocketAddr, path: &str, extra: &str) -> (TcpStream, String) {
    handshake_on(connect(addr), path, extra)
}

/// [`handshake`] over a stream the test connected itself (to set socket
/// options first).
pub fn handshake_on(mut s: TcpStream, path: &str, extra: &str) -> (TcpStream, String) {
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "closed during handshake");
        head.push(b[0]);
    }
    (s, String::from_utf8(head).unwrap())
}

pub fn open(addr: SocketAddr, path: &str) -> TcpStream {
    let (s, head) = handshake(addr, path, "");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    s
}

/// A masked client frame.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let len = payload.len();
    if len < 126 {
        f.push(0x80 | len as u8);
    } else if len < 65536 {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads one unmasked server frame: (fin, opcode, payload).
pub fn read_frame(s: &mut TcpStream) -> (bool, u8, Vec<u8>) {
    try_read_frame(s).expect("frame header: the connection ended")
}

/// Like [`read_frame`], but `None` when the connection ends (EOF or reset)
/// before a frame begins: for tests where the server may hang up.
pub fn try_read_frame(s: &mut TcpStream) -> Option<(bool, u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    loop {
        match s.read(&mut h[..1]) {
            Ok(0) => return None,
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("reading a frame header: {e}"),
        }
    }
    s.read_exact(&mut h[1..]).expect("frame header");
    assert_eq!(h[1] & 0x80, 0, "server frames are unmasked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).unwrap();
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).unwrap();
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut p = vec![0; len];
    s.read_exact(&mut p).unwrap();
    Some((h[0] & 0x80 != 0, h[0] & 0x0f, p))
}

/// Reads frames until a close arrives; returns its code, then expects EOF.
pub fn expect_close(s: &mut TcpStream) -> u16 {
    loop {
        let (_, op, p) = read_frame(s);
        if op == 8 {
            let code = if p.len() >= 2 {
                u16::from_be_bytes([p[0], p[1]])
            } else {
                1005
            };
            s.write_all(&frame(true, 8, &p[..p.len().min(2)])).ok();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
            return code;
        }
    }
}
