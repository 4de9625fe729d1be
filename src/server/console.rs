//! Where the server's own lines go: through the `log` facade, or straight to
//! stderr when [`ServerConfig::log_to_stderr`](super::ServerConfig::log_to_stderr)
//! is on (`adafruit_httpserver`'s `debug=True`, for a program with no logger).

use std::fmt;
use std::io::{self, Write};

/// Logs a line at `log::Level::$level` (`Info`, `Warn`, `Error`): through
/// `log`, or, when `$to_stderr` is true, to stderr with [`write_line`]. The
/// arguments are formatted only if the line goes somewhere, as with `log`'s
/// own macros.
macro_rules! server_log {
    ($to_stderr:expr, target: $target:expr, $level:ident, $($arg:tt)+) => {
        if $to_stderr {
            $crate::server::console::write_line(::log::Level::$level, format_args!($($arg)+))
        } else {
            ::log::log!(target: $target, ::log::Level::$level, $($arg)+)
        }
    };
    ($to_stderr:expr, $level:ident, $($arg:tt)+) => {
        $crate::server::console::server_log!(
            $to_stderr, target: module_path!(), $level, $($arg)+
        )
    };
}
pub(crate) use server_log;

/// Bytes gathered before a write to stderr: an access-log line fits, so it
/// leaves in one `write(2)` (stderr is unbuffered, and a line written piece
/// by piece could interleave with another thread's). A longer line (a long
/// path) goes out in several writes.
const LINE_BUFFER: usize = 512;

/// Writes `args` and a newline to stderr, the level named for warnings and
/// errors (`warning: …`, `error: …`). Never allocates and never panics: a
/// write that fails (stderr closed, a reader that went away, a full disk)
/// drops the rest of the line, where `eprintln!` would panic and so end the
/// server.
pub(crate) fn write_line(level: log::Level, args: fmt::Arguments<'_>) {
    if !stderr_has_room() {
        // A pipe nobody reads (or a stopped terminal): the line is dropped
        // rather than stopping the poll loop until someone reads.
        DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return;
    }
    let dropped = DROPPED.swap(0, std::sync::atomic::Ordering::Relaxed);
    if dropped > 0 {
        write_line_now(
            log::Level::Warn,
            format_args!("{dropped} log lines dropped: stderr was not being read"),
        );
    }
    write_line_now(level, args);
}

/// Lines dropped because stderr had no room, reported with the next line
/// that goes out.
static DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether stderr can take a line now without blocking: a pipe or terminal
/// with room for at least a page (a line is at most [`LINE_BUFFER`] bytes
/// per write, so it fits), or a file.
#[cfg(target_os = "linux")]
pub(crate) fn stderr_has_room() -> bool {
    use rustix::event::{poll, PollFd, PollFlags};
    let stderr = io::stderr();
    let mut fds = [PollFd::new(&stderr, PollFlags::OUT)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        // Writable, or an error the write itself will report (a closed
        // pipe): either way the write cannot block.
        Ok(n) => n > 0,
        Err(_) => true,
    }
}

/// Whether stderr can take a line now (assumed elsewhere than Linux).
#[cfg(not(target_os = "linux"))]
pub(crate) fn stderr_has_room() -> bool {
    true
}

fn write_line_now(level: log::Level, args: fmt::Arguments<'_>) {
    let stderr = io::stderr();
    let mut line = LineWriter {
        out: stderr.lock(),
        buf: [0; LINE_BUFFER],
        len: 0,
        failed: false,
    };
    let prefix = match level {
        log::Level::Error => "error: ",
        log::Level::Warn => "warning: ",
        _ => "",
    };
    let _ = fmt::Write::write_str(&mut line, prefix);
    let _ = fmt::Write::write_fmt(&mut line, args);
    let _ = fmt::Write::write_str(&mut line, "\n");
    line.flush();
}

/// Gathers formatted text in a fixed buffer and writes it to `out` when the
/// buffer is full or the line is done; after a failed write it only
/// discards.
struct LineWriter<W: Write> {
    out: W,
    buf: [u8; LINE_BUFFER],
    len: usize,
    failed: bool,
}

impl<W: Write> LineWriter<W> {
    fn flush(&mut self) {
        if !self.failed && self.len > 0 {
            self.failed = self.out.write_all(&self.buf[..self.len]).is_err();
        }
        self.len = 0;
    }
}

impl<W: Write> fmt::Write for LineWriter<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Bytes, not characters: a character split between two writes is
        // whole again in the output.
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            if self.len == self.buf.len() {
                self.flush();
            }
            if self.failed {
                return Err(fmt::Error);
            }
            let take = rest.len().min(self.buf.len() - self.len);
            let (now, later) = rest.split_at(take);
            self.buf[self.len..self.len + take].copy_from_slice(now);
            self.len += take;
            rest = later;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    /// A sink that takes `room` bytes, then fails like a closed pipe.
    struct Pipe {
        got: Vec<u8>,
        writes: usize,
        room: usize,
    }

    impl Write for Pipe {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.got.len() + b.len() > self.room {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.got.extend_from_slice(b);
            self.writes += 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn writer(room: usize) -> LineWriter<Pipe> {
        LineWriter {
            out: Pipe {
                got: Vec::new(),
                writes: 0,
                room,
            },
            buf: [0; LINE_BUFFER],
            len: 0,
            failed: false,
        }
    }

    #[test]
    fn a_short_line_leaves_in_one_write() {
        let mut w = writer(usize::MAX);
        let (ip, path, size) = ("127.0.0.1", "/é", 78);
        write!(w, "{ip} -- \"GET {path}\" {size}").unwrap();
        w.flush();
        assert_eq!(w.out.got, "127.0.0.1 -- \"GET /é\" 78".as_bytes());
        assert_eq!(w.out.writes, 1);
    }

    #[test]
    fn a_long_line_goes_out_whole_in_several_writes() {
        let mut w = writer(usize::MAX);
        // Two-byte characters, so buffer boundaries fall inside some.
        let path = "é".repeat(1000);
        write!(w, "GET /{path}").unwrap();
        w.flush();
        assert_eq!(
            String::from_utf8(w.out.got).unwrap(),
            format!("GET /{path}")
        );
        assert_eq!(w.out.writes, (5 + 2000usize).div_ceil(LINE_BUFFER));
    }

    #[test]
    fn a_failed_write_drops_the_rest_without_panicking() {
        let mut w = writer(LINE_BUFFER);
        let long = "x".repeat(3 * LINE_BUFFER);
        assert!(write!(w, "{long}").is_err());
        w.flush();
        assert_eq!(w.out.got.len(), LINE_BUFFER);
        assert!(w.failed);
    }
}
