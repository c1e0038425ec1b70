"""Reading gpiozero MockPin state histories, for timing assertions."""

from __future__ import annotations

import math
import time
from typing import Any


def active_intervals(pin: Any, active_high: bool) -> list[tuple[float, float]]:
    """(start, duration) in seconds of each period the pin spent at its active level.

    Built from MockPin.states, whose timestamps are deltas since the previous
    change (the first entry is the undriven input level at creation, time 0).
    A period still running is reported with duration ``math.inf``.
    """
    t = 0.0
    out: list[tuple[float, float]] = []
    start: float | None = None
    for i, st in enumerate(pin.states):
        t += st.timestamp
        active = st.state == active_high
        if i == 0:
            continue  # the input level before our device drove the pin
        if active and start is None:
            start = t
        elif not active and start is not None:
            out.append((start, t - start))
            start = None
    if start is not None:
        out.append((start, math.inf))
    return out


def wait_for(predicate: Any, timeout: float = 3.0) -> None:
    """Poll ``predicate`` until true; the assertions themselves use the pin history."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)
