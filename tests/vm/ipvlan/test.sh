#!/bin/sh
# The ipvlan plugin, run inside the test VM by tests/vm/run.sh (this machine's kernel has no
# ipvlan; the VM's Debian 6.1 kernel has, and dummy links to use as masters). The built
# `ipvlan` and `host-local` are beside this script (/carry).
#
# Masters are dummy links; the ipvlan mode belongs to the master, so each mode has its own:
#   m2  l2   10.81.0.0/24  a .2, b .3
#   m3  l3   10.82.0.0/24  c .2, d .3
#   m4  l3s  10.84.0.0/24  s .2
#   m5  chained (no master, no ipam: both from prevResult)  e 10.83.0.5, f 10.83.0.6
. "$(dirname "$0")/lib.sh"

no_allocations() { # no_allocations NET
    if ls "$STATE/ipam/$1/" 2>/dev/null | grep -q '^10\.'; then
        ls "$STATE/ipam/$1/"
        return 1
    fi
}

echo "kernel $(uname -r), ipvlan module: $(grep -c '^ipvlan ' /proc/modules)"
STATE=/tmp/cni
mkdir -p $STATE
for m in m2 m3 m4 m5; do
    ip link add $m type dummy
    ip link set $m up
done

# net NAME EXTRA: a config without its closing brace (run adds prevResult and it).
net() {
    printf '{"cniVersion":"1.1.0","name":"%s","type":"ipvlan"%s' "$1" "$2"
}
ipam() { # ipam SUBNET
    printf ',"ipam":{"type":"host-local","dataDir":"%s/ipam","ranges":[[{"subnet":"%s"}]]}' "$STATE" "$1"
}
L2=$(net l2 ",\"master\":\"m2\",\"mode\":\"l2\"$(ipam 10.81.0.0/24)")
L3=$(net l3 ",\"master\":\"m3\",\"mode\":\"l3\"$(ipam 10.82.0.0/24)")
L3S=$(net l3s ",\"master\":\"m4\",\"mode\":\"l3s\"$(ipam 10.84.0.0/24)")
CHAINED=$(net chained ',"mode":"l2"')

# run COMMAND CONTAINER CONFIG [PREVRESULT] [CNI_NETNS]: the plugin as a runtime runs it.
run() {
    if [ -n "${4:-}" ]; then input="$3,\"prevResult\":$4}"; else input="$3}"; fi
    printf '%s' "$input" | CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=${5-/run/netns/$2} \
        CNI_IFNAME=eth0 CNI_PATH=$PWD "$PWD/ipvlan"
}
add() { # add CONTAINER CONFIG [PREVRESULT]: a new netns and the ADD's output
    ip netns add "$1"
    run ADD "$1" "$2" "${3:-}"
}
mode_of() { ip -n "$1" -d link show eth0 | grep -o 'ipvlan  *mode [a-z0-9]*' | awk '{print $3}'; }
mac_of() { ip -n "$1" link show "${2:-eth0}" | grep -o 'link/ether [0-9a-f:]*' | awk '{print $2}'; }
host_mac() { ip link show "$1" | grep -o 'link/ether [0-9a-f:]*' | awk '{print $2}'; }

echo "# l2 and l3 between two containers"
ra=$(add a "$L2")
rb=$(add b "$L2")
rc=$(add c "$L3")
rd=$(add d "$L3")
rs=$(add s "$L3S")
check "ADD a: eth0 in its netns, address .2 on interface 0" \
    contains "$ra" '"name":"eth0","sandbox":"/run/netns/a"}],"ips":[{"address":"10.81.0.2/24","gateway":"10.81.0.1","interface":0}]'
for r in "$rb" "$rc" "$rd" "$rs"; do check "ADD b, c, d, s" contains "$r" '"interfaces"'; done
check "a is an ipvlan in mode l2" test "$(mode_of a)" = l2
check "c is an ipvlan in mode l3" test "$(mode_of c)" = l3
check "s is an ipvlan in mode l3s" test "$(mode_of s)" = l3s
check "an ipvlan has its master's MAC" test "$(mac_of a)" = "$(host_mac m2)"
check "the result reports that MAC" contains "$ra" "\"mac\":\"$(host_mac m2)\""
check "the temporary name never reached the host" sh -c '! ip -o link show | grep -q " tmp"'
check "l2: a -> b" pings a 10.81.0.3
check "l2: b -> a" pings b 10.81.0.2
check "l3: c -> d" pings c 10.82.0.3
check "l3: d -> c" pings d 10.82.0.2
check "l2 and l3 networks are apart: a -/-> c" blocked a 10.82.0.2

