"""Application wiring: the scan loop and the construction of its parts from config.

Thread ownership (see docs/architecture.md):
- the main thread runs :class:`ScanLoop` and owns the frame source, the decoder,
  the verifier, the gate (state machine, outputs, sampled inputs, anti-passback
  store), the screen and the count store's writer; relay pulses are timed by
  the state machine per loop turn;
- ``kiosk-relay-guard`` cuts the relay if it outlives its hard maximum (a stalled
  loop); gpiozero's blink thread plays buzzer patterns;
- the MQTT publisher owns its paho network thread and the outbox drain thread,
  reading the same SQLite file through its own connection.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from kiosk.camera import FrameSource, open_frame_source
from kiosk.config import KioskConfig
from kiosk.decision import Decision, InputKind, Reason
from kiosk.decode import Decoder, RepeatFilter, create_decoder
from kiosk.display import NullScreen, Screen, open_screen
from kiosk.display.views import DeviceStatus, screen_name, status_from_health, view_for
from kiosk.errors import CameraTimeout
from kiosk.gate import (
    GateDriver,
    GateInputs,
    GateMachine,
    GateOutputs,
    MachineConfig,
    Mode,
    PassbackGuard,
    make_pin_factory,
)
from kiosk.telemetry import CountStore, MqttPublisher
from kiosk.telemetry.wiring import StatusSources, make_publisher, open_count_store
from kiosk.verify.factory import open_verifier

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
# How often the verifier's health (trust list age, clock) is asked, in seconds.
HEALTH_EVERY_S = 5.0


class ScanLoop:
    """Frame → QR decode → one scan per code → verify → gate machine → screen → counts.

    Every scanned text produces exactly one decision; nothing raised by the
    verifier or the count store stops the loop. Each turn (one frame) also
    *ticks* the gate: inputs are sampled and debounced, relay pulses and grant
    timeouts end, results return to idle (see :class:`kiosk.gate.GateDriver`).
    Any other exception switches the relay off before it propagates, so a
    crash never leaves the turnstile released. The loop does not sleep: the
    frame source paces it. Clocks are injected; the simulator passes a virtual one.

    Args (beyond the parts): ``result_hold_s`` is used only without a ``driver``
    (the gate: machine + outputs + inputs + anti-passback); ``wall_clock`` (aware
    UTC: counts, anti-passback) and ``monotonic`` (seconds: pulses, timeouts,
    debouncing) are the clocks; ``nik_verifier`` decides typed NIKs (None: deny
    NIK_DISABLED); ``on_decision`` gets every final decision; ``on_event`` gets
    ``(event, fields)`` for decisions, screens, counts and gate events (fields
    never hold a name, NIK or payload).
    """

    def __init__(
        self,
        *,
        source: FrameSource,
        decoder: Decoder,
        repeat: RepeatFilter,
        verifier: CredentialVerifier,
        outputs: GateOutputs,
        screen: Screen | NullScreen,
        store: CountStore,
        publisher: MqttPublisher | None,
        result_hold_s: float,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        on_decision: Callable[[Decision], None] | None = None,
        driver: GateDriver | None = None,
        nik_verifier: CredentialVerifier | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self._source = source
        self._decoder = decoder
        self._repeat = repeat
        self._verifier = verifier
        self._nik_verifier = nik_verifier
        self._outputs = outputs
        self._screen = screen
        self._store = store
        self._publisher = publisher
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._on_decision = on_decision
        self._emit = on_event or (lambda event, fields: None)
        self.driver = driver or GateDriver(
            GateMachine(MachineConfig(result_hold_s=result_hold_s)), outputs
        )
        if on_event is not None:
            self.driver.on_event = on_event
        self._status = DeviceStatus()
        self._health_at: float | None = None
        self._timeouts_in_row = 0
        self.stats = LoopStats()

    def run(self, stop: threading.Event) -> None:
        """Process frames until ``stop`` is set, the window is closed or the source ends."""
        self.start()
        try:
            while not stop.is_set():
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
        """Process one frame. Returns False when the frame source has ended."""
        try:
            frame = self._source.read()
        except CameraTimeout:
            self.stats.camera_timeouts += 1
            self._timeouts_in_row += 1
            log.warning("camera delivered no frame in time (%d so far)", self.stats.camera_timeouts)
            self.tick()
            return True
        self._timeouts_in_row = 0
        self.tick()
        if frame is None:
            return False
        self.process_frame(frame.gray, frame.timestamp)
        return True

    def process_frame(self, gray: Any, timestamp: float) -> list[Decision]:
        """Decode one grey image; decide on each code newly in view. Returns the decisions."""
        self.stats.frames += 1
        texts = self._guarded(lambda: self._decoder.decode(gray))
        return [self.decide(text) for text in self._repeat.feed(texts, timestamp)]

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
            self._show()

        self._guarded(work)

    def decide(self, text: str) -> Decision:
        """Verify one scanned text and act on it: gate first, then screen, then counts."""
        self.driver.machine.begin_verify(self._monotonic())  # phase "verifying" meanwhile
        return self._act(self._verify(self._verifier, text))

    def decide_nik(self, nik: str) -> Decision:
        """Verify a typed KTP number (deny ``NIK_DISABLED`` when no NIK verifier is set)."""
        if self._nik_verifier is None:
            return self._act(Decision.deny(Reason.NIK_DISABLED, "no NIK verifier", InputKind.NIK))
        return self._act(self._verify(self._nik_verifier, nik, InputKind.NIK))

    def _act(self, decision: Decision) -> Decision:
        self.stats.scans += 1
        now = self._monotonic()
        wall_s = self._wall_clock().timestamp()
        decision = self._guarded(lambda: self.driver.admit(decision, now, wall_s))
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
            "result": "allow" if decision.allowed else "deny",
            "reason": str(decision.reason),
            "input": str(decision.input),
        }
        if self.driver.machine.mode is Mode.EMERGENCY:
            fields["gate"] = "emergency"  # decided and counted, but the gate is held open
        self._emit("decision", fields)
        counters = self._guarded(self.driver.sync)
        self._guarded(self._show)
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

    def _show(self) -> None:
        request = self.driver.take_screen()
        if request is None:
            return
        self._screen.show_view(view_for(request.kind, request.decision, self._status))
        self._emit("screen", {"screen": screen_name(request.kind, request.decision)})

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


@dataclass
class GateApp:
    """A built application: the loop plus the parts it closes on exit."""

    config: KioskConfig
    loop: ScanLoop
    outputs: GateOutputs
    screen: Screen | NullScreen
    store: CountStore
    publisher: MqttPublisher | None
    decoder_name: str
    trusted_signers: int


@contextlib.contextmanager
def build_app(
    config: KioskConfig,
    *,
    source: FrameSource | None = None,
    pin_factory: object | None = None,
    verifier: CredentialVerifier | None = None,
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_decision: Callable[[Decision], None] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> Iterator[GateApp]:
    """Build every part from ``config``, yield the app, and close all parts on exit.

    Parts can be passed in (a frame source, a pin factory, a verifier) so that
    simulation and tests run the same wiring as the device; ``monotonic`` is
    the gate's clock (the simulator passes a virtual one) and ``on_event``
    receives every gate event (relay, led, buzzer, passage, screen, count ...).
    On exit the relay and LEDs return to their safe state first, then the
    outbox is drained for at most ``mqtt.drain_timeout_s`` and the publisher
    stopped.
    """
    with contextlib.ExitStack() as stack:
        config.device.data_dir.mkdir(parents=True, exist_ok=True)
        if verifier is None:
            device_verifier = open_verifier(
                config.verify,
                wall_clock=wall_clock,
                state_dir=config.device.data_dir,
                clock=config.clock,
                policy=config.policy,
            )
            stack.callback(device_verifier.close)  # persists the clock's high-water mark
            verifier = device_verifier
            trusted = device_verifier.health().signers
        else:
            trusted = -1
        store = stack.enter_context(open_count_store(config))
        # Parts built later (the scan loop: decoder, camera fps) add status sources here.
        status_sources = StatusSources()
        publisher = None
        if config.mqtt.enabled:
            publisher = make_publisher(config, store, verifier, status_sources)
            stack.callback(_stop_publisher, publisher, config.mqtt.drain_timeout_s)
            publisher.start()
        if source is None:
            source = open_frame_source(config.camera)
        stack.enter_context(source)
        decoder = create_decoder(config.decoder.backend)
        screen = open_screen(config.display)
        stack.callback(screen.close)
        factory = (
            pin_factory if pin_factory is not None else make_pin_factory(config.gate.pin_factory)
        )
        passback = stack.enter_context(
            PassbackGuard(config.device.data_dir, config.gate.passback_window_s)
        )
        inputs = stack.enter_context(GateInputs(config.gate, factory))
        # Entered last so it closes first: the relay is safe before anything else winds down.
        outputs = stack.enter_context(GateOutputs(config.gate, factory))
        driver = GateDriver(
            GateMachine(MachineConfig.from_gate(config.gate)), outputs, inputs, passback
        )
        loop = ScanLoop(
            source=source,
            decoder=decoder,
            repeat=RepeatFilter(config.decoder.rearm_s),
            verifier=verifier,
            outputs=outputs,
            screen=screen,
            store=store,
            publisher=publisher,
            result_hold_s=config.gate.result_hold_s,
            wall_clock=wall_clock,
            monotonic=monotonic,
            on_decision=on_decision,
            driver=driver,
            on_event=on_event,
        )
        log.info("decoder: %s", decoder.name)
        yield GateApp(config, loop, outputs, screen, store, publisher, decoder.name, trusted)


def _stop_publisher(publisher: MqttPublisher, drain_timeout_s: float) -> None:
    if not publisher.drain(drain_timeout_s):
        log.warning("outbox not empty after %.1f s; reports stay queued on disk", drain_timeout_s)
    publisher.stop(timeout=5.0)
