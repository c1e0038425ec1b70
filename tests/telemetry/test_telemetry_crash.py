"""SIGKILL at random moments while scans are counted and published (soak test).

Marked ``slow`` (the soak test of this folder): 15-30 s. A child process
(crash_child.py) records a numbered stream of scans and prints each confirmed
one; the test kills it with SIGKILL at random moments at least 20 times, checks
after each kill that the store holds every confirmed scan plus at most the one
in flight, restarts it (it resumes where the store says), and finally lets it
finish and drain. Then the totals are exact, the file passes
``PRAGMA integrity_check`` and the receiver, after de-duplication, has every
change exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kiosk.telemetry import OutboxReader

from .helpers import Broker, Recorder, assert_exact, decisions, dedup_counts, wait_until
from .test_telemetry_store import tally

REPO = Path(__file__).resolve().parents[2]
KILLS = 22
N = 6000


class Child:
    """One run of crash_child.py with its stdout lines collected on a thread."""

    def __init__(self, db: Path, port: int, root: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.telemetry.crash_child", str(db), str(port), root, str(N)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, name="crash-child-out", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def started(self) -> bool:
        return self.resumed_at() is not None

    def resumed_at(self) -> int | None:
        for line in list(self.lines):
            if line.startswith("resume "):
                return int(line.split()[1])
        return None

    def confirmed(self) -> int:
        """Number of scans confirmed so far (stream position after the last ``ok``)."""
        oks = [int(x.split()[1]) for x in list(self.lines) if x.startswith("ok ")]
        start = self.resumed_at()
        assert start is not None
        return oks[-1] + 1 if oks else start

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)


def decided(db: Path) -> int:
    with OutboxReader(db) as reader:
        totals = reader.totals()
    return totals["allowed"] + totals["denied"]


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    broker: Broker, root: str, tmp_path: Path
) -> None:
    broker.conf.write_text(
        broker.conf.read_text().replace("persistence false\n", "")
        + f"persistence true\npersistence_location {tmp_path}/\n"
    )
    broker.start()
    rec = Recorder("127.0.0.1", broker.port, f"{root}/counts", persistent=True)
    rec.wait_subscribed()
    db = tmp_path / "counts.sqlite"
    rng = random.Random(20240501)
    kills = 0
    mid_stream = 0  # kills that landed after the child had confirmed scans in that run
    try:
        while kills < KILLS:
            child = Child(db, broker.port, root)
            assert wait_until(child.started, 20.0), child.lines
            # Random moment: while starting the publisher, recording, acking, compacting.
            threading.Event().wait(rng.uniform(0.02, 0.4))
            child.kill()
            kills += 1
            confirmed = child.confirmed()
            mid_stream += confirmed > (child.resumed_at() or 0)
            on_disk = decided(db)
            assert confirmed <= on_disk <= confirmed + 1, (kills, confirmed, on_disk)
        final = Child(db, broker.port, root)
        assert wait_until(lambda: any(x.startswith("drained") for x in final.lines), 90.0)
        assert "drained True" in final.lines
        final.kill()
        assert wait_until(
            lambda: any(json.loads(m.payload)["seq"] == N for m in rec.on(f"{root}/counts")), 10
        )
    finally:
        rec_messages = [json.loads(m.payload) for m in rec.on(f"{root}/counts")]
        rec.close()

    assert mid_stream >= KILLS // 2, f"only {mid_stream} kills hit the recording phase"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    with OutboxReader(db) as reader:
        totals = reader.totals()
    assert totals == tally(decisions(N))
    kept = dedup_counts(rec_messages)
    assert kept[-1]["seq"] == N
    assert_exact(kept, totals)
