"""The turnstile: state machine, GPIO outputs and sampled inputs, anti-passback.

See :mod:`kiosk.gate.machine` (pure behaviour), :mod:`kiosk.gate.outputs`,
:mod:`kiosk.gate.inputs`, :mod:`kiosk.gate.passback` and the shell that joins
them, :mod:`kiosk.gate.driver`.
"""

from kiosk.errors import GpioError, GpioUnavailable
from kiosk.gate.driver import GateDriver
from kiosk.gate.inputs import GateInputs
from kiosk.gate.machine import GateMachine, MachineConfig, Mode, Phase, ScreenRequest
from kiosk.gate.outputs import GateOutputs, OutputState
from kiosk.gate.passback import PassbackGuard
from kiosk.gate.pins import make_pin_factory

__all__ = [
    "GateDriver",
    "GateInputs",
    "GateMachine",
    "GateOutputs",
    "GpioError",
    "GpioUnavailable",
    "MachineConfig",
    "Mode",
    "OutputState",
    "PassbackGuard",
    "Phase",
    "ScreenRequest",
    "make_pin_factory",
]
