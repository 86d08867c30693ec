#!/bin/sh
# The bridge plugin's VLAN keys, run inside the test VM by tests/vm/run.sh (this machine's
# kernel has no bridge VLAN filtering; the VM's Debian 6.1 kernel has). The built `bridge` and
# `host-local` are beside this script (/carry, first on PATH: iproute2's `bridge` is called
# by its full path).
#
# One bridge, br-vlan, and one subnet, 10.10.0.0/24, cut into host-local ranges per network,
# so containers on different VLANs share an IP subnet and only the VLANs keep them apart:
#   v10    vlan 10 + isGateway (gateway on br-vlan.10)   c1 .2, c2 .3
#   v20    vlan 20                                        c3 .100
#   v30    vlan 30, cniVersion 0.4.0                       c5 .200, c7 .201
#   trunk  vlanTrunk 10, 20-21, no IPAM (L2)              c4, tagging with eth0.<vid>
#   keep   vlan 10 + preserveDefaultVlan                  c6 .50
. "$(dirname "$0")/lib.sh"
not() { ! "$@"; }

echo "kernel $(uname -r)"
STATE=/tmp/cni
mkdir -p $STATE

ipam() { # ipam FIRST LAST
    printf ',"ipam":{"type":"host-local","dataDir":"%s/ipam","ranges":[[{"subnet":"10.10.0.0/24","rangeStart":"%s","rangeEnd":"%s"}]]}' \
        "$STATE" "$1" "$2"
}
# net VERSION NAME EXTRA: a config without its closing brace (run adds prevResult and it).
net() {
    printf '{"cniVersion":"%s","name":"%s","type":"bridge","bridge":"br-vlan","dataDir":"%s/bridge"%s' \
        "$1" "$2" "$STATE" "$3"
}
V10=$(net 1.1.0 v10 ",\"vlan\":10,\"isGateway\":true$(ipam 10.10.0.2 10.10.0.49)")
V20=$(net 1.1.0 v20 ",\"vlan\":20$(ipam 10.10.0.100 10.10.0.149)")
V30=$(net 0.4.0 v30 ",\"vlan\":30$(ipam 10.10.0.200 10.10.0.249)")
TRUNK=$(net 1.1.0 trunk ',"vlanTrunk":[{"id":10},{"minID":20,"maxID":21}]')
KEEP=$(net 1.1.0 keep ",\"vlan\":10,\"preserveDefaultVlan\":true$(ipam 10.10.0.50 10.10.0.59)")

# run COMMAND CONTAINER CONFIG [PREVRESULT]: the plugin as a runtime runs it.
run() {
    if [ -n "${4:-}" ]; then input="$3,\"prevResult\":$4}"; else input="$3}"; fi
    printf '%s' "$input" | CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=/run/netns/$2 \
        CNI_IFNAME=eth0 CNI_PATH=$PWD "$PWD/bridge"
}
BRIDGE=/usr/sbin/bridge
# add CONTAINER CONFIG: a new netns and the ADD's output (checked below: this runs in a
# subshell).
add() {
    ip netns add "$1"
    run ADD "$1" "$2"
}
veth_of() { echo "$1" | grep -o '"name":"veth[0-9a-f]*"' | head -1 | cut -d'"' -f4; }
vlans_of() { $BRIDGE -j vlan show dev "$1"; }

r1=$(add c1 "$V10")
r2=$(add c2 "$V10")
r3=$(add c3 "$V20")
r4=$(add c4 "$TRUNK")
r5=$(add c5 "$V30")
r6=$(add c6 "$KEEP")
r7=$(add c7 "$V30")
echo "# ADD"
for r in "$r1" "$r2" "$r3" "$r4" "$r5" "$r6" "$r7"; do
    check "ADD" contains "$r" '"interfaces"'
done
p1=$(veth_of "$r1")
p4=$(veth_of "$r4")
p6=$(veth_of "$r6")

echo "# vlan filtering and port VLANs"
check "br-vlan has vlan_filtering on" sh -c 'ip -d link show br-vlan | grep -q "vlan_filtering 1"'
check "access port: vid 10 PVID untagged" contains "$(vlans_of "$p1")" '{"vlan":10,"flags":["PVID","Egress Untagged"]}'
check "access port: default vlan 1 removed" lacks "$(vlans_of "$p1")" '"vlan":1,'
check "trunk port: vids 10, 20, 21 tagged, no PVID, no vlan 1" \
    contains "$(vlans_of "$p4")" '"vlans":[{"vlan":10},{"vlan":20},{"vlan":21}]}]'
