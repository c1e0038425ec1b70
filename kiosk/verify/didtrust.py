"""Import WHO GDHCN trust lists (DID Trustlist v2, embedded): ``kiosk trust build --who-did``.

The WHO Global Digital Health Certification Network publishes its key material
as W3C DID documents (smart.who.int/trust, "DID Trustlist v2"): ``did:web``
documents at ``https://tng-cdn.who.int/v2/trustlist[/$domain/$participant/$usage]/did.json``
(``-dev`` / ``-uat`` hosts for the test environments), where ``-`` is a
wildcard level, ``$participant`` an ISO 3166 alpha-3 code and ``$usage`` one of
the GDHCN key usage codes (DSC, SCA, DECA, DESC, TLS, UP).  An *embedded*
document carries the keys itself::

    {"@context": [...], "id": "did:web:tng-cdn.who.int:v2:trustlist:-:XXA:DSC",
     "controller": "...", "verificationMethod": [
        {"id": "did:web:tng-cdn.who.int:v2:trustlist:-:XXA:DSC#<kid>",
         "type": "JsonWebKey2020", "controller": "...",
         "publicKeyJwk": {"kty": "EC", "kid": "<kid>", "crv": "P-256", "x": ..., "y": ...,
                          "x5c": ["<base64 DER of the DSC>", "<base64 DER of its SCA>"]}}],
     "proof": {"type": "JsonWebSignature2020", ..., "jws": "..."}}

Each verificationMethod whose DID path says key usage ``DSC`` becomes a bundle
signer: the certificate is ``x5c[0]`` (RFC 7517 4.7: the first certificate
holds the key; the rest is its chain, not imported); its ``kid`` (base64 of the
first 8 bytes of SHA-256 of the DER, the DCC kid) and the JWK's own key
members, when present, must match that certificate.  The **key usage** is
read from the verification method's DID path (``...:$usage#kid``), else from
the document's, else from the ``keyusage`` member the published documents
carry beside it; **country** is the DSC's own subject C (ISO 3166 alpha-2,
what an HC1's ``iss`` holds and what the gate compares it with), else the
path's ``$participant`` (alpha-3, which would never equal an alpha-2 ``iss``);
the types the DSC may sign come from its own EKU, applied by the gate, as for
the other imports.

Anything else is **skipped and counted, never fatal**: references to other DID
documents (the *reference* variant, ``trustlist-ref``: this import is offline,
resolve them and pass the embedded documents), other key usages (SCA, DECA,
DESC, UP, TLS), no usage at all, entries without ``x5c``, bad base64, a
certificate that does not parse or has an unsupported key, a kid or key that
does not match the certificate, a DSC listed twice.  Only what makes the whole
document unreadable refuses it: too large, not JSON, nested too deep, too many
values or entries, not a DID document.

The document's ``proof`` (a JsonWebSignature2020 by WHO's signing DID) is not
verified here: checking it needs the RDF canonicalisation of the document and
the resolution of WHO's did:web key over the network, neither of which the
trust list documentation specifies beyond naming the suite.  The import runs
at the central authority, which reviews the result (``kiosk trust inspect``)
and signs the bundle with its own key: that signature is what gates trust.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from kiosk.decision import CertType
from kiosk.errors import DocumentError
from kiosk.verify.bundle import BundleSigner
from kiosk.verify.trust import Signer, kid_of
from kiosk.verify.trustlists import MAX_DER_BYTES, MAX_FILE_BYTES, decode_b64

__all__ = ["MAX_DEPTH", "MAX_ENTRIES", "MAX_ITEMS", "MAX_WARNINGS", "DidImport",
           "check_json_bounds", "parse_who_did", "read_who_did"]

MAX_DEPTH = 8  # document > verificationMethod > entry > publicKeyJwk > x5c is 4
MAX_ITEMS = 2_000_000  # every JSON value; a 64 MiB file of tiny values is refused early
MAX_ENTRIES = 50_000
MAX_WARNINGS = 20
MAX_ID_CHARS = 512  # a DID or DID URL; longer is not a trust-list id
USAGE_DSC = "DSC"

# Why an entry was skipped -> the counter key (stable: tests and the summary use it).
REFERENCE = "reference to another DID document"
NOT_OBJECT = "not an object"
OTHER_USAGE = "not a DSC"
NO_USAGE = "no key usage"
NO_X5C = "no x5c"
BAD_X5C = "bad x5c"
BAD_CERT = "certificate not usable"
KID_MISMATCH = "kid does not match the certificate"
KEY_MISMATCH = "key does not match the certificate"
NO_COUNTRY = "no country"
DUPLICATE = "listed twice"


@dataclass(frozen=True)
class DidImport:
    """What one DID trust list gave: the DSCs, and what was skipped and why.

    Attributes:
        signers: the DSCs, in document order, each once.
        skipped: reason -> how many entries were skipped for it.
        warnings: the first :data:`MAX_WARNINGS` skips, each naming the entry
            (its position and a bounded id), never more.
    """

    signers: tuple[BundleSigner, ...]
    skipped: Mapping[str, int]
    warnings: tuple[str, ...]

    def summary(self, source: str) -> str:
        """One line: how many DSCs were imported and skipped, by reason."""
        total = sum(self.skipped.values())
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped.items()))
        return (f"{source}: {len(self.signers)} DSCs imported, {total} entries skipped"
                + (f" ({reasons})" if reasons else ""))


class _Skip(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def check_json_bounds(value: Any, *, max_depth: int = MAX_DEPTH,
                      max_items: int = MAX_ITEMS) -> None:
    """Refuse parsed JSON deeper than ``max_depth`` or of more than ``max_items`` values.

    Iterative (no recursion on hostile depth).  Raises ValueError naming the limit.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > max_items:
            raise ValueError(f"more than {max_items} JSON values")
        if isinstance(node, dict | list):
            if depth >= max_depth and node:
                raise ValueError(f"nested deeper than {max_depth}")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)


