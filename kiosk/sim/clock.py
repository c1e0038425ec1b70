"""A virtual clock, and gpiozero mock pins that record their history on it.

The simulator jumps this clock from one scheduled moment to the next, so hours
of gate time run in milliseconds. Every part that asks for the time gets it
from here: the scan loop and state machine (:meth:`VirtualClock.monotonic`),
the verifier (:meth:`VirtualClock.wall`), and the mock pins, whose
``states`` timestamps (deltas since the previous change, as in gpiozero)
are therefore virtual seconds, so pulse lengths can be asserted exactly.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin, PinState

# The monotonic reading at t = 0. Zero, so that deadlines computed by the gate
# convert back to scenario time without rounding (a jump lands exactly on them).
MONOTONIC_ORIGIN = 0.0


class VirtualClock:
    """Seconds since the scenario start; never goes backwards.

    Args:
        start: the wall-clock time (aware UTC) at ``t = 0``.
    """

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.t = 0.0

    def advance_to(self, t: float) -> None:
        """Move to ``t`` seconds after start. Raises ValueError when going backwards."""
        if t < self.t:
            raise ValueError(f"virtual clock cannot go back from {self.t} to {t}")
        self.t = t

    def monotonic(self) -> float:
        """The gate's monotonic clock (seconds)."""
        return MONOTONIC_ORIGIN + self.t

    def wall(self) -> datetime:
        """The wall clock (aware UTC)."""
        return self.start + timedelta(seconds=self.t)


class VirtualMockPin(MockPin):
    """A MockPin whose state history uses its factory's virtual clock."""

    def __init__(self, factory: Any, info: Any) -> None:
        self._clock: VirtualClock = factory.clock  # before super(): it clears the history
        super().__init__(factory, info)

    # gpiozero is untyped: its attributes are Any here.
    _state: Any
    _last_change: Any
    states: Any

    def _change_state(self, value: bool) -> bool:
        if self._state != value:
            t = self._clock.monotonic()
            self._state = value
            self.states.append(PinState(t - self._last_change, value))
            self._last_change = t
            return True
        return False

    def clear_states(self) -> None:
        """Restart the pin history at the current virtual time (as gpiozero's MockPin)."""
        self._last_change = self._clock.monotonic()
        self.states = [PinState(0.0, self._state)]


class VirtualMockFactory(MockFactory):
    """gpiozero's MockFactory with pins on a :class:`VirtualClock`."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        super().__init__(pin_class=VirtualMockPin)
