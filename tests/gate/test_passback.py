"""Anti-passback store: keyed hashes only, a window that survives restarts."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import stat
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from kiosk.config.schema import GateConfig
from kiosk.decision import CertType, qr_allow
from kiosk.gate import GateDriver, GateMachine, GateOutputs, MachineConfig, PassbackGuard
from kiosk.gate.passback import DB_FILE, SECRET_FILE

CRED = b"\x30\x45" + b"signature-bytes" * 4


def test_stores_only_a_keyed_hash(tmp_path: Path) -> None:
    with PassbackGuard(tmp_path, 300) as guard:
        key = guard.key(CRED)
        guard.admit(key, 1000.0)
    secret = (tmp_path / SECRET_FILE).read_bytes()
    assert len(secret) == 32
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
    assert key == hmac.new(secret, CRED, hashlib.sha256).digest()
    assert key != hashlib.sha256(CRED).digest()
    raw = (tmp_path / DB_FILE).read_bytes()
    assert CRED not in raw and hashlib.sha256(CRED).digest() not in raw
    rows = sqlite3.connect(str(tmp_path / DB_FILE)).execute("SELECT key FROM admitted").fetchall()
    assert rows == [(key,)]


def test_window_and_persistence_across_restart(tmp_path: Path) -> None:
    with PassbackGuard(tmp_path, 300) as guard:
        key = guard.key(CRED)
        assert not guard.seen(key, 1000.0)
        guard.admit(key, 1000.0)
        assert guard.seen(key, 1299.0)
    with PassbackGuard(tmp_path, 300) as again:  # a reboot: same secret, same table
        assert again.key(CRED) == key
        assert again.seen(key, 1200.0)
        assert not again.seen(key, 1300.0)
        again.release(key)
        assert not again.seen(key, 1200.0)


def test_two_gates_hash_differently(tmp_path: Path) -> None:
    with PassbackGuard(tmp_path / "a", 300) as a, PassbackGuard(tmp_path / "b", 300) as b:
        assert a.key(CRED) != b.key(CRED)


def test_zero_window_disables(tmp_path: Path) -> None:
    with PassbackGuard(tmp_path, 0) as guard:
        assert not guard.enabled
        guard.admit(b"k", 1.0)
        assert not guard.seen(b"k", 1.0)
    assert not (tmp_path / DB_FILE).exists()


def test_the_admission_is_written_after_the_relay_opens(tmp_path: Path) -> None:
    """The anti-passback check precedes the decision; its disk write follows the relay."""
    factory = MockFactory()
    config = GateConfig(pin_factory="mock")
    relay_when_written: list[bool] = []
    with PassbackGuard(tmp_path, 300) as guard, GateOutputs(config, factory) as outputs:
        admit = guard.admit

        def recording_admit(key: bytes, now_s: float) -> None:
            relay_when_written.append(outputs.snapshot()["relay"])
            admit(key, now_s)

        guard.admit = recording_admit  # type: ignore[method-assign]
        driver = GateDriver(GateMachine(MachineConfig.from_gate(config)), outputs, None, guard)
        driver.start(0.0)
        allow = qr_allow(CertType.VACCINATION, None, "", CRED)
        assert driver.admit(allow, 1.0, 1000.0).allowed
        assert relay_when_written == []  # checked, not yet written
        driver.sync()
        assert relay_when_written == [True]
        assert guard.seen(guard.key(CRED), 1001.0)
        again = driver.admit(allow, 2.0, 1001.0)
        assert not again.allowed and str(again.reason) == "already_admitted"


def test_a_second_scan_before_the_disk_write_is_refused(tmp_path: Path) -> None:
    """The in-memory mark refuses a repeat that comes before the admission is on disk."""
    factory = MockFactory()
    config = GateConfig(pin_factory="mock")
    with PassbackGuard(tmp_path, 300) as guard, GateOutputs(config, factory) as outputs:
        driver = GateDriver(GateMachine(MachineConfig.from_gate(config)), outputs, None, guard)
        driver.start(0.0)
        allow = qr_allow(CertType.VACCINATION, None, "", CRED)
        assert driver.admit(allow, 1.0, 1000.0).allowed
        rows = sqlite3.connect(str(tmp_path / DB_FILE)).execute("SELECT * FROM admitted")
        assert rows.fetchall() == []  # not written yet
        again = driver.admit(allow, 1.1, 1000.1)  # no sync in between
        assert not again.allowed and str(again.reason) == "already_admitted"
        driver.sync()
    with PassbackGuard(tmp_path, 300) as reopened:  # the one admission reached the disk
        assert reopened.seen(reopened.key(CRED), 1001.0)


def test_memory_forgets_what_the_window_has_passed(tmp_path: Path) -> None:
    with PassbackGuard(tmp_path, 300) as guard:
        old, new = guard.key(b"old"), guard.key(b"new")
        guard.admit(old, 1000.0)
        guard.admit(new, 1400.0)  # the old one is beyond the window now: dropped
        assert not guard.seen(old, 1400.0) and guard.seen(new, 1400.0)
        assert guard._recent == {new: 1400.0}  # memory stays bounded by the window
