#!/usr/bin/env bash
# run.sh [TEST-DIR...]
#
# Runs the tests that need a kernel this machine lacks (bridge VLAN filtering, ipvlan, dummy
# links): each tests/vm/<name>/test.sh boots in the test VM (tests/vm/boot.sh: a stock Debian
# kernel under qemu) with the plugins, built as static release binaries, beside it; the
# `netlink` test gets cni-netlink's unit-test binary instead. Exits non-zero when a test
# fails (or its VM does).
#
#   tests/vm/run.sh                      # every tests/vm/*/test.sh
#   tests/vm/run.sh tests/vm/bridge-vlan # one of them
#
# Env: RUN_IN_VM, another runner taking the same arguments as boot.sh (-m MODULES DIR);
# VM_TIMEOUT, VM_ACCEL and VM_CACHE as boot.sh and image.sh read them. Runs as root.
set -euo pipefail
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RUN_IN_VM=${RUN_IN_VM:-$HERE/boot.sh}
# The plugins every VM test finds on its PATH.
PLUGINS=(bridge host-local loopback macvlan ipvlan)
MODULES=veth,bridge,8021q,dummy,macvlan,ipvlan

if [ $# -gt 0 ]; then
    dirs=("$@")
else
    dirs=()
    for t in "$HERE"/*/test.sh; do dirs+=("$(dirname "$t")"); done
fi

cd "$ROOT"
# shellcheck source=../../scripts/deps.sh
. scripts/deps.sh
echo "== vm tests: building ${PLUGINS[*]} (static release) and cni-netlink's unit tests"
build_release $(printf -- '-p %s ' "${PLUGINS[@]}")
netlink_tests=$(cargo test -p cni-netlink --lib --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$netlink_tests" ] || { echo "vm tests: cni-netlink's unit tests did not build" >&2; exit 1; }

carry=$(mktemp -d "${TMPDIR:-/tmp}/cni-vm-tests.XXXXXX")
trap 'rm -rf "$carry"' EXIT
failed=()
for dir in "${dirs[@]}"; do
    name=$(basename "$dir")
    mkdir "$carry/$name"
    cp -a "$dir"/. "$HERE/lib.sh" "$carry/$name/"
    if [ "$name" = netlink ]; then
        cp "$netlink_tests" "$carry/$name/netlink-tests"
    else
        for p in "${PLUGINS[@]}"; do cp "$RELEASE_DIR/$p" "$carry/$name/"; done
    fi
    echo "== vm test $name"
    if "$RUN_IN_VM" -m "$MODULES" "$carry/$name"; then
        echo "== vm test $name passed"
    else
        echo "== vm test $name FAILED" >&2
        failed+=("$name")
    fi
    rm -rf "${carry:?}/$name"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "vm tests failed: ${failed[*]}" >&2
    exit 1
fi
echo "== all vm tests passed"
