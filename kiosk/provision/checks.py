"""A gate's non-actuating checks: clock, trust, NIK list, identity, camera rate, broker, outbox.

One implementation for two callers. ``kiosk selftest`` (the technician, with the
service stopped) gathers each fact itself: it opens the verifier, the camera
and a broker connection. The signed ``diagnostics`` command
(:mod:`kiosk.remote.diagnostics`) asks the *running* gate for the same facts
(its verifier's health, its loop's frame count, its publisher's link) and
passes them to the same verdict functions, so both judge a gate alike.

Each check returns its PASS detail, ``"SKIP: why"``, or raises with what is
wrong: :class:`CheckWarning` for a gate that still decides but needs care
(``diagnostics`` reports it as ``warn``; the self-test, which is the bar for a
gate to go into service, fails it), any other exception for a failure.
:func:`run_check` turns one of them into a :class:`CheckResult`.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography import x509
from cryptography.x509.oid import NameOID

from kiosk.config import KioskConfig

# A certificate this close to its end is reported (re-enrol: docs/provisioning.md).
RENEW_WITHIN_DAYS = 14
BROKER_TIMEOUT_S = 8.0
# A trust bundle older than this is stale for the technician (the gate's own rule decides).
MAX_TRUST_AGE_H = 48.0
# More queued reports than this is a link that does not keep up (counts.outbox_max_rows
# is where old ones are merged): worth a look, nothing is lost yet.
OUTBOX_WARN_PENDING = 1000

Status = Literal["ok", "warn", "fail", "skip"]


class CheckWarning(RuntimeError):
    """The gate still decides correctly, but something needs attention soon."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome: ``status`` and what was seen (``detail``)."""

    name: str
    status: Status
    detail: str


def run_check(name: str, work: Callable[[], str]) -> CheckResult:
    """Run one check; its return is the ``ok`` detail (``"SKIP: why"`` a skip).

    Never raises (short of BaseException): a check that raises is a result too,
    :class:`CheckWarning` a ``warn`` and anything else a ``fail`` naming the error.
    """
    try:
        detail = work()
    except CheckWarning as exc:
        return CheckResult(name, "warn", str(exc))
    except Exception as exc:  # a broken check is reported, it never ends the caller
        return CheckResult(name, "fail", f"{type(exc).__name__}: {exc}")
    if detail.startswith("SKIP:"):
        return CheckResult(name, "skip", detail[5:].strip())
    return CheckResult(name, "ok", detail)


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
    return clock_verdict(_health(config, wall_clock), wall_clock())


def clock_verdict(health: Any, now: datetime) -> str:
    """The clock check on a verifier's health (``clock_state``, ``clock_jump_s``)."""
    state = getattr(health, "clock_state", "unknown")
    jump = getattr(health, "clock_jump_s", None)
    pending = f", a jump of {jump:.0f} s ahead awaits corroboration" if jump else ""
    if state != "synchronised":
        raise CheckWarning(
            f"clock {state}{pending}: certificates are checked against a held time; "
            "check NTP (timedatectl) or the RTC"
        )
    return f"synchronised, {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC{pending}"


def trust_check(
    config: KioskConfig, wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> str:
    """PASS for a fresh signed trust bundle; FAIL for none, stale, expired or dev mode."""
    return trust_verdict(_health(config, wall_clock))


def trust_verdict(health: Any) -> str:
    """The trust check on a verifier's health: a warning while stale, a failure once useless."""
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
    if mode not in ("fresh", "stale"):
        raise RuntimeError(f"trust bundle v{version} is {mode}, {age_h:.1f} h old: update it")
    if mode != "fresh" or age_h > MAX_TRUST_AGE_H:
        raise CheckWarning(f"trust bundle v{version} is {mode}, {age_h:.1f} h old: update it")
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
        raise CheckWarning(f"certificate expires in {left} days: re-enrol (docs/provisioning.md)")
    return f"{names[0]}, valid until {cert.not_valid_after_utc:%Y-%m-%d} ({left} days)"


def broker_verdict(config: KioskConfig, connected: bool, error: str | None = None) -> str:
    """The broker check on a link's state (``error``: the link's last one, if any)."""
    mqtt_cfg = config.mqtt
    where = f"{mqtt_cfg.host}:{mqtt_cfg.port}"
    if not mqtt_cfg.enabled:
        return "SKIP: mqtt.enabled = false"
    if not connected:
        raise RuntimeError(f"{where}: {error or 'not connected'}")
    tls = (
        "TLS, device certificate"
        if mqtt_cfg.tls_cert is not None
        else ("TLS" if mqtt_cfg.tls_ca is not None else "PLAIN TCP")
    )
    return f"connected to {where} ({tls})"


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
    return broker_verdict(config, outcome[0] == "ok", outcome[0])


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
        return camera_rate_verdict(config, None)
    frames = 0
    with open_frame_source(config.camera) as source:
        source.read()  # the first frame may take the sensor's start-up time
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            if source.read() is None:
                break
            frames += 1
        elapsed = time.monotonic() - start
    return camera_rate_verdict(config, frames / elapsed if elapsed > 0 else 0.0)


def camera_rate_verdict(config: KioskConfig, fps: float | None, window: str = "") -> str:
    """The camera-rate check on a measured ``fps`` (None: not measured; ``window``: over what)."""
    seen = "" if fps is None else f", {fps:.1f} frames/s{window}"
    if config.camera.source != "picamera2":
        source = config.camera.source
        return f"SKIP: camera.source = {source!r} (files play at their own pace){seen}"
    if fps is None:
        raise RuntimeError("no frame rate measured yet")
    if fps < config.camera.fps / 2:
        raise RuntimeError(
            f"{fps:.1f} frames/s{window}, less than half of camera.fps {config.camera.fps:g}"
        )
    return f"{fps:.1f} frames/s{window} (asked {config.camera.fps:g})"


def outbox_check(config: KioskConfig) -> str:
    """Reports queued for the broker in the count database (read-only; SKIP when none yet)."""
    if not config.counts_db_path.exists():
        return "SKIP: no count database yet"
    from kiosk.telemetry.outbox import OutboxReader

    with OutboxReader(config.counts_db_path) as reader:
        return outbox_verdict(reader.pending_count())


def outbox_verdict(pending: int | None) -> str:
    """The outbox check on a number of queued reports (None: not counted yet)."""
    if pending is None:
        return "SKIP: not counted yet"
    if pending > OUTBOX_WARN_PENDING:
        raise CheckWarning(f"{pending} reports queued: the link does not keep up")
    return f"{pending} reports queued"
