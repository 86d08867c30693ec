#!/bin/sh
# cni-netlink's unit tests on the VM's Debian kernel, run by tests/vm/run.sh, which puts the
# test binary beside this script as netlink-tests. Here the tests that this machine's kernel
# cannot run (ipvlan, dummy links, bridge VLAN filtering) run instead of skipping.
echo "kernel $(uname -r)"
# One thread: the VM has one CPU, and the output stays readable.
exec ./netlink-tests --test-threads=1
