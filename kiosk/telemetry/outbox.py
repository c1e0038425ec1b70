"""The outbox as the publisher sees it: pending rows, totals, acknowledgements.

:class:`OutboxReader` is the publisher's own connection to the count database,
opened *inside* the ``kiosk-outbox`` thread (``check_same_thread`` stays on as a
guard). It reads pending rows and totals and deletes rows once the broker has
acknowledged them; it never inserts. :class:`~kiosk.telemetry.store.CountStore`
(the writer) shares the query methods of :class:`Connection`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kiosk.closing import Closing
from kiosk.errors import TelemetryError
from kiosk.telemetry.db import Transaction, open_db


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One queued report. ``topic`` is relative to the topic root (e.g. ``"counts"``)."""

    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created_at: str


class Connection(Closing):
    """Queries shared by the writer and the reader; each instance owns one connection."""

    def __init__(self, db_path: Path, *, check_same_thread: bool) -> None:
        self._conn: sqlite3.Connection | None = None  # set last: close() is safe if open fails
        self._lock = threading.Lock()
        self.db_path = db_path
        self._conn = open_db(db_path, check_same_thread=check_same_thread)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise TelemetryError("count store is closed")
        return self._conn

    def totals(self) -> dict[str, int]:
        """All cumulative totals since installation written to disk; missing means 0."""
        with self._lock:
            rows = self._db().execute("SELECT name, value FROM totals ORDER BY name").fetchall()
        return {name: int(value) for name, value in rows}

    def day_totals(self, day: str) -> dict[str, int]:
        """The counters of local calendar day ``day`` (``YYYY-MM-DD``); missing means 0."""
        with self._lock:
            rows = self._db().execute(
                "SELECT name, value FROM daily WHERE day = ? ORDER BY name", (day,)
            )
            return {str(name): int(value) for name, value in rows}

    def pending(self, limit: int) -> list[OutboxMessage]:
        """Up to ``limit`` unacknowledged messages, oldest (lowest row id) first."""
        with self._lock:
            rows = (
                self._db()
                .execute(
                    "SELECT seq, topic, payload, qos, retain, created_at FROM outbox "
                    "ORDER BY seq LIMIT ?",
                    (limit,),
                )
                .fetchall()
            )
        return [
            OutboxMessage(int(s), str(t), bytes(p), int(q), bool(r), str(c))
            for s, t, p, q, r, c in rows
        ]

    def has_pending(self) -> bool:
        """Whether any message awaits acknowledgement (cheap: one index probe)."""
        with self._lock:
            row = self._db().execute("SELECT 1 FROM outbox LIMIT 1").fetchone()
        return row is not None

    def pending_count(self) -> int:
        """Number of messages not yet acknowledged (a scan: ~ms per 10,000 rows)."""
        with self._lock:
            (count,) = self._db().execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(count)

    def ack(self, seq: int) -> None:
        """Delete message ``seq`` (the broker has it). Unknown seqs are ignored."""
        self.ack_many((seq,))

    def ack_many(self, seqs: Iterable[int]) -> None:
        """Delete several acknowledged messages in one transaction (one fsync).

        Raises:
            TelemetryError: SQLite failed (disk error); nothing was deleted, so the
                messages are simply sent again later.
        """
        batch = [(seq,) for seq in seqs]
        if not batch:
            return
        try:
            with self._lock, Transaction(self._db()) as conn:
                conn.executemany("DELETE FROM outbox WHERE seq = ?", batch)
        except sqlite3.Error as exc:
            raise TelemetryError(f"cannot delete acknowledged messages: {exc}") from exc

    def meta(self, key: str) -> str | None:
        """A value from the meta table (``schema_version``, ``store_id``, ``boot_counter``)."""
        with self._lock:
            row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def count_snapshot(self) -> tuple[str | None, int, dict[str, int]]:
        """``(store_id, seq, totals)`` read in one transaction, so they belong together.

        ``seq`` is the number of the last counted change whose totals these are: a
        consumer orders a status against ``counts`` messages by it.
        """
        with self._lock:
            conn = self._db()
            # A deferred BEGIN is a read snapshot in WAL mode: it never blocks the writer.
            conn.execute("BEGIN")
            try:
                meta = dict(conn.execute(
                    "SELECT key, value FROM meta WHERE key IN ('store_id', 'count_seq')"
                ).fetchall())
                rows = conn.execute("SELECT name, value FROM totals ORDER BY name").fetchall()
            finally:
                conn.execute("COMMIT")
        seq = meta.get("count_seq")
        return (
            None if meta.get("store_id") is None else str(meta["store_id"]),
            int(seq) if seq is not None else 0,
            {str(name): int(value) for name, value in rows},
        )

    def close(self) -> None:
        """Close the connection. Safe to call twice and after a failed constructor."""
        conn = getattr(self, "_conn", None)
        if conn is None:
            return
        with self._lock:
            self._conn = None
            conn.close()



class OutboxReader(Connection):
    """The publisher's connection: reads pending rows and totals, deletes acked rows.

    Open it in the thread that uses it; SQLite's ``check_same_thread`` enforces it.
    It does not count a boot and never inserts into the outbox.
    """

    def __init__(self, db_path: Path) -> None:
        super().__init__(db_path, check_same_thread=True)
