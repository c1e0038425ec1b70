#!/usr/bin/env bash
# Acceptance check of issue 12 on arm64, off the Pi: an arm64 Debian Bookworm root
# (debootstrap from Debian's archive) under qemu-user-static runs
# `install.sh --pi --skip-pi-os-packages`, imports every module of the gate with
# Debian's python3-pygame (not a pip wheel) and runs `kiosk selftest --sim`.
#
#   sudo tests/pi/arm64-chroot.sh [ROOT_DIR]      (default /var/tmp/kiosk-arm64)
#
# Takes several minutes (debootstrap and pip under emulation); not part of the
# default test command. It registers the qemu-aarch64 binfmt handler on the host
# kernel (system-wide), so run it on a machine where that is acceptable.
# Status: passed on 2026-12-02 and 2026-12-04 (results in docs/provisioning.md, section 11).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
root="${1:-/var/tmp/kiosk-arm64}"
mirror="${MIRROR:-http://deb.debian.org/debian}"

log() { printf 'arm64-chroot: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot, binfmt_misc)"

log "host tools: debootstrap, qemu-user-static, binfmt-support"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    debootstrap qemu-user-static binfmt-support >/dev/null
mountpoint -q /proc/sys/fs/binfmt_misc \
    || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64

if [ ! -x "$root/usr/bin/python3" ]; then
    log "debootstrap arm64 bookworm into $root (from $mirror)"
    debootstrap --arch=arm64 --include=python3,ca-certificates bookworm "$root" "$mirror"
fi

mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" || true; done
}
trap cleanup EXIT
for fs in proc sys dev dev/pts; do
    mkdir -p "$root/$fs"
    mount --bind "/$fs" "$root/$fs"
    mounted+=("$root/$fs")
done
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# Behind a TLS-inspecting proxy the chroot needs the host's extra CAs for pip
# (EXTRA_CA_DIR, default the host's /usr/local/share/ca-certificates).
extra_ca="${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}"
if compgen -G "$extra_ca/*.crt" >/dev/null; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp "$extra_ca"/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null 2>&1 || log "update-ca-certificates failed"
fi

log "copying the checkout into $root/opt/src/kiosk"
rm -rf "$root/opt/src/kiosk"
mkdir -p "$root/opt/src/kiosk"
(cd "$here" && tar --exclude=.venv --exclude=.git --exclude='*.so' --exclude=__pycache__ \
    --exclude='*.egg-info' --exclude=build -cf - .) | tar -C "$root/opt/src/kiosk" -xf -

log "install.sh --pi --skip-pi-os-packages (emulated: several minutes)"
chroot "$root" /opt/src/kiosk/install.sh --pi --skip-pi-os-packages

log "import every gate module with Debian's pygame"
chroot "$root" /usr/bin/env SDL_VIDEODRIVER=dummy PYGAME_HIDE_SUPPORT_PROMPT=1 \
    /opt/kiosk/current/venv/bin/python - <<'PY'
import importlib
import pkgutil
import platform

import pygame

import kiosk

assert platform.machine() == "aarch64", platform.machine()
assert pygame.__file__.startswith("/usr/lib/python3/dist-packages/"), pygame.__file__
names = [m.name for m in pkgutil.walk_packages(kiosk.__path__, "kiosk.")
         if not m.name.endswith("__main__")]  # __main__ would run the CLI
for name in names:
    importlib.import_module(name)
print(f"{len(names)} modules imported on {platform.machine()}, pygame {pygame.version.ver} "
      f"from {pygame.__file__}")

# gcc and python3-dev are among the Pi packages: both accelerators must have been built.
from kiosk import cborsafe
from kiosk.verify import base45
assert (base45.IMPLEMENTATION, cborsafe.IMPLEMENTATION) == ("c", "c"), \
    (base45.IMPLEMENTATION, cborsafe.IMPLEMENTATION)
print("compiled Base45 and CBOR decoders in use")
PY

log "kiosk selftest --sim"
chroot "$root" /usr/bin/env SDL_VIDEODRIVER=dummy /opt/kiosk/current/venv/bin/kiosk selftest --sim
log "passed"
