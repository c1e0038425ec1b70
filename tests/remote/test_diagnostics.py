"""The ``diagnostics`` command: the self-test's non-actuating checks, run by the running gate.

End to end: a gate built with ``build_app`` (MockFactory pins, a real Mosquitto)
gets a diagnostics command signed by a test operator key; its report arrives on
``<root>/events``, matches docs/asyncapi.yaml, and the relay's pin history shows
no change. A check that raises is a ``fail`` in the report and the gate goes on.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gpiozero.pins.mock import MockFactory

from kiosk.app import build_app
from kiosk.central.remote import command_topic
from kiosk.config import load_config
from kiosk.remote.command import certify_operator, encode_command, sign_command
from kiosk.remote.diagnostics import CHECKS, MAX_DETAIL, GateDiagnostics
from kiosk.signing import save_public_key
from tests.conftest import Mosquitto
from tests.e2e.test_gate_safety import NOW, setup
from tests.e2e.test_gate_status import _Idle
from tests.telemetry.helpers import Recorder
from tests.telemetry.test_telemetry_contract import asyncapi, validator

T = int(NOW.timestamp())
AUTHORITY = Ed25519PrivateKey.generate()
OPERATOR = Ed25519PrivateKey.generate()
CERT = certify_operator(
    AUTHORITY,
    OPERATOR.public_key(),
    name="Helpdesk",
    role="technician",
    actions=["diagnostics", "open-once"],
    sites=["demo-site"],
    not_before=T - 3600,
    not_after=T + 3600,
)


class Gate:
    """A running gate, its pins and what it published on ``<root>/events``."""

    def __init__(self, tmp_path: Path, broker: Mosquitto) -> None:
        save_public_key(AUTHORITY.public_key(), tmp_path / "authority.pem")
        self.list_dir = tmp_path / "niklist"
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
                "nik.mode": "list",
                "nik.list_dir": str(self.list_dir),
            },
        )
        self.broker = broker
        self.root = self.config.mqtt_topic_root
        self.events = Recorder(broker.host, broker.port, f"{self.root}/events")
        self.events.wait_subscribed()
        self.factory = MockFactory()
        self.stop = threading.Event()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        payloads = [json.loads(m.payload) for m in self.events.messages]
        return [p for p in payloads if p["kind"] == kind]

    def wait(self, kind: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.of_kind(kind)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.of_kind(kind)

    def relay_history(self) -> list[tuple[float, bool]]:
        relay = self.factory.pin(self.config.gate.relay_pin)
        return [(s.timestamp, s.state) for s in relay.states]

    def send(self, action: str = "diagnostics", issued_at: int = T) -> str:
        """Publish one signed command for this gate; returns its id (hex)."""
        command_id = bytes(range(issued_at % 200, issued_at % 200 + 16))
        signed = sign_command(
            OPERATOR,
            action=action,
            site="demo-site",
            gate="gate-01",
            issued_at=issued_at,
            command_id=command_id,
        )
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        topic = command_topic("kiosk/{site}/{gate}", "demo-site", "gate-01")
        client.publish(topic, encode_command(CERT, signed), qos=1).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
        return command_id.hex()


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
            thread = threading.Thread(target=app.loop.run, args=(gate.stop,))
            thread.start()
            gate.thread = thread  # type: ignore[attr-defined]
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


def test_a_signed_diagnostics_command_reports_every_check_and_never_touches_the_relay(
    gate: Gate,
) -> None:
    time.sleep(1.2)  # long enough for the loop's frame rate to be measured
    before = gate.relay_history()
    command_id = gate.send()
    [report] = gate.wait("diagnostics", 1)
    assert [e["event"] for e in gate.wait("command", 1)] == ["command.diagnostics"]
    validator(asyncapi(), "diagnosticsEvent").validate(report)
    assert report["device"] == "demo-site/gate-01" and report["command"] == command_id
    checks = report["checks"]
    assert sorted(checks) == sorted(CHECKS)  # every check, none more
    assert checks["broker"]["status"] == "ok"
    assert checks["broker"]["detail"].startswith(f"connected to {gate.broker.host}:")
    assert checks["outbox"]["status"] == "ok" and "reports queued" in checks["outbox"]["detail"]
    # The test gate runs on the unsigned DSC folder and has no NIK list: both say so.
    assert checks["trust"]["status"] == "fail" and "UNSIGNED dev mode" in checks["trust"]["detail"]
    assert checks["nik_list"]["status"] == "fail"
    assert "no signed NIK list" in checks["nik_list"]["detail"]
    assert "frames/s" in checks["camera_rate"]["detail"]
    assert checks["identity"] == {"status": "ok", "detail": checks["identity"]["detail"]}
    assert checks["identity"]["detail"].startswith("skipped: no device certificate")
    assert report["result"] == "fail"
    assert gate.relay_history() == before  # not one change on the relay pin


def test_a_check_that_raises_is_a_fail_and_the_gate_keeps_working(gate: Gate) -> None:
    gate.list_dir.mkdir(parents=True, exist_ok=True)
    (gate.list_dir / "niklist.manifest").write_bytes(b"\xff" * 64)  # not a signed document
    gate.send()
    [report] = gate.wait("diagnostics", 1)
    nik = report["checks"]["nik_list"]
    assert nik["status"] == "fail" and nik["detail"].startswith("DocumentError")
    assert gate.thread.is_alive()  # type: ignore[attr-defined]
    # The gate still acts on the next command: an open-once pulses the relay once.
    gate.send("open-once", issued_at=T + 1)
    assert [e["event"] for e in gate.wait("command", 2)][-1] == "command.open_once"


class _Link:
    """A publisher's side as diagnostics sees it, recording what is sent."""

    def __init__(self, connected: bool, pending: int | None, error: str | None = None) -> None:
        self.connected = connected
        self._pending = pending
        self._error = error
        self.sent: list[bytes] = []
        self.notified = 0

    def stats(self) -> Any:
        return type("Stats", (), {"pending": self._pending, "last_error": self._error})()

    def send_event(self, payload: bytes) -> None:
        self.sent.append(payload)

    def notify(self) -> None:
        self.notified += 1


