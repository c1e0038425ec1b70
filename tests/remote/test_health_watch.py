"""The running gate commits a release on probation only after it ran well for a while."""

from __future__ import annotations

from pathlib import Path

from kiosk.remote import probation
from kiosk.remote.update import HealthWatch, Updater


def test_commit_needs_progress_for_the_whole_interval(tmp_path: Path) -> None:
    (tmp_path / "releases" / "1").mkdir(parents=True)
    (tmp_path / "releases" / "2").mkdir()
    probation.point(tmp_path / "current", "releases/2")
    (tmp_path / probation.STATE_FILE).write_text('{"pending": "2", "previous": "1", "boots": 1}')
    now = [0.0]
    watch = HealthWatch(Updater(tmp_path, []), after_s=60, clock=lambda: now[0])
    now[0] = 59.0
    watch.turn(progress=True)
    assert not watch.done
    now[0] = 61.0
    watch.turn(progress=False)  # a silent camera is not health
    assert not watch.done
    watch.turn(progress=True)
    assert watch.done
    assert Updater(tmp_path, []).state()["committed"] == "2"