def read_who_did(path: Path) -> DidImport:
    """The DSCs of a WHO GDHCN embedded DID trust list file (see the module docstring).

    Raises:
        DocumentError: unreadable, larger than :data:`MAX_FILE_BYTES`, not
            JSON, beyond the depth/value bounds, or not a DID document.
            Defective entries are skipped and counted instead.
    """
    from kiosk.certlogic.commands import read_json
    from kiosk.certlogic.dates import CertLogicError

    try:
        document = read_json(path, MAX_FILE_BYTES)  # size-capped before parsing
    except CertLogicError as exc:
        raise DocumentError(f"DID trust list {exc}") from None
    return parse_who_did(document, str(path))


def parse_who_did(document: Any, source: str = "DID trust list") -> DidImport:
    """:func:`read_who_did` on an already parsed document; ``source`` names it in errors."""
    try:
        check_json_bounds(document, max_depth=MAX_DEPTH, max_items=MAX_ITEMS)
    except ValueError as exc:
        raise DocumentError(f"{source}: refused: {exc}") from None
    if not isinstance(document, dict):
        raise DocumentError(f"{source}: not a DID document (a JSON object)")
    doc_id, methods = document.get("id"), document.get("verificationMethod")
    if not isinstance(doc_id, str) or not doc_id.startswith("did:") \
            or len(doc_id) > MAX_ID_CHARS:
        raise DocumentError(f"{source}: not a DID document (its id must be a DID)")
    if not isinstance(methods, list):
        raise DocumentError(f"{source}: verificationMethod must be a list")
    if len(methods) > MAX_ENTRIES:
        raise DocumentError(f"{source}: {len(methods)} verification methods, "
                            f"more than {MAX_ENTRIES}")
    signers: list[BundleSigner] = []
    seen: set[bytes] = set()
    skipped: Counter[str] = Counter()
    warnings: list[str] = []
    for index, method in enumerate(methods):
        try:
            signer = _method(method, doc_id)
            if signer.der in seen:
                raise _Skip(DUPLICATE)
        except _Skip as skip:
            skipped[skip.reason] += 1
            if len(warnings) < MAX_WARNINGS:
                warnings.append(f"entry #{index} {_label(method)}: {skip.reason}"
                                + (f" ({skip.detail})" if skip.detail else ""))
            continue
        seen.add(signer.der)
        signers.append(signer)
    return DidImport(tuple(signers), dict(skipped), tuple(warnings))


