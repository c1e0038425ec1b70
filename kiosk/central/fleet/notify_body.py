"""What notifications say: alarm and digest bodies, and the facts a digest reads.

Bodies carry codes and times only (alarms hold no personal data); every list
and text is bounded. A digest covers the site's last 24 h and its local day.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from kiosk.central.fleet.alarms import LABELS, AlarmChange
from kiosk.central.fleet.db import Connection, Database
from kiosk.central.fleet.state import Snapshot
from kiosk.central.fleet.timefmt import iso, local_day, zone

DETAIL_MAX = 120
LIST_MAX = 100
"""At most this many alarms per list in a digest (the totals count them all)."""
_LONG_NUMBER = re.compile(r"\d{10,}")
# Alarm details are codes ("last will", "3 this hour"); a long digit run could only be
# an identity number leaking from a gate's error text, so it never leaves in a notice.


def safe_detail(detail: str) -> str:
    """The detail bounded to :data:`DETAIL_MAX` characters, long digit runs masked."""
    return _LONG_NUMBER.sub("…", detail)[:DETAIL_MAX]


def alarm_body(change: AlarmChange) -> dict[str, Any]:
    """The webhook body of a raised or cleared alarm (codes and times only)."""
    a = change.alarm
    label_id, label_en = LABELS.get(a.kind, (a.kind, a.kind))
    return {
        "v": 1,
        "event": change.event,
        "alarm_id": a.id,
        "kind": a.kind,
        "label_id": label_id,
        "label_en": label_en,
        "site": a.site,
        "gate": a.gate,
        "detail": safe_detail(a.detail),
        "raised_at": iso(a.raised),
        "cleared_at": iso(change.at) if change.event == "cleared" else None,
    }


def next_local(now: float, hhmm: str, zone_name: str | None) -> float:
    """The first UNIX time after ``now`` that is ``hhmm`` local time in the zone."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    local = datetime.fromtimestamp(now, zone(zone_name))
    at = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if at.timestamp() <= now:
        at = (local + timedelta(days=1)).replace(hour=hour, minute=minute, second=0,
                                                 microsecond=0)
    return at.timestamp()


class FleetFacts(Protocol):
    """What a digest reads (called on the sender thread)."""

    def site_zones(self) -> Mapping[str, str | None]:
        """Each known site and its zone name (None: the default zone)."""

    def alarms_since(self, site: str, since: int) -> list[tuple[Any, ...]]:
        """Site alarms raised or cleared since ``since`` or still open:
        ``(id, site, gate, kind, detail, raised, cleared)``."""

    def alarm_counts(self, site: str, since: int) -> tuple[int, int, int]:
        """How many site alarms were raised and cleared since ``since``, and are open."""

    def today(self, site: str) -> Mapping[str, int]:
        """The site's counts of its gates' current local day."""


def digest_body(facts: FleetFacts, site: str, now: float, zone_name: str | None
                ) -> dict[str, Any]:
    """The digest of ``site``: the last 24 h of alarms and today's totals."""
    since = int(now) - 86400

    def item(row: tuple[Any, ...]) -> dict[str, Any]:
        return {"alarm_id": row[0], "gate": row[2], "kind": row[3],
                "detail": safe_detail(str(row[4])), "raised_at": iso(row[5]),
                "cleared_at": None if row[6] is None else iso(row[6])}

    rows = facts.alarms_since(site, since)
    raised = [item(r) for r in rows if r[5] >= since]
    cleared = [item(r) for r in rows if r[6] is not None and r[6] >= since]
    still = [item(r) for r in rows if r[6] is None]
    return {
        "v": 1, "event": "digest", "site": site,
        "date": local_day(now, zone(zone_name))[0], "zone": zone(zone_name).key,
        "from": iso(since), "to": iso(now),
        "raised": raised[:LIST_MAX], "cleared": cleared[:LIST_MAX], "open": still[:LIST_MAX],
        "totals": dict(zip(("raised", "cleared", "open"), facts.alarm_counts(site, since),
                           strict=True)),
        "today": dict(sorted(facts.today(site).items())),
    }


class StoreFacts:
    """:class:`FleetFacts` from the state's snapshot and the database (a read connection).

    The connection is opened by the sender thread on first use and kept.
    """

    def __init__(self, snapshot: Callable[[], Snapshot], db: Database) -> None:
        self._snapshot = snapshot
        self._db = db
        self._conn: Connection | None = None

    def site_zones(self) -> dict[str, str | None]:
        """Each site with the zone its first gate (by name) reports."""
        out: dict[str, str | None] = {}
        for (site, _), view in sorted(self._snapshot().gates.items()):
            if out.get(site) is None:
                out[site] = view.get("timezone")
        return out

    def alarms_since(self, site: str, since: int) -> list[tuple[Any, ...]]:
        """See :class:`FleetFacts` (at most 3 * LIST_MAX rows, newest first)."""
        return self._query(
            "SELECT id, site, gate, kind, detail, raised, cleared FROM alarms"
            " WHERE site = ? AND (raised >= ? OR cleared >= ? OR cleared IS NULL)"
            " ORDER BY raised DESC, id DESC LIMIT ?",
            (site, since, since, 3 * LIST_MAX),
        )

    def alarm_counts(self, site: str, since: int) -> tuple[int, int, int]:
        """See :class:`FleetFacts`."""
        (row,) = self._query(
            "SELECT COALESCE(SUM(CASE WHEN raised >= ? THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN cleared >= ? THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN cleared IS NULL THEN 1 ELSE 0 END), 0)"
            " FROM alarms WHERE site = ?",
            (since, since, site),
        )
        return int(row[0]), int(row[1]), int(row[2])

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self._conn is None:
            self._conn = self._db.connect()
        try:
            return list(self._conn.execute(sql, params).fetchall())
        except Exception:
            self.close()  # a fresh connection next time
            raise

    def today(self, site: str) -> dict[str, int]:
        """Sum of the site's gates' "today" counters."""
        out: Counter[str] = Counter()
        for (name, _), view in self._snapshot().gates.items():
            if name == site:
                out.update({k: v for k, v in view["today"].items() if isinstance(v, int)})
        return dict(out)

    def close(self) -> None:
        """Close the read connection, if open."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
