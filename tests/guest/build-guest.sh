#!/usr/bin/env bash
# Builds the tiny test guest: deploy/ramdisk/build-initramfs.sh with this folder's
# init, which gets an address by DHCP, takes its host name and SSH key from a config
# drive (`config-2`) or the metadata service at 169.254.169.254, starts dropbear, and
# prints `stratus-guest: ready` on its console.
#
#   tests/guest/build-guest.sh OUTDIR      → OUTDIR/vmlinuz, OUTDIR/initrd.img
#
# Boot it with direct kernel boot (an image's kernel_id / ramdisk_id properties), at
# least 96 MiB of RAM, console on ttyS0.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
exec bash "$HERE/../../deploy/ramdisk/build-initramfs.sh" "${1:?usage: build-guest.sh OUTDIR}" "$HERE/init"
