"""Disk full: the gate keeps counting exactly, reports it, and catches up later.

The "disk" is a real 4 MiB tmpfs mounted by the test (we run as root on CI and
on the devices' test rigs) and filled with a filler file until ENOSPC, so SQLite
fails the way it does on a full SD card. Where mounting is not permitted the
test falls back to ``PRAGMA max_page_count`` on the store's own connection,
which makes SQLite return the same SQLITE_FULL.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.config.schema import MqttConfig
from kiosk.telemetry import CountStore, MqttPublisher, OutboxReader

from .helpers import Broker, Recorder, assert_exact, at, decisions, dedup_counts, wait_until
from .test_telemetry_store import tally

DEVICE = "site-a/gate-01"


class SmallDisk:
    """A small file system that can be filled up and freed again."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "disk"
        self.dir.mkdir()
        self.filler = self.dir / "filler"
        self.mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(self.dir)],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )
        self._store: CountStore | None = None

    def fill(self, store: CountStore) -> None:
        """Leave no free space (tmpfs) or forbid the database to grow (fallback)."""
        if not self.mounted:
            self._store = store
            conn = store._db()  # test-only: the fallback needs the store's own connection
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
            conn.execute(f"PRAGMA max_page_count = {pages}")
            return
        chunk = b"\0" * 65536
        with self.filler.open("ab") as f, contextlib.suppress(OSError):
            while True:
                f.write(chunk)
                f.flush()

    def free(self) -> None:
        if self._store is not None:
            self._store._db().execute("PRAGMA max_page_count = 1073741823")
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.dir)], check=False)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    d = SmallDisk(tmp_path)
    try:
        yield d
    finally:
        d.close()


def test_disk_full_keeps_counts_exact_reports_it_and_catches_up(
    disk: SmallDisk, broker: Broker, tmp_path: Path
) -> None:
    root = f"kiosk-test/{uuid.uuid4().hex[:12]}/gate-01"
    db = disk.dir / "counts.sqlite"
    stream = decisions(1200)
    with CountStore(db, DEVICE) as store:
        for i in range(100):
            store.record(stream[i], at(i))
        disk.fill(store)
        # Scans keep coming. SQLite first reuses free space inside its files, then
        # refuses; from then on the changes are held in memory. record() never raises.
        i = 100
        while store.unsaved == 0 and i < 1000:
            store.record(stream[i], at(i))
            i += 1
        assert store.unsaved > 0, "the disk never filled up"
        for _ in range(100):
            assert store.record(stream[i], at(i)) == tally(stream[: i + 1])
            i += 1
        assert store.totals() == tally(stream[:i])  # exact while full
        assert store.health() == {"store_unsaved": store.unsaved, "last_error": "store: disk full"}

        # The condition is reported: retained status shows it on connect.
        broker.start()
        rec = Recorder("127.0.0.1", broker.port, f"{root}/#")
        rec.wait_subscribed()
        cfg = MqttConfig(host="127.0.0.1", port=broker.port, keepalive_s=5, discovery=False)
        pub = MqttPublisher(cfg, root, DEVICE, db, status_provider=store.health)
        try:
            pub.start()
            assert wait_until(lambda: rec.on(f"{root}/status"), 10.0)
            first = json.loads(rec.on(f"{root}/status")[0].payload)
            assert first["last_error"] == "store: disk full" and first["store_unsaved"] > 0

            # Room again: the next scan folds every held change in, in one transaction.
            disk.free()
            held = store.unsaved
            store.record(stream[i], at(i))
            i += 1
            pub.notify()
            assert store.unsaved == 0 and store.health()["last_error"] is None
            assert pub.drain(20.0)
            assert wait_until(lambda: rec.on(f"{root}/events"), 5.0)
            events = [json.loads(m.payload) for m in rec.on(f"{root}/events")]
            assert [e["event"] for e in events] == ["fault.store"] and events[0]["kind"] == "fault"
            assert wait_until(
                lambda: any(json.loads(m.payload)["seq"] == i for m in rec.on(f"{root}/counts")), 5
            )
            kept = dedup_counts([json.loads(m.payload) for m in rec.on(f"{root}/counts")])
            assert any(b["seq"] - b["seq_first"] + 1 == held for b in kept)  # the held range
            assert_exact(kept, tally(stream[:i]))
        finally:
            pub.stop(5.0)
            rec.close()
    with OutboxReader(db) as reader:
        assert reader.totals() == tally(stream[:i])  # and on disk, after a reopen
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
