#!/usr/bin/env bash
# Builds the plugins (statically linked) and installs them into $CNI_BIN_DIR (default
# /opt/cni/bin). Example configs from conf/ are copied only with --with-configs, into
# $CNI_CONF_DIR (default /etc/cni/net.d), never over an existing file.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_cargo
BIN_DIR=${CNI_BIN_DIR:-/opt/cni/bin}
CONF_DIR=${CNI_CONF_DIR:-/etc/cni/net.d}
PLUGINS=()
for manifest in plugins/*/Cargo.toml; do PLUGINS+=("$(basename "$(dirname "$manifest")")"); done

build_release $(printf -- '-p %s ' "${PLUGINS[@]}")
install -d "$BIN_DIR"
# cni-dns is the DNS sidecar dnsname starts; it looks for it next to itself.
for p in "${PLUGINS[@]}" cni-dns; do
    install -m 0755 "$RELEASE_DIR/$p" "$BIN_DIR/$p"
    echo "installed $BIN_DIR/$p"
done
if [ "${1:-}" = --with-configs ]; then
    install -d "$CONF_DIR"
    for c in conf/*.conflist; do
        [ -e "$CONF_DIR/$(basename "$c")" ] && { echo "kept existing $CONF_DIR/$(basename "$c")"; continue; }
        install -m 0644 "$c" "$CONF_DIR/"
        echo "installed $CONF_DIR/$(basename "$c")"
    done
fi
