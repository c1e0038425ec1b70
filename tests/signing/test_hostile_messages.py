"""Untrusted values in refusal messages: the field and the type are named, any echo is capped."""

from __future__ import annotations

import cbor2
import pytest

from kiosk.cborsafe import shown
from kiosk.errors import DocumentError
from kiosk.signing import TRUST_BUNDLE, generate_authority_key, verify_document
from kiosk.verify.bundle import TrustBundle
from kiosk.verify.rules import Policy

from .hostile import envelope

LONG = "HOSTILE" * 2000  # 14,000 characters
HEADER_LONG = LONG[:3500]  # within the 4 KiB protected-header limit
KEYS = [generate_authority_key().public_key()]


def _short(message: str) -> None:
    assert len(message) < 200, message
    assert "HOSTILE" * 8 not in message


@pytest.mark.parametrize(
    ("protected", "match"),
    [
        ({1: HEADER_LONG, 3: TRUST_BUNDLE}, "alg is str 'HOSTILE"),
        ({1: list(range(20)), 3: TRUST_BUNDLE}, "alg is a list of 20 items"),
        ({1: 2**64 - 1, 3: TRUST_BUNDLE}, "alg is int 18446744073709551615"),
        ({1: 10**30, 3: TRUST_BUNDLE}, r"tag 2 \(bignum\)"),
        ({1: -8, 3: HEADER_LONG}, r"document is str 'HOSTILE.*content type"),
        ({1: -8, 3: HEADER_LONG.encode()}, r"document is bytes b'HOSTILE"),
        ({1: -8, 3: {"a": 1}}, r"document is a dict of 1 items"),
    ],
)
def test_signed_document_headers_are_described_not_printed(protected: dict[int, object],
                                                           match: str) -> None:
    blob = envelope(cbor2.dumps(protected), b"\xa0")
    with pytest.raises(DocumentError, match=match) as caught:
        verify_document(blob, KEYS, content_type=TRUST_BUNDLE)
    _short(str(caught.value))


@pytest.mark.parametrize(
    "body",
    [
        {"format": LONG},
        {"format": 1, LONG: 1},
        {**{f"{LONG}{i}": i for i in range(50)}},
        {"format": 1, "version": 1, "issued_at": 1, "max_age_s": 1, "grace_s": 1,
         "revocation": {LONG: b""}},
        {"format": 1, "version": 1, "issued_at": 1, "max_age_s": 1, "grace_s": 1,
         "policy": {"default_mode": LONG, "modes": {}, "rules": {}}},
        {"format": 1, "version": 1, "issued_at": 1, "max_age_s": 1, "grace_s": 1,
         "policy": {"default_mode": "x", "modes": {LONG: ["nope"]}, "rules": {}}},
        {"format": 1, "version": 1, "issued_at": 1, "max_age_s": 1, "grace_s": 1,
         "policy": {"default_mode": "x", "modes": {}, "rules": {LONG: {"kind": "x"}}}},
        {"format": 1, "version": 1, "issued_at": 1, "max_age_s": 1, "grace_s": 1,
         "policy": {"default_mode": "x", "modes": {},
                    "rules": {"r": {"kind": "test", LONG: 1}}}},
    ],
)
def test_bundle_body_refusals_are_short(body: dict[str, object]) -> None:
    with pytest.raises(DocumentError) as caught:
        TrustBundle.from_cbor(cbor2.dumps(body))
    _short(str(caught.value))


def test_unknown_scan_mode_is_capped() -> None:
    policy = Policy.from_obj(None)
    with pytest.raises(ValueError) as caught:
        policy.mode(LONG)
    _short(str(caught.value))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "None"), (True, "True"), (1.5, "1.5"), (-8, "int -8"),
        ("abc", "str 'abc'"), (b"\x00", r"bytes b'\x00'"),
        ("x" * 100, "str '" + "x" * 39 + "…"), (2**300, "an int of 301 bits"),
        ([1, 2], "a list of 2 items"), ({1: 2}, "a dict of 1 items"), (object(), "a object"),
    ],
)
def test_shown(value: object, expected: str) -> None:
    assert shown(value) == expected
