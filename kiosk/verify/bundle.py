"""The trust bundle: all of a gate's trust material in one document (docs/trust-bundle.md).

The body is a CBOR map (text keys)::

    {"format": 2, "version": int >= 1, "issued_at": int (POSIX s),
     "max_age_s": int, "grace_s": int,
     "signers": [{"der": bstr, "country": tstr, "types": ["v", "t", "r"]}, ...],
     "revocation": {"uci": bstr, "countrycodeuci": bstr, "signature": bstr, "kids": [bstr]},
     "policy": {"rules": {...}, "modes": {...}, "default_mode": tstr},
     "valuesets": {"sets": {valueSetId: [tstr]}, "complete_test_devices": bool},
     "certlogic": bstr (a CBOR array of EU DCC Gateway rules)}

Format 2 added ``valuesets``, format 3 ``certlogic`` (:mod:`kiosk.verify.certrules`);
a gate accepts :data:`ACCEPTED_FORMATS` (1, 2 and 3).  :meth:`TrustBundle.to_cbor`
writes the lowest format the content needs (3 with rules, else 2) and, on
request, format 1 (without the value sets) for gates that have not been
updated; it refuses to write a bundle with rules in a format without them.

and is signed by the central authority with :func:`kiosk.signing.sign_document`
(content type ``TRUST_BUNDLE``).  Parsing is bounded: the size cap of the
signed document, then :func:`kiosk.cborsafe.loads` with :data:`BODY_LIMITS`
(64 MiB, depth 8, 200,000 items checked before any object is built; no tags,
text keys only, no duplicate keys), then a strict type check of every field.
The ``certlogic`` section is one byte string to that walk; it is then read on
its own with deeper but still bounded limits
(:data:`kiosk.verify.certrules.SECTION_LIMITS`) and compiled once.
Every defect raises :class:`kiosk.errors.DocumentError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk import cborsafe
from kiosk.cborsafe import shown
from kiosk.decision import CertType
from kiosk.errors import DocumentError
from kiosk.signing import TRUST_BUNDLE, verify_document
from kiosk.verify.certrules import BundleRules
from kiosk.verify.revocation import Revocation
from kiosk.verify.rules import DEFAULT_POLICY, Policy
from kiosk.verify.trust import Signer, TrustStore
from kiosk.verify.valuesets import ValueSets

__all__ = ["ACCEPTED_FORMATS", "FORMAT", "BundleSigner", "TrustBundle", "is_signed", "load_bundle"]

_log = logging.getLogger(__name__)

FORMAT = 3
"""The newest body format (written when the content needs it: CertLogic rules)."""
ACCEPTED_FORMATS = (1, 2, 3)
"""The body formats this gate reads (reported in its MQTT status)."""
MAX_DEPTH = 8
MAX_ITEMS = 200_000
MAX_BYTES = 64 * 1024 * 1024
BODY_LIMITS = cborsafe.Limits(max_bytes=MAX_BYTES, max_depth=MAX_DEPTH, max_items=MAX_ITEMS,
                              text_keys=True)
_KEYS = {"format", "version", "issued_at", "max_age_s", "grace_s", "signers", "revocation",
         "policy", "valuesets", "certlogic"}
_RULES_FORMAT = 3
_TYPES = {t.value: t for t in CertType}


@dataclass(frozen=True)
class BundleSigner:
    """A DSC as listed in a bundle: DER bytes, issuing country, allowed types."""

    der: bytes = field(repr=False)
    country: str
    types: frozenset[CertType] = frozenset(CertType)

    def signer(self) -> Signer:
        """The pre-parsed :class:`Signer`; the bundle's types narrow the DSC's own EKU.

        Raises ValueError when the DER is not a usable DSC.
        """
        base = Signer.from_der(self.der)
        allowed = self.types if base.allowed_types is None else base.allowed_types & self.types
        return Signer(kid=base.kid, public_key=base.public_key, algorithm=base.algorithm,
                      not_before=base.not_before, not_after=base.not_after,
                      allowed_types=frozenset(allowed), subject=base.subject, der=base.der,
                      country=self.country)


@dataclass(frozen=True)
class TrustBundle:
    """A parsed (and, when it came signed, verified) trust bundle."""

    version: int
    issued_at: datetime
    max_age_s: int
    grace_s: int
    signers: tuple[BundleSigner, ...] = ()
    revocation: Revocation = field(default_factory=Revocation)
    policy: Policy = DEFAULT_POLICY
    valuesets: ValueSets = field(default_factory=ValueSets)
    certlogic: BundleRules = field(default_factory=BundleRules)

    @property
    def needed_format(self) -> int:
        """The lowest body format that carries everything: 3 with rules, else 2."""
        return _RULES_FORMAT if self.certlogic else 2

    def store(self) -> TrustStore:
        """A :class:`TrustStore` of the bundle's signers (X.509 parsed here, once).

        A DSC that cannot be used is skipped with a warning naming its position.
        """
        signers = []
        for index, entry in enumerate(self.signers):
            try:
                signers.append(entry.signer())
            except ValueError as exc:
                _log.warning("trust bundle v%d: skipping signer #%d: %s", self.version, index, exc)
        return TrustStore(signers)

    def to_cbor(self, body_format: int | None = None) -> bytes:
        """The unsigned body (deterministic: lists sorted by the builder).

        ``body_format`` None writes :attr:`needed_format` (so a bundle without
        rules stays format 2, readable by gates not yet updated); ``1`` writes
        the oldest format, without the value sets.  Raises ValueError for an
        unknown format, or one older than 3 when the bundle carries CertLogic
        rules (a gate that cannot read them must not decide without them).
        """
        if body_format is None:
            body_format = self.needed_format
        if body_format not in ACCEPTED_FORMATS:
            raise ValueError(f"cannot write bundle format {body_format}")
        if self.certlogic and body_format < _RULES_FORMAT:
            raise ValueError(f"the bundle carries {len(self.certlogic)} CertLogic rules: "
                             f"format {body_format} cannot hold them (needs format "
                             f"{_RULES_FORMAT})")
        body: dict[str, Any] = {
            "format": body_format,
            "version": self.version,
            "issued_at": int(self.issued_at.timestamp()),
            "max_age_s": self.max_age_s,
            "grace_s": self.grace_s,
            "signers": [{"der": s.der, "country": s.country,
                         "types": sorted(t.value for t in s.types)} for s in self.signers],
            "revocation": self.revocation.to_obj(),
            "policy": self.policy.to_obj(),
        }
        if body_format >= 2:
            body["valuesets"] = self.valuesets.to_obj()
        if self.certlogic:
            body["certlogic"] = self.certlogic.to_bytes()
        return cbor2.dumps(body)

    @classmethod
    def from_cbor(cls, body: bytes) -> TrustBundle:
        """Parse an unsigned body. Raises DocumentError naming the first defect."""
        try:
            obj = cborsafe.loads(body, BODY_LIMITS)
        except cborsafe.CborError as exc:
            raise DocumentError(f"trust bundle body refused: {exc}") from None
        try:
            return cls._from_obj(obj)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            raise DocumentError(f"malformed trust bundle: {exc}") from None

    @classmethod
    def _from_obj(cls, obj: Any) -> TrustBundle:
        if not isinstance(obj, dict):
            raise ValueError("body is not a map")
        unknown = set(obj) - _KEYS
        if unknown:
            raise ValueError(f"{len(unknown)} unknown keys, e.g. {shown(min(map(str, unknown)))}")
        fmt = obj.get("format")
        if type(fmt) is not int or fmt not in ACCEPTED_FORMATS:
            raise ValueError(f"format is {shown(fmt)}, expected one of {ACCEPTED_FORMATS}")
        if fmt < 2 and "valuesets" in obj:
            raise ValueError("valuesets needs format 2")
        if fmt < _RULES_FORMAT and "certlogic" in obj:
            raise ValueError(f"certlogic needs format {_RULES_FORMAT}")
        for key in ("version", "issued_at", "max_age_s", "grace_s"):
            if type(obj.get(key)) is not int or not 0 <= obj[key] < 2**53:
                raise ValueError(f"{key} must be a non-negative integer")
        if obj["version"] < 1:
            raise ValueError("version must be at least 1")
        raw_signers = obj.get("signers", [])
        if not isinstance(raw_signers, list | tuple):
            raise ValueError("signers is not a list")
        return cls(
            version=obj["version"],
            issued_at=datetime.fromtimestamp(obj["issued_at"], UTC),
            max_age_s=obj["max_age_s"],
            grace_s=obj["grace_s"],
            signers=tuple(_signer(i, s) for i, s in enumerate(raw_signers)),
            revocation=Revocation.from_obj(obj.get("revocation")),
            policy=Policy.from_obj(obj.get("policy")),
            valuesets=ValueSets.from_obj(obj.get("valuesets")),
            # Compiled here, once per bundle load (not per scan).
            certlogic=BundleRules.from_bytes(obj["certlogic"]) if "certlogic" in obj
            else BundleRules(),
        )


def _signer(index: int, obj: Any) -> BundleSigner:
    if not isinstance(obj, dict) or not isinstance(obj.get("der"), bytes):
        raise ValueError(f"signer #{index}: needs der bytes")
    country = obj.get("country")
    if not isinstance(country, str) or not 1 <= len(country) <= 3:
        raise ValueError(f"signer #{index}: country must be a 1-3 letter code")
    types = obj.get("types", ["r", "t", "v"])
    if not isinstance(types, list | tuple) or not types or not all(t in _TYPES for t in types):
        raise ValueError(f"signer #{index}: types must list some of v, t, r")
    return BundleSigner(obj["der"], country, frozenset(_TYPES[t] for t in types))


def is_signed(blob: bytes) -> bool:
    """True when ``blob`` looks like a signed document (CBOR tag 18), not a bare body."""
    return blob[:1] == b"\xd2"


def load_bundle(blob: bytes, authority_keys: Iterable[Ed25519PublicKey]) -> TrustBundle:
    """Verify a signed bundle with the authority keys and parse its body.

    Raises:
        DocumentError: bad or missing signature, wrong content type, unknown
            authority key, too large, or a malformed body.
    """
    body = verify_document(blob, list(authority_keys), content_type=TRUST_BUNDLE,
                           max_bytes=MAX_BYTES)
    return TrustBundle.from_cbor(body)
