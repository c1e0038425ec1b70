"""The gate's operating mode reaches the retained MQTT status, through the real wiring.

A fire alarm (NC contact opened) on a MockFactory pin puts the built gate in
emergency; the status a real (private) Mosquitto broker holds then says
``gate_mode: emergency``, and the mode from before once the contact closes.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
from gpiozero.pins.mock import MockFactory

from kiosk.app import build_app
from kiosk.camera.base import Frame, FrameSource
from tests.conftest import Mosquitto
from tests.e2e.test_gate_safety import NOW, setup
from tests.telemetry.helpers import Recorder


class _Idle(FrameSource):
    """An empty camera view at ~50 frames/s, for as long as the loop runs."""

    def __init__(self) -> None:
        self._count = 0

    def read(self) -> Frame | None:
        time.sleep(0.02)
        self._count += 1
        return Frame(gray=np.full((120, 160), 200, np.uint8), timestamp=time.monotonic(),
                     index=self._count)

    def close(self) -> None:
        """Nothing to release."""


def _published(recorder: Recorder, want: str, timeout: float = 15.0) -> bool:
    """True once the newest status on the broker has ``gate_mode == want``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        modes = [json.loads(m.payload)["gate_mode"] for m in recorder.messages]
        if modes and modes[-1] == want:
            return True
        time.sleep(0.05)
    return False


def test_fire_alarm_shows_as_emergency_in_the_status(
        tmp_path: Path, mosquitto_factory: type[Mosquitto]) -> None:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    config, _, _ = setup(tmp_path, **{
        "mqtt.enabled": True, "mqtt.host": broker.host, "mqtt.port": broker.port})
    recorder = Recorder(broker.host, broker.port, f"{config.mqtt_topic_root}/status")
    recorder.wait_subscribed()
    factory = MockFactory()
    stop = threading.Event()
    try:
        with build_app(config, source=_Idle(), pin_factory=factory,
                       wall_clock=lambda: NOW) as app:
            loop_thread = threading.Thread(target=app.loop.run, args=(stop,))
            loop_thread.start()
            try:
                time.sleep(0.5)  # the first turns read the verifier's health
                # normal, or degraded where the clock probe says "unsynchronised"
                before = str(app.loop.driver.machine.mode)
                assert before in ("normal", "degraded")
                assert _published(recorder, before)
                factory.pin(config.gate.fire_alarm_pin).drive_high()  # NC contact opened
                assert _published(recorder, "emergency")
                factory.pin(config.gate.fire_alarm_pin).drive_low()
                assert _published(recorder, before)
            finally:
                stop.set()
                loop_thread.join(5)
    finally:
        recorder.close()
