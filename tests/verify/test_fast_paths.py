"""The speed-ups must not change a single answer: each fast path against its reference."""

from __future__ import annotations

import os
from dataclasses import FrozenInstanceError
from datetime import timedelta
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.decision import CertType, Decision, InputKind, Reason, mask_name, qr_allow
from kiosk.errors import VerificationError
from kiosk.verify import TrustMaterial, TrustStore, Verifier
from kiosk.verify.clock import FixedProbe, TrustedClock
from kiosk.verify.cose import (
    _der,
    parse_sign1,
    sig_structure,
    split_sign1,
    split_sign1_python,
    split_sign1_tbs,
)
from kiosk.verify.hc1 import _holder
from kiosk.verify.issuer import make_signer, sample_test, sample_vaccination, tamper_signature
from kiosk.verify.revocation import INDEX_FROM, HashList
from kiosk.verify.rules import DEFAULT_POLICY
from kiosk.verify.schema import check_structure, plain_type

from .conftest import NOW, issue

SIGNER = make_signer("Fast DSC")


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_der_equals_encode_dss_signature(r: bytes, s: bytes) -> None:
    expected = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    assert _der(r + s) == expected


def test_der_edge_values() -> None:
    for r in (b"\x00" * 32, b"\x00" * 31 + b"\x01", b"\x80" + b"\x00" * 31, b"\xff" * 32,
              b"\x00\x80" + b"\x00" * 30):
        assert _der(r + r) == encode_dss_signature(int.from_bytes(r, "big"),
                                                   int.from_bytes(r, "big"))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["gn", "fn", "gnt", "fnt"]),
                       st.none() | st.integers() | st.text(max_size=20), max_size=4))
def test_holder_masking_equals_mask_name(nam: dict[str, object]) -> None:
    gn, fn = nam.get("gn"), nam.get("fn")
    native = " ".join(v for v in (gn, fn) if isinstance(v, str) and v)
    result = _holder({"nam": nam})
    if native.strip():
        assert result == mask_name(native)


def test_straight_path_agrees_with_the_step_pipeline() -> None:
    material = TrustMaterial(TrustStore.from_certificates([SIGNER[1]]),
                             mode=DEFAULT_POLICY.mode("3G"))
    verifier = Verifier(material, lambda: NOW)
    valid = issue(SIGNER, sample_vaccination())
    texts = [
        valid, tamper_signature(valid), valid[:-3], "HC1:", "", "x" * 20,
        issue(SIGNER, sample_vaccination(dn=1, sd=2)),
        issue(SIGNER, sample_test()),  # 9 days old: POLICY_NOT_MET
        issue(SIGNER, sample_test(tr="260373001")),
        issue(SIGNER, sample_vaccination(), exp=NOW - timedelta(seconds=1),
              iat=NOW - timedelta(days=2)),
        issue(make_signer("Other"), sample_vaccination()),
    ]
    for text in texts:
        fast = verifier.verify(text)
        slow = verifier.inspect(text).decision
        assert (fast.allowed, fast.reason, fast.detail, fast.holder_masked, fast.cert_type,
                fast.input, fast.credential_id) == \
            (slow.allowed, slow.reason, slow.detail, slow.holder_masked, slow.cert_type,
             slow.input, slow.credential_id)
    assert verifier.verify(valid).reason is Reason.OK


@pytest.mark.parametrize("cert_type", list(CertType))
@pytest.mark.parametrize("holder", [None, "E**** M*********"])
@pytest.mark.parametrize("detail", ["", "trust stale"])
def test_qr_allow_equals_the_dataclass_constructor(cert_type: CertType, holder: str | None,
                                                   detail: str) -> None:
    credential = os.urandom(64)
    fast = qr_allow(cert_type, holder, detail, credential)
    slow = Decision(True, Reason.OK, InputKind.QR, cert_type, holder, detail, credential)
    assert type(fast) is Decision and fast == slow and repr(fast) == repr(slow)
    assert fast.credential_id == credential and hash(fast) == hash(slow)
    with pytest.raises(FrozenInstanceError):
        fast.allowed = False  # type: ignore[misc]


