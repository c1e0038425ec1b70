"""Inbound MQTT messages of the gates, parsed and checked before anything trusts them.

Everything from the broker is hostile until checked: size first (before JSON is
parsed), then JSON, then ``"v": 1``, exact types, bounded names and numbers, and
the ``device`` field against the topic. A message that fails is a
:class:`Rejected` with a short reason code (counted in ``/metrics``), never an
exception. Nothing a gate sends holds personal data (docs/mqtt.md); the parsed
forms keep only counters, codes and times, so none could pass through anyway.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
"""Site and gate names the service accepts from topics."""
COUNTER = re.compile(r"[a-z][a-z0-9_]{0,40}(\.[a-z0-9_]{1,40}){0,2}")
MAX_COUNTERS = 128
MAX_COUNT = 2**53
_TEXT = 80
_STORE = re.compile(r"[0-9a-f]{1,64}")
TOPICS = ("availability", "status", "counts", "events")


class Rejected(Exception):
    """A message that is dropped; ``reason`` is a short code for the metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Availability:
    """``<root>/availability``: online or offline (retained; the last will says offline)."""

    site: str
    gate: str
    online: bool


@dataclass(frozen=True, slots=True)
class Status:
    """``<root>/status``: the gate's health and totals (retained)."""

    site: str
    gate: str
    ts: datetime
    store: str | None
    seq: int | None
    timezone: str | None
    fields: dict[str, Any]
    totals: dict[str, int]
    today_date: str | None
    today: dict[str, int]


@dataclass(frozen=True, slots=True)
class Counts:
    """``<root>/counts``: the changes ``seq_first..seq`` of count database ``store``."""

    site: str
    gate: str
    store: str
    seq_first: int
    seq: int
    ts: datetime
    bucket_start: int  # UNIX seconds
    delta: dict[str, int]
    totals: dict[str, int]


@dataclass(frozen=True, slots=True)
class Event:
    """``<root>/events``: an alarm, a clear or a fault of counted change ``seq``."""

    site: str
    gate: str
    store: str
    seq: int
    ts: datetime
    event: str
    kind: str


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """``<root>/events`` of kind ``diagnostics``: a gate's answer to a diagnostics command."""

    site: str
    gate: str
    ts: datetime
    result: str
    checks: dict[str, tuple[str, str]]  # check name -> (ok | warn | fail, bounded detail)
    command: str = ""  # id (32 hex digits) of the command answered; "" when malformed


Message = Availability | Status | Counts | Event | Diagnostics


class TopicMatcher:
    """Maps topics of the gates' ``topic_root`` pattern to ``(site, gate, suffix)``."""

    def __init__(self, topic_root: str) -> None:
        root = topic_root.rstrip("/")
        self.root = root
        pattern = re.escape(root).replace(r"\{site\}", "(?P<site>[^/]+)")
        pattern = pattern.replace(r"\{gate\}", "(?P<gate>[^/]+)")
        self._regex = re.compile(f"{pattern}/(?P<suffix>[a-z]+)")

    def filter(self, suffix: str) -> str:
        """The subscription filter for one suffix, e.g. ``kiosk/+/+/counts``."""
        return self.root.replace("{site}", "+").replace("{gate}", "+") + "/" + suffix

    def match(self, topic: str) -> tuple[str, str, str]:
        """``(site, gate, suffix)`` of a topic, or :class:`Rejected`."""
        found = self._regex.fullmatch(topic[:400])
        if found is None or found["suffix"] not in TOPICS:
            raise Rejected("topic")
        site, gate = found["site"], found["gate"]
        if not NAME.fullmatch(site) or not NAME.fullmatch(gate):
            raise Rejected("topic")
        return site, gate, found["suffix"]


def parse(matcher: TopicMatcher, topic: str, payload: bytes, max_bytes: int) -> Message:
    """The checked message, or raises :class:`Rejected` with the reason code."""
    site, gate, suffix = matcher.match(topic)
    if len(payload) > max_bytes:
        raise Rejected("oversized")
    if suffix == "availability":
        text = payload.strip()
        if text not in (b"online", b"offline"):
            raise Rejected("payload")
        return Availability(site, gate, text == b"online")
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        raise Rejected("json") from None
    if not isinstance(body, dict):
        raise Rejected("json")
    if body.get("v") != 1:
        raise Rejected("version")
    if body.get("device") != f"{site}/{gate}":
        raise Rejected("device")
    if suffix == "status":
        return _status(site, gate, body)
    if suffix == "counts":
        return _counts(site, gate, body)
    if body.get("kind") == "diagnostics":
        return _diagnostics(site, gate, body)
    return _event(site, gate, body)


