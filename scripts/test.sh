#!/usr/bin/env bash
# The test command: formatting, lints, unit tests and the black-box tests of the built
# plugins in private network namespaces. Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
prepare_machine "${TEST_PACKAGES[@]}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== build"
cargo build --workspace --quiet
echo "== tests"
cargo test --workspace --quiet -- --test-threads="${TEST_THREADS:-4}"
echo "== vm tests (kernel features this machine lacks: bridge VLAN filtering, ipvlan)"
tests/vm/run.sh
echo "== all tests passed"
