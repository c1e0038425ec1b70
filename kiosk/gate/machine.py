"""The gate's state machine: pure, single-threaded, the clock passed into every call.

It decides *what* the relay, LEDs, buzzer and screen should be doing; the shell
(:class:`kiosk.app.ScanLoop`) writes those wishes to GPIO and the screen and
turns the machine's :class:`Effect` list into counts. Nothing here sleeps,
starts a thread or touches hardware, so a test or the scenario simulator can
run hours of gate time in milliseconds by passing a virtual clock, and the
device runs the very same code on ``time.monotonic``.

States (see :attr:`GateMachine.phase`)::

    idle ──scan──► verifying ──allow──► open (grant waits for a passage) ──► idle
                        └──deny──► denied (result shown for result_hold_s) ──► idle
    any ──fire alarm──► emergency (relay held, free passage) ──alarm clears──► idle
    any ──remote emergency-on──► emergency ──emergency-off (and no fire alarm)──► idle

Timing is per tick: :meth:`GateMachine.tick` switches the relay off once the
pulse (or hold) has run out, so the pulse ends at the first tick at or after
its deadline. :meth:`GateMachine.next_deadline` tells a caller with a virtual
clock exactly when to tick next; on the device ticks come with every camera
frame, and :class:`kiosk.gate.outputs.GateOutputs` enforces the hard maximum
in real time as a backstop should the loop ever stall.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

from kiosk.config.schema import RELAY_HOLD_HARD_MAX_S, GateConfig
from kiosk.decision import Decision
from kiosk.gate.outputs import OutputState, effective_pulse_s

log = logging.getLogger(__name__)


class Phase(enum.StrEnum):
    """What the gate is doing, for the log and the screen."""

    IDLE = "idle"
    VERIFYING = "verifying"
    OPEN = "open"
    DENIED = "denied"
    EMERGENCY = "emergency"


class Mode(enum.StrEnum):
    """The operating mode reported to the log and the dashboard."""

    NORMAL = "normal"
    EMERGENCY = "emergency"
    DEGRADED = "degraded"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class ScreenRequest:
    """Which screen to show. ``kind``: idle, decision, emergency, scanner_fault, tailgate."""

    kind: str
    decision: Decision | None = None


@dataclass(frozen=True, slots=True)
class Effect:
    """Something the shell must do once.

    ``kind`` is ``"count"`` (bump counter ``name``), ``"beep"`` (buzzer pattern
    ``name``: allow, deny, alarm) or ``"release"`` (an unused grant's
    anti-passback entry ``token`` may be forgotten).
    """

    kind: str
    name: str
    token: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class MachineConfig:
    """Timing of the machine, in seconds; build it with :meth:`from_gate`."""

    relay_mode: str = "pulse"
    pulse_s: float = 0.5
    passage_timeout_s: float = 10.0
    result_hold_s: float = 3.0
    arm_feedback_timeout_s: float | None = None

    @classmethod
    def from_gate(cls, cfg: GateConfig) -> MachineConfig:
        """Timing from ``[gate]``, with the pulse and the hold capped at their hard maxima."""
        return cls(
            relay_mode=cfg.relay_mode,
            pulse_s=effective_pulse_s(cfg.relay_pulse_ms),
            passage_timeout_s=min(cfg.passage_timeout_s, float(RELAY_HOLD_HARD_MAX_S)),
            result_hold_s=cfg.result_hold_s,
            arm_feedback_timeout_s=(
                cfg.arm_feedback_timeout_s if cfg.arm_feedback_pin is not None else None
            ),
        )


@dataclass(slots=True)
class _Grant:
    deadline: float
    token: bytes | None = field(repr=False)
    exit: bool = False  # opened by the exit button, not by a credential


class GateMachine:
    """The turnstile's behaviour. All times are monotonic seconds from the caller's clock.

    Call :meth:`start` once, then feed it scans, decisions and debounced input
    edges as they happen and :meth:`tick` regularly; after each call read
    :attr:`outputs` and :attr:`screen` and drain :meth:`take_effects`.
    """

    def __init__(self, cfg: MachineConfig) -> None:
        self._cfg = cfg
        self.outputs = OutputState()
        self.screen = ScreenRequest("idle")
        self._effects: list[Effect] = []
        self._grants: list[_Grant] = []
        self._relay_until: float | None = None
        self._result_until: float | None = None
        self._tailgate_until: float | None = None  # a consumed grant's cycle still open
        self._arm_due: float | None = None
        self._arm_fault = False
        self._emergency = False
        # Two independent sources: the wired fire alarm and an operator's signed
        # command. The gate stays open while either holds, so an operator can
        # never close a gate the fire panel holds open.
        self._fire_alarm = False
        self._remote_emergency = False
        self._verifying = False
        self._scanner_fault = False
        self._degraded = False

    # -- queries -------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        """The current state (emergency wins, then an open grant)."""
        if self._emergency:
            return Phase.EMERGENCY
        if self._verifying:
            return Phase.VERIFYING
        if self._grants:
            return Phase.OPEN
        if self._result_until is not None and self.outputs.red:
            return Phase.DENIED
        return Phase.IDLE

    @property
    def mode(self) -> Mode:
        """normal, emergency, fault (arm or scanner) or degraded (verification status)."""
        if self._emergency:
            return Mode.EMERGENCY
        if self._arm_fault or self._scanner_fault:
            return Mode.FAULT
        return Mode.DEGRADED if self._degraded else Mode.NORMAL

    @property
    def open_grants(self) -> int:
        """Grants waiting for their passage."""
        return len(self._grants)

    def next_deadline(self, after: float = float("-inf")) -> float | None:
        """The earliest time later than ``after`` at which :meth:`tick` changes something."""
        # A result shown while a grant is open waits for the grant, not its own time.
        result = self._result_until if not self._grants else None
        times = [
            t
            for t in (self._relay_until, result, self._tailgate_until, self._arm_due)
            if t is not None and t > after
        ]
        times += [g.deadline for g in self._grants if g.deadline > after]
        return min(times) if times else None

    def take_effects(self) -> list[Effect]:
        """The effects produced since the last call, oldest first."""
        effects, self._effects = self._effects, []
        return effects

    # -- events --------------------------------------------------------------
    def start(self, now: float) -> None:
        """Everything off and the idle screen: the safe state at start."""
        self.outputs = OutputState(amber=self._degraded)
        self.screen = ScreenRequest("idle")
        log.debug("gate machine started at %.3f", now)

    def begin_verify(self, now: float) -> bool:
        """A scan arrived; returns False in emergency (the scan cannot change anything)."""
        if self._emergency:
            return False
        self._verifying = True
        return True

    def on_decision(self, decision: Decision, now: float, token: bytes | None = None) -> bool:
        """Act on a verifier decision; returns True if a grant was opened.

        ``token`` identifies the credential for anti-passback; it comes back in a
        ``release`` effect if the grant expires unused. In emergency the decision
        changes nothing: the relay is already held open.
        """
        self._verifying = False
        if self._emergency:
            return False
        self.screen = ScreenRequest("decision", decision)
        self._result_until = now + self._cfg.result_hold_s
        if not decision.allowed:
            # A running pulse or open grant belongs to the traveller admitted just
            # before: a deny for the next person must not close the arm on them.
            self._set(green=False, red=True)
            self._effect("beep", "deny")
            return False
        self._grants.append(_Grant(now + self._cfg.passage_timeout_s, token))
        self._relay_on(now)
        self._set(green=True, red=False)
        self._effect("beep", "allow")
        return True

    def on_exit_request(self, now: float) -> None:
        """The exit button: release the arm once for someone leaving (no decision)."""
        if self._emergency:
            return
        self._grants.append(_Grant(now + self._cfg.passage_timeout_s, None, exit=True))
        self._relay_on(now)
        self._effect("count", "exit_request")

    def on_passage(self, now: float) -> None:
        """The passage sensor saw one person pass (a debounced beam-break)."""
        if self._emergency:
            self._effect("count", "emergency_passage")
            return
        if self._grants:
            grant = self._grants.pop(0)
            # Someone leaving through an exit grant is not an entry.
            self._effect("count", "exit_passage" if grant.exit else "passage")
            # The consumed grant's cycle stays open until its passage timeout: a
            # second body in it is a tailgater riding on the same grant.
            self._tailgate_until = grant.deadline
            if self._cfg.relay_mode == "hold" and not self._grants:
                self._relay_off()
            return
        if self._tailgate_until is not None and now <= self._tailgate_until:
            self._effect("count", "tailgate")
        else:
            self._effect("count", "unauthorised_passage")
        self._effect("beep", "alarm")
        self.screen = ScreenRequest("tailgate")
        self._set(green=False, red=True)
        self._result_until = now + self._cfg.result_hold_s

    def on_fire_alarm(self, active: bool, now: float) -> None:
        """Enter (``active``) or leave emergency; only the input clearing ends it."""
        self._fire_alarm = active
        self._apply_emergency(now)

    def set_remote_emergency(self, active: bool, now: float) -> None:
        """An operator's signed ``emergency-on``/``-off``: the gate's second emergency source.

        Releasing it ends the emergency only if the fire alarm input is clear.
        """
        self._remote_emergency = active
        self._apply_emergency(now)

    def on_remote_open(self, now: float) -> bool:
        """An operator's signed ``open-once``: one grant, as for an allowed credential.

        Returns False in emergency, where the gate is already open. The passage
        that follows is counted as an entry; the grant itself as ``remote_open``.
        """
        if self._emergency:
            return False
        self._grants.append(_Grant(now + self._cfg.passage_timeout_s, None))
        self._relay_on(now)
        self._set(green=True, red=False)
        self._effect("count", "remote_open")
        return True

    def _apply_emergency(self, now: float) -> None:
        active = self._fire_alarm or self._remote_emergency
        if active == self._emergency:
            return
        self._emergency = active
        if active:
            # Open grants end here; their anti-passback entries stay (the holders
            # most likely walked through the open gate).
            self._grants.clear()
            self._result_until = self._tailgate_until = self._arm_due = None
            self._verifying = False
            self._relay_until = None  # held: no pulse end while the emergency lasts
            self.outputs = OutputState(relay=True, green=True, red=False, amber=True)
            self.screen = ScreenRequest("emergency")
            self._effect("count", "emergency_open")
            self._effect("beep", "alarm")
            log.warning("emergency (%s): gate held open",
                        "fire alarm" if self._fire_alarm else "remote command")
        else:
            self.outputs = OutputState(amber=self._degraded)
            self.screen = ScreenRequest("scanner_fault" if self._scanner_fault else "idle")
            self._effect("count", "emergency_clear")
            log.warning("emergency cleared: gate back to normal")

    def on_arm_moved(self, now: float) -> None:
        """The arm-position switch closed: the turnstile really turned."""
        self._arm_due = None
        if self._arm_fault:
            self._arm_fault = False
            self._set(amber=self._degraded)

    def set_scanner_fault(self, fault: bool, now: float) -> None:
        """The camera stopped (or restarted) delivering frames."""
        if fault == self._scanner_fault:
            return
        self._scanner_fault = fault
        if fault:
            self._effect("count", "fault.scanner")
        if not self._emergency and not self._grants and self._result_until is None:
            self.screen = ScreenRequest("scanner_fault" if fault else "idle")

    def set_degraded(self, degraded: bool, now: float) -> None:
        """Verification works but with stale trust data or an unsynchronised clock."""
        self._degraded = degraded
        if not self._emergency:
            self._set(amber=degraded or self._arm_fault)

    def tick(self, now: float) -> None:
        """Apply every deadline that has passed: pulse end, unused grants, result expiry."""
        if self._relay_until is not None and now >= self._relay_until:
            self._relay_off()
        expired = [g for g in self._grants if now >= g.deadline]
        for grant in expired:
            self._grants.remove(grant)
            self._effect("count", "unused_grant")
            self._effect("release", "unused_grant", grant.token)
        if expired and not self._grants and self.outputs.relay and not self._emergency:
            self._relay_off()
        if self._arm_due is not None and now >= self._arm_due:
            self._arm_due = None
            self._arm_fault = True
            self._set(amber=True)
            self._effect("count", "fault.arm")
            log.warning("arm did not move after the relay was energised")
        if self._tailgate_until is not None and now >= self._tailgate_until:
            self._tailgate_until = None
        if self._result_until is not None and now >= self._result_until and not self._grants:
            self._result_until = None
            self._set(green=False, red=False)
            self.screen = ScreenRequest("scanner_fault" if self._scanner_fault else "idle")

    # -- helpers -------------------------------------------------------------
    def _relay_on(self, now: float) -> None:
        if self._cfg.relay_mode == "hold":
            self._relay_until = now + self._cfg.passage_timeout_s
        else:
            self._relay_until = now + self._cfg.pulse_s
        if self._cfg.arm_feedback_timeout_s is not None:
            self._arm_due = now + self._cfg.arm_feedback_timeout_s
        self._set(relay=True)

    def _relay_off(self) -> None:
        self._relay_until = None
        self._set(relay=False)

    def _set(self, **levels: bool) -> None:
        current = {
            "relay": self.outputs.relay,
            "green": self.outputs.green,
            "red": self.outputs.red,
            "amber": self.outputs.amber,
        }
        current.update(levels)
        self.outputs = OutputState(**current)

    def _effect(self, kind: str, name: str, token: bytes | None = None) -> None:
        self._effects.append(Effect(kind, name, token))
