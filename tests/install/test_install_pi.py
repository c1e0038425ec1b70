"""``install.sh --pi --root DIR``: the device install staged into a folder.

The staged tree is what a Pi gets (minus apt, useradd and systemctl): a
non-editable versioned release with its own venv, the units and drop-ins,
/etc/kiosk and /var/lib/kiosk, the relay's boot default in config.txt, and a
MANIFEST of the modes and owners the device would have (this host has no
``kiosk`` user). A second run must change nothing; uninstall keeps state.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk import __version__
from tests.conftest import REPO_ROOT

INSTALL = REPO_ROOT / "install.sh"


def run_install(*args: str) -> subprocess.CompletedProcess[str]:
    """Run install.sh; fail with its output when it fails."""
    result = subprocess.run(
        [str(INSTALL), *args], capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def snapshot(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every path under root: (mode, size, mtime_ns, link target)."""
    seen: dict[str, tuple[int, int, int, str]] = {}
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        target = os.readlink(path) if path.is_symlink() else ""
        seen[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns, target)
    return seen


def manifest(root: Path) -> list[list[str]]:
    return [line.split() for line in (root / "opt/kiosk/MANIFEST").read_text().splitlines()]


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("pi-root")
    # A Raspberry Pi OS config.txt the installer must keep intact around its own line.
    (root / "boot/firmware").mkdir(parents=True)
    (root / "boot/firmware/config.txt").write_text("dtparam=audio=on\ncamera_auto_detect=1\n")
    result = run_install("--pi", "--root", str(root), "--skip-pi-os-packages")
    yield root, result.stderr