def _diagnostics(tmp_path: Path, link: _Link, health: Any, **overrides: Any) -> GateDiagnostics:
    config = load_config(
        None,
        {"device.data_dir": str(tmp_path), "mqtt.enabled": True, **overrides},
    )
    clock = iter(range(0, 1000, 5))
    return GateDiagnostics(
        config,
        health=health,
        frames=iter(range(0, 10_000, 60)).__next__,
        link=link,
        monotonic=lambda: float(next(clock)),
        wall_clock=lambda: datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
    )


def test_hostile_or_broken_facts_stay_bounded_and_never_raise(tmp_path: Path) -> None:
    def broken_health() -> Any:
        raise OSError("sensor bus gone")

    link = _Link(connected=False, pending=5000, error="x" * 5000 + "\n\x1b[31m")
    diagnostics = _diagnostics(tmp_path, link, broken_health)
    diagnostics("ab" * 16)
    [payload] = link.sent
    report = json.loads(payload)
    validator(asyncapi(), "diagnosticsEvent").validate(report)
    checks = report["checks"]
    assert checks["clock"] == {"status": "fail", "detail": "OSError: sensor bus gone"}
    assert checks["trust"]["status"] == "fail"
    assert checks["broker"]["status"] == "fail" and len(checks["broker"]["detail"]) == MAX_DETAIL
    assert all(c["detail"].isprintable() and len(c["detail"]) <= MAX_DETAIL
               for c in checks.values())  # fmt: skip
    assert checks["outbox"]["status"] == "warn"
    assert link.notified == 1


