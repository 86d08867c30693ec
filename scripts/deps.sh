#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmarks need on a fresh Debian 12 machine:
# Debian packages (only those missing) and a Rust toolchain check. Sourced by the other scripts.
set -euo pipefail

# What the demo needs: iproute2 (ip netns), nftables (the plugins' masquerade and port maps)
# and busybox (the demo's web server).
DEMO_PACKAGES=(iproute2 nftables busybox-static)
# What the tests and benchmarks add: the reference plugins to compare with, the runtimes they
# drive (podman, containerd), iptables backends, DNS and traffic tools, qemu for the VM tests.
TEST_PACKAGES=("${DEMO_PACKAGES[@]}" iptables containernetworking-plugins dnsutils procps psmisc
               util-linux iputils-ping qemu-system-x86 podman runc conmon containerd conntrack
               curl python3-venv)

ensure_debian_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null || true
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: install a Rust toolchain (rustup) matching rust-toolchain.toml" >&2
        exit 1
    fi
}

ensure_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "this needs root (network namespaces); run it with sudo" >&2
        exit 1
    fi
}

# Everything a script of this repository needs before it starts: root, the given Debian
# packages, cargo.
prepare_machine() {
    ensure_root
    ensure_debian_packages "$@"
    ensure_cargo
}

# Builds release binaries of the given packages the way they are installed on a node:
# statically linked (static-pie), which saves ~0.25 ms of dynamic loading per exec (see
# BENCHMARKS.md). --target keeps the flag off build scripts and proc-macros. Sets RELEASE_DIR.
build_release() {
    local host
    host=$(rustc -vV | sed -n 's/^host: //p')
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
        cargo build --release --quiet --target "$host" "$@"
    RELEASE_DIR="$PWD/target/$host/release"
}
