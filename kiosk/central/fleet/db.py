"""One small SQL layer for SQLite and PostgreSQL (psycopg 3), schema versioned.

Statements are written once, with ``?`` placeholders and a few dialect tokens;
:class:`Database` adapts them. Both engines support what is used here:
``INSERT … ON CONFLICT … DO NOTHING`` / ``DO UPDATE … WHERE``, window functions.
SQLite runs in WAL mode with ``synchronous=NORMAL``: every commit survives a
crash of the service (what QoS 1 acknowledges against); an OS crash can lose
the last commits, whose totals the gates' next report restores.

Connections are not shared between threads: the store owner has one, and each
HTTP request that needs history opens its own (cheap for SQLite).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from kiosk.errors import KioskError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reports (
    site TEXT NOT NULL, gate TEXT NOT NULL, store TEXT NOT NULL,
    seq_first BIGINT NOT NULL, seq BIGINT NOT NULL, received BIGINT NOT NULL,
    PRIMARY KEY (site, gate, store, seq_first)
);
CREATE INDEX IF NOT EXISTS reports_received ON reports (received);
CREATE TABLE IF NOT EXISTS streams (
    site TEXT NOT NULL, gate TEXT NOT NULL, store TEXT NOT NULL,
    seq BIGINT NOT NULL, totals TEXT NOT NULL, ts BIGINT NOT NULL,
    PRIMARY KEY (site, gate, store)
);
CREATE TABLE IF NOT EXISTS gates (
    site TEXT NOT NULL, gate TEXT NOT NULL, online INTEGER NOT NULL,
    last_seen BIGINT NOT NULL, store TEXT, status TEXT, timezone TEXT,
    PRIMARY KEY (site, gate)
);
CREATE TABLE IF NOT EXISTS hourly (
    site TEXT NOT NULL, gate TEXT NOT NULL, hour BIGINT NOT NULL,
    name TEXT NOT NULL, value BIGINT NOT NULL,
    PRIMARY KEY (site, gate, hour, name)
);
CREATE TABLE IF NOT EXISTS alarms (
    id {serial}, site TEXT NOT NULL, gate TEXT NOT NULL, kind TEXT NOT NULL,
    detail TEXT NOT NULL, raised BIGINT NOT NULL, cleared BIGINT
);
CREATE INDEX IF NOT EXISTS alarms_open ON alarms (site, gate, kind, cleared);
CREATE TABLE IF NOT EXISTS commands (
    site TEXT NOT NULL, gate TEXT NOT NULL, ts BIGINT NOT NULL, event TEXT NOT NULL,
    PRIMARY KEY (site, gate, ts, event)
);
CREATE INDEX IF NOT EXISTS commands_ts ON commands (ts)
"""


class StoreError(KioskError):
    """The fleet database cannot be opened or has a newer schema."""


class Cursor(Protocol):
    """What the store needs of a DB-API cursor."""

    rowcount: int

    def fetchall(self) -> list[Any]:
        """All remaining rows."""

    def fetchone(self) -> Any:
        """The next row or None."""


class Database:
    """A database URL and the dialect to speak to it.

    Args:
        url: ``sqlite:///PATH`` or ``postgresql://…`` (libpq URL).
        base: folder a relative SQLite path is taken from (the current folder).
    """

    def __init__(self, url: str, base: Path | None = None) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            self.dialect = "sqlite"
            path = Path(url.removeprefix("sqlite:///")).expanduser()
            self.path: Path | None = path if path.is_absolute() else (base or Path.cwd()) / path
        elif url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgresql"
            self.path = None
        else:
            raise StoreError(f"unsupported database URL scheme: {url.split(':')[0][:20]!r}")

    @property
    def label(self) -> str:
        """The URL without any password, for logs."""
        if self.path is not None:
            return f"sqlite:///{self.path}"
        _, sep, tail = self.url.partition("@")
        return f"postgresql://…@{tail}" if sep else self.url

    def connect(self) -> Connection:
        """A new connection (caller closes it).

        Raises:
            StoreError: the database is unreachable.
        """
        try:
            if self.dialect == "sqlite":
                assert self.path is not None
                self.path.parent.mkdir(parents=True, exist_ok=True)
                raw: Any = sqlite3.connect(
                    str(self.path), timeout=10, isolation_level=None, check_same_thread=False
                )
                raw.execute("PRAGMA journal_mode=WAL")
                raw.execute("PRAGMA synchronous=NORMAL")
            else:
                import psycopg  # central-side dependency, only when PostgreSQL is used

                raw = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except Exception as exc:
            raise StoreError(f"cannot open {self.label}: {exc}") from exc
        return Connection(raw, self.dialect)

    def create_schema(self) -> None:
        """Create the tables (idempotent) and check the schema version.

        Raises:
            StoreError: written by a newer version of this service.
        """
        with self.connect() as conn, conn.transaction():
            serial = (
                "INTEGER PRIMARY KEY AUTOINCREMENT"
                if self.dialect == "sqlite"
                else "BIGSERIAL PRIMARY KEY"
            )
            if self.dialect == "postgresql":
                # Two instances starting together must not race creating tables.
                conn.execute("SELECT pg_advisory_xact_lock(4711)")
            for statement in _SCHEMA.format(serial=serial).split(";"):
                conn.execute(statement)
            row = conn.execute("SELECT value FROM fleet_meta WHERE key = 'schema_version'")
            found = row.fetchone()
            if found is None:
                conn.execute(
                    "INSERT INTO fleet_meta (key, value) VALUES ('schema_version', ?)"
                    " ON CONFLICT (key) DO NOTHING",
                    (str(SCHEMA_VERSION),),
                )
            elif int(found[0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.label}: schema {found[0]} is newer than supported {SCHEMA_VERSION}"
                )


class Connection:
    """One DB-API connection in autocommit mode; :meth:`transaction` groups statements."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self._raw = raw
        self.dialect = dialect

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement (``?`` placeholders)."""
        cursor: Cursor = self._raw.execute(self._sql(sql), tuple(params))
        return cursor

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows."""
        rows = list(rows)
        if not rows:
            return
        if self.dialect == "postgresql":
            with self._raw.cursor() as cursor:
                cursor.executemany(self._sql(sql), rows)
        else:
            self._raw.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """BEGIN … COMMIT, or ROLLBACK on any exception."""
        if self.dialect == "postgresql":
            with self._raw.transaction():
                yield self
            return
        self._raw.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self._raw.execute("ROLLBACK")
            raise
        self._raw.execute("COMMIT")

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
