#!/usr/bin/env bash
# boot.sh [-m MODULES] [-t SECONDS] DIR
#
# Boots the test VM (tests/vm/image.sh builds and caches its image) with DIR copied in as
# /carry, runs DIR/test.sh there as root, streams its output to stdout and exits with its
# status: 124 when the boot outlives the timeout, 125 when the VM ended without a result.
#
#   -m MODULES   kernel modules to load before the test, comma-separated (others load on demand)
#   -t SECONDS   bound on the whole boot (default $VM_TIMEOUT, else 900)
#
# Env: VM_ACCEL=auto|kvm|tcg (auto: KVM when the CPU advertises it and /dev/kvm opens, with
# TCG as the fallback when a KVM boot never reaches the test); VM_CACHE as for image.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
MODULES=veth
TIMEOUT=${VM_TIMEOUT:-900}
while getopts "m:t:" opt; do
    case $opt in
        m) MODULES=$OPTARG ;;
        t) TIMEOUT=$OPTARG ;;
        *) exit 125 ;;
    esac
done
shift $((OPTIND - 1))
[ $# = 1 ] && [ -f "$1/test.sh" ] || { echo "usage: boot.sh [-m MODULES] [-t SECONDS] DIR (with DIR/test.sh)" >&2; exit 125; }
DIR=$(cd "$1" && pwd)

IMG=$("$HERE/image.sh")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cni-rs-vm.XXXXXX")
QEMU_PID=
cleanup() {
    [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The initramfs is the cached base plus a second archive with DIR and the shared libraries
# its dynamically linked programs need (the kernel unpacks both).
mkdir -p "$TMP/payload/carry"
cp -a "$DIR/." "$TMP/payload/carry/"
find "$DIR" -type f -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; -print |
    xargs -r ldd 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
    while read -r lib; do
        install -D -m 755 "$(readlink -f "$lib")" "$TMP/payload/usr${lib#/usr}"
    done
(cd "$TMP/payload" && find . -mindepth 1 | /usr/bin/busybox cpio -o -H newc 2>/dev/null) > "$TMP/payload.cpio"
cat "$IMG/base.cpio" "$TMP/payload.cpio" > "$TMP/initrd"
rm -rf "$TMP/payload" "$TMP/payload.cpio"
memory=$((768 + $(stat -c %s "$TMP/initrd") * 3 / 1048576))

kvm_usable() {
    grep -qwE 'vmx|svm' /proc/cpuinfo && [ -r /dev/kvm ] && [ -w /dev/kvm ]
}

# boot ACCEL: one VM run; its console goes to $TMP/console.
boot() {
    local accel=(-accel tcg -cpu max)
    [ "$1" = kvm ] && accel=(-accel kvm -cpu host)
    : > "$TMP/console"
    timeout -k 5 "$TIMEOUT" qemu-system-x86_64 -nodefaults -no-user-config -display none \
        -no-reboot -machine pc "${accel[@]}" -smp 1 -m "$memory" \
        -kernel "$IMG/vmlinuz" -initrd "$TMP/initrd" \
        -append "console=ttyS0 quiet panic=-1 vmtest.modules=$MODULES" \
        -chardev "file,id=console,path=$TMP/console" -serial chardev:console \
        -chardev stdio,id=test,signal=off -serial chardev:test < /dev/null &
    QEMU_PID=$!
    local rc=0
    wait "$QEMU_PID" || rc=$?
    QEMU_PID=
    return $rc
}

started=$(date +%s)
accel=tcg
[ "${VM_ACCEL:-auto}" = kvm ] || { [ "${VM_ACCEL:-auto}" = auto ] && kvm_usable; } && accel=kvm
qemu_rc=0
boot $accel || qemu_rc=$?
if [ $accel = kvm ] && [ "${VM_ACCEL:-auto}" = auto ] && ! grep -q VM-TEST-EXIT "$TMP/console"; then
    echo "vm: the KVM boot did not reach the test; again under TCG" >&2
    accel=tcg qemu_rc=0
    boot tcg || qemu_rc=$?
fi

status=$(sed -n 's/.*VM-TEST-EXIT \([0-9]*\).*/\1/p' "$TMP/console" | tail -1)
if [ -z "$status" ]; then
    if [ $qemu_rc = 124 ] || [ $qemu_rc = 137 ]; then
        echo "vm: no result within ${TIMEOUT}s" >&2
        status=124
    else
        echo "vm: the VM ended without a result (qemu exit status $qemu_rc)" >&2
        status=125
    fi
    echo "---- vm console (last 40 lines)" >&2
    tr -d '\r' < "$TMP/console" | tail -40 >&2
fi
echo "vm: $(basename "$DIR"): exit status $status, $accel, $(($(date +%s) - started)) s" >&2
exit "$status"
