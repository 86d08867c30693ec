#!/usr/bin/env bash
# install.sh [--config NAME]... [--conf-dir DIR] [--list-configs]
#
# Builds the plugins (statically linked) and installs them and the DNS sidecar cni-dns into
# $CNI_BIN_DIR (default /opt/cni/bin).
#
# Example configs from conf/ are installed only when named (`--config 10-kindnet`), into
# --conf-dir (default $CNI_CONF_DIR, else /etc/cni/net.d), and never where they would change
# what a runtime already uses: not over a file of the same name, and not ahead of an existing
# config (containerd and cnitool take the first file by name), so an example can never
# silently become a node's network.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${CNI_BIN_DIR:-/opt/cni/bin}
CONF_DIR=${CNI_CONF_DIR:-/etc/cni/net.d}
CONFIGS=()
while [ $# -gt 0 ]; do
    case $1 in
        --config) CONFIGS+=("${2:?--config needs a name}"); shift 2 ;;
        --conf-dir) CONF_DIR=${2:?--conf-dir needs a directory}; shift 2 ;;
        --list-configs)
            for c in conf/*.conflist; do basename "$c" .conflist; done
            exit 0 ;;
        --with-configs)
            echo "install.sh: --with-configs is gone: name the examples you want with --config NAME (--list-configs)" >&2
            exit 2 ;;
        *) echo "usage: install.sh [--config NAME]... [--conf-dir DIR] [--list-configs]" >&2; exit 2 ;;
    esac
done

# Refuse bad names before building anything.
is_config() { case $1 in *.conf | *.conflist | *.json) return 0 ;; esac; return 1; }
for name in ${CONFIGS[@]+"${CONFIGS[@]}"}; do
    file=conf/${name%.conflist}.conflist
    [ -f "$file" ] || { echo "install.sh: no example $name (see --list-configs)" >&2; exit 2; }
    target=$(basename "$file")
    if [ -e "$CONF_DIR/$target" ]; then
        echo "install.sh: $CONF_DIR/$target exists; not overwriting it" >&2
        exit 1
    fi
    for existing in "$CONF_DIR"/*; do
        [ -f "$existing" ] && is_config "$existing" || continue
        if [[ "$target" < "$(basename "$existing")" ]]; then
            echo "install.sh: $target would be read before $(basename "$existing") in $CONF_DIR and replace it as the runtime's network; install it under a later name by hand if that is what you want" >&2
            exit 1
        fi
    done
done

. scripts/deps.sh
ensure_cargo
PLUGINS=()
for manifest in plugins/*/Cargo.toml; do PLUGINS+=("$(basename "$(dirname "$manifest")")"); done
build_release $(printf -- '-p %s ' "${PLUGINS[@]}") -p cni-dns
install -d "$BIN_DIR"
# cni-dns is the DNS sidecar dnsname starts; it looks for it next to itself.
for p in "${PLUGINS[@]}" cni-dns; do
    install -m 0755 "$RELEASE_DIR/$p" "$BIN_DIR/$p"
    echo "installed $BIN_DIR/$p"
done
for name in ${CONFIGS[@]+"${CONFIGS[@]}"}; do
    install -d "$CONF_DIR"
    install -m 0644 "conf/${name%.conflist}.conflist" "$CONF_DIR/"
    echo "installed $CONF_DIR/${name%.conflist}.conflist"
done
