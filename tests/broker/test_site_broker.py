"""config/mosquitto/ on a real Mosquitto: TLS client certificates and per-gate ACLs.

One config (site-broker.conf) and one ACL (acl): gates and central services by
certificate on the TLS listener, the fleet service by password on the loopback
listener, read-only either way.

Certificates come from the enrolment CA exactly as in the field (gate key and
CSR made by :class:`DeviceIdentity`, signed with a one-time token); the broker
runs the shipped config with only paths and the port substituted. Whether a
publish got through is judged by what a subscriber with read rights receives,
not by the publisher's acknowledgement (Mosquitto acknowledges denied QoS 1
publishes).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from kiosk.central.enrol import EnrolmentCA
from kiosk.config import KioskConfig, load_config
from kiosk.provision.identity import DeviceIdentity
from kiosk.verify.atomic import atomic_write
from tests.conftest import REPO_ROOT, free_port, port_open

CONFIG = REPO_ROOT / "config" / "mosquitto"


@dataclass(frozen=True)
class Creds:
    cert: Path
    key: Path


@dataclass
class Site:
    port: int
    ca: Path
    creds: dict[str, Creds]
    fleet_port: int = 0  # the loopback listener (user fleet, password)
    fleet_password: Path = Path()


def gate_creds(ca: EnrolmentCA, folder: Path, site: str, gate: str) -> Creds:
    device = DeviceIdentity(folder)
    csr = device.prepare(f"{site}/{gate}").read_bytes()
    issued = ca.enrol(csr, ca.tokens.issue(site, gate))
    device.install(issued.pem, ca.cert_pem, f"{site}/{gate}")
    return Creds(device.cert_path, device.key_path)


def service_creds(ca: EnrolmentCA, folder: Path, name: str) -> Creds:
    key_pem, issued = ca.issue_service(name)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / f"{name}.key", key_pem, mode=0o600)
    atomic_write(folder / f"{name}.crt", issued.pem)
    return Creds(folder / f"{name}.crt", folder / f"{name}.key")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.skip("mosquitto not installed (./install.sh --dev installs it)")
    tmp = tmp_path_factory.mktemp("site-broker")
    ca = EnrolmentCA.create(tmp / "ca")
    etc = tmp / "etc-mosquitto-kiosk"
    etc.mkdir()
    key_pem, server = ca.issue_server(["localhost", "127.0.0.1"])
    (etc / "broker.key").write_bytes(key_pem)
    (etc / "broker.crt").write_bytes(server.pem)
    (etc / "ca.crt").write_bytes(ca.cert_pem)
    shutil.copy(CONFIG / "acl", etc / "acl")
    fleet_password = tmp / "fleet-password"
    fleet_password.write_text(uuid.uuid4().hex + "\n")
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([passwd, "-c", "-b", str(etc / "passwords"), "fleet",
                    fleet_password.read_text().strip()], check=True, capture_output=True)
    port, fleet_port = free_port(), free_port()
    conf = (CONFIG / "site-broker.conf").read_text()
    assert "listener 8883" in conf and "/etc/mosquitto/kiosk/" in conf
    assert "listener 1884 127.0.0.1" in conf
    conf = conf.replace("listener 8883", f"listener {port} 127.0.0.1")
    conf = conf.replace("listener 1884 127.0.0.1", f"listener {fleet_port} 127.0.0.1")
    conf = conf.replace("/etc/mosquitto/kiosk/", f"{etc}/")
    conf += f"\npersistence false\nlog_dest file {tmp}/mosquitto.log\nlog_type all\n"
    # Mosquitto started as root drops to the mosquitto user unless told otherwise.
    conf += "user root\n"
    (tmp / "mosquitto.conf").write_text(conf)
    process = subprocess.Popen([binary, "-c", str(tmp / "mosquitto.conf")])
    deadline = time.monotonic() + 10
    while not (port_open("127.0.0.1", port, 0.2) and port_open("127.0.0.1", fleet_port, 0.2)):
        assert process.poll() is None, (tmp / "mosquitto.log").read_text()
        assert time.monotonic() < deadline, "mosquitto did not start"
        time.sleep(0.05)
    creds = {
        "A": gate_creds(ca, tmp / "gate-a", "mall-a", "gate-01"),
        "B": gate_creds(ca, tmp / "gate-b", "mall-a", "gate-02"),
        "fleet": service_creds(ca, tmp / "svc", "fleet"),
        "operator": service_creds(ca, tmp / "svc", "operator"),
        "homeassistant": service_creds(ca, tmp / "svc", "homeassistant"),
    }
    # A certificate from another CA (same identity), and an expired one from ours.
    foreign = EnrolmentCA.create(tmp / "foreign")
    creds["foreign"] = gate_creds(foreign, tmp / "gate-foreign", "mall-a", "gate-01")
    past = datetime.now(UTC) - timedelta(days=30)
    old_ca = EnrolmentCA.open(tmp / "ca", clock=lambda: past)
    device = DeviceIdentity(tmp / "gate-expired", clock=lambda: past)
    expired = old_ca.enrol(
        device.prepare("mall-a/gate-03").read_bytes(),
        old_ca.tokens.issue("mall-a", "gate-03"),
        days=2,
    )
    device.install(expired.pem, ca.cert_pem, "mall-a/gate-03")
    creds["expired"] = Creds(device.cert_path, device.key_path)
    yield Site(port, etc / "ca.crt", creds, fleet_port, fleet_password)
    process.terminate()
    process.wait(10)


# Loopback-listener logins: (user, password); "" = the fleet's real password.
PASSWORD_LOGINS = {
    "fleet-pw": ("fleet", ""),
    "fleet-wrong-pw": ("fleet", "not-the-password"),
    "gate-pw": ("mall-a/gate-01", "guess"),
    "anonymous": ("", ""),
}


class Client:
    """A paho client with a certificate (or a password, PASSWORD_LOGINS); records
    CONNACK, SUBACKs and messages."""

    def __init__(self, site: Site, who: str) -> None:
        self.connected = threading.Event()
        self.failed = threading.Event()
        self.subacks: dict[int, list[int]] = {}
        self.messages: list[tuple[str, bytes]] = []
        self._suback = threading.Condition()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"{who}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        port = site.port
        if who in PASSWORD_LOGINS:  # the loopback listener: user name and password
            port = site.fleet_port
            user, password = PASSWORD_LOGINS[who]
            if user:
                password = password or site.fleet_password.read_text().strip()
                self.client.username_pw_set(user, password)
        else:
            creds = site.creds[who]
            self.client.tls_set(
                ca_certs=str(site.ca),
                certfile=str(creds.cert),
                keyfile=str(creds.key),
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.failed.set()
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        try:
            self.client.connect("127.0.0.1", port, keepalive=10)
        except (ssl.SSLError, OSError):
            self.failed.set()
            return
        self.client.loop_start()

    def _on_connect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", True):
            self.failed.set()
        else:
            self.connected.set()

    def _on_subscribe(self, _c: object, _u: object, mid: int, codes: list, _p: object) -> None:
        with self._suback:
            self.subacks[mid] = [c.value for c in codes]
            self._suback.notify_all()

    def wait_connected(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected.is_set():
                return True
            if self.failed.is_set():
                return False
            time.sleep(0.02)
        return False

    def subscribe(self, topic: str) -> int:
        """Subscribe; returns the SUBACK reason code (0/1 granted, 0x87 not authorised)."""
        _, mid = self.client.subscribe(topic, qos=1)
        with self._suback:
            assert self._suback.wait_for(lambda: mid in self.subacks, 5)
        return self.subacks[mid][0]

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def received(client: Client, topic: str, payload: bytes, timeout: float = 1.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (topic, payload) in client.messages:
            return True
        time.sleep(0.02)
    return False


def reads_telemetry_of(reader: Client, gate: Client) -> bytes:
    """``reader`` subscribes to all telemetry and receives gate-01's; returns the mark sent."""
    for suffix in ("availability", "status", "counts", "events"):
        assert reader.subscribe(f"kiosk/+/+/{suffix}") in (0, 1)
    mark = uuid.uuid4().hex.encode()
    for suffix in ("availability", "status", "counts", "events"):
        gate.publish(f"kiosk/mall-a/gate-01/{suffix}", mark)
        assert received(reader, f"kiosk/mall-a/gate-01/{suffix}", mark), suffix
    return mark


@pytest.fixture
def clients(site: Site) -> Iterator[dict[str, Client]]:
    made: dict[str, Client] = {}

    class Factory(dict[str, Client]):
        def __missing__(self, who: str) -> Client:
            made[who] = self[who] = Client(site, who)
            return made[who]

    yield Factory()
    for client in made.values():
        client.close()


def test_enrolled_gate_writes_its_own_telemetry_and_not_another_gates(
    clients: dict[str, Client],
) -> None:
    fleet, gate_a = clients["fleet"], clients["A"]
    assert fleet.wait_connected() and gate_a.wait_connected()
    mark = reads_telemetry_of(fleet, gate_a)
    # Gate A posing as gate B, or as a gate of another site: dropped by the broker.
    for topic in ("kiosk/mall-a/gate-02/counts", "kiosk/port-b/gate-01/status"):
        gate_a.publish(topic, mark)
        assert not received(fleet, topic, mark, timeout=1.0), topic


def test_gate_reads_only_its_own_commands_and_the_fleet_reads_no_command(
    clients: dict[str, Client],
) -> None:
    gate_a, gate_b, operator = clients["A"], clients["B"], clients["operator"]
    assert gate_a.wait_connected() and gate_b.wait_connected() and operator.wait_connected()
    # Mosquitto 2.0 grants the SUBSCRIBE and checks read access on every delivery:
    # what counts is that nothing of B's reaches A (or the fleet service).
    fleet = clients["fleet"]
    assert fleet.wait_connected()
    for spy, topic in [
        (gate_a, "kiosk/mall-a/gate-02/command"),
        (gate_a, "kiosk/#"),
        (fleet, "kiosk/+/+/command"),
    ]:
        assert spy.subscribe(topic) in (0, 1, 0x87)
    assert gate_a.subscribe("kiosk/mall-a/gate-01/command") in (0, 1)
    assert gate_b.subscribe("kiosk/mall-a/gate-02/command") in (0, 1)
    mark = uuid.uuid4().hex.encode()
    operator.publish("kiosk/mall-a/gate-02/command", mark)
    assert received(gate_b, "kiosk/mall-a/gate-02/command", mark)
    assert not received(gate_a, "kiosk/mall-a/gate-02/command", mark, timeout=0.5)
    assert not received(fleet, "kiosk/mall-a/gate-02/command", mark, timeout=0.3)
    own = uuid.uuid4().hex.encode()
    operator.publish("kiosk/mall-a/gate-01/command", own)
    assert received(gate_a, "kiosk/mall-a/gate-01/command", own)
    # Telemetry of B never reaches A either (gates read no telemetry).
    gate_b.publish("kiosk/mall-a/gate-02/status", mark)
    assert not received(gate_a, "kiosk/mall-a/gate-02/status", mark, timeout=0.5)
    # A gate cannot forge a command, not even to itself.
    gate_b.publish("kiosk/mall-a/gate-02/command", b"forged")
    assert not received(gate_b, "kiosk/mall-a/gate-02/command", b"forged", timeout=1.0)


