#!/bin/sh
# Build (or reuse) the Debian bookworm root the boot test boots with systemd-nspawn, as a tarball
# in a cache directory, and print the tarball's path.
#
#   hil_tests/boot/build_root.sh [CACHE_DIR]      default /var/cache/gridgate-boot
#
# The tarball's name carries a hash of this script, so a change to the package list builds a new
# one; a finished tarball is only ever renamed into place, so an interrupted build leaves nothing
# a later run could mistake for a root. Needs root and debootstrap. The mirror is the one apt uses
# on this machine (the first bookworm "debian" URI in /etc/apt/sources.list*), or
# GRIDGATE_BOOT_MIRROR.
set -eu

cache=${1:-/var/cache/gridgate-boot}
here=$(cd "$(dirname "$0")" && pwd)
# What the gateway needs at run time and nothing else: systemd as PID 1, python3 and its venv
# module for install/install.sh, procps for the units' ExecReload=/bin/kill, dbus for systemctl.
# No mosquitto: the upstream broker runs on the host (a gateway's broker is never on the gateway),
# and one inside would bind port 1883 of the shared network namespace.
packages=systemd,systemd-sysv,dbus,python3,python3-venv,procps
key=$(cat "$0" | sha256sum | cut -c1-12)
tarball=$cache/bookworm-$key.tar

if [ -s "$tarball" ]; then
    echo "$tarball"
    exit 0
fi

mirror=${GRIDGATE_BOOT_MIRROR:-}
if [ -z "$mirror" ]; then
    # deb822 (URIs: ...) and one-line (deb URI suite ...) sources, main archive only.
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null | sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]*\)\{0,1\}\([^[:space:]]*\).*/\2/p' |
        tr ' ' '\n' | grep -E '/debian/?$' | head -n 1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

command -v debootstrap >/dev/null 2>&1 || {
    echo "build_root.sh: debootstrap is missing (apt-get install debootstrap systemd-container)" >&2
    exit 1
}
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build_root.sh: debootstrap bookworm from $mirror into $work/root" >&2
debootstrap --variant=minbase --include="$packages" bookworm "$work/root" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
}
# No getty on the container's console: nothing logs in, and it would compete for the pty.
ln -sf /dev/null "$work/root/etc/systemd/system/console-getty.service"
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
tar -C "$work/root" --numeric-owner -cf "$work/root.tar" .
mv "$work/root.tar" "$tarball"
# Older roots of this cache are now unused.
find "$cache" -maxdepth 1 -name 'bookworm-*.tar' ! -name "bookworm-$key.tar" -delete
echo "$tarball"
