#!/usr/bin/env bash
# image.sh [CACHE_DIR]
#
# Builds the test VM's image from Debian packages, unless the cached one was built from the
# same inputs: a stock Debian kernel (linux-image-amd64's current version) with the network
# modules the tests need, and an initramfs holding busybox, iproute2, nft, those modules and
# tests/vm/init. Prints the image directory (CACHE_DIR/image) on stdout.
#
#   CACHE_DIR/image/vmlinuz     the kernel
#   CACHE_DIR/image/base.cpio   the initramfs (uncompressed: unpacking is faster under TCG)
#   CACHE_DIR/image/KEY         the inputs it was built from; a match means nothing to do
#
# CACHE_DIR defaults to $VM_CACHE, else /var/cache/cni-rs-vm. Env: KERNEL_PKG pins the kernel
# package (e.g. linux-image-6.1.0-57-amd64). Runs as root (apt-get, mknod).
set -euo pipefail
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
CACHE=${1:-${VM_CACHE:-/var/cache/cni-rs-vm}}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
IMG=$CACHE/image
say() { echo "vm image: $*" >&2; }

# Host tools copied into the image, with the Debian package each comes from.
declare -A TOOL_PKG=([/usr/bin/busybox]=busybox-static [/bin/bash]=bash
    [/usr/sbin/ip]=iproute2 [/usr/sbin/bridge]=iproute2 [/usr/sbin/tc]=iproute2
    [/usr/sbin/nft]=nftables)
# Module files wanted (paths as modules.dep has them, an extended regex); their dependencies
# come along. crc32c is a soft dependency of libcrc32c (nf_tables, conntrack), loaded by alias.
MODULES_WANTED='^kernel/(net/(netfilter|ipv4|ipv6|bridge|8021q|sched)/|crypto/crc32c_generic\.ko$|drivers/net/(veth|dummy|macvlan|ifb|tun|ipvlan/[^/]*|vxlan/[^/]*)\.ko$)'

apt_install() {
    say "apt-get install $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "$@" >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null
        apt-get install -y -qq "$@" >/dev/null
    }
}

missing=()
for tool in "${!TOOL_PKG[@]}"; do
    [ -x "$tool" ] || missing+=("${TOOL_PKG[$tool]}")
done
if [ ${#missing[@]} -gt 0 ]; then apt_install $(printf '%s\n' "${missing[@]}" | sort -u); fi

# The kernel package linux-image-amd64 points at today, and its version.
if [ -z "${KERNEL_PKG:-}" ]; then
    KERNEL_PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$KERNEL_PKG" ]; then
        apt-get update -qq >/dev/null
        KERNEL_PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
fi
[ -n "$KERNEL_PKG" ] || { echo "vm image: no kernel package behind linux-image-amd64 (apt sources?)" >&2; exit 1; }
KVER=${KERNEL_PKG#linux-image-}
KERNEL_VERSION=$(apt-cache policy "$KERNEL_PKG" | awk '/Candidate:/ {print $2}')
TOOLS_VERSIONS=$(dpkg-query -W -f='${Package}=${Version} ' $(printf '%s\n' "${TOOL_PKG[@]}" | sort -u))
KEY="$KERNEL_PKG=$KERNEL_VERSION $TOOLS_VERSIONS$(cat "$0" "$HERE/init" | sha256sum | cut -c1-16)"
if [ -f "$IMG/KEY" ] && [ "$(cat "$IMG/KEY")" = "$KEY" ]; then
    echo "$IMG"
    exit 0
fi

say "building from $KERNEL_PKG $KERNEL_VERSION"
WORK=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && apt-get download -qq "$KERNEL_PKG=$KERNEL_VERSION" 2>&1 | grep -v unsandboxed >&2 || true)
DEB=$(ls "$WORK"/*.deb 2>/dev/null | head -1)
[ -n "$DEB" ] || { echo "vm image: apt-get download $KERNEL_PKG failed" >&2; exit 1; }
mkdir "$WORK/k"
dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$WORK/k" ./boot ./lib/modules
rm "$DEB"
KMOD=lib/modules/$KVER
/usr/bin/busybox depmod -b "$WORK/k" "$KVER"

R=$WORK/root
mkdir -p "$R"/{usr/bin,usr/sbin,usr/lib,usr/lib64,proc,sys,dev,run,tmp,root,etc,carry}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$R/$d"; done
chmod 1777 "$R/tmp"

# copy_elf FILE DEST: the file and the shared libraries it loads (merged /usr layout).
copy_elf() {
    install -D -m 755 "$1" "$R$2"
    { ldd "$1" 2>/dev/null || true; } | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
        while read -r lib; do
            dest=/usr${lib#/usr}
            [ -e "$R$dest" ] || install -D -m 755 "$(readlink -f "$lib")" "$R$dest"
        done
}
for tool in "${!TOOL_PKG[@]}"; do copy_elf "$tool" "/usr${tool#/usr}"; done
# busybox provides everything else; sh is bash, because Debian's busybox shell runs its own
# applets (ip, tc, ...) ahead of PATH and would hide iproute2.
for applet in $(/usr/bin/busybox --list); do
    for dir in usr/bin usr/sbin; do [ -e "$R/$dir/$applet" ] && continue 2; done
    ln -s busybox "$R/usr/bin/$applet"
done
ln -sf bash "$R/usr/bin/sh"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\n' > "$R/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$R/etc/hosts"
cp -r /etc/iproute2 "$R/etc/" 2>/dev/null || true
for f in /etc/protocols /etc/services; do [ -f "$f" ] && cp "$f" "$R/etc/"; done
install -m 755 "$HERE/init" "$R/init"

# The wanted modules and what they depend on (modules.dep lists every dependency of a module).
WANTED=$MODULES_WANTED awk -F: '$1 ~ ENVIRON["WANTED"] {print $1 $2}' "$WORK/k/$KMOD/modules.dep" |
    tr ' ' '\n' | grep . | sort -u > "$WORK/modules"
while read -r m; do install -D -m 644 "$WORK/k/$KMOD/$m" "$R/$KMOD/$m"; done < "$WORK/modules"
cp "$WORK/k/$KMOD"/modules.builtin* "$WORK/k/$KMOD/modules.order" "$R/$KMOD/"
/usr/bin/busybox depmod -b "$R" "$KVER"
say "$(wc -l < "$WORK/modules") modules"

mknod -m 600 "$R/dev/console" c 5 1
mknod -m 666 "$R/dev/null" c 1 3
rm -rf "$IMG.new"
mkdir "$IMG.new"
(cd "$R" && find . | LC_ALL=C sort | /usr/bin/busybox cpio -o -H newc 2>/dev/null) > "$IMG.new/base.cpio"
cp "$WORK/k/boot/vmlinuz-$KVER" "$IMG.new/vmlinuz"
echo "$KEY" > "$IMG.new/KEY"
rm -rf "$IMG"
mv "$IMG.new" "$IMG"
say "done: $IMG ($(du -sh "$IMG" | cut -f1))"
echo "$IMG"
