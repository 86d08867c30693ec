#!/usr/bin/env bash
# The test command: formatting, lints, unit tests, the black-box tests of the built plugins in
# private network namespaces, and in a VM what this machine's kernel lacks. Exits non-zero
# when anything fails. A test whose dependency is missing fails here, saying what is missing
# (CNI_TESTS_STRICT; tests/requires holds the policy).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
prepare_machine "${TEST_PACKAGES[@]}"
export CNI_TESTS_STRICT=1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== build"
cargo build --workspace --quiet
echo "== tests"
cargo test --workspace --quiet -- --test-threads="${TEST_THREADS:-4}"
echo "== address arithmetic in release (overflow wraps silently there, panics in debug)"
cargo test --release --quiet -p ipam-store --lib
echo "== release artifacts (scripts/release.sh, checked by tests/release.sh)"
tests/release.sh
echo "== vm tests (kernel features this machine may lack: bridge VLAN filtering, ipvlan, dummy)"
tests/vm/run.sh
echo "== all tests passed"
