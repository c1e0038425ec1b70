"""Documents signed by the central authority: trust bundles and NIK status lists.

One trust root for everything the gate accepts from the centre: the authority's
Ed25519 public keys, provisioned on the device. A signed document is a tagged
COSE_Sign1 (RFC 9052, the same envelope as the health certificates) with
protected header ``{1: -8 (EdDSA), 3: content type, 4: key id}``. The content
type is inside the signature, so a NIK list can never be replayed as a trust
bundle or the other way round.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.atomic import atomic_write
from kiosk.cborsafe import shown
from kiosk.errors import DocumentError, VerificationError
from kiosk.verify.cose import parse_sign1

ALG_EDDSA = -8
_LABEL_ALG, _LABEL_CONTENT_TYPE, _LABEL_KID = 1, 3, 4
TRUST_BUNDLE = "application/vnd.kiosk.trust-bundle+cbor"
NIK_LIST = "application/vnd.kiosk.nik-list+cbor"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def generate_authority_key() -> Ed25519PrivateKey:
    """A new authority signing key (kept at the centre, never on a gate)."""
    return Ed25519PrivateKey.generate()


def key_id(public_key: Ed25519PublicKey) -> bytes:
    """8-byte id of an authority key: SHA-256 of its raw 32 bytes, truncated."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:8]


def sign_document(payload: bytes, key: Ed25519PrivateKey, *, content_type: str) -> bytes:
    """Sign ``payload`` as a document of ``content_type``; returns the COSE_Sign1 bytes."""
    protected = cbor2.dumps(
        {
            _LABEL_ALG: ALG_EDDSA,
            _LABEL_CONTENT_TYPE: content_type,
            _LABEL_KID: key_id(key.public_key()),
        }
    )
    tbs = cbor2.dumps(["Signature1", protected, b"", payload])
    return cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, key.sign(tbs)]))


def verify_document(
    blob: bytes,
    trusted: Iterable[Ed25519PublicKey],
    *,
    content_type: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> bytes:
    """Check a signed document and return its payload.

    Every header that matters is taken from the protected (signed) header only.

    Raises:
        DocumentError: too large, not a COSE_Sign1, not EdDSA, wrong content
            type, unknown key id, or a bad signature; the message says which.
    """
    if len(blob) > max_bytes:
        raise DocumentError(f"document is {len(blob)} bytes, above the limit {max_bytes}")
    try:
        message = parse_sign1(blob)
    except VerificationError as exc:
        raise DocumentError(f"not a signed document: {exc.detail}") from None
    protected = message.protected
    # Header values are untrusted until the signature checks: described, never printed whole.
    alg = protected.get(_LABEL_ALG)
    if type(alg) is not int or alg != ALG_EDDSA:
        raise DocumentError(
            f"unsupported signature algorithm (protected header alg is {shown(alg)}; "
            f"expected EdDSA, {ALG_EDDSA})")
    kind = protected.get(_LABEL_CONTENT_TYPE)
    if type(kind) is not str or kind != content_type:
        raise DocumentError(
            f"document is {shown(kind)} (protected header content type), "
            f"expected {content_type!r}")
    kid = protected.get(_LABEL_KID)
    keys = {key_id(k): k for k in trusted}
    if not isinstance(kid, bytes) or kid not in keys:
        raise DocumentError("signed by an unknown authority key")
    try:
        keys[kid].verify(message.signature, message.to_be_signed())
    except InvalidSignature:
        raise DocumentError("bad signature: the document was altered or forged") from None
    return message.payload


# Fixed codes for refused documents, matched on the messages this package writes
# (first match wins); used for the operators' ``refused.<surface>`` counters.
_REFUSAL_CODES = (
    ("CBOR tag", "cbor_tag"),
    ("duplicate map key", "cbor_duplicate_key"),
    ("nesting", "cbor_too_deep"),
    ("items", "cbor_too_many_items"),
    ("larger than", "too_large"),
    ("above the limit", "too_large"),
    ("cannot read", "unreadable"),
    ("rollback", "rollback"),
    ("bad signature", "bad_signature"),
    ("unknown authority key", "unknown_signer"),
    ("signature algorithm", "bad_algorithm"),
    ("expected 'application/", "wrong_content_type"),
    ("expired", "expired"),
)


def refusal_code(exc: DocumentError) -> str:
    """A short fixed code for why a document was refused (``malformed`` when unclassified).

    Never the content: for counters and events (``kiosk.telemetry.refused``).
    """
    text = str(exc)
    for phrase, code in _REFUSAL_CODES:
        if phrase in text:
            return code
    return "malformed"


def save_private_key(key: Ed25519PrivateKey, path: Path) -> None:
    """Write an authority private key as PEM (PKCS#8, mode 0600)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Atomic and 0600 on the new file itself: never the mode of a file already there.
    atomic_write(path, pem, mode=0o600)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an authority private key (PEM). Raises DocumentError if it is not Ed25519."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise DocumentError(f"{path}: not an Ed25519 private key")
    return key


def save_public_key(key: Ed25519PublicKey, path: Path) -> None:
    """Write an authority public key as PEM (SubjectPublicKeyInfo)."""
    path.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def load_public_keys(path: Path) -> list[Ed25519PublicKey]:
    """Read the provisioned authority public keys: one PEM file or a folder of ``*.pem``.

    Raises:
        DocumentError: a file is unreadable or not an Ed25519 public key (a gate
            must not start with a half-read trust root).
    """
    files = sorted(path.glob("*.pem")) if path.is_dir() else [path]
    keys = []
    for file in files:
        try:
            key = serialization.load_pem_public_key(file.read_bytes())
        except (OSError, ValueError) as exc:
            raise DocumentError(f"{file}: cannot read authority key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise DocumentError(f"{file}: not an Ed25519 public key")
        keys.append(key)
    return keys
