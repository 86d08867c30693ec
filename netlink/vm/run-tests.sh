#!/bin/bash
# run-tests.sh [TEST-FILTER...]
#
# Runs cni-netlink's unit tests inside the test VM (../shared/vm/run-in-vm.sh: a Debian 6.1
# kernel), for what this machine's kernel lacks: bridge VLAN filtering, dummy, ipvlan.
# The tests that skip here ("kernel without bridge VLAN filtering") run there.
#
#   netlink/vm/run-tests.sh              # every test
#   netlink/vm/run-tests.sh bridge::     # a filter, as for `cargo test`
#
# Env: CARGO_TARGET_DIR as for cargo; RUN_IN_VM (default ../shared/vm/run-in-vm.sh beside
# the workspace).
set -euo pipefail
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RUN_IN_VM=${RUN_IN_VM:-$ROOT/../shared/vm/run-in-vm.sh}

bin=$(cd "$ROOT" && cargo test -p cni-netlink --lib --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "run-tests: no test binary built" >&2; exit 1; }

carry=$(mktemp -d "${TMPDIR:-/tmp}/netlink-vm.XXXXXX")
trap 'rm -rf "$carry"' EXIT
cp "$bin" "$carry/netlink-tests"
{
    echo '#!/bin/sh'
    echo 'set -e'
    echo 'echo "kernel $(uname -r)"'
    # One thread: the VM has one CPU, and the output stays readable.
    printf './netlink-tests --test-threads=1 --nocapture'
    for arg in "$@"; do printf " '%s'" "$arg"; done
    echo
} > "$carry/test.sh"
chmod +x "$carry/test.sh"
"$RUN_IN_VM" -m veth,bridge,macvlan,dummy,ipvlan "$carry"
