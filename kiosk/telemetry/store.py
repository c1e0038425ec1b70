"""Durable counts and their outbox: one SQLite file, one transaction per decision.

Why one transaction: a gate can lose power at any instant. :meth:`CountStore.record`
increments the cumulative totals *and* queues the ``counts`` report for them in a
single SQLite transaction (WAL, ``synchronous=FULL``), so after a power cut either
both are on disk or neither is; a count can never exist without its report.

Thread ownership (one connection per thread, never shared):

* :class:`CountStore` is the **writer**, owned by the scan loop. It bumps the boot
  counter on open and is the only code that inserts outbox rows. Its connection is
  guarded by a lock, so it may be built on the main thread and used by the loop.
* :class:`OutboxReader` is the **publisher's** connection, opened *inside* the
  ``kiosk-outbox`` thread (``check_same_thread`` stays on as a guard). It reads
  pending rows and totals and deletes rows once the broker acknowledged them.

Both connections may write (record vs. ack); SQLite serialises them with a busy
timeout of :data:`BUSY_TIMEOUT_S`, and every write is a short ``BEGIN IMMEDIATE``
transaction, so :meth:`CountStore.record` waits at most milliseconds on the
publisher and never on the network.

Sequence numbers: the outbox ``seq`` is the per-device message number. The table
uses ``AUTOINCREMENT`` and each new row takes ``max ever used + 1`` inside the
write transaction, so numbers are gapless, survive restarts and are never reused
after acknowledged rows are deleted.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from kiosk.decision import Decision
from kiosk.errors import TelemetryError
from kiosk.telemetry.payloads import counts_payload, decision_change, iso_utc, total_names

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 5.0
COUNTS_TOPIC = "counts"
"""Outbox topics are stored relative to the topic root, which the publisher adds."""

# Seeded with 0 so a dashboard sees these from the first report on.
_BASE_TOTALS = ("allowed", "denied", "input.qr", "input.nik")
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS totals (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One queued report. ``topic`` is relative to the topic root (e.g. ``"counts"``)."""

    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created_at: str


def _open(db_path: Path, *, check_same_thread: bool) -> sqlite3.Connection:
    """Open ``db_path`` (creating it and its schema) with WAL and ``synchronous=FULL``.

    Raises:
        TelemetryError: the file cannot be opened/created, or was written by a newer
            schema version than this code understands.
    """
    conn: sqlite3.Connection | None = None
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction
        # spans exactly the statements we intend and nothing is left open.
        conn = sqlite3.connect(
            str(db_path),
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        with _transaction(conn):
            _create_schema(conn)
        return conn
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.Error | OSError):
            raise TelemetryError(f"cannot open count store {db_path}: {exc}") from exc
        raise


def _create_schema(conn: sqlite3.Connection) -> None:
    # executescript() would COMMIT our transaction, so run statement by statement.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("schema_version", str(SCHEMA_VERSION)),
                ("store_id", uuid.uuid4().hex),
                ("boot_counter", "0"),
            ],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO totals (name, value) VALUES (?, 0)",
            [(name,) for name in _BASE_TOTALS],
        )
    elif int(row[0]) > SCHEMA_VERSION:
        raise TelemetryError(
            f"count store schema {row[0]} is newer than supported {SCHEMA_VERSION}"
        )


class _transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any exception.

    IMMEDIATE takes the write lock up front, so two connections never deadlock
    upgrading a read lock; the other side waits up to the busy timeout.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: type[BaseException] | None, *_: Any) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")


