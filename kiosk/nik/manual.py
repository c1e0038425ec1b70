"""Manual KTP checks: staff confirm (or refuse) a traveller's KTP on a staff key.

Used when ``nik.mode = "manual"`` or when no list is usable and
``nik.on_list_unavailable = "manual"``. The NIK verifier opens a request
(:meth:`ManualCheck.request`) and returns the pending ``NIK_STAFF_CHECK``
decision; the gate then waits for the staff key and calls
:meth:`ManualCheck.resolve`, or :meth:`ManualCheck.poll` each loop turn to
time the request out. Each outcome is counted separately and handed to the
``audit`` callback as a :class:`ManualAudit` record (who, when, outcome, how
long it took; never the NIK) so the site can review hand-admitted entries.

Wiring the staff key/button to ``resolve`` belongs to the gate.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kiosk.decision import Decision, InputKind, Reason

log = logging.getLogger(__name__)


class ManualOutcome(enum.StrEnum):
    """How a manual check ended."""

    CONFIRMED = "confirmed"
    REFUSED = "refused"
    TIMEOUT = "timeout"


def outcome_of(decision: Decision) -> ManualOutcome:
    """How a manual check ended, read from the decision :meth:`ManualCheck.resolve`
    or :meth:`ManualCheck.poll` returned (the gate counts it as ``nik_manual.<outcome>``)."""
    if decision.allowed:
        return ManualOutcome.CONFIRMED
    return ManualOutcome.TIMEOUT if decision.detail == "timeout" else ManualOutcome.REFUSED


@dataclass(frozen=True, slots=True)
class ManualAudit:
    """One finished manual check, for the audit trail. Contains no personal data.

    Attributes:
        at: when it ended (UTC).
        outcome: confirmed, refused or timeout.
        trigger: why staff were asked: ``manual`` (site policy), ``no list`` or
            ``list expired``.
        staff_id: which staff key/operator answered ("" when unknown or timed out).
        wait_s: seconds from request to outcome.
    """

    at: datetime
    outcome: ManualOutcome
    trigger: str
    staff_id: str
    wait_s: float


@dataclass
class ManualCounts:
    """Manual checks by outcome (kept apart from list-based allows)."""

    requested: int = 0
    confirmed: int = 0
    refused: int = 0
    timeout: int = 0


class ManualCheck:
    """At most one pending manual check per gate.

    Args:
        timeout_s: a request not answered within this many seconds is refused.
        audit: receives a :class:`ManualAudit` per finished check.
        monotonic / wall_clock: injected clocks (seconds; UTC datetime).
    """

    def __init__(
        self,
        *,
        timeout_s: float = 60.0,
        audit: Callable[[ManualAudit], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.timeout_s = timeout_s
        self._audit = audit
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._pending: tuple[float, str] | None = None
        self.counts = ManualCounts()

    @property
    def pending(self) -> bool:
        """True while a request waits for staff."""
        return self._pending is not None

    def request(self, trigger: str) -> None:
        """Open a request (replacing any unanswered one, which is counted as a timeout)."""
        if self._pending is not None:
            self._finish(ManualOutcome.TIMEOUT, "")
        self._pending = (self._monotonic(), trigger)
        self.counts.requested += 1

    def deadline(self) -> float | None:
        """Monotonic time at which the pending request times out, or None."""
        return None if self._pending is None else self._pending[0] + self.timeout_s

    def resolve(self, confirmed: bool, staff_id: str = "") -> Decision | None:
        """Staff answered: allow (``OK``, detail ``manual``) or deny ``NIK_STAFF_REFUSED``.

        Returns None when nothing is pending (a stray key press).
        """
        if self._pending is None:
            return None
        if confirmed:
            self._finish(ManualOutcome.CONFIRMED, staff_id)
            # detail "manual" lets counts and reports keep hand-admitted entries apart.
            return Decision(allowed=True, reason=Reason.OK, input=InputKind.NIK, detail="manual")
        self._finish(ManualOutcome.REFUSED, staff_id)
        return Decision.deny(Reason.NIK_STAFF_REFUSED, "refused", input=InputKind.NIK)

    def poll(self) -> Decision | None:
        """Time out a request older than ``timeout_s``: returns the deny, else None."""
        if self._pending is None or self._monotonic() - self._pending[0] < self.timeout_s:
            return None
        self._finish(ManualOutcome.TIMEOUT, "")
        return Decision.deny(Reason.NIK_STAFF_REFUSED, "timeout", input=InputKind.NIK)

    def _finish(self, outcome: ManualOutcome, staff_id: str) -> None:
        assert self._pending is not None
        started, trigger = self._pending
        self._pending = None
        setattr(self.counts, outcome.value, getattr(self.counts, outcome.value) + 1)
        record = ManualAudit(
            at=self._wall_clock(),
            outcome=outcome,
            trigger=trigger,
            staff_id=staff_id,
            wait_s=round(self._monotonic() - started, 3),
        )
        log.info(
            "manual KTP check %s (trigger %s, staff %s, %.1f s)",
            outcome,
            trigger,
            staff_id or "-",
            record.wait_s,
        )
        if self._audit is not None:
            self._audit(record)
