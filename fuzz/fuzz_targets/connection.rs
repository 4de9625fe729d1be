//! A whole connection of the driver (`pollserve::server::testing`: routes,
//! a WebSocket echo loop, event streams, a body sink) fed arbitrary bytes,
//! cut into reads at an arbitrary step, with an arbitrary number of bytes
//! written per round: it never panics and always ends. Where the protocol
//! leaves nothing to timing (no `Expect: 100-continue`, no upgrade), the
//! answer must also be byte-identical to the one for the same bytes read at
//! once and written without limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pollserve::server::testing::run_connection;

fuzz_target!(|data: &[u8]| {
    let Some((control, input)) = data.split_first_chunk::<2>() else {
        return;
    };
    let step = 1 + usize::from(control[0]);
    let room = 1 + usize::from(control[1]) * 16;
    let pieces: Vec<&[u8]> = input.chunks(step).collect();
    let split = run_connection(&pieces, room);
    let lower = input.to_ascii_lowercase();
    let timing_free = !contains(&lower, b"100-continue") && !contains(&lower, b"upgrade");
    if timing_free {
        let whole = run_connection(&[input], usize::MAX);
        assert!(whole == split, "answers differ with step {step}, room {room}");
    }
});

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
