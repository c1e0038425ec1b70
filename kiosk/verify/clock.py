"""Trusted time for a device without a real-time clock.

A Raspberry Pi boots with whatever time ``fake-hwclock`` saved, or 1970, until
NTP synchronises.  :class:`TrustedClock` gives the verifier a time that never
goes below a persisted **high-water mark**: the latest time seen while the
kernel said the clock was synchronised, raised further by the issue time of
every installed trust bundle.  So a gate that lost its clock can never be
rolled back into accepting expired certificates.

The mark is also bounded **above** (docs/trust-bundle.md, "Trusted time"): a
synchronised reading more than ``max_step_s`` ahead of the mark is a *jump*
and is not adopted until something corroborates it -- the validity window of
the loaded trust bundle, or (no bundle known) the same reading held for
``jump_confirm_s``; a bundle's ``issued_at`` more than ``bundle_tolerance_s``
ahead of the trusted time waits until the clock reaches it.  Meanwhile the
gate verifies at the mark (state ``held``), which keeps pace with the
monotonic clock, and :attr:`TrustedClock.jump_ahead_s` reports the refused
jump.  A mark already pushed away (beyond the whole validity of a newer
bundle than any seen, while the synchronised clock is inside it) is brought
back to the clock: no file is ever deleted by hand.

Whether the clock is synchronised comes from an injected :class:`SyncProbe`:
:class:`AdjtimexProbe` asks the kernel (``adjtimex(2)`` in read-only mode
returns ``TIME_ERROR`` while ``STA_UNSYNC`` is set), :class:`TimesyncdProbe`
reads systemd-timesyncd's ``/run/systemd/timesync/synchronized`` flag.

Policy when unsynchronised (``clock.unsynchronised`` in the config):

* ``hold`` (default): verify at max(system clock, high-water mark); the mark
  is not advanced by an unsynchronised clock;
* ``allow``: the same, but the unsynchronised system clock also advances the
  mark (for sites with a battery RTC the kernel does not count as synchronised);
* ``deny``: every scan is denied with ``Reason.CLOCK_UNTRUSTED``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from kiosk.atomic import atomic_write
from kiosk.decision import Reason
from kiosk.errors import VerificationError

__all__ = [
    "AdjtimexProbe",
    "ClockReading",
    "ClockState",
    "FixedProbe",
    "SyncProbe",
    "TimesyncdProbe",
    "TrustedClock",
]

_log = logging.getLogger(__name__)

ClockState = Literal["synchronised", "unsynchronised", "held"]
UnsyncPolicy = Literal["hold", "allow", "deny"]
_TIME_ERROR = 5  # adjtimex(2) return value: clock not synchronised
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


class SyncProbe(Protocol):
    """Tells whether the system clock is synchronised to a reliable source."""

    def synchronised(self) -> bool:
        """True when synchronised; False when not or unknown (fails safe)."""
        ...


class AdjtimexProbe:
    """Linux kernel state via ``adjtimex(2)`` with ``modes = 0`` (read-only, no privilege).

    The struct is passed as a zeroed 512-byte buffer: larger than ``struct
    timex`` on every ABI (208 bytes on 64-bit), and only the return value is read.
    """

    def __init__(self) -> None:
        name = ctypes.util.find_library("c") or "libc.so.6"
        self._adjtimex = ctypes.CDLL(name, use_errno=True).adjtimex

    def synchronised(self) -> bool:
        """False on TIME_ERROR or when the call fails."""
        buf = ctypes.create_string_buffer(512)
        result = self._adjtimex(buf)
        return result >= 0 and result != _TIME_ERROR


class TimesyncdProbe:
    """systemd-timesyncd touches a flag file once it has synchronised."""

    def __init__(self, flag: Path = TIMESYNCD_FLAG) -> None:
        self._flag = flag

    def synchronised(self) -> bool:
        """True when the flag file exists."""
        return self._flag.exists()


class FixedProbe:
    """A probe with a settable answer (tests, or ``clock.probe = "none"``)."""

    def __init__(self, value: bool = False) -> None:
        self.value = value

    def synchronised(self) -> bool:
        """The fixed answer."""
        return self.value


@dataclass(frozen=True)
class ClockReading:
    """One reading: the time to verify with, the clock state, the mark (POSIX s)."""

    now: datetime
    state: ClockState
    high_water: float


@dataclass
class _Jump:
    """A synchronised reading too far ahead of the mark, waiting for corroboration."""

    offset: float  # system POSIX s minus monotonic s: constant while the reading holds
    since: float  # monotonic s of the first such reading
    ahead_s: float  # how far ahead of the mark it was, last seen


class TrustedClock:
    """System clock clamped to a persisted high-water mark, bounded above.

    Args:
        wall: the system clock (aware UTC datetimes; naive ones are read as UTC).
        probe: synchronisation probe, asked at most every ``probe_interval_s``.
        state_file: JSON file holding the mark (``{"high_water": posix_s,
            "bundle_version": int}``).
        policy: hold, allow or deny (module docstring).
        persist_interval_s: the mark is written at most this often (SD card wear);
            :meth:`raise_floor`, :meth:`offer_bundle` and :meth:`close` write immediately.
        max_step_s: a synchronised reading more than this (plus the monotonic
            time since the mark was last set) ahead of the mark is a *jump*:
            not adopted until corroborated (docs/trust-bundle.md, "Trusted time").
        bundle_tolerance_s: how far a bundle's ``issued_at`` may lie ahead of
            the trusted time and still raise the mark at once.
        jump_confirm_s: with no trust bundle known (dev folder), a jump whose
            readings agree (same offset to the monotonic clock within 5 s) for
            this long is adopted; 0 = never.
        monotonic: monotonic seconds, injected for tests.
    """

    def __init__(self, wall: Callable[[], datetime], probe: SyncProbe, state_file: Path, *,
                 policy: UnsyncPolicy = "hold", persist_interval_s: float = 300.0,
                 probe_interval_s: float = 1.0, max_step_s: float = 86400.0,
                 bundle_tolerance_s: float = 3600.0, jump_confirm_s: float = 900.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall
        self._probe = probe
        self._file = state_file
        self._policy = policy
        self._persist_every = persist_interval_s
        self._probe_every = probe_interval_s
        self._step = max_step_s
        self._tolerance = bundle_tolerance_s
        self._confirm = jump_confirm_s
        self._monotonic = monotonic
        self._high, self._bundle_version = self._load()
        self._stored = self._high
        self._stored_version = self._bundle_version
        self._last_persist = self._high_mono = monotonic()
        self._synced = False
        self._probed_at: float | None = None
        self._jump: _Jump | None = None
        self._window: tuple[float, float] | None = None  # newest bundle: issued - tol .. end
        self._future_bundle: float | None = None  # an issued_at not adopted yet
        self.jumps_refused = 0
        """Jumps (readings or bundle times) refused since start: a counter for the status."""

    def _load(self) -> tuple[float, int]:
        try:
            state = json.loads(self._file.read_text())
            value = state["high_water"]
            version = state.get("bundle_version", 0)
        except FileNotFoundError:
            return 0.0, 0
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            _log.warning("clock state %s unreadable (%s); starting without a mark",
                         self._file, type(exc).__name__)
            return 0.0, 0
        mark = float(value) if isinstance(value, int | float) and value >= 0 else 0.0
        return mark, version if type(version) is int and version >= 0 else 0

    @property
    def high_water(self) -> float:
        """The current mark in POSIX seconds (0 when none yet)."""
        return self._high

    @property
    def jump_ahead_s(self) -> float | None:
        """Seconds a refused reading or bundle time is ahead of the mark; None when none is."""
        ahead = [] if self._jump is None else [self._jump.ahead_s]
        if self._future_bundle is not None:
            ahead.append(self._future_bundle - self._high)
        return max(ahead) if ahead else None

    def _is_synced(self) -> bool:
        now = self._monotonic()
        if self._probed_at is None or now - self._probed_at >= self._probe_every:
            try:
                self._synced = bool(self._probe.synchronised())
            except Exception:  # a broken probe means "not synchronised", never a crash
                _log.exception("clock sync probe failed")
                self._synced = False
            self._probed_at = now
        return self._synced

    def _set_mark(self, ts: float, mono: float) -> None:
        self._high, self._high_mono = ts, mono
        if self._future_bundle is not None and ts >= self._future_bundle - self._tolerance:
            # The clock caught up with a bundle issued "in the future": now it is trusted.
            self._high = max(ts, self._future_bundle)
            self._future_bundle = None
        if mono - self._last_persist >= self._persist_every:
            self._persist()

    def _in_window(self, ts: float) -> bool:
        return self._window is not None and self._window[0] <= ts <= self._window[1]

    def _jumped(self, ts: float, mono: float) -> bool:
        """Decide on a reading ahead of the mark; True when it stays unadopted (a jump)."""
        if self._high <= 0.0 and self._window is None:
            return False  # nothing to be ahead of yet: the first reading sets the mark
        if ts <= self._high + (mono - self._high_mono) + self._step or self._in_window(ts):
            if self._jump is not None:
                _log.info("clock reading corroborated: trusted time follows the system clock")
                self._jump = None
            return False
        offset = ts - mono
        jump = self._jump
        if jump is not None and abs(offset - jump.offset) <= 5.0:
            if self._window is None and self._confirm > 0 and mono - jump.since >= self._confirm:
                _log.warning("clock jump of %.0f s held for %.0f s: adopted (no trust bundle "
                             "to check it against)", ts - self._high, mono - jump.since)
                self._jump = None
                return False
            jump.ahead_s = ts - self._high
        else:
            self.jumps_refused += 1
            _log.warning("synchronised clock reading %.0f s ahead of the trusted mark not "
                         "adopted: verifying at the mark until corroborated", ts - self._high)
            self._jump = _Jump(offset, mono, ts - self._high)
        # Deciding on the mark, which keeps pace with the monotonic clock meanwhile.
        self._set_mark(self._high + max(0.0, mono - self._high_mono), mono)
        return True

    def _read(self) -> tuple[datetime, float, bool, bool]:
        """(system time, its POSIX s, synchronised, adopted); advances the mark when adopted.

        ``adopted`` is False for a reading ahead of the mark that is not (yet)
        corroborated: the caller then verifies at the mark.
        """
        system = self._wall()
        if system.tzinfo is None:
            system = system.replace(tzinfo=UTC)
        ts = system.timestamp()
        synced = self._is_synced()
        if (synced or self._policy == "allow") and ts > self._high:
            mono = self._monotonic()
            if ts <= self._high + (mono - self._high_mono) + self._step \
                    and self._jump is None and self._future_bundle is None:
                # The per-scan case: a small step forward.  _set_mark inlined.
                self._high, self._high_mono = ts, mono
                if mono - self._last_persist >= self._persist_every:
                    self._persist()
            elif self._jumped(ts, mono):
                return system, ts, synced, False
            else:
                self._set_mark(ts, mono)
        elif self._jump is not None and synced and ts <= self._high:
            self._jump = None  # the clock came back below the mark: the jump is over
        return system, ts, synced, True

    def reading(self) -> ClockReading:
        """Read the clock: never below the mark; advances (and lazily persists) the mark."""
        system, ts, synced, adopted = self._read()
        if ts < self._high or not adopted:
            return ClockReading(datetime.fromtimestamp(self._high, UTC), "held", self._high)
        return ClockReading(system, "synchronised" if synced else "unsynchronised", self._high)

    def now(self) -> datetime:
        """The time to verify with (on every scan: no ClockReading is built).

        Raises:
            VerificationError(CLOCK_UNTRUSTED): policy ``deny`` and the clock is
                not synchronised.
        """
        system, ts, synced, adopted = self._read()
        if self._policy == "deny" and not synced:
            raise VerificationError(Reason.CLOCK_UNTRUSTED, "system clock not synchronised")
        if ts < self._high or not adopted:
            return datetime.fromtimestamp(self._high, UTC)
        return system

    def now_ts(self) -> float:
        """:meth:`now` as POSIX seconds (the per-scan call: no datetime when not held).

        Exactly ``now().timestamp()``.  Raises like :meth:`now`.
        """
        _, ts, synced, adopted = self._read()
        if self._policy == "deny" and not synced:
            raise VerificationError(Reason.CLOCK_UNTRUSTED, "system clock not synchronised")
        if ts < self._high or not adopted:
            # Through a datetime, as now() does: it rounds the mark to microseconds.
            return datetime.fromtimestamp(self._high, UTC).timestamp()
        return ts

    def __call__(self) -> datetime:
        return self.now()

    def raise_floor(self, ts: float) -> None:
        """Raise the mark to ``ts`` unconditionally and persist it now (tests, tools).

        A device offers a bundle's issue time through :meth:`offer_bundle`,
        which bounds it.
        """
        if ts > self._high:
            self._high, self._high_mono = ts, self._monotonic()
            self._persist()

    def offer_bundle(self, issued_ts: float, valid_until_ts: float, version: int) -> str:
        """Take a verified trust bundle's issue time and validity as evidence of the time.

        Returns what happened (also logged): ``raised`` (the mark rose to
        ``issued_ts``), ``kept`` (the mark was already later), ``deferred``
        (``issued_ts`` is more than ``bundle_tolerance_s`` ahead of the trusted
        time and no synchronised reading corroborates it: not adopted, reported
        by :attr:`jump_ahead_s`, adopted once the clock reaches it) or
        ``lowered`` (recovery: a bundle newer than every one seen before, while
        the mark lies beyond that bundle's whole validity -- a mark pushed
        away by an earlier bad reading -- and the synchronised clock inside
        it: the mark goes back to the clock).
        The bundle's window ``issued_ts - tolerance .. valid_until_ts``
        corroborates synchronised readings inside it.
        """
        _, ts, synced, _ = self._read()
        mono = self._monotonic()
        newer = version > self._bundle_version
        if newer or self._window is None:
            self._window = (issued_ts - self._tolerance, valid_until_ts)
        if newer:
            self._bundle_version = version
        outcome = "kept"
        if newer and self._high > valid_until_ts and synced \
                and self._window[0] <= ts <= valid_until_ts:
            # Two independent sources (the authority's newest bundle and the
            # synchronised clock) agree that the mark is wrong.
            _log.warning("trusted mark %.0f s beyond trust bundle v%d's validity while the "
                         "synchronised clock is inside it: mark lowered to the clock",
                         self._high - valid_until_ts, version)
            self._high, self._high_mono, self._jump = ts, mono, None
            self._stored = -1.0  # write even though the mark went down
            self._future_bundle = None
            outcome = "lowered"
        elif self._jump is not None and self._in_window(self._jump.offset + mono):
            # The reading waiting for corroboration lies in this bundle's window.
            _log.info("clock jump corroborated by trust bundle v%d: adopted", version)
            self._high, self._high_mono, self._jump = self._jump.offset + mono, mono, None
            outcome = "raised"
        trusted = self._high
        if issued_ts > trusted:
            if trusted <= 0.0 or issued_ts <= trusted + self._tolerance:
                self._high, self._high_mono = issued_ts, mono
                self._future_bundle = None
                outcome = "raised"
            else:
                if self._future_bundle is None or issued_ts != self._future_bundle:
                    self.jumps_refused += 1
                    _log.warning("trust bundle v%d issued %.0f s after the trusted time: its "
                                 "issue time is not adopted until the clock reaches it",
                                 version, issued_ts - trusted)
                self._future_bundle = issued_ts
                outcome = "deferred" if outcome == "kept" else outcome
        self._persist()
        return outcome

    def _persist(self) -> None:
        self._last_persist = self._monotonic()
        if self._high <= self._stored and self._bundle_version == self._stored_version:
            return
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self._file, json.dumps(
                {"high_water": self._high, "bundle_version": self._bundle_version}).encode())
            self._stored, self._stored_version = self._high, self._bundle_version
        except OSError as exc:  # a full or read-only disk must not stop the gate
            _log.warning("cannot persist clock high-water mark: %s", exc)

    def close(self) -> None:
        """Persist the mark. Safe to call twice."""
        with contextlib.suppress(Exception):
            self._persist()
