"""TLS with per-device client certificates against Mosquitto with require_certificate."""

from __future__ import annotations

import json
import logging
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from kiosk.config.schema import MqttConfig
from kiosk.errors import ConfigError
from kiosk.telemetry import CountStore, MqttPublisher
from tests.conftest import Mosquitto

from .certs import Pki, make_pki
from .helpers import at, decisions, wait_until

DEVICE = "site-a/gate-01"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def tls_broker(mosquitto_factory: type[Mosquitto], tmp_path: Path, pki: Pki) -> Iterator[Mosquitto]:
    broker = mosquitto_factory(
        workdir=tmp_path,
        extra_config=(
            f"user root\ncafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
            "require_certificate true\nuse_identity_as_username true\n"
        ),
    )
    broker.start()
    yield broker
    broker.stop()  # explicitly: the factory's own clean-up does not reach every broker


def tls_cfg(broker: Mosquitto, pki: Pki, *, cert: Path | None, key: Path | None) -> MqttConfig:
    return MqttConfig(
        host="127.0.0.1",
        port=broker.port,
        keepalive_s=5,
        tls_ca=pki.ca,
        tls_cert=cert,
        tls_key=key,
        discovery=False,
    )


def subscriber(broker: Mosquitto, pki: Pki, topic: str) -> mqtt.Client:
    """The test's subscriber, itself authenticated with a client certificate."""
    got: list[bytes] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:6]}")
    c.tls_set(
        ca_certs=str(pki.ca),
        certfile=str(pki.client_cert),
        keyfile=str(pki.client_key),
        tls_version=ssl.PROTOCOL_TLS_CLIENT,
    )
    c.on_connect = lambda cl, *_: cl.subscribe(topic, qos=1)
    c.on_message = lambda _c, _u, m: got.append(bytes(m.payload))
    c.user_data_set(got)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


def test_publishes_over_tls_with_a_client_certificate(
    tls_broker: Mosquitto, pki: Pki, root: str, tmp_path: Path
) -> None:
    sub = subscriber(tls_broker, pki, f"{root}/counts")
    got: list[bytes] = sub.user_data_get()
    db = tmp_path / "counts.sqlite"
    cfg = tls_cfg(tls_broker, pki, cert=pki.client_cert, key=pki.client_key)
    try:
        with CountStore(db, DEVICE) as store:
            pub = MqttPublisher(cfg, root, DEVICE, db)
            try:
                pub.start()
                assert wait_until(lambda: pub.connected, 10.0)
                for i, d in enumerate(decisions(20)):
                    store.record(d, at(i))
                    pub.notify()
                assert pub.drain(10.0)
                assert wait_until(lambda: len(got) >= 20, 5.0)
                assert json.loads(got[-1])["totals"] == store.totals()
                assert pub.stats().last_error is None
            finally:
                pub.stop(5.0)
    finally:
        sub.loop_stop()
        sub.disconnect()


@pytest.mark.parametrize("which", ["none", "untrusted"])
def test_broker_refuses_a_gate_without_a_trusted_certificate(
    tls_broker: Mosquitto, pki: Pki, root: str, tmp_path: Path, which: str
) -> None:
    cert, key = (None, None) if which == "none" else (pki.other_cert, pki.other_key)
    db = tmp_path / "counts.sqlite"
    with CountStore(db, DEVICE) as store:
        store.record(decisions(1)[0], at(0))
        pub = MqttPublisher(tls_cfg(tls_broker, pki, cert=cert, key=key), root, DEVICE, db)
        try:
            pub.start()  # returns at once; the handshake fails in the background
            assert pub.drain(3.0) is False
            assert not pub.connected
            assert store.pending_count() == 1  # the count waits, nothing is lost
        finally:
            pub.stop(2.0)


def test_unreadable_certificate_does_not_stop_the_gate(pki: Pki, root: str, tmp_path: Path) -> None:
    cfg = MqttConfig(
        port=8883, tls_ca=pki.ca, tls_cert=tmp_path / "missing.pem", tls_key=pki.client_key
    )
    db = tmp_path / "counts.sqlite"
    with CountStore(db, DEVICE) as store:
        pub = MqttPublisher(cfg, root, DEVICE, db)
        pub.start()  # logs the error, does not raise
        store.record(decisions(1)[0], at(0))
        assert pub.stats().last_error == "tls: cannot load certificates"
        assert not pub.connected
        pub.stop(1.0)
        assert store.pending_count() == 1


def test_config_rules_for_tls_and_password(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^mqtt\.tls_cert: requires mqtt\.tls_key"):
        MqttConfig(tls_ca=pki.ca, tls_cert=pki.client_cert)
    with pytest.raises(ConfigError, match=r"requires mqtt\.tls_ca"):
        MqttConfig(tls_cert=pki.client_cert, tls_key=pki.client_key)
    with pytest.raises(ConfigError, match=r"requires mqtt\.username"):
        MqttConfig(password_file=tmp_path / "pw")


def test_password_from_file_is_used_and_never_logged(
    mosquitto_factory: type[Mosquitto], root: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd not installed")
    secret = "s3cret-Pa55-" + uuid.uuid4().hex[:8]
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "gate01", secret], check=True)
    broker = mosquitto_factory(
        workdir=tmp_path, extra_config=f"user root\nallow_anonymous false\npassword_file {passwd}\n"
    )
    broker.start()
    caplog.set_level(logging.DEBUG)
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text(secret + "\n")
    bad.write_text("wrong\n")
    try:
        for pw_file, expect in ((bad, False), (good, True)):
            db = tmp_path / f"{pw_file.name}.sqlite"
            cfg = MqttConfig(
                host="127.0.0.1",
                port=broker.port,
                keepalive_s=5,
                discovery=False,
                username="gate01",
                password_file=pw_file,
            )
            with CountStore(db, DEVICE) as store:
                store.record(decisions(1)[0], at(0))
                pub = MqttPublisher(cfg, root, DEVICE, db)
                try:
                    pub.start()
                    assert pub.drain(3.0 if not expect else 10.0) is expect
                    if not expect:
                        assert "Not authorized" in (pub.stats().last_error or "")
                finally:
                    pub.stop(2.0)
    finally:
        broker.stop()
    assert secret not in caplog.text
