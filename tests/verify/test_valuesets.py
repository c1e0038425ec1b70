"""Value sets: unknown codes denied with their own reason, on both verification paths."""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import cbor2
import pytest

from kiosk.cli import main
from kiosk.conformance import evaluate_case, find_cases
from kiosk.decision import Reason
from kiosk.display.messages import message_for
from kiosk.errors import DocumentError
from kiosk.verify import TrustMaterial, TrustStore, Verifier, base45
from kiosk.verify.bundle import ACCEPTED_FORMATS, TrustBundle
from kiosk.verify.issuer import make_signer, sample_recovery, sample_test, sample_vaccination
from kiosk.verify.rules import DEFAULT_POLICY
from kiosk.verify.valuesets import PRODUCT, TEST_DEVICE, ValueSets, load_folder
from tests.conftest import REPO_ROOT, SHARED_DCC, shared_dcc_suite

from .bundles import make_bundle, sign_install_open
from .conftest import NOW, issue

SIGNER = make_signer("Valueset DSC")
FOLDER = REPO_ROOT.parent / "shared" / "testdata" / "valuesets"


@pytest.fixture(scope="module")
def shipped() -> ValueSets:
    if not FOLDER.is_dir():
        pytest.fail(f"EU value sets not found at {FOLDER}")
    return load_folder(FOLDER)


def _verifier(valuesets: ValueSets) -> Verifier:
    material = TrustMaterial(TrustStore.from_certificates([SIGNER[1]]),
                             mode=DEFAULT_POLICY.mode("any"), valuesets=valuesets)
    return Verifier(material, lambda: NOW)


def _vaccination(**fields: Any) -> dict[str, Any]:
    hcert = sample_vaccination()
    hcert["v"][0].update(fields)
    return hcert


def _test(**fields: Any) -> dict[str, Any]:
    hcert = sample_test(sc="2021-06-10T08:00:00Z")
    hcert["t"][0].update(fields)
    return hcert


def test_shipped_folder_loads_every_set(shipped: ValueSets) -> None:
    sizes = {k: len(v) for k, v in shipped.sets.items()}
    assert sizes[PRODUCT] == 39 and sizes["country-2-codes"] == 250
    assert sizes[TEST_DEVICE] == 88 and not shipped.complete_test_devices
    assert "EU/1/20/1528" in shipped.sets[PRODUCT]


@pytest.mark.parametrize(("hcert", "reason"), [
    (_vaccination(mp="NOT-A-VACCINE"), Reason.UNKNOWN_PRODUCT),
    (_vaccination(vp="000"), Reason.UNKNOWN_VACCINE),
    (_vaccination(co="ZZ"), Reason.UNKNOWN_COUNTRY),
    (_vaccination(ma="ORG-0"), Reason.UNKNOWN_MANUFACTURER),
    (_vaccination(tg="1"), Reason.UNKNOWN_DISEASE),
    (_test(tt="a test"), Reason.UNKNOWN_TEST_TYPE),
    (_test(tr="maybe"), Reason.UNKNOWN_TEST_RESULT),
    (_test(co="ZZ"), Reason.UNKNOWN_COUNTRY),
])
def test_unknown_code_is_denied_with_its_reason(shipped: ValueSets, hcert: dict[str, Any],
                                                reason: Reason) -> None:
    verifier = _verifier(shipped)
    qr = issue(SIGNER, hcert)
    decision = verifier.verify(qr)
    assert decision.reason is reason and not decision.allowed
    assert "not in value set" in decision.detail and "NOT-A-VACCINE" not in decision.detail
    assert verifier.inspect(qr).decision.reason is reason
    assert message_for(reason).title_id and message_for(reason).title_en
    # Without value sets (a format-1 bundle) the same certificate passes.
    assert _verifier(ValueSets()).verify(qr).allowed


def test_known_codes_pass(shipped: ValueSets) -> None:
    verifier = _verifier(shipped)
    for hcert in (sample_vaccination(), _test(), sample_recovery()):
        assert verifier.verify(issue(SIGNER, hcert)).allowed


def test_test_device_only_checked_when_the_list_is_complete(shipped: ValueSets) -> None:
    qr = issue(SIGNER, _test(ma="424242"))  # a device missing from the 88-entry example
    assert _verifier(shipped).verify(qr).allowed
    complete = ValueSets(shipped.sets, complete_test_devices=True)
    assert _verifier(complete).verify(qr).reason is Reason.UNKNOWN_MANUFACTURER
    assert _verifier(complete).verify(issue(SIGNER, _test(ma="1232"))).allowed


def test_bundle_format_2_carries_value_sets_and_format_1_is_still_written(
        shipped: ValueSets) -> None:
    bundle = replace(make_bundle(SIGNER[1]), valuesets=shipped)
    again = TrustBundle.from_cbor(bundle.to_cbor())
    assert again.valuesets == shipped and again.valuesets.sets[PRODUCT] == shipped.sets[PRODUCT]
    old = TrustBundle.from_cbor(bundle.to_cbor(1))
    assert not old.valuesets and old.version == bundle.version
    assert cbor2.loads(bundle.to_cbor(1))["format"] == 1 and "valuesets" not in cbor2.loads(
        bundle.to_cbor(1))
    assert ACCEPTED_FORMATS == (1, 2, 3)


@pytest.mark.parametrize("obj", [
    {"sets": {"x": ["a"] * 3}, "extra": 1}, {"sets": {"x": [1]}}, {"sets": {"x": ["a" * 65]}},
    {"sets": {"x": "abc"}}, {"sets": [], "complete_test_devices": False},
    {"complete_test_devices": "yes"}, {"sets": {"x": ["a"] * 10_001}},
])
def test_malformed_value_sets_are_refused(obj: Any) -> None:
    with pytest.raises(ValueError):
        ValueSets.from_obj(obj)


