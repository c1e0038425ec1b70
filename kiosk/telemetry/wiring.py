"""Building the telemetry parts from the configuration, and the gate's status sources.

``kiosk/app.py`` calls :func:`open_count_store` and :func:`make_publisher`; every
telemetry setting is read here, so the app's wiring stays two lines long.

The status provider given to the publisher is a :class:`StatusSources`: a list of
small callables, each asked in turn on the drain thread. A source that raises or
is missing only leaves its fields null (``status`` never fails because the
verifier or the camera is in trouble). Other parts add theirs with
:meth:`StatusSources.add`, e.g. the scan loop's ``{"decoder": ..., "camera_fps": ...}``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from kiosk.config import KioskConfig
from kiosk.telemetry.link import ReleaseSink
from kiosk.telemetry.publisher import MqttPublisher
from kiosk.telemetry.store import CountStore

log = logging.getLogger(__name__)

StatusSource = Callable[[], Mapping[str, Any]]


class StatusSources:
    """A thread-safe list of status sources whose answers are merged (later wins)."""

    def __init__(self, *sources: StatusSource) -> None:
        self._lock = threading.Lock()
        self._sources: list[StatusSource] = list(sources)

    def add(self, source: StatusSource) -> None:
        """Add a source; it is called on the publisher's thread and must not block."""
        with self._lock:
            self._sources.append(source)

    def __call__(self) -> dict[str, Any]:
        with self._lock:
            sources = list(self._sources)
        out: dict[str, Any] = {}
        for source in sources:
            try:
                out.update(source())
            except Exception:  # one broken part must not hide the others
                log.exception("status source %r failed", source)
        return out


def verifier_status(verifier: object) -> StatusSource:
    """Status fields from ``verifier.health()`` when the verifier has one (else none)."""

    def source() -> Mapping[str, Any]:
        health = getattr(verifier, "health", None)
        if not callable(health):
            return {}
        h = health()
        age = getattr(h, "bundle_age_s", None)
        # How long until the bundle goes stale / expires, so the centre can warn before it
        # happens (the age alone does not say: each bundle sets its own max_age_s).
        material = getattr(verifier, "material", None)
        max_age, grace = getattr(material, "max_age_s", None), getattr(material, "grace_s", None)
        stale_in = expires_in = None
        if isinstance(age, int | float) and isinstance(max_age, int) and isinstance(grace, int):
            stale_in, expires_in = round(max_age - age), round(max_age + grace - age)
        return {
            "mode": getattr(h, "mode", None),
            "bundle_version": getattr(h, "bundle_version", None),
            "bundle_age_s": age,
            "bundle_stale_in_s": stale_in,
            "bundle_expires_in_s": expires_in,
            "clock_state": getattr(h, "clock_state", None),
            "clock_jump_s": getattr(h, "clock_jump_s", None),
            "bundle_formats": list(getattr(h, "bundle_formats", ()) or ()) or None,
        }

    return source


def open_count_store(config: KioskConfig) -> CountStore:
    """The count store with the configured buckets, time zone and outbox limits.

    Raises:
        TelemetryError: the database cannot be opened.
    """
    counts = config.counts
    return CountStore(
        config.counts_db_path,
        config.device.device_id,
        bucket_s=counts.bucket_s,
        timezone=ZoneInfo(config.device.timezone),
        max_rows=counts.outbox_max_rows,
        max_bytes=counts.outbox_max_mb * 1024 * 1024,
    )


def make_publisher(
    config: KioskConfig,
    store: CountStore,
    verifier: object,
    sources: StatusSources | None = None,
    on_command: Callable[[bytes, bool], None] | None = None,
    releases: ReleaseSink | None = None,
) -> MqttPublisher:
    """The publisher for ``store``'s database with status from the store and the verifier.

    Pass ``sources`` to keep a handle for adding status sources later (parts built
    after the publisher, such as the scan loop); the store's and the verifier's
    are added to it here.
    """
    sources = sources if sources is not None else StatusSources()
    sources.add(store.health)
    sources.add(verifier_status(verifier))
    publisher = MqttPublisher(
        config.mqtt,
        config.mqtt_topic_root,
        config.device.device_id,
        config.counts_db_path,
        status_provider=sources,
        timezone=ZoneInfo(config.device.timezone),
        on_command=on_command,
        releases=releases,
    )
    return publisher
