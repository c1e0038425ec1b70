"""Pin factories for the gate outputs, and the gate's GPIO errors.

Hardware is passed in, never created at import: :func:`make_pin_factory`
builds the factory once at start and the caller hands it to
:class:`kiosk.gate.outputs.GateOutputs`. gpiozero's process-wide
``Device.pin_factory`` global is never set or read here, so tests and the
daemon can hold independent factories side by side.
"""

from __future__ import annotations

import logging
import os
from importlib import import_module
from typing import Any

from kiosk.errors import GpioUnavailable

log = logging.getLogger(__name__)

# gpiozero's own preference order on a Pi, minus the two we do not want on a
# turnstile: pigpio needs a daemon (one more thing to fail at boot) and the
# pure-Python "native" factory is a deprecated fallback that pokes registers.
_NATIVE_FACTORIES: tuple[tuple[str, str], ...] = (
    ("lgpio", "gpiozero.pins.lgpio:LGPIOFactory"),
    ("rpigpio", "gpiozero.pins.rpigpio:RPiGPIOFactory"),
)

# Honoured like gpiozero does, so a technician can force a backend on site.
_FACTORY_ENV = "GPIOZERO_PIN_FACTORY"


def make_pin_factory(kind: str) -> Any:
    """Build the gpiozero pin factory named by ``gate.pin_factory``.

    Args:
        kind: ``"mock"`` for a fresh :class:`gpiozero.pins.mock.MockFactory`
            (simulated pins that record their state history), or ``"native"``
            for the real Pi GPIO: lgpio first, then RPi.GPIO. If the environment
            variable ``GPIOZERO_PIN_FACTORY`` is set, that gpiozero factory
            name is used instead (e.g. ``lgpio``).

    Returns:
        A ``gpiozero.Factory``. The caller owns it and should ``close()`` it at
        exit, after the devices built on it.

    Raises:
        GpioUnavailable: ``native`` was asked for but no backend could open
            the GPIO chip here; the message lists each backend's failure.
        ValueError: ``kind`` is neither ``"mock"`` nor ``"native"``.
    """
    if kind == "mock":
        from gpiozero.pins.mock import MockFactory

        log.info("GPIO: using simulated pins (mock factory)")
        return MockFactory()
    if kind != "native":
        raise ValueError(f"unknown pin factory kind {kind!r}; expected 'native' or 'mock'")

    forced = os.environ.get(_FACTORY_ENV)
    candidates = _NATIVE_FACTORIES
    if forced:
        candidates = tuple(c for c in _NATIVE_FACTORIES if c[0] == forced.lower()) or (
            (forced, ""),
        )
    failures: list[str] = []
    for name, entry in candidates:
        try:
            factory = _load_factory(name, entry)
        except Exception as exc:  # any backend failure just means "try the next one"
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            log.debug("GPIO backend %s unavailable: %s", name, exc)
            continue
        log.info("GPIO: using the %s pin factory", name)
        return factory
    raise GpioUnavailable(
        "no GPIO available on this machine (gate.pin_factory = 'native'); "
        "on a Raspberry Pi install python3-lgpio and run as a user in the 'gpio' group, "
        "or set gate.pin_factory = 'mock' to simulate the gate. Tried: " + "; ".join(failures)
    )


def _load_factory(name: str, entry: str) -> Any:
    """Instantiate one gpiozero factory, by ``module:Class`` or by entry-point name."""
    if entry:
        module_name, class_name = entry.split(":", 1)
        return getattr(import_module(module_name), class_name)()
    from importlib.metadata import entry_points

    for ep in entry_points(group="gpiozero_pin_factories"):
        if ep.name.lower() == name.lower():
            return ep.load()()
    raise LookupError(f"gpiozero has no pin factory named {name!r}")
