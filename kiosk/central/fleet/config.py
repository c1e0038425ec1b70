"""The fleet service's configuration: one typed tree, validated like the gate's.

Loaded by :func:`kiosk.config.loader.load_tree` (errors name file, line and
key). With no file the embedded defaults apply: broker ``127.0.0.1:1883``,
SQLite ``fleet.sqlite`` in the current folder, page on ``127.0.0.1:8080``.
Command-line flags (``--broker``, ``--listen``, ``--database``,
``--token-file``) become dotted overrides, so they are validated by the same rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiosk.central.broker import parse_broker_url
from kiosk.config.loader import Locator, load_tree
from kiosk.config.schema import setting
from kiosk.config.topics import topic_root_problem
from kiosk.errors import ConfigError


@dataclass(frozen=True)
class FleetMqttConfig:
    """How the service reads the gates' telemetry (read-only access is enough)."""

    host: str = setting("127.0.0.1", doc="Broker host name or address.")
    port: int = setting(1883, doc="Broker TCP port.", min=1, max=65535)
    tls: bool = setting(False, doc="Connect with TLS (mqtts://).")
    tls_ca: Path | None = setting(
        None, doc="CA certificate (PEM) of the broker; unset = system CAs."
    )
    username: str = setting(
        "", doc="MQTT user name of the fleet's read-only account; empty = none."
    )
    password_file: Path | None = setting(None, doc="File holding the MQTT password.")
    client_id: str = setting("kiosk-fleet", doc="MQTT client id (one per instance).")
    topic_root: str = setting(
        "kiosk/{site}/{gate}",
        doc="The gates' mqtt.topic_root pattern: {site} and {gate} once each.",
    )
    keepalive_s: int = setting(30, doc="MQTT keepalive.", min=5, max=3600)
    session_expiry_s: int = setting(
        86400,
        doc="Persistent session: reports wait at the broker this long while the service is "
        "down (0 = clean session).",
        min=0,
        max=30 * 86400,
    )
    shared_group: str = setting(
        "",
        doc="Non-empty: counts and events through $share/<group>/ (several instances, one "
        "PostgreSQL); status and availability stay a plain subscription.",
    )
    max_payload_bytes: int = setting(
        65536, doc="Larger messages are counted and dropped unread.", min=1024, max=1 << 20
    )


@dataclass(frozen=True)
class FleetHttpConfig:
    """The page, the JSON API and /metrics."""

    host: str = setting("127.0.0.1", doc="Address to listen on.")
    port: int = setting(8080, doc="TCP port to listen on (0 = any free port).", min=0, max=65535)
    token_file: Path | None = setting(
        None, doc="Access tokens, one per line (# comments); unset = a token made at start."
    )
    max_body_bytes: int = setting(
        4096, doc="Largest request body (login form).", min=256, max=65536
    )
    sse_interval_s: float = setting(
        1.0, doc="Live updates to the page at most this often.", min=0.1, max=60
    )


@dataclass(frozen=True)
class FleetStoreConfig:
    """Where totals, hourly series and alarms are kept."""

    url: str = setting(
        "sqlite:///fleet.sqlite",
        doc="sqlite:///PATH (relative to the current folder) or postgresql://USER@HOST:PORT/DB.",
    )
    dedup_days: int = setting(
        30, doc="Keep report ids this many days for de-duplication.", min=1, max=3650
    )


@dataclass(frozen=True)
class FleetAlarmConfig:
    """When a gate raises an alarm (each clears when the condition ends)."""

    offline_after_s: float = setting(
        120.0,
        doc="Offline (or silent) this long before an alarm: a short blip is none.",
        min=5,
        max=86400,
    )
    silent_after_s: float = setting(
        300.0,
        doc="No message at all this long counts as offline (status comes every 60 s).",
        min=30,
        max=86400,
    )
    tailgate_per_hour: int = setting(
        5, doc="More tailgates than this in the current hour raise an alarm.", min=1, max=10000
    )
    backlog_min: int = setting(
        100,
        doc="Outbox pending above this and growing for backlog_growing_s: an alarm.",
        min=1,
        max=10_000_000,
    )
    backlog_growing_s: float = setting(
        300.0, doc="How long the outbox must keep growing.", min=10, max=86400
    )
    gap_grace_s: float = setting(
        60.0,
        doc="A gap in a gate's count sequence this old is an alarm (late re-sends fill it).",
        min=0,
        max=86400,
    )
    trust_warn_s: float = setting(
        86400.0,
        doc="Alarm when a gate's trust bundle goes stale within this many seconds.",
        min=0,
        max=90 * 86400,
    )
    behind_after_s: float = setting(
        3600.0,
        doc="Alarm when a gate's bundle is older than the fleet's newest for this long "
        "(a wave's other gates catch up well within it).",
        min=0,
        max=30 * 86400,
    )


