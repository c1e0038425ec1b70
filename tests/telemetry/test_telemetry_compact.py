"""Bounded outbox, per-interval buckets and 'today' counters (CountStore, real SQLite)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from kiosk.decision import Decision, Reason
from kiosk.telemetry import CountStore, OutboxReader
from kiosk.telemetry.compact import PROTECT_ROWS

from .helpers import T0, assert_exact, decisions, dedup_counts
from .test_telemetry_store import tally

DEVICE = "site-a/gate-01"
WIB = ZoneInfo("Asia/Jakarta")


def bodies(store: CountStore) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in store.pending(10**6) if m.topic == "counts"]


def test_outbox_over_its_row_limit_is_merged_exactly(tmp_path: Path) -> None:
    n = 3000
    stream = decisions(n)
    with CountStore(tmp_path / "c.sqlite", DEVICE, max_rows=1000, check_every=100) as store:
        for i, d in enumerate(stream):
            store.record(d, T0 + timedelta(seconds=2 * i))  # 30 scans a minute
        kept = bodies(store)
        assert store.pending_count() <= 1000 + 100  # limit + what arrived since the check
        # The oldest rows (possibly in flight to a broker) were never touched ...
        assert [b["seq"] for b in kept[:PROTECT_ROWS]] == list(range(1, PROTECT_ROWS + 1))
        # ... nothing is lost or doubled, and the newest message has the exact totals.
        assert_exact(dedup_counts(kept), tally(stream))
        merged = [b for b in kept if b["seq"] != b["seq_first"]]
        assert merged and all(b["bucket"]["s"] in (60, 3600) for b in merged)
        assert all("result" not in b for b in merged)  # per-scan detail is what goes


def test_merging_escalates_to_hours_when_minutes_are_not_enough(tmp_path: Path) -> None:
    stream = decisions(2000)
    with CountStore(tmp_path / "c.sqlite", DEVICE, max_rows=600, check_every=100) as store:
        for i, d in enumerate(stream):
            store.record(d, T0 + timedelta(seconds=20 * i))  # 3 a minute for ~11 hours
        kept = bodies(store)
        assert store.pending_count() <= 600 + 100  # limit + what arrived since the check
        sizes = {b["bucket"]["s"] for b in kept}
        assert 3600 in sizes and 86400 not in sizes
        assert_exact(dedup_counts(kept), tally(stream))


def test_byte_limit_also_triggers_merging(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    with CountStore(db, DEVICE, max_bytes=400_000, check_every=200) as store:
        for i, d in enumerate(decisions(4000)):
            store.record(d, T0 + timedelta(seconds=i))
        conn = sqlite3.connect(db)
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        conn.close()
        assert (pages - free) * 4096 <= 600_000  # limit + what arrived since the last check
        assert_exact(dedup_counts(bodies(store)), tally(decisions(4000)))


def test_counts_name_their_time_bucket(tmp_path: Path) -> None:
    with CountStore(tmp_path / "c.sqlite", DEVICE, bucket_s=300) as store:
        store.record(decisions(1)[0], datetime(2024, 5, 1, 8, 7, 59, tzinfo=UTC))
        (body,) = bodies(store)
    assert body["bucket"] == {"start": "2024-05-01T08:05:00.000Z", "s": 300}


def test_today_resets_at_local_midnight(tmp_path: Path) -> None:
    ok = Decision(allowed=True, reason=Reason.OK)
    before = datetime(2024, 5, 1, 16, 59, tzinfo=UTC)  # 23:59 WIB, 1 May
    after = datetime(2024, 5, 1, 17, 1, tzinfo=UTC)  # 00:01 WIB, 2 May (still 1 May in UTC)
    db = tmp_path / "c.sqlite"
    with CountStore(db, DEVICE, timezone=WIB) as store:
        store.record(ok, before)
        store.record(ok, before)
        store.record(Decision.deny(Reason.EXPIRED), after)
        assert store.today(before)["allowed"] == 2
        today = store.today(after)
        assert today.get("allowed", 0) == 0 and today["denied"] == 1
    with OutboxReader(db) as reader:  # kept on disk, per local day
        assert reader.day_totals("2024-05-02") == {"denied": 1, "denied.expired": 1, "input.qr": 1}


def test_version_1_database_is_migrated_and_numbering_continues(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE totals (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,
            payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,
            created_at TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1'), ('store_id', 'abc'), ('boot_counter', '4');
        INSERT INTO totals VALUES ('allowed', 41), ('denied', 0);
        INSERT INTO outbox (seq, topic, payload, qos, retain, created_at)
            VALUES (41, 'counts', x'7b7d', 1, 0, '2024-05-01T08:00:00.000Z');
        """
    )
    conn.commit()
    conn.close()
    with CountStore(db, DEVICE) as store:
        totals = store.record(Decision(allowed=True, reason=Reason.OK), T0)
        assert totals["allowed"] == 42 and store.boot == 5
        assert bodies(store)[-1]["seq"] == 42
        assert store.meta("schema_version") == "2"
