"""CertLogic rules in decisions: applicability, external parameters, rule_failed, one path."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest

from kiosk.atomic import atomic_write
from kiosk.certlogic import evaluator
from kiosk.config import load_config
from kiosk.config.schema import ClockConfig, PolicyConfig, VerifyConfig
from kiosk.decision import Reason
from kiosk.display.render import decision_view
from kiosk.errors import ConfigError
from kiosk.verify import TrustMaterial, TrustStore, Verifier
from kiosk.verify.bundle import TrustBundle
from kiosk.verify.bundlefile import install_bundle
from kiosk.verify.certrules import BundleRules, GateRules
from kiosk.verify.clock import FixedProbe
from kiosk.verify.factory import gate_rules, open_trust_watcher, open_verifier
from kiosk.verify.issuer import make_signer, sample_recovery, sample_test, sample_vaccination
from kiosk.verify.valuesets import ValueSets

from .bundles import KEYS, gateway_rule, make_bundle, sign_body, signed, write_authority
from .conftest import NOW, issue

SIGNER = make_signer("CertLogic decisions DSC")
BOOSTER = {">=": [{"var": "payload.v.0.dn"}, 3]}  # the rule of the task: dn >= 3
DESCRIPTIONS = [{"lang": "en", "desc": "A booster (third dose) is required."},
                {"lang": "id", "desc": "Diperlukan vaksin penguat (dosis ketiga)."}]


def _bundle(*rules: dict[str, Any], valuesets: ValueSets | None = None) -> TrustBundle:
    return replace(make_bundle(SIGNER[1]), certlogic=BundleRules.from_rules(list(rules)),
                   valuesets=valuesets or ValueSets())


def _verifier(*rules: dict[str, Any], country: str = "ID",
              valuesets: ValueSets | None = None) -> Verifier:
    bundle = _bundle(*rules, valuesets=valuesets)
    material = TrustMaterial(TrustStore.from_certificates([SIGNER[1]]),
                             rules=gate_rules(bundle, country))
    return Verifier(material, lambda: NOW)


def _decide(verifier: Verifier, hcert: dict[str, Any], **kwargs: Any) -> Any:
    qr = issue(SIGNER, hcert, **kwargs)
    decision = verifier.verify(qr)
    inspected = verifier.inspect(qr)
    assert inspected.decision == decision  # the fast path and the pipeline agree
    if decision.reason is Reason.RULE_FAILED:
        assert inspected.step("rules") is not None and not inspected.step("rules").ok
    return decision


def test_a_failed_rule_denies_with_its_identifier_and_description() -> None:
    verifier = _verifier(gateway_rule("VR-ID-0100", BOOSTER, Description=DESCRIPTIONS))
    two = _decide(verifier, sample_vaccination(dn=2, sd=2))
    assert two.reason is Reason.RULE_FAILED and not two.allowed
    assert two.detail == "rules: rule VR-ID-0100 failed"
    assert "Erika" not in repr(two) and "Musterfrau" not in repr(two)
    assert two.note == ("Diperlukan vaksin penguat (dosis ketiga).",
                        "A booster (third dose) is required.")
    view = decision_view(two)
    assert view.kind == "denied"
    assert [b.text for b in view.body] == list(two.note)
    three = _decide(verifier, sample_vaccination(dn=3, sd=3))
    assert three.allowed and three.note is None


def test_only_applicable_rules_decide() -> None:
    verifier = _verifier(
        gateway_rule("TR-ID-0100", False, CertificateType="Test"),  # another type
        gateway_rule("VR-DE-0100", False, Country="DE"),  # another country of arrival
        gateway_rule("IR-ID-0100", False, Type="Invalidation"),  # not an Acceptance rule
        gateway_rule("VR-ID-0101", False, ValidTo="2021-06-09T00:00:00Z"),  # expired rule
        gateway_rule("VR-ID-0102", False, ValidFrom="2021-06-11T00:00:00Z"),  # not yet valid
        gateway_rule("GR-ID-0100", {"===": [{"var": "payload.ver"}, "1.3.0"]},
                     CertificateType="General"),
    )
    assert _decide(verifier, sample_vaccination()).allowed
    assert _decide(verifier, sample_test(sc=(NOW - timedelta(hours=2)).isoformat())).reason \
        is Reason.RULE_FAILED
    assert _decide(verifier, sample_recovery()).allowed


def test_the_highest_version_valid_at_the_clock_decides() -> None:
    old = gateway_rule("VR-ID-0100", True, Version="1.0.0")
    new = gateway_rule("VR-ID-0100", BOOSTER, Version="1.1.0")
    future = gateway_rule("VR-ID-0100", True, Version="2.0.0",
                          ValidFrom="2021-07-01T00:00:00Z")
    assert _decide(_verifier(old, new, future), sample_vaccination()).reason \
        is Reason.RULE_FAILED
    assert _decide(_verifier(new, old), sample_vaccination(dn=3, sd=3)).allowed


def _at(var: str, days: int = 0) -> dict[str, Any]:
    return {"plusTime": [{"var": var}, days, "day"]}


def test_external_parameters_are_the_eu_verifiers() -> None:
    country = gateway_rule("GR-ID-0101", {"===": [{"var": "external.countryCode"}, "ID"]},
                           CertificateType="General")
    iat = gateway_rule("GR-ID-0102", {"before": [_at("external.iat"),
                                                 _at("external.validationClock")]},
                       CertificateType="General")
    # exp between clock + 9 days and clock + 11 days
    exp = gateway_rule("GR-ID-0103", {"not-after": [_at("external.validationClock", 9),
                                                    _at("external.exp"),
                                                    _at("external.validationClock", 11)]},
                       CertificateType="General")
    product = gateway_rule("VR-ID-0103", {"in": [
        {"var": "payload.v.0.mp"}, {"var": "external.valueSets.vaccines-covid-19-names"}]})
    sets = ValueSets({"vaccines-covid-19-names": frozenset({"EU/1/20/1528"})})
    verifier = _verifier(country, iat, exp, product, valuesets=sets)
    in_ten_days = NOW + timedelta(days=10)
    assert _decide(verifier, sample_vaccination(), exp=in_ten_days).allowed
    late = _decide(verifier, sample_vaccination(), exp=NOW + timedelta(days=30))
    assert late.detail == "rules: rule GR-ID-0103 failed"
    future_iat = _verifier(iat)  # iat == clock is not "before" it
    assert _decide(future_iat, sample_vaccination(), iat=NOW).reason is Reason.RULE_FAILED
    other = sample_vaccination()
    other["v"][0]["mp"] = "EU/1/21/1529"  # in the bundle's value sets? not in this one
    assert _decide(verifier, other, exp=in_ten_days).detail == "rules: rule VR-ID-0103 failed"
    # The country of arrival is the gate's: a DE gate applies DE rules with "DE".
    de_rule = gateway_rule("GR-DE-0101", {"===": [{"var": "external.countryCode"}, "DE"]},
                           CertificateType="General", Country="DE")
    assert _decide(_verifier(de_rule, country="DE"), sample_vaccination()).allowed


def test_an_evaluation_error_fails_the_rule() -> None:
    # plusTime on a number: an evaluation error (the rule compiles).
    broken = gateway_rule("VR-ID-0105", {"before": [
        {"plusTime": [{"var": "payload.v.0.dn"}, 0, "day"]},
        {"plusTime": [{"var": "external.validationClock"}, 0, "day"]}]})
    decision = _decide(_verifier(broken), sample_vaccination())
    assert decision.reason is Reason.RULE_FAILED
    assert decision.detail == "rules: rule VR-ID-0105 could not be evaluated"


def test_description_falls_back_to_english_then_the_identifier() -> None:
    english = gateway_rule("VR-ID-0106", False,
                           Description=[{"lang": "en", "desc": "English only."}])
    german = gateway_rule("VR-ID-0107", False,
                          Description=[{"lang": "de", "desc": "Nur Deutsch."}])
    assert _decide(_verifier(english), sample_vaccination()).note == ("English only.",
                                                                      "English only.")
    assert _decide(_verifier(german), sample_vaccination()).note == ("VR-ID-0107",
                                                                     "VR-ID-0107")


def test_built_in_checks_come_first() -> None:
    verifier = _verifier(gateway_rule("VR-ID-0100", False))
    assert _decide(verifier, sample_vaccination(), exp=NOW - timedelta(days=1),
                   iat=NOW - timedelta(days=2)).reason is Reason.EXPIRED


def test_rules_for_no_country_of_this_gate_apply_none(caplog: pytest.LogCaptureFixture) -> None:
    bundle = _bundle(gateway_rule("VR-DE-0100", False, Country="DE"))
    assert gate_rules(bundle, "ID") is None
    assert "none of them an Acceptance rule of policy.country ID" in caplog.text
    assert isinstance(gate_rules(bundle, "DE"), GateRules)


def _install(tmp_path: Path, bundle: TrustBundle) -> VerifyConfig:
    keys = write_authority(tmp_path)
    install_bundle(signed(bundle), tmp_path / "state" / "trust-bundle.cose", KEYS)
    return VerifyConfig(trust_source="bundle", authority_keys=keys)


def test_rules_are_compiled_once_per_load_not_per_scan(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _install(tmp_path, _bundle(gateway_rule("VR-ID-0100", BOOSTER),
                                     gateway_rule("GR-ID-0100", True, CertificateType="General")))
    compiled: list[int] = []
    real = evaluator._Compiler.compile

    def counting(self: Any, expr: Any, depth: int) -> Any:
        if depth == 0:
            compiled.append(1)
        return real(self, expr, depth)

    monkeypatch.setattr(evaluator._Compiler, "compile", counting)
    gate = open_verifier(cfg, wall_clock=lambda: NOW, state_dir=tmp_path / "state",
                         clock=ClockConfig(), policy=PolicyConfig(), probe=FixedProbe(True))
    assert len(compiled) == 2
    qr2, qr3 = (issue(SIGNER, sample_vaccination(dn=n, sd=n)) for n in (2, 3))
    for _ in range(20):
        assert gate.verify(qr2).reason is Reason.RULE_FAILED
        assert gate.verify(qr3).allowed
    assert len(compiled) == 2
    gate.close()


def test_the_gate_country_comes_from_policy_country(tmp_path: Path) -> None:
    cfg = _install(tmp_path, _bundle(gateway_rule("VR-DE-0100", BOOSTER, Country="DE")))
    qr = issue(SIGNER, sample_vaccination(dn=2, sd=2))
    for country, reason in (("ID", Reason.OK), ("DE", Reason.RULE_FAILED)):
        gate = open_verifier(cfg, wall_clock=lambda: NOW, state_dir=tmp_path / "state",
                             clock=ClockConfig(), policy=PolicyConfig(country=country),
                             probe=FixedProbe(True))
        assert gate.verify(qr).reason is reason
        gate.close()


@pytest.mark.parametrize("value", ["id", "IDN", "I", "1D", ""])
def test_policy_country_is_validated(tmp_path: Path, value: str) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text(f'[policy]\ncountry = "{value}"\n')
    with pytest.raises(ConfigError, match=r"policy\.country"):
        load_config(path)
    path.write_text('[policy]\ncountry = "SG"\n')
    assert load_config(path).policy.country == "SG"
    assert PolicyConfig().country == "ID"


def test_a_hot_reload_brings_rules_in_and_a_bad_rules_section_keeps_them(tmp_path: Path) -> None:
    cfg = replace(_install(tmp_path, replace(_bundle(), version=1)), reload_interval_s=3600)
    state = tmp_path / "state"
    gate = open_verifier(cfg, wall_clock=lambda: NOW, state_dir=state, clock=ClockConfig(),
                         policy=PolicyConfig(), probe=FixedProbe(True))
    watcher = open_trust_watcher(gate, cfg, state_dir=state, policy=PolicyConfig())
    assert watcher is not None
    try:
        qr = issue(SIGNER, sample_vaccination(dn=2, sd=2))
        assert gate.verify(qr).allowed
        ruled = replace(_bundle(gateway_rule("VR-ID-0100", BOOSTER)), version=2)
        install_bundle(signed(ruled), state / cfg.bundle_file, KEYS)
        assert watcher.check(force=True)
        assert gate.verify(qr).reason is Reason.RULE_FAILED
        # A signed v3 whose rules section does not compile, put in place: refused at
        # reload as a whole; the rules in force stay.
        body = cbor2.loads(ruled.to_cbor())
        body.update(version=3, certlogic=cbor2.dumps([gateway_rule("VR-ID-0100",
                                                                   {"nope": [1]})]))
        atomic_write(state / cfg.bundle_file, sign_body(cbor2.dumps(body)))
        watcher.check(force=True)
        assert gate.material.version == 2
        assert gate.verify(qr).reason is Reason.RULE_FAILED
    finally:
        watcher.close()
        gate.close()