def _url_problem(url: str) -> str | None:
    if url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        return "expected an http:// or https:// URL"
    return None


def _addresses_problem(text: str) -> str | None:
    if text and not all(_ADDRESS.fullmatch(a.strip()) for a in text.split(",")):
        return "expected e-mail addresses separated by commas"
    return None


def _time_problem(text: str) -> str | None:
    if text and not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", text):
        return "expected HH:MM (24 h, the site's local time) or empty"
    return None


_ADDRESS = re.compile(r"[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+")


@dataclass(frozen=True)
class FleetNotifySiteConfig:
    """One site's notification overrides (``[notify.sites.<site>]``); unset = as [notify]."""

    enabled: bool | None = setting(None, doc="Notify for this site at all.")
    webhook: bool | None = setting(None, doc="Use the webhook channel for this site.")
    email: bool | None = setting(None, doc="Use the e-mail channel for this site.")
    webhook_url: str | None = setting(
        None, doc="This site's webhook URL (same secret).", check=_url_problem
    )
    email_to: str | None = setting(
        None, doc="This site's recipients, comma-separated.", check=_addresses_problem
    )


@dataclass(frozen=True)
class FleetNotifyConfig:
    """Alarm notifications: webhook (signed JSON) and e-mail, debounced, a daily digest."""

    enabled: bool = setting(False, doc="Send notifications at all.")
    debounce_s: float = setting(
        60.0, doc="An alarm is notified only if still raised this long after.", min=0, max=86400
    )
    queue_size: int = setting(
        1000, doc="Alarm changes waiting to be sent; when full the oldest is dropped.",
        min=10, max=1_000_000,
    )
    stop_timeout_s: float = setting(
        10.0, doc="At shutdown, keep sending what is queued at most this long.", min=0, max=300
    )
    webhook_url: str = setting(
        "", doc="HTTP POST of JSON here; empty = no webhook.", check=_url_problem
    )
    secret_file: Path | None = setting(
        None, doc="File holding the shared secret the webhook is signed with (HMAC-SHA256)."
    )
    webhook_timeout_s: float = setting(10.0, doc="Timeout of one attempt.", min=0.1, max=120)
    attempts: int = setting(
        5,
        doc="Attempts per notice and channel (webhook: timeouts, 5xx, 408, 429 are retried; "
        "e-mail: connection errors and 4xx replies).",
        min=1,
        max=20,
    )
    retry_base_s: float = setting(
        2.0, doc="Wait before the first retry; doubled each time.", min=0.01, max=600
    )
    retry_max_s: float = setting(60.0, doc="Longest wait between attempts.", min=0.01, max=3600)
    smtp_host: str = setting("", doc="SMTP server; empty = no e-mail.")
    smtp_port: int = setting(587, doc="SMTP port.", min=1, max=65535)
    smtp_starttls: bool = setting(True, doc="Upgrade the SMTP connection with STARTTLS.")
    smtp_tls_ca: Path | None = setting(
        None, doc="CA certificate (PEM) of the SMTP server; unset = system CAs."
    )
    smtp_username: str = setting("", doc="SMTP user name; empty = no login.")
    smtp_password_file: Path | None = setting(None, doc="File holding the SMTP password.")
    smtp_timeout_s: float = setting(30.0, doc="SMTP connection timeout.", min=1, max=300)
    email_from: str = setting("", doc="Sender address.", check=_addresses_problem)
    email_to: str = setting(
        "", doc="Recipients, comma-separated.", check=_addresses_problem
    )
    digest_time: str = setting(
        "07:00", doc="Daily digest at this local time of each site (HH:MM); empty = none.",
        check=_time_problem,
    )
    sites: dict[str, FleetNotifySiteConfig] = field(
        default_factory=dict, metadata={"doc": "Per-site overrides: [notify.sites.<site>]."}
    )


