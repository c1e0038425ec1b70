"""The HC1 verification pipeline: QR text in, :class:`Decision` out, never an exception.

Pipeline (each step in :mod:`kiosk.verify.steps`, first failure wins):

``prefix`` → ``base45`` → ``zlib`` → ``cose`` → ``signature`` (kid lookup,
alg, ES256/PS256) → ``claims`` (CWT, CBOR) → ``validity`` (iat/exp vs clock,
DSC window) → ``content`` (structure, type) → ``key_usage`` (DSC EKU vs type)
→ ``test_result`` (positive tests refused).

The CWT claims are decoded only after the signature has been checked, so the
CBOR parser never sees unauthenticated claim data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kiosk.decision import CertType, Decision, Reason, mask_name
from kiosk.errors import VerificationError
from kiosk.verify import steps
from kiosk.verify.cose import CoseSign1, parse_sign1
from kiosk.verify.steps import Claims
from kiosk.verify.trust import Signer, TrustStore

__all__ = ["STEP_NAMES", "StepOutcome", "Verification", "Verifier"]

_log = logging.getLogger(__name__)

STEP_NAMES = (
    "prefix", "base45", "zlib", "cose", "signature", "claims",
    "validity", "content", "key_usage", "test_result",
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
    signer: Signer | None = None
    claims: Claims | None = None
    cert_type: CertType | None = None


class Verifier:
    """Verifies HC1 QR texts against a :class:`TrustStore` and an injected clock.

    ``clock`` must return an aware UTC datetime (a naive one is read as UTC).
    """

    def __init__(self, trust: TrustStore, clock: Callable[[], datetime]) -> None:
        self._trust = trust
        self._clock = clock
        self._pipeline: tuple[tuple[str, Callable[[_State], None]], ...] = (
            ("prefix", self._prefix),
            ("base45", self._base45),
            ("zlib", self._zlib),
            ("cose", self._cose),
            ("signature", self._signature),
            ("claims", self._claims),
            ("validity", self._validity),
            ("content", self._content),
            ("key_usage", self._key_usage),
            ("test_result", self._test_result),
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

    def _signature(self, s: _State) -> None:
        assert s.cose is not None
        s.signer = steps.authenticate(s.cose, self._trust)

    def _claims(self, s: _State) -> None:
        assert s.cose is not None
        s.claims = steps.parse_claims(s.cose.payload)

    def _validity(self, s: _State) -> None:
        assert s.claims is not None and s.signer is not None
        now = self._clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        steps.check_times(s.claims, s.signer, now)

    def _content(self, s: _State) -> None:
        assert s.claims is not None
        s.cert_type = steps.check_content(s.claims.hcert)

    def _key_usage(self, s: _State) -> None:
        assert s.signer is not None and s.cert_type is not None
        steps.check_key_usage(s.signer, s.cert_type)

    def _test_result(self, s: _State) -> None:
        assert s.claims is not None and s.cert_type is not None
        steps.check_test_result(s.claims.hcert, s.cert_type)

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
            return state, Decision.deny(reason, f"{name}: {exc.detail}")
        except Exception as exc:  # never let a scan crash the loop
            _log.exception("verifier bug in step %s", name)
            if record is not None:
                record.append(StepOutcome(name, Reason.INTERNAL_ERROR, type(exc).__name__))
            return state, Decision.deny(Reason.INTERNAL_ERROR, f"{name}: {type(exc).__name__}")
        return state, _allow(state)

    def verify(self, text: str) -> Decision:
        """Verify one scanned text. Never raises; every failure is a deny with a Reason."""
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


def _holder(hcert: dict[str, Any]) -> str | None:
    nam = hcert.get("nam")
    if not isinstance(nam, dict):
        return None
    native = " ".join(v for v in (nam.get("gn"), nam.get("fn")) if isinstance(v, str) and v)
    if native.strip():
        return mask_name(native)
    # Fall back to the ICAO transliteration, where "<" separates words.
    icao = " ".join(
        v.replace("<", " ") for v in (nam.get("gnt"), nam.get("fnt")) if isinstance(v, str)
    )
    return mask_name(icao) or None


def _allow(state: _State) -> Decision:
    assert state.claims is not None and state.cert_type is not None
    return Decision(
        allowed=True,
        reason=Reason.OK,
        cert_type=state.cert_type,
        holder_masked=_holder(state.claims.hcert),
        detail="",
    )
