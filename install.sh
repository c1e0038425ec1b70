#!/usr/bin/env bash
# Install kiosk.
#
#   ./install.sh --dev   laptop, CI, any Debian/Ubuntu with Python >= 3.11:
#                        system packages (as root or via sudo), .venv, package + test extras.
#   sudo ./install.sh --pi [--root DIR] [--skip-pi-os-packages]
#                        Raspberry Pi OS Bookworm device (arm64, armhf): apt packages, a
#                        versioned release in /opt/kiosk/releases/<version> (venv with system
#                        site packages, non-editable) and /opt/kiosk/current, the kiosk user,
#                        /etc/kiosk, /var/lib/kiosk, the units and drop-ins, the relay's boot
#                        default in config.txt. See docs/provisioning.md.
#   sudo ./install.sh --uninstall [--purge] [--root DIR]
#                        remove the release, units and drop-ins; /etc/kiosk, /var/lib/kiosk
#                        and the kiosk user stay unless --purge.
#
#   --root DIR               stage into DIR instead of / (no apt, no useradd, no systemctl;
#                            the owners the device would have go to DIR/opt/kiosk/MANIFEST)
#   --skip-pi-os-packages    skip the packages only Raspberry Pi OS has (python3-picamera2,
#                            python3-lgpio): a Debian Bookworm chroot or a non-Pi board
#
# Idempotent: re-running does only what is missing, so the README's commands can
# start with it every time.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"

log() { printf 'install.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else return 1
    fi
}

# Install the Debian packages that are not there yet; apt-get update only when needed.
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        log "not a Debian system: install these yourself: ${missing[*]}"
        return 0
    fi
    log "installing system packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        || die "apt-get update failed (need root or sudo): ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" || die "apt-get install failed: ${missing[*]}"
}

check_python() {
    "$python" - <<'PY' || die "Python >= 3.11 is required (set PYTHON=/path/to/python3.11)"
import sys
raise SystemExit(0 if sys.version_info >= (3, 11) else 1)
PY
}

# The compiled accelerators (kiosk/verify/_base45.c, kiosk/_cbor.c) are optional:
# without a compiler the build goes on with their Python references. These packages
# give it one.
compiler_packages() {
    command -v gcc >/dev/null 2>&1 || echo gcc libc6-dev
    "$python" - <<'PY' 2>/dev/null || echo python3-dev
import os, sysconfig
raise SystemExit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)
PY
}

# The accelerators are built in place by the editable install; one missing means "build
# again" (unless no compiler exists, where the Python references are the expected outcome).
accelerator_ok() {
    ! command -v gcc >/dev/null 2>&1 || { compgen -G "$here/kiosk/verify/_base45*.so" >/dev/null \
        && compgen -G "$here/kiosk/_cbor*.so" >/dev/null; }
}

# pip work is skipped when the venv already holds this exact pyproject.toml, setup.py
# and C sources, and the accelerators they build are in place.
install_venv() {
    local venv="$1" extras="$2" system_site="$3"
    local stamp="$venv/.kiosk-installed"
    local want
    want="$(cat "$here/pyproject.toml" "$here/setup.py" "$here/kiosk/verify/_base45.c" \
        "$here/kiosk/_cbor.c" \
        | sha256sum | cut -d' ' -f1) $extras $system_site"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/kiosk" ] \
        && accelerator_ok; then
        log "$venv is up to date"
        return 0
    fi
    if [ ! -x "$venv/bin/python" ]; then
        local flags=()
        [ "$system_site" = "yes" ] && flags+=(--system-site-packages)
        "$python" -m venv "${flags[@]}" "$venv" || die "cannot create $venv (install python3-venv)"
    fi
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e "$here$extras"
    echo "$want" >"$stamp"
    log "installed kiosk into $venv ($("$venv/bin/python" -c 'from kiosk import cborsafe
from kiosk.verify import base45
print(f"Base45 decoder: {base45.IMPLEMENTATION}, CBOR decoder: {cborsafe.IMPLEMENTATION}")'))"
}

dev() {
    # libzbar0: pyzbar's decoder; mosquitto: the tests' brokers; python3-venv: ensurepip
    # on Debian's python3; ca-certificates: pip's HTTPS. pygame and zxing-cpp wheels
    # carry their own SDL and zxing. gcc and the Python headers build the Base45 decoder.
    # The suite runs shellcheck on the install scripts (tests/install); postgresql: the
    # fleet tests start a private server; chromium: the fleet page's browser tests
    # (Playwright drives Debian's build, it downloads none).
    local pkgs=(libzbar0 mosquitto mosquitto-clients ca-certificates shellcheck postgresql chromium)
    command -v "$python" >/dev/null 2>&1 || pkgs+=(python3)
    "$python" -c "import ensurepip" 2>/dev/null || pkgs+=(python3-venv)
    # shellcheck disable=SC2207  # word splitting of package names is intended
    pkgs+=($(compiler_packages))
    apt_install "${pkgs[@]}"
    check_python
    install_venv "$here/.venv" "[test]" no
    log "done. Demo: .venv/bin/kiosk demo    Tests: .venv/bin/pytest"
}

# shellcheck source=install-pi.sh
. "$here/install-pi.sh"

case "${1:-}" in
    --dev) dev ;;
    --pi) shift; pi "$@" ;;
    --uninstall) shift; uninstall "$@" ;;
    *) echo "usage: $0 --dev | --pi [--root DIR] [--skip-pi-os-packages] | --uninstall [--purge] [--root DIR]" >&2
       exit 2 ;;
esac
