# The device install: `install.sh --pi` and `install.sh --uninstall` (sourced by install.sh,
# which provides log, die, apt_install and check_python). docs/provisioning.md walks a
# technician through it; tests/install/test_install_pi.py stages it with --root.
# shellcheck shell=bash disable=SC2154  # here, python: set by install.sh

kiosk_groups=(video gpio render input dialout)
# Only Raspberry Pi OS has these; --skip-pi-os-packages leaves them out (Debian chroot).
pi_os_packages=(python3-picamera2 python3-lgpio)
# Debian's pygame is built with KMSDRM (the PyPI wheel has no KMSDRM or X11 video driver),
# numpy and the rest match the Pi's apt builds: the venv uses them via system site packages.
pi_packages=(python3 python3-venv python3-pip python3-pygame python3-numpy python3-pil
    python3-cryptography libzbar0 mosquitto-clients ca-certificates gcc libc6-dev python3-dev)

root=""            # --root DIR: stage into DIR (empty: the real /)
skip_pi_os=no
purge=no
manifest_lines=()
changes=0

parse_device_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --root) [ $# -ge 2 ] || die "--root needs a directory"
                    root="$(mkdir -p "$2" && cd "$2" && pwd)"; shift ;;
            --skip-pi-os-packages) skip_pi_os=yes ;;
            --purge) purge=yes ;;
            *) die "unknown option: $1" ;;
        esac
        shift
    done
    if [ -z "$root" ]; then
        [ "$(id -u)" -eq 0 ] || die "must run as root (sudo ./install.sh ...), or stage with --root DIR"
    fi
}

