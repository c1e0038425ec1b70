"""The fleet's durable facts: de-duplicated reports, totals per count store, hourly series.

Called only by the store owner (:class:`~kiosk.central.fleet.state.FleetState`)
inside one transaction per batch of messages, except the read queries, which
HTTP requests run on their own connections.

De-duplication is the database's: a report is new exactly when its row
``(site, gate, store, seq_first)`` could be inserted (``ON CONFLICT DO
NOTHING``), so QoS 1 re-sends, replays and two instances sharing one
PostgreSQL can never add a delta twice. The gate guarantees that two reports'
ranges are identical or disjoint (docs/mqtt.md), so ``seq_first`` identifies one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kiosk.central.fleet.db import Connection
from kiosk.central.fleet.messages import Counts

HOUR = 3600


@dataclass(frozen=True, slots=True)
class StreamRow:
    """The newest totals of one count store of one gate."""

    site: str
    gate: str
    store: str
    seq: int
    totals: dict[str, int]
    ts: int


def record_report(conn: Connection, msg: Counts, received: int) -> bool:
    """Insert the report's id; True when it is new (its delta must be counted once)."""
    cursor = conn.execute(
        "INSERT INTO reports (site, gate, store, seq_first, seq, received)"
        " VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (site, gate, store, seq_first) DO NOTHING",
        (msg.site, msg.gate, msg.store, msg.seq_first, msg.seq, received),
    )
    return cursor.rowcount == 1


def hour_of(msg: Counts) -> int:
    """The UTC hour (UNIX s) a report's delta is added to: that of its bucket start.

    A merged range (an outbox that overflowed during a long outage) may span more
    than an hour; it lands in its first hour (docs/fleet.md).
    """
    return msg.bucket_start // HOUR * HOUR


def add_hourly(conn: Connection, rows: Mapping[tuple[str, str, int, str], int]) -> None:
    """Add ``{(site, gate, hour, name): value}`` to the hourly series.

    Rows are written in key order: two instances sharing PostgreSQL then lock
    rows in the same order and cannot deadlock.
    """
    conn.executemany(
        "INSERT INTO hourly (site, gate, hour, name, value) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (site, gate, hour, name) DO UPDATE SET value = hourly.value + excluded.value",
        [(*key, value) for key, value in sorted(rows.items()) if value],
    )


def advance_stream(conn: Connection, msg: Counts) -> None:
    """Keep the totals of the highest ``seq`` seen for this count store."""
    conn.execute(
        "INSERT INTO streams (site, gate, store, seq, totals, ts) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (site, gate, store) DO UPDATE SET seq = excluded.seq,"
        " totals = excluded.totals, ts = excluded.ts WHERE excluded.seq > streams.seq",
        (msg.site, msg.gate, msg.store, msg.seq, json.dumps(msg.totals), int(msg.ts.timestamp())),
    )


def save_gate(conn: Connection, row: tuple[Any, ...]) -> None:
    """Upsert ``(site, gate, online, last_seen, store, status_json, timezone)``."""
    conn.execute(
        "INSERT INTO gates (site, gate, online, last_seen, store, status, timezone)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, gate) DO UPDATE SET"
        " online = excluded.online, last_seen = excluded.last_seen, store = excluded.store,"
        " status = excluded.status, timezone = excluded.timezone",
        row,
    )


def load_gates(conn: Connection) -> list[tuple[Any, ...]]:
    """Every saved gate row (see :func:`save_gate`)."""
    return list(
        conn.execute(
            "SELECT site, gate, online, last_seen, store, status, timezone FROM gates"
        ).fetchall()
    )


def load_streams(conn: Connection) -> list[StreamRow]:
    """The newest totals of every count store."""
    rows = conn.execute("SELECT site, gate, store, seq, totals, ts FROM streams").fetchall()
    return [StreamRow(r[0], r[1], r[2], int(r[3]), json.loads(r[4]), int(r[5])) for r in rows]


