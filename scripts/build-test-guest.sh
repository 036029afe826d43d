#!/usr/bin/env bash
# Builds the Cirrus test guest: a tiny bootable Linux disk image (qcow2) assembled offline
# from Debian packages already on this host (see scripts/setup-host.sh). The guest is a
# Debian cloud kernel plus a busybox initramfs whose /init reports on the serial console
# that it booted, lists its NIC MAC addresses, prints the config drive's metadata, then
# idles forever (or powers off when the kernel command line has cirrus.poweroff=1).
#
# Usage: scripts/build-test-guest.sh [--force] [OUTPUT_PATH]
#   OUTPUT_PATH defaults to .cirrus/images/cirrus-test-guest.qcow2 under the repository root.
#   The output path is the last line printed on stdout.
#
# Needs no loop devices or mounts: the disk is a partitionless FAT volume filled with mtools
# and made bootable with the mtools-based `syslinux --install`.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$script_dir")

force=0
out=""
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "build-test-guest: unknown option $arg" >&2; exit 2 ;;
    *) out=$arg ;;
  esac
done
out=${out:-$repo_root/.cirrus/images/cirrus-test-guest.qcow2}

die() { echo "build-test-guest: $*" >&2; exit 1; }

for pkg in linux-image-cloud-amd64 busybox-static cpio syslinux syslinux-common mtools dosfstools qemu-utils; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || die "package $pkg is not installed (run scripts/setup-host.sh)"
done

# Newest installed cloud kernel; its modules must match it exactly.
kernel=$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n 1) || true
[[ -n "$kernel" && -r "$kernel" ]] || die "no readable /boot/vmlinuz-*-cloud-amd64 (package linux-image-cloud-amd64)"
kver=${kernel#/boot/vmlinuz-}
moddir=/lib/modules/$kver/kernel
[[ -d "$moddir" ]] || die "$moddir missing (package linux-image-cloud-amd64)"
busybox=$(command -v busybox) || die "busybox not found (package busybox-static)"

if [[ $force -eq 0 && -f "$out" && "$out" -nt "$0" && "$out" -nt "$kernel" ]]; then
  echo "$out"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- initramfs -----------------------------------------------------------------------
root=$work/initramfs
mkdir -p "$root"/{bin,dev,proc,sys,mnt,tmp,lib/modules}
cp "$busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
done

# Dependency order (cf. `modprobe --show-depends`): busybox insmod does not resolve
# dependencies, so a module loaded before what it needs fails with "unknown symbol".
modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk
  scsi_common scsi_mod libata ata_piix cdrom sr_mod crc-itu-t isofs
  failover net_failover virtio_net)
: > "$root/lib/modules/load-order"
for m in "${modules[@]}"; do
  src=$(find "$moddir" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" | head -n 1)
  if [[ -z "$src" ]]; then
    echo "build-test-guest: module $m not found, assuming it is built into the kernel" >&2
    continue
  fi
  dst=$root/lib/modules/$m.ko
  # busybox insmod only takes plain ELF objects.
  case "$src" in
    *.xz) xz -dc "$src" > "$dst" ;;
    *.zst) zstd -qdc "$src" > "$dst" ;;
    *.gz) gzip -dc "$src" > "$dst" ;;
    *) cp "$src" "$dst" ;;
  esac
  echo "$m" >> "$root/lib/modules/load-order"
done

cat > "$root/init" <<'EOF'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The cpio carries no /dev/console node, so attach stdio to the console explicitly.
exec </dev/console >/dev/console 2>&1

say() { echo "cirrus-test-guest: $*"; }

while read -r m; do
  insmod "/lib/modules/$m.ko" || say "warning: could not load $m"
done < /lib/modules/load-order

say "booted (kernel $(uname -r))"

# Disks and NICs are probed asynchronously after insmod; give them a moment to appear.
i=0
while [ $i -lt 50 ] && [ ! -b /dev/sr0 ] && ! findfs LABEL=config-2 >/dev/null 2>&1; do
  sleep 0.2; i=$((i + 1))
done

for nic in /sys/class/net/*; do
  [ "${nic##*/}" = lo ] && continue
  say "nic ${nic##*/} mac $(cat "$nic/address")"
done

cd=$(findfs LABEL=config-2 2>/dev/null || true)
if [ -z "$cd" ] && [ -b /dev/sr0 ]; then cd=/dev/sr0; fi
if [ -n "$cd" ] && mount -t iso9660 -o ro "$cd" /mnt 2>/dev/null; then
  say "config drive found ($cd)"
  for f in openstack/latest/meta_data.json openstack/latest/user_data; do
    if [ -f "/mnt/$f" ]; then
      say "--- $f"
      cat "/mnt/$f"; echo
    fi
  done
else
  say "no config drive"
fi

say "ready"
case " $(cat /proc/cmdline) " in
  *" cirrus.poweroff=1 "*) say "powering off"; poweroff -f ;;
esac
while :; do sleep 3600; done
EOF
chmod 755 "$root/init"

# -R 0:0 makes every entry root-owned without needing to be root.
(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet) | gzip -9 > "$work/initrd.gz"

# --- bootable FAT disk -----------------------------------------------------------------
cat > "$work/syslinux.cfg" <<'EOF'
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 1
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=ttyS0 quiet
EOF

# Volume size in KiB: payload plus 4 MiB for FAT tables, syslinux and slack.
payload=$(( ($(stat -c %s "$kernel") + $(stat -c %s "$work/initrd.gz")) / 1024 ))
disk=$work/disk.img
mkfs.vfat -C -n CIRRUSGST "$disk" $(( payload + 4096 )) >/dev/null
mcopy -i "$disk" "$kernel" ::vmlinuz
mcopy -i "$disk" "$work/initrd.gz" ::initrd.gz
mcopy -i "$disk" "$work/syslinux.cfg" ::syslinux.cfg
syslinux --install "$disk"

mkdir -p "$(dirname "$out")"
qemu-img convert -O qcow2 -c "$disk" "$work/out.qcow2"
mv -f "$work/out.qcow2" "$out"
echo "$out"
