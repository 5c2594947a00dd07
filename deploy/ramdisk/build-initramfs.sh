#!/usr/bin/env bash
# Builds a small Linux (kernel + initramfs) from Debian packages only (nothing else is
# downloaded): the kernel of linux-image-cloud-amd64, busybox (udhcpc, wget, dd,
# sha256sum), dropbear for SSH, and the disk and network modules (virtio, AHCI/SATA,
# NVMe, e1000), with INIT as its /init.
#
#   deploy/ramdisk/build-initramfs.sh OUTDIR INIT   → OUTDIR/vmlinuz, OUTDIR/initrd.img
#
# The bare-metal deploy ramdisk (deploy/ramdisk/build.sh) and the test guest
# (tests/guest/build-guest.sh) are both made with it. Boot with at least 96 MiB of RAM.
# Packages are cached in OUTDIR/debs.
set -euo pipefail

OUT="${1:?usage: build-initramfs.sh OUTDIR INIT}"
INIT="$(cd "$(dirname "${2:?usage: build-initramfs.sh OUTDIR INIT}")" && pwd)/$(basename "$2")"
mkdir -p "$OUT/debs"
OUT="$(cd "$OUT" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# The kernel package behind the meta-package, and dropbear with its libraries.
kernel_of() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
kernel_pkg="$(kernel_of)"
if [ -z "$kernel_pkg" ]; then
    # No package lists yet on this machine.
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    kernel_pkg="$(kernel_of)"
fi
[ -n "$kernel_pkg" ] || { echo "cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
pkgs=("$kernel_pkg" busybox-static dropbear-bin libtomcrypt1 libtommath1 libgmp10 zlib1g libcrypt1 libc6)
(
    cd "$OUT/debs"
    for p in "${pkgs[@]}"; do
        ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download -q "$p" >/dev/null 2>&1 || { echo "cannot download $p" >&2; exit 1; }
    done
)
for d in "$OUT"/debs/*.deb; do dpkg-deb -x "$d" "$WORK/pkgs"; done

kver="${kernel_pkg#linux-image-}"
cp "$WORK/pkgs/boot/vmlinuz-$kver" "$OUT/vmlinuz"

root="$WORK/root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,root/.ssh,mnt/config,lib/modules,etc/dropbear,var/log}
cp "$WORK/pkgs/bin/busybox" "$root/bin/busybox"
cp "$WORK/pkgs/usr/sbin/dropbear" "$root/sbin/dropbear"

# dropbear's shared libraries, from the extracted packages, at the paths it expects.
libdirs="$WORK/pkgs/lib/x86_64-linux-gnu:$WORK/pkgs/usr/lib/x86_64-linux-gnu"
mkdir -p "$root/lib/x86_64-linux-gnu" "$root/lib64"
for lib in $(LD_LIBRARY_PATH="$libdirs" ldd "$root/sbin/dropbear" | awk '/=>/ {print $1}'); do
    src="$(find "$WORK/pkgs" -name "$lib" | head -n1)"
    [ -n "$src" ] || { echo "missing library $lib" >&2; exit 1; }
    cp -L "$src" "$root/lib/x86_64-linux-gnu/$lib"
done
cp -L "$(find "$WORK/pkgs" -name 'ld-linux-x86-64.so.2' | head -n1)" "$root/lib64/ld-linux-x86-64.so.2"

# virtio (PCI, net, block), the IDE CD-ROM with ISO 9660 a config drive is on (as Nova
# gives it, so volumes start at vdb), and the disks and NICs of common servers, in load
# order (a module missing from the kernel package is skipped).
mods=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net virtio_blk
      scsi_common scsi_mod libata ata_piix cdrom sr_mod isofs sd_mod libahci ahci nvme_core nvme virtio_scsi
      pps_core ptp e1000 e1000e)
for m in "${mods[@]}"; do
    f="$(find "$WORK/pkgs/lib/modules/$kver" -name "$m.ko*" | head -n1)"
    if [ -n "$f" ]; then cp "$f" "$root/lib/modules/"; fi
done
printf '%s\n' "${mods[@]}" > "$root/lib/modules/order"

cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
EOF
echo "root:*:19000:0:99999:7:::" > "$root/etc/shadow"
echo "/bin/sh" > "$root/etc/shells"
cp "$HERE/udhcpc.sh" "$root/etc/udhcpc.sh"
cp "$INIT" "$root/init"
chmod 755 "$root/init" "$root/etc/udhcpc.sh"

(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -9) > "$OUT/initrd.img"
echo "built $OUT/vmlinuz ($kver) and $OUT/initrd.img ($(du -h "$OUT/initrd.img" | cut -f1))"