echo "# CHECK"
check "CHECK a" run CHECK a "$L2" "$ra"
check "CHECK c" run CHECK c "$L3" "$rc"
check "CHECK s" run CHECK s "$L3S" "$rs"
out=$(run CHECK c "$(net l3 ",\"master\":\"m3\",\"mode\":\"l2\"$(ipam 10.82.0.0/24)")" "$rc")
check "CHECK with another mode in the config: 103" code_is "$out" 103 "mode"
out=$(run CHECK c "$(net l3 ",\"master\":\"m2\",\"mode\":\"l3\"$(ipam 10.82.0.0/24)")" "$rc")
check "CHECK with another master in the config: 103" code_is "$out" 103 "not a child of master m2"
ip -n d addr flush dev eth0
out=$(run CHECK d "$L3" "$rd")
check "CHECK d after its address was flushed: 103" code_is "$out" 103 "10.82.0.3/24"

echo "# STATUS and GC"
check "STATUS with the master present" run STATUS x "$L2" "" ""
out=$(run STATUS x "$(net l2 ",\"master\":\"m9\"$(ipam 10.81.0.0/24)")" "" "")
check "STATUS without the master: 50" code_is "$out" 50 "m9"
check "STATUS of the chained form (no master, no ipam; STATUS has no prevResult)" run STATUS x "$CHAINED" "" ""
ip netns add g
run ADD g "$L2" >/dev/null
GC=$(net l2 ",\"master\":\"m2\",\"mode\":\"l2\",\"cni.dev/valid-attachments\":[{\"containerID\":\"a\",\"ifname\":\"eth0\"},{\"containerID\":\"b\",\"ifname\":\"eth0\"}]$(ipam 10.81.0.0/24)")
check "GC keeps a's and b's addresses, releases g's" sh -c \
    "printf '%s}' '$GC' | CNI_COMMAND=GC CNI_PATH=$PWD $PWD/ipvlan && ls $STATE/ipam/l2 | grep -q 10.81.0.2 && ! ls $STATE/ipam/l2 | grep -q 10.81.0.4"
run DEL g "$L2" >/dev/null

echo "# chained: master and addresses from prevResult"
PREV_E='{"cniVersion":"1.1.0","interfaces":[{"name":"m5"}],"ips":[{"address":"10.83.0.5/24","interface":0}]}'
PREV_F='{"cniVersion":"1.1.0","interfaces":[{"name":"m5"}],"ips":[{"address":"10.83.0.6/24","interface":0}]}'
re=$(add e "$CHAINED" "$PREV_E")
rf=$(add f "$CHAINED" "$PREV_F")
check "chained ADD keeps prevResult's interface and adds eth0" \
    contains "$re" '"interfaces":[{"name":"m5"},{"mac":'
check "prevResult's address now on eth0 (interface 1)" \
    contains "$re" '"ips":[{"address":"10.83.0.5/24","interface":1}]'
check "e's eth0 is a child of m5 holding 10.83.0.5" sh -c \
    "ip -n e -d link show eth0 | grep -q ipvlan && ip -n e addr show eth0 | grep -q 'inet 10.83.0.5/24'"
check "chained: e -> f" pings e 10.83.0.6
check "CHECK e with its final result" run CHECK e "$CHAINED" "$re"
check "DEL e (nothing of IPAM to release)" run DEL e "$CHAINED" "$re"
check "e has only lo left" only_lo e
out=$(add h "$CHAINED" '{"cniVersion":"1.1.0","interfaces":[{"name":"m5"},{"name":"m2"}],"ips":[{"address":"10.83.0.7/24"}]}')
check "chained with two interfaces and no master: 7" code_is "$out" 7 "m5, m2"
check "  nothing left in h" only_lo h

echo "# bad input: clear errors, nothing left behind"
bad() { # bad NAME EXTRA CODE NEEDLE
    out=$(run ADD h "$(net bad "$2$(ipam 10.85.0.0/24)")")
    check "$1: $3" code_is "$out" "$3" "$4"
    check "  nothing left in the container" only_lo h
    check "  no address allocated" no_allocations bad
}
bad "unknown mode" ',"master":"m2","mode":"l4"' 7 "unknown ipvlan mode"
bad "missing master" ',"master":"m9"' 7 "m9 does not exist"
bad "mtu above the master's" ',"master":"m2","mtu":9000' 7 "above the MTU of master m2 (1500)"
bad "lo as master" ',"master":"lo"' 7 "loopback"
out=$(run ADD h "$(net bad ',"master":"m2"')")
check "no ipam and not chained: 7" code_is "$out" 7 "ipam"
check "  nothing left in the container" only_lo h
ip -n h link add eth0 type dummy
out=$(run ADD h "$L2")
check "CNI_IFNAME taken in the container: 4" code_is "$out" 4 "already exists"
check "  the existing eth0 is untouched" sh -c 'ip -n h -d link show eth0 | grep -q dummy'
check "  no address was allocated (a's and b's only)" test "$(ls $STATE/ipam/l2 | grep -c '^10\.')" = 2

