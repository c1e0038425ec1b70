"""Signed but hostile NIK manifests: each bad field is a one-line DocumentError naming it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import cbor2
import pytest

from kiosk.errors import DocumentError
from kiosk.nik.listfile import Manifest, read_manifest
from kiosk.signing import NIK_LIST, sign_document

from .conftest import AUTHORITY, TRUSTED


def _good() -> dict[str, Any]:
    return {"format": 1, "version": 3, "salt": bytes(16),
            "kdf": {"alg": "scrypt", "n": 16, "r": 8, "p": 1}, "width": 8, "count": 2,
            "issued_at": 1_700_000_000, "expires_at": 1_800_000_000, "data_size": 16,
            "data_sha256": bytes(32)}


def _signed(payload: bytes) -> bytes:
    return sign_document(payload, AUTHORITY, content_type=NIK_LIST)


def test_the_good_manifest_reads() -> None:
    manifest = read_manifest(_signed(cbor2.dumps(_good())), TRUSTED)
    assert manifest.version == 3 and manifest.issued_at == datetime.fromtimestamp(1_700_000_000,
                                                                                    UTC)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"data_size": "16"}, "data_size must be an integer, not str"),
        ({"data_size": 17}, "data_size != width"),
        ({"issued_at": 2**62}, r"issued_at out of range \(0\.\.253402300799\)"),
        ({"expires_at": -1}, "expires_at out of range"),
        ({"version": 10**300}, r"tag 2 \(bignum\)"),
        ({"version": 2**63}, "version out of range"),
        ({"version": 0}, "version out of range"),
        ({"version": True}, "version must be an integer, not bool"),
        ({"version": 1.0}, "version must be an integer, not float"),
        ({"count": 2**62}, "count out of range"),
        ({"width": 1000}, "width out of range"),
        ({"salt": "x" * 16}, "salt must be a byte string, not str"),
        ({"salt": bytes(4)}, "salt must be 16..64 bytes"),
        ({"data_sha256": bytes(31)}, "data_sha256 must be 32..32 bytes"),
        ({"kdf": 7}, "kdf must be a map"),
        ({"kdf": {"alg": "A" * 3000}}, r"unsupported KDF \(kdf.alg is str 'AAAA"),
        ({"kdf": {"alg": "scrypt", "n": 3, "r": 8, "p": 1}}, "kdf: scrypt n=3 must be a power"),
        ({"kdf": {"alg": "scrypt", "n": 2**30, "r": 1024, "p": 1024}}, "kdf.r out of range|kdf:"),
        ({"kdf": {"alg": "scrypt", "n": "16", "r": 8, "p": 1}}, "kdf.n must be an integer"),
        ({"format": "1"}, r"unknown format \(str '1'\)"),
        ({"extra": 1}, "1 unknown keys, e.g. str 'extra'"),
    ],
)
def test_hostile_field_is_named(change: dict[str, Any], match: str) -> None:
    payload = cbor2.dumps(_good() | change)
    with pytest.raises(DocumentError, match=match) as caught:
        read_manifest(_signed(payload), TRUSTED)
    message = str(caught.value)
    assert len(message) < 120 and "A" * 41 not in message


@pytest.mark.parametrize("missing", sorted(_good()))
def test_each_missing_field_is_named(missing: str) -> None:
    payload = cbor2.dumps({k: v for k, v in _good().items() if k != missing})
    # format/kdf are checked as a whole; every other field is named.
    with pytest.raises(DocumentError, match={"format": "unknown format", "kdf": "kdf must"}.get(
            missing, f"{missing} (is missing|must be)")):
        Manifest.from_cbor(payload)
