"""Bounded disk use: coalesce old ``counts`` messages when the outbox grows too big.

Policy (documented in ``docs/mqtt.md``). When the outbox holds more than
``max_rows`` rows, or the database uses more than ``max_bytes``, consecutive
``counts`` messages are merged into one message per aligned time bucket: first
per ``bucket_s`` (default a minute), then per hour, then per day, until the outbox
is back under half the limits (or twice the protected rows, whichever is more).
A merged message covers the change numbers ``seq_first..seq`` of the rows it
replaces, sums their ``delta`` and keeps the newest ``totals``, so

* the cumulative totals are never approximated (the newest message and the
  retained status always carry the exact totals), and the sum of all ``delta``
  a receiver gets still equals the totals;
* only the per-change detail (result/reason/input of each scan) is lost, and
  only for changes older than the ``protect`` newest-unsent boundary.

Rows that may already have reached a broker are never merged: the publisher sends
the oldest rows first and keeps at most a window (≤ 24) of them unacknowledged,
so protecting the oldest ``protect`` (256) pending rows covers every row handed to
the MQTT client in this or a previous run. A receiver therefore sees message
ranges that are either identical (a re-send) or disjoint.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from dataclasses import dataclass
from typing import Any

from kiosk.telemetry.db import Transaction
from kiosk.telemetry.payloads import bucket, dumps, parse_utc

log = logging.getLogger(__name__)

PROTECT_ROWS = 256
CHUNK = 2000  # rows per step/transaction: keeps the write lock short for acks and records


@dataclass(frozen=True, slots=True)
class Usage:
    """Outbox rows and bytes the database uses (pages in use, freelist excluded)."""

    rows: int
    used_bytes: int


def usage(conn: sqlite3.Connection) -> Usage:
    """Measure the outbox (one COUNT over the table, a few ms for 100,000 rows)."""
    (rows,) = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    (free,) = conn.execute("PRAGMA freelist_count").fetchone()
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    return Usage(int(rows), (int(pages) - int(free)) * int(size))


class Compactor:
    """Merges old ``counts`` rows in bounded steps, so the scan loop never stalls long.

    :meth:`step` does at most one chunk (:data:`CHUNK` rows, one transaction:
    ~20 ms here, a few hundred on a Pi) and remembers where it stopped; the
    owner calls it again until :attr:`active` is False. Each step re-reads the
    protected boundary, because acknowledgements move it forward between steps.
    A power cut between steps leaves a valid, partly compacted outbox.
    """

    def __init__(
        self, *, max_rows: int, max_bytes: int, bucket_s: int, protect: int = PROTECT_ROWS
    ) -> None:
        self.max_rows, self.max_bytes, self.bucket_s, self.protect = (
            max_rows,
            max_bytes,
            bucket_s,
            protect,
        )
        self.levels = sorted({bucket_s, *(s for s in (3600, 86400) if s > bucket_s)})
        # Aim for half the limits so this runs rarely, but the protected rows cannot
        # be merged: a target below them would escalate to daily buckets for nothing.
        self.target_rows = max(max_rows // 2, 2 * protect)
        self._level = 0
        self._cursor: int | None = None  # None: not compacting
        self.removed = 0

    @property
    def active(self) -> bool:
        """Whether a compaction is under way (call :meth:`step` again soon)."""
        return self._cursor is not None

    def step(self, conn: sqlite3.Connection) -> int:
        """Check the limits or continue merging; returns rows removed by this step.

        Raises:
            sqlite3.Error: the disk refused a write; rows merged so far stay merged.
        """
        if self._cursor is None:
            now = usage(conn)
            if now.rows <= self.max_rows and now.used_bytes <= self.max_bytes:
                return 0
            self._level, self._cursor, self.removed = 0, 0, 0
        with Transaction(conn):
            boundary = _first_unprotected(conn, self.protect)
            if boundary is None:
                self._cursor = None
                return 0
            cursor = max(self._cursor, boundary)
            removed, next_cursor = _merge_chunk(
                conn, cursor, self.levels[self._level], self.bucket_s
            )
        self.removed += removed
        if next_cursor is not None:
            self._cursor = next_cursor
            return removed
        now = usage(conn)  # this level reached the newest row
        done = now.rows <= self.target_rows and now.used_bytes <= self.max_bytes // 2
        if done or self._level + 1 >= len(self.levels):
            log.warning(
                "outbox over its limit: merged %d old counts messages (now %d rows, %d bytes)",
                self.removed,
                now.rows,
                now.used_bytes,
            )
            self._cursor = None
        else:
            self._level, self._cursor = self._level + 1, 0
        return removed


def compact(
    conn: sqlite3.Connection,
    *,
    max_rows: int,
    max_bytes: int,
    bucket_s: int,
    protect: int = PROTECT_ROWS,
) -> int:
    """Merge old ``counts`` rows until under half the limits, in one go; rows removed.

    Does nothing when the outbox is within ``max_rows`` and ``max_bytes``.

    Raises:
        sqlite3.Error: the disk refused a write; rows merged so far stay merged.
    """
    compactor = Compactor(
        max_rows=max_rows, max_bytes=max_bytes, bucket_s=bucket_s, protect=protect
    )
    removed = compactor.step(conn)
    while compactor.active:
        removed += compactor.step(conn)
    return removed


def _first_unprotected(conn: sqlite3.Connection, protect: int) -> int | None:
    row = conn.execute(
        "SELECT seq FROM outbox ORDER BY seq LIMIT 1 OFFSET ?", (protect,)
    ).fetchone()
    return None if row is None else int(row[0])


def _merge_chunk(
    conn: sqlite3.Connection, cursor: int, level: int, bucket_s: int
) -> tuple[int, int | None]:
    """Merge within up to CHUNK rows from ``cursor`` (inside the caller's transaction).

    Returns (rows removed, where the next chunk starts or None at the newest row).
    """
    rows = conn.execute(
        "SELECT seq, payload FROM outbox WHERE topic = 'counts' AND seq >= ? ORDER BY seq LIMIT ?",
        (cursor, CHUNK),
    ).fetchall()
    if len(rows) < 2:
        return 0, None
    removed = 0
    groups = _groups([(int(r), json.loads(p)) for r, p in rows], level)
    for group in groups:
        if len(group) > 1:
            merged = _merge([body for _, body in group], level, bucket_s)
            conn.execute("UPDATE outbox SET payload = ? WHERE seq = ?", (merged, group[-1][0]))
            conn.executemany("DELETE FROM outbox WHERE seq = ?", [(r,) for r, _ in group[:-1]])
            removed += len(group) - 1
    if len(rows) < CHUNK:
        return removed, None
    # The last group may continue into the next chunk: start there (it is one row now).
    return removed, groups[-1][-1][0]


def _aligned(text: str, level: int) -> int:
    return math.floor(parse_utc(text).timestamp() / level)


def _groups(rows: list[tuple[int, dict[str, Any]]], level: int) -> list[list[tuple[int, Any]]]:
    """Split rows into runs of consecutive change numbers within one ``level`` bucket."""
    groups: list[list[tuple[int, Any]]] = []
    for row, body in rows:
        if groups:
            head, tail = groups[-1][0][1], groups[-1][-1][1]
            fits = (
                body["seq_first"] == tail["seq"] + 1
                and body["store"] == head["store"]
                and _aligned(head["ts_first"], level) == _aligned(body["ts"], level)
            )
            if fits:
                groups[-1].append((row, body))
                continue
        groups.append([(row, body)])
    return groups


def _merge(bodies: list[dict[str, Any]], level: int, bucket_s: int) -> bytes:
    first, last = bodies[0], bodies[-1]
    delta: dict[str, int] = {}
    for body in bodies:
        for name, n in body["delta"].items():
            delta[name] = delta.get(name, 0) + int(n)
    ts_first, ts = parse_utc(first["ts_first"]), parse_utc(last["ts"])
    return dumps(
        {
            "v": last["v"],
            "device": last["device"],
            "store": last["store"],
            "boot": last["boot"],
            "seq": last["seq"],
            "seq_first": first["seq_first"],
            "ts": last["ts"],
            "ts_first": first["ts_first"],
            "bucket": bucket(ts_first, ts, level if level >= bucket_s else bucket_s),
            "delta": delta,
            "totals": last["totals"],
        }
    )