@dataclass(frozen=True)
class FleetLoggingConfig:
    """Logging to stderr."""

    level: str = setting("INFO", doc="Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


@dataclass(frozen=True)
class FleetConfig:
    """The whole fleet-service configuration."""

    mqtt: FleetMqttConfig = field(default_factory=FleetMqttConfig)
    http: FleetHttpConfig = field(default_factory=FleetHttpConfig)
    store: FleetStoreConfig = field(default_factory=FleetStoreConfig)
    alarms: FleetAlarmConfig = field(default_factory=FleetAlarmConfig)
    notify: FleetNotifyConfig = field(default_factory=FleetNotifyConfig)
    logging: FleetLoggingConfig = field(default_factory=FleetLoggingConfig)


_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


def _check(config: FleetConfig, locator: Locator) -> None:
    # The gates' own rule for the template: what they accept, the fleet follows.
    if problem := topic_root_problem(config.mqtt.topic_root):
        raise locator.error("mqtt.topic_root", problem)
    if config.mqtt.password_file is not None and not config.mqtt.username:
        raise locator.error("mqtt.password_file", "requires mqtt.username")
    if config.mqtt.shared_group and not _NAME.fullmatch(config.mqtt.shared_group):
        raise locator.error("mqtt.shared_group", "letters, digits, '_', '-' and '.' only")
    url = config.store.url
    if not (url.startswith("sqlite:///") and len(url) > len("sqlite:///")) and not url.startswith(
        ("postgresql://", "postgres://")
    ):
        raise locator.error("store.url", "expected sqlite:///PATH or postgresql://...")
    _check_notify(config.notify, locator)


def _check_notify(cfg: FleetNotifyConfig, locator: Locator) -> None:
    if cfg.smtp_password_file is not None and not cfg.smtp_username:
        raise locator.error("notify.smtp_password_file", "requires notify.smtp_username")
    webhook_used = bool(cfg.webhook_url) or any(s.webhook_url for s in cfg.sites.values())
    if webhook_used and cfg.secret_file is None:
        raise locator.error("notify.secret_file", "required when a webhook_url is set",
                            near="notify.webhook_url")
    if cfg.smtp_host and not cfg.email_from:
        raise locator.error("notify.email_from", "required when notify.smtp_host is set",
                            near="notify.smtp_host")
    for site, over in sorted(cfg.sites.items()):
        key = f"notify.sites.{site}"
        if not _NAME.fullmatch(site):
            raise locator.error(key, "a site name: letters, digits, '_', '-' and '.' only")
        if over.webhook and not (over.webhook_url or cfg.webhook_url):
            raise locator.error(f"{key}.webhook", "no webhook_url here or in [notify]")
        if over.email and not cfg.smtp_host:
            raise locator.error(f"{key}.email", "requires notify.smtp_host")
        if over.email and not (over.email_to or cfg.email_to):
            raise locator.error(f"{key}.email", "no email_to here or in [notify]")


def flag_overrides(
    *, broker: str | None, listen: str | None, database: str | None, token_file: str | None
) -> dict[str, Any]:
    """Dotted overrides from the ``kiosk fleet serve`` flags.

    Raises:
        ConfigError: a flag is not of its documented form.
    """
    out: dict[str, Any] = {}
    if broker is not None:
        host, port, tls = parse_broker_url(broker)
        out["mqtt.host"] = host
        out["mqtt.tls"] = tls
        out["mqtt.port"] = port
    if listen is not None:
        host, _, port_text = listen.rpartition(":")
        if not host or not port_text.isdigit():
            raise ConfigError(f"--listen {listen[:80]!r}: expected HOST:PORT")
        out["http.host"] = host.strip("[]")
        out["http.port"] = int(port_text)
    if database is not None:
        out["store.url"] = database
    if token_file is not None:
        out["http.token_file"] = token_file
    return out


def load_fleet_config(path: Path | None, overrides: dict[str, Any] | None = None) -> FleetConfig:
    """The validated configuration from ``path`` (None: the embedded defaults) and overrides.

    Raises:
        ConfigError: naming file, line and key.
    """
    config: FleetConfig = load_tree(FleetConfig, path, overrides, check=_check)
    return config
