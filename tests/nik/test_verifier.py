"""NikVerifier: site policy off/list/manual, rate limit, expiry, privacy of decisions and logs."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.config.schema import KioskConfig, NikConfig, VerifyConfig
from kiosk.decision import Decision, InputKind, Reason
from kiosk.nik import ManualAudit, ManualCheck, ManualOutcome, NikVerifier, is_pending
from kiosk.nik.listfile import StatusList
from kiosk.nik.ratelimit import TokenBucket
from kiosk.nik.store import install_list, load_installed
from kiosk.nik.wiring import build_nik_verifier, sim_nik_verifier
from kiosk.signing import save_public_key
from tests.nik.conftest import (
    AUTHORITY,
    MEMBERS,
    NON_MEMBERS,
    NOW,
    TRUSTED,
    FakeClock,
    ListFactory,
)


@pytest.fixture
def status_list(make_list: ListFactory, tmp_path: Path) -> StatusList:
    built = make_list()
    install_list(built.manifest_path, built.data_path, tmp_path / "gate", TRUSTED, NOW)
    loaded = load_installed(tmp_path / "gate", TRUSTED)
    assert loaded is not None
    return loaded


def make_verifier(
    mode: str,
    clock: FakeClock,
    *,
    status_list: StatusList | None = None,
    now: datetime = NOW,
    burst: int = 100,
    per_minute: float = 6.0,
    on_list_unavailable: str = "deny",
    audit: list[ManualAudit] | None = None,
) -> NikVerifier:
    manual = ManualCheck(
        timeout_s=60,
        audit=None if audit is None else audit.append,
        monotonic=clock,
        wall_clock=lambda: now,
    )
    return NikVerifier(
        mode=mode,
        limiter=TokenBucket(burst, per_minute / 60),
        manual=manual,
        status_list=status_list,
        on_list_unavailable=on_list_unavailable,
        wall_clock=lambda: now,
        monotonic=clock,
    )


def assert_nik_decision(decision: Decision, reason: Reason) -> None:
    assert decision.reason is reason
    assert decision.input is InputKind.NIK
    assert decision.allowed == (reason is Reason.OK)
    assert not re.search(r"\d{6,}", decision.detail)  # never a NIK (or part of one)


def test_off_denies_every_nik(clock: FakeClock) -> None:
    verifier = make_verifier("off", clock)
    for nik in (*MEMBERS, "garbage"):
        assert_nik_decision(verifier.verify(nik), Reason.NIK_DISABLED)
    assert verifier.stats.disabled == len(MEMBERS) + 1


def test_list_mode_allows_members_only(clock: FakeClock, status_list: StatusList) -> None:
    verifier = make_verifier("list", clock, status_list=status_list)
    for nik in MEMBERS:
        decision = verifier.verify(nik)
        assert_nik_decision(decision, Reason.OK)
        assert decision.detail == "list v1"
        assert decision.credential_id is not None and nik.encode() not in decision.credential_id
    for nik in NON_MEMBERS:
        assert_nik_decision(verifier.verify(nik), Reason.NIK_NOT_LISTED)
    assert (verifier.stats.listed, verifier.stats.not_listed) == (4, 3)


def test_invalid_nik_gets_its_specific_detail(clock: FakeClock, status_list: StatusList) -> None:
    verifier = make_verifier("list", clock, status_list=status_list)
    decision = verifier.verify("3171013202990001")
    assert_nik_decision(decision, Reason.NIK_INVALID)
    assert decision.detail == "birth_date"
    assert_nik_decision(verifier.verify("３171014506990001"), Reason.NIK_INVALID)


def test_list_missing_or_expired(clock: FakeClock, status_list: StatusList) -> None:
    assert_nik_decision(
        make_verifier("list", clock).verify(MEMBERS[0]), Reason.NIK_LIST_UNAVAILABLE
    )
    later = status_list.manifest.expires_at + timedelta(seconds=1)
    verifier = make_verifier("list", clock, status_list=status_list, now=later)
    decision = verifier.verify(MEMBERS[0])
    assert_nik_decision(decision, Reason.NIK_LIST_UNAVAILABLE)
    assert decision.detail == "list expired"


def test_list_unavailable_can_fall_back_to_staff(clock: FakeClock) -> None:
    verifier = make_verifier("list", clock, on_list_unavailable="manual")
    decision = verifier.verify(MEMBERS[0])
    assert_nik_decision(decision, Reason.NIK_STAFF_CHECK)
    assert is_pending(decision) and verifier.manual.pending


def test_manual_mode_confirm_refuse_timeout_are_counted_and_audited(clock: FakeClock) -> None:
    audit: list[ManualAudit] = []
    verifier = make_verifier("manual", clock, audit=audit)
    manual = verifier.manual
    assert manual.resolve(True) is None  # a stray staff key with nothing pending

    assert_nik_decision(verifier.verify(NON_MEMBERS[0]), Reason.NIK_STAFF_CHECK)
    clock.advance(4.0)
    allowed = manual.resolve(True, staff_id="staff-key-1")
    assert allowed is not None
    assert_nik_decision(allowed, Reason.OK)
    assert allowed.detail == "manual"

    verifier.verify(MEMBERS[1])
    refused = manual.resolve(False, staff_id="staff-key-1")
    assert refused is not None
    assert_nik_decision(refused, Reason.NIK_STAFF_REFUSED)

    verifier.verify(MEMBERS[2])
    clock.advance(59.0)
    assert manual.poll() is None
    clock.advance(1.0)
    timed_out = manual.poll()
    assert timed_out is not None and timed_out.detail == "timeout"

    assert_nik_decision(verifier.verify("1234"), Reason.NIK_INVALID)  # no staff call for junk
    counts = manual.counts
    assert (counts.requested, counts.confirmed, counts.refused, counts.timeout) == (3, 1, 1, 1)
    assert [a.outcome for a in audit] == [
        ManualOutcome.CONFIRMED,
        ManualOutcome.REFUSED,
        ManualOutcome.TIMEOUT,
    ]
    assert audit[0].wait_s == 4.0 and audit[0].staff_id == "staff-key-1"
    assert audit[0].trigger == "manual" and audit[0].at == NOW


def test_rate_limit_with_injected_clock(clock: FakeClock, status_list: StatusList) -> None:
    verifier = make_verifier("list", clock, status_list=status_list, burst=3, per_minute=6)
    for _ in range(3):
        assert verifier.verify(NON_MEMBERS[0]).reason is Reason.NIK_NOT_LISTED
    assert_nik_decision(verifier.verify(MEMBERS[0]), Reason.NIK_RATE_LIMITED)
    # Malformed input is rejected by public rules before the limiter: no token spent.
    assert verifier.verify("123").reason is Reason.NIK_INVALID
    clock.advance(9.9)
    assert verifier.verify(MEMBERS[0]).reason is Reason.NIK_RATE_LIMITED
    clock.advance(0.2)  # 10 s = one token at 6/min
    assert verifier.verify(MEMBERS[0]).reason is Reason.OK
    assert verifier.verify(MEMBERS[0]).reason is Reason.NIK_RATE_LIMITED
    assert verifier.stats.rate_limited == 3


def test_token_bucket_ignores_a_clock_going_backwards() -> None:
    bucket = TokenBucket(capacity=1, refill_per_s=1.0)
    assert bucket.take(100.0)
    assert not bucket.take(50.0)
    assert not bucket.take(100.5)
    assert bucket.take(101.0)


def test_the_nik_never_reaches_a_log(
    clock: FakeClock, status_list: StatusList, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    verifier = make_verifier("list", clock, status_list=status_list)
    for nik in (*MEMBERS, *NON_MEMBERS):
        verifier.verify(nik)
    verifier.manual.request("manual")
    verifier.manual.resolve(True, "s1")
    text = caplog.text
    for nik in (*MEMBERS, *NON_MEMBERS):
        assert nik not in text and nik[6:12] not in text


class ExplodingList(StatusList):
    def __init__(self, real: StatusList) -> None:
        self.manifest = real.manifest

    def contains(self, key: bytes) -> bool:
        raise RuntimeError(f"boom {key!r}")


def test_a_failing_lookup_denies_without_leaking(
    clock: FakeClock, status_list: StatusList, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = make_verifier("list", clock, status_list=ExplodingList(status_list))
    decision = verifier.verify(MEMBERS[0])
    assert_nik_decision(decision, Reason.INTERNAL_ERROR)
    assert MEMBERS[0] not in caplog.text and "boom" not in caplog.text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=24), st.sampled_from(["off", "list", "manual"]))
def test_verify_never_raises(text: str, mode: str) -> None:
    verifier = make_verifier(mode, FakeClock())
    decision = verifier.verify(text)
    assert decision.input is InputKind.NIK and not decision.allowed


def test_build_from_config_loads_the_installed_list(make_list: ListFactory, tmp_path: Path) -> None:
    keyfile = tmp_path / "authority.pem"
    save_public_key(AUTHORITY.public_key(), keyfile)
    built = make_list()
    install_list(built.manifest_path, built.data_path, tmp_path / "gate", TRUSTED, NOW)
    config = KioskConfig(
        nik=NikConfig(mode="list", list_dir=tmp_path / "gate"),
        verify=VerifyConfig(authority_keys=keyfile),
    )
    verifier = build_nik_verifier(config, wall_clock=lambda: NOW)
    assert verifier.verify(MEMBERS[0]).allowed
    verifier.close()
    verifier.close()
    # A broken trust root or list must not stop the gate: NIK answers "unavailable".
    broken = KioskConfig(
        nik=NikConfig(mode="list", list_dir=tmp_path / "gate"),
        verify=VerifyConfig(authority_keys=tmp_path / "none"),
    )
    verifier = build_nik_verifier(broken, wall_clock=lambda: NOW)
    assert verifier.status_list is None
    assert verifier.verify(MEMBERS[0]).reason is Reason.NIK_LIST_UNAVAILABLE


@pytest.mark.parametrize(
    ("mode", "member", "other"),
    [
        ("list", Reason.OK, Reason.NIK_NOT_LISTED),
        ("manual", Reason.NIK_STAFF_CHECK, Reason.NIK_STAFF_CHECK),
        ("off", Reason.NIK_DISABLED, Reason.NIK_DISABLED),
    ],
)
def test_simulation_verifier_uses_the_real_install_path(
    tmp_path: Path, mode: str, member: Reason, other: Reason
) -> None:
    verifier = sim_nik_verifier(tmp_path, MEMBERS[:2], mode=mode, wall_clock=lambda: NOW)
    assert verifier.verify(MEMBERS[0]).reason is member
    assert verifier.verify(NON_MEMBERS[0]).reason is other
    assert (tmp_path / "gate" / "niklist.manifest").exists()
    verifier.close()
