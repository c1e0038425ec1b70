"""Trusted document signer certificates (DSCs), parsed once and looked up by kid.

A :class:`TrustStore` is immutable after construction.  Everything the hot
path needs -- public key, validity window, allowed certificate types -- is
extracted here once, so a verification never touches X.509 parsing.

Extended Key Usage rule (see docs/conformance.md): a DSC *without* an EKU
extension, or with an empty one, may sign every certificate type.  A DSC whose
EKU lists at least one OID may sign only the types whose DCC OIDs it lists
(both the official ``1.3.6.1.4.1.1847.2021.1.x`` and the widespread misspelling
``1.3.6.1.4.1.0.1847.2021.1.x``); an EKU holding only foreign OIDs therefore
allows nothing.  This fails closed and matches the upstream reference checker.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kiosk.decision import CertType
from kiosk.verify.asn1 import Asn1Error, extended_key_usage

__all__ = ["ALG_ES256", "ALG_PS256", "Signer", "TrustStore", "kid_of", "types_from_eku"]

_log = logging.getLogger(__name__)

ALG_ES256 = -7
ALG_PS256 = -37

_TYPE_ARC = {"1": CertType.TEST, "2": CertType.VACCINATION, "3": CertType.RECOVERY}
_DCC_EKU_PREFIXES = ("1.3.6.1.4.1.1847.2021.1.", "1.3.6.1.4.1.0.1847.2021.1.")
_SUFFIXES = (".pem", ".der", ".crt")

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def kid_of(der: bytes) -> bytes:
    """The DCC key identifier of a DSC: the first 8 bytes of SHA-256 over its DER bytes."""
    return hashlib.sha256(der).digest()[:8]


def types_from_eku(oids: Iterable[str] | None) -> frozenset[CertType] | None:
    """Map EKU OIDs to the certificate types a DSC may sign.

    Returns None ("no restriction") for a missing or empty EKU; otherwise the
    set of types whose DCC OIDs are listed (possibly empty: nothing allowed).
    """
    if oids is None:
        return None
    listed = tuple(oids)
    if not listed:
        return None
    allowed = set()
    for oid in listed:
        for prefix in _DCC_EKU_PREFIXES:
            if oid.startswith(prefix) and oid[len(prefix) :] in _TYPE_ARC:
                allowed.add(_TYPE_ARC[oid[len(prefix) :]])
    return frozenset(allowed)


@dataclass(frozen=True, slots=True)
class Signer:
    """One trusted DSC, pre-parsed for verification.

    Attributes:
        kid: 8-byte key identifier (:func:`kid_of` of ``der``).
        public_key: the parsed public key (EC P-256 or RSA).
        algorithm: the only COSE algorithm this key can verify (-7 ES256 or -37 PS256).
        not_before / not_after: the DSC validity window (UTC, aware).
        allowed_types: certificate types this DSC may sign; None means all.
        may_sign: the same with None spelled out as every type (derived).
        subject: the DSC subject (an organisation, never a person) for logs.
        der: the certificate bytes.
        country: issuing country from the trust bundle; None in dev mode (folder).
    """

    kid: bytes
    public_key: PublicKey = field(repr=False)
    algorithm: int
    not_before: datetime
    not_after: datetime
    allowed_types: frozenset[CertType] | None
    subject: str
    der: bytes = field(repr=False)
    country: str | None = None
    not_before_ts: float = field(init=False, repr=False)
    not_after_ts: float = field(init=False, repr=False)
    may_sign: frozenset[CertType] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # POSIX seconds, so the hot path compares numbers (see steps.check_times).
        object.__setattr__(self, "not_before_ts", self.not_before.timestamp())
        object.__setattr__(self, "not_after_ts", self.not_after.timestamp())
        # allowed_types with None ("no restriction") spelled out: one set lookup per scan.
        object.__setattr__(self, "may_sign", frozenset(CertType) if self.allowed_types is None
                           else self.allowed_types)

    def allows(self, cert_type: CertType) -> bool:
        """True when this DSC's EKU permits signing ``cert_type``."""
        return cert_type in self.may_sign

    @classmethod
    def from_der(cls, der: bytes) -> Signer:
        """Parse one DSC.

        Raises:
            ValueError: the bytes are not an X.509 certificate, the key type is
                unsupported (only EC P-256 and RSA >= 2048 bits), or the EKU
                cannot be read even by the lenient fallback walker.
        """
        cert = x509.load_der_x509_certificate(der)
        key = cert.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, ec.SECP256R1):
                raise ValueError(f"unsupported EC curve {key.curve.name}")
            algorithm = ALG_ES256
        elif isinstance(key, rsa.RSAPublicKey):
            if key.key_size < 2048:
                raise ValueError(f"RSA key too small ({key.key_size} bits)")
            algorithm = ALG_PS256
        else:
            raise ValueError(f"unsupported key type {type(key).__name__}")
        return cls(
            kid=kid_of(der),
            public_key=key,
            algorithm=algorithm,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            allowed_types=types_from_eku(_read_eku(cert, der)),
            subject=cert.subject.rfc4514_string(),
            der=bytes(der),
        )