# What would actuate or impersonate a gate: its commands, distributions, telemetry.
ACTUATING = (
    "kiosk/mall-a/gate-01/command",
    "kiosk/_all/_all/dist/trust",
    "kiosk/mall-a/_all/dist/trust",
    "kiosk/mall-a/gate-01/dist/trust",
    "kiosk/mall-a/gate-01/status",
    "kiosk/mall-a/gate-01/counts",
)


@pytest.mark.parametrize("who", ["fleet", "fleet-pw"])
def test_fleet_service_reads_telemetry_and_cannot_publish_a_command(
        clients: dict[str, Client], who: str) -> None:
    """By certificate (TLS) or password (loopback), the fleet account only reads."""
    fleet, gate_a, operator = clients[who], clients["A"], clients["operator"]
    assert fleet.wait_connected() and gate_a.wait_connected() and operator.wait_connected()
    reads_telemetry_of(fleet, gate_a)
    # The gate listens where a command or a distribution would reach it, the fleet
    # account where its own telemetry would: nothing the fleet account sends arrives.
    assert gate_a.subscribe("kiosk/mall-a/gate-01/command") in (0, 1)
    assert gate_a.subscribe("kiosk/_all/_all/dist/#") in (0, 1)
    assert gate_a.subscribe("kiosk/mall-a/_all/dist/#") in (0, 1)
    assert gate_a.subscribe("kiosk/mall-a/gate-01/dist/#") in (0, 1)
    own = uuid.uuid4().hex.encode()
    operator.publish("kiosk/mall-a/gate-01/command", own)  # the check can fail
    assert received(gate_a, "kiosk/mall-a/gate-01/command", own)
    forged = b"forged-" + uuid.uuid4().hex.encode()
    for topic in ACTUATING:
        fleet.publish(topic, forged)
    for topic in ACTUATING:
        assert not received(gate_a, topic, forged, timeout=0.3), topic
        assert not received(fleet, topic, forged, timeout=0.3), topic
    # Not even a Home Assistant discovery config, which any gate may write; nor may
    # the operator's account (it has no business with Home Assistant).
    hass = clients["homeassistant"]
    assert hass.wait_connected() and hass.subscribe("homeassistant/#") in (0, 1)
    discovery = "homeassistant/sensor/kiosk_mall-a_gate-01/allowed/config"
    gate_a.publish(discovery, own)
    assert received(hass, discovery, own)
    fleet.publish(discovery, forged)
    operator.publish(discovery, forged + b"-operator")
    assert not received(hass, discovery, forged, timeout=0.5)
    assert not received(hass, discovery, forged + b"-operator", timeout=0.5)
    # Nor does it read the commands the operator sends.
    assert fleet.subscribe("kiosk/+/+/command") in (0, 1, 0x87)
    secret = uuid.uuid4().hex.encode()
    operator.publish("kiosk/mall-a/gate-01/command", secret)
    assert received(gate_a, "kiosk/mall-a/gate-01/command", secret)
    assert not received(fleet, "kiosk/mall-a/gate-01/command", secret, timeout=0.5)


