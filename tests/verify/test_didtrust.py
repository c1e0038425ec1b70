"""WHO GDHCN DID trust lists (v2, embedded): DSCs imported with country and key usage,
everything else skipped and counted, hostile documents refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.cli import main
from kiosk.decision import CertType, Reason
from kiosk.errors import DocumentError
from kiosk.verify import didtrust
from kiosk.verify.didtrust import (
    BAD_CERT,
    BAD_X5C,
    DUPLICATE,
    KEY_MISMATCH,
    KID_MISMATCH,
    NO_COUNTRY,
    NO_USAGE,
    NO_X5C,
    NOT_OBJECT,
    OTHER_USAGE,
    REFERENCE,
    parse_who_did,
    read_who_did,
)
from kiosk.verify.issuer import EKU_TEST, make_signer, sample_vaccination
from kiosk.verify.trust import kid_of

from .bundles import assert_country_and_usage_kept, sign_install_open
from .conftest import issue

BASE = "did:web:tng-cdn.who.int:v2:trustlist"
DSC = make_signer("GDHCN DSC XXA")
TESTS_ONLY = make_signer("GDHCN DSC XXA tests", eku=[EKU_TEST])
RSA = make_signer("GDHCN DSC XXA RSA", "rsa2048")
SCA = make_signer("GDHCN SCA XXA")


def _no_country_dsc() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A DSC whose subject has no C: the country must come from the DID path."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "GDHCN DSC without C")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(datetime(2021, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2031, 1, 1, tzinfo=UTC))
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(Encoding.DER)


NO_C = _no_country_dsc()


def _b64url(number: int, size: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes(size, "big")).rstrip(b"=").decode()


def _jwk(der: bytes, chain: tuple[bytes, ...] = ()) -> dict[str, Any]:
    """The publicKeyJwk of a DSC as the trust list publishes it (x5c[0] is the DSC)."""
    key = x509.load_der_x509_certificate(der).public_key()
    jwk: dict[str, Any] = {"kid": base64.b64encode(kid_of(der)).decode(),
                           "x5c": [base64.b64encode(d).decode() for d in (der, *chain)]}
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        # The published documents sometimes carry a leading zero byte: 33 bytes.
        jwk |= {"kty": "EC", "crv": "P-256", "x": _b64url(numbers.x, 33),
                "y": _b64url(numbers.y, 32)}
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        rsa_numbers = key.public_numbers()
        jwk |= {"kty": "RSA", "n": _b64url(rsa_numbers.n, 256), "e": _b64url(rsa_numbers.e, 3)}
    return jwk


def _method(der: bytes, path: str = "-:XXA:DSC", **changes: Any) -> dict[str, Any]:
    jwk = _jwk(der, (SCA[1],)) | changes.pop("jwk", {})
    kid = jwk.get("kid", "k")
    return {"id": f"{BASE}:{path}#{kid}", "type": "JsonWebKey2020",
            "controller": f"{BASE}:-", "publicKeyJwk": jwk} | changes


def _document(methods: list[Any], doc_id: str = f"{BASE}:-:XXA") -> dict[str, Any]:
    return {"@context": ["https://www.w3.org/ns/did/v1",
                         "https://w3id.org/security/suites/jws-2020/v1"],
            "id": doc_id, "controller": f"{BASE}:-", "verificationMethod": methods,
            "proof": {"type": "JsonWebSignature2020", "created": "2026-03-08T00:00:33Z",
                      "nonce": "n", "proofPurpose": "assertionMethod",
                      "verificationMethod": "did:web:example.org:WHO:signing:DID",
                      "jws": "eyJhbGciOiJFUzI1NiJ9..c2ln"}}


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_dscs_are_imported_with_country_and_the_rest_skipped_and_counted() -> None:
    bad_jwk_key = _jwk(DSC[1]) | {"x": _b64url(1, 32)}
    methods = [
        _method(DSC[1]), _method(TESTS_ONLY[1]), _method(RSA[1]),
        _method(NO_C[1]),                                        # country from the path: XXA
        _method(SCA[1], path="-:XXA:SCA"),                       # a CA, not a DSC
        _method(SCA[1], path="-:XXA:DECA"),
        f"{BASE}:DCC:XXB:DSC",                                   # reference variant
        42,
        _method(DSC[1], jwk={"x5c": []}),
        _method(DSC[1], jwk={"x5c": ["not base64!"]}),
        _method(DSC[1], jwk={"x5c": [base64.b64encode(b"\x30\x03abc").decode()]}),
        _method(DSC[1], jwk={"kid": base64.b64encode(b"\x00" * 8).decode()}),
        _method(DSC[1], jwk={"kid": 7}),
        _method(DSC[1], jwk=bad_jwk_key),
        _method(DSC[1], jwk={"kty": "RSA"}),
        _method(DSC[1]),                                         # listed twice
    ]
    found = parse_who_did(_document(methods))
    assert [(s.der, s.country, s.types) for s in found.signers] == [
        (DSC[1], "XX", frozenset(CertType)), (TESTS_ONLY[1], "XX", frozenset(CertType)),
        (RSA[1], "XX", frozenset(CertType)), (NO_C[1], "XXA", frozenset(CertType))]
    # Key usage: the DSC's own EKU narrows the types on the gate.
    assert found.signers[1].signer().allowed_types == frozenset({CertType.TEST})
    assert found.skipped == {OTHER_USAGE: 2, REFERENCE: 1, NOT_OBJECT: 1, NO_X5C: 1,
                             BAD_X5C: 1, BAD_CERT: 1, KID_MISMATCH: 2, KEY_MISMATCH: 2,
                             DUPLICATE: 1}
    assert len(found.warnings) == 12
    assert found.warnings[0] == f"entry #4 {_method(SCA[1], path='-:XXA:SCA')['id']!r}: " \
        "not a DSC (SCA)"
    assert found.warnings[2].startswith(f"entry #6 '{BASE}:DCC:XXB:DSC': reference")
    assert found.summary("tl.json") == (
        "tl.json: 4 DSCs imported, 12 entries skipped (bad x5c 1, certificate not usable 1, "
        "key does not match the certificate 2, kid does not match the certificate 2, "
        "listed twice 1, no x5c 1, not a DSC 2, not an object 1, "
        "reference to another DID document 1)")


def test_key_usage_from_the_method_path_then_the_document_then_the_member() -> None:
    root = parse_who_did(_document([
        _method(DSC[1], path="DCC:XXA:DSC"),
        {**_method(TESTS_ONLY[1]), "id": f"{BASE}#abc", "keyusage": "DSC"},
        {**_method(RSA[1]), "id": f"{BASE}#abc"},                 # nothing says DSC
        {**_method(SCA[1]), "id": f"{BASE}#abc", "keyusage": "SCA"},
    ], doc_id=BASE))
    assert [s.der for s in root.signers] == [DSC[1], TESTS_ONLY[1]]
    assert root.skipped == {NO_USAGE: 1, OTHER_USAGE: 1}
    # A usage-level document names the usage for methods whose ids do not.
    leaf = parse_who_did(_document([{**_method(DSC[1]), "id": "did:web:example.org#x"}],
                                   doc_id=f"{BASE}:-:XXA:DSC"))
    assert [s.der for s in leaf.signers] == [DSC[1]]
    # No C in the certificate and no participant anywhere: no country, skipped.
    anonymous = parse_who_did(_document([_method(NO_C[1], path="-:-:DSC")], doc_id=BASE))
    assert anonymous.skipped == {NO_COUNTRY: 1} and not anonymous.signers
    # A usage that is not a plain code is quoted in the warning, not printed raw.
    odd = parse_who_did(_document([_method(DSC[1], path="-:XXA:S\nCA")]))
    assert odd.skipped == {OTHER_USAGE: 1} and "\n" not in odd.warnings[0]


def test_warnings_are_bounded_but_every_skip_is_counted() -> None:
    found = parse_who_did(_document([f"{BASE}:-:X{i:05d}" for i in range(5000)]))
    assert found.skipped == {REFERENCE: 5000}
    assert len(found.warnings) == didtrust.MAX_WARNINGS
    long_id = parse_who_did(_document([{"id": "did:web:" + "a" * 10_000}]))
    assert len(long_id.warnings[0]) < 200


@pytest.mark.parametrize(("document", "match"), [
    ([1, 2], "not a DID document"),
    ({"verificationMethod": []}, "its id must be a DID"),
    ({"id": 5, "verificationMethod": []}, "its id must be a DID"),
    ({"id": "did:web:" + "a" * 600, "verificationMethod": []}, "its id must be a DID"),
    ({"id": BASE, "verificationMethod": {"a": 1}}, "verificationMethod must be a list"),
    ({"id": BASE}, "verificationMethod must be a list"),
    ({"id": BASE, "verificationMethod": ["x"] * 50_001}, "more than 50000"),
    ({"id": BASE, "verificationMethod": [], "x": [[[[[[[[[[1]]]]]]]]]]}, "nested deeper than 8"),
])
def test_malformed_documents_are_refused(document: Any, match: str) -> None:
    with pytest.raises(DocumentError, match=match):
        parse_who_did(document, "tl.json")


def test_hostile_files_are_refused_naming_the_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DocumentError, match=r"deep\.json: not JSON"):
        read_who_did(tmp_path / "deep.json")
    (tmp_path / "nan.json").write_text('{"id": "did:web:x", "verificationMethod": [NaN]}')
    with pytest.raises(DocumentError, match=r"nan\.json: not JSON"):
        read_who_did(tmp_path / "nan.json")
    with pytest.raises(DocumentError, match=r"missing\.json"):
        read_who_did(tmp_path / "missing.json")
    path = _write(tmp_path / "big.json", _document([_method(DSC[1])]))
    assert len(read_who_did(path).signers) == 1
    monkeypatch.setattr(didtrust, "MAX_FILE_BYTES", 1000)
    with pytest.raises(DocumentError, match=r"big\.json: larger than 1000 bytes"):
        read_who_did(path)
    monkeypatch.undo()
    monkeypatch.setattr(didtrust, "MAX_ITEMS", 50)
    with pytest.raises(DocumentError, match="more than 50 JSON values"):
        read_who_did(_write(tmp_path / "many.json",
                            _document([f"{BASE}:{i}" for i in range(60)])))


def test_build_with_a_who_did_list_then_the_gate_decides(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "dsc").mkdir()  # no folder DSCs: everything comes from the DID list
    listed = _write(tmp_path / "did.json", _document([
        _method(DSC[1]), _method(TESTS_ONLY[1]), _method(SCA[1], path="-:XXA:SCA"),
        f"{BASE}:DCC:XXB:DSC"]))
    (tmp_path / "desc.toml").write_text('version = 2\nissued_at = "2021-06-10T11:00:00Z"\n'
                                        '[policy]\ndefault_mode = "any"\n'
                                        '[policy.modes]\nany = []\n')
    keys, body = tmp_path / "keys", tmp_path / "b.cbor"
    assert main(["trust", "keygen", "--out-dir", str(keys)]) == 0
    assert main(["trust", "build", str(tmp_path / "dsc"), str(tmp_path / "desc.toml"),
                 "--who-did", str(listed), "--out", str(body)]) == 0
    err = capsys.readouterr().err
    assert f"{listed}: 2 DSCs imported, 2 entries skipped" in err
    assert "skipped entry #2" in err and "not a DSC (SCA)" in err
    gate = sign_install_open(tmp_path, body, keys)
    try:
        # Country kept (the DSC's C), key usage kept (its EKU).
        assert_country_and_usage_kept(gate, DSC, "XX", TESTS_ONLY, "XX")
        # The SCA was skipped: what its key signs is not trusted.
        assert gate.verify(issue(SCA, sample_vaccination(), issuer="XX")).reason \
            is Reason.UNKNOWN_SIGNER
    finally:
        gate.close()
    # A hostile list stops the build with a message naming the file; no body written.
    (tmp_path / "bad.json").write_text('{"id": "did:web:x", "verificationMethod": 3}')
    assert main(["trust", "build", str(tmp_path / "dsc"), str(tmp_path / "desc.toml"),
                 "--who-did", str(tmp_path / "bad.json"), "--out",
                 str(tmp_path / "b2.cbor")]) == 1
    assert "bad.json: verificationMethod must be a list" in caplog.text
    assert not (tmp_path / "b2.cbor").exists()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)
_GOOD = [_method(DSC[1]), _method(TESTS_ONLY[1]), _method(SCA[1], path="-:XXA:SCA")]
_KEYS = ["id", "type", "publicKeyJwk", "keyusage", "participant"]
_JWK_KEYS = ["kid", "x5c", "kty", "x", "y", "n", "e"]


@st.composite
def _mutated_method(draw: st.DrawFn) -> Any:
    method = json.loads(json.dumps(draw(st.sampled_from(_GOOD))))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(_KEYS + _JWK_KEYS))
        target = method["publicKeyJwk"] if key in _JWK_KEYS \
            and isinstance(method.get("publicKeyJwk"), dict) else method
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(_JSON)
    return method


@settings(max_examples=150, deadline=None)
@given(st.lists(_mutated_method() | _JSON, max_size=6), _JSON)
def test_parser_never_fails_on_mutated_entries(methods: list[Any], extra: Any) -> None:
    document = _document(methods) | {"extra": extra}
    try:
        found = parse_who_did(document)
    except DocumentError as exc:
        assert "nested deeper" in str(exc)  # the only refusal a valid frame allows
        return
    assert len(found.signers) + sum(found.skipped.values()) == len(methods)
    imported = {s.der for s in found.signers}
    assert imported <= {DSC[1], TESTS_ONLY[1], SCA[1]}
    if SCA[1] in imported:  # only when a mutated entry itself claims usage DSC
        assert any(isinstance(m, dict) and str(m.get("keyusage")).upper() == "DSC"
                   for m in methods)
    assert len(found.warnings) == sum(found.skipped.values())


@settings(max_examples=200, deadline=None)
@given(_JSON)
def test_parser_refuses_or_reads_any_json(value: Any) -> None:
    try:
        found = parse_who_did(value)
    except DocumentError:
        return
    assert found.signers == ()
