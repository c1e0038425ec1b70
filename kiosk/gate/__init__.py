"""Turnstile outputs on GPIO: relay pulse and result LEDs (see :mod:`kiosk.gate.outputs`)."""

from kiosk.errors import GpioError, GpioUnavailable
from kiosk.gate.outputs import GateOutputs
from kiosk.gate.pins import make_pin_factory

__all__ = ["GateOutputs", "GpioError", "GpioUnavailable", "make_pin_factory"]
