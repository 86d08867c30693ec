#!/usr/bin/env bash
# The main job: builds the plugins and cnictl, then plays Docker's networking workflow with
# them (`cnictl demo`): a user-defined network, containers reaching each other by name, a
# published port, a second network with an alias, isolation between networks, inspect,
# disconnect and removal. Everything happens in network namespaces and a temp dir the demo
# creates and removes, also on Ctrl-C; the machine's own network is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
prepare_machine "${DEMO_PACKAGES[@]}"

echo "building the plugins and cnictl..." >&2
build_release -p bridge -p host-local -p portmap -p firewall -p tuning -p dnsname -p cni-dns -p cnictl
export CNI_PATH=$RELEASE_DIR
exec "$RELEASE_DIR/cnictl" demo "$@"
