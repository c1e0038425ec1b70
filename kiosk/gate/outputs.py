"""The turnstile's outputs: the relay that releases the arm, and two result LEDs.

All three are gpiozero output devices built on the pin factory passed in (see
:mod:`kiosk.gate.pins`), so the same code drives a Pi or gpiozero's
``MockFactory``, whose pins record every level change with a timestamp.

Safety rules, enforced here rather than trusted to the configuration:

* every output starts inactive (``initial_value=False``) and is switched off
  again before it is released on :meth:`GateOutputs.close`;
* a relay pulse never lasts longer than
  :data:`kiosk.config.schema.RELAY_PULSE_HARD_MAX_MS`, whatever the config says;
* the pulse runs on gpiozero's blink thread, which waits on an ``Event``, so
  switching the relay off (deny, close) ends a pulse at once.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

from gpiozero import LED, DigitalOutputDevice

from kiosk.config.schema import RELAY_PULSE_HARD_MAX_MS, GateConfig
from kiosk.errors import ConfigError, GpioError

log = logging.getLogger(__name__)


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


class GateOutputs:
    """Relay plus green and red LEDs, driven from one place.

    Thread-safe: the scan loop may signal while another thread closes. Also a
    context manager that closes on exit.

    Args:
        cfg: pins (BCM numbers), polarities and the relay pulse length.
        pin_factory: a gpiozero ``Factory`` from
            :func:`kiosk.gate.pins.make_pin_factory`; required, because falling
            back to gpiozero's process-wide default would hide which hardware
            is driven.

    Raises:
        GpioError: a pin is invalid or already in use (by another device or by
            a duplicate pin in ``cfg``). Outputs created before the failure are
            switched off and released first, so nothing is left active.
        ConfigError: the relay pulse length is not positive.
        ValueError: ``pin_factory`` is None.
    """

    def __init__(self, cfg: GateConfig, pin_factory: Any) -> None:
        # Set before anything can fail, so close() works on a half-built object.
        self._lock = threading.Lock()
        self._closed = False
        self._relay: DigitalOutputDevice | None = None
        self._green: LED | None = None
        self._red: LED | None = None
        if pin_factory is None:
            raise ValueError("GateOutputs needs an explicit pin factory (see make_pin_factory)")
        self._pulse_s = effective_pulse_s(cfg.relay_pulse_ms)
        try:
            self._relay = DigitalOutputDevice(
                cfg.relay_pin,
                active_high=cfg.relay_active_high,
                initial_value=False,
                pin_factory=pin_factory,
            )
            self._green = LED(
                cfg.green_led_pin,
                active_high=cfg.led_active_high,
                initial_value=False,
                pin_factory=pin_factory,
            )
            self._red = LED(
                cfg.red_led_pin,
                active_high=cfg.led_active_high,
                initial_value=False,
                pin_factory=pin_factory,
            )
        except Exception as exc:  # gpiozero and backend errors have no common base
            self.close()
            raise GpioError(
                f"cannot set up gate outputs (relay BCM {cfg.relay_pin}, green LED BCM "
                f"{cfg.green_led_pin}, red LED BCM {cfg.red_led_pin}): {exc}"
            ) from exc
        log.info(
            "gate outputs ready: relay BCM %d (active_%s, pulse %d ms), LEDs BCM %d/%d",
            cfg.relay_pin,
            "high" if cfg.relay_active_high else "low",
            round(self._pulse_s * 1000),
            cfg.green_led_pin,
            cfg.red_led_pin,
        )

    @property
    def pulse_s(self) -> float:
        """The relay pulse length actually used, in seconds (after the hard cap)."""
        return self._pulse_s

    def signal_allowed(self) -> None:
        """Green on, red off, and pulse the relay; returns at once.

        The relay is active for :attr:`pulse_s` seconds, then off. Calling this
        during a pulse restarts the pulse (the next traveller gets a full one).

        Raises:
            GpioError: the outputs are closed.
        """
        with self._lock:
            relay, green, red = self._devices()
            red.off()
            green.on()
            # n=1 with off_time=0: one pulse that ends with the relay off. The
            # blink thread waits on an Event, so relay.off() or close() cuts it.
            relay.blink(on_time=self._pulse_s, off_time=0, n=1, background=True)
        log.debug("gate: allowed, relay pulse %.3f s", self._pulse_s)

    def signal_denied(self) -> None:
        """Red on, green off. A relay pulse in progress is left to finish on its own.

        The pulse belongs to the previous, admitted traveller: a deny for the
        next person in the queue must not close the arm on them.

        Raises:
            GpioError: the outputs are closed.
        """
        with self._lock:
            _relay, green, red = self._devices()
            green.off()
            red.on()
        log.debug("gate: denied")

    def signal_idle(self) -> None:
        """Both LEDs off. A relay pulse in progress is left to finish on its own.

        Raises:
            GpioError: the outputs are closed.
        """
        with self._lock:
            _, green, red = self._devices()
            green.off()
            red.off()

    def snapshot(self) -> dict[str, bool]:
        """Logical states ``{"relay", "green", "red"}`` (True = active); all False once closed."""
        with self._lock:
            if self._closed:
                return {"relay": False, "green": False, "red": False}
            relay, green, red = self._devices()
            return {
                "relay": bool(relay.is_active),
                "green": bool(green.is_active),
                "red": bool(red.is_active),
            }

    def close(self) -> None:
        """Switch relay and LEDs off, then release their pins.

        Idempotent, and safe after a failed ``__init__``. Errors from one
        device are logged and do not stop the others from being switched off.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            devices = [d for d in (self._relay, self._green, self._red) if d is not None]
            # All outputs off first (relay first: it is the one that matters),
            # then release; off() also stops a running pulse thread.
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
            self._relay = self._green = self._red = None
        log.info("gate outputs closed")

    def __enter__(self) -> GateOutputs:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _devices(self) -> tuple[DigitalOutputDevice, LED, LED]:
        """The three devices; caller holds the lock."""
        if self._closed or self._relay is None or self._green is None or self._red is None:
            raise GpioError("gate outputs are closed")
        return self._relay, self._green, self._red
