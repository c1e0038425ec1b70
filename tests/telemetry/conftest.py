"""Fixtures for telemetry tests: a real Mosquitto per test, and a recording subscriber."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kiosk.config.schema import MqttConfig
from kiosk.telemetry import broker_reachable

from .helpers import MACHINE_BROKER, Broker, Recorder, free_port


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every publisher a test starts must have stopped its threads by the end."""
    yield
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        left = [t.name for t in threading.enumerate() if t.name == "kiosk-outbox"]
        if not left:
            return
        time.sleep(0.05)
    pytest.fail(f"threads left running: {left}")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A stopped private broker; the test calls ``start()``. Killed at teardown."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto binary not installed")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    # "user root": mosquitto started as root otherwise drops to user "mosquitto",
    # which cannot write its log/persistence into pytest's private tmp_path (the
    # option is ignored when the tests do not run as root).
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence false",
        "user root",
        f"log_dest file {tmp_path}/mosquitto.log",
        "log_type all",
    ]
    conf.write_text("\n".join(lines) + "\n")
    b = Broker(port=port, conf=conf)
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def machine_broker() -> MqttConfig:
    if not broker_reachable(*MACHINE_BROKER):
        pytest.skip("no MQTT broker on 127.0.0.1:1883")
    # No discovery on the shared broker: tests must not leave retained Home
    # Assistant configs behind (the discovery tests use private brokers).
    return MqttConfig(
        host=MACHINE_BROKER[0], port=MACHINE_BROKER[1], keepalive_s=5, discovery=False
    )


@pytest.fixture
def root() -> str:
    """A unique topic root, so tests never see each other's retained messages."""
    return f"kiosk-test/{uuid.uuid4().hex[:12]}/gate-01"


@pytest.fixture
def recorder_factory() -> Iterator[Callable[[str, int, str], Recorder]]:
    made: list[Recorder] = []

    def make(host: str, port: int, topic: str) -> Recorder:
        r = Recorder(host, port, topic)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()