def test_a_healthy_gate_reports_ok_with_its_numbers(tmp_path: Path) -> None:
    health = type(
        "Health",
        (),
        {
            "clock_state": "synchronised",
            "clock_jump_s": None,
            "mode": "fresh",
            "bundle_version": 42,
            "bundle_age_s": 7200.0,
            "signers": 3,
        },
    )()
    link = _Link(connected=True, pending=2)
    diagnostics = _diagnostics(
        tmp_path, link, lambda: health, **{"camera.source": "picamera2", "camera.fps": 10}
    )
    report = diagnostics.report("cd" * 16)
    checks = report["checks"]
    assert checks["clock"] == {"status": "ok", "detail": "synchronised, 2026-12-03 12:00 UTC"}
    assert checks["trust"] == {"status": "ok", "detail": "bundle v42, 2.0 h old, 3 signers"}
    assert checks["camera_rate"] == {"status": "ok", "detail": "12.0 frames/s over 5 s (asked 10)"}
    assert checks["outbox"] == {"status": "ok", "detail": "2 reports queued"}
    assert checks["nik_list"]["detail"].startswith("skipped: nik.mode")
    assert report["result"] == "ok"
    # A bundle past its fresh period still lets the gate decide: a warning, not a failure.
    health.mode = "stale"
    assert diagnostics.report()["checks"]["trust"]["status"] == "warn"
    assert diagnostics.report()["result"] == "warn"


def test_the_operator_cli_waits_for_the_report_and_prints_it(
    gate: Gate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``kiosk central command diagnostics`` shows each check; a ``fail`` sets the exit status."""
    from types import SimpleNamespace

    from kiosk.central import remote
    from kiosk.cli import main
    from kiosk.signing import save_private_key

    save_private_key(OPERATOR, tmp_path / "operator.pem")
    (tmp_path / "operator.cert").write_bytes(CERT)
    # The gate runs on NOW; the CLI signs with its own clock: the same instant.
    monkeypatch.setattr(remote, "time", SimpleNamespace(time=lambda: T))
    status = main(["central", "command", "diagnostics", "--site", "demo-site",
                   "--gate", "gate-01", "--key", str(tmp_path / "operator.pem"),
                   "--cert", str(tmp_path / "operator.cert"),
                   "--broker", f"mqtt://{gate.broker.host}:{gate.broker.port}",
                   "--wait", "15"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "demo-site/gate-01: command.diagnostics"
    # The test gate's trust and NIK list checks fail (see above): so does the command.
    assert lines[1] == "  result: fail" and status == 1
    shown = {line.split()[0]: line.split()[1] for line in lines[2:]}
    assert sorted(shown) == sorted(CHECKS)
    assert shown["broker"] == "ok" and shown["trust"] == "fail"


def test_a_report_for_another_command_is_not_taken_for_ours(gate: Gate) -> None:
    from kiosk.central.remote import publish_command

    signed = sign_command(OPERATOR, action="diagnostics", site="demo-site", gate="gate-01",
                          issued_at=T, command_id=bytes(16))
    answers = publish_command(
        {"gate-01": encode_command(CERT, signed)},
        broker=f"mqtt://{gate.broker.host}:{gate.broker.port}", topic_root="kiosk/{site}/{gate}",
        site="demo-site", wait_s=4, report_ids={"gate-01": "ff" * 16})
    assert answers["gate-01"].outcome == "command.diagnostics"
    assert answers["gate-01"].report is None  # the report came, for command 00..00
    assert [r["command"] for r in gate.wait("diagnostics", 1)] == ["00" * 16]


def test_a_report_is_printed_without_terminal_controls() -> None:
    from kiosk.central.fleet.messages import Diagnostics
    from kiosk.central.remote import _report_text

    report = Diagnostics("s", "g", NOW, "warn",
                         {"clock": ("warn", "held \x1b[2J\x1b]0;owned\x07 \u202e 12:00")})
    text = _report_text(report)
    assert text.splitlines() == [
        "  result: warn", "  clock        warn  held ?[2J?]0;owned? ? 12:00"]
