"""Self-test checks beyond the gate's own hardware: clock, trust, identity, broker.

Each check returns its PASS detail, ``"SKIP: why"``, or raises with what is
wrong (the self-test turns that into a FAIL line). They run on the technician's
command, never inside the gate's loop.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from kiosk.config import KioskConfig

# A certificate this close to its end is reported (re-enrol: docs/provisioning.md).
RENEW_WITHIN_DAYS = 14
BROKER_TIMEOUT_S = 8.0
# A trust bundle older than this is stale for the technician (the gate's own rule decides).
MAX_TRUST_AGE_H = 48.0


def _health(config: KioskConfig, wall_clock: Callable[[], datetime]) -> object:
    from kiosk.verify.factory import open_trusted_clock, open_verifier

    clock = open_trusted_clock(
        config.clock, wall_clock=wall_clock, state_dir=config.device.data_dir
    )
    verifier = open_verifier(
        config.verify,
        wall_clock=wall_clock,
        state_dir=config.device.data_dir,
        policy=config.policy,
        trusted_clock=clock,
    )
    try:
        return verifier.health()
    finally:
        verifier.close()


def clock_check(
    config: KioskConfig, wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> str:
    """PASS when the system clock is synchronised (NTP); the gate holds time otherwise."""
    health = _health(config, wall_clock)
    state = getattr(health, "clock_state", "unknown")
    if state != "synchronised":
        raise RuntimeError(
            f"clock {state}: certificates are checked against a held time; "
            "check NTP (timedatectl) or the RTC"
        )
    return f"synchronised, {wall_clock():%Y-%m-%d %H:%M} UTC"


def trust_check(
    config: KioskConfig, wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> str:
    """PASS for a fresh signed trust bundle; FAIL for none, stale, expired or dev mode."""
    health = _health(config, wall_clock)
    mode = getattr(health, "mode", "unknown")
    version = getattr(health, "bundle_version", None)
    age_s = getattr(health, "bundle_age_s", None)
    if mode == "dev":
        raise RuntimeError(
            "UNSIGNED dev mode (DSC folder): not for production; install a signed bundle "
            '(kiosk trust install) and set verify.trust_source = "bundle"'
        )
    if version is None or age_s is None:
        raise RuntimeError("no signed trust bundle installed: every certificate is denied")
    age_h = age_s / 3600
    if mode != "fresh" or age_h > MAX_TRUST_AGE_H:
        raise RuntimeError(f"trust bundle v{version} is {mode}, {age_h:.1f} h old: update it")
    return f"bundle v{version}, {age_h:.1f} h old, {getattr(health, 'signers', '?')} signers"


def identity_check(config: KioskConfig, now: datetime | None = None) -> str:
    """The device certificate: names this gate, valid now, not about to expire."""
    if config.mqtt.tls_cert is None:
        return "SKIP: no device certificate (mqtt.tls_cert; kiosk provision --install-cert)"
    cert = x509.load_pem_x509_certificate(config.mqtt.tls_cert.read_bytes())
    names = [str(n.value) for n in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [config.device.device_id]:
        raise RuntimeError(f"certificate names {names[:1]}, this gate is {config.device.device_id}")
    now = now or datetime.now(UTC)
    left = (cert.not_valid_after_utc - now).days
    if now < cert.not_valid_before_utc or left < 0:
        raise RuntimeError(f"certificate not valid now (until {cert.not_valid_after_utc:%Y-%m-%d})")
    if left < RENEW_WITHIN_DAYS:
        raise RuntimeError(f"certificate expires in {left} days: re-enrol (docs/provisioning.md)")
    return f"{names[0]}, valid until {cert.not_valid_after_utc:%Y-%m-%d} ({left} days)"


def broker_check(config: KioskConfig, timeout_s: float = BROKER_TIMEOUT_S) -> str:
    """Connect to the broker as this gate (TLS, device certificate); PASS on CONNACK success."""
    mqtt_cfg = config.mqtt
    if not mqtt_cfg.enabled:
        return "SKIP: mqtt.enabled = false"
    import paho.mqtt.client as mqtt

    done = threading.Event()
    outcome: list[str] = []
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"kiosk-selftest-{config.device.site}-{config.device.gate}"[:64],
        protocol=mqtt.MQTTv5,
    )

    def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        outcome.append("ok" if not getattr(reason, "is_failure", True) else f"refused: {reason}")
        done.set()

    def on_disconnect(*_args: object) -> None:
        outcome.append("disconnected during the handshake (certificate refused?)")
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    if mqtt_cfg.tls_ca is not None:
        client.tls_set(
            ca_certs=str(mqtt_cfg.tls_ca),
            certfile=None if mqtt_cfg.tls_cert is None else str(mqtt_cfg.tls_cert),
            keyfile=None if mqtt_cfg.tls_key is None else str(mqtt_cfg.tls_key),
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    where = f"{mqtt_cfg.host}:{mqtt_cfg.port}"
    try:
        client.connect(mqtt_cfg.host, mqtt_cfg.port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        raise RuntimeError(f"{where}: {type(exc).__name__}: {str(exc)[:100]}") from None
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            raise RuntimeError(f"{where}: no answer within {timeout_s:.0f} s")
    finally:
        client.disconnect()
        client.loop_stop()
    if outcome[0] != "ok":
        raise RuntimeError(f"{where}: {outcome[0]}")
    tls = (
        "TLS, device certificate"
        if mqtt_cfg.tls_cert is not None
        else ("TLS" if mqtt_cfg.tls_ca is not None else "PLAIN TCP")
    )
    return f"connected to {where} ({tls})"


def nik_list_check(config: KioskConfig, now: datetime | None = None) -> str:
    """The signed NIK status list (``nik.mode = "list"``): installed, verified, not expired."""
    if config.nik.mode != "list":
        return f"SKIP: nik.mode = {config.nik.mode!r} (no status list needed)"
    from kiosk.nik.store import installed_manifest
    from kiosk.signing import load_public_keys

    manifest = installed_manifest(
        config.nik.list_dir, load_public_keys(config.verify.authority_keys)
    )
    if manifest is None:
        raise RuntimeError(
            f"no signed NIK list in {config.nik.list_dir}: typed KTP numbers get "
            f"nik.on_list_unavailable = {config.nik.on_list_unavailable!r}; kiosk nik install LIST"
        )
    now = now or datetime.now(UTC)
    if manifest.expired(now):
        raise RuntimeError(
            f"NIK list v{manifest.version} expired {manifest.expires_at:%Y-%m-%d %H:%M}"
        )
    age_h = (now - manifest.issued_at).total_seconds() / 3600
    return (
        f"list v{manifest.version}, {age_h:.1f} h old, "
        f"valid until {manifest.expires_at:%Y-%m-%d %H:%M} UTC"
    )


def camera_rate_check(config: KioskConfig, seconds: float = 1.0) -> str:
    """Frames per second the camera really delivers (camera.fps is what was asked)."""
    import time

    from kiosk.camera import open_frame_source

    if config.camera.source != "picamera2":
        return f"SKIP: camera.source = {config.camera.source!r} (files play at their own pace)"
    frames = 0
    with open_frame_source(config.camera) as source:
        source.read()  # the first frame may take the sensor's start-up time
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            if source.read() is None:
                break
            frames += 1
        elapsed = time.monotonic() - start
    fps = frames / elapsed if elapsed > 0 else 0.0
    if fps < config.camera.fps / 2:
        raise RuntimeError(
            f"{fps:.1f} frames/s, less than half of camera.fps {config.camera.fps:g}"
        )
    return f"{fps:.1f} frames/s (asked {config.camera.fps:g})"
