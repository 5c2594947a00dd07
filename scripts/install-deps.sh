#!/usr/bin/env bash
# Installs what building, running and testing Stratus needs on Debian 12, and nothing
# that is already there: a C compiler (for ring), Python with venv (for the
# end-to-end tests), psql (to make throw-away test schemas), qemu-img (to make test
# disk images; qemu-storage-daemon serves volumes to other hosts over NBD), the network agent's tools (iproute2, nftables, dnsmasq and its dhcp_release) with busybox
# (DHCP clients in the data-plane tests' guest namespaces), libvirt with QEMU and
# xorriso (real guests and their config drives; libvirt-dev to build against), an SSH
# client (to reach the test guest), ipmitool (the bare-metal service's IPMI driver),
# Ceph's tools and daemons with QEMU's RBD driver (the `rbd` volume backend, tested
# against a single-node cluster: scripts/ceph-dev.sh), and the Rust toolchain. As root, it also starts
# libvirtd where nothing else runs it (see scripts/services.sh).
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need=()
command -v cc >/dev/null || need+=(build-essential)
command -v curl >/dev/null || need+=(curl ca-certificates)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v psql >/dev/null || need+=(postgresql-client)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v dhcp_release >/dev/null || need+=(dnsmasq-utils)
command -v busybox >/dev/null || need+=(busybox-static)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-storage-daemon >/dev/null || need+=(qemu-system-common)
command -v xorriso >/dev/null || need+=(xorriso)
command -v ssh >/dev/null || need+=(openssh-client)
command -v tmux >/dev/null || need+=(tmux)
command -v ipmitool >/dev/null || need+=(ipmitool)
command -v libvirtd >/dev/null || need+=(libvirt-daemon libvirt-daemon-driver-qemu)
command -v virsh >/dev/null || need+=(libvirt-clients)
pkg-config --exists libvirt 2>/dev/null || need+=(libvirt-dev)
command -v rbd >/dev/null || need+=(ceph-common)
command -v ceph-mon >/dev/null || need+=(ceph-mon)
command -v ceph-osd >/dev/null || need+=(ceph-osd)
command -v ceph-mgr >/dev/null || need+=(ceph-mgr)
compgen -G "/usr/lib/*/qemu/block-rbd.so" >/dev/null || need+=(qemu-block-extra)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Installing Debian's QEMU removes a newer qemu-utils (from backports) that does not
# match it; Debian's own then brings qemu-img back.
if ! command -v qemu-img >/dev/null; then
    echo "installing: qemu-utils"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-utils >/dev/null
fi

if ! command -v cargo >/dev/null; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "installing the Rust toolchain with rustup"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
fi

# Real guests need a libvirt daemon: start one where no service manager does.
source "$(dirname "$0")/services.sh"
ensure_libvirt
