"""Counts of refused hostile input, per input surface, for operators.

Any part of the gate that refuses input from outside calls::

    from kiosk.telemetry.refused import note_refused
    note_refused("mqtt", "too_large")      # surface, reason code

Surface and reason are short fixed codes (``[a-z][a-z0-9_]*``, at most 32
characters), never the refused content: a code that does not fit is a
programming error (ValueError). Calls are thread-safe, never block on I/O and
cost a dictionary update, so they may be made from any thread, paho's included.

The publisher reports the counts since start in the retained status
(``refused.<surface>``) and sends one ``refused.<surface>`` event per surface at
most once a minute, carrying how many were refused since the previous event and
the latest reason: a flood of hostile input cannot become a flood of messages.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

SURFACES = ("config", "mqtt", "bundle", "nik", "files", "qr")
"""Surfaces always present in the status (0 until something is refused)."""

_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True, slots=True)
class RefusalReport:
    """Refusals on one surface since the previous report."""

    surface: str
    count: int
    reason: str


class RefusalCounter:
    """Thread-safe counters of refused input per surface."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, int] = dict.fromkeys(SURFACES, 0)
        self._unreported: dict[str, int] = {}
        self._reasons: dict[str, str] = {}

    def note(self, surface: str, reason: str) -> None:
        """Count one refusal of input on ``surface`` for ``reason`` (both fixed codes).

        Raises:
            ValueError: ``surface`` or ``reason`` is not a short lower-case code.
        """
        for code in (surface, reason):
            if not isinstance(code, str) or _CODE.fullmatch(code) is None:
                raise ValueError("refusal surface and reason must be short lower-case codes")
        with self._lock:
            self._totals[surface] = self._totals.get(surface, 0) + 1
            self._unreported[surface] = self._unreported.get(surface, 0) + 1
            self._reasons[surface] = reason

    def totals(self) -> dict[str, int]:
        """Refusals per surface since start (every surface in :data:`SURFACES` included)."""
        with self._lock:
            return dict(self._totals)

    def take(self, surface: str) -> RefusalReport | None:
        """Refusals on ``surface`` not yet reported (and forget them), or None."""
        with self._lock:
            count = self._unreported.pop(surface, 0)
            if not count:
                return None
            return RefusalReport(surface, count, self._reasons[surface])

    def pending_surfaces(self) -> list[str]:
        """Surfaces with refusals not yet reported."""
        with self._lock:
            return sorted(self._unreported)


REFUSED = RefusalCounter()
"""The gate's counter: what :func:`note_refused` updates and the publisher reports."""


def note_refused(surface: str, reason: str = "refused") -> None:
    """Count one refused input on ``surface`` in the gate's counter (:data:`REFUSED`)."""
    REFUSED.note(surface, reason)