def test_indexed_hash_list_matches_a_set() -> None:
    records = {os.urandom(16) for _ in range(INDEX_FROM * 2)}
    # Edge prefixes and records differing only in the last byte.
    records |= {b"\x00" * 16, b"\xff" * 16, b"\x00" * 15 + b"\x01", b"\xff" * 15 + b"\xfe"}
    big = HashList.from_hashes(records)
    assert big._index is not None and big._small is None
    for record in records:
        assert record in big
    misses = [os.urandom(16) for _ in range(2000)] + [b"\x00" * 14 + b"\x01\x00",
                                                      b"\xff" * 15 + b"\xfd"]
    for miss in misses:
        assert (miss in big) == (miss in records)
    # A byte pattern found across two records of the same prefix must not count.
    x, y = b"\x05" * 16, b"\x05\x05" + b"\x06" * 14
    joined = HashList.from_hashes({x, y} | records)
    straddle = (x + y)[8:24]
    assert straddle[:2] == b"\x05\x05" and (x + y).find(straddle) == 8
    assert x in joined and y in joined and straddle not in joined


_VERIFIER = Verifier(TrustMaterial(TrustStore.from_certificates([SIGNER[1]]),
                                   mode=DEFAULT_POLICY.mode("3G")), lambda: NOW)
_VALID = issue(SIGNER, sample_vaccination())


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=4, max_value=len(_VALID) - 1),
       st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"))
def test_straight_path_agrees_on_mutations(pos: int, char: str) -> None:
    text = _VALID[:pos] + char + _VALID[pos + 1:]
    fast, slow = _VERIFIER.verify(text), _VERIFIER.inspect(text).decision
    assert (fast.allowed, fast.reason, fast.detail) == (slow.allowed, slow.reason, slow.detail)


# -- the COSE splitter against cbor2 ------------------------------------------

_ENVELOPES = [
    bytes.fromhex("d28443a10126a0") + b"\x59\x01\x00" + bytes(256) + b"\x58\x40" + bytes(64),
    bytes.fromhex("8443a10126a0420102420304"),
    bytes.fromhex("d83dd28443a10126a0420102420304"),
    bytes.fromhex("845800a0420102420304"),
    bytes.fromhex("d28443a10126a1044101420102420304"),  # kid in the unprotected header
]


def _cbor2_split(data: bytes) -> tuple[bytes, bytes, bytes, int | None] | None:
    """What parse_sign1's cbor2 route reads, when the envelope has the splitter's shape."""
    try:
        obj = cbor2.loads(data)
    except Exception:
        return None
    tag = None
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag == 61 and isinstance(obj.value, cbor2.CBORTag):
            obj, tag = obj.value, 61
        if obj.tag != 18:
            return None
        tag, obj = tag or 18, obj.value
    if not isinstance(obj, list | tuple) or len(obj) != 4 or obj[1] != {}:
        return None
    if not all(isinstance(obj[i], bytes) for i in (0, 2, 3)):
        return None
    return obj[0], obj[2], obj[3], tag


#: Up to three byte edits (0: overwrite, 1: delete, 2: insert) at any position.
_EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.integers(0, 255)),
                  max_size=3)


def _edited(envelope: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """``envelope`` with ``edits`` applied in order."""
    data = bytearray(envelope)
    for op, where, value in edits:
        pos = where % (len(data) + 1)
        if op == 0 and pos < len(data):
            data[pos] = value
        elif op == 1 and pos < len(data):
            del data[pos]
        else:
            data.insert(pos, value)
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_ENVELOPES), _EDITS)
def test_split_sign1_agrees_with_cbor2(envelope: bytes, edits: list[tuple[int, int, int]]) -> None:
    data = _edited(envelope, edits)
    parts = split_sign1(data)
    if parts is not None:  # accepted: cbor2 reads exactly the same, and nothing after
        assert parts == _cbor2_split(data)
    try:  # either way parse_sign1 answers: a message or COSE_INVALID, nothing else
        message = parse_sign1(data)
    except VerificationError as exc:
        assert exc.reason is Reason.COSE_INVALID
    else:
        assert parts is None or (message.payload, message.tag) == (parts[1], parts[3])


def _bstr_head(data: bytes, wide: bool) -> bytes:
    """The head of a byte string: minimal, or (wide) the 1-byte-length form a few issuers use."""
    return b"\x58" + bytes((len(data),)) if wide else cbor2.dumps(data)[: 1 + (len(data) >= 24)]


