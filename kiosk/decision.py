"""What the gate decided, and why: the contract between verifier, gate, screen and counts.

Reason codes are stable strings: they are counter names in SQLite, keys in MQTT
payloads and lookup keys for the bilingual screen texts, so never rename one.
A :class:`Decision` carries no personal data in clear: the holder's name is
already masked (``"B**** S*****"``) and the certificate is identified only by a
keyed hash.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Reason(enum.StrEnum):
    """Why a decision came out as it did. ``OK`` is the only allowing reason."""

    OK = "ok"
    # Input that is not a health certificate at all.
    NOT_HC1 = "not_hc1"  # missing/unknown prefix, or not a text QR
    BASE45_INVALID = "base45_invalid"
    ZLIB_INVALID = "zlib_invalid"
    PAYLOAD_TOO_LARGE = "payload_too_large"  # zlib output or CBOR beyond hard caps
    COSE_INVALID = "cose_invalid"  # not a COSE_Sign1 structure
    CBOR_INVALID = "cbor_invalid"  # payload/claims are not valid CBOR/CWT
    # Signature and signer.
    KID_MISSING = "kid_missing"
    UNKNOWN_SIGNER = "unknown_signer"  # kid not in the trust store
    ALG_UNSUPPORTED = "alg_unsupported"
    SIGNATURE_INVALID = "signature_invalid"
    SIGNER_NOT_VALID = "signer_not_valid"  # DSC validity period does not cover iat/exp
    WRONG_CERT_TYPE = "wrong_cert_type"  # DSC Extended Key Usage forbids this type
    ISSUER_MISMATCH = "issuer_mismatch"  # CWT iss is not the country the DSC is listed for
    # Content and time.
    SCHEMA_INVALID = "schema_invalid"
    NOT_YET_VALID = "not_yet_valid"  # iat in the future
    EXPIRED = "expired"  # exp in the past
    # Policy (completed by the verification issue).
    REVOKED = "revoked"
    TEST_POSITIVE = "test_positive"
    POLICY_NOT_MET = "policy_not_met"
    TRUST_EXPIRED = "trust_expired"
    ALREADY_ADMITTED = "already_admitted"  # anti-passback
    # KTP / NIK input.
    NIK_INVALID = "nik_invalid"
    NIK_NOT_LISTED = "nik_not_listed"
    NIK_DISABLED = "nik_disabled"
    NIK_RATE_LIMITED = "nik_rate_limited"  # too many NIK attempts at this gate
    NIK_LIST_UNAVAILABLE = "nik_list_unavailable"  # no valid, unexpired status list
    NIK_STAFF_CHECK = "nik_staff_check"  # pending: staff must check the KTP by hand
    NIK_STAFF_REFUSED = "nik_staff_refused"  # staff refused, or no answer in time
    # Anything else the verifier could not classify; still a deny, never a crash.
    INTERNAL_ERROR = "internal_error"
    # Verification issue: the clock is unsynchronised and clock.unsynchronised = "deny".
    CLOCK_UNTRUSTED = "clock_untrusted"
    # Value sets (trust bundle format 2): a coded field holds a code the EU value set lacks.
    UNKNOWN_DISEASE = "unknown_disease"  # tg
    UNKNOWN_VACCINE = "unknown_vaccine"  # vp
    UNKNOWN_PRODUCT = "unknown_product"  # mp
    UNKNOWN_MANUFACTURER = "unknown_manufacturer"  # ma (vaccine holder, or test device)
    UNKNOWN_TEST_TYPE = "unknown_test_type"  # tt
    UNKNOWN_TEST_RESULT = "unknown_test_result"  # tr
    UNKNOWN_COUNTRY = "unknown_country"  # co
    # CertLogic business rules (trust bundle format 3): the detail names the rule's Identifier.
    RULE_FAILED = "rule_failed"


#: Reasons that mean the scanned text is not a well-formed certificate at all: the
#: QR surface's refusals (``refused.qr`` in the status), as opposed to verdicts on
#: a certificate that could be read.
MALFORMED_QR = frozenset({
    Reason.NOT_HC1, Reason.BASE45_INVALID, Reason.ZLIB_INVALID, Reason.PAYLOAD_TOO_LARGE,
    Reason.COSE_INVALID, Reason.CBOR_INVALID,
})


class InputKind(enum.StrEnum):
    """Where the credential came from."""

    QR = "qr"
    NIK = "nik"


class CertType(enum.StrEnum):
    """EU DCC certificate types (exactly one of v/t/r per certificate)."""

    VACCINATION = "v"
    TEST = "t"
    RECOVERY = "r"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one scan.

    Attributes:
        allowed: True only when ``reason`` is :attr:`Reason.OK`.
        reason: the specific reason code.
        input: which input produced it.
        cert_type: the certificate type, when it could be read.
        holder_masked: the holder's name already masked for display, or None.
        detail: a short technical explanation for logs; never contains personal data.
        credential_id: a stable identifier of the credential set by the verifier on
            allow (:mod:`kiosk.verify.identity`: issuing country and UVCI for
            HC1, the KDF entry for a NIK -- never bytes a copy could change),
            used by the gate's anti-passback only through a keyed hash; never
            logged, never stored.
        note: the screen text the deciding rule gives, as (Bahasa Indonesia,
            English), for a ``rule_failed`` deny: the CertLogic rule's
            description from the signed bundle (never personal data); None
            otherwise (the reason's own text is shown).
    """

    allowed: bool
    reason: Reason
    input: InputKind = InputKind.QR
    cert_type: CertType | None = None
    holder_masked: str | None = None
    detail: str = ""
    credential_id: bytes | None = field(default=None, repr=False, compare=False)
    note: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.allowed != (self.reason is Reason.OK):
            raise ValueError(f"allowed={self.allowed} contradicts reason={self.reason}")

    @classmethod
    def deny(cls, reason: Reason, detail: str = "", input: InputKind = InputKind.QR) -> Decision:
        """A deny decision with ``reason`` (which must not be OK)."""
        return cls(allowed=False, reason=reason, input=input, detail=detail)


