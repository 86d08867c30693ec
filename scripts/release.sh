#!/usr/bin/env bash
# release.sh [OUT_DIR]
#
# Builds the static binaries and writes, into OUT_DIR (default target/dist):
#   cni-rs-linux-amd64-v<version>.tgz          every plugin, cni-dns, cnictl, LICENSE, README.md,
#                                              flat, as the reference's cni-plugins-linux-amd64-*.tgz
#                                              (unpack into /opt/cni/bin)
#   cni-rs-linux-amd64-v<version>.tgz.sha256   its checksum, in sha256sum's format
#   cni-rs_<version>_amd64.deb                 the plugins and cni-dns in /opt/cni/bin, cnictl in
#                                              /usr/bin, cni-dns.service (not enabled)
# <version> is the workspace's (Cargo.toml). Archives are reproducible: file times are the
# last commit's, owners root, order sorted.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_cargo
command -v dpkg-deb >/dev/null || { echo "release: dpkg-deb not found (package dpkg)" >&2; exit 1; }
OUT=${1:-target/dist}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$VERSION" ] || { echo "release: no version in Cargo.toml's [workspace.package]" >&2; exit 1; }
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
PLUGINS=()
for manifest in plugins/*/Cargo.toml; do PLUGINS+=("$(basename "$(dirname "$manifest")")"); done
BINARIES=("${PLUGINS[@]}" cni-dns cnictl)

echo "release: building v$VERSION: ${BINARIES[*]} (static)" >&2
build_release $(printf -- '-p %s ' "${PLUGINS[@]}") -p cni-dns -p cnictl
for bin in "${BINARIES[@]}"; do
    if ldd "$RELEASE_DIR/$bin" >/dev/null 2>&1 && ! ldd "$RELEASE_DIR/$bin" 2>&1 | grep -q 'statically linked'; then
        echo "release: $bin is dynamically linked" >&2
        exit 1
    fi
done

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/cni-rs-release.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
# pack DIR ARCHIVE: a reproducible gzip'd tar of DIR's content.
pack() {
    tar -C "$1" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
        -cf - . | gzip -9n > "$2"
}

# The tarball: flat, like the reference's.
mkdir "$STAGE/tgz"
for bin in "${BINARIES[@]}"; do install -m 755 "$RELEASE_DIR/$bin" "$STAGE/tgz/"; done
install -m 644 LICENSE README.md "$STAGE/tgz/"
TGZ=cni-rs-linux-amd64-v$VERSION.tgz
pack "$STAGE/tgz" "$OUT/$TGZ"
(cd "$OUT" && sha256sum "$TGZ" > "$TGZ.sha256")

# The Debian package. /opt/cni/bin is where runtimes look by default; Debian's own plugins
# (containernetworking-plugins) live in /usr/lib/cni, so nothing overlaps.
DEB=$STAGE/deb
install -d "$DEB/DEBIAN" "$DEB/opt/cni/bin" "$DEB/usr/bin" "$DEB/usr/share/doc/cni-rs" \
    "$DEB/lib/systemd/system"
for bin in "${PLUGINS[@]}" cni-dns; do install -m 755 "$RELEASE_DIR/$bin" "$DEB/opt/cni/bin/"; done
install -m 755 "$RELEASE_DIR/cnictl" "$DEB/usr/bin/"
install -m 644 conf/cni-dns.service "$DEB/lib/systemd/system/"
install -m 644 README.md "$DEB/usr/share/doc/cni-rs/"
install -m 644 LICENSE "$DEB/usr/share/doc/cni-rs/copyright"
find "$DEB" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
cat > "$DEB/DEBIAN/control" <<CONTROL
Package: cni-rs
Version: $VERSION
Architecture: amd64
Maintainer: cni-rs developers <cni-rs@localhost>
Section: net
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$DEB" | cut -f1)
Recommends: nftables, iproute2
Suggests: iptables
Description: CNI plugins in Rust, drop-in for the reference plugins
 The CNI plugins bridge, macvlan, ipvlan, portmap, host-local, loopback,
 firewall, tuning and dnsname (with its DNS sidecar cni-dns) in /opt/cni/bin,
 where podman, containerd, nerdctl and cnitool find them; cnictl, a
 cnitool-compatible runner with Docker's network workflow, in /usr/bin.
CONTROL
DEBFILE=cni-rs_${VERSION}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$DEB" "$OUT/$DEBFILE" >/dev/null
echo "release: wrote $OUT/$TGZ, $OUT/$TGZ.sha256, $OUT/$DEBFILE" >&2
