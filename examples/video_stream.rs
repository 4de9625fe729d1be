//! A live MJPEG-style video: `multipart/x-mixed-replace` frames pushed from
//! the main loop at the camera's pace — `adafruit_httpserver`'s
//! `httpserver_video_stream.py`, with a fake camera producing a BMP frame
//! (a square sliding across a gradient) every 100 ms instead of a PyCamera
//! JPEG.
//!
//! As there, `/stream` answers with a response the program keeps
//! (`Request::accept_stream`, the counterpart of its `XMixedReplaceResponse`)
//! and the main loop sends each new frame to every viewer; `/frame` is one
//! picture. Where the Python example catches `BrokenPipeError`, this one
//! drops the ids whose stream `is_closed()`, and a viewer still receiving the
//! previous frame skips the new one (it wants the newest picture, not a
//! backlog) instead of filling its send buffer.
//!
//! `cargo run --example video_stream [PORT]`, then open
//! <http://127.0.0.1:5000/> (the stream in an `<img>`) or `/frame`.
use std::time::{Duration, Instant};

use pollserve::stream::StreamId;
use pollserve::{Method, Response, Server};

const WIDTH: usize = 64;
const HEIGHT: usize = 48;
const BOUNDARY: &str = "frame";
/// The camera's pace.
const FRAME_INTERVAL: Duration = Duration::from_millis(100);

/// A stand-in for a camera: a new picture every `FRAME_INTERVAL`.
struct Camera {
    frames_taken: usize,
    next_frame: Instant,
}

impl Camera {
    fn new() -> Camera {
        Camera {
            frames_taken: 0,
            next_frame: Instant::now(),
        }
    }

    /// The next frame, if it is due at `now`.
    fn next_frame(&mut self, now: Instant) -> Option<Vec<u8>> {
        if now < self.next_frame {
            return None;
        }
        self.frames_taken += 1;
        // At the camera's pace; a late loop does not get a burst of frames.
        self.next_frame = (self.next_frame + FRAME_INTERVAL).max(now);
        Some(self.picture())
    }

    /// The current picture: a 24-bit BMP, a gradient with a white square
    /// whose position follows the frame count.
    fn picture(&self) -> Vec<u8> {
        let n = self.frames_taken;
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
}

/// What the handlers and the main loop share.
struct App {
    camera: Camera,
    /// The open `/stream` responses.
    viewers: Vec<StreamId>,
}

/// Writes one part of the multipart stream into `out`: boundary line,
/// headers, image.
fn write_part(out: &mut Vec<u8>, image: &[u8]) {
    out.clear();
    out.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Type: image/bmp\r\nContent-Length: {}\r\n\r\n",
            image.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(image);
    out.extend_from_slice(b"\r\n");
}

fn main() -> Result<(), pollserve::Error> {
    // pollserve logs through `log`: this shows its access log and warnings
    // on stderr (RUST_LOG=debug shows more, RUST_LOG=warn less).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::<App>::new();
    server.route("/", Method::GET, |_req, _| {
        Ok(Response::html(
            "<!doctype html><title>Video stream</title>\
             <img src=\"/stream\" width=\"320\" height=\"240\" style=\"image-rendering: pixelated\">",
        ))
    })?;
    server.route("/frame", Method::GET, |_req, app: &mut App| {
        Ok(Response::bytes("image/bmp", app.camera.picture()))
    })?;
    server.route("/stream", Method::GET, |req, app: &mut App| {
        let content_type = format!("multipart/x-mixed-replace; boundary={BOUNDARY}");
        let (response, id) = req.accept_stream(&content_type)?;
        app.viewers.push(id);
        Ok(response.with_header("Cache-Control", "no-store"))
    })?;
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5000);
    server.start("127.0.0.1", port)?;

    let mut app = App {
        camera: Camera::new(),
        viewers: Vec::new(),
    };
    let mut part = Vec::new();
    loop {
        let timeout = app
            .camera
            .next_frame
            .saturating_duration_since(Instant::now());
        server.poll(&mut app, timeout)?;
        let Some(image) = app.camera.next_frame(Instant::now()) else {
            continue;
        };
        write_part(&mut part, &image);
        for &id in &app.viewers {
            let mut viewer = server.stream(id);
            if viewer.queued() == 0 {
                viewer.send_quiet(&part);
            }
        }
        app.viewers.retain(|&id| !server.stream(id).is_closed());
    }
}
