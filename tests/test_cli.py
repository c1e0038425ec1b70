"""The command line: check-config exit codes and the demo a newcomer runs first."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from kiosk.cli import main
from tests.conftest import REPO_ROOT


def test_check_config_accepts_the_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(REPO_ROOT / "config" / "kiosk.toml")]) == 0
    assert "ok" in capsys.readouterr().out


def test_check_config_rejects_with_file_line_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nport = 70000\n")
    assert main(["check-config", str(bad)]) == 2
    assert f"{bad}:2: mqtt.port: 70000 is above the maximum 65535" in capsys.readouterr().err


class _Subscriber:
    """A real MQTT subscriber collecting messages under a topic filter."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append(
            (m.topic, m.payload, bool(m.retain))
        )
        self.client.connect(host, port)
        self.client.loop_start()
        assert self._subscribed.wait(5), "subscription not acknowledged"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_demo_once_plays_every_sample_and_publishes_counts(
    tmp_path: Path, mqtt_broker: tuple[str, int]
) -> None:
    host, port = mqtt_broker
    subscriber = _Subscriber(host, port, "kiosk/demo-site/demo-gate/#")
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "kiosk",
                "demo",
                "--once",
                "--fast",
                "--headless",
                "--workdir",
                str(tmp_path / "demo"),
                "--mqtt",
                f"{host}:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert lines[-2] == "allowed: 2, denied: 4"
        assert any("04-tampered" in line and "signature_invalid" in line for line in lines)
        assert any("01-valid-vaccination" in line and "relay=on" in line for line in lines)
        assert "publishing counts to mqtt://" in result.stdout
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(_counts(subscriber)) < 6:
            time.sleep(0.05)
    finally:
        subscriber.close()
    counts = _counts(subscriber)
    assert len(counts) >= 6  # at least one report per decision (QoS 1: duplicates possible)
    assert max(c["totals"]["allowed"] for c in counts) == 2
    assert max(c["totals"]["denied"] for c in counts) == 4
    statuses = [json.loads(p) for t, p, _ in subscriber.messages if t.endswith("/status")]
    assert statuses and statuses[-1]["decoder"] in ("zxing", "pyzbar")
    assert isinstance(statuses[-1]["camera_fps"], int | float)
    # Personal data never leaves the device: no names or raw payloads on the wire.
    wire = b"".join(payload for _, payload, _ in subscriber.messages)
    assert b"HC1:" not in wire and b"*" not in wire


def _counts(subscriber: _Subscriber) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(p) for t, p, _ in subscriber.messages if t.endswith("/counts")]


def test_demo_without_broker_says_so_and_still_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import free_port

    port = free_port()
    status = main(
        [
            "demo",
            "--once",
            "--fast",
            "--headless",
            "--workdir",
            str(tmp_path),
            "--mqtt",
            f"127.0.0.1:{port}",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert f"no MQTT broker answers at mqtt://127.0.0.1:{port}" in out
    assert "allowed: 2, denied: 4" in out
    # Second run reuses the material and the counts keep growing across restarts.
    assert (
        main(["demo", "--once", "--fast", "--headless", "--workdir", str(tmp_path), "--no-mqtt"])
        == 0
    )
    assert "allowed 4, denied 8" in capsys.readouterr().out


def test_debug_logs_never_hold_names_birth_dates_or_payloads(tmp_path: Path) -> None:
    # The demo's sample holder is "Erika Musterfrau", born 1964-08-12 (kiosk.verify.issuer).
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kiosk",
            "-v",
            "demo",
            "--once",
            "--fast",
            "--headless",
            "--no-mqtt",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "DEBUG" in result.stderr  # the check below reads real debug output
    for secret in ("Musterfrau", "MUSTERFRAU", "Erika", "ERIKA", "1964-08-12", "HC1:"):
        assert secret not in result.stderr, secret
        assert secret not in result.stdout, secret
