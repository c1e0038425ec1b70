"""The JSON payloads of the MQTT topic contract (see ``docs/mqtt.md``, ``docs/asyncapi.yaml``).

Pure functions: no I/O, no clock of their own. Every payload carries ``"v": 1``
so receivers can tell contract versions apart, and none carries personal data:
a :class:`~kiosk.decision.Decision` contributes only its result, reason code and
input kind, never ``holder_masked`` or ``detail``.

A ``counts`` message covers the counted changes ``seq_first`` … ``seq``
(inclusive; one change unless the outbox was coalesced or changes were held in
memory while the disk was full), with their sum in ``delta`` and the cumulative
``totals`` after the last of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kiosk.decision import Decision

PAYLOAD_VERSION = 1
"""Value of ``"v"`` in every payload; bumped only for incompatible changes."""

ONLINE = b"online"
OFFLINE = b"offline"

ALARM_EVENTS = frozenset({"tailgate", "unauthorised_passage", "emergency_open", "fire_alarm"})
"""Gate event counters that are also published on ``<root>/events`` as alarms."""
CLEAR_EVENTS = frozenset({"emergency_clear"})
FAULT_PREFIX = "fault."
COMMAND_PREFIXES = ("command.", "command_refused.")
"""Outcomes of operators' commands (``command.open_once``, ``command_refused.replayed`` ...)."""
"""Counters named ``fault.<part>`` (``fault.arm``, ``fault.store`` …) are faults."""

STATUS_FIELDS: dict[str, type | tuple[type, ...]] = {
    "mode": str,
    "gate_mode": str,
    "bundle_version": (str, int),
    "bundle_age_s": (int, float),
    "bundle_stale_in_s": int,
    "bundle_expires_in_s": int,
    "clock_state": str,
    "clock_jump_s": (int, float),
    "bundle_formats": list,
    "camera_fps": (int, float),
    "decoder": str,
    "last_error": str,
    "store_unsaved": int,
    "nik_version": int,
    "dist_state": str,
    "dist_error": str,
    "pull_state": str,
    "pull_error": str,
    "pull_ok_age_s": int,
}
"""What a status provider may report, with the accepted types; anything else is dropped."""
_MAX_TEXT = 80  # status strings are codes, never free text: cap them
_MAX_LIST = 8  # status lists (bundle_formats) are short lists of codes