class _Connection:
    """Queries shared by the writer and the reader; each instance owns one connection."""

    def __init__(self, db_path: Path, *, check_same_thread: bool) -> None:
        self._conn: sqlite3.Connection | None = None  # set last: close() is safe if open fails
        self._lock = threading.Lock()
        self.db_path = db_path
        self._conn = _open(db_path, check_same_thread=check_same_thread)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise TelemetryError("count store is closed")
        return self._conn

    def totals(self) -> dict[str, int]:
        """All cumulative totals since installation; a missing name means 0."""
        with self._lock:
            rows = self._db().execute("SELECT name, value FROM totals ORDER BY name").fetchall()
        return {name: int(value) for name, value in rows}

    def pending(self, limit: int) -> list[OutboxMessage]:
        """Up to ``limit`` unacknowledged messages, oldest (lowest seq) first."""
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

    def pending_count(self) -> int:
        """Number of messages not yet acknowledged by the broker."""
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
            with self._lock, _transaction(self._db()) as conn:
                conn.executemany("DELETE FROM outbox WHERE seq = ?", batch)
        except sqlite3.Error as exc:
            raise TelemetryError(f"cannot delete acknowledged messages: {exc}") from exc

    def meta(self, key: str) -> str | None:
        """A value from the meta table (``schema_version``, ``store_id``, ``boot_counter``)."""
        with self._lock:
            row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        """Close the connection. Safe to call twice and after a failed constructor."""
        conn = getattr(self, "_conn", None)
        if conn is None:
            return
        with self._lock:
            self._conn = None
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class CountStore(_Connection):
    """The writer: cumulative totals plus the outbox, owned by the scan loop.

    Opening it counts one boot (``boot_counter`` in meta). Use one instance per
    process; the publisher opens its own :class:`OutboxReader`.

    Args:
        db_path: the SQLite file (created with its folder if missing).
        device_id: ``<site>/<gate>`` written into every ``counts`` report. Pass
            it; the empty default only keeps callers that predate it working
            (the topic still names the gate).

    Raises:
        TelemetryError: the database cannot be opened (see :func:`_open`).
    """

    def __init__(self, db_path: Path, device_id: str = "") -> None:
        super().__init__(db_path, check_same_thread=False)
        self.device_id = device_id
        try:
            with self._lock, _transaction(self._db()) as conn:
                conn.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'boot_counter'"
                )
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            self.close()
            raise TelemetryError(f"cannot start count store {db_path}: {exc}") from exc
        self.boot = int(meta["boot_counter"])
        self.store_id = str(meta["store_id"])
        log.info("count store %s open: boot %d", db_path, self.boot)

    def record(self, decision: Decision, at: datetime) -> dict[str, int]:
        """Count ``decision`` and queue its ``counts`` report, atomically.

        Returns all totals after the change. Blocks only on the local disk (an
        fsync, or at most :data:`BUSY_TIMEOUT_S` while the publisher deletes acked
        rows), never on the network.

        Raises:
            ValueError: ``at`` is naive.
            TelemetryError: SQLite failed (disk full, I/O error); nothing was
                written, neither the count nor its report.
        """
        return self._count(total_names(decision), decision_change(decision), at)

    def record_event(self, event: str, at: datetime) -> dict[str, int]:
        """Count a gate event and queue its ``counts`` report, atomically.

        ``event`` is a counter name such as ``"passage"``, ``"unused_grant"``,
        ``"tailgate"`` or ``"emergency_open"`` (lowercase, dots allowed). Returns
        all totals after the change.

        Raises:
            ValueError: ``at`` is naive or ``event`` is not a valid counter name.
            TelemetryError: SQLite failed; nothing was written.
        """
        if not _EVENT_NAME.fullmatch(event):
            raise ValueError(f"invalid event counter name {event!r}")
        return self._count((event,), {"event": event}, at)

    def _count(
        self, names: tuple[str, ...], change: dict[str, str], at: datetime
    ) -> dict[str, int]:
        created_at = iso_utc(at)  # validates before touching the database
        try:
            with self._lock, _transaction(self._db()) as conn:
                conn.executemany(
                    "INSERT INTO totals (name, value) VALUES (?, 1) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + 1",
                    [(name,) for name in names],
                )
                totals = {
                    str(n): int(v)
                    for n, v in conn.execute("SELECT name, value FROM totals ORDER BY name")
                }
                row = conn.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"
                ).fetchone()
                seq = (int(row[0]) if row else 0) + 1
                payload = counts_payload(
                    device_id=self.device_id,
                    store_id=self.store_id,
                    boot=self.boot,
                    seq=seq,
                    at=at,
                    change=change,
                    totals=totals,
                )
                conn.execute(
                    "INSERT INTO outbox (seq, topic, payload, qos, retain, created_at) "
                    "VALUES (?, ?, ?, 1, 0, ?)",
                    (seq, COUNTS_TOPIC, payload, created_at),
                )
        except sqlite3.Error as exc:
            raise TelemetryError(f"cannot record {'/'.join(names)}: {exc}") from exc
        return totals


class OutboxReader(_Connection):
    """The publisher's connection: reads pending rows and totals, deletes acked rows.

    Open it in the thread that uses it; SQLite's ``check_same_thread`` enforces it.
    It does not count a boot and never inserts into the outbox.
    """

    def __init__(self, db_path: Path) -> None:
        super().__init__(db_path, check_same_thread=True)
