#!/usr/bin/env bash
# Installs and starts what Cirrus needs on a Debian host outside systemd: libvirt with the
# QEMU driver (TCG where there is no /dev/kvm), virtlogd, qemu-img, genisoimage, and the
# packages the Linux test guest is built from. Idempotent: a second run only checks.
set -euo pipefail

need_pkgs=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
  qemu-system-x86 qemu-utils genisoimage libxml2-utils iproute2
  linux-image-cloud-amd64 busybox-static cpio syslinux syslinux-common mtools dosfstools
  python3-openstackclient python3-novaclient)

missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup-host: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
fi

# libvirtd resolves its compiled-in default user and group before it reads qemu.conf.
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null || useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
mkdir -p /var/log/libvirt /var/run/libvirt /var/lib/libvirt/images
if ! grep -q '^user = "root"' /etc/libvirt/qemu.conf 2>/dev/null; then
  printf 'user = "root"\ngroup = "root"\nremember_owner = 0\n' > /etc/libvirt/qemu.conf
fi

pgrep -x virtlogd >/dev/null || virtlogd -d
if ! pgrep -x libvirtd >/dev/null; then
  libvirtd -d
fi
for _ in $(seq 1 50); do
  virsh -c qemu:///system version >/dev/null 2>&1 && break
  sleep 0.2
done
virsh -c qemu:///system version >/dev/null
echo "setup-host: libvirt qemu:///system answers"
