"""What a verified command does to the gate, over the gate machine (the loop's thread)."""

from __future__ import annotations

from collections.abc import Callable

from kiosk.gate import GateMachine

__all__ = ["MachineActions"]


class MachineActions:
    """:class:`kiosk.remote.runner.GateActions` for a gate machine and the service around it.

    ``reload``, ``restart`` and ``diagnostics`` are the service's own callables
    (trust reload, a clean stop with a restart status, the non-actuating checks'
    report: :class:`kiosk.remote.diagnostics.GateDiagnostics`, given the command's id).
    """

    def __init__(
        self,
        machine: GateMachine,
        monotonic: Callable[[], float],
        *,
        reload: Callable[[], None],
        restart: Callable[[], None],
        diagnostics: Callable[[str], None],
    ) -> None:
        self._machine = machine
        self._monotonic = monotonic
        self._reload = reload
        self._restart = restart
        self._diagnostics = diagnostics

    def open_once(self) -> bool:
        """One grant, as for an allowed credential (False in emergency)."""
        return self._machine.on_remote_open(self._monotonic())

    def set_emergency(self, active: bool) -> None:
        """The remote emergency source on or off (the fire alarm input stays in charge)."""
        self._machine.set_remote_emergency(active, self._monotonic())

    def reload(self) -> None:
        """Re-read trust material now."""
        self._reload()

    def restart(self) -> None:
        """Stop the service cleanly so systemd starts it again."""
        self._restart()

    def diagnostics(self, command_id: str) -> None:
        """Report the gate's checks (camera fps, clock, broker, trust and list ages) now."""
        self._diagnostics(command_id)
