#!/usr/bin/env bash
# Runs the unit tests that reach the crate's unsafe code under Miri (nightly),
# which reports undefined behaviour: out-of-bounds access, invalid values,
# calling a function whose target features the CPU lacks.
#
#   scripts/miri.sh
#
# The unsafe code is in src/proto/ws.rs: `apply_mask` and `extend_unmasked`
# calling their AVX2 builds after the run-time CPU check, `extend_unmasked`
# setting the length of the bytes it wrote, and the `String::from_utf8_unchecked` for text
# messages validated as they arrived. Miri reports no CPU features to
# `is_x86_feature_detected!`, so the first run covers the portable path; the
# second compiles with AVX2 enabled, where the macro answers `true` at
# compile time and the unsafe call into the AVX2 build is interpreted too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo +nightly --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
# Idempotent: a no-op when both are installed.
rustup +nightly component add miri rust-src

tests=(
  proto::ws::tests::mask_
  proto::ws::tests::simple_messages
  proto::ws::tests::rfc_example_frames
  proto::ws::tests::fragmented_with_ping_in_middle
  proto::ws::tests::message_only_when_complete_across_feeds
)

echo "=== Miri, portable unmasking (no CPU features detected)"
cargo +nightly miri test --lib -- "${tests[@]}"

echo "=== Miri, built with AVX2 (the unsafe calls into xor_blocks_avx2 and xor_into_avx2)"
RUSTFLAGS="-C target-feature=+avx2" CARGO_TARGET_DIR=target/miri-avx2 \
  cargo +nightly miri test --lib -- "${tests[@]}"
