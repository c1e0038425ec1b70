"""The individual verification steps, each a small pure function.

Each step either returns its product or raises
:class:`kiosk.errors.VerificationError` carrying the deny reason.  The
pipeline in :mod:`kiosk.verify.hc1` strings them together; the conformance
runner calls them one by one on the intermediate values of a test case.
Later work (revocation, business rules, signed trust bundles) adds steps here
without touching the others.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any, NamedTuple

from kiosk import cborsafe
from kiosk.decision import CertType, Reason
from kiosk.errors import VerificationError
from kiosk.verify import base45
from kiosk.verify.cose import CoseSign1, verify_signature
from kiosk.verify.revocation import Revocation
from kiosk.verify.schema import check_structure
from kiosk.verify.trust import ALG_ES256, Signer, TrustStore

__all__ = [
    "MAX_INFLATED",
    "MAX_TEXT",
    "PREFIX",
    "Claims",
    "authenticate",
    "check_key_usage",
    "check_revocation",
    "check_times",
    "check_times_ts",
    "decode_base45",
    "inflate",
    "issuer_matches",
    "parse_claims",
    "strip_prefix",
]

PREFIX = "HC1:"
MAX_TEXT = 16 * 1024  # characters; a version-40 QR holds at most 4,296 alphanumerics
MAX_INFLATED = 64 * 1024  # bytes of COSE after zlib; real certificates are < 2 KiB

_CLAIM_ISS, _CLAIM_EXP, _CLAIM_IAT, _CLAIM_HCERT = 1, 4, 6, -260
#: CWT claims, decoded only after the signature check: real ones are < 2 KiB,
#: ~100 items, 6 levels deep; some issuers tag the test sample time (tag 0).
CLAIMS_LIMITS = cborsafe.Limits(max_bytes=MAX_INFLATED, max_depth=16, max_items=4096,
                                tags=cborsafe.DATE_TAGS)


def strip_prefix(text: str) -> str:
    """Remove the ``HC1:`` context identifier.

    Raises:
        VerificationError(PAYLOAD_TOO_LARGE): text longer than :data:`MAX_TEXT`.
        VerificationError(NOT_HC1): not a string, or any other prefix (HC2:, HL0:, none).
    """
    if not isinstance(text, str):
        raise VerificationError(Reason.NOT_HC1, f"input is {type(text).__name__}, not text")
    if len(text) > MAX_TEXT:
        raise VerificationError(Reason.PAYLOAD_TOO_LARGE, f"{len(text)} characters")
    if not text.startswith(PREFIX):
        raise VerificationError(Reason.NOT_HC1, "missing HC1: prefix")
    return text[len(PREFIX) :]


def decode_base45(text: str) -> bytes:
    """Base45-decode; raises VerificationError(BASE45_INVALID) on any defect."""
    try:
        return base45.decode(text)
    except base45.Base45Error as exc:
        raise VerificationError(Reason.BASE45_INVALID, str(exc)) from None


def inflate(data: bytes, limit: int = MAX_INFLATED) -> bytes:
    """zlib-inflate ``data`` with a hard output cap of ``limit`` bytes.

    Uses ``decompressobj(...).decompress(data, max_length)`` so a zlib bomb
    never allocates more than ``limit`` + 1 bytes.

    Raises:
        VerificationError(PAYLOAD_TOO_LARGE): the output would exceed ``limit``.
        VerificationError(ZLIB_INVALID): not zlib, truncated stream, or trailing bytes.
    """
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise VerificationError(Reason.ZLIB_INVALID, str(exc)) from None
    # The usual case in one test (per scan): the stream ended inside the cap
    # with nothing after it (at eof, no input is left unconsumed).
    if inflater.eof and len(out) <= limit and not inflater.unused_data:
        return out
    if len(out) > limit or inflater.unconsumed_tail:
        raise VerificationError(Reason.PAYLOAD_TOO_LARGE, f"inflated size above {limit} bytes")
    if not inflater.eof:
        raise VerificationError(Reason.ZLIB_INVALID, "truncated zlib stream")
    if inflater.unused_data:
        raise VerificationError(Reason.ZLIB_INVALID, "bytes after the zlib stream")
    return out


def authenticate(cose: CoseSign1, trust: TrustStore) -> Signer:
    """Find the signer by kid (protected header first) and check the signature.

    Raises:
        VerificationError: KID_MISSING, UNKNOWN_SIGNER, ALG_UNSUPPORTED or SIGNATURE_INVALID.
    """
    kid = cose.kid
    if kid is None:
        raise VerificationError(Reason.KID_MISSING, "no kid in either header")
    signer = trust.lookup(kid)
    if signer is None:
        raise VerificationError(Reason.UNKNOWN_SIGNER, f"kid {kid.hex()}")
    verify_signature(signer, cose.alg, cose.to_be_signed(), cose.signature)
    return signer


class Claims(NamedTuple):
    """The CWT claims of a certificate; ``hcert`` holds personal data and stays in memory.

    ``iat`` / ``exp`` are POSIX seconds (int or float, as issued: HU uses floats);
    comparing numbers avoids building datetimes on the hot path.  Immutable (a
    NamedTuple: built on every scan, far cheaper than a frozen dataclass).
    """

    issuer: str | None
    iat: float
    exp: float
    hcert: dict[str, Any]

    def __repr__(self) -> str:
        # Never the hcert: names and birth date must not reach a log.
        return f"Claims(issuer={self.issuer!r}, iat={self.iat!r}, exp={self.exp!r})"

    @property
    def issued_at(self) -> datetime:
        """iat as an aware UTC datetime."""
        return datetime.fromtimestamp(self.iat, UTC)

    @property
    def expires(self) -> datetime:
        """exp as an aware UTC datetime."""
        return datetime.fromtimestamp(self.exp, UTC)


# Timestamps must map to a datetime (years 1..9999) so logs and reports can show them.
_MIN_TS, _MAX_TS = -62135596800.0, 253402300799.0


def _timestamp(claims: dict[Any, Any], label: int, name: str) -> float:
    value = claims.get(label)
    # bool is an int subclass; HU encodes iat/exp as floats, which are fine.
    if type(value) is not int and type(value) is not float:
        raise VerificationError(Reason.CBOR_INVALID, f"claim {name} missing or not a number")
    if not _MIN_TS <= value <= _MAX_TS:  # also rejects NaN
        raise VerificationError(Reason.CBOR_INVALID, f"claim {name} out of range")
    return value


def parse_claims(payload: bytes) -> Claims:
    """Decode the CWT claims map and extract iss/iat/exp and the hcert (-260 → 1).

    Raises:
        VerificationError(CBOR_INVALID): not CBOR within :data:`CLAIMS_LIMITS`
            (kiosk.cborsafe), not a map, iat/exp missing or not numbers, or
            no hcert map under -260/1.
    """
    try:
        claims = cborsafe.loads(payload, CLAIMS_LIMITS)
    except cborsafe.CborError as exc:
        raise VerificationError(Reason.CBOR_INVALID, f"payload refused: {exc}") from None
    if not isinstance(claims, dict):
        raise VerificationError(Reason.CBOR_INVALID, "CWT claims are not a map")
    container = claims.get(_CLAIM_HCERT)
    hcert = container.get(1) if isinstance(container, dict) else None
    if not isinstance(hcert, dict):
        raise VerificationError(Reason.CBOR_INVALID, "no hcert map under claim -260/1")
    issuer = claims.get(_CLAIM_ISS)
    return Claims(
        issuer if type(issuer) is str else None,
        _timestamp(claims, _CLAIM_IAT, "iat"),
        _timestamp(claims, _CLAIM_EXP, "exp"),
        hcert,
    )


def check_times(claims: Claims, signer: Signer, now: datetime) -> None:
    """Check iat <= now <= exp, then that the DSC was valid for the whole certificate life.

    Raises:
        VerificationError: NOT_YET_VALID (iat after now), EXPIRED (exp before
            now) or SIGNER_NOT_VALID (iat before DSC notBefore or exp after DSC notAfter).
    """
    check_times_ts(claims, signer, now.timestamp())


def check_times_ts(claims: Claims, signer: Signer, now_ts: float) -> None:
    """:func:`check_times` with "now" as POSIX seconds (the hot path)."""
    if claims.iat > now_ts:
        raise VerificationError(Reason.NOT_YET_VALID, "iat is after the clock")
    if now_ts > claims.exp:
        raise VerificationError(Reason.EXPIRED, "exp is before the clock")
    if claims.iat < signer.not_before_ts or claims.exp > signer.not_after_ts:
        raise VerificationError(Reason.SIGNER_NOT_VALID, "DSC validity does not cover iat..exp")


def check_revocation(revocation: Revocation, cose: CoseSign1, signer: Signer, claims: Claims,
                     cert_type: CertType) -> None:
    """Refuse a certificate whose signer kid is blocked or whose hash is revoked.

    Raises VerificationError(REVOKED) naming the hash type (never the UVCI).
    """
    if signer.kid in revocation.kids:
        raise VerificationError(Reason.REVOKED, "signer key blocked")
    if not revocation.has_hashes:
        return
    entries = claims.hcert.get(_GROUP_KEY[cert_type]) or ()
    uvcis = [e["ci"] for e in entries if type(e) is dict and type(e.get("ci")) is str]
    matched = revocation.match(uvcis=uvcis, issuer=claims.issuer, signature=cose.signature,
                               ecdsa=signer.algorithm == ALG_ES256)
    if matched is not None:
        raise VerificationError(Reason.REVOKED, f"revoked by {matched.upper()} hash")


def check_content(hcert: dict[str, Any]) -> CertType:
    """Structural sanity of the hcert; returns its type.

    Raises VerificationError(SCHEMA_INVALID) naming the field, never its value.
    """
    return check_structure(hcert)


def check_key_usage(signer: Signer, cert_type: CertType, issuer: str | None = None) -> None:
    """Check that the DSC may sign this certificate: its type and its issuing country.

    The country rule applies when the trust bundle lists the DSC's country
    (``signer.country``; dev mode has none) and the CWT carries ``iss``: a key
    registered for one country must not sign certificates claiming another
    (a leaked key of one country cannot pass as another's issuer).

    Raises:
        VerificationError: WRONG_CERT_TYPE when the DSC's EKU forbids
            ``cert_type``; ISSUER_MISMATCH when ``issuer`` is not ``signer.country``.
    """
    if not signer.allows(cert_type):
        raise VerificationError(Reason.WRONG_CERT_TYPE, f"DSC EKU does not allow type {cert_type}")
    if not issuer_matches(signer, issuer):
        raise VerificationError(
            Reason.ISSUER_MISMATCH,
            f"iss {str(issuer)[:8]!r} is not the DSC's country {signer.country!r}")


def issuer_matches(signer: Signer, issuer: str | None) -> bool:
    """True unless both the DSC's listed country and ``iss`` are known and differ (any case)."""
    country = signer.country
    return country is None or issuer is None or issuer == country \
        or issuer.upper() == country.upper()


# CertType -> its hcert key without the (slow) enum .value access per scan.
_GROUP_KEY = {t: t.value for t in CertType}

TEST_RESULT_DETECTED = "260373001"  # SNOMED CT "Detected": a positive test


def check_test_result(hcert: dict[str, Any], cert_type: CertType) -> None:
    """Refuse a test certificate that records a positive result.

    Such certificates are cryptographically valid (conformance NL cases carry
    them) but must never open a gate.  Raises VerificationError(TEST_POSITIVE).
    """
    if cert_type is CertType.TEST:
        entries = hcert.get("t") or ()
        if any(isinstance(e, dict) and e.get("tr") == TEST_RESULT_DETECTED for e in entries):
            raise VerificationError(Reason.TEST_POSITIVE, "test result is 'detected'")
