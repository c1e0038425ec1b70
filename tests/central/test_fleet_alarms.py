"""Alarm rules through the real store owner (real SQLite file, a clock the test moves).

Each alarm is raised when its condition holds (debounced where a blip must not
count) and cleared with its time when the condition ends; raised and cleared
times are in the database (``/api/alarms?history=1``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiosk.central.fleet.config import load_fleet_config
from kiosk.central.fleet.db import Database
from kiosk.central.fleet.messages import Availability, Counts, Status, TopicMatcher, parse
from kiosk.central.fleet.state import FleetState
from kiosk.central.fleet.store import recent_alarms

T0 = datetime(2026, 5, 1, 3, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _state(tmp_path: Path, clock: Clock, **overrides: Any) -> FleetState:
    config = load_fleet_config(None, {"store.url": f"sqlite:///{tmp_path / 'f.sqlite'}",
                                      **overrides})
    return FleetState(Database(config.store.url), config, clock)


def _status(clock: Clock, **fields: Any) -> Status:
    body = {"v": 1, "device": "s/g", "version": "0.1.0",
            "ts": datetime.fromtimestamp(clock.now, UTC).isoformat(), "uptime_s": 5,
            "store": "ab" * 16, "seq": 0, "timezone": "Asia/Jakarta", "mode": "fresh",
            "gate_mode": "normal", "bundle_version": 3, "bundle_age_s": 60.0,
            "clock_state": "synchronised", "camera_fps": 15.0, "decoder": "zxing",
            "last_error": None, "store_unsaved": 0, "totals": {},
            "today": {"date": "2026-05-01", "allowed": 0, "denied": 0},
            "outbox": {"pending": fields.pop("pending", 0), "published": 0, "acked": 0,
                       "reconnects": 0, "last_error": None}}
    body.update(fields)
    msg = parse(TopicMatcher("kiosk/{site}/{gate}"), "kiosk/s/g/status",
                json.dumps(body).encode(), 65536)
    assert isinstance(msg, Status)
    return msg


def _tailgate(clock: Clock, seq: int) -> Counts:
    at = datetime.fromtimestamp(clock.now, UTC).isoformat()
    bucket = datetime.fromtimestamp(clock.now // 60 * 60, UTC).isoformat()
    body = {"v": 1, "device": "s/g", "store": "ab" * 16, "boot": 1, "seq": seq,
            "seq_first": seq, "ts": at, "ts_first": at, "bucket": {"start": bucket, "s": 60},
            "event": "tailgate", "delta": {"tailgate": 1}, "totals": {"tailgate": seq}}
    msg = parse(TopicMatcher("kiosk/{site}/{gate}"), "kiosk/s/g/counts",
                json.dumps(body).encode(), 65536)
    assert isinstance(msg, Counts)
    return msg


def _open(state: FleetState) -> dict[str, str]:
    return {a["kind"]: a["detail"] for a in state.snapshot().alarms}


def test_status_conditions_raise_and_clear(tmp_path: Path) -> None:
    clock = Clock()
    state = _state(tmp_path, clock)
    state.apply([Availability("s", "g", True), _status(clock)])
    state.tick()
    assert _open(state) == {}
    state.apply([_status(clock, mode="expired", clock_state="unsynchronised",
                         gate_mode="emergency")])
    state.tick()
    assert _open(state) == {"trust": "expired", "clock": "unsynchronised",
                            "emergency": "emergency"}
    clock.now += 30
    state.apply([_status(clock, gate_mode="fault", last_error="arm: no movement")])
    state.tick()
    assert _open(state) == {"fault": "arm: no movement"}
    clock.now += 30
    state.apply([_status(clock)])
    state.tick()
    assert _open(state) == {}
    with state._db.connect() as conn:  # raised and cleared times are kept
        rows = {r[3]: (r[5], r[6]) for r in recent_alarms(conn)}
    assert rows["trust"] == (int(T0), int(T0) + 30)
    assert rows["fault"] == (int(T0) + 30, int(T0) + 60)
    state.close()


def test_offline_is_debounced_and_a_silent_gate_counts_as_offline(tmp_path: Path) -> None:
    clock = Clock()
    state = _state(tmp_path, clock, **{"alarms.offline_after_s": 120,
                                       "alarms.silent_after_s": 300})
    state.apply([Availability("s", "g", True), _status(clock)])
    state.apply([Availability("s", "g", False)])
    clock.now += 30
    state.tick()
    state.apply([Availability("s", "g", True)])  # a 30 s blip
    clock.now += 200
    state.tick()
    assert "offline" not in _open(state)
    state.apply([Availability("s", "g", False)])
    clock.now += 60
    state.tick()
    assert "offline" not in _open(state)
    clock.now += 61
    state.tick()
    assert _open(state)["offline"] == "last will"
    state.apply([Availability("s", "g", True)])
    state.tick()
    assert "offline" not in _open(state)
    clock.now += 301  # online, but nothing heard for longer than silent_after_s
    state.tick()
    clock.now += 121
    state.tick()
    assert _open(state)["offline"] == "silent"
    state.close()


def test_tailgating_above_the_rate_and_a_growing_backlog(tmp_path: Path) -> None:
    clock = Clock()
    state = _state(tmp_path, clock, **{"alarms.tailgate_per_hour": 2,
                                       "alarms.backlog_min": 10,
                                       "alarms.backlog_growing_s": 60})
    state.apply([_tailgate(clock, 1), _tailgate(clock, 2)])
    state.tick()
    assert "tailgate" not in _open(state)
    state.apply([_tailgate(clock, 3), _tailgate(clock, 3)])  # a re-send counts once
    state.tick()
    assert _open(state)["tailgate"] == "3 this hour"
    clock.now += 3600  # a new hour
    state.tick()
    assert "tailgate" not in _open(state)
    for pending in (50, 80, 120):
        state.apply([_status(clock, pending=pending, seq=3)])
        clock.now += 31
        state.tick()
    assert _open(state)["backlog"] == "80 pending"  # raised once growing for 60 s
    state.apply([_status(clock, pending=40, seq=3)])  # draining again
    state.tick()
    assert "backlog" not in _open(state)
    state.close()


def test_open_alarms_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    state = _state(tmp_path, clock)
    state.apply([_status(clock, clock_state="unsynchronised")])
    state.tick()
    state.close()
    again = _state(tmp_path, clock)
    (alarm,) = again.snapshot().alarms
    assert alarm["kind"] == "clock" and alarm["raised"] == "2026-05-01T03:00:00Z"
    assert again.snapshot().gates[("s", "g")]["alarms"] == ["clock"]
    again.close()
