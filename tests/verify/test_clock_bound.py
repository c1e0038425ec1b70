"""Trusted time bounded above: a 2099 reading or a 9999 issued_at is not adopted."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiosk.config.schema import ClockConfig, PolicyConfig, VerifyConfig
from kiosk.decision import Reason
from kiosk.verify import TrustMaterial, TrustStore, Verifier, open_verifier
from kiosk.verify.bundlefile import install_bundle
from kiosk.verify.clock import FixedProbe, TrustedClock
from kiosk.verify.issuer import make_signer, sample_vaccination

from .bundles import KEYS, make_bundle, signed, write_authority
from .conftest import NOW, issue
from .test_clock import Mono, Wall

SIGNER = make_signer("Clock DSC")
DAY = 86400.0
Y2099 = datetime(2099, 1, 1, tzinfo=UTC)


def _clock(tmp_path: Path, wall: Wall, mono: Mono, probe: FixedProbe | None = None,
           **kwargs: float) -> TrustedClock:
    return TrustedClock(wall, probe or FixedProbe(True), tmp_path / "clock.json",
                        probe_interval_s=0, monotonic=mono, **kwargs)


def _qr() -> str:
    return issue(SIGNER, sample_vaccination(), iat=NOW - timedelta(hours=1),
                 exp=NOW + timedelta(days=30))


def test_a_2099_reading_is_not_adopted_and_the_gate_keeps_deciding(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wall, mono = Wall(NOW), Mono()
    clock = _clock(tmp_path, wall, mono)
    verifier = Verifier(TrustMaterial.dev(TrustStore.from_certificates([SIGNER[1]])), clock)
    qr = _qr()
    assert verifier.verify(qr).allowed
    mono.t, wall.now = 10.0, Y2099
    with caplog.at_level(logging.WARNING, "kiosk.verify.clock"):
        decision = verifier.verify(qr)
        verifier.verify(qr)  # the same jump is reported once
    assert decision.allowed  # decided at the mark, not in 2099 (it would be expired)
    assert clock.high_water == pytest.approx(NOW.timestamp() + 10.0)
    assert len([r for r in caplog.records if "not adopted" in r.getMessage()]) == 1
    assert all("Musterfrau" not in r.getMessage() for r in caplog.records)
    health = verifier.health()
    assert health.clock_state == "held"
    assert health.clock_jump_s == pytest.approx(Y2099.timestamp() - NOW.timestamp() - 10.0)
    assert clock.jumps_refused == 1
    # The time server comes back to its senses: the jump is over, time follows it.
    mono.t, wall.now = 70.0, NOW + timedelta(seconds=70)
    assert clock.reading().state == "synchronised" and verifier.health().clock_jump_s is None
    clock.close()
    saved = json.loads((tmp_path / "clock.json").read_text())["high_water"]
    assert saved < Y2099.timestamp()


def test_small_steps_and_a_restart_follow_the_clock(tmp_path: Path) -> None:
    wall, mono = Wall(NOW), Mono()
    clock = _clock(tmp_path, wall, mono)
    for hour in range(1, 30):  # a day and more of normal running
        mono.t, wall.now = hour * 3600.0, NOW + timedelta(hours=hour)
        assert clock.reading().state == "synchronised"
    assert clock.high_water == (NOW + timedelta(hours=29)).timestamp()


def test_in_dev_mode_a_jump_held_long_enough_is_adopted(tmp_path: Path) -> None:
    wall, mono = Wall(NOW), Mono()
    clock = _clock(tmp_path, wall, mono, jump_confirm_s=900)
    clock.reading()
    later = NOW + timedelta(days=3)  # switched off over a long weekend
    wall.now = later
    assert clock.reading().state == "held"
    mono.t, wall.now = 600.0, later + timedelta(seconds=600)
    assert clock.reading().state == "held"  # not yet: 600 s < 900 s
    mono.t, wall.now = 901.0, later + timedelta(seconds=901)
    reading = clock.reading()
    assert reading.state == "synchronised" and reading.now == later + timedelta(seconds=901)
    assert clock.jump_ahead_s is None


def test_a_jump_that_keeps_moving_is_never_confirmed(tmp_path: Path) -> None:
    wall, mono = Wall(NOW), Mono()
    clock = _clock(tmp_path, wall, mono, jump_confirm_s=900)
    clock.reading()
    for step in range(1, 20):  # every reading a different far-future time
        mono.t, wall.now = step * 100.0, Y2099 + timedelta(days=step)
        assert clock.reading().state == "held"
    assert clock.high_water < NOW.timestamp() + 2000


def test_bundle_window_corroborates_a_jump_after_a_week_switched_off(tmp_path: Path) -> None:
    wall, mono = Wall(NOW), Mono()
    clock = _clock(tmp_path, wall, mono, jump_confirm_s=0)
    clock.offer_bundle(NOW.timestamp(), NOW.timestamp() + 21 * DAY, 1)
    clock.close()
    # Restart a week later: the mark is a week old, the bundle still valid then.
    again = _clock(tmp_path, Wall(NOW + timedelta(days=7)), Mono(), jump_confirm_s=0)
    again.offer_bundle(NOW.timestamp(), NOW.timestamp() + 21 * DAY, 1)
    reading = again.reading()
    assert reading.state == "synchronised" and reading.now == NOW + timedelta(days=7)
    # But 2099 lies outside every bundle's window.
    again._wall = Wall(Y2099)  # type: ignore[assignment]
    assert again.reading().state == "held"


def test_a_newer_bundle_corroborates_a_pending_jump(tmp_path: Path) -> None:
    wall, mono = Wall(NOW), Mono()
    clock = _clock(tmp_path, wall, mono, jump_confirm_s=0)
    clock.offer_bundle(NOW.timestamp(), NOW.timestamp() + 21 * DAY, 1)
    month = NOW + timedelta(days=40)  # beyond the old bundle's validity
    wall.now = month
    assert clock.reading().state == "held" and clock.jump_ahead_s is not None
    assert clock.offer_bundle(month.timestamp() - 3600, month.timestamp() + 21 * DAY, 2) \
        == "raised"
    assert clock.reading().now == month and clock.jump_ahead_s is None


def test_a_far_future_issued_at_is_not_adopted(tmp_path: Path) -> None:
    wall, mono = Wall(NOW), Mono()
    clock = _clock(tmp_path, wall, mono)
    clock.reading()
    far = datetime(9999, 1, 1, tzinfo=UTC).timestamp()
    assert clock.offer_bundle(far, far + 7 * DAY, 2) == "deferred"
    assert clock.high_water == NOW.timestamp()
    assert clock.jump_ahead_s == pytest.approx(far - NOW.timestamp())
    # A bundle issued a few minutes "ahead" (the centre's clock) raises the mark.
    soon = NOW.timestamp() + 300
    assert clock.offer_bundle(soon, soon + 7 * DAY, 3) == "raised"
    assert clock.high_water == soon


def test_a_deferred_issue_time_is_adopted_once_the_clock_reaches_it(tmp_path: Path) -> None:
    wall, mono = Wall(NOW), Mono()
    clock = _clock(tmp_path, wall, mono)
    clock.reading()
    ahead = NOW.timestamp() + 4 * 3600  # beyond the 1 h tolerance
    assert clock.offer_bundle(ahead, ahead + 7 * DAY, 2) == "deferred"
    mono.t, wall.now = 3 * 3600.0 + 1, NOW + timedelta(hours=3, seconds=1)
    clock.reading()
    assert clock.high_water == ahead and clock.jump_ahead_s is None


def test_far_future_bundle_through_the_gate_keeps_it_deciding(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = VerifyConfig(trust_source="bundle", authority_keys=write_authority(tmp_path))
    first = make_bundle(SIGNER[1], issued_at=NOW - timedelta(hours=2))
    install_bundle(signed(first), state / "trust-bundle.cose", KEYS)
    gate = open_verifier(cfg, wall_clock=lambda: NOW, state_dir=state, clock=ClockConfig(),
                         policy=PolicyConfig(), probe=FixedProbe(True))
    assert gate.verify(_qr()).allowed
    gate.close()
    far = datetime(9999, 1, 1, tzinfo=UTC)
    install_bundle(signed(make_bundle(SIGNER[1], version=2, issued_at=far)),
                   state / "trust-bundle.cose", KEYS)
    again = open_verifier(cfg, wall_clock=lambda: NOW, state_dir=state, clock=ClockConfig(),
                          policy=PolicyConfig(), probe=FixedProbe(True))
    decision = again.verify(_qr())
    assert decision.allowed  # verified at NOW, not in 9999
    health = again.health()
    assert health.bundle_version == 2 and health.clock_jump_s is not None
    again.close()
    assert json.loads((state / "clock.json").read_text())["high_water"] < far.timestamp()


def test_a_pushed_away_mark_recovers_with_the_next_bundle(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    # Written by a gate before the bound existed: a 2099 mark, no bundle version.
    (state / "clock.json").write_text(json.dumps({"high_water": Y2099.timestamp()}))
    cfg = VerifyConfig(trust_source="bundle", authority_keys=write_authority(tmp_path))
    install_bundle(signed(make_bundle(SIGNER[1], issued_at=NOW - timedelta(hours=1))),
                   state / "trust-bundle.cose", KEYS)
    gate = open_verifier(cfg, wall_clock=lambda: NOW, state_dir=state, clock=ClockConfig(),
                         policy=PolicyConfig(), probe=FixedProbe(True))
    assert gate.verify(_qr()).allowed
    assert gate.health().clock_state == "synchronised"
    gate.close()
    saved = json.loads((state / "clock.json").read_text())
    assert saved["high_water"] == NOW.timestamp() and saved["bundle_version"] == 1


def test_an_expired_bundle_does_not_lower_the_mark(tmp_path: Path) -> None:
    wall, mono = Wall(NOW + timedelta(days=60)), Mono()
    clock = _clock(tmp_path, wall, mono)
    clock.reading()
    assert clock.offer_bundle(NOW.timestamp(), NOW.timestamp() + 21 * DAY, 5) == "kept"
    assert clock.high_water == (NOW + timedelta(days=60)).timestamp()


def test_an_unsynchronised_clock_cannot_lower_a_mark(tmp_path: Path) -> None:
    (tmp_path / "clock.json").write_text(json.dumps({"high_water": Y2099.timestamp()}))
    clock = _clock(tmp_path, Wall(NOW), Mono(), probe=FixedProbe(False))
    clock.offer_bundle(NOW.timestamp(), NOW.timestamp() + 21 * DAY, 1)
    assert clock.high_water == Y2099.timestamp()
    # Refusing (expired at the 2099 mark) until a synchronised clock corroborates.
    verifier = Verifier(TrustMaterial.dev(TrustStore.from_certificates([SIGNER[1]])), clock)
    assert verifier.verify(_qr()).reason is Reason.EXPIRED