def _int(value: Any, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_COUNT:
        raise Rejected("type")
    return value


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _time(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise Rejected("type")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected("type") from None
    if at.tzinfo is None:
        raise Rejected("type")
    return at.astimezone(UTC)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Rejected("type")
    return value[:_TEXT]


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Rejected("type")
    return float(value)


def _counters(value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or len(value) > MAX_COUNTERS:
        raise Rejected("type")
    out: dict[str, int] = {}
    for name, count in value.items():
        if not isinstance(name, str) or not COUNTER.fullmatch(name):
            raise Rejected("counter")
        out[name] = _int(count)
    return out


def _store(value: Any) -> str:
    if not isinstance(value, str) or not _STORE.fullmatch(value):
        raise Rejected("type")
    return value


def _status(site: str, gate: str, body: dict[str, Any]) -> Status:
    outbox = body.get("outbox")
    if not isinstance(outbox, dict):
        raise Rejected("type")
    today_raw = body.get("today")
    if not isinstance(today_raw, dict):
        raise Rejected("type")
    today_raw = dict(today_raw)
    date = _text(today_raw.pop("date", None))
    bundle_version = body.get("bundle_version")
    if isinstance(bundle_version, bool) or not isinstance(bundle_version, str | int | None):
        raise Rejected("type")
    fields = {
        "version": _text(body.get("version")),
        "uptime_s": _number(body.get("uptime_s")),
        "mode": _text(body.get("mode")),
        "gate_mode": _text(body.get("gate_mode")),
        "bundle_version": _text(bundle_version)
        if isinstance(bundle_version, str)
        else bundle_version,
        "bundle_age_s": _number(body.get("bundle_age_s")),
        "bundle_stale_in_s": _number(body.get("bundle_stale_in_s")),
        "nik_version": _opt_int(body.get("nik_version")),
        "dist_error": _text(body.get("dist_error")),
        "pull_error": _text(body.get("pull_error")),
        "clock_state": _text(body.get("clock_state")),
        "camera_fps": _number(body.get("camera_fps")),
        "decoder": _text(body.get("decoder")),
        "last_error": _text(body.get("last_error")),
        "store_unsaved": _opt_int(body.get("store_unsaved")),
        "outbox_pending": _int(outbox.get("pending")),
        "outbox_error": _text(outbox.get("last_error")),
    }
    store = body.get("store")
    timezone = _text(body.get("timezone"))
    return Status(
        site=site,
        gate=gate,
        ts=_time(body.get("ts")),
        store=None if store is None else _store(store),
        seq=_opt_int(body.get("seq")),
        timezone=timezone,
        fields=fields,
        totals=_counters(body.get("totals")),
        today_date=date,
        today=_counters(today_raw),
    )


def _counts(site: str, gate: str, body: dict[str, Any]) -> Counts:
    seq_first, seq = _int(body.get("seq_first"), 1), _int(body.get("seq"), 1)
    if seq_first > seq:
        raise Rejected("range")
    bucket = body.get("bucket")
    if not isinstance(bucket, dict):
        raise Rejected("type")
    start = _time(bucket.get("start"))
    return Counts(
        site=site,
        gate=gate,
        store=_store(body.get("store")),
        seq_first=seq_first,
        seq=seq,
        ts=_time(body.get("ts")),
        bucket_start=int(start.timestamp()),
        delta=_counters(body.get("delta")),
        totals=_counters(body.get("totals")),
    )


_VERDICTS = ("ok", "warn", "fail")
_MAX_CHECKS = 16
_DETAIL = 120
_COMMAND_ID = re.compile(r"[0-9a-f]{32}")


def _diagnostics(site: str, gate: str, body: dict[str, Any]) -> Diagnostics:
    result, checks = body.get("result"), body.get("checks")
    if result not in _VERDICTS or not isinstance(checks, dict) or len(checks) > _MAX_CHECKS:
        raise Rejected("type")
    parsed: dict[str, tuple[str, str]] = {}
    for name, check in checks.items():
        if not isinstance(name, str) or not COUNTER.fullmatch(name) or not isinstance(check, dict):
            raise Rejected("type")
        verdict, detail = check.get("status"), check.get("detail", "")
        if verdict not in _VERDICTS or not isinstance(detail, str):
            raise Rejected("type")
        parsed[name] = (verdict, detail[:_DETAIL])
    command = body.get("command")
    if not isinstance(command, str) or not _COMMAND_ID.fullmatch(command):
        command = ""
    return Diagnostics(site, gate, _time(body.get("ts")), result, parsed, command)


def _event(site: str, gate: str, body: dict[str, Any]) -> Event:
    event, kind = body.get("event"), body.get("kind")
    if not isinstance(event, str) or not COUNTER.fullmatch(event):
        raise Rejected("counter")
    if kind not in ("alarm", "clear", "fault", "command"):
        raise Rejected("type")
    return Event(
        site=site,
        gate=gate,
        store=_store(body.get("store")),
        seq=_int(body.get("seq"), 1),
        ts=_time(body.get("ts")),
        event=event,
        kind=kind,
    )