check "preserveDefaultVlan: vlan 1 kept" contains "$(vlans_of "$p6")" '"vlan":1,'
check "preserveDefaultVlan: vid 10 PVID untagged" contains "$(vlans_of "$p6")" '{"vlan":10,"flags":["PVID","Egress Untagged"]}'
check "gateway interface br-vlan.10 holds 10.10.0.1" sh -c 'ip addr show br-vlan.10 | grep -q "inet 10.10.0.1/24"'
check "0.4.0 result carries ips[].version" contains "$r5" '"version":"4"'

echo "# same vlan talks, different vlans do not"
check "c1 -> c2 (vlan 10)" pings c1 10.10.0.3
check "c1 -> gateway on br-vlan.10" pings c1 10.10.0.1
check "c6 (vlan 10, default vlan kept) -> c1" pings c6 10.10.0.2
check "c5 -> c7 (vlan 30, 0.4.0)" pings c5 10.10.0.201
check "c1 -/-> c3 (vlan 10 vs 20)" blocked c1 10.10.0.100
check "c3 -/-> c1 (vlan 20 vs 10)" blocked c3 10.10.0.2
check "c3 -/-> the vlan 10 gateway" blocked c3 10.10.0.1
check "c5 -/-> c1 (vlan 30 vs 10)" blocked c5 10.10.0.2

echo "# trunk port: tagged traffic of its vlans only"
tag() { # tag VID: c4 talks on eth0.VID as 10.10.0.60
    for l in $(ip -n c4 -o link show | grep -o 'eth0\.[0-9]*'); do ip -n c4 link del "$l"; done
    ip -n c4 link add link eth0 name "eth0.$1" type vlan id "$1"
    ip -n c4 addr add 10.10.0.60/24 dev "eth0.$1"
    ip -n c4 link set "eth0.$1" up
}
tag 10
check "trunk, tagged 10 -> c1" pings c4 10.10.0.2
check "trunk, tagged 10 -/-> c3 (vlan 20)" blocked c4 10.10.0.100
tag 20
check "trunk, tagged 20 -> c3" pings c4 10.10.0.100
check "trunk, tagged 20 -/-> c1 (vlan 10)" blocked c4 10.10.0.2
tag 30
check "trunk, tagged 30 (not in the trunk) -/-> c5" blocked c4 10.10.0.200

echo "# CHECK"
code_of() { echo "$1" | grep -o '"code":[0-9]*' | cut -d: -f2; }
check "CHECK c1 after ADD" run CHECK c1 "$V10" "$r1"
check "CHECK c4 (trunk) after ADD" run CHECK c4 "$TRUNK" "$r4"
check "CHECK c5 (0.4.0) after ADD" run CHECK c5 "$V30" "$r5"
$BRIDGE vlan del dev "$p1" vid 10
out=$(run CHECK c1 "$V10" "$r1")
check "CHECK c1 fails with 103 once its vlan is gone from the port" test "$(code_of "$out")" = 103
$BRIDGE vlan del dev "$p4" vid 20
out=$(run CHECK c4 "$TRUNK" "$r4")
check "CHECK c4 fails with 103 once trunk vlan 20 is gone from the port" test "$(code_of "$out")" = 103

echo "# DEL"
for c in c1:V10:r1 c2:V10:r2 c3:V20:r3 c4:TRUNK:r4 c5:V30:r5 c6:KEEP:r6 c7:V30:r7; do
    id=${c%%:*}
    rest=${c#*:}
    eval "conf=\$${rest%%:*} prev=\$${rest#*:}"
    check "DEL $id" run DEL "$id" "$conf" "$prev"
    check "DEL $id again" run DEL "$id" "$conf" "$prev"
done
# Only the gateway's own port stays on the bridge.
check "only the vlan gateway port is left on br-vlan" test "$(ip -o link show master br-vlan | wc -l)" = 1
check "no address left in host-local" sh -c "! ls $STATE/ipam/*/10.10.0.* 2>/dev/null"
check "no state left" sh -c "! ls $STATE/bridge/*/*@* 2>/dev/null"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