staging() { [ -n "$root" ]; }
# systemctl only where systemd runs: not when staging, not in a chroot.
have_systemd() { ! staging && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

release_version() {
    "$python" - "$here/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print(tomllib.load(f)["project"]["version"])
PY
}

# Record what the device owns; on the device also apply it (a staged tree has no kiosk user).
own() {
    local mode="$1" owner="$2" path="$3"
    manifest_lines+=("$mode $owner ${path#"$root"}")
    chmod "$mode" "$path"
    if ! staging; then chown "$owner" "$path"; fi
}

# A directory with mode and owner.
place_dir() {
    local mode="$1" owner="$2" path="$root$3"
    [ -d "$path" ] || { mkdir -p "$path"; changes=$((changes + 1)); }
    own "$mode" "$owner" "$path"
}

# A file copied only when its content differs (mtime kept otherwise: a re-run changes nothing).
place_file() {
    local mode="$1" owner="$2" src="$3" path="$root$4"
    if ! cmp -s "$src" "$path"; then
        mkdir -p "$(dirname "$path")"
        cp "$src" "$path.tmp" && mv -f "$path.tmp" "$path"
        changes=$((changes + 1))
    fi
    own "$mode" "$owner" "$path"
}

place_symlink() {
    local target="$1" path="$root$2"
    if [ "$(readlink "$path" 2>/dev/null)" != "$target" ]; then
        mkdir -p "$(dirname "$path")"
        ln -sfn "$target" "$path"
        changes=$((changes + 1))
    fi
    manifest_lines+=("link root:root ${path#"$root"} -> $target")
}

ensure_user() {
    if staging; then
        manifest_lines+=("user kiosk system nologin /var/lib/kiosk groups=$(IFS=,; echo "${kiosk_groups[*]}")")
        return 0
    fi
    local group
    for group in "${kiosk_groups[@]}"; do
        getent group "$group" >/dev/null || groupadd --system "$group"
    done
    if ! id kiosk >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/kiosk --no-create-home --shell /usr/sbin/nologin \
            --user-group kiosk
        changes=$((changes + 1))
    fi
    usermod --append --groups "$(IFS=,; echo "${kiosk_groups[*]}")" kiosk
}

# A hash of everything the release is built from: same hash, same release, no pip work.
source_hash() {
    (cd "$here" && find kiosk -type f \( -name '*.py' -o -name '*.c' -o -name '*.pyi' \
        -o -name '*.json' -o -name 'py.typed' \) -print0 | sort -z | xargs -0 sha256sum;
     sha256sum pyproject.toml setup.py) | sha256sum | cut -d' ' -f1
}

# /opt/kiosk/releases/<version>: a venv with system site packages (Debian's pygame, numpy,
# picamera2, lgpio) and a non-editable install of this checkout with the KTP extras.
install_release() {
    local version="$1" release="$root/opt/kiosk/releases/$1"
    local venv="$release/venv" stamp="$release/venv/.kiosk-release" want
    want="$(source_hash) $version"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/kiosk" ]; then
        log "release $version is up to date"
    else
        log "building release $version in $release"
        rm -rf "$venv"
        mkdir -p "$release"
        "$python" -m venv --system-site-packages "$venv" || die "cannot create $venv (python3-venv)"
        # A copy of the checkout, so no build file lands in it and the release never imports it.
        local build
        build="$(mktemp -d)"
        (cd "$here" && tar --exclude=.venv --exclude=.git --exclude='*.so' --exclude=__pycache__ \
            --exclude='*.egg-info' --exclude=build -cf - pyproject.toml setup.py README.md kiosk) \
            | tar -C "$build" -xf -
        "$venv/bin/python" -m pip install --quiet --no-cache-dir "${build}[ktp]" \
            || { rm -rf "$build"; die "pip install into $venv failed"; }
        rm -rf "$build"
        echo "$want" >"$stamp"
        changes=$((changes + 1))
    fi
    place_dir 0755 root:root "/opt/kiosk"
    place_dir 0755 root:root "/opt/kiosk/releases"
    place_dir 0755 root:root "/opt/kiosk/releases/$version"
    place_dir 0755 root:root "/opt/kiosk/releases/$version/venv"
    place_dir 0755 root:root "/opt/kiosk/releases/$version/doc"
    local doc
    for doc in README.md docs/provisioning.md docs/trust-bundle.md docs/mqtt.md; do
        place_file 0644 root:root "$here/$doc" "/opt/kiosk/releases/$version/doc/$(basename "$doc")"
    done
    place_symlink "releases/$version" /opt/kiosk/current
    # The update probation counter runs before every start, outside any release.
    place_file 0644 root:root "$here/kiosk/remote/probation.py" /opt/kiosk/probation.py
    place_symlink /opt/kiosk/current/venv/bin/kiosk /usr/local/bin/kiosk
}

# The relay's level from power-on until the gate starts: its inactive level (config.txt
# `gpio=` line; Raspberry Pi firmware). Marked, so a re-run replaces only our line.
relay_boot_default() {
    local config="$root/etc/kiosk/kiosk.toml" boot line
    line="$("$python" - "$config" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    gate = tomllib.load(f).get("gate", {})
pin = int(gate.get("relay_pin", 17))
level = "dl" if gate.get("relay_active_high", True) else "dh"
print(f"gpio={pin}=op,{level}")
PY
)" || die "cannot read gate.relay_pin from $config"
    boot="$root/boot/firmware/config.txt"
    [ -f "$boot" ] || [ ! -f "$root/boot/config.txt" ] || boot="$root/boot/config.txt"
    mkdir -p "$(dirname "$boot")"
    [ -f "$boot" ] || : >"$boot"
    local want
    want="$(grep -v '# kiosk: relay boot default$' "$boot"; echo "$line  # kiosk: relay boot default")"
    if [ "$want" != "$(cat "$boot")" ]; then
        printf '%s\n' "$want" >"$boot.tmp" && mv -f "$boot.tmp" "$boot"
        changes=$((changes + 1))
    fi
    manifest_lines+=("boot ${boot#"$root"} $line")
}

