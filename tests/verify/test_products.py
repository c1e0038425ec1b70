"""Accepted products per scan mode: the two shipped example policies, through the verifier."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kiosk.decision import Reason
from kiosk.verify import TrustMaterial, TrustStore, Verifier
from kiosk.verify.build import build_bundle, read_description
from kiosk.verify.bundle import TrustBundle
from kiosk.verify.issuer import make_signer, sample_test, sample_vaccination
from kiosk.verify.rules import Policy, Rule
from tests.conftest import REPO_ROOT

from .conftest import NOW, issue

SIGNER = make_signer("Products DSC")
POLICIES = REPO_ROOT / "config" / "policies"
COMIRNATY, JCOVDEN, CORONAVAC, SINOPHARM = "EU/1/20/1528", "EU/1/20/1525", "CoronaVac", \
    "BBIBP-CorV"


def _policy(name: str) -> Policy:
    return Policy.from_obj(read_description(POLICIES / f"{name}.toml")["policy"])


def decide(policy: Policy, mode: str, mp: str, dn: int, sd: int, days: int = 30) -> Reason:
    hcert = sample_vaccination(dn=dn, sd=sd, dt=(NOW - timedelta(days=days)).date().isoformat())
    hcert["v"][0]["mp"] = mp
    material = TrustMaterial(TrustStore.from_certificates([SIGNER[1]]), mode=policy.mode(mode))
    qr = issue(SIGNER, hcert, iat=NOW - timedelta(hours=1), exp=NOW + timedelta(days=30))
    verifier = Verifier(material, lambda: NOW)
    decision = verifier.verify(qr)
    assert verifier.inspect(qr).decision.reason is decision.reason  # both paths agree
    return decision.reason


@pytest.mark.parametrize(("mp", "dn", "sd", "mall", "travel"), [
    (CORONAVAC, 2, 2, Reason.OK, Reason.POLICY_NOT_MET),   # WHO EUL, not EMA
    (SINOPHARM, 2, 2, Reason.OK, Reason.POLICY_NOT_MET),
    (CORONAVAC, 1, 2, Reason.POLICY_NOT_MET, Reason.POLICY_NOT_MET),  # half a series
    (COMIRNATY, 2, 2, Reason.OK, Reason.OK),
    (JCOVDEN, 1, 1, Reason.OK, Reason.OK),                 # one-dose product
    (JCOVDEN, 1, 2, Reason.OK, Reason.OK),                 # issuer wrote sd 2: one dose counts
    ("Sputnik-V", 2, 2, Reason.POLICY_NOT_MET, Reason.POLICY_NOT_MET),  # neither list
])
def test_example_policies_accept_their_products(mp: str, dn: int, sd: int, mall: Reason,
                                                travel: Reason) -> None:
    assert decide(_policy("who-eul"), "mall", mp, dn, sd) is mall
    assert decide(_policy("ema"), "travel", mp, dn, sd) is travel


def test_boosters_across_products() -> None:
    who, ema = _policy("who-eul"), _policy("ema")
    # A Comirnaty third dose after two CoronaVac doses: the entry names Comirnaty.
    assert decide(who, "mall-booster", COMIRNATY, 3, 3) is Reason.OK
    assert decide(ema, "travel-booster", COMIRNATY, 3, 3) is Reason.OK
    assert decide(who, "mall-booster", CORONAVAC, 3, 3) is Reason.OK
    assert decide(ema, "travel-booster", CORONAVAC, 3, 3) is Reason.POLICY_NOT_MET
    # Jcovden: 2/2 (or 2/1) is a booster, 1/1 only a complete series.
    assert decide(who, "mall-booster", JCOVDEN, 2, 2) is Reason.OK
    assert decide(who, "mall-booster", JCOVDEN, 1, 1) is Reason.POLICY_NOT_MET
    assert decide(who, "mall-booster", CORONAVAC, 2, 2) is Reason.POLICY_NOT_MET


def test_time_limits_of_the_examples() -> None:
    ema = _policy("ema")
    assert decide(ema, "travel", COMIRNATY, 2, 2, days=10) is Reason.POLICY_NOT_MET  # < 14 d
    assert decide(ema, "travel", COMIRNATY, 2, 2, days=300) is Reason.POLICY_NOT_MET  # > 270
    assert decide(ema, "travel", COMIRNATY, 3, 3, days=300) is Reason.OK  # booster: no limit


def test_refusal_names_the_condition_not_the_product() -> None:
    material = TrustMaterial(TrustStore.from_certificates([SIGNER[1]]),
                             mode=_policy("ema").mode("travel-booster"))
    hcert = sample_vaccination(dn=3, sd=3)
    hcert["v"][0]["mp"] = CORONAVAC
    decision = Verifier(material, lambda: NOW).verify(issue(SIGNER, hcert))
    assert decision.detail.endswith("vaccine product not accepted")
    assert CORONAVAC not in decision.detail


@pytest.mark.parametrize("name", ["who-eul", "ema"])
def test_example_policies_build_into_a_bundle(tmp_path: Path, name: str) -> None:
    (tmp_path / "dsc").mkdir()  # the policy alone; no DSC needed to check it builds
    bundle = build_bundle(tmp_path / "dsc", POLICIES / f"{name}.toml", now=NOW)
    again = TrustBundle.from_cbor(bundle.to_cbor())
    assert again.policy == bundle.policy and again.policy.default_mode in again.policy.modes
    for rule in again.policy.rules.values():
        if rule.kind == "vaccination":
            assert rule.products  # every example vaccination rule lists its products


@pytest.mark.parametrize("obj", [
    {"kind": "vaccination", "products": "CoronaVac"},
    {"kind": "vaccination", "products": [""]},
    {"kind": "vaccination", "doses": {"CoronaVac": 0}},
    {"kind": "vaccination", "doses": {"CoronaVac": 11}},
    {"kind": "vaccination", "doses": ["CoronaVac"]},
    {"kind": "test", "products": ["x"]},
])
def test_malformed_product_lists_are_refused(obj: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="rule 'r'"):
        Rule.from_obj("r", obj)


def test_test_rules_unaffected() -> None:
    material = TrustMaterial(TrustStore.from_certificates([SIGNER[1]]),
                             mode=_policy("who-eul").mode("mall"))
    qr = issue(SIGNER, sample_test(sc=(NOW - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")))
    assert Verifier(material, lambda: NOW).verify(qr).allowed
