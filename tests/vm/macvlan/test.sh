#!/bin/sh
# The macvlan plugin on the VM's Debian 6.1 kernel, run by tests/vm/run.sh: dummy links as
# masters (this machine has none), and the DEL path of kernels that refuse to rename a link
# that is up (DEL then deletes in the foreground). The built `macvlan` and `host-local` are
# beside this script (/carry).
. "$(dirname "$0")/lib.sh"

echo "kernel $(uname -r)"
STATE=/tmp/cni
mkdir -p $STATE
ip link add m0 type dummy
ip link set m0 up
net() { # net NAME EXTRA: a config without its closing brace
    printf '{"cniVersion":"1.1.0","name":"%s","type":"macvlan","ipam":{"type":"host-local","dataDir":"%s/ipam","ranges":[[{"subnet":"10.91.0.0/24"}]]}%s' \
        "$1" "$STATE" "$2"
}
BR=$(net mv ',"master":"m0"')
run() { # run COMMAND CONTAINER CONFIG [PREVRESULT]
    if [ -n "${4:-}" ]; then input="$3,\"prevResult\":$4}"; else input="$3}"; fi
    printf '%s' "$input" | CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=/run/netns/$2 \
        CNI_IFNAME=eth0 CNI_PATH=$PWD "$PWD/macvlan"
}
add() { ip netns add "$1"; run ADD "$1" "$2"; }

echo "# two containers on a dummy master"
ra=$(add a "$BR")
rb=$(add b "$BR")
check "ADD a" contains "$ra" '"ips":[{"address":"10.91.0.2/24"'
check "a is a macvlan in bridge mode" sh -c 'ip -n a -d link show eth0 | grep -q "macvlan mode bridge"'
check "a -> b" pings a 10.91.0.3
check "CHECK a" run CHECK a "$BR" "$ra"

echo "# DEL on a kernel that cannot rename a link that is up"
check "DEL a" run DEL a "$BR" "$ra"
check "  eth0 is gone at once" only_lo a
check "DEL a again" run DEL a "$BR" "$ra"
ra=$(run ADD a "$BR")
check "ADD a again right away" contains "$ra" '"name":"eth0"'
run DEL a "$BR" "$ra" >/dev/null
run DEL b "$BR" "$rb" >/dev/null
check "nothing left: links" sh -c 'only_lo() { [ "$(ip -n "$1" -o link show | wc -l)" = 1 ]; }; only_lo a && only_lo b'
check "nothing left: addresses" sh -c "! ls $STATE/ipam/mv | grep -q '^10\.'"

echo "# the default master and passthru"
ip link add up0 type dummy
ip link set up0 up
ip addr add 192.0.2.2/24 dev up0
ip route add default via 192.0.2.1
rc=$(add c "$(net mvd ',"mode":"passthru"')")
check "no master: the default route's link up0, in passthru with its MAC" sh -c \
    "ip -n c -d link show eth0 | grep -q 'macvlan mode passthru' && [ \"\$(ip -n c link show eth0 | grep -o 'ether [0-9a-f:]*')\" = \"\$(ip link show up0 | grep -o 'ether [0-9a-f:]*')\" ]"
out=$(add d "$(net mvd ',"mode":"bridge"')")
check "a second macvlan beside the passthru one: refused with the reason" code_is "$out" 999 passthru
check "  nothing left in d" only_lo d
check "DEL c" run DEL c "$(net mvd ',"mode":"passthru"')" "$rc"
check "  nothing left in c" only_lo c

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