def _read_eku(cert: x509.Certificate, der: bytes) -> tuple[str, ...] | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:
        # cryptography rejects e.g. an empty EKU SEQUENCE; read it ourselves.
        try:
            oids = extended_key_usage(der)
        except Asn1Error as walk_exc:
            raise ValueError(f"unreadable extensions ({exc}; {walk_exc})") from walk_exc
        _log.info("DSC extensions parsed leniently (%s): EKU=%s", type(exc).__name__, oids)
        return oids
    return tuple(oid.dotted_string for oid in ext.value)


class TrustStore:
    """Immutable set of trusted DSCs keyed by kid. Public keys are parsed once, here."""

    __slots__ = ("_signers",)

    def __init__(self, signers: Iterable[Signer]) -> None:
        by_kid: dict[bytes, Signer] = {}
        for signer in signers:
            if signer.kid in by_kid:
                if by_kid[signer.kid].der != signer.der:
                    _log.warning("kid %s used by two different DSCs; keeping the first",
                                 signer.kid.hex())
                continue
            by_kid[signer.kid] = signer
        self._signers: Mapping[bytes, Signer] = MappingProxyType(by_kid)

    @classmethod
    def from_certificates(cls, ders: Iterable[bytes]) -> TrustStore:
        """Build a store from DER certificates.

        Raises:
            ValueError: naming the position of the first certificate that cannot be used.
        """
        signers = []
        for index, der in enumerate(ders):
            try:
                signers.append(Signer.from_der(der))
            except ValueError as exc:
                raise ValueError(f"certificate #{index}: {exc}") from exc
        return cls(signers)

    @classmethod
    def from_folder(cls, path: Path) -> TrustStore:
        """Load every ``*.pem`` / ``*.der`` / ``*.crt`` file in ``path`` (not recursive).

        PEM files may hold several certificates.  A file that cannot be read or
        parsed is skipped with a warning naming it; the rest still load.
        Raises OSError only when ``path`` itself cannot be listed.
        """
        signers: list[Signer] = []
        for file in sorted(p for p in Path(path).iterdir() if p.suffix.lower() in _SUFFIXES):
            try:
                signers.extend(Signer.from_der(der) for der in _file_ders(file))
            except (OSError, ValueError) as exc:
                _log.warning("skipping trust file %s: %s", file, exc)
        store = cls(signers)
        _log.info("trust store loaded %d DSC(s) from %s", len(store), path)
        return store

    def __len__(self) -> int:
        return len(self._signers)

    def __iter__(self) -> Iterator[Signer]:
        return iter(self._signers.values())

    def lookup(self, kid: bytes) -> Signer | None:
        """The signer with this kid, or None."""
        return self._signers.get(kid)


def _file_ders(file: Path) -> list[bytes]:
    data = file.read_bytes()
    if b"-----BEGIN" in data:
        from cryptography.hazmat.primitives.serialization import Encoding

        certs = x509.load_pem_x509_certificates(data)
        return [c.public_bytes(Encoding.DER) for c in certs]
    return [data]
