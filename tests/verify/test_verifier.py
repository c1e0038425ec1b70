"""Every deny reason produced by a real crafted certificate (real signatures)."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import padding

from kiosk.decision import CertType, Reason
from kiosk.verify import TrustStore, Verifier, base45, kid_of
from kiosk.verify.issuer import (
    EKU_TEST,
    EKU_VACCINATION,
    encode_hc1,
    make_signer,
    sample_recovery,
    sample_test,
    sample_vaccination,
    sign1,
    tamper_signature,
)

from .conftest import EXP, IAT, NOW, Signer, issue, verifier_for

SECRET_NAMES = ("Erika", "Musterfrau", "1964-08-12")


def _claims(hcert: dict[str, object]) -> bytes:
    return cbor2.dumps({1: "XX", 4: int(EXP.timestamp()), 6: int(IAT.timestamp()),
                        -260: {1: hcert}})


@pytest.mark.parametrize(
    ("hcert", "cert_type"),
    [(sample_vaccination(), CertType.VACCINATION), (sample_test(), CertType.TEST),
     (sample_recovery(), CertType.RECOVERY)],
)
def test_valid_es256_allowed_with_masked_name(
    ec_signer: Signer, hcert: dict[str, object], cert_type: CertType
) -> None:
    decision = verifier_for(ec_signer[1]).verify(issue(ec_signer, hcert))
    assert decision.allowed and decision.reason is Reason.OK
    assert decision.cert_type is cert_type
    assert decision.holder_masked == "E**** M*********"
    assert decision.detail == ""


def test_transliterated_name_used_when_native_missing(ec_signer: Signer) -> None:
    hcert = sample_vaccination(fn="", gn="", fnt="DOE", gnt="JOHN<PAUL")
    decision = verifier_for(ec_signer[1]).verify(issue(ec_signer, hcert))
    assert decision.holder_masked == "J*** P*** D**"


@pytest.mark.parametrize("fixture", ["rsa2048_signer", "rsa3072_signer"])
def test_ps256(fixture: str, request: pytest.FixtureRequest) -> None:
    signer: Signer = request.getfixturevalue(fixture)
    v = verifier_for(signer[1])
    assert v.verify(issue(signer, sample_test())).reason is Reason.OK
    # The verifier accepts whatever salt length the signer used.
    max_salt = issue(signer, sample_test(), pss_salt=padding.PSS.MAX_LENGTH)
    assert v.verify(max_salt).reason is Reason.OK


@pytest.mark.parametrize("tag", [18, 61, None])
def test_envelopes(ec_signer: Signer, tag: int | None) -> None:
    result = verifier_for(ec_signer[1]).inspect(issue(ec_signer, sample_vaccination(), tag=tag))
    assert result.decision.reason is Reason.OK
    assert [s.name for s in result.steps][-1] == "rules"
    assert result.payload is not None and result.payload["ver"] == "1.3.0"
    assert "Erika" not in repr(result)


def test_kid_only_in_unprotected_header(ec_signer: Signer) -> None:
    qr = issue(ec_signer, sample_vaccination(), kid_in="unprotected")
    assert verifier_for(ec_signer[1]).verify(qr).reason is Reason.OK


def test_wrong_protected_kid_beats_right_unprotected_kid(ec_signer: Signer) -> None:
    qr = issue(ec_signer, sample_vaccination(), kid=b"wrongkid",
               extra_unprotected={4: kid_of(ec_signer[1])})
    assert verifier_for(ec_signer[1]).verify(qr).reason is Reason.UNKNOWN_SIGNER


def test_missing_kid(ec_signer: Signer) -> None:
    qr = issue(ec_signer, sample_vaccination(), kid_in="none")
    assert verifier_for(ec_signer[1]).verify(qr).reason is Reason.KID_MISSING


def test_unknown_signer(ec_signer: Signer) -> None:
    _, other = make_signer("Other DSC")
    qr = issue(ec_signer, sample_vaccination())
    assert verifier_for(other).verify(qr).reason is Reason.UNKNOWN_SIGNER


def test_tampered_signature(ec_signer: Signer) -> None:
    key, der = ec_signer
    cose = cbor2.loads(sign1(_claims(sample_vaccination()), key, {1: -7, 4: kid_of(der)}, {},
                             alg=-7))
    qr = tamper_signature(encode_hc1(cose_bytes := cbor2.dumps(cose)))
    assert cose_bytes != cbor2.dumps(cbor2.loads(zlib.decompress(base45.decode(qr[4:]))))
    assert verifier_for(der).verify(qr).reason is Reason.SIGNATURE_INVALID


def test_tampered_payload(ec_signer: Signer) -> None:
    key, der = ec_signer
    cose = cbor2.loads(sign1(_claims(sample_vaccination()), key, {1: -7, 4: kid_of(der)}, {},
                             alg=-7))
    parts = list(cose.value)
    parts[2] = _claims(sample_vaccination(gn="Mallory"))
    qr = encode_hc1(cbor2.dumps(cbor2.CBORTag(18, parts)))
    assert verifier_for(der).verify(qr).reason is Reason.SIGNATURE_INVALID


def test_unsupported_and_mismatched_alg(ec_signer: Signer, rsa2048_signer: Signer) -> None:
    key, der = ec_signer
    es384 = encode_hc1(sign1(_claims(sample_test()), key, {1: -35, 4: kid_of(der)}, {}, alg=-7))
    assert verifier_for(der).verify(es384).reason is Reason.ALG_UNSUPPORTED
    # An RSA key must not verify an ES256-labelled message (no alg confusion).
    rkey, rder = rsa2048_signer
    confused = encode_hc1(sign1(_claims(sample_test()), rkey, {1: -7, 4: kid_of(rder)}, {},
                                alg=-37))
    assert verifier_for(rder).verify(confused).reason is Reason.ALG_UNSUPPORTED


def test_expired_and_not_yet_valid(ec_signer: Signer) -> None:
    v = verifier_for(ec_signer[1])
    expired = issue(ec_signer, sample_test(), iat=NOW - timedelta(days=3),
                    exp=NOW - timedelta(seconds=1))
    assert v.verify(expired).reason is Reason.EXPIRED
    future = issue(ec_signer, sample_test(), iat=NOW + timedelta(minutes=5))
    assert v.verify(future).reason is Reason.NOT_YET_VALID


def test_dsc_validity_must_cover_certificate() -> None:
    short = make_signer("Short DSC", not_before=datetime(2021, 1, 1, tzinfo=UTC),
                        not_after=NOW + timedelta(days=30))
    qr = issue(short, sample_vaccination())  # exp is NOW + 180 days
    assert verifier_for(short[1]).verify(qr).reason is Reason.SIGNER_NOT_VALID
    late = make_signer("Late DSC", not_before=NOW - timedelta(hours=1))
    qr = issue(late, sample_vaccination())  # iat is NOW - 1 day
    assert verifier_for(late[1]).verify(qr).reason is Reason.SIGNER_NOT_VALID


def test_eku_rules() -> None:
    vacc_only = make_signer("Vacc DSC", eku=[EKU_VACCINATION])
    assert verifier_for(vacc_only[1]).verify(issue(vacc_only, sample_test())).reason \
        is Reason.WRONG_CERT_TYPE
    assert verifier_for(vacc_only[1]).verify(issue(vacc_only, sample_vaccination())).allowed
    misspelled = make_signer("Old DSC", eku=["1.3.6.1.4.1.0.1847.2021.1.1"])
    assert verifier_for(misspelled[1]).verify(issue(misspelled, sample_test())).allowed
    assert verifier_for(misspelled[1]).verify(issue(misspelled, sample_recovery())).reason \
        is Reason.WRONG_CERT_TYPE
    foreign_only = make_signer("ICAO DSC", eku=["2.23.136.1.1.14.2"])
    assert verifier_for(foreign_only[1]).verify(issue(foreign_only, sample_test())).reason \
        is Reason.WRONG_CERT_TYPE
    no_eku = make_signer("Any DSC")
    assert verifier_for(no_eku[1]).verify(issue(no_eku, sample_recovery())).allowed
    mixed = make_signer("Mixed DSC", eku=["2.23.136.1.1.14.2", EKU_TEST])
    assert verifier_for(mixed[1]).verify(issue(mixed, sample_test())).allowed


def test_positive_test_refused(ec_signer: Signer) -> None:
    qr = issue(ec_signer, sample_test(tr="260373001"))
    assert verifier_for(ec_signer[1]).verify(qr).reason is Reason.TEST_POSITIVE


@pytest.mark.parametrize(
    "mutate",
    [lambda h: h.update(t=sample_test()["t"]),  # two groups
     lambda h: h.pop("v"),  # no group
     lambda h: h["v"][0].update(dn="2"),  # wrong type
     lambda h: h["v"][0].pop("mp"),  # missing required field
     lambda h: h.update(nam="Erika Musterfrau")],  # nam not a map
)
def test_schema_invalid_without_personal_data_in_detail(ec_signer: Signer, mutate: object) -> None:
    hcert = sample_vaccination()
    mutate(hcert)  # type: ignore[operator]
    decision = verifier_for(ec_signer[1]).verify(issue(ec_signer, hcert))
    assert decision.reason is Reason.SCHEMA_INVALID
    assert not any(secret in decision.detail for secret in SECRET_NAMES)


def test_null_group_is_absent(ec_signer: Signer) -> None:
    hcert = sample_vaccination()
    hcert.update(t=None, r=None)  # as BG issued them
    assert verifier_for(ec_signer[1]).verify(issue(ec_signer, hcert)).allowed


def test_zlib_bomb_is_capped(ec_signer: Signer) -> None:
    bomb = zlib.compress(b"\x00" * (8 * 1024 * 1024), 9)
    qr = "HC1:" + base45.encode(bomb)
    assert len(qr) < 20_000
    assert verifier_for(ec_signer[1]).verify(qr).reason is Reason.PAYLOAD_TOO_LARGE


def test_zlib_errors(ec_signer: Signer) -> None:
    v = verifier_for(ec_signer[1])
    good = zlib.compress(b"x" * 100)
    assert v.verify("HC1:" + base45.encode(b"not zlib at all")).reason is Reason.ZLIB_INVALID
    assert v.verify("HC1:" + base45.encode(good[:-6])).reason is Reason.ZLIB_INVALID
    assert v.verify("HC1:" + base45.encode(good + b"junk")).reason is Reason.ZLIB_INVALID


def test_input_level_errors(ec_signer: Signer) -> None:
    v = verifier_for(ec_signer[1])
    assert v.verify("HC2:6BFOXN").reason is Reason.NOT_HC1
    assert v.verify("NCFOXN%TS3DH").reason is Reason.NOT_HC1
    assert v.verify("HC1:NCF:::").reason is Reason.BASE45_INVALID
    assert v.verify("HC1:" + "A" * 20_000).reason is Reason.PAYLOAD_TOO_LARGE
    assert v.verify(b"HC1:bytes").reason is Reason.NOT_HC1  # type: ignore[arg-type]


def test_cbor_garbage(ec_signer: Signer) -> None:
    key, der = ec_signer
    v = verifier_for(der)
    assert v.verify(encode_hc1(b"\xff\xfe\xfd garbage")).reason is Reason.COSE_INVALID
    assert v.verify(encode_hc1(cbor2.dumps(cbor2.CBORTag(98, [])))).reason is Reason.COSE_INVALID
    assert v.verify(encode_hc1(cbor2.dumps([b"", {}, None, b""]))).reason is Reason.COSE_INVALID
    # A correctly signed COSE whose payload is not CBOR claims:
    signed_junk = sign1(b"\x9f\x01", key, {1: -7, 4: kid_of(der)}, {}, alg=-7)
    assert v.verify(encode_hc1(signed_junk)).reason is Reason.CBOR_INVALID
    no_hcert = sign1(cbor2.dumps({4: 1, 6: 0}), key, {1: -7, 4: kid_of(der)}, {}, alg=-7)
    assert v.verify(encode_hc1(no_hcert)).reason is Reason.CBOR_INVALID


def test_float_timestamps_accepted(ec_signer: Signer) -> None:
    key, der = ec_signer
    claims = cbor2.dumps({4: EXP.timestamp() + 0.5, 6: IAT.timestamp() + 0.25,
                          -260: {1: sample_test()}})
    qr = encode_hc1(sign1(claims, key, {1: -7, 4: kid_of(der)}, {}, alg=-7))
    assert verifier_for(der).verify(qr).allowed


def test_internal_error_never_escapes(ec_signer: Signer) -> None:
    def broken_clock() -> datetime:
        raise RuntimeError("rtc gone")

    v = Verifier(TrustStore.from_certificates([ec_signer[1]]), broken_clock)
    decision = v.verify(issue(ec_signer, sample_test()))
    assert decision.reason is Reason.INTERNAL_ERROR
    assert "RuntimeError" in decision.detail
