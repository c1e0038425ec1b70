"""Offline enrolment end to end: CA, one-time token, device key and CSR, certificate install.

Everything runs through the ``kiosk`` command line (``kiosk central ...`` in
the centre, ``kiosk provision`` on the gate) on real files and real X.509.
"""

from __future__ import annotations

import shutil
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kiosk.central.enrol import EnrolmentCA
from kiosk.cli import main
from kiosk.config import load_config
from kiosk.errors import EnrolmentError, ProvisionError
from kiosk.provision.answers import resolve
from kiosk.provision.identity import DeviceIdentity
from tests.conftest import REPO_ROOT

WIRING = [
    "--broker", "mqtts://broker.site.example:8883",
    "--fire-alarm", "none",
    "--passage", "23",
    "--exit-button", "none",
    "--arm-feedback", "none",
    "--staff-keys", "5,6",
    "--ktp", "serial:/dev/ttyACM0",
    "--relay", "active-low",
]  # fmt: skip


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """An installed gate's /etc/kiosk: the shipped config, nothing else."""
    etc = tmp_path / "etc-kiosk"
    etc.mkdir()
    shutil.copy(REPO_ROOT / "config" / "kiosk.toml", etc / "kiosk.toml")
    return etc


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "ca"
    assert main(["central", "ca", "init", "--ca-dir", str(folder)]) == 0
    return folder


def token_for(ca_dir: Path, site: str, gate: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["central", "token", site, gate, "--ca-dir", str(ca_dir)]) == 0
    return capsys.readouterr().out.strip()


def provision(etc: Path, *extra: str) -> int:
    return main(["provision", "--config", str(etc / "kiosk.toml"), *extra])


