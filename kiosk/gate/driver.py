"""The gate's thin shell: state machine + GPIO outputs + sampled inputs + anti-passback.

:class:`GateDriver` feeds input edges and decisions into the pure
:class:`~kiosk.gate.machine.GateMachine`, writes what the machine wants to the
GPIO outputs, and reports every observable change through ``on_event`` (the
scenario log and the demo listen there). Counting is left to the caller, who
owns the count store: methods return the names of the counters to bump.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kiosk.decision import Decision, Reason
from kiosk.gate.inputs import GateInputs, InputEdge
from kiosk.gate.machine import GateMachine, Mode, ScreenRequest
from kiosk.gate.outputs import GateOutputs, OutputState
from kiosk.gate.passback import PassbackGuard

log = logging.getLogger(__name__)

EventSink = Callable[[str, dict[str, Any]], None]
_COLORS = ("green", "red", "amber")
_PASSAGES = ("passage", "tailgate", "unauthorised_passage", "emergency_passage", "exit_passage")


def _no_event(event: str, fields: dict[str, Any]) -> None:
    """Default sink: events are not reported anywhere."""


class GateDriver:
    """Runs the machine against real (or mock) pins. All methods run on the loop's thread.

    Args:
        machine: the state machine (already configured).
        outputs: relay, LEDs, buzzer.
        inputs: the sampled inputs, or None for a gate without any.
        passback: the anti-passback store, or None to disable it.
        on_event: receives ``(event, fields)`` for relay, led, buzzer, passage,
            tailgate, mode and fault changes; fields never contain personal data.
    """

    def __init__(
        self,
        machine: GateMachine,
        outputs: GateOutputs,
        inputs: GateInputs | None = None,
        passback: PassbackGuard | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        self.machine = machine
        self.outputs = outputs
        self.inputs = inputs
        self.passback = passback
        self.on_event: EventSink = on_event or _no_event
        self._applied = OutputState()
        self._staff_presses: list[bool] = []
        self._mode = Mode.NORMAL
        # An admission checked but not yet written: written by sync() right after
        # the relay is switched, so the SQLite commit is not between frame and relay.
        self._admitted: tuple[bytes, float] | None = None
        self._screen: ScreenRequest | None = None

    def start(self, now: float) -> list[str]:
        """Safe state at start: everything off, idle screen. Returns counters to bump."""
        self.machine.start(now)
        self.outputs.apply(OutputState())
        self._applied = OutputState()
        return self.tick(now)

    def safe(self) -> None:
        """Relay and LEDs off at once (after an exception in the loop). Never raises."""
        try:
            self.outputs.apply(OutputState())
            self._applied = OutputState()
        except Exception:
            log.exception("could not switch the gate outputs to their safe state")

    def tick(self, now: float) -> list[str]:
        """Sample the inputs, run due timeouts, apply outputs. Returns counters to bump."""
        if self.inputs is not None:
            for edge in self.inputs.poll(now):
                self._edge(edge, now)
        self.machine.tick(now)
        return self.sync()

    def next_deadline(self, after: float = float("-inf")) -> float | None:
        """When, later than ``after``, a tick would change something (machine or debounce)."""
        times = [self.machine.next_deadline(after)]
        if self.inputs is not None:
            times.append(self.inputs.next_deadline(after))
        present = [t for t in times if t is not None]
        return min(present) if present else None

    def admit(self, decision: Decision, now: float, wall_s: float) -> Decision:
        """Act on a verifier decision; returns the decision as finally taken.

        An allow for a credential admitted here within the anti-passback window
        becomes a deny with :attr:`Reason.ALREADY_ADMITTED`. The check and the
        mark of a new admission are in memory (:meth:`PassbackGuard.seen`,
        :meth:`PassbackGuard.mark`); the outputs change on the next :meth:`sync`
        (call it right after), which writes the admission to disk only once the
        relay has been switched: the disk write does not delay the gate.
        """
        self.machine.begin_verify(now)
        key = None
        guard = self.passback
        if decision.allowed and decision.credential_id and guard is not None and guard.enabled:
            key = guard.key(decision.credential_id)
            if guard.seen(key, wall_s):
                decision = Decision(
                    allowed=False,
                    reason=Reason.ALREADY_ADMITTED,
                    input=decision.input,
                    cert_type=decision.cert_type,
                    detail="anti-passback window",
                )
                key = None
        granted = self.machine.on_decision(decision, now, key)
        if granted and key is not None and guard is not None:
            self._write_admission()  # an earlier one not yet synced goes first
            guard.mark(key, wall_s)  # a second scan before the disk write is refused too
            self._admitted = (key, wall_s)
        return decision

    def set_status(self, *, degraded: bool, scanner_fault: bool, now: float) -> list[str]:
        """Degraded verification and scanner fault flags; returns counters to bump."""
        self.machine.set_degraded(degraded, now)
        self.machine.set_scanner_fault(scanner_fault, now)
        return self.sync()

    def take_screen(self) -> ScreenRequest | None:
        """The screen to show if it changed since the last call, else None."""
        screen = self.machine.screen
        if screen == self._screen:
            return None
        self._screen = screen
        return screen

    def _edge(self, edge: InputEdge, now: float) -> None:
        if edge.name == "passage":
            if edge.active:
                self.machine.on_passage(now)
        elif edge.name == "fire_alarm":
            self.machine.on_fire_alarm(edge.active, now)
        elif edge.name == "exit":
            if edge.active:
                self.machine.on_exit_request(now)
        elif edge.name == "arm" and edge.active:
            self.machine.on_arm_moved(now)
        elif edge.name in ("staff_confirm", "staff_refuse") and edge.active:
            # Not the machine's business: the scan loop hands it to the manual KTP check.
            self._staff_presses.append(edge.name == "staff_confirm")

    def take_staff_presses(self) -> list[bool]:
        """Staff key presses since the last call: True = confirm, False = refuse."""
        presses, self._staff_presses = self._staff_presses, []
        return presses

    def sync(self) -> list[str]:
        """Write wanted outputs, run effects, report changes; returns counters to bump."""
        want = self.machine.outputs
        if want != self._applied:
            self.outputs.apply(want, held=self.machine.mode is Mode.EMERGENCY)
            if want.relay != self._applied.relay:
                self.on_event("relay", {"state": "on" if want.relay else "off"})
            for color in _COLORS:
                if getattr(want, color) != getattr(self._applied, color):
                    self.on_event("led", {"color": color, "state": _onoff(getattr(want, color))})
            self._applied = want
        self._write_admission()
        counters: list[str] = []
        for effect in self.machine.take_effects():
            if effect.kind == "count":
                counters.append(effect.name)
                if effect.name in _PASSAGES:
                    self.on_event("passage", {"kind": effect.name})
                if effect.name == "tailgate":
                    self.on_event("tailgate", {})
                    log.warning("tailgate: a second passage on one grant")
            elif effect.kind == "beep":
                self.outputs.beep(effect.name)
                self.on_event("buzzer", {"pattern": effect.name})
            elif effect.kind == "release" and effect.token and self.passback is not None:
                self.passback.release(effect.token)
        mode = self.machine.mode
        if mode != self._mode:
            self._mode = mode
            self.on_event("mode", {"mode": str(mode)})
        return counters


    def _write_admission(self) -> None:
        """Record the pending anti-passback admission (the check itself came first)."""
        pending, self._admitted = self._admitted, None
        if pending is not None and self.passback is not None:
            self.passback.admit(*pending)


def _onoff(value: bool) -> str:
    return "on" if value else "off"