write_manifest() {
    local path="$root/opt/kiosk/MANIFEST" want
    want="$(printf '%s\n' "${manifest_lines[@]}" | LC_ALL=C sort)"
    if [ "$want" != "$(cat "$path" 2>/dev/null)" ]; then
        printf '%s\n' "$want" >"$path"
        changes=$((changes + 1))
    fi
    chmod 0644 "$path"
}

pi() {
    parse_device_args "$@"
    if staging; then
        log "staging into $root (no apt, no useradd, no systemctl; owners in opt/kiosk/MANIFEST)"
    else
        local pkgs=("${pi_packages[@]}")
        if [ "$skip_pi_os" = yes ]; then log "skipping Raspberry Pi OS packages: ${pi_os_packages[*]}"
        else pkgs+=("${pi_os_packages[@]}"); fi
        apt_install "${pkgs[@]}"
    fi
    check_python
    ensure_user
    local version
    version="$(release_version)"
    place_dir 0750 root:kiosk /etc/kiosk
    # The config is the technician's (kiosk provision): installed once, never overwritten.
    if [ ! -f "$root/etc/kiosk/kiosk.toml" ]; then
        cp "$here/config/kiosk.toml" "$root/etc/kiosk/kiosk.toml"
        changes=$((changes + 1))
    fi
    own 0640 root:kiosk "$root/etc/kiosk/kiosk.toml"
    place_dir 0750 kiosk:kiosk /var/lib/kiosk
    install_release "$version"
    place_file 0644 root:root "$here/systemd/kiosk.service" /etc/systemd/system/kiosk.service
    place_file 0644 root:root "$here/systemd/journald.conf.d/kiosk.conf" \
        /etc/systemd/journald.conf.d/kiosk.conf
    place_file 0644 root:root "$here/systemd/system.conf.d/kiosk-watchdog.conf" \
        /etc/systemd/system.conf.d/kiosk-watchdog.conf
    relay_boot_default
    write_manifest
    if have_systemd; then
        systemctl daemon-reload
        systemctl enable kiosk.service >/dev/null
    fi
    log "installed release $version ($changes change(s))."
    log "Next: sudo kiosk provision   (site, gate, broker, what is wired; enrols the device"
    log "      certificate and installs the signed trust bundle's authority key), then reboot:"
    log "      the relay boot default and the hardware watchdog take effect at boot, and the"
    log "      gate starts by itself. Never put DSC files in /etc/kiosk/trust: that folder is"
    log "      unsigned development mode (docs/trust-bundle.md)."
}

remove_path() {
    local path="$root$1"
    if [ -e "$path" ] || [ -L "$path" ]; then rm -rf "$path"; changes=$((changes + 1)); fi
}

uninstall() {
    parse_device_args "$@"
    if have_systemd; then
        systemctl disable --now kiosk.service >/dev/null 2>&1 || true
    fi
    remove_path /etc/systemd/system/kiosk.service
    remove_path /etc/systemd/journald.conf.d/kiosk.conf
    remove_path /etc/systemd/system.conf.d/kiosk-watchdog.conf
    remove_path /usr/local/bin/kiosk
    remove_path /opt/kiosk
    local boot
    for boot in "$root/boot/firmware/config.txt" "$root/boot/config.txt"; do
        if [ -f "$boot" ] && grep -q '# kiosk: relay boot default$' "$boot"; then
            grep -v '# kiosk: relay boot default$' "$boot" >"$boot.tmp" || true
            mv -f "$boot.tmp" "$boot"
        fi
    done
    if [ "$purge" = yes ]; then
        remove_path /etc/kiosk
        remove_path /var/lib/kiosk
        if ! staging && id kiosk >/dev/null 2>&1; then userdel kiosk; fi
        log "purged: configuration, device key and certificate, counts and state are gone"
    else
        log "removed the release and units; kept /etc/kiosk (config, device identity) and"
        log "/var/lib/kiosk (counts, state) and the kiosk user: --purge removes them"
    fi
    if have_systemd; then systemctl daemon-reload; fi
}
