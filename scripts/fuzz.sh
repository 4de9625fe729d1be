#!/usr/bin/env bash
# Runs the libFuzzer targets in fuzz/ (cargo-fuzz on the nightly toolchain,
# installed through the crate registry when missing).
#
#   scripts/fuzz.sh --smoke [TARGET...]    each target 10 s, unoptimised build;
#                                          fails on any crash (a step of ./test.sh)
#   scripts/fuzz.sh [SECONDS] [TARGET...]  each target SECONDS (default 300) and
#                                          a row per target appended to
#                                          fuzz/RESULTS.md; fails on any crash
#
# Corpora grow in fuzz/corpus/TARGET and crashing inputs land in
# fuzz/artifacts/TARGET; both stay out of git. Reproduce a crash with
# `cd fuzz && cargo +nightly fuzz run TARGET artifacts/TARGET/crash-…`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

smoke=false
seconds=300
if [ "${1-}" = --smoke ]; then
  smoke=true
  seconds=10
  shift
elif [[ "${1-}" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi

# libFuzzer's instrumentation needs nightly rustc.
if ! cargo +nightly --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# The smoke run uses an unoptimised build: on a fresh machine it builds in
# about a minute where the optimised one takes two and a half (the crate is
# one codegen unit under the sanitizer), at 15-25x fewer executions a second.
# It is there to show every target still builds and survives a first search;
# the long runs do the searching.
build=()
if $smoke; then
  build=(--dev)
fi
cargo +nightly fuzz build "${build[@]}"

results=RESULTS.md
commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- ../src ../Cargo.toml Cargo.toml fuzz_targets || commit="$commit+changes"
if ! $smoke && [ ! -f "$results" ]; then
  cat >"$results" <<'EOF'
# Fuzzing results

Rows appended by `scripts/fuzz.sh SECONDS` (one libFuzzer process per target
on one core, ASan, debug assertions; the corpus carries over between runs on
the same machine). `corpus` is the number of inputs kept after the run,
`crashes` the inputs saved under `fuzz/artifacts/`. A commit ending in
`+changes` had uncommitted changes to the code under test.

| date (UTC) | commit | target | seconds | executions | corpus | crashes |
| --- | --- | --- | ---: | ---: | ---: | ---: |
EOF
fi

failed=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  crashes_before=$(find "artifacts/$target" -type f | wc -l)
  printf '%-14s %4ss ' "$target" "$seconds"
  set +e
  cargo +nightly fuzz run "${build[@]}" "$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  corpus=$(find "corpus/$target" -type f | wc -l)
  crashes=$(($(find "artifacts/$target" -type f | wc -l) - crashes_before))
  echo "executions ${execs:-?}, corpus $corpus, crashes $crashes (exit $rc)"
  if ((rc != 0 || crashes > 0)); then
    failed+=("$target")
    grep -E -A 12 'panicked|ERROR: |SUMMARY' "$log" | head -n 40 >&2 || tail -n 40 "$log" >&2
  fi
  if ! $smoke; then
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$(date -u '+%Y-%m-%d %H:%M')" \
      "$commit" "$target" "$seconds" "${execs:-?}" "$corpus" "$crashes" >>"$results"
  fi
done

if ((${#failed[@]})); then
  echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