def test_release_is_versioned_non_editable_with_system_site_packages(
    staged: tuple[Path, str],
) -> None:
    root, _ = staged
    release = root / "opt/kiosk/releases" / __version__
    assert os.readlink(root / "opt/kiosk/current") == f"releases/{__version__}"
    cfg = (release / "venv/pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg
    # The release runs from its own copy, never the checkout (the unit has ProtectHome=yes).
    out = subprocess.run(
        [
            str(root / "opt/kiosk/current/venv/bin/python"),
            "-c",
            "import kiosk, serial, evdev; print(kiosk.__file__)",
        ],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
        check=True,
    ).stdout.strip()
    assert Path(out).resolve().is_relative_to(release / "venv") and "site-packages" in out
    assert not list((release / "venv").rglob("__editable__*"))
    version = subprocess.run(
        [str(root / "opt/kiosk/current/venv/bin/kiosk"), "--version"],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
        check=True,
    ).stdout
    assert __version__ in version


def test_units_drop_ins_and_documentation_are_installed(staged: tuple[Path, str]) -> None:
    root, _ = staged
    for repo_path, device_path in [
        ("systemd/kiosk.service", "etc/systemd/system/kiosk.service"),
        ("systemd/journald.conf.d/kiosk.conf", "etc/systemd/journald.conf.d/kiosk.conf"),
        (
            "systemd/system.conf.d/kiosk-watchdog.conf",
            "etc/systemd/system.conf.d/kiosk-watchdog.conf",
        ),
    ]:
        assert (root / device_path).read_bytes() == (REPO_ROOT / repo_path).read_bytes()
    unit = (root / "etc/systemd/system/kiosk.service").read_text()
    docs = next(line for line in unit.splitlines() if line.startswith("Documentation="))
    for uri in docs.removeprefix("Documentation=").split():
        assert (root / uri.removeprefix("file:///")).is_file(), uri
    for line in unit.splitlines():
        if line.startswith(("ExecStart=", "ExecStartPre=")):
            binary, *arguments = line.split("=", 1)[1].split()
            if binary == "/usr/bin/python3":  # Raspberry Pi OS's own: the script is ours
                assert (root / arguments[0].lstrip("/")).is_file(), arguments[0]
                continue
            assert os.access(root / binary.lstrip("/"), os.X_OK), binary


def test_modes_and_owners_the_device_gets(staged: tuple[Path, str]) -> None:
    root, _ = staged
    owners = {}
    for fields in manifest(root):
        if fields[0].isdigit():
            mode, owner, path = fields
            owners[path] = owner
            actual = stat.S_IMODE((root / path.lstrip("/")).lstat().st_mode)
            assert actual == int(mode, 8), f"{path}: {oct(actual)} != {mode}"
    assert owners["/var/lib/kiosk"] == "kiosk:kiosk"
    assert owners["/etc/kiosk"] == "root:kiosk" and owners["/etc/kiosk/kiosk.toml"] == "root:kiosk"
    assert owners["/etc/systemd/system/kiosk.service"] == "root:root"
    user = next(f for f in manifest(root) if f[0] == "user")
    assert user[1] == "kiosk" and "groups=video,gpio,render,input,dialout" in user
    # The unsigned dev-mode trust folder is not created on a device.
    assert not (root / "etc/kiosk/trust").exists()


def test_relay_boot_default_and_closing_hint(staged: tuple[Path, str]) -> None:
    root, hint = staged
    lines = (root / "boot/firmware/config.txt").read_text().splitlines()
    assert lines[:2] == ["dtparam=audio=on", "camera_auto_detect=1"]
    kiosk_lines = [line for line in lines if "# kiosk:" in line]
    # relay_pin 17, active high: output, driven low from power-on.
    assert kiosk_lines == ["gpio=17=op,dl  # kiosk: relay boot default"]
    assert "kiosk provision" in hint
    assert "Never put DSC files in /etc/kiosk/trust" in hint


def test_second_run_changes_nothing(staged: tuple[Path, str]) -> None:
    root, _ = staged
    before = snapshot(root)
    result = run_install("--pi", "--root", str(root), "--skip-pi-os-packages")
    assert "(0 change(s))" in result.stderr
    assert snapshot(root) == before


def test_inverted_relay_rewrites_only_its_line(staged: tuple[Path, str], tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(staged[0], root, symlinks=True)
    config = root / "etc/kiosk/kiosk.toml"
    config.write_text(
        config.read_text()
        .replace("relay_pin = 17 ", "relay_pin = 5 ")
        .replace("relay_active_high = true", "relay_active_high = false")
    )
    run_install("--pi", "--root", str(root), "--skip-pi-os-packages")
    text = (root / "boot/firmware/config.txt").read_text()
    assert text.count("# kiosk:") == 1 and "gpio=5=op,dh  # kiosk: relay boot default" in text
    assert "relay_pin = 5 " in config.read_text()  # the technician's config is never replaced


def test_uninstall_keeps_state_and_purge_removes_it(
    staged: tuple[Path, str], tmp_path: Path
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(staged[0], root, symlinks=True)
    (root / "var/lib/kiosk/counts.sqlite").write_bytes(b"counts")
    run_install("--uninstall", "--root", str(root))
    assert not (root / "opt/kiosk").exists()
    assert not (root / "etc/systemd/system/kiosk.service").exists()
    assert not (root / "usr/local/bin/kiosk").is_symlink()
    assert (root / "var/lib/kiosk/counts.sqlite").read_bytes() == b"counts"
    assert (root / "etc/kiosk/kiosk.toml").is_file()
    assert "# kiosk:" not in (root / "boot/firmware/config.txt").read_text()
    run_install("--uninstall", "--purge", "--root", str(root))
    assert not (root / "var/lib/kiosk").exists() and not (root / "etc/kiosk").exists()
    assert (root / "boot/firmware/config.txt").read_text() == (
        "dtparam=audio=on\ncamera_auto_detect=1\n"
    )


def test_device_modes_refuse_a_non_root_user_without_root_dir() -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: the check is for unprivileged users")
    result = subprocess.run([str(INSTALL), "--pi"], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "must run as root" in result.stderr


def test_install_scripts_are_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck missing: ./install.sh --dev installs it")
        pytest.skip("shellcheck not installed (./install.sh --dev installs it)")
    result = subprocess.run(
        [shellcheck, "-x", "install.sh", "install-pi.sh", "tests/pi/arm64-chroot.sh"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout
