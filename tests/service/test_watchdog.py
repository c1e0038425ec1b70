"""systemd readiness and watchdog through the real gate wiring and a fake NOTIFY_SOCKET.

The test plays systemd: it binds a unix datagram socket, points the gate's
Notifier at it and reads what the gate sends while its scan loop runs in a
thread on real frames. A frame source that hangs (a driver stuck in read())
must stop the WATCHDOG pings; they resume when it recovers.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.app import build_app
from kiosk.camera.base import Frame, FrameSource
from kiosk.config import load_config
from kiosk.errors import CameraTimeout
from kiosk.service import Heartbeat, Notifier


class FakeSystemd:
    """A bound datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, dict[str, str]]] = []

    def receive(self, timeout: float) -> list[dict[str, str]]:
        """Every message that arrives within ``timeout`` seconds."""
        got: list[dict[str, str]] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            fields = dict(line.split("=", 1) for line in data.decode().split("\n"))
            self.messages.append((time.monotonic(), fields))
            got.append(fields)
        return got

    def wait_for(self, key: str, timeout: float) -> list[dict[str, str]]:
        """Messages until one carries ``key=1`` (returned with it) or ``timeout`` passes."""
        got: list[dict[str, str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got += self.receive(0.1)
            if any(m.get(key) == "1" for m in got):
                break
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(tmp_path / "notify")
    yield fake
    fake.close()


class HangingSource(FrameSource):
    """Blank frames at ~50 fps; ``hang`` blocks read() until ``release``; ``fail`` times out."""

    def __init__(self) -> None:
        self.running = threading.Event()
        self.running.set()
        self.timing_out = False
        self.stopped = threading.Event()
        self._index = 0

    def read(self) -> Frame | None:
        while not self.running.wait(0.05):
            if self.stopped.is_set():
                return None
        if self.stopped.is_set():
            return None
        time.sleep(0.02)
        if self.timing_out:
            raise CameraTimeout("no frame within 0.02 s")
        self._index += 1
        return Frame(np.zeros((48, 64), np.uint8), time.monotonic(), self._index)

    def close(self) -> None:
        self.stopped.set()
        self.running.set()


def watchdogs(messages: list[dict[str, str]]) -> int:
    return sum(1 for m in messages if m.get("WATCHDOG") == "1")


def test_ready_then_watchdog_stops_while_source_hangs_and_resumes(
    tmp_path: Path, systemd: FakeSystemd
) -> None:
    (tmp_path / "trust").mkdir()
    config = load_config(
        None,
        {
            "device.data_dir": str(tmp_path / "state"),
            "verify.trust_dir": str(tmp_path / "trust"),
            "gate.pin_factory": "mock",
            "display.driver": "dummy",
            "display.fullscreen": False,
            "mqtt.enabled": False,
        },
    )
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": "400000"})
    heartbeat = Heartbeat(notifier)
    assert heartbeat.ping_interval_s == pytest.approx(0.1)
    source = HangingSource()
    stop = threading.Event()
    with build_app(config, source=source, pin_factory=MockFactory(), heartbeat=heartbeat) as app:
        loop = threading.Thread(target=app.loop.run, args=(stop,), name="test-scan-loop")
        loop.start()
        try:
            first = systemd.receive(1.0)
            assert first[0].get("READY") == "1"
            assert first[0].get("STATUS") == "gate degraded"  # no trust bundle: dev, degraded
            assert watchdogs(first) >= 5  # ~every 0.1 s while frames flow

            source.running.clear()  # the driver hangs inside read()
            systemd.receive(0.15)  # a ping already in flight may still arrive
            assert watchdogs(systemd.receive(1.0)) == 0

            source.running.set()  # it recovers
            assert watchdogs(systemd.receive(0.6)) >= 3
        finally:
            stop.set()
            source.close()
            loop.join(5)
    assert not loop.is_alive()
    notifier.close()


def test_camera_fault_keeps_pings_only_for_its_grace(systemd: FakeSystemd) -> None:
    clock = [0.0]
    notifier = Notifier(str(systemd.path))
    beat = Heartbeat(notifier, monotonic=lambda: clock[0], fault_grace_s=5.0, ping_interval_s=1.0)
    for _ in range(3):  # frames flow
        beat.turn(progress=True)
        clock[0] += 1.0
    for _ in range(10):  # camera times out, recovery running: 5 s grace
        beat.turn(progress=False, fault=True)
        clock[0] += 1.0
    got = systemd.receive(0.2)
    assert got[0]["READY"] == "1"
    assert watchdogs(got) == 3 + 5
    beat.camera_absent(True)  # reported absent: serving KTP only, no restart
    beat.turn(progress=False, fault=True)
    assert watchdogs(systemd.receive(0.2)) == 1
    notifier.close()


def test_abstract_socket_address_and_no_socket_no_op() -> None:
    name = f"kiosk-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(1)
    try:
        with Notifier.from_env({"NOTIFY_SOCKET": "@" + name}) as notifier:
            assert notifier.status("mode\nnormal\x00")
            assert server.recv(100) == b"STATUS=mode normal "
            assert notifier.stopping()
            assert server.recv(100) == b"STOPPING=1"
    finally:
        server.close()
    off = Notifier.from_env({})
    assert not off.enabled and not off.ready() and not off.watchdog()
    off.close()
    off.close()


def test_watchdog_pid_of_another_process_disables_pings() -> None:
    env = {"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
    with Notifier.from_env(env) as notifier:
        assert notifier.watchdog_usec is None
    env["WATCHDOG_PID"] = str(os.getpid())
    with Notifier.from_env(env) as notifier:
        assert notifier.watchdog_usec == 1000
        assert not notifier.watchdog()  # nothing listens: reported, never raised


def test_kiosk_run_process_notifies_ready_watchdog_and_stopping(
    tmp_path: Path, systemd: FakeSystemd
) -> None:
    """The service's own entry point (``kiosk run``) as systemd starts it."""
    import signal
    import subprocess
    import sys

    from PIL import Image

    (tmp_path / "trust").mkdir()
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray(np.full((120, 160), 128, np.uint8)).save(frames / "a.png")
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'[device]\ndata_dir = "{tmp_path / "state"}"\n'
        f'[verify]\ntrust_dir = "{tmp_path / "trust"}"\n'
        f'[camera]\nsource = "files"\npath = "{frames}"\nloop = true\nfps = 20.0\n'
        '[gate]\npin_factory = "mock"\n'
        '[display]\ndriver = "dummy"\nfullscreen = false\n'
        "[mqtt]\nenabled = false\n"
    )
    env = dict(os.environ, NOTIFY_SOCKET=str(systemd.path), WATCHDOG_USEC="400000")
    env.pop("WATCHDOG_PID", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        got = systemd.wait_for("READY", 30.0)
        assert any(m.get("READY") == "1" for m in got), "no READY=1 from kiosk run"
        assert watchdogs(got + systemd.receive(1.0)) >= 3
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        assert any(m.get("STOPPING") == "1" for m in systemd.receive(0.3))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
