"""Trusted time: the high-water mark, its persistence across a restart, the policies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiosk.decision import Reason
from kiosk.errors import VerificationError
from kiosk.verify.clock import AdjtimexProbe, FixedProbe, TimesyncdProbe, TrustedClock

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Wall:
    """A settable system clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Mono:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(tmp_path: Path, wall: Wall, probe: FixedProbe, policy: str = "hold",
         mono: Mono | None = None) -> TrustedClock:
    return TrustedClock(wall, probe, tmp_path / "clock.json", policy=policy,  # type: ignore[arg-type]
                        persist_interval_s=300, probe_interval_s=0,
                        monotonic=mono or Mono())


def test_high_water_mark_survives_a_restart(tmp_path: Path) -> None:
    wall, probe, mono = Wall(T0), FixedProbe(True), Mono()
    clock = make(tmp_path, wall, probe, mono=mono)
    assert clock.reading().state == "synchronised"
    mono.t = 301  # persisted lazily, at most every persist_interval_s
    wall.now = T0 + timedelta(hours=2)
    clock.reading()
    assert json.loads((tmp_path / "clock.json").read_text())["high_water"] == \
        (T0 + timedelta(hours=2)).timestamp()
    wall.now = T0 + timedelta(hours=3)
    clock.reading()
    clock.close()  # the shutdown write
    # Reboot without an RTC: the system clock restarts in 1970, unsynchronised.
    rebooted = make(tmp_path, Wall(datetime(1970, 1, 1, tzinfo=UTC)), FixedProbe(False))
    reading = rebooted.reading()
    assert reading.state == "held"
    assert reading.now == T0 + timedelta(hours=3)
    assert rebooted.now() == T0 + timedelta(hours=3)


def test_unsynchronised_clock_does_not_advance_the_mark_under_hold(tmp_path: Path) -> None:
    wall, probe = Wall(T0), FixedProbe(True)
    clock = make(tmp_path, wall, probe)
    clock.reading()
    probe.value = False
    wall.now = T0 + timedelta(days=400)  # a wild jump forward while unsynchronised
    assert clock.reading().state == "unsynchronised"
    assert clock.high_water == T0.timestamp()
    wall.now = T0 - timedelta(days=1)  # and back
    reading = clock.reading()
    assert reading.state == "held" and reading.now == T0


def test_allow_policy_advances_the_mark_from_an_unsynchronised_clock(tmp_path: Path) -> None:
    wall = Wall(T0)
    clock = make(tmp_path, wall, FixedProbe(False), policy="allow")
    assert clock.reading().state == "unsynchronised"
    assert clock.high_water == T0.timestamp()
    wall.now = T0 - timedelta(minutes=5)
    assert clock.now() == T0  # still never below the mark


def test_deny_policy_refuses_while_unsynchronised(tmp_path: Path) -> None:
    probe = FixedProbe(False)
    clock = make(tmp_path, Wall(T0), probe, policy="deny")
    with pytest.raises(VerificationError) as info:
        clock.now()
    assert info.value.reason is Reason.CLOCK_UNTRUSTED
    probe.value = True
    assert clock.now() == T0


def test_raise_floor_persists_immediately_and_only_upwards(tmp_path: Path) -> None:
    clock = make(tmp_path, Wall(T0), FixedProbe(False))
    clock.raise_floor((T0 + timedelta(days=1)).timestamp())
    assert clock.now() == T0 + timedelta(days=1)
    clock.raise_floor(T0.timestamp())
    assert json.loads((tmp_path / "clock.json").read_text())["high_water"] == \
        (T0 + timedelta(days=1)).timestamp()


@pytest.mark.parametrize("content", ["not json", '{"high_water": "x"}', "[]",
                                     '{"high_water": -5}'])
def test_corrupt_state_file_starts_without_mark(tmp_path: Path, content: str) -> None:
    (tmp_path / "clock.json").write_text(content)
    clock = make(tmp_path, Wall(T0), FixedProbe(False))
    assert clock.high_water == 0.0 and clock.now() == T0


def test_broken_probe_counts_as_unsynchronised(tmp_path: Path) -> None:
    class Broken:
        def synchronised(self) -> bool:
            raise OSError("no")

    clock = TrustedClock(Wall(T0), Broken(), tmp_path / "c.json")
    assert clock.reading().state == "unsynchronised"


def test_linux_probes(tmp_path: Path) -> None:
    assert AdjtimexProbe().synchronised() in (True, False)  # the real kernel, read-only
    flag = tmp_path / "synchronized"
    probe = TimesyncdProbe(flag)
    assert probe.synchronised() is False
    flag.touch()
    assert probe.synchronised() is True