echo "# DEL: twice, netns gone, master gone, empty CNI_NETNS"
check "DEL a" run DEL a "$L2" "$ra"
check "DEL a again" run DEL a "$L2" "$ra"
check "DEL a without CNI_NETNS" run DEL a "$L2" "" ""
check "a has only lo left" only_lo a
check "a's address released" sh -c "! ls $STATE/ipam/l2 | grep -q 10.81.0.2"
ip netns del b
check "DEL b after its netns is gone" run DEL b "$L2" "$rb"
check "b's address released" sh -c "! ls $STATE/ipam/l2 | grep -q 10.81.0.3"
ip link del m3
check "DEL c after its master is gone" run DEL c "$L3" "$rc"
check "DEL d after its master is gone, without prevResult" run DEL d "$L3"
check "c and d have only lo left" sh -c 'only_lo() { [ "$(ip -n "$1" -o link show | wc -l)" = 1 ]; }; only_lo c && only_lo d'
check "l3 addresses released" no_allocations l3
run DEL f "$CHAINED" "$rf" >/dev/null
run DEL s "$L3S" "$rs" >/dev/null
check "no address left anywhere" sh -c "! ls $STATE/ipam/*/ 2>/dev/null | grep -q '^10\.'"

echo "# the conformance checklist's plugin-specific items, in every version"
out=$(printf '{"cniVersion":"1.0.0"}' | CNI_COMMAND=VERSION "$PWD/ipvlan")
check "VERSION lists 0.1.0 to 1.1.0" contains "$out" '"supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]'
for v in 0.3.1 0.4.0 1.0.0 1.1.0; do
    conf=$(printf '{"cniVersion":"%s","name":"vers","type":"ipvlan","master":"m2"%s' "$v" "$(ipam 10.87.0.0/24)")
    r=$(add "v$v" "$conf")
    check "$v: result in $v" contains "$r" "\"cniVersion\":\"$v\""
    case $v in
    0.*) check "$v: ips[].version" contains "$r" '"version":"4"' ;;
    *) check "$v: no ips[].version" sh -c "! echo '$r' | grep -q '\"version\"'" ;;
    esac
    out=$(run CHECK "v$v" "$conf" "$r")
    case $v in
    0.3.1) check "$v: CHECK is code 1" code_is "$out" 1 ;;
    *) check "$v: CHECK" test -z "$out" ;;
    esac
    out=$(run GC "v$v" "$conf")
    case $v in
    1.1.0) check "$v: GC" test -z "$out" ;;
    *) check "$v: GC is code 1" code_is "$out" 1 ;;
    esac
    check "$v: DEL" run DEL "v$v" "$conf" "$r"
    check "$v: DEL again" run DEL "v$v" "$conf" "$r"
done
check "every version: addresses released" no_allocations vers
out=$(printf '%s}' "$L2" | CNI_COMMAND=ADD CNI_CONTAINERID=x CNI_IFNAME=eth0 "$PWD/ipvlan")
check "ADD without CNI_NETNS: 4" code_is "$out" 4 CNI_NETNS

echo "# the mode belongs to the master"
ra=$(add a2 "$L2")
check "an l3 network on the l2 master m2 switches its existing ipvlans too" sh -c \
    "ip netns add a3 && printf '%s}' '$(net l2b ",\"master\":\"m2\",\"mode\":\"l3\"$(ipam 10.86.0.0/24)")' | CNI_COMMAND=ADD CNI_CONTAINERID=a3 CNI_NETNS=/run/netns/a3 CNI_IFNAME=eth0 CNI_PATH=$PWD $PWD/ipvlan >/dev/null && ip -n a2 -d link show eth0 | grep -q 'mode l3 '"
out=$(run CHECK a2 "$L2" "$ra")
check "  and CHECK of the l2 network reports it: 103" code_is "$out" 103 "mode l3, expected l2"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
