"""The systemd units as systemd itself reads them (``systemd-analyze verify``).

The unit's executables live under /opt/kiosk/current on the device; here they
are pointed at a stand-in script so systemd checks everything else: every
key known, every value parseable, the dependencies resolvable.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

UNIT = REPO_ROOT / "systemd" / "kiosk.service"


def unit_settings() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit (repeated keys kept in order)."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    stand_in = tmp_path / "kiosk"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "kiosk.service"
    unit.write_text(UNIT.read_text().replace("/opt/kiosk/current/venv/bin/kiosk", str(stand_in)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # an unknown key is only a warning


def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key is reported."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    unit = tmp_path / "kiosk.service"
    unit.write_text(UNIT.read_text().replace("WatchdogSec=", "WatchdogSecs="))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "Unknown key" in result.stderr


def test_unit_is_a_notify_service_with_a_watchdog_that_never_waits_for_network() -> None:
    s = unit_settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["Restart"] == ["always"] and s["StartLimitIntervalSec"] == ["0"]
    assert 0 < int(s["WatchdogSec"][0].rstrip("s")) <= 30
    after = " ".join(s.get("After", []) + s.get("Wants", []) + s.get("Requires", []))
    assert "network-online" not in after and "time-sync" not in after
    assert s["ProtectSystem"] == ["strict"] and s["NoNewPrivileges"] == ["yes"]
    assert s["CapabilityBoundingSet"] == [""] and s["SystemCallFilter"] == ["@system-service"]
    assert s["DevicePolicy"] == ["closed"]
    allowed = {v.split()[0] for v in s["DeviceAllow"]}
    assert {"char-video4linux", "char-gpiochip", "char-drm", "char-input"} <= allowed
    # Documentation names files install.sh installs (tests/install checks they exist).
    docs = s["Documentation"][0].split()
    assert docs and all(u.startswith("file:///opt/kiosk/current/doc/") for u in docs)


def test_drop_ins_bound_the_journal_and_the_hardware_watchdog() -> None:
    journald = configparser.ConfigParser()
    journald.read(REPO_ROOT / "systemd" / "journald.conf.d" / "kiosk.conf")
    assert journald["Journal"]["Storage"] == "volatile"
    assert journald["Journal"]["RateLimitBurst"].isdigit()
    manager = configparser.ConfigParser()
    manager.read(REPO_ROOT / "systemd" / "system.conf.d" / "kiosk-watchdog.conf")
    runtime = manager["Manager"]["RuntimeWatchdogSec"]
    assert runtime.endswith("s") and 0 < int(runtime[:-1]) <= 15  # BCM2835 maximum