def iso_utc(at: datetime) -> str:
    """``at`` as an ISO-8601 UTC string with millisecond precision and a ``Z`` suffix.

    Raises:
        ValueError: ``at`` is naive. A gate's timestamps must be unambiguous, so
            the caller's clock must return aware datetimes.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    """Inverse of :func:`iso_utc`."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def dumps(obj: Mapping[str, Any]) -> bytes:
    """Compact, key-sorted JSON: stable bytes make payloads easy to diff and test."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")


def total_names(decision: Decision) -> tuple[str, ...]:
    """The counter names one decision increments.

    E.g. ``("denied", "denied.expired", "input.qr")`` or ``("allowed", "input.nik")``.
    """
    result = "allowed" if decision.allowed else "denied"
    names = [result]
    if not decision.allowed:
        names.append(f"denied.{decision.reason.value}")
    names.append(f"input.{decision.input.value}")
    return tuple(names)


def decision_change(decision: Decision) -> dict[str, str]:
    """The fields of a ``counts`` message that describe a decision (no personal data)."""
    return {
        "result": "allowed" if decision.allowed else "denied",
        "reason": decision.reason.value,
        "input": decision.input.value,
    }


def event_kind(name: str) -> str | None:
    """The ``events`` kind (alarm, clear, fault or command) of a counter; None if not sent."""
    if name in ALARM_EVENTS:
        return "alarm"
    if name in CLEAR_EVENTS:
        return "clear"
    if name.startswith(FAULT_PREFIX):
        return "fault"
    if name.startswith(COMMAND_PREFIXES):
        return "command"
    return None


def bucket(at_first: datetime, at_last: datetime, bucket_s: int) -> dict[str, Any]:
    """The aligned UTC interval ``[start, start + s)`` holding both instants.

    ``s`` is a whole multiple of ``bucket_s`` seconds (exactly ``bucket_s`` for a
    single change), aligned to the UNIX epoch, so buckets of all gates line up.
    """
    first = math.floor(at_first.timestamp() / bucket_s) * bucket_s
    last = math.floor(at_last.timestamp() / bucket_s) * bucket_s
    start = datetime.fromtimestamp(first, UTC)
    return {"start": iso_utc(start), "s": last - first + bucket_s}


@dataclass(frozen=True, slots=True)
class CountsHeader:
    """Identity of one ``counts`` message (see :func:`counts_payload`)."""

    device_id: str
    store_id: str
    boot: int
    seq_first: int
    seq: int


def counts_payload(
    head: CountsHeader,
    *,
    at_first: datetime,
    at: datetime,
    bucket_s: int,
    change: Mapping[str, str],
    delta: Mapping[str, int],
    totals: Mapping[str, int],
) -> bytes:
    """The ``<root>/counts`` message for the counted changes ``head.seq_first..head.seq``.

    Args:
        head: ``device_id`` (``<site>/<gate>``), ``store_id`` (random id of the count
            database; changes only if it is recreated), ``boot`` (the store's boot
            counter when counted) and the inclusive range of change numbers.
        at_first, at: when the first and the last covered change happened (aware).
        bucket_s: the time-series interval in seconds (``counts.bucket_s``).
        change: for a single change, what it was: :func:`decision_change` or
            ``{"event": name}``; empty for a range.
        delta: how much each counter grew over the covered changes.
        totals: all cumulative totals *after* the last covered change.
    """
    return dumps(
        {
            "v": PAYLOAD_VERSION,
            "device": head.device_id,
            "store": head.store_id,
            "boot": head.boot,
            "seq": head.seq,
            "seq_first": head.seq_first,
            "ts": iso_utc(at),
            "ts_first": iso_utc(at_first),
            "bucket": bucket(at_first, at, bucket_s),
            **change,
            "delta": dict(delta),
            "totals": dict(totals),
        }
    )


def event_payload(
    *, device_id: str, store_id: str, seq: int, at: datetime, event: str, kind: str
) -> bytes:
    """The ``<root>/events`` message of an alarm/fault counter (``seq`` of its counts change)."""
    return dumps(
        {
            "v": PAYLOAD_VERSION,
            "device": device_id,
            "store": store_id,
            "seq": seq,
            "ts": iso_utc(at),
            "event": event,
            "kind": kind,
        }
    )


def refused_event_payload(
    *, device_id: str, at: datetime, surface: str, count: int, reason: str
) -> bytes:
    """The ``<root>/events`` message ``refused.<surface>`` (kind ``refused``).

    ``count`` refusals since the previous such event, ``reason`` the latest one's
    code. Never carries the refused content. Not part of the outbox: no store/seq.
    """
    return dumps(
        {
            "v": PAYLOAD_VERSION,
            "device": device_id,
            "ts": iso_utc(at),
            "event": f"refused.{surface}",
            "kind": "refused",
            "count": count,
            "reason": reason,
        }
    )


def clean_status_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Keep only the known status fields with the right types; others become null.

    A status provider is other people's code: this keeps free text, names or
    anything unexpected out of a retained topic whatever it returns.
    """
    out: dict[str, Any] = {}
    for name, kinds in STATUS_FIELDS.items():
        value = raw.get(name)
        if isinstance(value, bool) or not isinstance(value, kinds):
            value = None
        elif isinstance(value, list):  # bundle_formats: a few small integers, nothing else
            value = [v for v in value[:_MAX_LIST] if type(v) is int and 0 <= v < 1000] or None
        elif isinstance(value, str):
            value = value[:_MAX_TEXT]
        elif isinstance(value, float):
            value = round(value, 1) if math.isfinite(value) else None
        out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """Everything the retained ``<root>/status`` message reports."""

    device_id: str
    version: str
    uptime_s: float
    totals: Mapping[str, int]
    pending: int
    published: int
    acked: int
    reconnects: int
    last_error: str | None
    day: str = ""
    today: Mapping[str, int] = field(default_factory=dict)
    gate: Mapping[str, Any] = field(default_factory=dict)
    refused: Mapping[str, int] = field(default_factory=dict)
    store_id: str | None = None
    seq: int | None = None
    timezone: str | None = None


def status_payload(info: StatusInfo, at: datetime) -> bytes:
    """The retained ``<root>/status`` JSON (``uptime_s`` in whole seconds).

    ``gate`` fields come from the status provider after :func:`clean_status_fields`;
    top-level ``last_error`` is the gate's (provider), ``outbox.last_error`` MQTT's.
    ``store``/``seq`` name the count database and its last change that ``totals``
    include, so a consumer never lets this retained message replace totals from a
    ``counts`` message with a higher ``seq``; ``timezone`` is the zone of ``today``.
    """
    today = dict(info.today)
    return dumps(
        {
            "v": PAYLOAD_VERSION,
            "device": info.device_id,
            "version": info.version,
            "ts": iso_utc(at),
            "uptime_s": round(info.uptime_s),
            "store": info.store_id,
            "seq": info.seq,
            "timezone": info.timezone,
            **clean_status_fields(info.gate),
            "totals": dict(info.totals),
            "today": {
                "date": info.day,
                **today,
                "allowed": today.get("allowed", 0),
                "denied": today.get("denied", 0),
            },
            "refused": dict(info.refused),
            "outbox": {
                "pending": info.pending,
                "published": info.published,
                "acked": info.acked,
                "reconnects": info.reconnects,
                "last_error": info.last_error,
            },
        }
    )
