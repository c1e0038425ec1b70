"""Application wiring: :func:`build_app` constructs every part from config.

Thread ownership (see docs/architecture.md):
- the main thread runs :class:`~kiosk.scanloop.ScanLoop` and owns the frame source, the decoder,
  the verifier, the gate (state machine, outputs, sampled inputs, anti-passback
  store), the screen and the count store's writer; relay pulses are timed by
  the state machine per loop turn;
- ``kiosk-relay-guard`` cuts the relay if it outlives its hard maximum (a stalled
  loop); gpiozero's blink thread plays buzzer patterns;
- the MQTT publisher owns its paho network thread and the outbox drain thread,
  reading the same SQLite file through its own connection;
- ``kiosk-trust-watch`` (signed bundle, ``verify.reload_interval_s`` > 0) swaps a
  newly installed trust bundle into the verifier; SIGHUP wakes it at once;
- ``kiosk-nik-kdf`` (``nik.mode = "list"`` with a key input) derives a typed
  NIK's status-list key (scrypt) so the loop keeps turning meanwhile;
- the ``kiosk-decoder`` child *process* (pyzbar with ``decoder.isolate``) decodes
  the frames the loop hands it through shared memory; the loop supervises it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kiosk.camera import FrameSource, open_frame_source
from kiosk.config import KioskConfig
from kiosk.decision import Decision
from kiosk.decode import IdleThrottle, RepeatFilter, create_decoder
from kiosk.decode.progress import SeenNotRead
from kiosk.display import NullScreen, Screen
from kiosk.gate import (
    GateDriver,
    GateInputs,
    GateMachine,
    GateOutputs,
    MachineConfig,
    PassbackGuard,
    make_pin_factory,
)
from kiosk.inputs import CameraInput, CommandInput, KeypadInput
from kiosk.nik import NikEntry, build_nik_verifier
from kiosk.nik.devices import KeySource, open_key_source
from kiosk.nik.worker import KdfWorker, NikCheck, StagedNikVerifier
from kiosk.peripherals import (
    FaultBoard,
    RetryingFrameSource,
    RetryingKeySource,
    RetryingScreen,
    count_event,
    display_opener,
)
from kiosk.remote.actions import MachineActions
from kiosk.remote.diagnostics import GateDiagnostics
from kiosk.remote.installers import gate_installers
from kiosk.remote.pull import ReleasePuller
from kiosk.remote.receiver import ReleaseReceiver
from kiosk.remote.replay import AcceptedCommands
from kiosk.remote.runner import CommandInbox, CommandRunner
from kiosk.scanloop import CredentialVerifier, ScanLoop, Turn
from kiosk.service import Heartbeat
from kiosk.signing import load_public_keys
from kiosk.telemetry import CountStore, MqttPublisher
from kiosk.telemetry.wiring import StatusSources, make_publisher, open_count_store
from kiosk.verify.factory import open_trust_watcher, open_trusted_clock, open_verifier
from kiosk.verify.reload import TrustWatcher, reload_on_sighup

log = logging.getLogger(__name__)

#: Exit status after a ``restart`` command (EX_TEMPFAIL): systemd's Restart=always starts
#: the service again; the journal shows it was asked for.
EXIT_RESTART = 75
#: Exit status once the camera was re-created ``camera.max_reopens`` times: systemd starts
#: the service clean instead of it leaking another Picamera2 object.
EXIT_CAMERA = 76


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
    nik_verifier: CredentialVerifier | None = None,
    keys: KeySource | None = None,
    heartbeat: Heartbeat | None = None,
) -> Iterator[GateApp]:
    """Build every part from ``config``, yield the app, and close all parts on exit.

    Parts can be passed in (a frame source, a pin factory, the QR and NIK
    verifiers, the KTP key source instead of ``nik.input``'s) so that
    simulation and tests run the same wiring as the device; ``monotonic`` is
    the gate's clock (the simulator passes a virtual one) and ``on_event``
    receives every gate event (relay, led, buzzer, passage, screen, count ...).
    On exit the relay and LEDs return to their safe state first, then the
    outbox is drained for at most ``mqtt.drain_timeout_s`` and the publisher
    stopped. ``heartbeat`` (systemd READY/WATCHDOG, :mod:`kiosk.service`) is fed
    by the scan loop once per turn.
    """
    with contextlib.ExitStack() as stack:
        config.device.data_dir.mkdir(parents=True, exist_ok=True)
        if verifier is None:
            trusted_clock = open_trusted_clock(
                config.clock, wall_clock=wall_clock, state_dir=config.device.data_dir
            )
            device_verifier = open_verifier(
                config.verify,
                wall_clock=wall_clock,
                state_dir=config.device.data_dir,
                policy=config.policy,
                trusted_clock=trusted_clock,
            )
            stack.callback(device_verifier.close)  # persists the clock's high-water mark
            verifier = device_verifier
            trusted = device_verifier.health().signers
            # A bundle installed while the gate runs is picked up without a restart.
            watcher = open_trust_watcher(
                device_verifier,
                config.verify,
                state_dir=config.device.data_dir,
                policy=config.policy,
                clock=trusted_clock,
            )
            if watcher is not None:
                stack.enter_context(watcher)
                stack.enter_context(reload_on_sighup(watcher))
        else:
            trusted = -1
            watcher = None
        store = stack.enter_context(open_count_store(config))
        # A missing camera, KTP reader or screen degrades its one function (kiosk.peripherals).
        board = FaultBoard(count_event(store, wall_clock), _fault_reporter(heartbeat, on_event))
        if keys is None and config.nik.input != "none":
            keys = RetryingKeySource(
                lambda: open_key_source(
                    config.nik.input,
                    keypad_device=config.nik.keypad_device,
                    serial_port=config.nik.serial_port,
                    serial_baud=config.nik.serial_baud,
                    serial_pattern=config.nik.serial_pattern,
                    serial_terminator=config.nik.serial_terminator,
                ),
                board,
            )
        if keys is not None:
            stack.callback(keys.close)
        if nik_verifier is None and config.nik.mode != "off":
            device_nik = build_nik_verifier(config, wall_clock=wall_clock, monotonic=monotonic)
            stack.callback(device_nik.close)
            nik_verifier = device_nik
        nik_worker = None
        if keys is not None and config.nik.mode == "list":
            # Only list mode runs scrypt (~1 s on a Pi 4), and only typed NIKs reach
            # the worker: the loop keeps sampling the gate meanwhile (kiosk-nik-kdf).
            nik_worker = stack.enter_context(KdfWorker())
        # Parts built later (the scan loop: decoder, camera fps) add status sources here.
        status_sources = StatusSources()
        inbox = CommandInbox() if config.remote.commands else None
        releases = None
        loop: ScanLoop | None = None

        def restart_after_update() -> None:
            # From the kiosk-dist thread: the loop ends after its turn; systemd restarts.
            if loop is not None:
                loop.request_exit(EXIT_RESTART)

        pushed = config.remote.distribution and config.mqtt.enabled
        if pushed or config.remote.pull_url:
            installers = gate_installers(config, restart=lambda: restart_after_update())
        if pushed:
            releases = ReleaseReceiver(
                topic_root=config.mqtt.topic_root,
                site=config.device.site,
                gate=config.device.gate,
                staging=config.device.data_dir / "dist",
                installers=installers,
            )
            status_sources.add(releases.status)
        if config.remote.pull_url:
            # The HTTPS transport needs no broker: it runs whether MQTT is on or not.
            puller = stack.enter_context(ReleasePuller(
                base_url=config.remote.pull_url,
                topic_root=config.mqtt.topic_root,
                site=config.device.site,
                gate=config.device.gate,
                staging=config.device.data_dir / "pull",
                installers=installers,
                interval_s=config.remote.pull_interval_s,
                ca_file=config.remote.pull_ca_file,
            ))
            status_sources.add(puller.status)
            puller.start()
        publisher = None
        if config.mqtt.enabled:
            publisher = make_publisher(
                config,
                store,
                verifier,
                status_sources,
                on_command=inbox.offer if inbox is not None else None,
                releases=releases,
            )
            stack.callback(_stop_publisher, publisher, config.mqtt.drain_timeout_s)
            if releases is not None:
                releases.start(publisher)
                stack.callback(releases.close)
        status_sources.add(board.status)
        if source is None:
            source = RetryingFrameSource(
                lambda: open_frame_source(config.camera),
                board,
                timeout_s=config.camera.frame_timeout_s,
                stall_after_s=config.camera.stall_after_s,
                max_reopens=config.camera.max_reopens,
                on_exhausted=lambda: loop.request_exit(EXIT_CAMERA) if loop else None,
            )
        stack.enter_context(source)
        decoder = create_decoder(config.decoder.backend, isolate=config.decoder.isolate)
        stack.callback(decoder.close)
        screen = RetryingScreen(display_opener(config.display), board)
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
        nik_check = None
        if nik_worker is not None and isinstance(nik_verifier, StagedNikVerifier):
            # Typed NIKs are checked in the background when the verifier can be split.
            nik_check = NikCheck(nik_verifier, nik_worker)
        loop = ScanLoop(
            decoder=decoder,
            repeat=RepeatFilter(config.decoder.rearm_s),
            verifier=verifier,
            driver=driver,
            screen=screen,
            store=store,
            publisher=publisher,
            wall_clock=wall_clock,
            monotonic=monotonic,
            nik_verifier=nik_verifier,
            nik_check=nik_check,
            on_decision=on_decision,
            on_event=on_event,
            throttle=IdleThrottle(config.decoder.idle_after_s, config.decoder.idle_check_every_s),
            hold_steady=SeenNotRead(config.decoder.hold_steady_after_frames),
        )
        if heartbeat is not None:
            loop.on_turn = _feed(heartbeat, loop)
        loop.add_input(CameraInput(source))
        if keys is not None:
            entry = NikEntry(timeout_s=config.nik.entry_timeout_s)
            loop.add_input(KeypadInput(keys, entry, paused=lambda: loop.nik_checking))
        if inbox is not None:
            stats = loop.stats
            diagnostics = GateDiagnostics(
                config,
                health=getattr(verifier, "health", lambda: None),
                frames=lambda: stats.frames,
                link=publisher,
                monotonic=monotonic,
                wall_clock=wall_clock,
            )
            loop.commands = _command_runner(
                config, loop, watcher, diagnostics, monotonic, lambda: wall_clock().timestamp()
            )
            loop.add_input(CommandInput(inbox))
        status_sources.add(_loop_status(loop, decoder.name, monotonic))
        if publisher is not None:
            publisher.start()  # every status source exists now; connecting never blocks
        log.info("decoder: %s", decoder.name)
        yield GateApp(config, loop, outputs, screen, store, publisher, decoder.name, trusted)


def _fault_reporter(
    heartbeat: Heartbeat | None, on_event: Callable[[str, dict[str, Any]], None] | None
) -> Callable[[str, bool], None]:
    """What a peripheral fault changes beyond its report: the watchdog and the event hook."""

    def changed(part: str, faulty: bool) -> None:
        if part == "camera" and heartbeat is not None:
            heartbeat.camera_absent(faulty)  # KTP entry still works: no restart for it
        if on_event is not None:
            on_event("fault" if faulty else "recovered", {"part": part})

    return changed


def _command_runner(
    config: KioskConfig,
    loop: ScanLoop,
    watcher: TrustWatcher | None,
    diagnostics: Callable[[str], None],
    monotonic: Callable[[], float],
    wall_s: Callable[[], float],
) -> CommandRunner:
    """Operators' signed commands for this gate (``remote.commands``, docs/remote.md)."""
    data_dir = config.device.data_dir
    actions = MachineActions(
        loop.driver.machine,
        monotonic,
        reload=watcher.request_reload if watcher is not None else lambda: None,
        restart=lambda: loop.request_exit(EXIT_RESTART),
        diagnostics=diagnostics,
    )
    return CommandRunner(
        authorities=load_public_keys(config.verify.authority_keys),
        site=config.device.site,
        gate=config.device.gate,
        memory=AcceptedCommands(data_dir / config.remote.memory_file, now=wall_s()),
        actions=actions,
        clock=wall_s,
    )


def _feed(heartbeat: Heartbeat, loop: ScanLoop) -> Callable[[Turn], None]:
    """The loop's per-turn hook that feeds the systemd watchdog (kiosk.service)."""

    def on_turn(turn: Turn) -> None:
        heartbeat.status(f"gate {loop.driver.machine.mode}")
        heartbeat.turn(turn.progress, fault=turn.camera_silent)

    return on_turn


def _loop_status(
    loop: ScanLoop, decoder: str, monotonic: Callable[[], float]
) -> Callable[[], dict[str, Any]]:
    """Status fields from the scan loop: decoder name, frames/s since the last report
    and the gate's operating mode.

    Called on the publisher's thread; it only reads counters the loop increments
    and the machine's current mode (one attribute read).
    """
    last = [monotonic(), float(loop.stats.frames)]

    def source() -> dict[str, Any]:
        now, frames = monotonic(), float(loop.stats.frames)
        elapsed = now - last[0]
        fps = (frames - last[1]) / elapsed if elapsed > 0 else 0.0
        last[:] = [now, frames]
        return {
            "decoder": decoder,
            "camera_fps": round(fps, 1),
            "gate_mode": str(loop.driver.machine.mode),
        }

    return source


def _stop_publisher(publisher: MqttPublisher, drain_timeout_s: float) -> None:
    if not publisher.drain(drain_timeout_s):
        log.warning("outbox not empty after %.1f s; reports stay queued on disk", drain_timeout_s)
    publisher.stop(timeout=5.0)