def test_bad_folder_is_a_document_error(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="no value-set files"):
        load_folder(tmp_path)
    (tmp_path / "x.json").write_text('{"valueSetId": 3}')
    with pytest.raises(DocumentError, match=r"x\.json"):
        load_folder(tmp_path)
    # The same reader as ``kiosk rules check``: bounded before parsing, one id once.
    (tmp_path / "x.json").write_bytes(b" " * (2 << 20))
    with pytest.raises(DocumentError, match=r"x\.json: larger than"):
        load_folder(tmp_path)
    good = {"valueSetId": "x", "valueSetValues": {"A": {}}}
    for name in ("x.json", "y.JSON"):
        (tmp_path / name).write_text(json.dumps(good))
    with pytest.raises(DocumentError, match=r"y\.JSON: valueSetId 'x' appears twice"):
        load_folder(tmp_path)
    with pytest.raises(DocumentError, match="not a folder"):
        load_folder(tmp_path / "missing")


def test_build_sign_install_then_scans_are_decided_by_value_sets(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dsc").mkdir()
    (tmp_path / "dsc" / "xx.der").write_bytes(SIGNER[1])
    (tmp_path / "desc.toml").write_text(
        'version = 3\nissued_at = "2021-06-10T11:00:00Z"\n[signers."xx.der"]\ncountry = "XX"\n'
        '[policy]\ndefault_mode = "any"\n[policy.modes]\nany = []\n')
    keys = tmp_path / "keys"
    assert main(["trust", "keygen", "--out-dir", str(keys)]) == 0
    body, old_body = tmp_path / "b.cbor", tmp_path / "old.cbor"
    assert main(["trust", "build", str(tmp_path / "dsc"), str(tmp_path / "desc.toml"),
                 "--out", str(body), "--valuesets", str(FOLDER)]) == 0
    assert main(["trust", "build", str(tmp_path / "dsc"), str(tmp_path / "desc.toml"),
                 "--out", str(old_body), "--format", "1"]) == 0
    assert main(["trust", "build", str(tmp_path / "dsc"), str(tmp_path / "desc.toml"),
                 "--out", str(old_body), "--format", "1", "--valuesets", str(FOLDER)]) == 1
    capsys.readouterr()
    assert main(["trust", "inspect", str(body)]) == 0
    assert "vaccines-covid-19-names 39" in capsys.readouterr().out
    gate = sign_install_open(tmp_path, body, keys)
    assert gate.verify(issue(SIGNER, sample_vaccination())).allowed
    invented = _vaccination(mp="NOT-A-VACCINE", vp="000", co="ZZ")
    assert gate.verify(issue(SIGNER, invented)).reason is Reason.UNKNOWN_VACCINE
    assert gate.verify(issue(SIGNER, _vaccination(mp="NOT-A-VACCINE"))).reason \
        is Reason.UNKNOWN_PRODUCT
    assert gate.health().bundle_formats == (1, 2, 3)
    gate.close()


def _case(folder: Path, hcert: dict[str, Any], schema_valid: bool) -> Path:
    qr = issue(SIGNER, hcert)
    cose = zlib.decompress(base45.decode(qr[4:]))
    case = {"JSON": hcert, "COSE": cose.hex(),
            "TESTCTX": {"CERTIFICATE": base64.b64encode(SIGNER[1]).decode(),
                        "VALIDATIONCLOCK": NOW.isoformat()},
            "EXPECTEDRESULTS": {"EXPECTEDSCHEMAVALIDATION": schema_valid}}
    raw = folder / "XX" / "2DCode" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    path = raw / f"{len(list(raw.iterdir()))}.json"
    path.write_text(json.dumps(case))
    return path


def test_conformance_schema_check_counts_value_sets(tmp_path: Path, shipped: ValueSets) -> None:
    invented = _case(tmp_path, _vaccination(mp="NOT-A-VACCINE"), schema_valid=False)
    fine = _case(tmp_path, sample_vaccination(), schema_valid=True)
    assert not evaluate_case(invented).passed  # the JSON schema alone calls it valid
    assert evaluate_case(invented, shipped).passed and evaluate_case(fine, shipped).passed
    assert main(["conformance", str(tmp_path), "--valuesets", str(FOLDER)]) == 0
    assert main(["conformance", str(tmp_path)]) == 1


def test_public_suite_with_value_sets_changes_only_schema_verdicts(shipped: ValueSets) -> None:
    # docs/conformance.md: in the public suite every case whose codes are not in
    # the value sets is a payload of version 1.0.x, and those cases expect both
    # verdicts for the same codes (NL "tt": "a test" 55 times valid, 18 times
    # invalid), so value sets decide none of them; the pinned list is kept without.
    shared_dcc_suite()
    changed = set()
    for path in find_cases([SHARED_DCC]):
        plain, with_sets = evaluate_case(path), evaluate_case(path, shipped)
        for a, b in zip(plain.flags, with_sets.flags, strict=True):
            if a.actual != b.actual:
                assert a.flag == "EXPECTEDSCHEMAVALIDATION" and a.actual and not b.actual
                case = json.loads(path.read_text(encoding="utf-8"))
                assert str(case["JSON"]["ver"]).startswith("1.0.")
                changed.add((path.relative_to(SHARED_DCC).parts[0], b.matches))
    assert ("NL", True) in changed and ("NL", False) in changed
