"""The fleet page beside ``kiosk demo``: what a newcomer sees of the central side.

:func:`demo_fleet` makes sure a broker answers (the one asked for, else a
private ``mosquitto`` on a free port when the binary exists), starts the fleet
service in-process on ``127.0.0.1:8080`` (any free port when that is taken)
with a SQLite file and a token file in the demo's folder, and yields where the
gate should publish and where the page is. Everything stops on exit.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kiosk.central.fleet.config import load_fleet_config
from kiosk.central.fleet.service import build_service

DEMO_PORT = 8080


@dataclass(frozen=True)
class DemoFleet:
    """Where the demo gate publishes and where its fleet page is."""

    broker: tuple[str, int]
    url: str
    token: str
    token_file: Path


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _broker(workdir: Path, wanted: tuple[str, int]) -> Iterator[tuple[str, int] | None]:
    if _answers(*wanted):
        yield wanted
        return
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        yield None
        return
    port = _free_port()
    conf = workdir / "mosquitto-demo.conf"
    # Loopback only and for the demo's lifetime: anonymous access is acceptable here.
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    with (workdir / "mosquitto-demo.log").open("ab") as log:
        process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 5
        while not _answers("127.0.0.1", port):
            if process.poll() is not None or time.monotonic() > deadline:
                yield None
                return
            time.sleep(0.05)
        yield ("127.0.0.1", port)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()


def _token(path: Path) -> str:
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if len(token) >= 16:
            return token
    token = secrets.token_urlsafe(18)
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    return token


@contextlib.contextmanager
def demo_fleet(workdir: Path, wanted: tuple[str, int]) -> Iterator[DemoFleet | None]:
    """A broker and the fleet service for the demo; None when no broker can be had."""
    workdir.mkdir(parents=True, exist_ok=True)
    with _broker(workdir, wanted) as broker:
        if broker is None:
            yield None
            return
        token_file = workdir / "fleet-token"
        token = _token(token_file)
        port = DEMO_PORT if not _answers("127.0.0.1", DEMO_PORT) else 0
        config = load_fleet_config(None, {
            "mqtt.host": broker[0],
            "mqtt.port": broker[1],
            "mqtt.client_id": f"kiosk-fleet-demo-{secrets.token_hex(3)}",
            "mqtt.session_expiry_s": 0,
            "http.port": port,
            "http.token_file": str(token_file),
            "store.url": f"sqlite:///{workdir.resolve() / 'fleet.sqlite'}",
        })
        with build_service(config) as service:
            yield DemoFleet(broker, service.url, token, token_file)
