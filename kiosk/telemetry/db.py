"""The count database file: opening, schema, migrations and transactions.

One SQLite file in WAL mode with ``synchronous=FULL``: a committed transaction is
on disk (fsync of the WAL) before ``COMMIT`` returns, so a power cut after a
decision was counted cannot undo it.

Tables (schema version 2):

* ``meta``: ``schema_version``, ``store_id`` (random, per database),
  ``boot_counter`` and ``count_seq`` (the last counted change's number).
* ``totals``: cumulative counters since installation, ``name -> value``.
* ``daily``: the same counters per local calendar day (``device.timezone``),
  for "today" figures; kept for :data:`DAILY_KEEP_DAYS` days.
* ``outbox``: reports not yet acknowledged by a broker. ``seq`` is the row id
  (``AUTOINCREMENT``: never reused); the message's own ``seq`` is ``count_seq``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from kiosk.errors import TelemetryError

SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 5.0
DAILY_KEEP_DAYS = 400

# Seeded with 0 so a dashboard sees these from the first report on.
BASE_TOTALS = ("allowed", "denied", "input.qr", "input.nik")

# SQLite primary result codes after which a count is held in memory and written
# later instead of failing: the disk is full, an I/O error, or the file is locked
# for longer than the busy timeout. Other errors are bugs and raise.
TRANSIENT_CODES = frozenset({5, 6, 10, 13})  # BUSY, LOCKED, IOERR, FULL

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS totals (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS daily (
    day TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (day, name)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
"""


def is_transient(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` means "the disk cannot take this write now" (full, I/O, locked)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # no code: judge by the message SQLite gives for these cases
        text = str(exc).lower()
        return any(w in text for w in ("disk is full", "disk i/o", "locked"))
    return (int(code) & 0xFF) in TRANSIENT_CODES


def open_db(db_path: Path, *, check_same_thread: bool) -> sqlite3.Connection:
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
        with Transaction(conn):
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
                ("count_seq", "0"),
            ],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO totals (name, value) VALUES (?, 0)",
            [(name,) for name in BASE_TOTALS],
        )
        return
    version = int(row[0])
    if version > SCHEMA_VERSION:
        raise TelemetryError(
            f"count store schema {version} is newer than supported {SCHEMA_VERSION}"
        )
    if version == 1:
        # v1 numbered messages by outbox row id; v2 keeps its own counter so other
        # topics (events) can share the outbox. Continue where v1 stopped.
        seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('count_seq', ?)",
            (str(int(seq[0]) if seq else 0),),
        )
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
        )


class Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any exception.

    IMMEDIATE takes the write lock up front, so two connections never deadlock
    upgrading a read lock; the other side waits up to the busy timeout. A failed
    ``ROLLBACK`` (SQLite already rolled back after a disk-full error) is ignored
    so the original error is the one the caller sees.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: type[BaseException] | None, *_: Any) -> None:
        if exc_type is None:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        elif self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