def test_offline_enrolment_end_to_end(
    gate: Path, ca_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = token_for(ca_dir, "mall-a", "gate-03", capsys)
    assert provision(gate, "--site", "mall-a", "--gate", "gate-03", *WIRING) == 0
    out = capsys.readouterr().out
    assert "mall-a/gate-03" in out and "fire alarm not wired" in out
    key = gate / "device.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    config = load_config(gate / "kiosk.toml")
    assert config.gate.fire_alarm_pin is None and config.gate.relay_active_high is False
    assert (config.gate.staff_confirm_pin, config.gate.staff_refuse_pin) == (5, 6)
    assert (config.nik.input, config.nik.serial_port) == ("serial", "/dev/ttyACM0")
    assert (config.mqtt.host, config.mqtt.port) == ("broker.site.example", 8883)
    assert "# 2 .. 27" in (gate / "kiosk.toml").read_text()  # comments kept

    # The centre: the CSR travels, the key does not.
    carried = ca_dir.parent / "carried"
    carried.mkdir()
    shutil.copy(gate / "device.csr", carried / "device.csr")
    assert b"PRIVATE" not in (carried / "device.csr").read_bytes()
    args = ["central", "enrol", str(carried / "device.csr"), "--token", token]
    assert main([*args, "--ca-dir", str(ca_dir)]) == 0
    assert "valid" in capsys.readouterr().out
    cert = x509.load_pem_x509_certificate((carried / "device.crt").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "mall-a/gate-03"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=89) < lifetime <= timedelta(days=90, minutes=10)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    # The token is spent: a second request with it is refused.
    assert main([*args, "--ca-dir", str(ca_dir)]) == 1

    # Back on the gate.
    install = ["--install-cert", str(carried / "device.crt"), "--no-selftest"]
    assert provision(gate, *install) == 0
    config = load_config(gate / "kiosk.toml")
    assert config.mqtt.tls_cert == gate / "device.crt"
    assert config.mqtt.tls_key == key and config.mqtt.tls_ca == gate / "broker-ca.crt"
    assert not (gate / "device.csr").exists()


def test_unstated_fire_alarm_is_refused_not_defaulted(gate: Path) -> None:
    wiring = WIRING[:2] + WIRING[4:]  # everything but --fire-alarm
    with pytest.raises(ProvisionError, match="--fire-alarm: not answered"):
        resolve({"site": "s", "gate": "g", "broker": "none"}, ask=None)
    assert provision(gate, "--site", "s", "--gate", "g", *wiring) == 1
    assert load_config(gate / "kiosk.toml").gate.fire_alarm_pin == 24  # unchanged
    assert not (gate / "device.key.new").exists()


def test_answers_file_and_bad_answers(gate: Path, tmp_path: Path) -> None:
    answers = tmp_path / "gate.toml"
    answers.write_text(
        'site = "port-b"\ngate = "g7"\nbroker = "none"\nfire_alarm = 24\npassage = 23\n'
        'exit_button = 16\narm_feedback = "none"\nstaff_keys = "none"\nktp = "keypad"\n'
        'relay = "active-high"\n'
    )
    assert provision(gate, "--answers", str(answers)) == 0
    config = load_config(gate / "kiosk.toml")
    assert config.device.device_id == "port-b/g7" and config.gate.exit_button_pin == 16
    assert config.mqtt.enabled is False and config.gate.fire_alarm_pin == 24
    # A flag overrides the file; a bad id is refused with the rule.
    assert provision(gate, "--answers", str(answers), "--site", "a/b") == 1
    assert provision(gate, "--answers", str(answers), "--passage", "none") == 1
    answers.write_text(answers.read_text() + "colour = 1\n")
    assert provision(gate, "--answers", str(answers)) == 1


def test_ca_refuses_wrong_identity_expired_unknown_and_hostile_tokens(tmp_path: Path) -> None:
    clock = [datetime(2026, 6, 1, tzinfo=UTC)]
    ca = EnrolmentCA.create(tmp_path / "ca", clock=lambda: clock[0])
    device = DeviceIdentity(tmp_path / "dev", clock=lambda: clock[0])
    csr = device.prepare("mall-a/gate-01").read_bytes()
    other = ca.tokens.issue("mall-a", "gate-02")
    with pytest.raises(
        EnrolmentError, match="names mall-a/gate-01, the token is for mall-a/gate-02"
    ):
        ca.enrol(csr, other)
    with pytest.raises(EnrolmentError, match="unknown"):
        ca.enrol(csr, "not-a-token")
    with pytest.raises(EnrolmentError, match="too long"):
        ca.enrol(csr, "x" * 10_000)
    with pytest.raises(EnrolmentError, match="at most"):
        ca.enrol(b"A" * 20_000, other)
    with pytest.raises(EnrolmentError, match="not a PEM"):
        ca.enrol(
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", other
        )
    late = ca.tokens.issue("mall-a", "gate-01", valid_hours=1)
    clock[0] += timedelta(hours=2)
    with pytest.raises(EnrolmentError, match="expired"):
        ca.enrol(csr, late)
    with pytest.raises(ValueError, match="site id"):
        ca.tokens.issue("mall/a", "gate-01")
    # The token book holds hashes only.
    assert late not in (tmp_path / "ca" / "tokens.json").read_text()
    assert stat.S_IMODE((tmp_path / "ca" / "tokens.json").stat().st_mode) == 0o600


def test_gate_refuses_foreign_expired_and_other_key_certificates(tmp_path: Path) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    ca = EnrolmentCA.create(tmp_path / "ca", clock=lambda: now)
    foreign = EnrolmentCA.create(tmp_path / "foreign", clock=lambda: now)
    device = DeviceIdentity(tmp_path / "dev", clock=lambda: now)
    csr = device.prepare("s1/g1").read_bytes()
    cert = ca.enrol(csr, ca.tokens.issue("s1", "g1")).pem
    with pytest.raises(ProvisionError, match="not signed by that CA"):
        device.install(cert, foreign.cert_pem, "s1/g1")
    with pytest.raises(ProvisionError, match="this gate is s1/g2"):
        device.install(cert, ca.cert_pem, "s1/g2")
    later = DeviceIdentity(tmp_path / "dev", clock=lambda: now + timedelta(days=91))
    with pytest.raises(ProvisionError, match="not now"):
        later.install(cert, ca.cert_pem, "s1/g1")
    other = DeviceIdentity(tmp_path / "other", clock=lambda: now)
    other.prepare("s1/g1")
    with pytest.raises(ProvisionError, match="another key"):
        other.install(cert, ca.cert_pem, "s1/g1")
    assert not device.install(cert, ca.cert_pem, "s1/g1").rotated


def test_key_rotation_keeps_the_old_key_until_the_new_certificate_is_installed(
    tmp_path: Path,
) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    ca = EnrolmentCA.create(tmp_path / "ca", clock=lambda: now)
    device = DeviceIdentity(tmp_path / "dev", clock=lambda: now)
    first = ca.enrol(device.prepare("s1/g1").read_bytes(), ca.tokens.issue("s1", "g1")).pem
    device.install(first, ca.cert_pem, "s1/g1")
    old_key = device.key_path.read_bytes()

    # Re-provisioning without rotation: same key, a new certificate.
    again = ca.enrol(device.prepare("s1/g1").read_bytes(), ca.tokens.issue("s1", "g1")).pem
    assert not device.install(again, ca.cert_pem, "s1/g1").rotated
    assert device.key_path.read_bytes() == old_key

    # Rotation: the pending key waits; the gate keeps working with the old pair meanwhile.
    csr = device.prepare("s1/g1", rotate=True).read_bytes()
    assert device.key_path.read_bytes() == old_key and device.pending_key_path.exists()
    assert not device.install(first, ca.cert_pem, "s1/g1").rotated  # old pair still valid
    assert device.pending_key_path.exists()
    rotated = ca.enrol(csr, ca.tokens.issue("s1", "g1")).pem
    assert device.install(rotated, ca.cert_pem, "s1/g1").rotated
    new_key = device.key_path.read_bytes()
    assert new_key != old_key and not device.pending_key_path.exists()
    assert stat.S_IMODE(device.key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(rotated)
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)


def test_selftest_json_and_trust_checks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import json

    from kiosk.provision.checks import trust_check

    assert main(["selftest", "--sim", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True and report["failed"] == 0
    parts = {c["part"]: c["status"] for c in report["checks"]}
    assert parts["broker"] == "SKIP" and parts["identity"] == "SKIP" and parts["relay"] == "PASS"
    # A gate on the unsigned DSC folder fails the trust check loudly.
    (tmp_path / "trust").mkdir()
    dev = load_config(
        None,
        {"device.data_dir": str(tmp_path / "s"), "verify.trust_dir": str(tmp_path / "trust")},
    )
    with pytest.raises(RuntimeError, match="UNSIGNED dev mode"):
        trust_check(dev)
    none = load_config(None, {"device.data_dir": str(tmp_path / "s2"),
                              "verify.trust_source": "bundle"})  # fmt: skip
    with pytest.raises(RuntimeError, match="no signed trust bundle"):
        trust_check(none)


@pytest.fixture
def enrolment_server(tmp_path: Path) -> Iterator[tuple[str, Path, EnrolmentCA]]:
    from kiosk.central.enrol.serve import EnrolmentServer
    from tests.conftest import free_port

    ca = EnrolmentCA.create(tmp_path / "online-ca")
    key_pem, issued = ca.issue_server(["localhost"])
    (tmp_path / "srv.key").write_bytes(key_pem)
    (tmp_path / "srv.crt").write_bytes(issued.pem)
    (tmp_path / "enrol-ca.crt").write_bytes(ca.cert_pem)
    port = free_port()
    server = EnrolmentServer(("127.0.0.1", port), ca, tmp_path / "srv.crt", tmp_path / "srv.key")
    thread = threading.Thread(target=server.serve_forever, name="test-enrol", daemon=True)
    thread.start()
    yield f"https://localhost:{port}", tmp_path / "enrol-ca.crt", ca
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_online_enrolment_with_a_one_time_token(
    gate: Path,
    enrolment_server: tuple[str, Path, EnrolmentCA],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, enrol_ca, ca = enrolment_server
    token = ca.tokens.issue("mall-a", "gate-07")
    who = ["--site", "mall-a", "--gate", "gate-07", *WIRING]
    online = ["--enrol-url", url, "--token", token, "--enrol-ca", str(enrol_ca), "--no-selftest"]
    assert provision(gate, *who, *online) == 0
    assert "enrolled online" in capsys.readouterr().out
    config = load_config(gate / "kiosk.toml")
    assert config.mqtt.tls_cert is not None
    cert = x509.load_pem_x509_certificate(config.mqtt.tls_cert.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "mall-a/gate-07"
    assert (gate / "broker-ca.crt").read_bytes() == ca.cert_pem
    # The same token again: refused by the centre, with its reason.
    with pytest.raises(ProvisionError, match=r"refused \(403\).*already used"):
        from kiosk.provision.online import enrol_online

        enrol_online(url, token, _csr(tmp_path), ca_file=enrol_ca)
    # A server the gate cannot verify (no CA given, not in the system store): refused.
    with pytest.raises(ProvisionError, match="cannot enrol"):
        enrol_online(url, ca.tokens.issue("mall-a", "gate-08"), _csr(tmp_path))
    with pytest.raises(ProvisionError, match="expected https"):
        enrol_online("http://localhost:1", "t", b"")


def _csr(tmp_path: Path) -> bytes:
    return DeviceIdentity(tmp_path / "other-gate").prepare("mall-a/gate-07").read_bytes()


def test_selftest_nik_list_check(tmp_path: Path) -> None:
    from kiosk.provision.checks import nik_list_check

    off = load_config(None, {"device.data_dir": str(tmp_path / "s")})
    assert nik_list_check(off).startswith("SKIP")
    keys = tmp_path / "authority"
    keys.mkdir()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.generate().public_key()
    (keys / "a.pem").write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    listed = load_config(
        None,
        {
            "device.data_dir": str(tmp_path / "s"),
            "nik.mode": "list",
            "nik.list_dir": str(tmp_path / "niklist"),
            "verify.authority_keys": str(keys),
        },
    )
    with pytest.raises(RuntimeError, match="no signed NIK list"):
        nik_list_check(listed)
