//! Multipart bodies: `FormData::parse` never panics on any body and boundary.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pollserve::form::FormData;

fuzz_target!(|data: &[u8]| {
    let _ = FormData::parse(data, "multipart/form-data; boundary=XyZ");
    let _ = FormData::parse(data, "application/x-www-form-urlencoded");
    let _ = FormData::parse(data, "text/plain");
});