# Slot setters of Decision: qr_allow() fills a new instance through them.  A
# frozen dataclass's __init__ goes through object.__setattr__ per field plus
# __post_init__ (~0.85 µs); the verifier builds one allow per scan (~0.45 µs).
_new_decision = object.__new__
(_SET_ALLOWED, _SET_REASON, _SET_INPUT, _SET_TYPE, _SET_HOLDER, _SET_DETAIL, _SET_CREDENTIAL,
 _SET_NOTE) = (
    getattr(Decision, name).__set__ for name in (
        "allowed", "reason", "input", "cert_type", "holder_masked", "detail", "credential_id",
        "note"))


def qr_allow(cert_type: CertType, holder_masked: str | None, detail: str,
             credential_id: bytes) -> Decision:
    """``Decision(True, Reason.OK, InputKind.QR, cert_type, holder_masked, detail, credential_id)``.

    The verifier's per-scan constructor of an allow: the same value, built
    without the dataclass machinery (its one invariant, allowed exactly when
    the reason is OK, holds by construction).
    """
    decision = _new_decision(Decision)
    _SET_ALLOWED(decision, True)
    _SET_REASON(decision, Reason.OK)
    _SET_INPUT(decision, InputKind.QR)
    _SET_TYPE(decision, cert_type)
    _SET_HOLDER(decision, holder_masked)
    _SET_DETAIL(decision, detail)
    _SET_CREDENTIAL(decision, credential_id)
    _SET_NOTE(decision, None)
    return decision


def mask_name(name: str) -> str:
    """Mask a personal name for display: keep each word's first letter.

    ``"Budi Santoso"`` becomes ``"B*** S******"``. Empty or blank input gives ``""``.
    """
    return " ".join(word[0] + "*" * (len(word) - 1) for word in name.split())
