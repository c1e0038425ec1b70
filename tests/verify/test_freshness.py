"""Degraded modes and health(): fresh, stale, expired (deny / allow), dev, missing; the factory."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from kiosk.config.schema import ClockConfig, PolicyConfig, VerifyConfig
from kiosk.decision import Reason
from kiosk.errors import ConfigError
from kiosk.verify import VerifierHealth, open_verifier
from kiosk.verify.bundlefile import install_bundle
from kiosk.verify.clock import FixedProbe
from kiosk.verify.issuer import make_signer, sample_test, sample_vaccination

from .bundles import KEYS, make_bundle, signed, write_authority
from .conftest import NOW, issue

SIGNER = make_signer("Fresh DSC")
DAY = 86400


def _gate(tmp_path: Path, now: datetime, *, on_expired: str = "deny", mode: str = "",
          source: str = "auto", synced: bool = True):  # type: ignore[no-untyped-def]
    cfg = VerifyConfig(trust_source=source, trust_dir=tmp_path / "trust",
                       authority_keys=write_authority(tmp_path), on_expired=on_expired)
    return open_verifier(cfg, wall_clock=lambda: now, state_dir=tmp_path / "state",
                         clock=ClockConfig(), policy=PolicyConfig(mode=mode),
                         probe=FixedProbe(synced))


def _install(tmp_path: Path, **kwargs: int) -> None:
    bundle = make_bundle(SIGNER[1], issued_at=NOW, max_age_s=7 * DAY, grace_s=14 * DAY, **kwargs)
    install_bundle(signed(bundle), tmp_path / "state" / "trust-bundle.cose", KEYS)


def _qr(now: datetime) -> str:
    return issue(SIGNER, sample_vaccination(), iat=now - timedelta(hours=1),
                 exp=now + timedelta(days=30))


@pytest.mark.parametrize(("age", "mode"), [
    (0, "fresh"), (7 * DAY, "fresh"), (7 * DAY + 1, "stale"), (21 * DAY, "stale"),
    (21 * DAY + 1, "expired"),
])
def test_three_freshness_modes(tmp_path: Path, age: int, mode: str) -> None:
    _install(tmp_path)
    now = NOW + timedelta(seconds=age)
    verifier = _gate(tmp_path, now)
    health = verifier.health()
    assert health == VerifierHealth(
        mode=mode, bundle_version=1, bundle_issued_at=NOW,  # type: ignore[arg-type]
        bundle_age_s=float(age), clock_state="synchronised", signers=1, scan_mode="3G",
        revocation_entries=0, on_expired="deny", bundle_formats=(1, 2, 3))
    decision = verifier.verify(_qr(now))
    if mode == "expired":
        assert decision.reason is Reason.TRUST_EXPIRED
    else:
        assert decision.allowed
        assert decision.detail == ("trust stale" if mode == "stale" else "")


def test_expired_with_allow_keeps_verifying_and_flags(tmp_path: Path) -> None:
    _install(tmp_path)
    now = NOW + timedelta(days=30)
    verifier = _gate(tmp_path, now, on_expired="allow")
    assert verifier.health().mode == "expired"
    decision = verifier.verify(_qr(now))
    assert decision.allowed and "operator lane" in decision.detail
    assert verifier.verify(issue(make_signer("Rogue"), sample_vaccination(),
                                 iat=now - timedelta(hours=1))).reason is Reason.UNKNOWN_SIGNER


def test_bundle_issue_time_holds_a_lagging_clock(tmp_path: Path) -> None:
    _install(tmp_path)
    verifier = _gate(tmp_path, datetime(1970, 1, 2).astimezone(), synced=False)
    health = verifier.health()
    assert health.clock_state == "held" and health.mode == "fresh" and health.bundle_age_s == 0
    # An expired certificate stays expired although the system clock says 1970.
    old = issue(SIGNER, sample_vaccination(), iat=NOW - timedelta(days=9),
                exp=NOW - timedelta(days=1))
    assert verifier.verify(old).reason is Reason.EXPIRED


def test_dev_mode_folder(tmp_path: Path) -> None:
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "dsc.der").write_bytes(SIGNER[1])
    verifier = _gate(tmp_path, NOW)
    health = verifier.health()
    assert (health.mode, health.bundle_version, health.signers, health.scan_mode) == \
        ("dev", None, 1, "any")
    old_test = issue(SIGNER, sample_test())  # sampled 9 days before NOW: no rules in dev mode
    assert verifier.verify(old_test).allowed
    strict = _gate(tmp_path, NOW, mode="3G")
    assert strict.verify(old_test).reason is Reason.POLICY_NOT_MET


def test_auto_prefers_the_installed_bundle(tmp_path: Path) -> None:
    (tmp_path / "trust").mkdir()
    _install(tmp_path, version=3)
    assert _gate(tmp_path, NOW).health().bundle_version == 3


@pytest.mark.parametrize("source", ["bundle", "auto"])
def test_missing_bundle_denies_everything(tmp_path: Path, source: str) -> None:
    verifier = _gate(tmp_path, NOW, source=source, on_expired="allow")
    assert verifier.health().mode == "expired" and verifier.health().signers == 0
    assert verifier.verify(_qr(NOW)).reason is Reason.TRUST_EXPIRED


def test_forged_installed_bundle_denies_everything(tmp_path: Path) -> None:
    _install(tmp_path)
    path = tmp_path / "state" / "trust-bundle.cose"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    verifier = _gate(tmp_path, NOW, source="bundle")
    assert verifier.verify(_qr(NOW)).reason is Reason.TRUST_EXPIRED


def test_unknown_scan_mode_stops_the_gate(tmp_path: Path) -> None:
    _install(tmp_path)
    with pytest.raises(ConfigError, match="4G"):
        _gate(tmp_path, NOW, mode="4G")


def test_clock_deny_policy_through_the_verifier(tmp_path: Path) -> None:
    _install(tmp_path)
    cfg = VerifyConfig(authority_keys=write_authority(tmp_path))
    verifier = open_verifier(cfg, wall_clock=lambda: NOW, state_dir=tmp_path / "state",
                             clock=dataclasses.replace(ClockConfig(), unsynchronised="deny"),
                             probe=FixedProbe(False))
    assert verifier.verify(_qr(NOW)).reason is Reason.CLOCK_UNTRUSTED
    assert verifier.health().clock_state == "unsynchronised"
    verifier.close()
    verifier.close()
