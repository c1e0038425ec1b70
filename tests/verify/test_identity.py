"""Anti-passback identity: a malleated or re-encoded copy is the same certificate."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import given
from hypothesis import strategies as st

from kiosk.config.schema import GateConfig
from kiosk.decision import Reason
from kiosk.gate import GateDriver, GateMachine, GateOutputs, MachineConfig, PassbackGuard
from kiosk.verify import TrustMaterial, TrustStore, Verifier, base45
from kiosk.verify.identity import hc1_identity, nik_identity, normalise_uvci
from kiosk.verify.issuer import (
    malleate_es256,
    sample_test,
    sample_vaccination,
)
from kiosk.verify.revocation import HashList, Revocation, signature_hash
from kiosk.verify.rules import DEFAULT_POLICY

from .conftest import NOW, Signer, issue
from .test_revocation import _signature


def _verifier(der: bytes, revocation: Revocation | None = None) -> Verifier:
    material = TrustMaterial(TrustStore.from_certificates([der]),
                             revocation=revocation or Revocation(),
                             mode=DEFAULT_POLICY.mode("3G"))
    return Verifier(material, lambda: NOW)


@pytest.mark.parametrize("uvci", [
    "URN:UVCI:01:DE:ABC123#7", "urn:uvci:01:de:abc123#7", "01:DE:ABC123#7", "01:DE:ABC123",
    "01:de:abc123",
])
def test_uvci_forms_normalise_alike(uvci: str) -> None:
    assert normalise_uvci(uvci) == "01:DE:ABC123"


def test_identity_separates_countries_uvcis_and_kinds() -> None:
    base = hc1_identity("DE", ["URN:UVCI:01:DE:A#1"], b"x")
    assert base == hc1_identity("de", ["01:DE:A"], b"other payload")
    assert base != hc1_identity("AT", ["URN:UVCI:01:DE:A#1"], b"x")
    assert base != hc1_identity("DE", ["URN:UVCI:01:DE:B#1"], b"x")
    assert hc1_identity("DE", ["A", "B"], b"") == hc1_identity("DE", ["b", "a"], b"")
    assert nik_identity(b"\x01" * 16) != hc1_identity(None, ["\x01" * 16], b"")
    # No UVCI left: the signed payload identifies the certificate.
    empty = hc1_identity("DE", ["URN:UVCI:#0"], b"payload")
    assert empty == b"hc1-payload:" + hashlib.sha256(b"payload").digest()
    assert empty != hc1_identity("DE", [""], b"another payload")


@given(st.text(max_size=60))
def test_normalise_is_idempotent_and_never_raises(uvci: str) -> None:
    once = normalise_uvci(uvci)
    assert normalise_uvci(once) == once and "#" not in once


def test_malleated_copy_is_valid_and_has_the_same_identity(ec_signer: Signer) -> None:
    verifier = _verifier(ec_signer[1])
    original = issue(ec_signer, sample_vaccination(), issuer="DE")
    copy = malleate_es256(original)
    assert _signature(copy) != _signature(original)
    assert _signature(copy)[:32] == _signature(original)[:32]
    first, second = verifier.verify(original), verifier.verify(copy)
    assert first.allowed and second.allowed  # (r, n - s) is a valid signature too
    expected = b"hc1:DE/01:DE:84V8KMA1X0B2KSWNQJ6P6AJ64K1DRA"
    assert first.credential_id == second.credential_id == expected
    assert verifier.inspect(copy).decision.credential_id == first.credential_id
    # A copy compressed differently (another QR text, same signature) is the same one too.
    raw = zlib.decompress(base45.decode(original[4:]))
    recompressed = "HC1:" + base45.encode(zlib.compress(raw, 1))
    assert recompressed != original
    assert verifier.verify(recompressed).credential_id == first.credential_id


def test_another_certificate_of_the_same_person_is_another_identity(ec_signer: Signer) -> None:
    verifier = _verifier(ec_signer[1])
    vacc = verifier.verify(issue(ec_signer, sample_vaccination()))
    test = verifier.verify(issue(ec_signer, sample_test(sc="2021-06-10T08:00:00Z")))
    assert vacc.allowed and test.allowed and vacc.credential_id != test.credential_id


def test_malleated_copy_of_an_admitted_certificate_is_already_admitted(
        ec_signer: Signer, tmp_path: Path) -> None:
    verifier = _verifier(ec_signer[1])
    original = issue(ec_signer, sample_vaccination(), issuer="DE")
    cfg = GateConfig()
    factory = MockFactory()
    with PassbackGuard(tmp_path, 300) as guard, GateOutputs(cfg, factory) as outputs:
        driver = GateDriver(GateMachine(MachineConfig.from_gate(cfg)), outputs, passback=guard)
        driver.start(0.0)
        assert driver.admit(verifier.verify(original), 1.0, 1000.0).reason is Reason.OK
        driver.sync()
        driver.machine.on_passage(2.0)  # the holder walked through: the grant was used
        driver.sync()
        driver.tick(30.0)
        taken = driver.admit(verifier.verify(malleate_es256(original)), 30.0, 1030.0)
        assert taken.reason is Reason.ALREADY_ADMITTED
        # A re-issued certificate (new iat/exp, same UVCI) is the same vaccination event.
        reissued = issue(ec_signer, sample_vaccination(), issuer="DE",
                         exp=NOW.replace(year=2022))
        assert driver.admit(verifier.verify(reissued), 60.0, 1060.0).reason \
            is Reason.ALREADY_ADMITTED
    factory.close()


def test_malleated_copy_of_a_revoked_certificate_stays_revoked(ec_signer: Signer) -> None:
    # Regression: the SIGNATURE revocation hash of ES256 covers r only, which
    # (r, n - s) keeps.
    original = issue(ec_signer, sample_vaccination(), issuer="DE")
    revoked = HashList.from_hashes([signature_hash(_signature(original), ecdsa=True)])
    verifier = _verifier(ec_signer[1], Revocation(signature=revoked))
    assert verifier.verify(original).reason is Reason.REVOKED
    copy = malleate_es256(original)
    assert verifier.verify(copy).reason is Reason.REVOKED
    assert verifier.inspect(copy).decision.reason is Reason.REVOKED
