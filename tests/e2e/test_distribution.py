"""Trust bundles distributed over a real broker to running gates.

Three gates built with ``build_app`` (signed-bundle mode, mock pins, dummy
screen) on a private Mosquitto; the centre publishes with
``kiosk central publish``'s own functions. Each gate must install the new
bundle through the install checks, its running verifier must load it, and
forged, older or truncated releases must change nothing.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gpiozero.pins.mock import MockFactory

from kiosk.app import build_app
from kiosk.central.publish import (
    offers_for,
    prepare_release,
    publish_offers,
    publish_release,
    scope_root,
)
from kiosk.remote import installers
from kiosk.remote.distribution import CHUNK_BYTES, chunk_topic, descriptor_topic, release_for
from kiosk.signing import TRUST_BUNDLE, sign_document
from kiosk.verify.bundlefile import install_bundle, read_installed
from kiosk.verify.revocation import Revocation
from tests.conftest import Mosquitto
from tests.e2e.test_gate_safety import NOW, setup
from tests.e2e.test_gate_status import _Idle
from tests.telemetry.helpers import Recorder
from tests.verify.bundles import AUTHORITY, KEYS, make_bundle, signed, write_authority

ROOT = "kiosk/{site}/{gate}"


def bundle_file(
    tmp_path: Path, version: int, *, key: Ed25519PrivateKey = AUTHORITY, entries: int = 0
) -> Path:
    """A signed bundle of ``version`` (``entries`` revocation hashes make it large)."""
    hashes = b"".join(
        sorted(hashlib.sha256(i.to_bytes(4, "big")).digest()[:16] for i in range(entries))
    )
    revocation = Revocation.from_obj({"uci": hashes}) if entries else None
    blob = signed(
        make_bundle(version=version, issued_at=NOW - timedelta(hours=1), revocation=revocation), key
    )
    path = tmp_path / f"bundle-v{version}.cose"
    path.write_bytes(blob)
    return path


class Fleet:
    """Gates running in threads, each with its own folder and pins."""

    def __init__(self, tmp_path: Path, broker: Mosquitto) -> None:
        self.tmp = tmp_path
        self.broker = broker
        self.url = f"mqtt://{broker.host}:{broker.port}"
        self.authority = write_authority(tmp_path)
        self.stack = ExitStack()
        self.apps: dict[str, object] = {}
        self.loops: list[tuple[threading.Event, threading.Thread]] = []

    def stop_all(self) -> None:
        """End every loop before any gate closes its screen (pygame is one per process)."""
        for stop, _thread in self.loops:
            stop.set()
        for _stop, thread in self.loops:
            thread.join(5)

    def start(self, gate: str) -> None:
        folder = self.tmp / gate
        folder.mkdir()
        config, _, _ = setup(
            folder,
            **{
                "device.site": "mall",
                "device.gate": gate,
                "verify.trust_source": "bundle",
                "verify.authority_keys": str(self.authority),
                "verify.reload_interval_s": 0.2,
                "mqtt.enabled": True,
                "mqtt.host": self.broker.host,
                "mqtt.port": self.broker.port,
                "remote.distribution": True,
            },
        )
        state = config.device.data_dir
        state.mkdir(parents=True, exist_ok=True)
        install_bundle(
            signed(make_bundle(version=1, issued_at=NOW - timedelta(hours=2))),
            state / config.verify.bundle_file,
            KEYS,
        )
        app = self.stack.enter_context(
            build_app(config, source=_Idle(), pin_factory=MockFactory(), wall_clock=lambda: NOW)
        )
        stop = threading.Event()
        thread = threading.Thread(target=app.loop.run, args=(stop,))
        thread.start()
        self.loops.append((stop, thread))
        self.apps[gate] = (app, config)

    def installed(self, gate: str) -> int:
        _app, config = self.apps[gate]  # type: ignore[misc]
        bundle = read_installed(config.device.data_dir / config.verify.bundle_file, KEYS)
        return bundle.version if bundle else 0

    def loaded(self, gate: str) -> int:
        app, _config = self.apps[gate]  # type: ignore[misc]
        return int(app.loop._verifier.health().bundle_version)

    def wait(self, predicate: object, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return True
            time.sleep(0.1)
        return False


@pytest.fixture
def fleet(tmp_path: Path, mosquitto_factory: type[Mosquitto]) -> Iterator[Fleet]:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    fleet = Fleet(tmp_path, broker)
    with fleet.stack:
        try:
            yield fleet
        finally:
            fleet.stop_all()


def publish(fleet: Fleet, path: Path, scope: str = "fleet") -> None:
    release, contents = prepare_release("trust", [path], fleet.authority)
    publish_release(release, contents, kind="trust", root=scope_root(ROOT, scope), broker=fleet.url)


def test_three_gates_install_a_published_bundle_and_a_late_gate_catches_up(fleet: Fleet) -> None:
    for gate in ("g1", "g2"):
        fleet.start(gate)
    time.sleep(1.0)  # connected and subscribed
    # Large enough to need many chunks: 3,000 revocation entries.
    started = time.monotonic()
    publish(fleet, bundle_file(fleet.tmp, 2, entries=3000))
    assert fleet.wait(lambda: all(fleet.installed(g) == 2 for g in ("g1", "g2")))
    took = time.monotonic() - started
    assert took < 20
    assert fleet.wait(lambda: all(fleet.loaded(g) == 2 for g in ("g1", "g2")))
    # A gate that was off during the publish gets the retained release when it connects.
    fleet.start("g3")
    assert fleet.wait(lambda: fleet.installed("g3") == 2)


def test_forged_older_and_truncated_releases_change_nothing(fleet: Fleet) -> None:
    fleet.start("g1")
    status = Recorder(fleet.broker.host, fleet.broker.port, "kiosk/mall/g1/status")
    status.wait_subscribed()
    time.sleep(1.0)
    publish(fleet, bundle_file(fleet.tmp, 3), scope="gate:mall/g1")
    assert fleet.wait(lambda: fleet.installed("g1") == 3)

    # Forged: signed by another key. The centre's own check refuses it, so publish by hand.
    forged = bundle_file(fleet.tmp / "..", 4, key=Ed25519PrivateKey.generate()).read_bytes()
    root = scope_root(ROOT, "site:mall")
    release = release_for("trust", 4, {"bundle": forged})
    publish_release(release, {"bundle": forged}, kind="trust", root=root, broker=fleet.url)
    # Truncated: the descriptor of a real v5 bundle whose last chunk never arrives.
    real = bundle_file(fleet.tmp, 5, entries=2000).read_bytes()
    assert len(real) > CHUNK_BYTES
    truncated = release_for("trust", 5, {"bundle": real})
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(fleet.broker.host, fleet.broker.port)
    client.loop_start()
    fleet_root = scope_root(ROOT, "fleet")
    ref = truncated.files[0]
    client.publish(
        chunk_topic(fleet_root, "trust", ref.sha256, 0), real[:CHUNK_BYTES], qos=1, retain=True
    ).wait_for_publish(5)
    client.publish(
        chunk_topic(fleet_root, "trust", ref.sha256, 1),
        real[CHUNK_BYTES : 100 + CHUNK_BYTES],
        qos=1,
        retain=True,
    ).wait_for_publish(5)
    client.publish(
        descriptor_topic(fleet_root, "trust"), truncated.to_json(), qos=1, retain=True
    ).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()

    def refused_reported() -> bool:
        errors = [json.loads(m.payload).get("dist_error") for m in status.messages]
        return any(e and e.startswith("trust: ") for e in errors)

    try:
        assert fleet.wait(refused_reported)
    finally:
        status.close()
    time.sleep(0.5)
    assert fleet.installed("g1") == 3 and fleet.loaded("g1") == 3
    # Older: a v2 offer for the site is not fetched at all.
    publish(fleet, bundle_file(fleet.tmp, 2), scope="site:mall")
    time.sleep(1.0)
    assert fleet.installed("g1") == 3


def bundle_blob(version: int, body_format: int) -> bytes:
    """A signed bundle of ``version`` written in ``body_format``."""
    body = make_bundle(version=version, issued_at=NOW - timedelta(hours=1)).to_cbor(body_format)
    return sign_document(body, AUTHORITY, content_type=TRUST_BUNDLE)


def publish_variants(fleet: Fleet, blobs: list[bytes]) -> None:
    """``kiosk central publish`` with one bundle file per body format, for the fleet."""
    paths = []
    for index, blob in enumerate(blobs):
        paths.append(fleet.tmp / f"variant-{index}.cose")
        paths[-1].write_bytes(blob)
    prepared = [prepare_release("trust", [p], fleet.authority) for p in paths]
    root = scope_root(ROOT, "fleet")
    files = {r.files[0].sha256: c["bundle"] for r, c in prepared}
    offers = offers_for("trust", root, [r for r, _ in prepared])
    publish_offers(offers, files, kind="trust", root=root, broker=fleet.url)


def test_each_gate_gets_the_newest_format_it_reads(
        fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet.start("new")
    # Firmware from before format 2: same code, but it reads format 1 only.
    monkeypatch.setattr(installers, "ACCEPTED_FORMATS", (1,))
    fleet.start("old")
    status = Recorder(fleet.broker.host, fleet.broker.port, "kiosk/mall/old/status")
    status.wait_subscribed()
    time.sleep(1.0)

    def installed_blob(gate: str) -> bytes:
        _app, config = fleet.apps[gate]  # type: ignore[misc]
        return (config.device.data_dir / config.verify.bundle_file).read_bytes()

    v2_f1, v2_f2 = bundle_blob(2, 1), bundle_blob(2, 2)
    publish_variants(fleet, [v2_f2, v2_f1])
    assert fleet.wait(lambda: fleet.installed("new") == 2 and fleet.installed("old") == 2)
    assert installed_blob("new") == v2_f2  # the newest format it reads
    assert installed_blob("old") == v2_f1  # not refused into trust_expired

    # A release in format 2 only: the new gate takes it; the old one says why it cannot.
    publish_variants(fleet, [bundle_blob(3, 2)])
    assert fleet.wait(lambda: fleet.installed("new") == 3)

    def no_readable_format() -> bool:
        errors = [json.loads(m.payload).get("dist_error") for m in status.messages]
        return "trust: format" in errors

    try:
        assert fleet.wait(no_readable_format)
    finally:
        status.close()
    assert fleet.installed("old") == 2
