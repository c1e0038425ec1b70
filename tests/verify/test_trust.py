"""Trust store loading, kid computation and the lenient EKU reader."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kiosk.decision import CertType
from kiosk.verify import TrustStore, kid_of
from kiosk.verify.asn1 import Asn1Error, extended_key_usage
from kiosk.verify.issuer import EKU_RECOVERY, EKU_TEST, make_signer
from kiosk.verify.trust import Signer, types_from_eku
from tests.conftest import SHARED_DCC, shared_dcc_suite

SUITE = SHARED_DCC


def test_kid_is_sha256_prefix() -> None:
    _, der = make_signer("K")
    assert kid_of(der) == hashlib.sha256(der).digest()[:8]
    assert len(kid_of(der)) == 8


def test_from_folder_loads_pem_der_crt_and_skips_bad(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ders = [make_signer(f"DSC {i}")[1] for i in range(3)]
    pem = x509.load_der_x509_certificate(ders[0]).public_bytes(Encoding.PEM)
    (tmp_path / "a.pem").write_bytes(pem)
    (tmp_path / "b.der").write_bytes(ders[1])
    (tmp_path / "c.CRT").write_bytes(x509.load_der_x509_certificate(ders[2])
                                     .public_bytes(Encoding.PEM))
    (tmp_path / "broken.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n")
    (tmp_path / "notes.txt").write_text("ignored: wrong suffix")
    with caplog.at_level(logging.WARNING, logger="kiosk.verify.trust"):
        store = TrustStore.from_folder(tmp_path)
    assert len(store) == 3
    assert all(store.lookup(kid_of(d)) is not None for d in ders)
    assert store.lookup(b"\x00" * 8) is None
    assert any("broken.pem" in r.getMessage() for r in caplog.records)


def test_from_certificates_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="certificate #1"):
        TrustStore.from_certificates([make_signer("ok")[1], b"garbage"])


def test_signer_parsed_once_with_validity_and_types() -> None:
    _, der = make_signer("Typed", eku=[EKU_TEST, EKU_RECOVERY])
    signer = Signer.from_der(der)
    assert signer.allowed_types == {CertType.TEST, CertType.RECOVERY}
    assert signer.algorithm == -7
    assert signer.not_before < signer.not_after


def test_types_from_eku() -> None:
    assert types_from_eku(None) is None
    assert types_from_eku([]) is None
    assert types_from_eku(["1.3.6.1.4.1.0.1847.2021.1.2"]) == {CertType.VACCINATION}
    assert types_from_eku(["1.3.6.1.5.5.7.3.2"]) == frozenset()
    assert types_from_eku(["1.3.6.1.4.1.1847.2021.1.9"]) == frozenset()


def test_asn1_walker_agrees_with_cryptography() -> None:
    for eku in ([EKU_TEST], [EKU_TEST, "2.23.136.1.1.14.2"], None):
        _, der = make_signer("walk", eku=eku)
        assert extended_key_usage(der) == (tuple(eku) if eku else None)
    with pytest.raises(Asn1Error):
        extended_key_usage(b"\x30\x05\x02")


def test_empty_eku_extension_is_read_leniently() -> None:
    case = shared_dcc_suite() / "common" / "2DCode" / "raw" / "CO15.json"
    der = base64.b64decode(json.loads(case.read_text())["TESTCTX"]["CERTIFICATE"])
    with pytest.raises(ValueError):  # the strict parser refuses this DSC ...
        _ = x509.load_der_x509_certificate(der).extensions
    signer = Signer.from_der(der)  # ... we still load it
    assert signer.allowed_types is None
    assert extended_key_usage(der) == ()
