//! `loadgen echo --deflate` checks what it measures: it must succeed against
//! a correct permessage-deflate echo (with or without the server's context,
//! compressed or not, fragmented or not) and fail on a wrong byte, on an
//! inflater reset the server did not promise, or when the server declines
//! the extension. The server here is a small stand-in written for the test
//! (a thread per connection, flate2 raw deflate), each run bounded to a
//! fraction of a second.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// How the stand-in server answers.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// `server_no_context_takeover`: each echo compressed alone.
    NoContext,
    /// The server keeps its compressor's context across messages.
    Takeover,
    /// Keeps its context but says `server_no_context_takeover`: the client
    /// resets its inflater and the echoes that refer back do not decode.
    TakeoverButSaysNot,
    /// Every other echo uncompressed (RSV1 clear).
    Alternate,
    /// Every compressed echo in two frames (text + continuation).
    Fragmented,
    /// The third echo has one byte changed before compressing.
    CorruptThird,
    /// No `Sec-WebSocket-Extensions` in the 101.
    Decline,
}

/// Compresses `data` with a sync flush, without the `00 00 ff ff` tail.
fn deflate(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let start = c.total_in();
    loop {
        let done = (c.total_in() - start) as usize;
        c.compress_vec(&data[done..], &mut out, FlushCompress::Sync)
            .expect("deflate");
        if (c.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(4096);
    }
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - TAIL.len());
    out
}

/// An unmasked server frame.
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![b0];
    if payload.len() < 126 {
        f.push(payload.len() as u8);
    } else {
        f.push(126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(payload);
    f
}

fn serve(mut s: TcpStream, behaviour: Behaviour) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let ext = match behaviour {
        Behaviour::Decline => "",
        Behaviour::NoContext
        | Behaviour::TakeoverButSaysNot
        | Behaviour::Alternate
        | Behaviour::Fragmented
        | Behaviour::CorruptThird => {
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
        }
        // Echoes the client's promise to keep no context, when made.
        Behaviour::Takeover
            if String::from_utf8_lossy(&head).contains("client_no_context_takeover") =>
        {
            "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"
        }
        Behaviour::Takeover => "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    };
    write!(
        s,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{ext}\r\n"
    )?;
    let mut compressor = Compress::new(Compression::new(6), false);
    let mut n = 0u32;
    loop {
        let mut h = [0u8; 2];
        s.read_exact(&mut h)?;
        let len = match h[1] & 0x7F {
            126 => {
                let mut l = [0u8; 2];
                s.read_exact(&mut l)?;
                u16::from_be_bytes(l) as usize
            }
            127 => panic!("the stand-in takes messages under 64 KiB"),
            l => l as usize,
        };
        let mut mask = [0u8; 4];
        s.read_exact(&mut mask)?;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload)?;
        for (j, b) in payload.iter_mut().enumerate() {
            *b ^= mask[j & 3];
        }
        assert_eq!(h[0] & 0x0F, 1, "loadgen --deflate sends text");
        let mut text = if h[0] & 0x40 != 0 {
            // The client keeps no context: a fresh inflater per message.
            payload.extend_from_slice(&TAIL);
            let mut d = Decompress::new(false);
            let mut out = Vec::with_capacity(64 * 1024);
            d.decompress_vec(&payload, &mut out, FlushDecompress::Sync)
                .expect("inflate the client's message");
            out
        } else {
            payload
        };
        n += 1;
        if behaviour == Behaviour::CorruptThird && n == 3 {
            text[100] ^= 1;
        }
        if behaviour == Behaviour::Alternate && n.is_multiple_of(2) {
            s.write_all(&frame(0x81, &text))?;
            continue;
        }
        // Only the servers that keep their context carry it over.
        if !matches!(
            behaviour,
            Behaviour::Takeover | Behaviour::TakeoverButSaysNot
        ) {
            compressor.reset();
        }
        let z = deflate(&mut compressor, &text);
        if behaviour == Behaviour::Fragmented {
            let (a, b) = z.split_at(z.len() / 2);
            let mut both = frame(0x41, a); // text, RSV1, not final
            both.extend_from_slice(&frame(0x80, b)); // final continuation
            s.write_all(&both)?;
        } else {
            s.write_all(&frame(0xC1, &z))?;
        }
    }
}

/// A stand-in server on 127.0.0.1; its threads end when loadgen's
/// connections close.
fn server(behaviour: Behaviour) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || serve(s, behaviour));
        }
    });
    addr
}

fn run(behaviour: Behaviour) -> Output {
    run_with(behaviour, &[])
}

fn run_with(behaviour: Behaviour, extra: &[&str]) -> Output {
    let addr = server(behaviour);
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "echo",
            "--deflate",
            "--addr",
            &addr,
            "--conns",
            "3",
            "--size",
            "1024",
            "--secs",
            "0.2",
            "--warmup",
            "0.05",
        ])
        .args(extra)
        .output()
        .expect("run loadgen")
}

fn field(out: &Output, key: &str) -> String {
    let line = String::from_utf8_lossy(&out.stdout);
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn num(out: &Output, key: &str) -> f64 {
    field(out, key).parse().expect("a number")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "loadgen failed: {}", stderr(out));
    assert!(num(out, "msgs") > 0.0);
    assert_eq!(field(out, "verified"), "ok");
    assert_eq!(num(out, "raw_frame_bytes"), 1028.0);
}

#[test]
fn compressed_echoes_without_context_are_verified_and_smaller() {
    let out = run(Behaviour::NoContext);
    assert_ok(&out);
    assert_eq!(num(&out, "compressed_share"), 1.0);
    let wire = num(&out, "wire_bytes_per_msg");
    assert!(wire > 0.0 && wire < 700.0, "1 KiB JSON compresses: {wire}");
    assert_eq!(
        field(&out, "negotiated"),
        "server_no_context_takeover;client_no_context_takeover"
    );
}

#[test]
fn a_server_that_keeps_its_context_is_inflated_with_it() {
    let out = run(Behaviour::Takeover);
    assert_ok(&out);
    assert_eq!(num(&out, "compressed_share"), 1.0);
    assert_eq!(field(&out, "negotiated"), "client_no_context_takeover");
    // The context makes later echoes smaller than the first ones alone.
    let alone = run(Behaviour::NoContext);
    assert!(num(&out, "wire_bytes_per_msg") < num(&alone, "wire_bytes_per_msg"));
}

#[test]
fn client_context_offers_as_browsers_do() {
    // Without the promise, the stand-in does not echo it back.
    let out = run_with(Behaviour::Takeover, &["--client-context"]);
    assert_ok(&out);
    assert_eq!(field(&out, "negotiated"), "-");
}

#[test]
fn a_context_the_server_did_not_announce_fails() {
    let out = run(Behaviour::TakeoverButSaysNot);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("invalid deflate data") || err.contains("echo mismatch"),
        "{err}"
    );
}

#[test]
fn uncompressed_and_fragmented_echoes_are_verified() {
    let out = run(Behaviour::Alternate);
    assert_ok(&out);
    let share = num(&out, "compressed_share");
    assert!(share > 0.3 && share < 0.7, "every other echo: {share}");
    let out = run(Behaviour::Fragmented);
    assert_ok(&out);
    assert_eq!(num(&out, "compressed_share"), 1.0);
}

#[test]
fn a_wrong_byte_or_a_declined_offer_fails() {
    let out = run(Behaviour::CorruptThird);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("echo mismatch at message byte 100"),
        "{}",
        stderr(&out)
    );
    let out = run(Behaviour::Decline);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("declined permessage-deflate"),
        "{}",
        stderr(&out)
    );
}
