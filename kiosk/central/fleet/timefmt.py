"""Times as the API shows them: ISO-8601 UTC with a ``Z``; gates' local days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "Asia/Jakarta"


def iso(seconds: float) -> str:
    """UNIX seconds as ``2024-05-01T08:00:00Z`` (whole seconds)."""
    return datetime.fromtimestamp(int(seconds), UTC).isoformat().replace("+00:00", "Z")


def zone(name: str | None) -> ZoneInfo:
    """The gate's zone; an unknown or missing name means the default (Asia/Jakarta)."""
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def local_day(seconds: float, tz: ZoneInfo) -> tuple[str, int, int]:
    """``(date, start, end)`` of the local calendar day holding ``seconds`` (UNIX s bounds)."""
    local = datetime.fromtimestamp(seconds, tz)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=1, hours=2)).replace(hour=0)  # DST-safe next midnight
    return start.date().isoformat(), int(start.timestamp()), int(end.timestamp())
