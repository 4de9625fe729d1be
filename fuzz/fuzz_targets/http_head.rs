//! Request heads: `parse_request_head` never panics and a complete head's
//! length is within the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pollserve::proto::http::{parse_request_head, HttpLimits, RequestHead};

fuzz_target!(|data: &[u8]| {
    let mut head = RequestHead::default();
    let limits = HttpLimits {
        max_request_line: 256,
        max_head_size: 1024,
        max_headers: 16,
        max_body_size: 1 << 20,
    };
    if let Ok(Some(n)) = parse_request_head(data, &limits, &mut head) {
        assert!(n <= data.len());
        assert!(head.target.starts_with('/') || head.target == "*");
    }
});
