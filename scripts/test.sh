#!/usr/bin/env bash
# Run the whole test suite, interop tests included: makes (or reuses) the
# Python venv with scripts/setup-python.sh and points POLLSERVE_TEST_PYTHON
# at it, so the interop tests run instead of printing SKIPPED.
#
#   scripts/test.sh [cargo test args...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
POLLSERVE_TEST_PYTHON=$(scripts/setup-python.sh | tail -n 1)
export POLLSERVE_TEST_PYTHON
exec cargo test "$@"
