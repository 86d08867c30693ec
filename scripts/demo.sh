#!/usr/bin/env bash
# The main job, as far as the suite goes today: builds the plugins and wires two containers
# into one network inside a private sandbox with our `loopback`, `bridge` and `host-local`.
# Everything lives in namespaces and a temp dir created here and removed on exit, even on
# Ctrl-C. (`cnictl demo` will replace this with the whole Docker-like workflow.)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
prepare_machine

build_release -p host-local -p loopback -p bridge
OURS=$RELEASE_DIR
WORK=$(mktemp -d /tmp/cni-demo.XXXXXX)
HOST=cnidemo-host-$$
mkdir -p "$WORK/bin"
cp "$OURS/host-local" "$OURS/loopback" "$OURS/bridge" "$WORK/bin/"

cleanup() {
    for n in 1 2; do ip netns del "cnidemo-c$n-$$" 2>/dev/null || true; done
    ip netns del "$HOST" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cat > "$WORK/net.json" <<JSON
{"cniVersion":"1.1.0","name":"app-net","type":"bridge","bridge":"appbr0","isGateway":true,
 "ipMasq":true,"dataDir":"$WORK/state",
 "ipam":{"type":"host-local","dataDir":"$WORK/ipam","ranges":[[{"subnet":"10.88.7.0/24"}]],
         "routes":[{"dst":"0.0.0.0/0"}]}}
JSON
LO='{"cniVersion":"1.1.0","name":"lo","type":"loopback"}'

# Runs plugin $1 with command $2 for container $3 inside the sandbox host netns.
plugin() {
    local bin=$1 cmd=$2 c=$3 ifname=$4 conf=$5
    ip netns exec "$HOST" env CNI_COMMAND="$cmd" CNI_CONTAINERID="demo-$c" \
        CNI_NETNS="/run/netns/cnidemo-$c-$$" CNI_IFNAME="$ifname" CNI_PATH="$WORK/bin" \
        "$WORK/bin/$bin" <<<"$conf"
}

step "create a sandbox host netns and two container netns"
ip netns add "$HOST"
ip -n "$HOST" link set lo up
for n in 1 2; do ip netns add "cnidemo-c$n-$$"; done
ip netns list | grep "$$"

for n in 1 2; do
    step "ADD c$n: loopback, then bridge with host-local as IPAM"
    plugin loopback ADD "c$n" lo "$LO" >/dev/null
    plugin bridge ADD "c$n" eth0 "$(cat "$WORK/net.json")" | tee "$WORK/c$n.json"
done

ip1=$(sed -n 's/.*"address": *"\([0-9.]*\)\/.*/\1/p' "$WORK/c1.json" | head -1)
ip2=$(sed -n 's/.*"address": *"\([0-9.]*\)\/.*/\1/p' "$WORK/c2.json" | head -1)
step "c1 ($ip1) pings c2 ($ip2), and c2 pings itself over lo"
ip netns exec "cnidemo-c1-$$" ping -c 2 -W 2 "$ip2"
ip netns exec "cnidemo-c2-$$" ping -c 1 -W 2 127.0.0.1

step "the masquerade set in the sandbox host's nftables (one element per container)"
ip netns exec "$HOST" nft list table inet cni_bridge | sed -n '/set masq4/,/}/p'

step "host-local's store on disk (reference format: one file per address)"
for f in "$WORK/ipam/app-net/"*; do printf '%-40s %s\n' "${f#"$WORK"/}" "$(tr '\r\n' ' ' <"$f")"; done

step "DEL both containers; the store is empty again"
for n in 1 2; do
    plugin bridge DEL "c$n" eth0 "$(cat "$WORK/net.json")"
    plugin loopback DEL "c$n" lo "$LO"
done
ls "$WORK/ipam/app-net/"

step "done: everything is removed on exit"
