"""The NIK verifier: site policy, validation, rate limit, status-list lookup.

:meth:`NikVerifier.verify` is the gate's entry point for a typed/read NIK, like
the QR verifier's ``verify(text)``: it always returns a
:class:`~kiosk.decision.Decision` with ``input=InputKind.NIK`` and never
raises. The NIK is used for the validation and the KDF and then dropped: it is
not logged, not put in the decision (``detail`` holds only codes), not stored.

``verify`` is three steps, which the gate's loop also runs apart so that the
costly one does not stall it: :meth:`NikVerifier.begin` (policy, validation,
rate limit, list state; loop thread) → :meth:`KdfJob.derive` (pure scrypt; a
:class:`~kiosk.nik.worker.KdfWorker` thread) → :meth:`NikVerifier.finish`
(membership and the decision; loop thread).

Site policy (``nik.mode``):

- ``off``: every NIK is denied ``NIK_DISABLED``;
- ``list``: allowed iff the NIK's KDF entry is in the installed, unexpired
  signed list (``NIK_NOT_LISTED`` otherwise). With no usable list, the
  ``nik.on_list_unavailable`` setting decides: ``deny``
  (``NIK_LIST_UNAVAILABLE``) or ``manual``;
- ``manual``: a well-formed NIK asks staff to check the KTP by hand. The
  decision is a deny with :attr:`Reason.NIK_STAFF_CHECK` ("wait for staff"),
  which the gate treats as *pending* (see :func:`is_pending`) and resolves
  with :class:`~kiosk.nik.manual.ManualCheck`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kiosk.decision import Decision, InputKind, Reason
from kiosk.nik.kdf import KdfParams, derive_entry
from kiosk.nik.listfile import StatusList
from kiosk.nik.manual import ManualCheck
from kiosk.nik.ratelimit import TokenBucket
from kiosk.nik.validate import validate_nik
from kiosk.verify.identity import nik_identity

log = logging.getLogger(__name__)

MODES = ("off", "list", "manual")
ON_LIST_UNAVAILABLE = ("deny", "manual")


def is_pending(decision: Decision) -> bool:
    """True for the "wait for staff" decision of manual mode (not a final deny)."""
    return decision.reason is Reason.NIK_STAFF_CHECK


@dataclass(frozen=True, slots=True, eq=False)
class KdfJob:
    """One NIK's pending derivation: what scrypt needs, and the list it is for.

    :meth:`derive` is pure (it reads only the fields below, never the list
    mapping or any verifier state), so it may run on another thread. The NIK
    and the salt are kept out of ``repr`` so that a job can never put them in a
    log line or a traceback; jobs compare by identity.

    Attributes:
        nik: the validated NIK (16 ASCII digits). In memory only.
        salt, kdf, width: the list manifest's derivation parameters.
        status_list: the list the job was started against (read only in
            :meth:`NikVerifier.finish`, on the thread that owns the verifier).
        version: that list's manifest version, for the decision's detail.
    """

    nik: str = field(repr=False)
    salt: bytes = field(repr=False)
    kdf: KdfParams
    width: int
    status_list: StatusList = field(repr=False)
    version: int

    def derive(self) -> bytes:
        """The NIK's ``width``-byte list entry (scrypt; ~0.2 s x86, ~1 s Pi 4 at defaults).

        Raises:
            ValueError: the NIK is not ASCII or the parameters are out of range.
        """
        return derive_entry(self.nik, self.salt, self.kdf, self.width)


@dataclass
class NikStats:
    """Counts only (never a NIK): what the NIK path decided, for status reports."""

    attempts: int = 0
    invalid: int = 0
    rate_limited: int = 0
    listed: int = 0
    not_listed: int = 0
    list_unavailable: int = 0
    manual_requested: int = 0
    disabled: int = 0
    errors: int = 0


class NikVerifier:
    """Decide on one NIK. Not thread-safe: the gate's main thread owns it.

    Args:
        mode: ``off``, ``list`` or ``manual``.
        status_list: the installed list (``list`` mode), or None when there is none.
        limiter: token bucket charged once per well-formed NIK (malformed input
            is rejected by public rules and reveals nothing, so it is not charged).
        manual: the staff-confirmation tracker for ``manual`` mode and for
            ``on_list_unavailable = "manual"``.
        on_list_unavailable: ``deny`` or ``manual`` when no list is usable.
        wall_clock: UTC now, for list expiry and birth-date checks.
        monotonic: seconds, for the rate limit.
    """

    def __init__(
        self,
        *,
        mode: str,
        limiter: TokenBucket,
        manual: ManualCheck,
        status_list: StatusList | None = None,
        on_list_unavailable: str = "deny",
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in MODES or on_list_unavailable not in ON_LIST_UNAVAILABLE:
            raise ValueError(f"bad NIK policy {mode!r}/{on_list_unavailable!r}")
        self.mode = mode
        self.limiter = limiter
        self.manual = manual
        self.on_list_unavailable = on_list_unavailable
        self._list = status_list
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self.stats = NikStats()

    @property
    def status_list(self) -> StatusList | None:
        """The list in use, if any."""
        return self._list

    def set_list(self, status_list: StatusList | None) -> None:
        """Use ``status_list`` from now on (after an install); closes the previous one."""
        old, self._list = self._list, status_list
        if old is not None and old is not status_list:
            old.close()

    def close(self) -> None:
        """Release the list mapping. Safe to call twice."""
        self.set_list(None)

    def verify(self, nik: str) -> Decision:
        """Decide on ``nik`` (as typed or read). Never raises; never logs the NIK.

        In ``list`` mode a well-formed NIK costs one scrypt derivation with the
        list's parameters (~0.2-0.5 s on an x86 core at the defaults, estimated
        ~1 s on a Pi 4). This is :meth:`begin`, :meth:`KdfJob.derive` and
        :meth:`finish` in a row on the caller's thread; the gate's loop runs the
        three steps itself with the derivation on a :class:`~kiosk.nik.worker.KdfWorker`
        so that frames and gate inputs keep flowing meanwhile.
        """
        started = self.begin(nik)
        if isinstance(started, Decision):
            return started
        try:
            entry: bytes | BaseException = started.derive()
        except Exception as exc:  # finish() turns it into the INTERNAL_ERROR deny
            entry = exc
        return self.finish(started, entry)

    def begin(self, nik: str) -> Decision | KdfJob:
        """Everything before the KDF: policy, validation, rate limit, staff desk, list state.

        Returns a :class:`Decision` when the answer is known now (a final deny,
        or the pending ``NIK_STAFF_CHECK``), else a :class:`KdfJob` to derive
        (off the loop thread if wanted) and hand to :meth:`finish`. Counts the
        attempt. Never raises; never logs the NIK.
        """
        self.stats.attempts += 1
        try:
            return self._begin(nik)
        except Exception as exc:  # a bug must still deny, and must not leak the NIK
            return self._internal_error(type(exc).__name__)

    def finish(self, job: KdfJob, entry: bytes | BaseException) -> Decision:
        """The decision for ``job`` once its entry is derived (or its derivation failed).

        ``entry`` is what :meth:`KdfJob.derive` returned, or the exception it
        raised (then: ``INTERNAL_ERROR`` with the type name only). The answer
        comes only from the list the job was started against: if
        :meth:`set_list` swapped the list meanwhile, the entry (salted for the
        old list) means nothing in the new one, and the traveller is asked to
        try again (``NIK_LIST_UNAVAILABLE`` "list changed"); a list that expired
        meanwhile is handled as at :meth:`begin`. Never raises.
        """
        if isinstance(entry, BaseException):
            return self._internal_error(type(entry).__name__)
        try:
            return self._finish(job, entry)
        except Exception as exc:  # e.g. the list mapping failed to read
            return self._internal_error(type(exc).__name__)

    def abort(self, job: KdfJob, why: str) -> Decision:
        """Give up on ``job`` (no result in time, no worker free): an ``INTERNAL_ERROR`` deny.

        ``why`` is a fixed phrase chosen by the caller (it becomes the
        decision's ``detail``); it must never hold the NIK.
        """
        return self._internal_error(why)

    def _internal_error(self, why: str) -> Decision:
        self.stats.errors += 1
        # A type name or fixed phrase only: an exception message could quote the input.
        log.error("NIK verification failed: %s", why)
        return _deny(Reason.INTERNAL_ERROR, why)

    def _begin(self, nik: str) -> Decision | KdfJob:
        if self.mode == "off":
            self.stats.disabled += 1
            return _deny(Reason.NIK_DISABLED, "nik entry off")
        now = self._wall_clock()
        verdict = validate_nik(nik, now.date())
        if not verdict.valid:
            self.stats.invalid += 1
            return _deny(Reason.NIK_INVALID, str(verdict.problem))
        if not self.limiter.take(self._monotonic()):
            self.stats.rate_limited += 1
            return _deny(Reason.NIK_RATE_LIMITED, "too many attempts")
        if self.mode == "manual":
            return self._ask_staff("manual")
        status_list = self._list
        if status_list is None or status_list.manifest.expired(now):
            return self._unavailable("no list" if status_list is None else "list expired")
        manifest = status_list.manifest
        return KdfJob(
            nik=nik,
            salt=manifest.salt,
            kdf=manifest.kdf,
            width=manifest.width,
            status_list=status_list,
            version=manifest.version,
        )

    def _finish(self, job: KdfJob, entry: bytes) -> Decision:
        status_list = job.status_list
        if self._list is not status_list:
            self.stats.list_unavailable += 1
            return _deny(Reason.NIK_LIST_UNAVAILABLE, "list changed")
        if status_list.manifest.expired(self._wall_clock()):
            return self._unavailable("list expired")
        if entry in status_list:
            self.stats.listed += 1
            return Decision(
                allowed=True,
                reason=Reason.OK,
                input=InputKind.NIK,
                detail=f"list v{job.version}",
                # The salted KDF entry, never the NIK: enough for anti-passback.
                credential_id=nik_identity(entry),
            )
        self.stats.not_listed += 1
        return _deny(Reason.NIK_NOT_LISTED, f"list v{job.version}")

    def _unavailable(self, why: str) -> Decision:
        self.stats.list_unavailable += 1
        if self.on_list_unavailable == "manual":
            return self._ask_staff(why)
        return _deny(Reason.NIK_LIST_UNAVAILABLE, why)

    def _ask_staff(self, trigger: str) -> Decision:
        self.stats.manual_requested += 1
        self.manual.request(trigger)
        return _deny(Reason.NIK_STAFF_CHECK, trigger)


def _deny(reason: Reason, detail: str) -> Decision:
    return Decision.deny(reason, detail, input=InputKind.NIK)
