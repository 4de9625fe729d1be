//! Runs the whole benchmark matrix in smoke mode (`bench/run.sh --smoke`):
//! about one second per benchmark, every WebSocket echo verified byte for
//! byte, every HTTP answer compared with the expected body. Fails on any
//! mismatch, server crash or missing tool (wrk, nginx, curl).
//!
//! Part of `cargo test --workspace`; takes about 3 minutes on a warm build
//! cache. Set `POLLSERVE_SKIP_BENCH_SMOKE=1` to leave it out deliberately.
use std::path::Path;
use std::process::Command;

#[test]
fn benchmark_smoke_mode() {
    if std::env::var_os("POLLSERVE_SKIP_BENCH_SMOKE").is_some() {
        eprintln!("POLLSERVE_SKIP_BENCH_SMOKE set: benchmark smoke run skipped");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("run.sh");
    // The binaries cargo built for this test (test profile); the script must
    // not run cargo itself while the outer `cargo test` holds the target dir.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_loadgen"))
        .parent()
        .expect("binary directory")
        .to_path_buf();
    let status = Command::new("bash")
        .arg(&script)
        .arg("--smoke")
        .env("BENCH_BIN_DIR", bin_dir)
        // A nested `cargo bench` would wait for the outer cargo. `cargo test`
        // only builds benches/micro.rs (criterion runs nothing without
        // `--bench`/`--test`); `bench/run.sh --smoke` alone runs it with `--test`.
        .env("BENCH_SKIP_MICRO", "1")
        .status()
        .expect("run bench/run.sh");
    assert!(status.success(), "bench/run.sh --smoke failed: {status}");
}
