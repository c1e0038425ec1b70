"""The gate's inputs on GPIO, read by sampling: passage sensor, fire alarm, exit button, arm switch.

Why sampling instead of gpiozero's edge callbacks with ``bounce_time``: edge
debouncing drops every edge for a while after the first one, so a bouncing
contact can end up reported in the wrong state, and callbacks run on a
background thread. Here the scan loop reads each pin's level once per tick and a
:class:`Debouncer` accepts a new level only after it has been seen on at least
two consecutive samples spanning ``gate.debounce_ms``. Everything stays on the
loop's thread and on its (possibly virtual) clock.

Wiring and pulls (see ``hardware/pinmap.md``):

* passage sensor: pull towards its *inactive* level, so a cut wire means
  "nobody passed" (the grant expires unused: safe);
* fire alarm: normally-closed contact to ground with the pull-up; the pull is
  towards the *alarm* level, so a cut wire or a dead panel opens the gate
  (life safety wins);
* exit button and arm switch: contacts to ground with the pull-up (active low).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gpiozero import InputDevice

from kiosk.closing import Closing
from kiosk.config.schema import GateConfig
from kiosk.errors import GpioError

log = logging.getLogger(__name__)

MIN_SAMPLES = 2


class Debouncer:
    """Turns sampled levels into debounced state changes. Pure; times in seconds.

    Args:
        stable_s: a new level must hold this long (first to last sample) ...
        initial: the state assumed before the first sample.
        min_samples: ... and be seen on at least this many consecutive samples.
    """

    def __init__(self, stable_s: float, initial: bool, min_samples: int = MIN_SAMPLES) -> None:
        self.state = initial
        self._stable_s = stable_s
        self._min = min_samples
        self._candidate: bool | None = None
        self._since = 0.0
        self._count = 0

    def sample(self, level: bool, now: float) -> bool | None:
        """Feed one sample; returns the new state when it changed, else None."""
        if level == self.state:
            self._candidate = None  # a glitch shorter than the stable period
            return None
        if self._candidate != level:
            self._candidate, self._since, self._count = level, now, 1
        else:
            self._count += 1
        # The epsilon absorbs float rounding of clocks that add up small steps.
        if self._count >= self._min and now - self._since >= self._stable_s - 1e-9:
            self.state, self._candidate = level, None
            return level
        return None

    def next_deadline(self, after: float = float("-inf")) -> float | None:
        """When a pending change could be confirmed (later than ``after``), else None."""
        if self._candidate is None or self._since + self._stable_s <= after:
            return None
        return self._since + self._stable_s


@dataclass(frozen=True, slots=True)
class InputEdge:
    """A debounced change of input ``name`` (passage, fire_alarm, exit, arm, staff_confirm,
    staff_refuse) to ``active``."""

    name: str
    active: bool


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    pin: int
    active_high: bool
    pull_up: bool
    initial: bool | None  # None: the level read at start counts as stable


def input_specs(cfg: GateConfig) -> list[tuple[str, int, bool, bool]]:
    """``(name, pin, active_high, pull_up)`` of every configured input (for docs and tests)."""
    return [(s.name, s.pin, s.active_high, s.pull_up) for s in _specs(cfg)]


def _specs(cfg: GateConfig) -> list[_Spec]:
    specs = [
        _Spec(
            "passage", cfg.passage_pin, cfg.passage_active_high, not cfg.passage_active_high, None
        ),
    ]
    if cfg.fire_alarm_pin is not None:
        # Start from "no alarm" so an alarm already present at boot is an edge.
        specs.append(
            _Spec(
                "fire_alarm",
                cfg.fire_alarm_pin,
                cfg.fire_alarm_active_high,
                cfg.fire_alarm_active_high,
                False,
            )
        )
    if cfg.exit_button_pin is not None:
        specs.append(_Spec("exit", cfg.exit_button_pin, False, True, None))
    if cfg.arm_feedback_pin is not None:
        specs.append(_Spec("arm", cfg.arm_feedback_pin, False, True, None))
    if cfg.staff_confirm_pin is not None:
        specs.append(_Spec("staff_confirm", cfg.staff_confirm_pin, False, True, None))
    if cfg.staff_refuse_pin is not None:
        specs.append(_Spec("staff_refuse", cfg.staff_refuse_pin, False, True, None))
    return specs


def _wire_mock(pin: Any, spec: _Spec) -> None:
    """On gpiozero's MockFactory, start each input at its normal level.

    A simulated gate is a correctly wired one: beam clear, fire-alarm contact
    closed, buttons released. Without this the pull-up alone would read as a
    cut fire-alarm wire (emergency). Tests and the simulator drive the pins
    from there with ``drive_high``/``drive_low``; real pins are left alone.
    """
    drive = getattr(pin, "drive_high" if not spec.active_high else "drive_low", None)
    if drive is not None and hasattr(pin, "clear_states"):
        drive()


class GateInputs(Closing):
    """The configured inputs as gpiozero ``InputDevice`` objects, polled by :meth:`poll`.

    Args:
        cfg: pins, polarities and ``debounce_ms``.
        pin_factory: the gpiozero factory (required, as for the outputs).

    Raises:
        GpioError: a pin is invalid or in use; devices built before the failure
            are released first.
        ValueError: ``pin_factory`` is None.
    """

    def __init__(self, cfg: GateConfig, pin_factory: Any) -> None:
        self._devices: dict[str, tuple[InputDevice, bool]] = {}
        self._debouncers: dict[str, Debouncer] = {}
        self._closed = False
        if pin_factory is None:
            raise ValueError("GateInputs needs an explicit pin factory (see make_pin_factory)")
        stable_s = cfg.debounce_ms / 1000.0
        try:
            for spec in _specs(cfg):
                device = InputDevice(spec.pin, pull_up=spec.pull_up, pin_factory=pin_factory)
                _wire_mock(device.pin, spec)
                self._devices[spec.name] = (device, spec.active_high)
                initial = spec.initial
                if initial is None:
                    initial = bool(device.pin.state) == spec.active_high
                self._debouncers[spec.name] = Debouncer(stable_s, initial)
        except Exception as exc:  # gpiozero and backend errors have no common base
            self.close()
            raise GpioError(f"cannot set up gate inputs: {exc}") from exc
        log.info("gate inputs ready: %s", ", ".join(f"{s.name} BCM {s.pin}" for s in _specs(cfg)))

    @property
    def names(self) -> tuple[str, ...]:
        """The configured inputs."""
        return tuple(self._devices)

    def poll(self, now: float) -> list[InputEdge]:
        """Sample every input once at time ``now``; returns the debounced changes."""
        edges: list[InputEdge] = []
        for name, (device, active_high) in self._devices.items():
            if self._closed:
                break
            level = bool(device.pin.state)
            changed = self._debouncers[name].sample(level == active_high, now)
            if changed is not None:
                edges.append(InputEdge(name, changed))
        return edges

    def state(self, name: str) -> bool:
        """The debounced logical state of input ``name`` (True = active)."""
        return self._debouncers[name].state

    def read_raw(self) -> dict[str, bool]:
        """Each input's current logical level, undebounced (for the self-test)."""
        return {n: bool(d.pin.state) == ah for n, (d, ah) in self._devices.items()}

    def next_deadline(self, after: float = float("-inf")) -> float | None:
        """The earliest time later than ``after`` a pending change could be confirmed."""
        times = [t for d in self._debouncers.values() if (t := d.next_deadline(after)) is not None]
        return min(times) if times else None

    def close(self) -> None:
        """Release the pins. Idempotent and safe after a failed constructor."""
        if self._closed:
            return
        self._closed = True
        for device, _ in self._devices.values():
            try:
                device.close()
            except Exception:
                log.exception("gate: could not release an input")
        self._devices.clear()