_HC1_LIKE = st.builds(
    lambda tag, protected, payload, signature, wide: (
        tag + b"\x84" + _bstr_head(protected, wide) + protected + b"\xa0" + cbor2.dumps(payload)
        + cbor2.dumps(signature)),
    st.sampled_from([b"", b"\xd2", b"\xd8\x3d\xd2", b"\xd8\x3d", b"\xc1"]),
    st.binary(max_size=30), st.binary(max_size=300), st.binary(max_size=80), st.booleans())


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(_ENVELOPES) | _HC1_LIKE, _EDITS)
def test_the_per_scan_split_agrees_with_its_reference(envelope: bytes,
                                                      edits: list[tuple[int, int, int]]) -> None:
    """split_sign1_tbs (compiled when built) == split_sign1 + sig_structure, on any bytes."""
    data = _edited(envelope, edits)
    reference = split_sign1_python(data)
    assert split_sign1_tbs(data) == reference
    if reference is not None:
        assert reference[:4] == split_sign1(data)
        assert reference[4] == sig_structure(reference[0], reference[1])


def test_the_per_scan_split_builds_each_length_of_head() -> None:
    """Sig_structure heads of 1, 2, 3 and 5 bytes (payloads of 23, 255, 65,535, 65,536 bytes)."""
    for size in (0, 23, 24, 255, 256, 65_535, 65_536):
        data = b"\xd2\x84\x43\xa1\x01\x26\xa0" + cbor2.dumps(bytes(size)) + cbor2.dumps(bytes(64))
        assert split_sign1_tbs(data) == split_sign1_python(data) is not None
        assert split_sign1_tbs(data)[4] == cbor2.dumps(  # type: ignore[index]
            ["Signature1", b"\xa1\x01\x26", b"", bytes(size)])


def test_split_sign1_leaves_unusual_envelopes_to_cbor2() -> None:
    assert split_sign1(_ENVELOPES[4]) is None  # non-empty unprotected header
    assert parse_sign1(_ENVELOPES[4]).kid == b"\x01"
    assert split_sign1(_ENVELOPES[1] + b"\x00") is None  # trailing byte
    assert split_sign1(bytes.fromhex("d28443a10126a05f4101ff420304")) is None  # indefinite
    assert split_sign1(_ENVELOPES[1][:-1]) is None  # truncated


# -- content, rules and clock fast paths against their references -------------

def test_plain_structure_check_agrees_with_the_detailed_one() -> None:
    samples = [sample_vaccination(), sample_test(), sample_vaccination(dn=1, sd=2)]
    broken = sample_vaccination()
    broken["v"][0]["dn"] = "2"
    with_datetime = sample_test()
    with_datetime["t"][0]["sc"] = NOW
    for hcert in [*samples, broken, with_datetime, {"v": [], "ver": "1"}, {}, []]:
        plain = plain_type(hcert)
        try:
            detailed = check_structure(hcert)
        except VerificationError:
            assert plain is None
        else:
            assert plain in (None, detailed)
    assert plain_type(with_datetime) is None and check_structure(with_datetime) is CertType.TEST


@pytest.mark.parametrize("dn,sd", [(1, 2), (2, 2), (3, 3), (2, 1), (0, 1), (1, 0)])
@pytest.mark.parametrize("mode", ["3G", "2G", "booster", "any"])
def test_timeless_rules_only_accept_what_check_accepts(dn: int, sd: int, mode: str) -> None:
    scan_mode = DEFAULT_POLICY.mode(mode)
    hcert = sample_vaccination(dn=dn, sd=sd)
    if scan_mode.accepts_timeless(hcert, CertType.VACCINATION):
        scan_mode.check(hcert, CertType.VACCINATION, NOW)  # must not raise


def test_trusted_clock_now_ts_is_now_timestamp(tmp_path: Path) -> None:
    wall = [NOW]
    clock = TrustedClock(lambda: wall[0], FixedProbe(True), tmp_path / "clock.json")
    assert clock.now_ts() == clock.now().timestamp()
    clock.raise_floor(NOW.timestamp() + 1000.0000004)  # held, not a whole microsecond
    assert clock.now_ts() == clock.now().timestamp()


def test_hash_list_bitmap_never_hides_a_record() -> None:
    # Records crowding a few 3-byte prefixes, and misses sharing those prefixes.
    records = {bytes((a, b, c)) + os.urandom(13) for a in (0, 7, 255) for b in (0, 255)
               for c in range(0, 256, 3)}
    records |= {os.urandom(16) for _ in range(INDEX_FROM)}
    hashes = HashList.from_hashes(records)
    assert hashes._index is not None
    assert all(record in hashes for record in records)
    for record in list(records)[:500]:
        near = record[:3] + bytes(16 - 3)
        assert (near in hashes) == (near in records)
    assert hashes.nbytes > len(hashes.raw)
