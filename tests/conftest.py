"""Shared fixtures: SDL's dummy video driver and real Mosquitto brokers.

Tests talk to real brokers. ``mqtt_broker`` is the machine's broker on
127.0.0.1:1883 when one answers (as on CI and developer machines), otherwise a
private ``mosquitto`` started for the session; ``mosquitto_factory`` starts
private brokers on free ports for tests that stop or restart them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# pygame reads the driver when the display is initialised: set it before any test runs.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DCC = REPO_ROOT.parent / "shared" / "testdata" / "dcc"


def shared_dcc_suite() -> Path:
    """The shared EU DCC conformance suite; skips locally, fails on CI when it is missing.

    CI always lays ``shared/`` beside the clone, so a missing suite there is a
    broken set-up, not a reason to pass quietly.
    """
    if not SHARED_DCC.is_dir():
        message = f"EU DCC conformance data not found at {SHARED_DCC}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DCC


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Mosquitto:
    """A private mosquitto process on a free port; start/stop/restart keep the port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    extra_config: str = ""
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        """A hook for subclasses (the fixture registers each broker here to stop it)."""

    def start(self) -> None:
        """Start the broker and wait until it accepts connections (max 10 s)."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\nallow_anonymous true\npersistence false\n"
            f"{self.extra_config}\n"
        )
        log = (self.workdir / f"mosquitto-{self.port}.log").open("ab")
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not port_open(self.host, self.port, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the broker (SIGKILL: an outage, not a polite shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[type[Mosquitto]]:
    """Make private brokers (``mosquitto_factory(workdir=...)``); all killed after the test."""
    started: list[Mosquitto] = []

    class Factory(Mosquitto):
        def __post_init__(self) -> None:
            started.append(self)

    yield Factory
    for broker in started:
        broker.stop()


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """(host, port) of a running broker: the machine's, else a private one for the session."""
    if port_open("127.0.0.1", 1883):
        yield ("127.0.0.1", 1883)
        return
    broker = Mosquitto(workdir=tmp_path_factory.mktemp("broker"))
    broker.start()
    try:
        yield (broker.host, broker.port)
    finally:
        broker.stop()


@pytest.fixture
def artifacts_dir() -> Path:
    """Folder for files a person may want to look at after a run (screens, logs)."""
    path = REPO_ROOT / "tests" / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path

