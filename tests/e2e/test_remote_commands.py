"""Operators' signed commands through the real gate, a real broker and mock pins.

A built gate (``build_app`` with ``remote.commands = true``) subscribes to its
command topic on a private Mosquitto. Commands are signed and published the way
``kiosk central command`` does; the relay's MockFactory pin history shows what
actuated, and the gate's ``<root>/events`` messages show every outcome.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gpiozero.pins.mock import MockFactory

from kiosk.app import EXIT_RESTART, build_app
from kiosk.central.remote import Answer, command_topic, publish_command
from kiosk.remote.command import certify_operator, encode_command, sign_command
from kiosk.signing import save_public_key
from tests.conftest import Mosquitto
from tests.e2e.test_gate_safety import NOW, setup
from tests.e2e.test_gate_status import _Idle
from tests.gate.pinhistory import active_intervals
from tests.telemetry.helpers import Recorder

T = int(NOW.timestamp())
AUTHORITY = Ed25519PrivateKey.generate()
OPERATOR = Ed25519PrivateKey.generate()
CERT = certify_operator(
    AUTHORITY,
    OPERATOR.public_key(),
    name="Control room",
    role="supervisor",
    actions=["open-once", "emergency-on", "emergency-off", "restart"],
    sites=["*"],
    not_before=T - 3600,
    not_after=T + 3600,
)


def command(
    action: str = "open-once",
    *,
    gate: str | None = None,
    issued_at: int = T,
    key: Ed25519PrivateKey = OPERATOR,
) -> tuple[str, bytes]:
    target = gate or "gate-01"
    signed = sign_command(key, action=action, site="demo-site", gate=target, issued_at=issued_at)
    return target, encode_command(CERT, signed)


class Gate:
    """A running gate and what it published."""

    def __init__(self, tmp_path: Path, broker: Mosquitto) -> None:
        save_public_key(AUTHORITY.public_key(), tmp_path / "authority.pem")
        self.config, _, _ = setup(
            tmp_path,
            **{
                "device.site": "demo-site",
                "device.gate": "gate-01",
                "mqtt.enabled": True,
                "mqtt.host": broker.host,
                "mqtt.port": broker.port,
                "remote.commands": True,
                "verify.authority_keys": str(tmp_path / "authority.pem"),
            },
        )
        self.broker = broker
        self.root = self.config.mqtt_topic_root
        self.events = Recorder(broker.host, broker.port, f"{self.root}/events")
        self.events.wait_subscribed()
        self.factory = MockFactory()
        self.stop = threading.Event()

    def outcomes(self) -> list[str]:
        return [
            json.loads(m.payload)["event"]
            for m in self.events.messages
            if json.loads(m.payload)["kind"] == "command"
        ]

    def wait_outcomes(self, count: int, timeout: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.outcomes()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.outcomes()

    def relay_pulses(self) -> int:
        relay = self.factory.pin(self.config.gate.relay_pin)
        return len(active_intervals(relay, self.config.gate.relay_active_high))

    def send(self, gate: str, blob: bytes, *, retain: bool = False) -> None:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        client.publish(
            command_topic("kiosk/{site}/{gate}", "demo-site", gate), blob, qos=1, retain=retain
        ).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()


@pytest.fixture
def gate(tmp_path: Path, mosquitto_factory: type[Mosquitto]) -> Iterator[Gate]:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    gate = Gate(tmp_path, broker)
    status = Recorder(broker.host, broker.port, f"{gate.root}/status")
    status.wait_subscribed()
    try:
        with build_app(
            gate.config, source=_Idle(), pin_factory=gate.factory, wall_clock=lambda: NOW
        ) as app:
            gate.app = app  # type: ignore[attr-defined]
            thread = threading.Thread(target=app.loop.run, args=(gate.stop,))
            thread.start()
            deadline = time.monotonic() + 15
            while not status.messages and time.monotonic() < deadline:
                time.sleep(0.05)  # connected and subscribed once the first status is out
            assert status.messages, "the gate never reported"
            try:
                yield gate
            finally:
                gate.stop.set()
                thread.join(5)
    finally:
        status.close()
        gate.events.close()


def test_a_valid_open_once_actuates_exactly_once_and_a_replay_does_not(gate: Gate) -> None:
    target, blob = command()
    gate.send(target, blob)
    assert gate.wait_outcomes(1) == ["command.open_once"]
    assert gate.relay_pulses() == 1
    gate.send(target, blob)  # the very same message again
    assert gate.wait_outcomes(2) == ["command.open_once", "command_refused.replayed"]
    assert gate.relay_pulses() == 1


def test_forged_expired_retained_and_other_gate_commands_never_actuate(gate: Gate) -> None:
    thief = Ed25519PrivateKey.generate()
    cases = [
        (b"open-once", False),
        (command(key=thief)[1], False),
        (command(issued_at=T - 3600)[1], False),
        (command()[1], True),
    ]
    for blob, retain in cases:
        gate.send("gate-01", blob, retain=retain)
    # A command for another gate, published on this gate's topic by a wrong ACL.
    gate.send("gate-01", command(gate="gate-02")[1])
    outcomes = gate.wait_outcomes(5)
    assert sorted(outcomes) == sorted(
        [
            "command_refused.malformed",
            "command_refused.bad_signature",
            "command_refused.expired",
            "command_refused.retained",
            "command_refused.other_gate",
        ]
    )
    assert gate.relay_pulses() == 0


def test_remote_emergency_holds_the_gate_open_until_released(gate: Gate) -> None:
    gate.send(*command("emergency-on"))
    assert gate.wait_outcomes(1) == ["command.emergency_on"]
    app = gate.app  # type: ignore[attr-defined]
    assert str(app.loop.driver.machine.mode) == "emergency"
    gate.send(*command("emergency-off", issued_at=T + 1))
    assert gate.wait_outcomes(2)[-1] == "command.emergency_off"
    assert str(app.loop.driver.machine.mode) != "emergency"


def test_restart_ends_the_loop_with_the_restart_status(gate: Gate) -> None:
    gate.send(*command("restart"))
    assert gate.wait_outcomes(1) == ["command.restart"]
    app = gate.app  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while app.loop.exit_status is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.loop.exit_status == EXIT_RESTART


def test_the_central_publisher_collects_the_gate_outcome(gate: Gate) -> None:
    signed = sign_command(
        OPERATOR, action="open-once", site="demo-site", gate="gate-01", issued_at=T
    )
    outcomes = publish_command(
        {"gate-01": encode_command(CERT, signed)},
        broker=f"mqtt://{gate.broker.host}:{gate.broker.port}",
        topic_root="kiosk/{site}/{gate}",
        site="demo-site",
        wait_s=15,
    )
    assert outcomes == {"gate-01": Answer("command.open_once", None)}
    assert gate.relay_pulses() == 1
