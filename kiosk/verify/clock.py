"""Trusted time for a device without a real-time clock.

A Raspberry Pi boots with whatever time ``fake-hwclock`` saved, or 1970, until
NTP synchronises.  :class:`TrustedClock` gives the verifier a time that never
goes below a persisted **high-water mark**: the latest time seen while the
kernel said the clock was synchronised, raised further by the issue time of
every installed trust bundle.  So a gate that lost its clock can never be
rolled back into accepting expired certificates.

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


class TrustedClock:
    """System clock clamped to a persisted high-water mark.

    Args:
        wall: the system clock (aware UTC datetimes; naive ones are read as UTC).
        probe: synchronisation probe, asked at most every ``probe_interval_s``.
        state_file: JSON file holding the mark (``{"high_water": posix_s}``).
        policy: hold, allow or deny (module docstring).
        persist_interval_s: the mark is written at most this often (SD card wear);
            :meth:`raise_floor` and :meth:`close` write immediately.
        monotonic: monotonic seconds, injected for tests.
    """

    def __init__(self, wall: Callable[[], datetime], probe: SyncProbe, state_file: Path, *,
                 policy: UnsyncPolicy = "hold", persist_interval_s: float = 300.0,
                 probe_interval_s: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall
        self._probe = probe
        self._file = state_file
        self._policy = policy
        self._persist_every = persist_interval_s
        self._probe_every = probe_interval_s
        self._monotonic = monotonic
        self._high = self._load()
        self._stored = self._high
        self._last_persist = monotonic()
        self._synced = False
        self._probed_at: float | None = None

    def _load(self) -> float:
        try:
            value = json.loads(self._file.read_text())["high_water"]
        except FileNotFoundError:
            return 0.0
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _log.warning("clock state %s unreadable (%s); starting without a mark",
                         self._file, type(exc).__name__)
            return 0.0
        return float(value) if isinstance(value, int | float) and value >= 0 else 0.0

    @property
    def high_water(self) -> float:
        """The current mark in POSIX seconds (0 when none yet)."""
        return self._high

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

    def _read(self) -> tuple[datetime, float, bool]:
        """(system time, its POSIX seconds, synchronised); advances and lazily persists the mark."""
        system = self._wall()
        if system.tzinfo is None:
            system = system.replace(tzinfo=UTC)
        ts = system.timestamp()
        synced = self._is_synced()
        if (synced or self._policy == "allow") and ts > self._high:
            self._high = ts
            if self._monotonic() - self._last_persist >= self._persist_every:
                self._persist()
        return system, ts, synced

    def reading(self) -> ClockReading:
        """Read the clock: never below the mark; advances (and lazily persists) the mark."""
        system, ts, synced = self._read()
        if ts < self._high:
            return ClockReading(datetime.fromtimestamp(self._high, UTC), "held", self._high)
        return ClockReading(system, "synchronised" if synced else "unsynchronised", self._high)

    def now(self) -> datetime:
        """The time to verify with (on every scan: no ClockReading is built).

        Raises:
            VerificationError(CLOCK_UNTRUSTED): policy ``deny`` and the clock is
                not synchronised.
        """
        system, ts, synced = self._read()
        if self._policy == "deny" and not synced:
            raise VerificationError(Reason.CLOCK_UNTRUSTED, "system clock not synchronised")
        if ts < self._high:
            return datetime.fromtimestamp(self._high, UTC)
        return system

    def now_ts(self) -> float:
        """:meth:`now` as POSIX seconds (the per-scan call: no datetime when not held).

        Exactly ``now().timestamp()``.  Raises like :meth:`now`.
        """
        _, ts, synced = self._read()
        if self._policy == "deny" and not synced:
            raise VerificationError(Reason.CLOCK_UNTRUSTED, "system clock not synchronised")
        if ts < self._high:
            # Through a datetime, as now() does: it rounds the mark to microseconds.
            return datetime.fromtimestamp(self._high, UTC).timestamp()
        return ts

    def __call__(self) -> datetime:
        return self.now()

    def raise_floor(self, ts: float) -> None:
        """Raise the mark to ``ts`` (e.g. a bundle's issue time) and persist it now."""
        if ts > self._high:
            self._high = ts
            self._persist()

    def _persist(self) -> None:
        self._last_persist = self._monotonic()
        if self._high <= self._stored:
            return
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self._file, json.dumps({"high_water": self._high}).encode())
            self._stored = self._high
        except OSError as exc:  # a full or read-only disk must not stop the gate
            _log.warning("cannot persist clock high-water mark: %s", exc)

    def close(self) -> None:
        """Persist the mark. Safe to call twice."""
        with contextlib.suppress(Exception):
            self._persist()