@pytest.mark.parametrize("who", ["fleet-wrong-pw", "gate-pw", "anonymous"])
def test_the_loopback_listener_takes_only_the_fleet_password(site: Site, who: str) -> None:
    client = Client(site, who)
    try:
        assert not client.wait_connected(3.0)
    finally:
        client.close()


@pytest.mark.parametrize("group", ["", "fleet"])
def test_kiosk_fleet_serve_counts_an_enrolled_gate_through_the_loopback_listener(
        site: Site, clients: dict[str, Client], tmp_path: Path, group: str) -> None:
    """The real fleet service, logged in as `fleet` by password: a gate's counts arrive."""
    from kiosk.decision import Decision, InputKind, Reason
    from kiosk.telemetry.payloads import CountsHeader, counts_payload, decision_change
    from tests.central.helpers import fleet_config, gate_view, running, wait_until

    config = fleet_config(tmp_path, site.fleet_port, **{
        "mqtt.username": "fleet", "mqtt.password_file": str(site.fleet_password),
        "mqtt.shared_group": group})
    gate_a = clients["A"]
    assert gate_a.wait_connected()
    store = uuid.uuid4().hex
    allow = Decision(allowed=True, reason=Reason.OK, input=InputKind.QR)
    with running(config) as fleet:
        for seq in (1, 2):
            now = datetime.now(UTC)
            gate_a.publish("kiosk/mall-a/gate-01/counts", counts_payload(
                CountsHeader("mall-a/gate-01", store, 1, seq, seq), at_first=now, at=now,
                bucket_s=60, change=decision_change(allow), delta={"allowed": 1},
                totals={"allowed": seq}))
        assert wait_until(lambda: (gate_view(fleet, "mall-a", "gate-01") or {})
                          .get("totals") == {"allowed": 2}, 10)


@pytest.mark.parametrize("who", ["foreign", "expired"])
def test_foreign_and_expired_certificates_are_refused(site: Site, who: str) -> None:
    client = Client(site, who)
    try:
        assert not client.wait_connected(3.0)
    finally:
        client.close()


def test_the_gates_own_publisher_delivers_counts_through_the_acl(
    site: Site, clients: dict[str, Client], tmp_path: Path
) -> None:
    """The real MqttPublisher with the enrolled certificate: every count arrives."""
    import json

    from kiosk.config.schema import MqttConfig
    from kiosk.telemetry import CountStore, MqttPublisher
    from tests.telemetry.helpers import at, decisions, wait_until

    fleet = clients["fleet"]
    assert fleet.wait_connected() and fleet.subscribe("kiosk/+/+/counts") in (0, 1)
    root, device = "kiosk/mall-a/gate-01", "mall-a/gate-01"
    creds = site.creds["A"]
    cfg = MqttConfig(
        host="localhost",
        port=site.port,
        keepalive_s=5,
        tls_ca=site.ca,
        tls_cert=creds.cert,
        tls_key=creds.key,
        discovery=True,
    )
    db = tmp_path / "counts.sqlite"
    with CountStore(db, device) as store:
        pub = MqttPublisher(cfg, root, device, db)
        try:
            pub.start()
            assert wait_until(lambda: pub.connected, 10.0)
            for i, decision in enumerate(decisions(5)):
                store.record(decision, at(i))
                pub.notify()
            assert pub.drain(10.0)

            def counts() -> list[bytes]:
                return [p for t, p in fleet.messages if t == f"{root}/counts"]

            assert wait_until(lambda: len(counts()) >= 5, 5)
            assert json.loads(counts()[-1])["totals"] == store.totals()
            assert pub.stats().last_error is None
        finally:
            pub.stop(5.0)


def _gate_config(site: Site, who: str, tmp_path: Path, gate: str = "gate-01") -> KioskConfig:

    creds = site.creds[who]
    return load_config(
        None,
        {
            "device.site": "mall-a",
            "device.gate": gate,
            "device.data_dir": str(tmp_path / "state"),
            "mqtt.host": "localhost",
            "mqtt.port": site.port,
            "mqtt.tls_ca": str(site.ca),
            "mqtt.tls_cert": str(creds.cert),
            "mqtt.tls_key": str(creds.key),
        },
    )


