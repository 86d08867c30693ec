#!/usr/bin/env bash
# run.sh [TEST-DIR...]
#
# Runs the black-box tests that need a kernel this machine lacks (bridge VLAN filtering,
# ipvlan, dummy links):
# each tests/vm/<name>/test.sh boots in the test VM (../shared/vm/run-in-vm.sh, a Debian 6.1
# kernel) with the plugins built as static release binaries beside it. Exits non-zero when a
# test fails (or the VM does).
#
#   tests/vm/run.sh                      # every tests/vm/*/test.sh
#   tests/vm/run.sh tests/vm/bridge-vlan # one of them
#
# Env: RUN_IN_VM (default ../shared/vm/run-in-vm.sh beside the workspace); VM_* knobs of
# run-in-vm.sh (VM_TIMEOUT, VM_ACCEL, ...). Runs as root (the VM image build installs
# packages the first time).
set -euo pipefail
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RUN_IN_VM=${RUN_IN_VM:-$ROOT/../shared/vm/run-in-vm.sh}
# The plugins every VM test finds on its PATH.
PLUGINS=(bridge host-local loopback macvlan ipvlan)

if [ ! -x "$RUN_IN_VM" ]; then
    echo "vm tests: $RUN_IN_VM not found (set RUN_IN_VM)" >&2
    exit 1
fi

if [ $# -gt 0 ]; then
    dirs=("$@")
else
    dirs=()
    for t in "$HERE"/*/test.sh; do dirs+=("$(dirname "$t")"); done
fi

cd "$ROOT"
# shellcheck source=../../scripts/deps.sh
. scripts/deps.sh
packages=()
for p in "${PLUGINS[@]}"; do packages+=(-p "$p"); done
echo "== vm tests: building ${PLUGINS[*]} (static release)"
build_release "${packages[@]}"

carry=$(mktemp -d "${TMPDIR:-/tmp}/cni-vm-tests.XXXXXX")
trap 'rm -rf "$carry"' EXIT
failed=()
for dir in "${dirs[@]}"; do
    name=$(basename "$dir")
    rm -rf "${carry:?}/$name"
    mkdir -p "$carry/$name"
    cp -a "$dir"/. "$carry/$name"/
    cp "$HERE/lib.sh" "$carry/$name/"
    for p in "${PLUGINS[@]}"; do cp "$RELEASE_DIR/$p" "$carry/$name/"; done
    echo "== vm test $name"
    if "$RUN_IN_VM" -m veth,bridge,8021q,dummy,macvlan,ipvlan "$carry/$name"; then
        echo "== vm test $name passed"
    else
        echo "== vm test $name FAILED" >&2
        failed+=("$name")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "vm tests failed: ${failed[*]}" >&2
    exit 1
fi
echo "== all vm tests passed"
