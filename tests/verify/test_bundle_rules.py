"""CertLogic rules in the trust bundle: format 3, building, inspecting, bounded loading."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.cli import main
from kiosk.errors import DocumentError
from kiosk.verify.bundle import TrustBundle, load_bundle
from kiosk.verify.certrules import MAX_RULES, SECTION_DEPTH, BundleRules
from kiosk.verify.issuer import make_signer

from .bundles import (
    EXAMPLE_RULES,
    KEYS,
    example_rules,
    gateway_rule,
    make_bundle,
    sign_body,
    signed,
)

EXAMPLE = EXAMPLE_RULES
DER = make_signer("Bundle rules DSC")[1]
rule = gateway_rule


def with_rules(rules: list[dict[str, Any]], **kwargs: Any) -> TrustBundle:
    return replace(make_bundle(DER, **kwargs), certlogic=BundleRules.from_rules(rules))


def test_rules_round_trip_as_format_3_and_without_rules_the_format_stays_2() -> None:
    bundle = with_rules(example_rules())
    body = bundle.to_cbor()
    assert cbor2.loads(body)["format"] == 3
    again = TrustBundle.from_cbor(body)
    assert again.certlogic.raw == bundle.certlogic.raw
    assert [r.identifier for r in again.certlogic.rules][:2] == ["GR-ID-0001", "GR-ID-0002"]
    assert cbor2.loads(make_bundle(DER).to_cbor())["format"] == 2  # old gates still read it
    assert TrustBundle.from_cbor(load_bundle(signed(bundle), KEYS).to_cbor()).certlogic


@pytest.mark.parametrize("body_format", [1, 2])
def test_an_older_format_is_refused_for_a_bundle_with_rules(body_format: int) -> None:
    with pytest.raises(ValueError, match="needs format 3"):
        with_rules([rule()]).to_cbor(body_format)
    assert cbor2.loads(make_bundle(DER).to_cbor(body_format))["format"] == body_format


def test_a_format_2_body_with_a_rules_section_is_refused() -> None:
    body = cbor2.loads(with_rules([rule()]).to_cbor())
    body["format"] = 2
    with pytest.raises(DocumentError, match="certlogic needs format 3"):
        load_bundle(sign_body(cbor2.dumps(body)), KEYS)


@pytest.mark.parametrize(("section", "match"), [
    (cbor2.dumps({"a": 1}), "array of rules"),
    ([1, 2], "byte string"),
    (cbor2.dumps([{"Identifier": "VR-ID-0001"}]), r"rule #1 \(VR-ID-0001\): unknown field|missing"),
    (cbor2.dumps([rule(logic={"nope": [1]})]), r"VR-ID-0100.*unrecognised operator"),
    (cbor2.dumps([rule()] * 2), "appears twice"),
    (b"\x9f\xff", "indefinite"),
    (cbor2.dumps([rule()]) + b"\x00", "bytes after"),
])
def test_a_bad_rules_section_is_refused_naming_the_defect(section: Any, match: str) -> None:
    body = cbor2.loads(make_bundle(DER).to_cbor())
    body.update(format=3, certlogic=section)
    with pytest.raises(DocumentError, match=match):
        load_bundle(sign_body(cbor2.dumps(body)), KEYS)


def _nested(levels: int) -> Any:
    """A valid CertLogic expression ``levels`` operators deep: !(!(... {"var": "x"}))."""
    expr: Any = {"var": "payload.v.0.dn"}
    for _ in range(levels):
        expr = {"!": [expr]}
    return expr


def test_rules_nest_deeper_than_the_body_walker_allows_but_stay_bounded() -> None:
    deep = with_rules([rule(logic=_nested(60))])  # ~122 CBOR containers deep
    assert TrustBundle.from_cbor(deep.to_cbor()).certlogic.rules[0].identifier == "VR-ID-0100"
    # Beyond the section's cap the walker refuses before any object (or rule) is built.
    body = cbor2.loads(make_bundle(DER).to_cbor())
    body.update(format=3, certlogic=cbor2.dumps([rule(logic=_nested(SECTION_DEPTH))]))
    with pytest.raises(DocumentError, match="certlogic refused: nesting"):
        TrustBundle.from_cbor(cbor2.dumps(body))
    # The rest of the body keeps its depth limit of 8.
    body = cbor2.loads(make_bundle(DER).to_cbor())
    body["policy"] = {"rules": {"a": {"kind": [[[[[[[[1]]]]]]]]}}}
    with pytest.raises(DocumentError, match="nesting"):
        TrustBundle.from_cbor(cbor2.dumps(body))


def test_rule_count_is_capped() -> None:
    rules = [rule(f"VR-ID-{n:04d}") for n in range(MAX_RULES + 1)]
    with pytest.raises(ValueError, match=f"at most {MAX_RULES}"):
        BundleRules.from_rules(rules)


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(min_value=0, max_value=400), wrap=st.sampled_from(["!", "list", "map"]))
def test_property_any_nesting_of_the_rules_section_is_accepted_or_refused_cleanly(
        depth: int, wrap: str) -> None:
    expr: Any = {"var": "payload.v.0.dn"}
    for _ in range(depth):
        expr = {"!": [expr]} if wrap == "!" else [expr] if wrap == "list" else {"if": [expr]}
    body = cbor2.loads(make_bundle(DER).to_cbor())
    body.update(format=3, certlogic=cbor2.dumps([rule(logic=expr)]))
    try:
        bundle = TrustBundle.from_cbor(cbor2.dumps(body))
    except DocumentError as exc:
        assert "trust bundle" in str(exc)
    else:
        assert len(bundle.certlogic) == 1


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=300))
def test_property_garbage_in_the_rules_section_is_a_document_error(section: bytes) -> None:
    body = cbor2.loads(make_bundle(DER).to_cbor())
    body.update(format=3, certlogic=section)
    try:
        bundle = TrustBundle.from_cbor(cbor2.dumps(body))
    except DocumentError as exc:  # nothing else may escape: no crash, no RecursionError
        assert str(exc).startswith(("malformed trust bundle", "trust bundle body refused"))
    else:  # only an empty array of rules is well-formed here
        assert not bundle.certlogic


def _cli_build(tmp_path: Path, *extra: str) -> int:
    (tmp_path / "dsc").mkdir(exist_ok=True)
    (tmp_path / "dsc" / "xx.der").write_bytes(DER)
    (tmp_path / "desc.toml").write_text('version = 3\n[signers."xx.der"]\ncountry = "XX"\n')
    return main(["trust", "build", str(tmp_path / "dsc"), str(tmp_path / "desc.toml"),
                 "--out", str(tmp_path / "b.cbor"), *extra])


def test_cli_build_with_rules_and_inspect_lists_them(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli_build(tmp_path, "--rules", str(EXAMPLE)) == 0
    assert "format 3" in capsys.readouterr().out
    assert main(["trust", "inspect", str(tmp_path / "b.cbor")]) == 0
    out = capsys.readouterr().out
    assert "rules:      20" in out
    assert ("VR-ID-0003 1.0.0 Acceptance Vaccination country ID valid "
            "2021-06-01T00:00:00.000Z .. 2030-06-01T00:00:00.000Z") in out
    one = tmp_path / "one.json"
    one.write_text(json.dumps(rule()))  # a single rule, not a list
    assert _cli_build(tmp_path, "--rules", str(one), "--format", "3") == 0
    assert len(TrustBundle.from_cbor((tmp_path / "b.cbor").read_bytes()).certlogic) == 1


def test_cli_build_without_rules_keeps_format_2(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli_build(tmp_path) == 0
    assert cbor2.loads((tmp_path / "b.cbor").read_bytes())["format"] == 2
    assert "rules:      none" in (main(["trust", "inspect", str(tmp_path / "b.cbor")]) == 0
                                  and capsys.readouterr().out)


def test_cli_build_refuses_a_bad_rule_naming_it_and_an_older_format(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([rule(), rule("TR-ID-0042", logic={"plusTime": [1]})]))
    assert _cli_build(tmp_path, "--rules", str(bad)) == 1
    assert "rule #2 (TR-ID-0042)" in caplog.text and not (tmp_path / "b.cbor").exists()
    caplog.clear()
    assert _cli_build(tmp_path, "--rules", str(EXAMPLE), "--format", "2") == 1
    assert "needs format 3" in caplog.text
    caplog.clear()
    (tmp_path / "junk.json").write_text("{not json")
    assert _cli_build(tmp_path, "--rules", str(tmp_path / "junk.json")) == 1
    assert "not JSON" in caplog.text
