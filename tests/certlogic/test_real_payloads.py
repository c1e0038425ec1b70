"""The example rules on real payloads: a CBOR-decoded HC1 and the shared EU DCC test cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kiosk.certlogic.rules import RuleSet, compile_rule_set
from kiosk.certlogic.valuesets import load_value_sets
from kiosk.cli import main
from kiosk.verify.cose import parse_sign1
from kiosk.verify.issuer import EKU_VACCINATION, issue_hc1, make_signer, sample_vaccination
from kiosk.verify.steps import decode_base45, inflate, parse_claims, strip_prefix
from tests.certlogic.suites import shared_dir
from tests.certlogic.test_rules import EXAMPLE_RULES
from tests.conftest import shared_dcc_suite

NOW = datetime(2021, 6, 20, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return compile_rule_set(json.loads(EXAMPLE_RULES.read_text()),
                            load_value_sets(shared_dir("valuesets")))


def _scan(qr: str) -> tuple[dict[str, Any], datetime, datetime]:
    """The hcert and iat/exp as the verifier decodes them (CBOR, not JSON)."""
    claims = parse_claims(parse_sign1(inflate(decode_base45(strip_prefix(qr)))).payload)
    return (claims.hcert, datetime.fromtimestamp(claims.iat, UTC),
            datetime.fromtimestamp(claims.exp, UTC))


def test_rules_on_a_decoded_certificate(rules: RuleSet) -> None:
    key, der = make_signer("DSC rules", "ec", [EKU_VACCINATION])
    good = sample_vaccination(co="ID", dt="2021-05-20")
    invented = sample_vaccination(co="ID", dt="2021-05-20")
    invented["v"][0].update(mp="NOT-A-VACCINE", vp="000", ma="ZZ")
    verdicts = []
    for hcert in (good, invented):
        qr = issue_hc1(hcert, key, der, NOW - timedelta(days=1), NOW + timedelta(days=300),
                       issuer="ID")
        payload, iat, exp = _scan(qr)
        external = rules.external(NOW, country="ID", iat=iat, exp=exp)
        verdicts.append([o.identifier for o in rules.failures(payload, external)])
    assert verdicts == [[], ["VR-ID-0002", "VR-ID-0003", "VR-ID-0004", "VR-ID-0005"]]
    # The same certificate read after its expiry and before its issue time.
    payload, iat, exp = _scan(issue_hc1(good, key, der, NOW + timedelta(hours=1),
                                        NOW + timedelta(days=1), issuer="ID"))
    later = rules.external(NOW + timedelta(days=2), iat=iat, exp=exp)
    assert [o.identifier for o in rules.failures(payload, later)] == ["GR-ID-0002"]
    early = rules.external(NOW, iat=iat, exp=exp)
    assert [o.identifier for o in rules.failures(payload, early)] == ["GR-ID-0003"]


def _dcc_cases() -> list[tuple[Path, dict[str, Any], str]]:
    cases = []
    for path in sorted(shared_dcc_suite().rglob("*.json")):
        try:
            case = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            continue
        payload, clock = case.get("JSON"), (case.get("TESTCTX") or {}).get("VALIDATIONCLOCK")
        if isinstance(payload, dict) and isinstance(clock, str):
            cases.append((path, payload, clock))
    return cases


def test_rules_on_every_shared_dcc_payload(rules: RuleSet) -> None:
    """Hundreds of real issuers' payloads: every rule gives an answer, value sets decide."""
    cases = _dcc_cases()
    assert len(cases) > 300
    value_set = set(rules.value_sets["vaccines-covid-19-names"])
    checked = 0
    for path, payload, clock in cases:
        at = datetime.fromisoformat(clock)
        at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # some cases omit it
        outcomes = {o.identifier: o.passed for o in rules.evaluate(payload, rules.external(at))}
        assert len(outcomes) == 20, path
        # General rules apply to every payload, once their ValidFrom (2021-06-01) has come.
        assert (outcomes["GR-ID-0001"] is None) == (at < datetime(2021, 6, 1, tzinfo=UTC)), path
        if payload.get("v") and datetime(2021, 6, 1, tzinfo=UTC) <= at:
            mp = payload["v"][0].get("mp")
            assert outcomes["VR-ID-0003"] is (mp in value_set), path
            checked += 1
    assert checked >= 30  # 40 in the shared suite as laid on 2026-12-02


def test_rules_check_on_the_shared_payloads(rules: RuleSet, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    payloads = [payload for _, payload, _ in _dcc_cases()]
    (tmp_path / "p.json").write_text(json.dumps(payloads))
    status = main(["rules", "check", str(EXAMPLE_RULES), str(tmp_path / "p.json"),
                   "--at", "2021-06-20T12:00:00Z", "--valuesets", str(shared_dir("valuesets"))])
    lines = capsys.readouterr().out.splitlines()
    assert status == 0 and len(lines) == len(payloads)
    assert all(set(json.loads(line).values()) <= {True, False, None} for line in lines)
