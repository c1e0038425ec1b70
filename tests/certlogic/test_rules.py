"""Rule sets: Gateway-format validation, version choice, applicability, outcomes; value sets."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kiosk.certlogic import CertLogicError
from kiosk.certlogic.rules import compile_rule_set, instant_text
from kiosk.certlogic.valuesets import load_value_sets
from kiosk.verify.issuer import sample_test, sample_vaccination
from tests.certlogic.suites import shared_dir
from tests.conftest import REPO_ROOT

EXAMPLE_RULES = REPO_ROOT / "docs" / "examples" / "certlogic-rules.json"
AT = datetime(2021, 6, 20, 12, 0, tzinfo=UTC)


def make_rule(identifier: str = "VR-ID-0001", logic: Any = True, **fields: Any) -> dict[str, Any]:
    """A valid Gateway rule; ``fields`` override any key."""
    rule = {
        "Identifier": identifier, "Type": "Acceptance", "Country": "ID", "Version": "1.0.0",
        "SchemaVersion": "1.0.0", "Engine": "CERTLOGIC", "EngineVersion": "1.3.3",
        "CertificateType": "Vaccination",
        "Description": [{"lang": "en", "desc": "English text"},
                        {"lang": "id", "desc": "Teks bahasa Indonesia"}],
        "ValidFrom": "2021-06-01T00:00:00Z", "ValidTo": "2030-01-01T00:00:00Z",
        "AffectedFields": ["v.0.mp"], "Logic": logic,
    }
    rule.update(fields)
    return rule


def test_example_rule_set_compiles_and_decides() -> None:
    rules = compile_rule_set(json.loads(EXAMPLE_RULES.read_text()),
                             load_value_sets(shared_dir("valuesets")))
    assert len(rules.identifiers) == 20
    external = rules.external(AT, country="ID", iat=datetime(2021, 6, 2, tzinfo=UTC),
                              exp=datetime(2022, 6, 1, tzinfo=UTC))
    assert rules.failures(sample_vaccination(), external) == []
    outcomes = {o.identifier: o.passed for o in rules.evaluate(sample_vaccination(), external)}
    assert outcomes["VR-ID-0003"] is True and outcomes["TR-ID-0001"] is None
    invented = sample_vaccination(dn=1)
    invented["v"][0].update(mp="NOT-A-VACCINE", co="ZZ")
    failed = rules.failures(invented, external)
    assert [o.identifier for o in failed] == ["VR-ID-0003", "VR-ID-0005", "VR-ID-0006",
                                              "VR-ID-0010", "VR-ID-0011"]
    assert failed[0].description("id") == "Produk vaksin harus dikenal."
    assert failed[0].description("fr") == "The vaccine product must be known."
    expired = rules.external(AT, exp=datetime(2021, 6, 19, tzinfo=UTC))
    assert [o.identifier for o in rules.failures(sample_test(sc="2021-06-19T20:00:00Z"),
                                                 expired)] == ["GR-ID-0002"]


def test_highest_version_valid_at_the_clock_decides() -> None:
    rules = compile_rule_set([
        make_rule(Version="1.0.0", Logic=True),
        make_rule(Version="1.10.0", Logic=False, ValidFrom="2021-07-01T00:00:00Z"),
        make_rule(Version="1.2.0", Logic={"===": [1, 2]}, ValidTo="2021-06-25T00:00:00Z"),
        make_rule("VR-ID-0002", Logic=True, ValidFrom="2022-01-01T00:00:00+07:00"),
    ])
    payload = sample_vaccination()

    def decided(at: datetime) -> list[tuple[str, bool | None, str | None]]:
        return [(o.identifier, o.passed, o.rule.version_text if o.rule else None)
                for o in rules.evaluate(payload, rules.external(at))]

    assert decided(AT) == [("VR-ID-0001", False, "1.2.0"), ("VR-ID-0002", None, None)]
    assert decided(datetime(2021, 6, 28, tzinfo=UTC))[0] == ("VR-ID-0001", True, "1.0.0")
    assert decided(datetime(2021, 7, 1, tzinfo=UTC))[0] == ("VR-ID-0001", False, "1.10.0")
    assert decided(datetime(2021, 5, 1, tzinfo=UTC))[0] == ("VR-ID-0001", None, None)
    # ValidFrom 2022-01-01T00:00+07:00 is 2021-12-31T17:00Z; both ends inclusive.
    assert decided(datetime(2021, 12, 31, 17, tzinfo=UTC))[1][1] is True
    assert decided(datetime(2021, 12, 31, 16, 59, 59, 999000, tzinfo=UTC))[1][1] is None


def test_certificate_type_decides_applicability() -> None:
    rules = compile_rule_set([make_rule("GR-ID-0001", CertificateType="General"),
                              make_rule("VR-ID-0001"),
                              make_rule("TR-ID-0001", CertificateType="Test"),
                              make_rule("RR-ID-0001", CertificateType="Recovery")])
    external = rules.external(AT)
    assert [o.passed for o in rules.evaluate(sample_vaccination(), external)] == [
        True, True, None, None]
    assert [o.passed for o in rules.evaluate(sample_test(), external)] == [
        True, None, True, None]
    assert [o.passed for o in rules.evaluate({"ver": "1.3.0"}, external)] == [
        True, None, None, None]


def test_only_exactly_true_passes_and_errors_fail_with_reason() -> None:
    rules = compile_rule_set([
        make_rule("VR-ID-0001", Logic=1), make_rule("VR-ID-0002", Logic="true"),
        make_rule("VR-ID-0003", Logic={"+": [{"var": "payload.dob"}, 1]}),
        make_rule("VR-ID-0004", Logic={"var": "payload.v.0"}),
    ])
    outcomes = rules.evaluate(sample_vaccination(), rules.external(AT))
    assert [o.passed for o in outcomes] == [False, False, False, False]
    assert outcomes[2].error is not None and "integers" in outcomes[2].error
    assert "1964" not in outcomes[2].error
    assert outcomes[0].error is None


@pytest.mark.parametrize(("change", "message"), [
    ({"Identifier": "XX-ID-0001"}, "Identifier"),
    ({"Type": "Rejection"}, "Type"),
    ({"Country": "idn"}, "Country"),
    ({"Version": "1.0"}, "Version"),
    ({"Version": "01.0.0"}, "Version"),
    ({"Engine": "JSONLOGIC"}, "Engine"),
    ({"CertificateType": "Passport"}, "CertificateType"),
    ({"Description": []}, "Description"),
    ({"Description": [{"lang": "en"}]}, "Description"),
    ({"Description": [{"lang": "en", "desc": "x" * 5000}]}, "Description"),
    ({"ValidFrom": "tomorrow"}, "ValidFrom"),
    ({"ValidTo": "2021-05-01T00:00:00Z"}, "ValidTo is before ValidFrom"),
    ({"AffectedFields": "v.0.mp"}, "AffectedFields"),
    ({"Logic": {"all": [1]}}, 'Logic: unrecognised operator: "all"'),
    ({"Logics": True}, "unknown field 'Logics'"),
])
def test_invalid_rules_are_refused_naming_rule_and_field(change: dict[str, Any],
                                                        message: str) -> None:
    rule = make_rule()
    rule.update(change)
    with pytest.raises(CertLogicError, match="rule #2") as caught:
        compile_rule_set([make_rule("VR-ID-0009"), rule])
    assert message in str(caught.value)


def test_missing_field_and_duplicate_version_are_refused() -> None:
    rule = make_rule()
    del rule["Logic"]
    with pytest.raises(CertLogicError, match="missing field 'Logic'"):
        compile_rule_set([rule])
    with pytest.raises(CertLogicError, match="appears twice"):
        compile_rule_set([make_rule(), make_rule()])
    with pytest.raises(CertLogicError, match="must be a JSON object"):
        compile_rule_set(["VR-ID-0001"])


def test_clock_is_required() -> None:
    rules = compile_rule_set([make_rule()])
    with pytest.raises(CertLogicError, match="validationClock"):
        rules.evaluate(sample_vaccination(), {})
    with pytest.raises(CertLogicError):
        rules.evaluate(sample_vaccination(), {"validationClock": "June"})


def test_instant_text_is_utc_with_milliseconds() -> None:
    assert instant_text(datetime(2021, 6, 1, 9, 30, 0, 123456)) == "2021-06-01T09:30:00.123Z"
    moment = datetime.fromisoformat("2021-06-01T09:30:00+07:00")
    assert instant_text(moment) == "2021-06-01T02:30:00.000Z"


def test_value_sets_from_the_shared_folder() -> None:
    value_sets = load_value_sets(shared_dir("valuesets"))
    assert "EU/1/20/1528" in value_sets["vaccines-covid-19-names"]
    assert "ID" in value_sets["country-2-codes"] and "ZZ" not in value_sets["country-2-codes"]
    assert set(value_sets) >= {"disease-agent-targeted", "sct-vaccines-covid-19",
                               "vaccines-covid-19-auth-holders", "covid-19-lab-test-type",
                               "covid-19-lab-result", "covid-19-lab-test-manufacturer-and-name"}


def test_bad_value_sets_are_refused_naming_the_file(tmp_path: Path) -> None:
    good = {"valueSetId": "x", "valueSetDate": "2021-01-01", "valueSetValues": {"A": {}}}
    (tmp_path / "a.json").write_text(json.dumps(good))
    (tmp_path / "README.md").write_text("ignored")
    assert load_value_sets(tmp_path) == {"x": ["A"]}
    (tmp_path / "b.json").write_text(json.dumps(good))
    with pytest.raises(CertLogicError, match=r"b\.json: valueSetId 'x' appears twice"):
        load_value_sets(tmp_path)
    (tmp_path / "b.json").write_text("[" * 100_000)
    with pytest.raises(CertLogicError, match=r"b\.json: not JSON"):
        load_value_sets(tmp_path)
    bad = copy.deepcopy(good)
    bad["valueSetValues"] = ["A"]
    (tmp_path / "b.json").write_text(json.dumps(bad))
    with pytest.raises(CertLogicError, match="valueSetValues"):
        load_value_sets(tmp_path)
    (tmp_path / "b.json").write_bytes(b" " * (2 << 20))
    with pytest.raises(CertLogicError, match="larger than"):
        load_value_sets(tmp_path)
    with pytest.raises(CertLogicError, match="not a folder"):
        load_value_sets(tmp_path / "missing")
