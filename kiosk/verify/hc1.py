"""The HC1 verification pipeline: QR text in, :class:`Decision` out, never an exception.

Pipeline (each step in :mod:`kiosk.verify.steps`, first failure wins):

``prefix`` → ``base45`` → ``zlib`` → ``cose`` → ``trust`` (clock reading,
freshness of the trust material) → ``signature`` (kid lookup, alg,
ES256/PS256) → ``claims`` (CWT, CBOR) → ``validity`` (iat/exp vs clock, DSC
window) → ``content`` (structure, type, value sets) → ``key_usage`` (DSC EKU vs type) →
``revocation`` (blocked kid, UCI / COUNTRYCODEUCI / SIGNATURE hashes) →
``test_result`` (positive tests refused) → ``policy`` (the scan mode's rules)
→ ``rules`` (the bundle's CertLogic rules for this gate's country, last: they
run only on a certificate every built-in check accepted).

The CWT claims are decoded only after the signature has been checked, so the
CBOR parser never sees unauthenticated claim data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kiosk.decision import CertType, Decision, Reason
from kiosk.errors import VerificationError
from kiosk.verify import steps
from kiosk.verify.certrules import RuleFailed
from kiosk.verify.clock import ClockReading, TrustedClock
from kiosk.verify.cose import CoseSign1, parse_sign1
from kiosk.verify.fast import holder_masked as _holder
from kiosk.verify.fast import straight_allow
from kiosk.verify.identity import hc1_identity
from kiosk.verify.material import TrustMaterial, VerifierHealth, freshness
from kiosk.verify.steps import Claims
from kiosk.verify.trust import Signer, TrustStore

__all__ = ["STEP_NAMES", "StepOutcome", "Verification", "Verifier"]

_log = logging.getLogger(__name__)

STEP_NAMES = (
    "prefix", "base45", "zlib", "cose", "trust", "signature", "claims",
    "validity", "content", "key_usage", "revocation", "test_result", "policy", "rules",
)


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """The result of one pipeline step: ``reason`` is OK when the step passed."""

    name: str
    reason: Reason
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the step passed."""
        return self.reason is Reason.OK


@dataclass(frozen=True)
class Verification:
    """Full detail of one verification (for conformance, tests and diagnostics).

    ``payload`` is the decoded hcert (personal data): kept only in memory,
    excluded from ``repr`` and never logged.
    """

    decision: Decision
    steps: tuple[StepOutcome, ...]
    kid: bytes | None = None
    signer: Signer | None = None
    claims: Claims | None = None
    cert_type: CertType | None = None
    payload: dict[str, Any] | None = field(default=None, repr=False)

    def step(self, name: str) -> StepOutcome | None:
        """The outcome of step ``name``, or None when the pipeline stopped before it."""
        for outcome in self.steps:
            if outcome.name == name:
                return outcome
        return None


@dataclass(slots=True)
class _State:
    text: str
    b45: str = ""
    compressed: bytes = b""
    cose_bytes: bytes = b""
    cose: CoseSign1 | None = None
    now: float = 0.0
    trust: TrustMaterial | None = None
    signer: Signer | None = None
    claims: Claims | None = None
    cert_type: CertType | None = None
    flag: str = ""


class _PlainClock:
    """Adapts a bare ``() -> datetime`` callable (tests, conformance, bench)."""

    def __init__(self, fn: Callable[[], datetime]) -> None:
        self._fn = fn

    def now(self) -> datetime:
        return self._fn()

    def now_ts(self) -> float:
        now = self._fn()
        if now.tzinfo is None:  # naive means UTC, as in verification
            now = now.replace(tzinfo=UTC)
        return now.timestamp()

    def reading(self) -> ClockReading:
        now = self._fn()
        if now.tzinfo is None:  # naive means UTC, as in verification
            now = now.replace(tzinfo=UTC)
        return ClockReading(now, "synchronised", 0.0)


