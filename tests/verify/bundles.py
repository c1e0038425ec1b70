"""Helpers: real signed trust bundles made with the authority's Ed25519 key."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.decision import CertType
from kiosk.signing import TRUST_BUNDLE, save_public_key, sign_document
from kiosk.verify.bundle import BundleSigner, TrustBundle
from kiosk.verify.revocation import Revocation

from .conftest import NOW

AUTHORITY = Ed25519PrivateKey.generate()
KEYS = [AUTHORITY.public_key()]


def make_bundle(*ders: bytes, version: int = 1, issued_at: datetime = NOW,
                max_age_s: int = 7 * 86400, grace_s: int = 14 * 86400,
                revocation: Revocation | None = None, country: str = "XX") -> TrustBundle:
    """A bundle trusting ``ders`` for all types."""
    return TrustBundle(
        version=version, issued_at=issued_at, max_age_s=max_age_s, grace_s=grace_s,
        signers=tuple(BundleSigner(d, country, frozenset(CertType)) for d in ders),
        revocation=revocation or Revocation(),
    )


def signed(bundle: TrustBundle, key: Ed25519PrivateKey = AUTHORITY) -> bytes:
    """The bundle signed as a TRUST_BUNDLE document."""
    return sign_document(bundle.to_cbor(), key, content_type=TRUST_BUNDLE)


def sign_body(body: bytes, key: Ed25519PrivateKey = AUTHORITY) -> bytes:
    """Sign arbitrary body bytes (for malformed-body tests)."""
    return sign_document(body, key, content_type=TRUST_BUNDLE)


def write_authority(folder: Path) -> Path:
    """Provision the authority public key as a gate would; returns its path."""
    path = folder / "authority.pem"
    save_public_key(AUTHORITY.public_key(), path)
    return path


def with_version(bundle: TrustBundle, version: int) -> TrustBundle:
    """A copy of ``bundle`` with another version."""
    return replace(bundle, version=version)
