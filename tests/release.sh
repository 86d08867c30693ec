#!/usr/bin/env bash
# tests/release.sh: the release artifacts as a user gets them. Runs scripts/release.sh into a
# temp dir, then: the tarball matches its .sha256 and holds exactly the binaries, LICENSE and
# README; a plugin answers VERSION from the unpacked tarball; every binary names the same
# version (plugins with no environment, cnictl and cni-dns with --version); the .deb installs
# into a throwaway root (dpkg --root), lists its files there and touches nothing that a Debian
# package owns. Exits non-zero on the first failed check. Runs as root (dpkg).
set -euo pipefail
cd "$(dirname "$0")/.."
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cni-rs-release-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL - $*" >&2; exit 1; }
ok() { echo "ok   - $*"; }

scripts/release.sh "$TMP/dist"
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)
PLUGINS=()
for manifest in plugins/*/Cargo.toml; do PLUGINS+=("$(basename "$(dirname "$manifest")")"); done
TGZ=cni-rs-linux-amd64-v$VERSION.tgz
DEB=cni-rs_${VERSION}_amd64.deb

(cd "$TMP/dist" && sha256sum --quiet -c "$TGZ.sha256") || fail "$TGZ does not match its .sha256"
ok "$TGZ matches $TGZ.sha256"

want=$(printf '%s\n' "${PLUGINS[@]}" cni-dns cnictl LICENSE README.md | sort)
got=$(tar -tzf "$TMP/dist/$TGZ" | sed 's|^\./||' | grep . | sort)
[ "$got" = "$want" ] || fail "the tarball holds:"$'\n'"$got"$'\n'"expected:"$'\n'"$want"
ok "the tarball holds every plugin, cni-dns, cnictl, LICENSE and README.md"

mkdir "$TMP/unpacked"
tar -xzf "$TMP/dist/$TGZ" -C "$TMP/unpacked"
reply=$(echo '{"cniVersion":"1.0.0"}' | env -i CNI_COMMAND=VERSION "$TMP/unpacked/bridge")
case $reply in
    *'"supportedVersions":['*'"1.1.0"'*) ok "bridge from the tarball answers VERSION: $reply" ;;
    *) fail "bridge VERSION from the tarball: $reply" ;;
esac

for bin in "${PLUGINS[@]}" cni-dns cnictl; do
    ldd "$TMP/unpacked/$bin" 2>&1 | grep -qE 'not a dynamic executable|statically linked' ||
        fail "$bin is dynamically linked: $(ldd "$TMP/unpacked/$bin" 2>&1)"
done
ok "every binary is statically linked"

for plugin in "${PLUGINS[@]}"; do
    stdout=$(env -i "$TMP/unpacked/$plugin" 2>"$TMP/stderr") || fail "$plugin with no environment exited non-zero"
    [ -z "$stdout" ] || fail "$plugin with no environment printed on stdout: $stdout"
    first=$(head -1 "$TMP/stderr")
    [ "$first" = "CNI $plugin plugin v$VERSION" ] || fail "$plugin with no environment: $first"
done
ok "every plugin run with no environment says CNI <type> plugin v$VERSION on stderr"
[ "$("$TMP/unpacked/cnictl" --version)" = "cnictl $VERSION" ] || fail "cnictl --version: $("$TMP/unpacked/cnictl" --version)"
[ "$("$TMP/unpacked/cni-dns" --version)" = "cni-dns $VERSION" ] || fail "cni-dns --version: $("$TMP/unpacked/cni-dns" --version)"
ok "cnictl --version and cni-dns --version say $VERSION"

ROOT=$TMP/root
mkdir -p "$ROOT/var/lib/dpkg/info" "$ROOT/var/lib/dpkg/updates"
touch "$ROOT/var/lib/dpkg/status" "$ROOT/var/lib/dpkg/available"
dpkg --root="$ROOT" --force-script-chrootless -i "$TMP/dist/$DEB" >/dev/null ||
    fail "dpkg --root -i $DEB"
listed=$(dpkg --root="$ROOT" -L cni-rs)
for path in "${PLUGINS[@]/#//opt/cni/bin/}" /opt/cni/bin/cni-dns /usr/bin/cnictl; do
    grep -qx "$path" <<<"$listed" || fail "dpkg -L cni-rs lacks $path"
    [ -x "$ROOT$path" ] || fail "$path is not installed as an executable"
done
ok "the .deb installs into a throwaway root: $(wc -l <<<"$listed") paths, plugins in /opt/cni/bin, cnictl in /usr/bin"
reply=$(echo '{"cniVersion":"1.1.0"}' | env -i CNI_COMMAND=VERSION "$ROOT/opt/cni/bin/host-local")
case $reply in *'"1.1.0"'*) ok "host-local from the .deb answers VERSION" ;; *) fail "host-local VERSION: $reply" ;; esac
[ "$("$ROOT/usr/bin/cnictl" --version)" = "cnictl $VERSION" ] || fail "cnictl from the .deb"

# Nothing of Debian's: no file of ours is owned by an installed package, and the archive has no
# package of our name.
while read -r path; do
    [ -d "$ROOT$path" ] && continue
    if owner=$(dpkg -S "$path" 2>/dev/null); then fail "$path is also in Debian's ${owner%%:*}"; fi
done <<<"$listed"
if apt-cache show cni-rs >/dev/null 2>&1; then fail "Debian has a package named cni-rs"; fi
ok "the .deb's files and name are nobody else's"
# scripts/install.sh: examples only when named, never over or ahead of an existing config.
BIN=$TMP/opt-cni-bin CONFD=$TMP/net.d
mkdir -p "$CONFD"
CNI_BIN_DIR=$BIN scripts/install.sh --conf-dir "$CONFD" --config 10-kindnet >/dev/null ||
    fail "install.sh --config 10-kindnet"
[ -x "$BIN/ptp" ] && [ -x "$BIN/bandwidth" ] && [ -x "$BIN/cni-dns" ] || fail "install.sh left out binaries"
[ "$(ls "$CONFD")" = "10-kindnet.conflist" ] || fail "install.sh installed: $(ls "$CONFD")"
CNI_BIN_DIR=$BIN scripts/install.sh >/dev/null || fail "install.sh without configs"
[ "$(ls "$CONFD")" = "10-kindnet.conflist" ] || fail "install.sh without --config touched $CONFD"
if CNI_BIN_DIR=$BIN scripts/install.sh --conf-dir "$CONFD" --config 10-kindnet 2>/dev/null; then
    fail "install.sh overwrote an existing config"
fi
echo '{"cniVersion":"1.0.0","name":"mine","plugins":[{"type":"bridge"}]}' > "$CONFD/20-mine.conflist"
if CNI_BIN_DIR=$BIN scripts/install.sh --conf-dir "$CONFD" --config 10-containerd-net 2>/dev/null; then
    fail "install.sh put an example ahead of an existing config"
fi
CNI_BIN_DIR=$BIN scripts/install.sh --conf-dir "$CONFD" --config nerdctl-bridge >/dev/null ||
    fail "install.sh --config nerdctl-bridge (sorts after 20-mine)"
if scripts/install.sh --conf-dir "$CONFD" --config no-such-example 2>/dev/null; then
    fail "install.sh took an unknown example"
fi
[ "$(ls "$CONFD" | tr '\n' ' ')" = "10-kindnet.conflist 20-mine.conflist nerdctl-bridge.conflist " ] ||
    fail "install.sh left: $(ls "$CONFD")"
ok "install.sh installs the binaries, and examples only when named, never over or ahead of a config"
echo "release artifacts: all checks passed"