class Verifier:
    """Verifies HC1 QR texts against trust material and an injected clock.

    Args:
        trust: a :class:`TrustStore` (dev mode: no revocation, no rules) or a
            full :class:`TrustMaterial` snapshot (see :meth:`update`).
        clock: a :class:`TrustedClock`, or any ``() -> datetime`` (aware UTC;
            naive is read as UTC), which is then reported as synchronised.
        on_expired: ``deny`` (default: expired trust material denies every
            scan with TRUST_EXPIRED) or ``allow`` (keep verifying with it;
            :meth:`health` reports ``expired`` so staff run the lane).
    """

    def __init__(self, trust: TrustStore | TrustMaterial,
                 clock: Callable[[], datetime] | TrustedClock, *,
                 on_expired: str = "deny") -> None:
        self._material = trust if isinstance(trust, TrustMaterial) else TrustMaterial.dev(trust)
        self._clock: TrustedClock | _PlainClock = (
            clock if isinstance(clock, TrustedClock) else _PlainClock(clock)
        )
        self._on_expired = on_expired
        self._pipeline: tuple[tuple[str, Callable[[_State], None]], ...] = (
            ("prefix", self._prefix),
            ("base45", self._base45),
            ("zlib", self._zlib),
            ("cose", self._cose),
            ("trust", self._fresh),
            ("signature", self._signature),
            ("claims", self._claims),
            ("validity", self._validity),
            ("content", self._content),
            ("key_usage", self._key_usage),
            ("revocation", self._revocation),
            ("test_result", self._test_result),
            ("policy", self._policy),
            ("rules", self._rules),
        )

    @property
    def material(self) -> TrustMaterial:
        """The trust material in use."""
        return self._material

    @property
    def _trust(self) -> TrustStore:
        return self._material.store

    def close(self) -> None:
        """Persist the clock's high-water mark (when it is a TrustedClock). Safe twice."""
        if isinstance(self._clock, TrustedClock):
            self._clock.close()

    def update(self, material: TrustMaterial) -> None:
        """Swap in new trust material (one reference assignment: a scan sees old or new)."""
        self._material = material

    def health(self) -> VerifierHealth:
        """The verifier's current state for the screen and MQTT status. Never raises."""
        # Imported here: kiosk.signing imports kiosk.verify, and bundle imports signing.
        from kiosk.verify.bundle import ACCEPTED_FORMATS

        material = self._material
        try:
            reading = self._clock.reading()
            now_ts, clock_state = reading.now.timestamp(), reading.state
        except Exception:  # a broken clock shows as unsynchronised, never a crash
            _log.exception("clock reading failed")
            now_ts, clock_state = 0.0, "unsynchronised"
        issued = material.issued_at
        return VerifierHealth(
            mode=freshness(material, now_ts),
            bundle_version=material.version,
            bundle_issued_at=issued,
            bundle_age_s=None if issued is None else now_ts - issued.timestamp(),
            clock_state=clock_state,
            signers=len(material.store),
            scan_mode=material.mode.name,
            revocation_entries=len(material.revocation),
            on_expired=self._on_expired,
            clock_jump_s=getattr(self._clock, "jump_ahead_s", None),
            bundle_formats=ACCEPTED_FORMATS,
        )

    # -- steps: each reads and extends the state, or raises VerificationError --
    def _prefix(self, s: _State) -> None:
        s.b45 = steps.strip_prefix(s.text)

    def _base45(self, s: _State) -> None:
        s.compressed = steps.decode_base45(s.b45)

    def _zlib(self, s: _State) -> None:
        s.cose_bytes = steps.inflate(s.compressed)

    def _cose(self, s: _State) -> None:
        s.cose = parse_sign1(s.cose_bytes)

    def _fresh(self, s: _State) -> None:
        # One snapshot and one clock reading per scan, used by every later step.
        s.trust = material = self._material
        s.now, s.flag = self._now_and_flag(material)

    def _now_and_flag(self, material: TrustMaterial) -> tuple[float, str]:
        """The verification time (POSIX s) and the freshness flag for an allow's detail.

        Raises VerificationError: TRUST_EXPIRED, or CLOCK_UNTRUSTED from the clock.
        """
        now_ts = self._clock.now_ts()
        if not material.missing and (material.issued_at is None  # dev mode
                                     or now_ts <= material.fresh_until):  # freshness() "fresh"
            return now_ts, ""
        state = freshness(material, now_ts)
        if state == "expired":
            if material.missing or self._on_expired != "allow":
                raise VerificationError(Reason.TRUST_EXPIRED, "trust material expired or missing")
            return now_ts, "trust expired (operator lane)"
        return now_ts, "trust stale" if state == "stale" else ""

    def _signature(self, s: _State) -> None:
        assert s.cose is not None and s.trust is not None
        s.signer = steps.authenticate(s.cose, s.trust.store)

    def _claims(self, s: _State) -> None:
        assert s.cose is not None
        s.claims = steps.parse_claims(s.cose.payload)

    def _validity(self, s: _State) -> None:
        assert s.claims is not None and s.signer is not None
        steps.check_times_ts(s.claims, s.signer, s.now)

    def _content(self, s: _State) -> None:
        assert s.claims is not None and s.trust is not None
        s.cert_type = steps.check_content(s.claims.hcert)
        if s.trust.valuesets:
            entries = s.claims.hcert.get(s.cert_type.value) or ()
            s.trust.valuesets.check([e for e in entries if isinstance(e, dict)], s.cert_type)

    def _key_usage(self, s: _State) -> None:
        assert s.signer is not None and s.cert_type is not None
        assert s.claims is not None
        steps.check_key_usage(s.signer, s.cert_type, s.claims.issuer)

    def _revocation(self, s: _State) -> None:
        assert s.trust is not None and s.cose is not None and s.claims is not None
        assert s.signer is not None and s.cert_type is not None
        steps.check_revocation(s.trust.revocation, s.cose, s.signer, s.claims, s.cert_type)

    def _test_result(self, s: _State) -> None:
        assert s.claims is not None and s.cert_type is not None
        steps.check_test_result(s.claims.hcert, s.cert_type)

    def _policy(self, s: _State) -> None:
        assert s.trust is not None and s.claims is not None and s.cert_type is not None
        mode = s.trust.mode
        if mode.rules:
            mode.check(s.claims.hcert, s.cert_type, datetime.fromtimestamp(s.now, UTC))

    def _rules(self, s: _State) -> None:
        assert s.trust is not None and s.claims is not None
        rules = s.trust.rules
        if rules is not None:
            rules.check(s.claims.hcert, s.now, s.claims.iat, s.claims.exp)

    # -- drivers --
    def _run(self, text: str, record: list[StepOutcome] | None) -> tuple[_State, Decision]:
        state = _State(text)
        name = "start"
        try:
            for name, step in self._pipeline:
                step(state)
                if record is not None:
                    record.append(StepOutcome(name, Reason.OK))
        except VerificationError as exc:
            reason = exc.reason if isinstance(exc.reason, Reason) else Reason.INTERNAL_ERROR
            if record is not None:
                record.append(StepOutcome(name, reason, exc.detail))
            if isinstance(exc, RuleFailed):  # the screen shows the rule's own description
                return state, Decision(False, reason, cert_type=state.cert_type,
                                       detail=f"{name}: {exc.detail}", note=exc.note)
            return state, Decision.deny(reason, f"{name}: {exc.detail}")
        except Exception as exc:  # never let a scan crash the loop
            _log.exception("verifier bug in step %s", name)
            if record is not None:
                record.append(StepOutcome(name, Reason.INTERNAL_ERROR, type(exc).__name__))
            return state, Decision.deny(Reason.INTERNAL_ERROR, f"{name}: {type(exc).__name__}")
        return state, _allow(state)

    def verify(self, text: str) -> Decision:
        """Verify one scanned text. Never raises; every failure is a deny with a Reason.

        The allow path runs :func:`kiosk.verify.fast.straight_allow`, the same
        checks in the same order as the step pipeline but without its
        bookkeeping, and stricter about types and shapes.  On any failure the
        text is run again through the step pipeline, which decides and names
        the failing step in the deny's detail (denies are rare; the second pass
        costs one more signature check at most).
        """
        try:
            return straight_allow(text, self._material, self._now_and_flag)
        except Exception:  # the step pipeline below classifies and logs it
            pass
        try:
            return self._run(text, None)[1]
        except Exception as exc:  # belt and braces: even _allow() must not escape
            return Decision.deny(Reason.INTERNAL_ERROR, type(exc).__name__)

    def inspect(self, text: str) -> Verification:
        """Like :meth:`verify` but returns every step outcome and intermediate result.

        Never raises.
        """
        record: list[StepOutcome] = []
        try:
            state, decision = self._run(text, record)
        except Exception as exc:
            return Verification(Decision.deny(Reason.INTERNAL_ERROR, type(exc).__name__),
                                tuple(record))
        return Verification(
            decision=decision,
            steps=tuple(record),
            kid=state.cose.kid if state.cose is not None else None,
            signer=state.signer,
            claims=state.claims,
            cert_type=state.cert_type,
            payload=state.claims.hcert if state.claims is not None else None,
        )


def _allow(state: _State) -> Decision:
    assert state.claims is not None and state.cert_type is not None
    return Decision(
        allowed=True,
        reason=Reason.OK,
        cert_type=state.cert_type,
        holder_masked=_holder(state.claims.hcert),
        detail=state.flag,
        credential_id=_identity(state),
    )


def _identity(state: _State) -> bytes | None:
    """The anti-passback identity (:mod:`kiosk.verify.identity`) of an allowed certificate."""
    assert state.claims is not None and state.cert_type is not None
    if state.cose is None:
        return None
    entries = state.claims.hcert.get(state.cert_type.value) or ()
    uvcis = [str(e.get("ci") or "") for e in entries if isinstance(e, dict)]
    country = state.claims.issuer or (state.signer.country if state.signer else None)
    return hc1_identity(country, uvcis, state.cose.payload)
