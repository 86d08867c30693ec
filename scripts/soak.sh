#!/usr/bin/env bash
# The fault suite's long run: every chain of tests/tests/faults.rs with ROUNDS containers each
# (default 2000), plugins SIGKILLed at random moments of half the ADDs and DEL attempts. Prints
# one line of figures per chain (faults injected, calls cut short, leaks) and exits non-zero
# if anything of a container was left. SEED=<n> replays a run's decisions.
#   scripts/soak.sh            # 2000 containers per chain, about 10 minutes on 2 CPUs
#   ROUNDS=200 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
prepare_machine "${TEST_PACKAGES[@]}"
export CNI_TESTS_STRICT=1
export FAULT_ROUNDS="${ROUNDS:-2000}"
if [ -n "${SEED:-}" ]; then
    export FAULT_SEED="$SEED"
fi
echo "== build"
cargo build --workspace --quiet
echo "== soak: $FAULT_ROUNDS containers per chain ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) CPUs)"
start=$(date +%s)
# The test's status, not grep's: the pipeline may fail without stopping the script.
set +e
cargo test --quiet -p cni-tests --test faults -- --nocapture --test-threads=3 2>&1 |
    grep -oE 'faults: chain=.*|panicked.*|(left behind|GC left|left after).*|^(file|link|nft|ip6?tables|cache) .*|test result.*'
status=${PIPESTATUS[0]}
set -e
echo "== soak done in $(( $(date +%s) - start )) s, exit $status"
exit "$status"