def test_selftest_broker_and_identity_checks(site: Site, tmp_path: Path) -> None:
    from kiosk.provision.checks import broker_check, identity_check

    config = _gate_config(site, "A", tmp_path)
    assert broker_check(config).startswith("connected to localhost")
    assert identity_check(config).startswith("mall-a/gate-01, valid until")
    with pytest.raises(RuntimeError, match="certificate"):
        broker_check(_gate_config(site, "foreign", tmp_path), timeout_s=3)
    expired = _gate_config(site, "expired", tmp_path, gate="gate-03")
    with pytest.raises(RuntimeError, match="not valid now"):
        identity_check(expired)
    with pytest.raises(RuntimeError):
        broker_check(expired, timeout_s=3)
    with pytest.raises(RuntimeError, match="this gate is mall-a/gate-02"):
        identity_check(_gate_config(site, "A", tmp_path, gate="gate-02"))


def test_a_release_published_by_the_operator_reaches_enrolled_gates_through_the_acl(
        site: Site, tmp_path: Path) -> None:
    """Two real gates (build_app, TLS, their enrolment certificates) on the shipped ACL."""
    from contextlib import ExitStack

    from gpiozero.pins.mock import MockFactory

    from kiosk.app import build_app
    from kiosk.central.publish import prepare_release, publish_release, scope_root
    from kiosk.verify.bundlefile import install_bundle, read_installed
    from tests.e2e.test_gate_safety import NOW, setup
    from tests.e2e.test_gate_status import _Idle
    from tests.verify.bundles import KEYS, make_bundle, signed, write_authority

    authority = write_authority(tmp_path)
    operator = site.creds["operator"]
    tls: dict[str, Path | None] = {"ca": site.ca, "cert": operator.cert, "key": operator.key}
    broker = f"mqtts://127.0.0.1:{site.port}"
    gates: dict[str, Any] = {}
    with ExitStack() as stack:
        loops = []
        for who, name in (("A", "gate-01"), ("B", "gate-02")):
            folder = tmp_path / name
            folder.mkdir()
            config, _, _ = setup(folder, **{
                "device.site": "mall-a", "device.gate": name,
                "verify.trust_source": "bundle", "verify.authority_keys": str(authority),
                "verify.reload_interval_s": 0.2, "remote.distribution": True,
                "mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": site.port,
                "mqtt.tls_ca": str(site.ca), "mqtt.tls_cert": str(site.creds[who].cert),
                "mqtt.tls_key": str(site.creds[who].key),
            })  # fmt: skip
            bundle = config.device.data_dir / config.verify.bundle_file
            bundle.parent.mkdir(parents=True, exist_ok=True)
            install_bundle(signed(make_bundle(version=1, issued_at=NOW - timedelta(hours=2))),
                           bundle, KEYS)
            app = stack.enter_context(build_app(config, source=_Idle(),
                                                pin_factory=MockFactory(), wall_clock=lambda: NOW))
            stop = threading.Event()
            thread = threading.Thread(target=app.loop.run, args=(stop,))
            thread.start()
            loops.append((stop, thread))
            gates[name] = bundle

        def installed(name: str) -> int:
            found = read_installed(gates[name], KEYS)
            return found.version if found else 0

        def wait(predicate: Any, timeout: float = 20.0) -> bool:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if predicate():
                    return True
                time.sleep(0.1)
            return False

        def publish(version: int, scope: str) -> None:
            path = tmp_path / f"bundle-v{version}.cose"
            path.write_bytes(signed(make_bundle(version=version,
                                                issued_at=NOW - timedelta(hours=1))))
            release, contents = prepare_release("trust", [path], authority)
            publish_release(release, contents, kind="trust", broker=broker, tls=tls,
                            root=scope_root("kiosk/{site}/{gate}", scope))

        try:
            time.sleep(1.0)  # both connected and subscribed
            publish(2, "fleet")
            assert wait(lambda: installed("gate-01") == 2 and installed("gate-02") == 2)
            publish(3, "site:mall-a")
            assert wait(lambda: installed("gate-01") == 3 and installed("gate-02") == 3)
            publish(4, "gate:mall-a/gate-02")  # a canary: only that gate
            assert wait(lambda: installed("gate-02") == 4)
            time.sleep(1.0)
            assert installed("gate-01") == 3
        finally:
            for stop, _ in loops:
                stop.set()
            for _, thread in loops:
                thread.join(5)
