"""Business rules of the default policy, each at its boundaries, through the real verifier."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.decision import CertType, Reason
from kiosk.errors import VerificationError
from kiosk.verify import TrustMaterial, TrustStore, Verifier
from kiosk.verify.issuer import make_signer, sample_recovery, sample_test, sample_vaccination
from kiosk.verify.rules import DEFAULT_POLICY, Policy, ScanMode

from .conftest import NOW, issue

SIGNER = make_signer("Rules DSC")
STORE = TrustStore.from_certificates([SIGNER[1]])


def decide(hcert: dict[str, Any], mode: str = "3G", now: datetime = NOW,
           **overrides: int) -> Reason:
    material = TrustMaterial(STORE, mode=DEFAULT_POLICY.mode(mode, **overrides))
    qr = issue(SIGNER, hcert, iat=now - timedelta(hours=1), exp=now + timedelta(days=30))
    decision = Verifier(material, lambda: now).verify(qr)
    assert decision.reason is not Reason.POLICY_NOT_MET or decision.detail.startswith(
        "policy: mode ")
    return decision.reason


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(("dn", "sd", "complete", "booster"), [
    (1, 2, False, False), (2, 2, True, False), (1, 1, True, False),
    (2, 1, True, True), (3, 2, True, True), (3, 3, True, True), (4, 4, True, True),
])
def test_vaccination_complete_and_booster(dn: int, sd: int, complete: bool,
                                          booster: bool) -> None:
    ok, no = Reason.OK, Reason.POLICY_NOT_MET
    assert decide(sample_vaccination(dn=dn, sd=sd), "3G") is (ok if complete else no)
    assert decide(sample_vaccination(dn=dn, sd=sd), "2G") is (ok if complete else no)
    assert decide(sample_vaccination(dn=dn, sd=sd), "booster") is (ok if booster else no)


@pytest.mark.parametrize(("tt", "hours"), [("LP6464-4", 72), ("LP217198-3", 24)])
def test_test_age_boundaries(tt: str, hours: int) -> None:
    def with_age(age: timedelta) -> dict[str, Any]:
        hcert = sample_test(sc=_iso(NOW - age))
        hcert["t"][0]["tt"] = tt
        return hcert

    assert decide(with_age(timedelta(hours=hours))) is Reason.OK
    assert decide(with_age(timedelta(hours=hours, seconds=1))) is Reason.POLICY_NOT_MET
    assert decide(with_age(timedelta(0))) is Reason.OK
    assert decide(with_age(-timedelta(seconds=1))) is Reason.POLICY_NOT_MET  # sampled later


def test_test_rules_result_type_and_modes() -> None:
    fresh = sample_test(sc=_iso(NOW - timedelta(hours=1)))
    assert decide(fresh, "2G") is Reason.POLICY_NOT_MET  # 2G: no tests
    assert decide(fresh, "booster") is Reason.POLICY_NOT_MET
    assert decide(fresh, "any") is Reason.OK
    positive = sample_test(sc=_iso(NOW - timedelta(hours=1)), tr="260373001")
    assert decide(positive, "any") is Reason.TEST_POSITIVE  # a valid positive test: deny
    odd = sample_test(sc=_iso(NOW - timedelta(hours=1)))
    odd["t"][0]["tt"] = "LP0000-0"
    assert decide(odd) is Reason.POLICY_NOT_MET
    garbled = sample_test(sc="yesterday")
    assert decide(garbled) is Reason.POLICY_NOT_MET


def test_site_overrides_of_test_hours() -> None:
    hcert = sample_test(sc=_iso(NOW - timedelta(hours=30)))  # a RAT 30 h old
    assert decide(hcert) is Reason.POLICY_NOT_MET
    assert decide(hcert, rat_hours=48) is Reason.OK


def test_recovery_boundaries() -> None:
    today = NOW.date()

    def rec(fr_days: int, df_days: int = -10, du_days: int = 10) -> dict[str, Any]:
        return sample_recovery(fr=str(today - timedelta(days=fr_days)),
                               df=str(today + timedelta(days=df_days)),
                               du=str(today + timedelta(days=du_days)))

    assert decide(rec(180)) is Reason.OK
    assert decide(rec(181)) is Reason.POLICY_NOT_MET
    assert decide(rec(181), recovery_days=200) is Reason.OK
    assert decide(rec(20, df_days=0)) is Reason.OK  # valid from today
    assert decide(rec(20, df_days=1)) is Reason.POLICY_NOT_MET  # from tomorrow
    assert decide(rec(20, du_days=0)) is Reason.OK  # valid until today
    assert decide(rec(20, du_days=-1)) is Reason.POLICY_NOT_MET  # until yesterday
    assert decide(rec(20), "booster") is Reason.POLICY_NOT_MET
    assert decide(rec(20), "2G") is Reason.OK


def test_policy_wire_form_round_trip_and_errors() -> None:
    assert Policy.from_obj(DEFAULT_POLICY.to_obj()) == DEFAULT_POLICY
    assert Policy.from_obj(None) is DEFAULT_POLICY
    custom = Policy.from_obj({
        "rules": {"young_vax": {"kind": "vaccination", "require": "complete",
                                "min_days": 14, "max_days": 270}},
        "modes": {"strict": ["young_vax"]}, "default_mode": "strict",
    })
    mode = custom.mode()
    assert mode.name == "strict"
    entry = sample_vaccination(dt=str((NOW - timedelta(days=14)).date()))
    mode.check(entry, CertType.VACCINATION, NOW)
    with pytest.raises(VerificationError, match="less than 14 days"):
        mode.check(sample_vaccination(dt=str((NOW - timedelta(days=13)).date())),
                   CertType.VACCINATION, NOW)
    with pytest.raises(VerificationError, match="older than 270 days"):
        mode.check(sample_vaccination(dt=str((NOW - timedelta(days=271)).date())),
                   CertType.VACCINATION, NOW)
    for bad in ({"rules": {"x": {"kind": "magic"}}, "modes": {}, "default_mode": "m"},
                {"rules": {}, "modes": {"m": ["missing"]}, "default_mode": "m"},
                {"rules": {"x": {"kind": "test", "max_hours": {"LP": -1}}},
                 "modes": {"m": ["x"]}, "default_mode": "m"},
                {"rules": {"x": {"kind": "test", "extra": 1}}, "modes": {}, "default_mode": "m"},
                [1, 2]):
        with pytest.raises(ValueError):
            Policy.from_obj(bad)
    with pytest.raises(ValueError, match="unknown scan mode"):
        DEFAULT_POLICY.mode("4G")


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["dn", "sd", "dt", "tt", "tr", "sc", "fr", "df", "du"]),
                       st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=25),
                                 st.datetimes().map(str)), max_size=9),
       st.sampled_from(list(CertType)), st.sampled_from(["3G", "2G", "booster"]))
def test_rules_never_raise_anything_but_policy_not_met(entry: dict[str, Any],
                                                       cert_type: CertType, name: str) -> None:
    mode: ScanMode = DEFAULT_POLICY.mode(name)
    try:
        mode.check({cert_type.value: [entry]}, cert_type, NOW)
    except VerificationError as exc:
        assert exc.reason is Reason.POLICY_NOT_MET
