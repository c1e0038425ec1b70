"""The turnstile's outputs: the relay that releases the arm, three LEDs and a buzzer.

All are gpiozero output devices built on the pin factory passed in (see
:mod:`kiosk.gate.pins`), so the same code drives a Pi or gpiozero's
``MockFactory``, whose pins record every level change with a timestamp.

*When* the relay is on is decided by :class:`kiosk.gate.machine.GateMachine`
per tick (deterministic, and on a virtual clock in simulation); this module
only writes the levels it is given. Safety rules, enforced here rather than
trusted to the configuration or the loop:

* every output starts inactive (``initial_value=False``) and is switched off
  again before it is released on :meth:`GateOutputs.close`;
* a relay that stays on longer than its hard maximum
  (:data:`~kiosk.config.schema.RELAY_PULSE_HARD_MAX_MS` in pulse mode,
  :data:`~kiosk.config.schema.RELAY_HOLD_HARD_MAX_S` in hold mode), because the
  loop stalled, is cut by the ``kiosk-relay-guard`` thread in real time. Only
  an emergency (fire alarm) holds the relay without a limit;
* a killed process cannot switch anything off: the relay board's input must
  be pulled to its inactive level in hardware (``hardware/pinmap.md``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpiozero import LED, Buzzer, DigitalOutputDevice

from kiosk.closing import Closing
from kiosk.config.schema import RELAY_HOLD_HARD_MAX_S, RELAY_PULSE_HARD_MAX_MS, GateConfig
from kiosk.errors import ConfigError, GpioError

log = logging.getLogger(__name__)

# Buzzer patterns: (on seconds, off seconds, repetitions).
BEEPS: dict[str, tuple[float, float, int]] = {
    "allow": (0.08, 0.0, 1),
    "deny": (0.12, 0.08, 3),
    "alarm": (0.4, 0.2, 5),
    "test": (0.2, 0.0, 1),
}


def effective_pulse_s(relay_pulse_ms: int) -> float:
    """The relay pulse length in seconds: ``relay_pulse_ms`` capped at the hard maximum.

    Raises:
        ConfigError: ``relay_pulse_ms`` is zero or negative (the loader rejects
            this, but a hand-built :class:`GateConfig` is not validated).
    """
    if relay_pulse_ms <= 0:
        raise ConfigError(f"gate.relay_pulse_ms: {relay_pulse_ms} must be positive")
    if relay_pulse_ms > RELAY_PULSE_HARD_MAX_MS:
        log.warning(
            "gate.relay_pulse_ms %d is above the hard limit; pulses last %d ms",
            relay_pulse_ms,
            RELAY_PULSE_HARD_MAX_MS,
        )
        relay_pulse_ms = RELAY_PULSE_HARD_MAX_MS
    return relay_pulse_ms / 1000.0


@dataclass(frozen=True, slots=True)
class OutputState:
    """Logical output levels (True = active), as the state machine wants them."""

    relay: bool = False
    green: bool = False
    red: bool = False
    amber: bool = False


class _RelayGuard:
    """A named thread that cuts the relay if it stays on past its limit (real time)."""

    def __init__(self, cut: Callable[[], None]) -> None:
        self._cut = cut
        self._deadline: float | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kiosk-relay-guard", daemon=True)
        self._thread.start()

    def arm(self, limit_s: float) -> None:
        if self._deadline is None:  # keep the first deadline: a restart does not extend it
            self._deadline = time.monotonic() + limit_s
            self._wake.set()

    def disarm(self) -> None:
        self._deadline = None
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            deadline = self._deadline
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._wake.wait(timeout)
            self._wake.clear()
            deadline = self._deadline
            if not self._stop.is_set() and deadline is not None and time.monotonic() >= deadline:
                self._deadline = None
                log.error("relay on beyond its hard maximum (loop stalled?): cutting it")
                self._cut()


class GateOutputs(Closing):
    """Relay, green/red/amber LEDs and an optional buzzer, driven from one place.

    Thread-safe (the relay guard and the loop may both switch the relay).
    Also a context manager that closes on exit.

    Args:
        cfg: pins (BCM numbers), polarities, relay mode and pulse length.
        pin_factory: a gpiozero ``Factory`` from
            :func:`kiosk.gate.pins.make_pin_factory`; required, because falling
            back to gpiozero's process-wide default would hide which hardware
            is driven.

    Raises:
        GpioError: a pin is invalid or already in use. Outputs created before
            the failure are switched off and released first.
        ConfigError: the relay pulse length is not positive.
        ValueError: ``pin_factory`` is None.
    """

    def __init__(self, cfg: GateConfig, pin_factory: Any) -> None:
        # Set before anything can fail, so close() works on a half-built object.
        self._lock = threading.Lock()
        self._closed = False
        self._devices: dict[str, DigitalOutputDevice] = {}
        self._guard: _RelayGuard | None = None
        if pin_factory is None:
            raise ValueError("GateOutputs needs an explicit pin factory (see make_pin_factory)")
        self._pulse_s = effective_pulse_s(cfg.relay_pulse_ms)
        self._limit_s = (
            RELAY_PULSE_HARD_MAX_MS / 1000.0
            if cfg.relay_mode == "pulse"
            else float(RELAY_HOLD_HARD_MAX_S)
        )
        pins: list[tuple[str, int, bool, type[DigitalOutputDevice]]] = [
            ("relay", cfg.relay_pin, cfg.relay_active_high, DigitalOutputDevice),
            ("green", cfg.green_led_pin, cfg.led_active_high, LED),
            ("red", cfg.red_led_pin, cfg.led_active_high, LED),
            ("amber", cfg.amber_led_pin, cfg.led_active_high, LED),
        ]
        if cfg.buzzer_pin is not None:
            pins.append(("buzzer", cfg.buzzer_pin, cfg.buzzer_active_high, Buzzer))
        try:
            for name, pin, active_high, kind in pins:
                self._devices[name] = kind(
                    pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
                )
        except Exception as exc:  # gpiozero and backend errors have no common base
            self.close()
            described = ", ".join(f"{n} BCM {p}" for n, p, _, _ in pins)
            raise GpioError(f"cannot set up gate outputs ({described}): {exc}") from exc
        self._guard = _RelayGuard(self._cut_relay)
        log.info(
            "gate outputs ready: relay BCM %d (active_%s, %s), LEDs BCM %d/%d/%d, buzzer %s",
            cfg.relay_pin,
            "high" if cfg.relay_active_high else "low",
            cfg.relay_mode,
            cfg.green_led_pin,
            cfg.red_led_pin,
            cfg.amber_led_pin,
            cfg.buzzer_pin if cfg.buzzer_pin is not None else "none",
        )

    @property
    def pulse_s(self) -> float:
        """The relay pulse length actually used, in seconds (after the hard cap)."""
        return self._pulse_s

    @property
    def has_buzzer(self) -> bool:
        """True when a buzzer pin is configured."""
        return "buzzer" in self._devices

    def apply(self, state: OutputState, *, held: bool = False) -> None:
        """Set relay and LEDs to ``state``.

        Args:
            state: the wanted logical levels.
            held: True in emergency: the relay may stay on without a limit.
                Otherwise the relay guard cuts it after its hard maximum.

        Raises:
            GpioError: the outputs are closed.
        """
        with self._lock:
            devices = self._live()
            for name in ("relay", "green", "red", "amber"):
                device = devices[name]
                want = getattr(state, name)
                if bool(device.is_active) != want:
                    device.on() if want else device.off()
        assert self._guard is not None
        if state.relay and not held:
            self._guard.arm(self._limit_s)
        else:
            self._guard.disarm()

    def beep(self, pattern: str) -> None:
        """Sound buzzer ``pattern`` (a key of :data:`BEEPS`) in the background.

        Does nothing without a buzzer. Raises KeyError for an unknown pattern.
        """
        on_s, off_s, n = BEEPS[pattern]
        with self._lock:
            buzzer = self._live().get("buzzer")
            if buzzer is not None:
                buzzer.blink(on_time=on_s, off_time=off_s, n=n, background=True)

    def snapshot(self) -> dict[str, bool]:
        """Logical states ``{"relay", "green", "red", "amber"}``; all False once closed."""
        names = ("relay", "green", "red", "amber")
        with self._lock:
            if self._closed:
                return dict.fromkeys(names, False)
            return {n: bool(self._devices[n].is_active) for n in names}

    def close(self) -> None:
        """Switch every output off (relay first), then release the pins.

        Idempotent, and safe after a failed ``__init__``. Errors from one
        device are logged and do not stop the others from being switched off.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            devices = list(self._devices.values())  # relay first: it is the one that matters
            for device in devices:
                try:
                    device.off()
                except Exception:  # keep going: the other outputs must still go off
                    log.exception("gate: could not switch an output off during close")
            for device in devices:
                try:
                    device.close()
                except Exception:
                    log.exception("gate: could not release an output during close")
            self._devices.clear()
        if self._guard is not None:
            self._guard.stop()
        log.info("gate outputs closed")


    def _cut_relay(self) -> None:
        with self._lock:
            relay = self._devices.get("relay")
            if relay is not None and not self._closed:
                relay.off()

    def _live(self) -> dict[str, DigitalOutputDevice]:
        """The devices; caller holds the lock."""
        if self._closed or "relay" not in self._devices:
            raise GpioError("gate outputs are closed")
        return self._devices
