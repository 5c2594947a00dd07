#!/usr/bin/env bash
# Builds the bare-metal deploy ramdisk (see ./init for what it does) from Debian
# packages:
#
#   deploy/ramdisk/build.sh OUTDIR     → OUTDIR/vmlinuz, OUTDIR/initrd.img
#
# then point the bare-metal service at them: [baremetal] deploy_kernel = OUTDIR/vmlinuz,
# deploy_ramdisk = OUTDIR/initrd.img.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
exec bash "$HERE/build-initramfs.sh" "${1:?usage: build.sh OUTDIR}" "$HERE/init"
