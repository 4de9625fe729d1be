//! Chunked bodies: the decoder never panics, never consumes more than it is
//! given, never emits more than the body limit, and gives the same result
//! whether the input arrives whole or split at an arbitrary point.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pollserve::proto::http::{ChunkedDecoder, HttpLimits};

fn run(parts: &[&[u8]], limits: &HttpLimits) -> (Vec<u8>, Option<bool>) {
    let mut d = ChunkedDecoder::default();
    let mut out = Vec::new();
    for part in parts {
        let mut rest: &[u8] = part;
        loop {
            match d.decode(rest, &mut out, limits) {
                Err(_) => return (out, None),
                Ok((n, done)) => {
                    assert!(n <= rest.len());
                    if done {
                        return (out, Some(true));
                    }
                    if n == 0 || n == rest.len() {
                        break;
                    }
                    rest = &rest[n..];
                }
            }
        }
    }
    (out, Some(false))
}

fuzz_target!(|data: &[u8]| {
    let limits = HttpLimits {
        max_body_size: 4096,
        ..HttpLimits::default()
    };
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let cut = (cut as usize).min(body.len());
    let whole = run(&[body], &limits);
    let split = run(&[&body[..cut], &body[cut..]], &limits);
    assert!(whole.0.len() as u64 <= limits.max_body_size);
    assert_eq!(whole.1, split.1);
    if whole.1.is_some() {
        assert_eq!(whole.0, split.0);
    }
});
