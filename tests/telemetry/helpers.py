"""Helpers for telemetry tests: decisions, a private Mosquitto, a recording subscriber."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from kiosk.config.schema import MqttConfig
from kiosk.decision import Decision, InputKind, Reason
from kiosk.telemetry import broker_reachable

MACHINE_BROKER = ("127.0.0.1", 1883)
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], object], timeout: float, step: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed (test helper only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def decisions(n: int) -> list[Decision]:
    """A deterministic mix of allows and denies over both inputs."""
    reasons = [Reason.OK, Reason.EXPIRED, Reason.OK, Reason.NIK_NOT_LISTED, Reason.REVOKED]
    out = []
    for i in range(n):
        reason = reasons[i % len(reasons)]
        kind = InputKind.NIK if reason is Reason.NIK_NOT_LISTED or i % 7 == 0 else InputKind.QR
        out.append(Decision(allowed=reason is Reason.OK, reason=reason, input=kind))
    return out


def at(i: int) -> datetime:
    return T0 + timedelta(seconds=i)


@dataclass
class Broker:
    """A private Mosquitto on a free port that a test may stop and start."""

    port: int
    conf: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def cfg(self) -> MqttConfig:
        return MqttConfig(host="127.0.0.1", port=self.port, keepalive_s=5)

    def start(self) -> None:
        assert self.proc is None
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_until(lambda: broker_reachable("127.0.0.1", self.port), 5.0):
            raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class Recorder:
    """A real subscriber that records every message it gets, thread-safely."""

    host: str
    port: int
    topic: str
    persistent: bool = False
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        # persistent: a 3.1.1 clean_session=False session, which Mosquitto keeps
        # across its own restarts (with persistence on) more reliably than a v5
        # session-expiry session, so messages published while this receiver is
        # reconnecting are queued for it instead of lost.
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv311
            if self.persistent
            else MQTTProtocolVersion.MQTTv5,
            clean_session=False if self.persistent else None,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect_async(self.host, self.port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, c: mqtt.Client, u: object, f: object, rc: ReasonCode, p: object) -> None:
        if not rc.is_failure:
            c.subscribe(self.topic, qos=1)

    def _on_subscribe(
        self, c: mqtt.Client, u: object, mid: int, rcs: list[ReasonCode], p: Properties | None
    ) -> None:
        self._subscribed.set()

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def wait_subscribed(self, timeout: float = 10.0) -> None:
        assert self._subscribed.wait(timeout), "subscriber did not connect"

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def clear_retained(host: str, port: int, root: str) -> None:
    """Remove retained messages a test left on a shared broker."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-clean-{uuid.uuid4().hex[:8]}")
    try:
        c.connect(host, port)
    except OSError:
        return
    c.loop_start()
    for sub in ("availability", "status"):
        c.publish(f"{root}/{sub}", b"", qos=1, retain=True).wait_for_publish(2)
    c.disconnect()
    c.loop_stop()