def _label(method: Any) -> str:
    """A bounded name for an entry in a warning: its id (or the reference) cut short."""
    ident = method.get("id") if isinstance(method, dict) else method
    return repr(ident[:80]) if isinstance(ident, str) else "(no id)"


def _levels(did: str) -> list[str]:
    """The [$domain, $participant, $usage] levels after ``trustlist`` in a DID ('-': any)."""
    parts = did.split("#", 1)[0].split(":")
    if "trustlist" not in parts:
        return []
    at = len(parts) - 1 - parts[::-1].index("trustlist")
    return parts[at + 1:at + 4]


def _level(levels: list[str], at: int) -> str | None:
    value = levels[at] if len(levels) > at else None
    return None if value in (None, "-", "") else value


def _method(method: Any, doc_id: str) -> BundleSigner:
    if isinstance(method, str):
        raise _Skip(REFERENCE, "not resolved: this import is offline")
    if not isinstance(method, dict):
        raise _Skip(NOT_OBJECT)
    method_id = method.get("id")
    own = _levels(method_id) if isinstance(method_id, str) \
        and len(method_id) <= MAX_ID_CHARS else []
    levels = own if _level(own, 2) else _levels(doc_id)
    usage = _level(levels, 2) or _text(method.get("keyusage"))
    if usage is None:
        raise _Skip(NO_USAGE)
    if usage.upper() != USAGE_DSC:
        raise _Skip(OTHER_USAGE, usage[:8] if usage[:8].isalnum() else repr(usage[:8]))
    participant = _level(own, 1) or _level(_levels(doc_id), 1) \
        or _text(method.get("participant"))
    jwk = method.get("publicKeyJwk")
    if not isinstance(jwk, dict) or not isinstance(jwk.get("x5c"), list) or not jwk["x5c"]:
        raise _Skip(NO_X5C)
    first = jwk["x5c"][0]
    try:
        der = decode_b64(first.replace("\r", "").replace("\n", "") if isinstance(first, str)
                         else first, "x5c[0]")
    except ValueError as exc:
        raise _Skip(BAD_X5C, str(exc)) from None
    if not der or len(der) > MAX_DER_BYTES:
        raise _Skip(BAD_X5C, "empty or too large")
    try:
        cert = x509.load_der_x509_certificate(der)
        Signer.from_der(der)  # the gate must be able to use it
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise _Skip(BAD_CERT, str(exc)[:80]) from None
    kid = jwk.get("kid")
    if kid is not None:
        try:
            if decode_b64(kid, "kid") != kid_of(der):
                raise _Skip(KID_MISMATCH)
        except ValueError:
            raise _Skip(KID_MISMATCH, "kid is not base64") from None
    if not _jwk_matches(jwk, cert.public_key()):  # parsed above: a supported key
        raise _Skip(KEY_MISMATCH)
    country = _subject_country(cert) or participant
    if country is None or not 1 <= len(country) <= 3 or not country.isascii() \
            or not country.isalpha():
        raise _Skip(NO_COUNTRY)
    return BundleSigner(der, country.upper(), frozenset(CertType))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 16 else None


def _subject_country(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    value = attrs[0].value if attrs else None
    return value if isinstance(value, str) and value else None


def _b64url_int(value: Any) -> int | None:
    if not isinstance(value, str) or len(value) > 1024:
        return None
    try:
        return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")
    except (binascii.Error, ValueError):
        return None


def _jwk_matches(jwk: dict[str, Any], key: Any) -> bool:
    """False when the JWK's own key members (RFC 7518 6.2/6.3) contradict the certificate's key.

    Members that are absent are not checked: the certificate is the key used.
    """
    kty = jwk.get("kty")
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        pairs = (("x", numbers.x), ("y", numbers.y))
        expected_kty = "EC"
    elif isinstance(key, rsa.RSAPublicKey):
        rsa_numbers = key.public_numbers()
        pairs = (("n", rsa_numbers.n), ("e", rsa_numbers.e))
        expected_kty = "RSA"
    else:
        return False
    if kty is not None and kty != expected_kty:
        return False
    return all(name not in jwk or _b64url_int(jwk[name]) == value for name, value in pairs)
