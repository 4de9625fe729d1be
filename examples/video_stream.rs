//! A custom streamed response: an MJPEG-style `multipart/x-mixed-replace`
//! video — `adafruit_httpserver`'s `httpserver_video_stream.py`, with generated BMP frames
//! (a square sliding across a gradient) instead of a camera.
//!
//! The stream is a `Response::chunked` whose iterator produces one part per
//! frame. The server pulls the iterator only as fast as the client reads, and
//! an iterator cannot say "no frame yet", so it cannot be paced from the main
//! loop: this example sends a fixed number of frames as fast as the client
//! takes them. (A live, paced feed needs a push stream, like SSE has.)
//!
//! `cargo run --example video_stream [PORT]`, then open
//! <http://127.0.0.1:5000/> (the stream in an `<img>`) or `/frame`.
use pollserve::{Method, Response, Server};

const WIDTH: usize = 64;
const HEIGHT: usize = 48;
const FRAMES: usize = 120;
const BOUNDARY: &str = "frame";

/// One 24-bit BMP image: a gradient with a white square at a position set by `n`.
fn frame(n: usize) -> Vec<u8> {
    let row = WIDTH * 3; // 192 bytes: already a multiple of 4, no padding
    let size = 54 + row * HEIGHT;
    let mut bmp = Vec::with_capacity(size);
    bmp.extend_from_slice(b"BM");
    for v in [size as u32, 0, 54, 40, WIDTH as u32, HEIGHT as u32] {
        bmp.extend_from_slice(&v.to_le_bytes());
    }
    bmp.extend_from_slice(&1u16.to_le_bytes()); // planes
    bmp.extend_from_slice(&24u16.to_le_bytes()); // bits per pixel
    for v in [0u32, (row * HEIGHT) as u32, 2835, 2835, 0, 0] {
        bmp.extend_from_slice(&v.to_le_bytes());
    }
    let x0 = n % (WIDTH - 12);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let inside = (x0..x0 + 12).contains(&x) && (18..30).contains(&y);
            let (b, g, r) = if inside {
                (255, 255, 255)
            } else {
                ((x * 4) as u8, (y * 5) as u8, (n * 2) as u8)
            };
            bmp.extend_from_slice(&[b, g, r]);
        }
    }
    bmp
}

/// One part of the multipart stream: boundary line, headers, image.
fn part(n: usize) -> Vec<u8> {
    let image = frame(n);
    let mut out = format!(
        "--{BOUNDARY}\r\nContent-Type: image/bmp\r\nContent-Length: {}\r\n\r\n",
        image.len()
    )
    .into_bytes();
    out.extend_from_slice(&image);
    out.extend_from_slice(b"\r\n");
    out
}

fn main() -> Result<(), pollserve::Error> {
    let mut server = Server::<()>::new();
    server.route("/", Method::GET, |_req, _| {
        Ok(Response::html(
            "<!doctype html><title>Video stream</title>\
             <img src=\"/stream\" width=\"320\" height=\"240\" style=\"image-rendering: pixelated\">",
        ))
    })?;
    server.route("/frame", Method::GET, |_req, _| {
        Ok(Response::bytes("image/bmp", frame(0)))
    })?;
    server.route("/stream", Method::GET, |_req, _| {
        let parts = (0..FRAMES)
            .map(part)
            .chain(std::iter::once(format!("--{BOUNDARY}--\r\n").into_bytes()));
        let content_type = format!("multipart/x-mixed-replace; boundary={BOUNDARY}");
        Ok(Response::chunked(&content_type, parts).with_header("Cache-Control", "no-store"))
    })?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;
    server.serve_forever(&mut ())
}