def gaps(conn: Connection, site: str | None = None) -> list[tuple[str, str, str, int, int]]:
    """Missing change ranges ``(site, gate, store, first, last)`` between reports seen."""
    where, params = ("WHERE site = ?", (site,)) if site else ("", ())
    rows = conn.execute(
        "SELECT site, gate, store, prev + 1, seq_first - 1 FROM ("
        " SELECT site, gate, store, seq_first,"
        " LAG(seq) OVER (PARTITION BY site, gate, store ORDER BY seq_first) AS prev"
        f" FROM reports {where}) AS ordered WHERE prev IS NOT NULL AND seq_first > prev + 1",
        params,
    ).fetchall()
    return [(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]


def hourly(
    conn: Connection,
    *,
    site: str | None,
    gate: str | None,
    start: int,
    end: int,
) -> list[tuple[str, str, int, str, int]]:
    """``(site, gate, hour, name, value)`` rows with ``start <= hour < end`` (UNIX s)."""
    where = ["hour >= ?", "hour < ?"]
    params: list[Any] = [start, end]
    if site:
        where.append("site = ?")
        params.append(site)
    if gate:
        where.append("gate = ?")
        params.append(gate)
    rows = conn.execute(
        "SELECT site, gate, hour, name, value FROM hourly WHERE "
        + " AND ".join(where)
        + " ORDER BY site, gate, hour, name",
        params,
    ).fetchall()
    return [(r[0], r[1], int(r[2]), r[3], int(r[4])) for r in rows]


def raise_alarm(conn: Connection, site: str, gate: str, kind: str, detail: str, at: int) -> int:
    """Record a raised alarm; returns its id."""
    cursor = conn.execute(
        "INSERT INTO alarms (site, gate, kind, detail, raised) VALUES (?, ?, ?, ?, ?) RETURNING id",
        (site, gate, kind, detail[:120], at),
    )
    return int(cursor.fetchone()[0])


def clear_alarm(conn: Connection, alarm_id: int, at: int) -> None:
    """Record the time an alarm cleared."""
    conn.execute("UPDATE alarms SET cleared = ? WHERE id = ?", (at, alarm_id))


def open_alarms(conn: Connection) -> list[tuple[int, str, str, str, str, int]]:
    """``(id, site, gate, kind, detail, raised)`` of alarms not cleared."""
    rows = conn.execute(
        "SELECT id, site, gate, kind, detail, raised FROM alarms WHERE cleared IS NULL"
    ).fetchall()
    return [(int(r[0]), r[1], r[2], r[3], r[4], int(r[5])) for r in rows]


def recent_alarms(conn: Connection, limit: int = 200) -> list[tuple[Any, ...]]:
    """The newest alarms, open or cleared: ``(id, site, gate, kind, detail, raised, cleared)``."""
    return list(
        conn.execute(
            "SELECT id, site, gate, kind, detail, raised, cleared FROM alarms"
            " ORDER BY raised DESC, id DESC LIMIT ?",
            (limit,),
        ).fetchall()
    )


def record_command(conn: Connection, site: str, gate: str, ts_ms: int, event: str) -> None:
    """Keep one command outcome a gate reported (a redelivered copy changes nothing)."""
    conn.execute(
        "INSERT INTO commands (site, gate, ts, event) VALUES (?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (site, gate, ts_ms, event),
    )


def recent_commands(
    conn: Connection, site: str | None = None, gate: str | None = None, limit: int = 200
) -> list[tuple[str, str, int, str]]:
    """The newest command outcomes, newest first: ``(site, gate, ts_ms, event)``."""
    where, args = _where(site, gate)
    rows = conn.execute(
        f"SELECT site, gate, ts, event FROM commands{where} ORDER BY ts DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [(r[0], r[1], int(r[2]), r[3]) for r in rows]


def _where(site: str | None, gate: str | None) -> tuple[str, tuple[str, ...]]:
    clauses, args = [], []
    for column, value in (("site", site), ("gate", gate)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def prune_reports(conn: Connection, keep_days: int, now: float | None = None) -> int:
    """Forget report ids older than ``keep_days``; returns how many."""
    cutoff = int((now if now is not None else time.time()) - keep_days * 86400)
    conn.execute("DELETE FROM commands WHERE ts < ?", (cutoff * 1000,))
    return conn.execute("DELETE FROM reports WHERE received < ?", (cutoff,)).rowcount


def today_from_hourly(
    conn: Connection, site: str, gate: str, start: int, end: int
) -> Mapping[str, int]:
    """Sum of a gate's hourly counters in ``[start, end)``."""
    out: dict[str, int] = {}
    for _, _, _, name, value in hourly(conn, site=site, gate=gate, start=start, end=end):
        out[name] = out.get(name, 0) + value
    return out
