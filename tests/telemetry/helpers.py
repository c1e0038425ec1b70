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
from typing import Any

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

    def on_prefix(self, prefix: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic.startswith(prefix + "/")]

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


def dedup_counts(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a receiver keeps: one message per (store, seq_first, seq), ordered by seq.

    Re-sent copies must be identical; ranges must be disjoint and together cover
    1..max without a gap (the contract in docs/mqtt.md).
    """
    by_range: dict[tuple[str, int, int], dict[str, Any]] = {}
    for body in bodies:
        key = (body["store"], body["seq_first"], body["seq"])
        if key in by_range:
            assert by_range[key] == body, f"re-sent copy of {key} differs"
        by_range[key] = body
    kept = sorted(by_range.values(), key=lambda b: b["seq"])
    expected_first = 1
    for body in kept:
        assert body["seq_first"] == expected_first, (
            f"gap or overlap before seq {body['seq_first']}: expected {expected_first}"
        )
        expected_first = body["seq"] + 1
    return kept


def assert_exact(kept: list[dict[str, Any]], totals: dict[str, int]) -> None:
    """The newest message's totals and the sum of all deltas both equal ``totals``."""
    assert kept, "no counts received"
    assert kept[-1]["totals"] == totals
    summed: dict[str, int] = {name: 0 for name in totals}
    for body in kept:
        for name, n in body["delta"].items():
            summed[name] = summed.get(name, 0) + n
    assert {k: v for k, v in summed.items() if v} == {k: v for k, v in totals.items() if v}
