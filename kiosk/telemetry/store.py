"""Durable counts and their outbox: one SQLite file, one transaction per change.

Why one transaction: a gate can lose power at any instant. :meth:`CountStore.record`
increments the cumulative totals *and* queues the ``counts`` report for them in a
single SQLite transaction (WAL, ``synchronous=FULL``), so after a power cut either
both are on disk or neither is; a count can never exist without its report.

When the disk refuses the write (full, I/O error, locked for longer than the busy
timeout) the change is *held in memory* instead: the gate keeps deciding,
:meth:`CountStore.totals` stays exact, :meth:`CountStore.health` reports it, and
the next successful write folds every held change into the database in the same
transaction as the new one (one ``counts`` message covering the held range, plus
a ``fault.store`` event). Held changes are lost only if the process dies before
the disk has room again; that is the one window we cannot close without a disk.

Thread ownership (one connection per thread, never shared):

* :class:`CountStore` is the **writer**, owned by the scan loop. It bumps the boot
  counter on open and is the only code that inserts outbox rows. Its connection is
  guarded by a lock, so it may be built on the main thread and used by the loop.
* :class:`OutboxReader` is the **publisher's** connection, opened *inside* the
  ``kiosk-outbox`` thread (``check_same_thread`` stays on as a guard). It reads
  pending rows and totals and deletes rows once the broker acknowledged them.

Change numbers: every counted change (a decision or a gate event) gets the next
``count_seq``: gapless, kept across restarts, never reused. The outbox row id
(:attr:`OutboxMessage.seq`) is a separate, internal number.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from kiosk.decision import Decision
from kiosk.errors import TelemetryError
from kiosk.telemetry.compact import PROTECT_ROWS, Compactor, compact
from kiosk.telemetry.db import DAILY_KEEP_DAYS, Transaction, is_transient
from kiosk.telemetry.outbox import Connection, OutboxMessage, OutboxReader
from kiosk.telemetry.payloads import (
    CountsHeader,
    counts_payload,
    decision_change,
    event_kind,
    event_payload,
    iso_utc,
    total_names,
)

log = logging.getLogger(__name__)

COUNTS_TOPIC = "counts"
EVENTS_TOPIC = "events"
"""Outbox topics are stored relative to the topic root, which the publisher adds."""

_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")
_UPSERT_TOTAL = (
    "INSERT INTO totals (name, value) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)
_ADD_DAILY = (
    "INSERT INTO daily (day, name, value) VALUES (?, ?, ?) "
    "ON CONFLICT (day, name) DO UPDATE SET value = value + excluded.value"
)


@dataclass
class _Held:
    """Changes counted while the disk refused writes, waiting to be folded in."""

    names: Counter[str] = field(default_factory=Counter)
    daily: Counter[tuple[str, str]] = field(default_factory=Counter)
    events: list[tuple[int, datetime, str, str]] = field(default_factory=list)  # index, at, name
    n: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None


class CountStore(Connection):
    """The writer: cumulative totals plus the outbox, owned by the scan loop.

    Opening it counts one boot (``boot_counter`` in meta). Use one instance per
    process; the publisher opens its own :class:`OutboxReader`.

    Args:
        db_path: the SQLite file (created with its folder if missing).
        device_id: ``<site>/<gate>`` written into every report.
        bucket_s: time-series interval of ``counts`` messages, seconds (default 60).
        timezone: the gate's local time zone, for "today" counters (default UTC).
        max_rows, max_bytes: outbox limits that trigger coalescing (see
            :mod:`kiosk.telemetry.compact`); checked every ``check_every`` changes.
            While over them, every ``check_every // 8`` changes one bounded step
            (one chunk, tens of ms) merges old reports, after the change is on disk.

    Raises:
        TelemetryError: the database cannot be opened.
    """

    def __init__(
        self,
        db_path: Path,
        device_id: str = "",
        *,
        bucket_s: int = 60,
        timezone: tzinfo = UTC,
        max_rows: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        check_every: int = 256,
    ) -> None:
        super().__init__(db_path, check_same_thread=False)
        self.device_id = device_id
        self.bucket_s = bucket_s
        self._tz = timezone
        self._max_rows, self._max_bytes, self._check_every = max_rows, max_bytes, check_every
        self._since_check = 0
        self._compactor = Compactor(max_rows=max_rows, max_bytes=max_bytes, bucket_s=bucket_s)
        self._held = _Held()
        self._last_error: str | None = None
        try:
            with self._lock, Transaction(self._db()) as conn:
                conn.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'boot_counter'"
                )
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                self._saved = self._read_totals(conn)
        except sqlite3.Error as exc:
            self.close()
            raise TelemetryError(f"cannot start count store {db_path}: {exc}") from exc
        self.boot = int(meta["boot_counter"])
        self.store_id = str(meta["store_id"])
        log.info("count store %s open: boot %d", db_path, self.boot)

    @property
    def unsaved(self) -> int:
        """Changes held in memory because the disk refused them (0 normally)."""
        with self._lock:
            return self._held.n

    def health(self) -> dict[str, Any]:
        """``store_unsaved`` and ``last_error`` (a short code such as ``"store: disk full"``)."""
        with self._lock:
            return {"store_unsaved": self._held.n, "last_error": self._last_error}

    def totals(self) -> dict[str, int]:
        """Exact cumulative totals: what is on disk plus any held changes.

        Raises:
            TelemetryError: the store is closed.
        """
        with self._lock:
            self._db()  # a closed store must not answer from its cache
            if not self._held.n:
                return dict(self._saved)
            return _add(self._saved, self._held.names)

    def today(self, now: datetime) -> dict[str, int]:
        """Counters of the local calendar day of ``now`` (in ``timezone``), held ones included."""
        day = now.astimezone(self._tz).date().isoformat()
        out = Counter(self.day_totals(day))
        with self._lock:
            out.update({n: v for (d, n), v in self._held.daily.items() if d == day})
        return dict(out)

    def record(self, decision: Decision, at: datetime) -> dict[str, int]:
        """Count ``decision`` and queue its ``counts`` report, atomically.

        Returns all totals after the change. Blocks only on the local disk (an
        fsync, or at most ``BUSY_TIMEOUT_S`` while the publisher deletes acked
        rows), never on the network. If the disk refuses the write the change is
        held in memory (see the module doc) and this still returns exact totals.

        Raises:
            ValueError: ``at`` is naive.
            TelemetryError: SQLite failed for a reason other than a full/failing/
                locked disk (a bug or a corrupt file); nothing was written.
        """
        return self._count(total_names(decision), decision_change(decision), at)

    def record_event(self, event: str, at: datetime) -> dict[str, int]:
        """Count a gate event and queue its ``counts`` report, atomically.

        ``event`` is a counter name such as ``"passage"``, ``"unused_grant"``,
        ``"tailgate"`` or ``"fault.arm"`` (lowercase, dots allowed). Alarms and
        faults (:func:`~kiosk.telemetry.payloads.event_kind`) also queue an
        ``events`` message in the same transaction. Returns all totals after.

        Raises:
            ValueError: ``at`` is naive or ``event`` is not a valid counter name.
            TelemetryError: as for :meth:`record`.
        """
        if not _EVENT_NAME.fullmatch(event):
            raise ValueError(f"invalid event counter name {event!r}")
        return self._count((event,), {"event": event}, at)

    def compact(self) -> int:
        """Coalesce old ``counts`` messages if the outbox is over its limits; rows removed.

        Raises:
            TelemetryError: the disk refused the rewrite (nothing is lost).
        """
        try:
            with self._lock:
                return compact(
                    self._db(),
                    max_rows=self._max_rows,
                    max_bytes=self._max_bytes,
                    bucket_s=self.bucket_s,
                    protect=PROTECT_ROWS,
                )
        except sqlite3.Error as exc:
            raise TelemetryError(f"cannot compact the outbox: {exc}") from exc

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _read_totals(conn: sqlite3.Connection) -> dict[str, int]:
        return {str(n): int(v) for n, v in conn.execute("SELECT name, value FROM totals")}

    def _count(
        self, names: tuple[str, ...], change: dict[str, str], at: datetime
    ) -> dict[str, int]:
        iso_utc(at)  # validates before touching the database
        day = at.astimezone(self._tz).date().isoformat()
        with self._lock:
            try:
                with Transaction(self._db()) as conn:
                    totals = self._write(conn, names, change, at, day)
            except sqlite3.Error as exc:
                if not is_transient(exc):
                    raise TelemetryError(f"cannot record {'/'.join(names)}: {exc}") from exc
                return self._hold(names, change, at, day, exc)
            if self._held.n:
                log.warning("disk accepts writes again: %d held counts saved", self._held.n)
                self._held = _Held()
                self._last_error = None
            self._saved = totals
            self._since_check += 1
            every = max(1, self._check_every // 8) if self._compactor.active else self._check_every
            if self._since_check >= every:
                self._since_check = 0
                try:
                    self._compactor.step(self._db())
                except sqlite3.Error as exc:  # merging is maintenance: retried next time
                    log.warning("cannot compact the outbox: %s", exc)
        return dict(totals)

    def _hold(
        self,
        names: tuple[str, ...],
        change: Mapping[str, str],
        at: datetime,
        day: str,
        exc: Exception,
    ) -> dict[str, int]:
        held = self._held
        if not held.n:
            log.error("count store refused a write (%s): holding counts in memory", exc)
        held.names.update(names)
        held.daily.update((day, n) for n in names)
        kind = event_kind(change.get("event", ""))
        if kind is not None:
            held.events.append((held.n, at, change["event"], kind))
        held.n += 1
        held.first_at = held.first_at or at
        held.last_at = at
        self._last_error = (
            "store: disk full" if "full" in str(exc).lower() else "store: write failed"
        )
        return _add(self._saved, held.names)

    def _write(
        self,
        conn: sqlite3.Connection,
        names: tuple[str, ...],
        change: dict[str, str],
        at: datetime,
        day: str,
    ) -> dict[str, int]:
        """Fold held changes, then count this one; inside the caller's transaction."""
        totals = self._read_totals(conn)
        (seq_text,) = conn.execute("SELECT value FROM meta WHERE key = 'count_seq'").fetchone()
        seq = int(seq_text)
        held = self._held
        daily: Counter[tuple[str, str]] = Counter((day, n) for n in names)
        if held.n and held.first_at is not None and held.last_at is not None:
            totals = _add(totals, held.names)
            daily.update(held.daily)
            self._queue_counts(
                conn, seq + 1, seq + held.n, held.first_at, held.last_at, {}, held.names, totals
            )
            for index, ev_at, ev_name, ev_kind in held.events:
                self._queue_event(conn, seq + 1 + index, ev_at, ev_name, ev_kind)
            self._queue_event(conn, seq + held.n, held.last_at, "fault.store", "fault")
            seq += held.n
        totals = _add(totals, Counter(names))
        seq += 1
        self._queue_counts(conn, seq, seq, at, at, change, Counter(names), totals)
        kind = event_kind(change.get("event", ""))
        if kind is not None:
            self._queue_event(conn, seq, at, change["event"], kind)
        conn.executemany(_UPSERT_TOTAL, [(n, totals[n]) for n in set(names) | set(held.names)])
        conn.executemany(_ADD_DAILY, [(d, n, v) for (d, n), v in daily.items()])
        conn.execute("UPDATE meta SET value = ? WHERE key = 'count_seq'", (str(seq),))
        if seq % 1000 == 0:  # rarely: forget days older than DAILY_KEEP_DAYS
            conn.execute(
                "DELETE FROM daily WHERE day < date(?, ?)", (day, f"-{DAILY_KEEP_DAYS} days")
            )
        return totals

    def _queue_counts(
        self,
        conn: sqlite3.Connection,
        seq_first: int,
        seq: int,
        at_first: datetime,
        at: datetime,
        change: Mapping[str, str],
        delta: Mapping[str, int],
        totals: Mapping[str, int],
    ) -> None:
        head = CountsHeader(self.device_id, self.store_id, self.boot, seq_first, seq)
        payload = counts_payload(
            head,
            at_first=at_first,
            at=at,
            bucket_s=self.bucket_s,
            change=change,
            delta=delta,
            totals=totals,
        )
        conn.execute(
            "INSERT INTO outbox (topic, payload, qos, retain, created_at) VALUES (?, ?, 1, 0, ?)",
            (COUNTS_TOPIC, payload, iso_utc(at)),
        )

    def _queue_event(
        self, conn: sqlite3.Connection, seq: int, at: datetime, name: str, kind: str
    ) -> None:
        payload = event_payload(
            device_id=self.device_id, store_id=self.store_id, seq=seq, at=at, event=name, kind=kind
        )
        conn.execute(
            "INSERT INTO outbox (topic, payload, qos, retain, created_at) VALUES (?, ?, 1, 0, ?)",
            (EVENTS_TOPIC, payload, iso_utc(at)),
        )


def _add(base: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    out = dict(base)
    for name, n in more.items():
        out[name] = out.get(name, 0) + n
    return out


__all__ = ["COUNTS_TOPIC", "EVENTS_TOPIC", "CountStore", "OutboxMessage", "OutboxReader"]
