"""``kiosk simulate``: run a scenario through the real application on a virtual clock.

The real wiring (:func:`kiosk.app.build_app`) is used: real QR decoding of the
scenario's images, the real verifier, the gate state machine, the screen with
SDL's dummy driver, SQLite counts. Only the edges are simulated: GPIO is a
:class:`~kiosk.sim.clock.VirtualMockFactory` whose input pins the runner drives
(``drive_high``/``drive_low``) like the wiring would, there are no camera frames
(scans are injected), MQTT is off, and time is a :class:`VirtualClock`.

The clock jumps straight to the next moment anything can happen: the next
scenario step, the gate machine's next deadline (pulse end, grant timeout,
result expiry) or an input's debounce confirmation. Nothing sleeps, so an
eight-hour shift runs in about as long as its scans take to verify.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from kiosk.app import GateApp, build_app
from kiosk.camera.base import Frame, FrameSource
from kiosk.config import KioskConfig, load_config
from kiosk.errors import ConfigError
from kiosk.sim.clock import MONOTONIC_ORIGIN, VirtualClock, VirtualMockFactory
from kiosk.sim.scenario import MAX_TAIL_S, Scenario, Step, load_scenario

log = logging.getLogger(__name__)

PASSAGE_PULSE_S = 0.3  # how long a simulated person breaks the beam
ARM_MOVE_S = 0.2  # a working arm's switch closes this long after the relay
ARM_CLOSE_S = 0.6  # ... and opens again this long after the relay


class _NoFrames(FrameSource):
    """The camera of a simulation: scans are injected, so it never has a frame."""

    def read(self) -> Frame | None:
        """Always None: no camera frames in a simulation."""
        return None

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class SimResult:
    """What a run produced: the events (as logged) and the final counter totals."""

    events: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    factory: VirtualMockFactory | None = None
    config: KioskConfig | None = None


class _Run:
    """One scenario run; holds the clock, the schedule and the log."""

    def __init__(
        self,
        scenario: Scenario,
        log_file: IO[str] | None,
        state_dir: Path,
        screens: Path | None = None,
    ) -> None:
        self.scenario = scenario
        self.screens = screens
        self.clock = VirtualClock(scenario.start)
        self.factory = VirtualMockFactory(self.clock)
        self.log_file = log_file
        self.result = SimResult(factory=self.factory)
        self.config = _sim_config(scenario, state_dir)
        self.result.config = self.config
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._arm_stuck = False
        self._fire_alarm = False  # the contact's state survives a restart of the gate
        self.app: GateApp | None = None
        self._current: contextlib.AbstractContextManager[GateApp] | None = None

    # -- log -----------------------------------------------------------------
    def emit(self, event: str, fields: dict[str, Any]) -> None:
        """Log one event at the current virtual time (and follow it: arm, screenshots)."""
        record = {"t": round(self.clock.t, 6), "event": event, **fields}
        self.result.events.append(record)
        if self.log_file is not None:
            self.log_file.write(json.dumps(record, ensure_ascii=False) + "\n")
        if event == "relay" and fields.get("state") == "on":
            self._arm_follows_relay()
        if event == "screen" and self.screens is not None and self.app is not None:
            name = str(fields["screen"]).replace(":", "-")
            self.app.screen.save_png(self.screens / f"{self.clock.t:010.3f}-{name}.png")

    # -- schedule ------------------------------------------------------------
    def at(self, t: float, action: Callable[[], None]) -> None:
        """Schedule ``action`` at virtual second ``t`` (same time: in scheduling order)."""
        self._seq += 1
        heapq.heappush(self._queue, (t, self._seq, action))

    def run(self) -> SimResult:
        """Run every step and what follows on the virtual clock; returns the result."""
        last = max((s.at for s in self.scenario.steps), default=0.0)
        limit = self.scenario.end if self.scenario.end is not None else last + MAX_TAIL_S
        for step in self.scenario.steps:
            self.at(step.at, self._action(step))
        self._current = self._build()
        self.app = self._current.__enter__()
        try:
            self.emit("mode", {"mode": "normal"})
            self.app.loop.start()
            while True:
                t = self._next_time()
                if t is None or t > limit:
                    break
                self.clock.advance_to(t)
                self._tick()
                ran = False
                while self._queue and self._queue[0][0] <= self.clock.t:
                    heapq.heappop(self._queue)[2]()
                    ran = True
                if ran:
                    # Sample twice: inputs changed now are seen at once, and a
                    # zero debounce period still needs its second sample.
                    self._tick()
                    self._tick()
            if self.scenario.end is not None and self.clock.t < limit:
                self.clock.advance_to(limit)
                self._tick()
            self.result.totals = self.app.store.totals()
        except BaseException as exc:
            self._current.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._current.__exit__(None, None, None)
        self.emit("end", {"totals": self.result.totals})
        return self.result

    def _next_time(self) -> float | None:
        times = [self._queue[0][0]] if self._queue else []
        assert self.app is not None
        deadline = self.app.loop.next_deadline(after=self.clock.monotonic())
        if deadline is not None:
            times.append(deadline - MONOTONIC_ORIGIN)
        return min(times) if times else None

    def _tick(self) -> None:
        assert self.app is not None
        self.app.loop.tick()

    @contextlib.contextmanager
    def _build(self) -> Iterator[GateApp]:
        verifier = _sim_verifier(self.config, self.clock)
        nik_verifier = _sim_nik_verifier(self.config, self.scenario, self.clock)
        with build_app(
            self.config,
            source=_NoFrames(),
            pin_factory=self.factory,
            verifier=verifier,
            nik_verifier=nik_verifier,
            wall_clock=self.clock.wall,
            monotonic=self.clock.monotonic,
            on_event=self.emit,
        ) as app:
            try:
                yield app
            finally:
                verifier.close()  # persists the (virtual) clock's high-water mark
                if nik_verifier is not None:
                    nik_verifier.close()

    # -- actions -------------------------------------------------------------
    def _action(self, step: Step) -> Callable[[], None]:
        def run() -> None:
            assert self.app is not None
            loop = self.app.loop
            if step.action == "scan":
                gray = _load_gray(self.scenario.resolve(step.value), step)
                if not loop.process_frame(gray, self.clock.monotonic()):
                    self.emit("no_code", {"step": step.index})
            elif step.action == "payload":
                loop.decide(step.value)
            elif step.action == "nik":
                loop.decide_nik(step.value)
            elif step.action == "passage":
                self._pulse(
                    "passage",
                    self.config.gate.passage_pin,
                    self.config.gate.passage_active_high,
                    PASSAGE_PULSE_S,
                )
            elif step.action == "exit":
                if self.config.gate.exit_button_pin is None:
                    raise ConfigError(f"step {step.index}: exit: gate.exit_button_pin is unset")
                self._pulse("exit", self.config.gate.exit_button_pin, False, PASSAGE_PULSE_S)
            elif step.action == "fire_alarm":
                pin = self.config.gate.fire_alarm_pin
                if pin is None:
                    raise ConfigError(f"step {step.index}: fire_alarm: gate.fire_alarm_pin unset")
                self._fire_alarm = step.value
                self._drive(pin, step.value == self.config.gate.fire_alarm_active_high)
                self.emit("input", {"name": "fire_alarm", "active": step.value})
            elif step.action == "arm_stuck":
                self._arm_stuck = step.value
            elif step.action == "restart":
                self._restart()
            elif step.action == "staff" and loop.staff_answer(step.value) is None:
                self.emit("staff_key_ignored", {"step": step.index})

        return run

    def _pulse(self, name: str, pin: int, active_high: bool, length_s: float) -> None:
        self._drive(pin, active_high)
        self.emit("input", {"name": name, "active": True})
        t_end = self.clock.t + length_s

        def release() -> None:
            self._drive(pin, not active_high)
            self.emit("input", {"name": name, "active": False})

        self.at(t_end, release)

    def _drive(self, pin: int, high: bool) -> None:
        p = self.factory.pin(pin)
        p.drive_high() if high else p.drive_low()

    def _arm_follows_relay(self) -> None:
        pin = self.config.gate.arm_feedback_pin
        if pin is None or self._arm_stuck:
            return
        self.at(self.clock.t + ARM_MOVE_S, lambda: self._drive(pin, False))
        self.at(self.clock.t + ARM_CLOSE_S, lambda: self._drive(pin, True))

    def _restart(self) -> None:
        """Close the application (as on a restart) and build it again on the same disk."""
        assert self.app is not None
        self.emit("restart", {})
        # Leaving build_app closes everything: relay to its safe state first.
        assert self._current is not None
        self._current.__exit__(None, None, None)
        self._current = self._build()
        self.app = self._current.__enter__()
        pin = self.config.gate.fire_alarm_pin
        if self._fire_alarm and pin is not None:  # the new process's wiring reset it
            self._drive(pin, self.config.gate.fire_alarm_active_high)
        self.app.loop.start()


def _sim_config(scenario: Scenario, state_dir: Path) -> KioskConfig:
    overrides = dict(scenario.overrides)
    # The simulation's edges always win: no real GPIO, no window. A scenario
    # publishes (through the real outbox and client) only when it asks to with
    # `"mqtt.enabled" = true` in its overrides, so runs stay reproducible offline.
    overrides.update(
        {
            "device.data_dir": str(state_dir),
            "gate.pin_factory": "mock",
            "display.driver": "dummy",
            "display.fullscreen": False,
            "mqtt.enabled": scenario.overrides.get("mqtt.enabled") is True,
        }
    )
    return load_config(scenario.config, overrides)


def _sim_verifier(config: KioskConfig, clock: VirtualClock) -> Any:
    """The device verifier on the virtual clock, which counts as synchronised.

    The host's own clock state (adjtimex) must not change a scenario's outcome,
    so the synchronisation probe is fixed. ``clock.probe = "none"`` in the
    scenario's overrides keeps the device's behaviour (clock never trusted).
    """
    from kiosk.verify.clock import FixedProbe
    from kiosk.verify.factory import open_verifier

    probe = None if config.clock.probe == "none" else FixedProbe(True)
    return open_verifier(
        config.verify,
        wall_clock=clock.wall,
        state_dir=config.device.data_dir,
        clock=config.clock,
        policy=config.policy,
        probe=probe,
    )


def _sim_nik_verifier(config: KioskConfig, scenario: Scenario, clock: VirtualClock) -> Any:
    """A NIK verifier over the scenario's ``nik_list``, signed and installed for real.

    None when ``nik.mode`` is "off" (the gate then denies NIKs as disabled). The
    list is built with cheap KDF parameters under the run's data folder; the
    site's rate limits apply as configured.
    """
    if config.nik.mode == "off":
        return None
    from kiosk.nik import sim_nik_verifier

    return sim_nik_verifier(
        config.device.data_dir / "sim-niklist",
        scenario.nik_list,
        mode=config.nik.mode,
        wall_clock=clock.wall,
        monotonic=clock.monotonic,
        rate_burst=config.nik.rate_burst,
        rate_per_minute=config.nik.rate_per_minute,
        manual_timeout_s=config.nik.manual_timeout_s,
    )


def _load_gray(path: Path, step: Step) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"))
    except OSError as exc:
        raise ConfigError(
            f"step {step.index} (at={step.at}): scan: cannot read {path}: {exc}"
        ) from exc


def run_scenario(
    path: Path,
    log_path: Path | None = None,
    state_dir: Path | None = None,
    screens: Path | None = None,
) -> SimResult:
    """Run the scenario file at ``path``; write the JSON-lines log to ``log_path``.

    Args:
        path: the scenario TOML file.
        log_path: where to write the log (created/overwritten); None: keep in memory only.
        state_dir: ``device.data_dir`` for the run (counts, anti-passback);
            default a fresh temporary folder, removed afterwards.
        screens: save a PNG of every screen shown into this folder
            (``<virtual seconds>-<screen>.png``); None: none.

    Raises:
        ConfigError: the scenario or its config is invalid, or a step cannot run.
    """
    scenario = load_scenario(path)
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kiosk-sim-")))
        log_file = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_file = stack.enter_context(log_path.open("w", encoding="utf-8"))
        return _Run(scenario, log_file, state_dir, screens).run()
