"""Application wiring: the scan loop and the construction of its parts from config.

Thread ownership (see docs/architecture.md):
- the main thread runs :class:`ScanLoop` and owns the frame source, the decoder,
  the verifier, the gate outputs, the screen and the count store's writer;
- gpiozero runs the relay pulse on its own background thread;
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
from typing import Protocol

from kiosk.camera import FrameSource, open_frame_source
from kiosk.config import KioskConfig
from kiosk.decision import Decision, Reason
from kiosk.decode import Decoder, RepeatFilter, create_decoder
from kiosk.display import NullScreen, Screen, open_screen
from kiosk.errors import CameraTimeout
from kiosk.gate import GateOutputs, make_pin_factory
from kiosk.telemetry import CountStore, MqttPublisher
from kiosk.verify import TrustStore, Verifier

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


class ScanLoop:
    """Frame → QR decode → one scan per code → verify → relay/LEDs → screen → counts.

    Every scanned text produces exactly one decision; nothing raised by a part
    stops the loop except the frame source ending. The loop is single-threaded
    and does not sleep: the frame source paces it.
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
    ) -> None:
        self._source = source
        self._decoder = decoder
        self._repeat = repeat
        self._verifier = verifier
        self._outputs = outputs
        self._screen = screen
        self._store = store
        self._publisher = publisher
        self._hold_s = result_hold_s
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._on_decision = on_decision
        self._result_until: float | None = None
        self.stats = LoopStats()

    def run(self, stop: threading.Event) -> None:
        """Process frames until ``stop`` is set, the window is closed or the source ends."""
        self._screen.show_idle()
        while not stop.is_set():
            if self._screen.poll_quit() or not self.step():
                break

    def step(self) -> bool:
        """Process one frame. Returns False when the frame source has ended."""
        try:
            frame = self._source.read()
        except CameraTimeout:
            self.stats.camera_timeouts += 1
            log.warning("camera delivered no frame in time (%d so far)", self.stats.camera_timeouts)
            return True
        self._return_to_idle_if_due()
        if frame is None:
            return False
        self.stats.frames += 1
        for text in self._repeat.feed(self._decoder.decode(frame.gray), frame.timestamp):
            self.decide(text)
        return True

    def decide(self, text: str) -> Decision:
        """Verify one scanned text and act on the decision: relay first, then screen, counts."""
        self.stats.scans += 1
        decision = self._verify(text)
        if decision.allowed:
            self.stats.allowed += 1
            self._outputs.signal_allowed()
        else:
            self.stats.denied += 1
            self._outputs.signal_denied()
        self._screen.show_decision(decision)
        self._result_until = self._monotonic() + self._hold_s
        # Reasons and types only: the payload, name and birth date never reach a log.
        log.info(
            "decision %s reason=%s input=%s type=%s",
            "allow" if decision.allowed else "deny",
            decision.reason,
            decision.input,
            decision.cert_type or "-",
        )
        self._count(decision)
        if self._on_decision is not None:
            self._on_decision(decision)
        return decision

    def _verify(self, text: str) -> Decision:
        try:
            return self._verifier.verify(text)
        except Exception as exc:  # the verifier promises not to raise; a bug must still deny
            log.exception("verifier raised; denying")
            return Decision.deny(Reason.INTERNAL_ERROR, type(exc).__name__)

    def _count(self, decision: Decision) -> None:
        try:
            self._store.record(decision, self._wall_clock())
        except Exception:
            # The gate keeps deciding even when the disk fails; the fault is counted and logged.
            self.stats.store_errors += 1
            log.exception("could not store the count")
            return
        if self._publisher is not None:
            self._publisher.notify()

    def _return_to_idle_if_due(self) -> None:
        if self._result_until is not None and self._monotonic() >= self._result_until:
            self._result_until = None
            self._outputs.signal_idle()
            self._screen.show_idle()


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
) -> Iterator[GateApp]:
    """Build every part from ``config``, yield the app, and close all parts on exit.

    Parts can be passed in (a frame source, a pin factory, a verifier) so that
    simulation and tests run the same wiring as the device. On exit the relay
    and LEDs return to their safe state first, then the outbox is drained for at
    most ``mqtt.drain_timeout_s`` and the publisher stopped.
    """
    with contextlib.ExitStack() as stack:
        config.device.data_dir.mkdir(parents=True, exist_ok=True)
        if verifier is None:
            trust = TrustStore.from_folder(config.verify.trust_dir)
            log.info("trust store: %d signer certificates", len(trust))
            verifier = Verifier(trust, wall_clock)
            trusted = len(trust)
        else:
            trusted = -1
        store = stack.enter_context(CountStore(config.counts_db_path, config.device.device_id))
        publisher = None
        if config.mqtt.enabled:
            publisher = MqttPublisher(
                config.mqtt, config.mqtt_topic_root, config.device.device_id, config.counts_db_path
            )
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
        # Entered last so it closes first: the relay is safe before anything else winds down.
        outputs = stack.enter_context(GateOutputs(config.gate, factory))
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
            on_decision=on_decision,
        )
        log.info("decoder: %s", decoder.name)
        yield GateApp(config, loop, outputs, screen, store, publisher, decoder.name, trusted)


def _stop_publisher(publisher: MqttPublisher, drain_timeout_s: float) -> None:
    if not publisher.drain(drain_timeout_s):
        log.warning("outbox not empty after %.1f s; reports stay queued on disk", drain_timeout_s)
    publisher.stop(timeout=5.0)
