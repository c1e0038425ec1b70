"""The JSON payloads of the MQTT topic contract (see ``docs/mqtt.md``).

Pure functions: no I/O, no clock of their own. Every payload carries ``"v": 1``
so receivers can tell contract versions apart, and none carries personal data:
a :class:`~kiosk.decision.Decision` contributes only its result, reason code and
input kind, never ``holder_masked`` or ``detail``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kiosk.decision import Decision

PAYLOAD_VERSION = 1
"""Value of ``"v"`` in every payload; bumped only for incompatible changes."""

ONLINE = b"online"
OFFLINE = b"offline"


def iso_utc(at: datetime) -> str:
    """``at`` as an ISO-8601 UTC string with millisecond precision and a ``Z`` suffix.

    Raises:
        ValueError: ``at`` is naive. A gate's timestamps must be unambiguous, so
            the caller's clock must return aware datetimes.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dumps(obj: Mapping[str, Any]) -> bytes:
    # Compact and key-sorted: stable bytes make payloads easy to diff and test.
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


def counts_payload(
    *,
    device_id: str,
    store_id: str,
    boot: int,
    seq: int,
    at: datetime,
    change: Mapping[str, str],
    totals: Mapping[str, int],
) -> bytes:
    """The ``<root>/counts`` message for one counted change.

    Args:
        device_id: ``<site>/<gate>``.
        store_id: random id of the count database (changes only if the database is
            recreated, e.g. a new SD card); with ``seq`` it identifies the message.
        boot: the store's boot counter when the decision was recorded.
        seq: the outbox sequence number (gapless, monotonic per ``store_id``).
        at: when the decision was made (timezone-aware).
        change: what was counted: :func:`decision_change` for a decision, or
            ``{"event": name}`` for a gate event (passage, tailgate, ...).
        totals: all cumulative totals *after* this change.
    """
    return _dumps(
        {
            "v": PAYLOAD_VERSION,
            "device": device_id,
            "store": store_id,
            "boot": boot,
            "seq": seq,
            "ts": iso_utc(at),
            **change,
            "totals": dict(totals),
        }
    )


def decision_change(decision: Decision) -> dict[str, str]:
    """The fields of a ``counts`` message that describe a decision (no personal data)."""
    return {
        "result": "allowed" if decision.allowed else "denied",
        "reason": decision.reason.value,
        "input": decision.input.value,
    }


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


def status_payload(info: StatusInfo, at: datetime) -> bytes:
    """The retained ``<root>/status`` JSON (``uptime_s`` in whole seconds)."""
    return _dumps(
        {
            "v": PAYLOAD_VERSION,
            "device": info.device_id,
            "version": info.version,
            "ts": iso_utc(at),
            "uptime_s": round(info.uptime_s),
            "totals": dict(info.totals),
            "outbox": {
                "pending": info.pending,
                "published": info.published,
                "acked": info.acked,
                "reconnects": info.reconnects,
                "last_error": info.last_error,
            },
        }
    )
