"""What the JSON API returns, built from a :class:`~kiosk.central.fleet.state.Snapshot`.

Pure functions (the database is read only by :func:`counts`, on the caller's
connection). No personal data can appear: gates report none, and the state
keeps only counters, codes and times.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from kiosk.central.fleet import store
from kiosk.central.fleet.db import Connection
from kiosk.central.fleet.state import Snapshot
from kiosk.central.fleet.timefmt import iso, local_day, zone

_INTERNAL = ("last_seen_s",)
MAX_RANGE_S = 400 * 86400


class BadQuery(ValueError):
    """A query parameter is malformed or out of bounds (HTTP 400)."""


COMMANDS_SHOWN = 20
"""Command outcomes the live page lists (``GET /api/commands`` has all of them)."""


def gate_json(view: dict[str, Any]) -> dict[str, Any]:
    """One gate as the API shows it."""
    return {k: v for k, v in view.items() if k not in _INTERNAL}


def gates(snap: Snapshot, site: str | None = None) -> list[dict[str, Any]]:
    """All gates (optionally of one site), sorted by site and gate."""
    keys = sorted(k for k in snap.gates if site is None or k[0] == site)
    return [gate_json(snap.gates[k]) for k in keys]


def sites(snap: Snapshot) -> list[dict[str, Any]]:
    """Per site: gate count, gates online, today's and all-time totals (summed)."""
    acc: dict[str, dict[str, Any]] = {}
    for (site, _), view in sorted(snap.gates.items()):
        entry = acc.setdefault(
            site,
            {
                "site": site,
                "gates": 0,
                "online": 0,
                "alarms": 0,
                "today": Counter(),
                "totals": Counter(),
                "date": view["today"].get("date"),
            },
        )
        entry["gates"] += 1
        entry["online"] += bool(view["online"])
        entry["alarms"] += len(view["alarms"])
        entry["today"].update({k: v for k, v in view["today"].items() if k != "date"})
        entry["totals"].update(view["totals"])
    out = []
    for entry in acc.values():
        entry["today"] = {"date": entry.pop("date"), **dict(sorted(entry["today"].items()))}
        entry["totals"] = dict(sorted(entry["totals"].items()))
        out.append(entry)
    return out


def _when(text: str | None, default: float) -> float:
    if not text:
        return default
    if len(text) > 40:
        raise BadQuery("from/to: too long")
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery("from/to: expected an ISO date or time") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


def counts(
    conn: Connection,
    snap: Snapshot,
    *,
    site: str | None,
    gate: str | None,
    start: str | None,
    end: str | None,
    bucket: str,
    now: float,
) -> list[dict[str, Any]]:
    """Counter series: one row per site (or gate, when ``gate`` is given) and bucket.

    ``bucket=hour`` uses UTC hours; ``bucket=day`` the gate's local day (its zone).
    Defaults: the last 24 hours. Raises :class:`BadQuery`.
    """
    if bucket not in ("hour", "day"):
        raise BadQuery("bucket: hour or day")
    if gate and not site:
        raise BadQuery("gate: requires site")
    t1 = _when(end, now)
    t0 = _when(start, t1 - 86400)
    if not 0 <= t1 - t0 <= MAX_RANGE_S:
        raise BadQuery("from/to: from must be before to, at most 400 days apart")
    first = int(t0) // store.HOUR * store.HOUR
    rows = store.hourly(conn, site=site, gate=gate, start=first, end=int(t1) + 1)
    series: dict[tuple[str, str, str], Counter[str]] = {}
    for row_site, row_gate, hour, name, value in rows:
        if bucket == "hour":
            label = iso(hour)
        else:
            view = snap.gates.get((row_site, row_gate), {})
            label = local_day(hour, zone(view.get("timezone")))[0]
        key = (row_site, row_gate if gate else "", label)
        series.setdefault(key, Counter())[name] += value
    return [
        {"site": s, **({"gate": g} if gate else {}), "start": label, "counters": dict(c)}
        for (s, g, label), c in sorted(series.items())
    ]


def counts_csv(rows: list[dict[str, Any]]) -> str:
    """The series as CSV with a header row: ``site,gate,start,counter,value``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["site", "gate", "start", "counter", "value"])
    for row in rows:
        for name, value in sorted(row["counters"].items()):
            writer.writerow([row["site"], row.get("gate", ""), row["start"], name, value])
    return out.getvalue()


def site_hours(conn: Connection, snap: Snapshot, site: str, now: float) -> list[Counter[str]]:
    """Today's counters per local hour (24 entries) of ``site``, in its first gate's zone."""
    tz = next(
        (zone(v.get("timezone")) for k, v in sorted(snap.gates.items()) if k[0] == site), zone(None)
    )
    _, start, end = local_day(now, tz)
    hours = [Counter[str]() for _ in range(24)]
    for _, _, hour, name, value in store.hourly(conn, site=site, gate=None, start=start, end=end):
        index = datetime.fromtimestamp(hour, tz).hour
        hours[index][name] += value
    return hours
