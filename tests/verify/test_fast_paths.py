"""The speed-ups must not change a single answer: each fast path against its reference."""

from __future__ import annotations

import os
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.decision import Reason, mask_name
from kiosk.verify import TrustMaterial, TrustStore, Verifier
from kiosk.verify.cose import _der
from kiosk.verify.hc1 import _holder
from kiosk.verify.issuer import make_signer, sample_test, sample_vaccination, tamper_signature
from kiosk.verify.revocation import INDEX_FROM, HashList
from kiosk.verify.rules import DEFAULT_POLICY

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
        assert (fast.allowed, fast.reason, fast.detail, fast.holder_masked, fast.cert_type) == \
            (slow.allowed, slow.reason, slow.detail, slow.holder_masked, slow.cert_type)
    assert verifier.verify(valid).reason is Reason.OK


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
