"""The scan loop: frame → QR decode → one scan per code → verify → gate → screen → counts.

Owned by the main thread (see docs/architecture.md). It owns its inputs (the
camera, the KTP keypad: :mod:`kiosk.inputs`), the decoder, the verifiers, the
gate (state machine, outputs, sampled inputs, anti-passback store), the screen
and the count store's writer; relay pulses are timed by the state machine per
loop turn. Built by :func:`kiosk.app.build_app`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from kiosk.decision import MALFORMED_QR, Decision, InputKind, Reason
from kiosk.decode import Decoder, IdleThrottle, RepeatFilter
from kiosk.decode.progress import SeenNotRead
from kiosk.display import NullScreen, Screen
from kiosk.display.views import (
    DeviceStatus,
    hold_steady_view,
    nik_checking_view,
    nik_prompt_view,
    screen_name,
    status_from_health,
    view_for,
)
from kiosk.gate import GateDriver, Mode
from kiosk.inputs import (
    CameraSilent,
    CommandReceived,
    Event,
    FrameSeen,
    Input,
    NikAbandoned,
    NikPrompt,
    NikTyped,
)
from kiosk.nik.manual import outcome_of
from kiosk.nik.verifier import is_pending
from kiosk.nik.worker import NikCheck
from kiosk.remote.runner import CommandRunner
from kiosk.telemetry import CountStore, MqttPublisher
from kiosk.telemetry.refused import note_refused

_T = TypeVar("_T")
log = logging.getLogger(__name__)


class CredentialVerifier(Protocol):
    """Anything that turns a scanned text into a decision without raising."""

    def verify(self, text: str) -> Decision:
        """Decide on ``text``; never raises."""
        ...


@dataclass
class LoopStats:
    """Counters of the scan loop, for status reports and the demo summary."""

    frames: int = 0
    scans: int = 0
    allowed: int = 0
    denied: int = 0
    camera_timeouts: int = 0
    store_errors: int = 0


# Consecutive camera timeouts before the screen says "scanner out of order".
SCANNER_FAULT_AFTER = 3
# Events taken from one input per loop turn at most (a serial reader's 16 digits + ENTER fit).
MAX_EVENTS_PER_TURN = 64
# How often the verifier's health (trust list age, clock) is asked, in seconds.
HEALTH_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class Turn:
    """What one loop turn did, for the per-turn hook (e.g. a systemd watchdog).

    ``progress``: a frame arrived and was processed; ``camera_silent``: the
    camera delivered nothing in time this turn.
    """

    progress: bool
    camera_silent: bool


class ScanLoop:
    """Frame → QR decode → one scan per code → verify → gate machine → screen → counts.

    Every scanned text produces exactly one decision; nothing raised by the
    verifier or the count store stops the loop. Each turn (one frame) also
    *ticks* the gate: inputs are sampled and debounced, relay pulses and grant
    timeouts end, results return to idle (see :class:`kiosk.gate.GateDriver`).
    Any other exception switches the relay off before it propagates, so a
    crash never leaves the turnstile released. The loop does not sleep: the
    frame source paces it. Clocks are injected; the simulator passes a virtual one.

    What arrives from outside comes through :meth:`add_input` (the camera, the
    KTP keypad, ...; see :mod:`kiosk.inputs`). Args (beyond the parts): ``driver``
    is the gate (machine + outputs + inputs + anti-passback); ``wall_clock``
    (aware UTC: counts, anti-passback) and ``monotonic`` (seconds: pulses,
    timeouts, debouncing) are the clocks; ``nik_verifier`` decides typed NIKs
    (None: deny NIK_DISABLED); ``nik_check`` (when given) derives a typed NIK's
    status-list key off this thread so frames and gate inputs keep flowing;
    ``on_decision`` gets every final decision; ``on_event`` gets ``(event,
    fields)`` for decisions, screens, counts and gate events (fields never hold
    a name, NIK or payload); ``on_turn`` is called once at the end of every
    turn of :meth:`step` with a :class:`Turn`; ``throttle`` (None: decode every
    frame) skips the decode of still idle frames (:mod:`kiosk.decode.idle`);
    ``hold_steady`` (None: never) says when a code seen but not read for a
    moment puts "hold steady" on the idle screen (:mod:`kiosk.decode.progress`);
    it is shown only over the idle screen and taken down as soon as the code
    is read or gone, or another screen is due.
    """

    def __init__(
        self,
        *,
        decoder: Decoder,
        repeat: RepeatFilter,
        verifier: CredentialVerifier,
        driver: GateDriver,
        screen: Screen | NullScreen,
        store: CountStore,
        publisher: MqttPublisher | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        nik_verifier: CredentialVerifier | None = None,
        nik_check: NikCheck | None = None,
        on_decision: Callable[[Decision], None] | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        on_turn: Callable[[Turn], None] | None = None,
        throttle: IdleThrottle | None = None,
        hold_steady: SeenNotRead | None = None,
    ) -> None:
        self._decoder = decoder
        self.throttle = throttle
        self.hold_steady = hold_steady
        self._shown = "idle"  # the kind of the view the loop showed last
        self._repeat = repeat
        self._verifier = verifier
        self._nik_verifier = nik_verifier
        self._screen = screen
        self._store = store
        self._publisher = publisher
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._on_decision = on_decision
        self._emit = on_event or (lambda event, fields: None)
        self.on_turn = on_turn
        self.driver = driver
        if on_event is not None or publisher is not None:
            self.driver.on_event = self._driver_event
        # Public for status and tests: the background NIK check, when there is one.
        self.nik_check = nik_check
        # Operators' signed commands (kiosk.remote), when enabled: verified and run here.
        self.commands: CommandRunner | None = None
        #: Set when the loop ends on request (a ``restart`` command): the exit status.
        self.exit_status: int | None = None
        self._pacers: list[Input] = []  # polled once at the start of a turn (the camera)
        self._inputs: list[Input] = []  # drained each tick (keypad, ...)
        self._status = DeviceStatus()
        self._health_at: float | None = None
        self._timeouts_in_row = 0
        self.stats = LoopStats()

    def add_input(self, source: Input) -> None:
        """Take events from ``source`` from now on (see :mod:`kiosk.inputs`).

        An input that ``waits`` (the camera) is asked once at the start of each
        :meth:`step` and paces the loop; any other is drained by every
        :meth:`tick`, in the order added.
        """
        (self._pacers if source.waits else self._inputs).append(source)

    @property
    def inputs(self) -> tuple[Input, ...]:
        """Every input taken so far, pacing ones first."""
        return (*self._pacers, *self._inputs)

    def run(self, stop: threading.Event) -> None:
        """Process frames until ``stop`` is set, the window is closed or the source ends."""
        self.start()
        try:
            while not stop.is_set() and self.exit_status is None:
                if self._screen.poll_quit() or not self.step():
                    break
        except BaseException as exc:  # e.g. the frame source failed: relay safe, then re-raise
            log.error("scan loop stopped by %s; relay to its safe state", type(exc).__name__)
            self.driver.safe()
            raise

    def start(self) -> None:
        """The safe state: relay and LEDs off, idle screen."""
        self._guarded(lambda: self._count_events(self.driver.start(self._monotonic())))

    def step(self) -> bool:
        """One turn: wait for the camera, process the frame, tick the gate.

        Returns False when the frame source has ended (or there is none).
        """
        arrived = [pacer.poll(self._monotonic()) for pacer in self._pacers]
        silent = any(isinstance(event, CameraSilent) for event in arrived)
        if silent:
            self.stats.camera_timeouts += 1
            self._timeouts_in_row += 1
            log.warning("camera delivered no frame in time (%d so far)", self.stats.camera_timeouts)
        elif any(isinstance(event, FrameSeen) for event in arrived):
            self._timeouts_in_row = 0
        frames = [event for event in arrived if isinstance(event, FrameSeen)]
        for frame in frames:
            self.process_frame(frame.gray, frame.timestamp)
        # After the frame: a code in view reaches the relay before the turn's housekeeping.
        self.tick()
        # The one place per turn for a hook (watchdog heartbeat, turn statistics).
        if self.on_turn is not None:
            self.on_turn(Turn(progress=bool(frames), camera_silent=silent))
        return silent or bool(frames)

    def process_frame(self, gray: Any, timestamp: float) -> list[Decision]:
        """Decode one grey image; decide on each code newly in view. Returns the decisions."""
        self.stats.frames += 1
        throttle = self.throttle
        seen = False  # a skipped frame is a still, empty scene: no symbol in it
        if throttle is not None and not throttle.wants(gray, timestamp):
            texts: list[str] = []  # a still, empty scene: nothing to read
        else:
            texts = self._guarded(lambda: self._decoder.decode(gray))
            seen = self._decoder.symbols_seen > 0
            if throttle is not None and (texts or seen):
                throttle.saw(timestamp)
        decisions = [self.decide(text) for text in self._repeat.feed(texts, timestamp)]
        if throttle is not None:
            throttle.observe(gray, timestamp)  # the busy frame's change check, after the relay
        if self.hold_steady is not None:
            # After the decisions: a read code's decision screen replaces the hint directly.
            self._hint(self.hold_steady.feed(read=bool(texts), seen=seen))
        return decisions

    def _hint(self, due: bool) -> None:
        """Put "hold steady" over the idle screen, or take it down, as ``due`` says.

        Only the idle screen gives way to the hint; once another screen is up
        (a decision, the NIK prompt, a fault) the hint is not shown over it.
        """
        if due and self._shown == "idle":
            self._guarded(lambda: self._screen.show_view(hold_steady_view()))
            self._shown = "hold_steady"
            self._emit("screen", {"screen": "hold_steady"})
        elif not due and self._shown == "hold_steady":
            self._guarded(lambda: self._screen.show_view(view_for("idle", None, self._status)))
            self._shown = "idle"
            self._emit("screen", {"screen": "idle"})

    def tick(self) -> None:
        """Sample inputs, end due pulses/grants/results, refresh status and screen."""

        def work() -> None:
            now = self._monotonic()
            self._refresh_status(now)
            fault = self._timeouts_in_row >= SCANNER_FAULT_AFTER
            self._count_events(
                self.driver.set_status(degraded=self._status.degraded, scanner_fault=fault, now=now)
            )
            self._count_events(self.driver.tick(now))
            for confirmed in self.driver.take_staff_presses():
                self.staff_answer(confirmed, staff_id="staff-key")
            manual = self._manual()
            self._finish_manual_check(manual.poll() if manual is not None else None)
            self._finish_nik(now)
            shown = self._show()
            if self.nik_checking and shown == "idle":
                self._show_checking()  # an earlier result ended; this NIK is still checked
            self._drain_inputs(now)  # after the gate's own screen, so the prompt stays up

        self._guarded(work)

    def decide(self, text: str) -> Decision:
        """Verify one scanned text and act on it: gate first, then screen, then counts."""
        self.driver.machine.begin_verify(self._monotonic())  # phase "verifying" meanwhile
        return self._act(self._verify(self._verifier, text))

    def decide_nik(self, nik: str) -> Decision:
        """Verify a typed KTP number (deny ``NIK_DISABLED`` when no NIK verifier is set).

        In manual mode the answer may be "wait for staff" (``NIK_STAFF_CHECK``):
        shown and logged but not counted, since the traveller's decision is the
        staff's answer (:meth:`staff_answer`) or its timeout, counted then.
        """
        if self._nik_verifier is None:
            return self._act(Decision.deny(Reason.NIK_DISABLED, "no NIK verifier", InputKind.NIK))
        decision = self._verify(self._nik_verifier, nik, InputKind.NIK)
        return self._act(decision, final=not is_pending(decision))

    def staff_answer(self, confirmed: bool, staff_id: str = "") -> Decision | None:
        """A staff key answered the pending manual KTP check; returns the decision acted on.

        None when no check is pending (a stray key press changes nothing).
        """
        manual = self._manual()
        decision = manual.resolve(confirmed, staff_id) if manual is not None else None
        return self._finish_manual_check(decision)

    def next_deadline(self, after: float = float("-inf")) -> float | None:
        """The next monotonic time something is due (gate timers, a manual-check timeout).

        For the simulator's virtual clock, which jumps from deadline to deadline.
        """
        manual = self._manual()
        times = [self.driver.next_deadline(after), manual.deadline() if manual else None]
        if self.nik_check is not None:
            times.append(self.nik_check.deadline())
        due = [t for t in times if t is not None and t > after]
        return min(due) if due else None

    @property
    def nik_checking(self) -> bool:
        """True while a typed NIK waits for its key derivation on the worker."""
        return self.nik_check is not None and self.nik_check.pending

    def _drain_inputs(self, now: float) -> None:
        """Handle what every non-waiting input reports now (bounded per input and turn)."""
        for source in self._inputs:
            for _ in range(MAX_EVENTS_PER_TURN):
                event = source.poll(now)
                if event is None:
                    break
                self._handle(event, now)

    def _handle(self, event: Event, now: float) -> None:
        """Act on one input event (frames are handled by :meth:`step`)."""
        if isinstance(event, NikTyped):
            self._enter_nik(event.nik, now)
        elif isinstance(event, NikPrompt):
            self._screen.show_view(nik_prompt_view(event.masked))
            self._shown = "nik_prompt"
            self._emit("screen", {"screen": "nik_prompt"})
        elif isinstance(event, NikAbandoned):
            self._screen.show_view(view_for("idle", None, self._status))
            self._shown = "idle"
            self._emit("screen", {"screen": "idle"})
        elif isinstance(event, FrameSeen):
            self.process_frame(event.gray, event.timestamp)
        elif isinstance(event, CommandReceived):
            self._run_command(event)

    def request_exit(self, status: int) -> None:
        """End :meth:`run` after this turn with ``status`` (e.g. a restart for systemd)."""
        self.exit_status = status

    def _run_command(self, event: CommandReceived) -> None:
        """Verify and carry out one command message; count its outcome."""
        runner = self.commands
        if runner is None:
            return
        outcome = self._guarded(lambda: runner.handle(event.payload, retained=event.retained))
        self._count_events(self._guarded(self.driver.sync))
        self._guarded(self._show)
        self._emit("command", {"action": outcome.action or "-", "outcome": outcome.reason})
        if outcome.event is not None:
            self._count_events([outcome.event])

    def _enter_nik(self, nik: str, now: float) -> bool:
        """Act on a typed NIK; True when its key derivation now runs in the background."""
        if self.nik_check is None:
            self.decide_nik(nik)
            return False
        decision = self.nik_check.start(nik, now)
        if decision is not None:
            self._act(decision, final=not is_pending(decision))
            return False
        if self.driver.machine.begin_verify(now):  # phase "verifying" while it runs
            self._show_checking()
        return True

    def _finish_nik(self, now: float) -> None:
        """Act on the background NIK check's decision once there is one."""
        decision = self.nik_check.poll(now) if self.nik_check is not None else None
        if decision is not None:
            self._act(decision, final=not is_pending(decision))

    def _show_checking(self) -> None:
        self._screen.show_view(nik_checking_view())
        self._shown = "nik_checking"
        self._emit("screen", {"screen": "nik_checking"})

    def _driver_event(self, event: str, fields: dict[str, Any]) -> None:
        """Forward a gate event; a mode change also asks for a status report soon.

        The retained status carries ``gate_mode``; a mode change that counts
        nothing (degraded on or off, a scanner fault ending) would otherwise
        wait for the periodic report.
        """
        if event == "mode" and self._publisher is not None:
            self._publisher.notify()
        self._emit(event, fields)

    def _manual(self) -> Any:
        """The NIK verifier's manual-check desk, when it has one."""
        return getattr(self._nik_verifier, "manual", None)

    def _finish_manual_check(self, decision: Decision | None) -> Decision | None:
        if decision is None:
            return None
        result = self._act(decision)
        # Hand-admitted entries are counted apart as well (site audit).
        self._count_events([f"nik_manual.{outcome_of(decision).value}"])
        return result

    def _act(self, decision: Decision, *, final: bool = True) -> Decision:
        """The gate first (anti-passback check, relay), then everything that can follow it.

        Between the decision and the relay there is only the in-memory
        anti-passback check and mark (:meth:`GateDriver.admit`) and the output
        write (:meth:`GateDriver.sync`). The anti-passback disk write (inside
        ``sync``, after the pins), the log line, events, screen and the durable
        count follow in this same call, so the count is on disk before the turn
        ends (docs/architecture.md, "Order of work after a decision").
        """
        now = self._monotonic()
        wall_s = self._wall_clock().timestamp()
        decision = self._guarded(lambda: self.driver.admit(decision, now, wall_s))
        counters = self._guarded(self.driver.sync)  # relay and LEDs: the gate has acted
        if decision.reason in MALFORMED_QR and decision.input is InputKind.QR:
            note_refused("qr", decision.reason.value)  # the code only, never the text
        if final:
            self.stats.scans += 1
            if decision.allowed:
                self.stats.allowed += 1
            else:
                self.stats.denied += 1
        # Reasons and types only: the payload, name, NIK and birth date never reach a log.
        log.info(
            "decision %s reason=%s input=%s type=%s",
            "allow" if decision.allowed else "deny",
            decision.reason,
            decision.input,
            decision.cert_type or "-",
        )
        fields = {
            "result": ("allow" if decision.allowed else "deny") if final else "pending",
            "reason": str(decision.reason),
            "input": str(decision.input),
        }
        if self.driver.machine.mode is Mode.EMERGENCY:
            fields["gate"] = "emergency"  # decided and counted, but the gate is held open
        self._emit("decision", fields)
        self._guarded(self._show)
        if final:
            self._count(decision)
        self._count_events(counters)
        if self._on_decision is not None:
            self._on_decision(decision)
        return decision

    def _verify(
        self, verifier: CredentialVerifier, text: str, kind: InputKind = InputKind.QR
    ) -> Decision:
        try:
            return verifier.verify(text)
        except Exception as exc:  # the verifier promises not to raise; a bug must still deny
            log.exception("verifier raised; denying")
            return Decision.deny(Reason.INTERNAL_ERROR, type(exc).__name__, kind)

    def _guarded(self, work: Callable[[], _T]) -> _T:
        """Run ``work``; on any exception make the relay safe first, then re-raise."""
        try:
            return work()
        except BaseException:
            log.exception("scan loop failed; relay to its safe state")
            self.driver.safe()
            raise

    def _show(self) -> str | None:
        """Show the gate's screen if it changed; returns its kind, or None."""
        request = self.driver.take_screen()
        if request is None:
            return None
        self._screen.show_view(view_for(request.kind, request.decision, self._status))
        self._shown = request.kind
        if self.hold_steady is not None and request.kind != "idle":
            self.hold_steady.reset()  # a decision or a fault replaces the hint, it does not return
        self._emit("screen", {"screen": screen_name(request.kind, request.decision)})
        return request.kind

    def _refresh_status(self, now: float) -> None:
        health = getattr(self._verifier, "health", None)
        if health is None or (
            self._health_at is not None and now - self._health_at < HEALTH_EVERY_S
        ):
            return
        self._health_at = now
        try:
            self._status = status_from_health(health())
        except Exception:  # a status report must never stop the gate
            log.exception("verifier health check failed")

    def _count(self, decision: Decision) -> None:
        name = "allowed" if decision.allowed else "denied"
        self._record(name, lambda: self._store.record(decision, self._wall_clock()))

    def _count_events(self, names: list[str]) -> None:
        for name in names:
            self._record(name, partial(self._store.record_event, name, self._wall_clock()))

    def _record(self, name: str, write: Callable[[], dict[str, int]]) -> None:
        try:
            totals = write()
        except Exception:
            # The gate keeps deciding even when the disk fails; the fault is counted and logged.
            self.stats.store_errors += 1
            log.exception("could not store the %s count", name)
            return
        self._emit("count", {"name": name, "total": totals.get(name, 0)})
        if self._publisher is not None:
            self._publisher.notify()
