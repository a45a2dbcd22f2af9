#!/bin/sh
# Installs the host packages the kernel interop suite needs, if any is missing (Debian/apt, non-interactive).
# Exit 0 when everything is present afterwards; non-zero (with a message on stderr) otherwise.
set -u
need=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || need="$need qemu-system-x86"
[ -x /bin/busybox ] || need="$need busybox-static"
command -v mdadm >/dev/null 2>&1 || [ -x /sbin/mdadm ] || [ -x /usr/sbin/mdadm ] || need="$need mdadm"
command -v cpio >/dev/null 2>&1 || need="$need cpio"
command -v depmod >/dev/null 2>&1 || [ -x /sbin/depmod ] || [ -x /usr/sbin/depmod ] || need="$need kmod"
# the guest that mounts ext4 from r5ctl serve: mkfs.ext4 builds its filesystem; qemu connects to serve over NBD
command -v mkfs.ext4 >/dev/null 2>&1 || [ -x /sbin/mkfs.ext4 ] || [ -x /usr/sbin/mkfs.ext4 ] || need="$need e2fsprogs"
command -v nbdcopy >/dev/null 2>&1 || need="$need libnbd-bin"
command -v dpkg-deb >/dev/null 2>&1 || { echo "r5ctl kernel suite: dpkg-deb not found (needs a Debian-based host)" >&2; exit 1; }
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "r5ctl kernel suite: missing host packages:$need (run as root or install them)" >&2; exit 1; fi
else SUDO=""; fi
echo "r5ctl kernel suite: installing$need" >&2
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $need >&2 || {
  $SUDO apt-get update -q >&2 && $SUDO apt-get install -y -q --no-install-recommends $need >&2; } || {
  echo "r5ctl kernel suite: apt-get install$need failed" >&2; exit 1; }
