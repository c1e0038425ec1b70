"""Signed documents: only the authority's key, the right kind, unaltered, is accepted."""

from __future__ import annotations

from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.errors import DocumentError
from kiosk.signing import (
    NIK_LIST,
    TRUST_BUNDLE,
    generate_authority_key,
    load_private_key,
    load_public_keys,
    save_private_key,
    save_public_key,
    sign_document,
    verify_document,
)

AUTHORITY = generate_authority_key()
TRUSTED = [AUTHORITY.public_key()]


def test_round_trip() -> None:
    blob = sign_document(b"bundle body", AUTHORITY, content_type=TRUST_BUNDLE)
    assert verify_document(blob, TRUSTED, content_type=TRUST_BUNDLE) == b"bundle body"


def test_altered_payload_is_refused() -> None:
    blob = bytearray(sign_document(b"bundle body", AUTHORITY, content_type=TRUST_BUNDLE))
    blob[blob.index(b"bundle body")] ^= 0x20
    with pytest.raises(DocumentError, match="bad signature"):
        verify_document(bytes(blob), TRUSTED, content_type=TRUST_BUNDLE)


def test_other_kind_of_document_is_refused() -> None:
    blob = sign_document(b"list", AUTHORITY, content_type=NIK_LIST)
    with pytest.raises(DocumentError, match=r"expected 'application/vnd\.kiosk\.trust-bundle"):
        verify_document(blob, TRUSTED, content_type=TRUST_BUNDLE)


def test_unknown_authority_is_refused() -> None:
    rogue = generate_authority_key()
    blob = sign_document(b"bundle", rogue, content_type=TRUST_BUNDLE)
    with pytest.raises(DocumentError, match="unknown authority key"):
        verify_document(blob, TRUSTED, content_type=TRUST_BUNDLE)


def test_rogue_key_cannot_claim_the_authority_kid() -> None:
    # Forge: copy the real protected header (real kid) but sign with another key.
    real = cbor2.loads(sign_document(b"x", AUTHORITY, content_type=TRUST_BUNDLE)).value
    rogue = generate_authority_key()
    tbs = cbor2.dumps(["Signature1", real[0], b"", b"evil"])
    forged = cbor2.dumps(cbor2.CBORTag(18, [real[0], {}, b"evil", rogue.sign(tbs)]))
    with pytest.raises(DocumentError, match="bad signature"):
        verify_document(forged, TRUSTED, content_type=TRUST_BUNDLE)


def test_unprotected_headers_are_ignored() -> None:
    # An attacker can edit the unprotected map freely; it must not matter.
    real = list(cbor2.loads(sign_document(b"x", AUTHORITY, content_type=NIK_LIST)).value)
    real[1] = {3: TRUST_BUNDLE}
    with pytest.raises(DocumentError, match="expected"):
        verify_document(cbor2.dumps(cbor2.CBORTag(18, real)), TRUSTED, content_type=TRUST_BUNDLE)


def test_size_limit() -> None:
    blob = sign_document(b"x" * 1000, AUTHORITY, content_type=TRUST_BUNDLE)
    with pytest.raises(DocumentError, match="above the limit 100"):
        verify_document(blob, TRUSTED, content_type=TRUST_BUNDLE, max_bytes=100)


def test_keys_round_trip_through_pem(tmp_path: Path) -> None:
    save_private_key(AUTHORITY, tmp_path / "authority.key")
    assert (tmp_path / "authority.key").stat().st_mode & 0o077 == 0
    save_public_key(AUTHORITY.public_key(), tmp_path / "authority.pem")
    key = load_private_key(tmp_path / "authority.key")
    blob = sign_document(b"y", key, content_type=NIK_LIST)
    assert verify_document(blob, load_public_keys(tmp_path), content_type=NIK_LIST) == b"y"


def test_bad_key_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(DocumentError, match=r"junk\.pem"):
        load_public_keys(tmp_path)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_are_refused_cleanly(blob: bytes) -> None:
    with pytest.raises(DocumentError):
        verify_document(blob, TRUSTED, content_type=TRUST_BUNDLE)


def test_private_key_is_owner_only_even_over_a_0644_file(tmp_path: Path) -> None:
    import stat

    path = tmp_path / "authority.key"
    path.write_bytes(b"old")
    path.chmod(0o644)
    save_private_key(AUTHORITY, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_private_key(path).public_key() == AUTHORITY.public_key()
