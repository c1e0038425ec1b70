"""The fleet's view of distribution and commands: gates behind or near expiry, outcomes.

Through the real store owner (a real SQLite file, a clock the test moves) and,
end to end, through the service on a real Mosquitto with payloads built by the
gate's own functions (:mod:`kiosk.telemetry.payloads`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kiosk.central.fleet.messages import (
    Diagnostics,
    Event,
    Rejected,
    Status,
    TopicMatcher,
    parse,
)
from kiosk.central.fleet.state import FleetState
from kiosk.remote.diagnostics import diagnostics_payload
from kiosk.telemetry.payloads import event_payload
from tests.central.helpers import RawGate, api, fleet_config, get, minutes_ago, running, wait_until
from tests.central.test_fleet_alarms import Clock, _state
from tests.conftest import Mosquitto

MATCHER = TopicMatcher("kiosk/{site}/{gate}")


def status(clock: Clock, gate: str, **fields: Any) -> Status:
    """A checked status of ``s/<gate>`` at the clock's time."""
    body = {"v": 1, "device": f"s/{gate}", "version": "0.1.0",
            "ts": datetime.fromtimestamp(clock.now, UTC).isoformat(), "uptime_s": 5,
            "store": "ab" * 16, "seq": 0, "timezone": "Asia/Jakarta", "mode": "fresh",
            "gate_mode": "normal", "bundle_version": 3, "bundle_age_s": 60.0,
            "bundle_stale_in_s": 6 * 86400, "clock_state": "synchronised", "totals": {},
            "today": {"date": "2026-05-01", "allowed": 0, "denied": 0},
            "outbox": {"pending": 0, "published": 0, "acked": 0, "reconnects": 0,
                       "last_error": None}}
    body.update(fields)
    msg = parse(MATCHER, f"kiosk/s/{gate}/status", json.dumps(body).encode(), 65536)
    assert isinstance(msg, Status), msg
    return msg


def command(clock: Clock, gate: str, event: str, seq: int = 1) -> Event:
    """A checked command-outcome event of ``s/<gate>``."""
    payload = event_payload(device_id=f"s/{gate}", store_id="ab" * 16, seq=seq,
                            at=datetime.fromtimestamp(clock.now, UTC), event=event,
                            kind="command")
    msg = parse(MATCHER, f"kiosk/s/{gate}/events", payload, 65536)
    assert isinstance(msg, Event), msg
    return msg


def alarms(state: FleetState) -> dict[tuple[str, str], str]:
    return {(a["gate"], a["kind"]): a["detail"] for a in state.snapshot().alarms}


def test_a_bundle_near_staleness_raises_an_alarm_before_the_gate_goes_stale(
        tmp_path: Path) -> None:
    clock = Clock()
    state = _state(tmp_path, clock, **{"alarms.trust_warn_s": 86400})
    state.apply([status(clock, "g1", bundle_stale_in_s=3 * 86400)])
    state.tick()
    assert ("g1", "trust_soon") not in alarms(state)
    # Two days on, with no new status (a gate sends the same figure until it changes):
    # the fleet counts from the gate's own status time.
    clock.now += 2 * 86400 + 3600
    state.tick()
    assert alarms(state)[("g1", "trust_soon")] == "stale in 23 h"
    assert ("g1", "trust") not in alarms(state)  # still fresh: a warning, not the stale alarm
    # A new bundle arrives: the warning clears.
    state.apply([status(clock, "g1", bundle_version=4, bundle_stale_in_s=7 * 86400)])
    state.tick()
    assert ("g1", "trust_soon") not in alarms(state)
    view = state.snapshot().gates[("s", "g1")]
    assert view["stale_at"] == clock.now + 7 * 86400


def test_a_gate_behind_the_newest_bundle_raises_an_alarm_after_the_wave_had_its_time(
        tmp_path: Path) -> None:
    clock = Clock()
    state = _state(tmp_path, clock, **{"alarms.behind_after_s": 600})
    state.apply([status(clock, "g1", bundle_version=4), status(clock, "g2", bundle_version=4)])
    state.tick()
    assert state.snapshot().newest_bundle == 4
    assert state.snapshot().gates[("s", "g1")]["behind"] is None
    # The canary g1 gets v5: g2 is behind at once on the page, an alarm only after 600 s.
    state.apply([status(clock, "g1", bundle_version=5)])
    state.tick()
    assert state.snapshot().gates[("s", "g2")]["behind"] == 5
    assert ("g2", "behind") not in alarms(state)
    clock.now += 601
    state.apply([status(clock, "g2", bundle_version=4, dist_error="trust: format")])
    state.tick()
    assert alarms(state)[("g2", "behind")] == "v4 of v5 (trust: format)"
    assert ("g1", "behind") not in alarms(state)
    # It catches up: the alarm clears, and stays cleared after a restart.
    state.apply([status(clock, "g2", bundle_version=5)])
    state.tick()
    assert ("g2", "behind") not in alarms(state)
    state.close()
    again = _state(tmp_path, clock, **{"alarms.behind_after_s": 600})
    again.tick()
    assert again.snapshot().newest_bundle == 5
    assert ("g2", "behind") not in alarms(again)


def test_command_outcomes_are_kept_once_and_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    state = _state(tmp_path, clock)
    opened = command(clock, "g1", "command.open_once")
    clock.now += 1
    refused = command(clock, "g2", "command_refused.replayed", seq=2)
    state.apply([opened, refused, opened])  # a QoS 1 redelivery is the same outcome
    shown = state.snapshot().commands
    assert [(c["gate"], c["action"], c["outcome"]) for c in shown] == [
        ("g2", None, "refused: replayed"), ("g1", "open-once", "ok")]
    state.close()
    again = _state(tmp_path, clock)
    again.tick()
    assert [c["event"] for c in again.snapshot().commands] == [
        "command_refused.replayed", "command.open_once"]


def test_hostile_command_events_are_dropped() -> None:
    clock = Clock()
    good = json.loads(event_payload(device_id="s/g", store_id="ab" * 16, seq=1,
                                    at=datetime.fromtimestamp(clock.now, UTC),
                                    event="command.open_once", kind="command"))
    for change in ({"event": "command.open once"}, {"event": "x" * 500},
                   {"kind": "commands"}, {"event": 7}):
        with pytest.raises(Rejected):
            parse(MATCHER, "kiosk/s/g/events", json.dumps({**good, **change}).encode(), 65536)


def test_the_api_lists_command_outcomes_and_gates_behind(
        tmp_path: Path, mosquitto_factory: type[Mosquitto]) -> None:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    config = fleet_config(tmp_path, broker.port)
    g1 = RawGate(broker.host, broker.port, "mall", "g1")
    g2 = RawGate(broker.host, broker.port, "mall", "g2")
    try:
        with running(config) as fleet:
            for gate, version in ((g1, 8), (g2, 7)):
                gate.online()
                gate.status(minutes_ago(0), bundle_version=version, bundle_stale_in_s=86400)
            at = minutes_ago(0)
            g1.command_outcome("command.emergency_on", at)
            g2.command_outcome("command_refused.other_gate", at)
            assert wait_until(lambda: len(api(fleet, "/api/commands")) == 2, 10)
            listed = api(fleet, "/api/commands?site=mall&gate=g1")
            assert [(c["action"], c["outcome"]) for c in listed] == [("emergency-on", "ok")]
            assert wait_until(
                lambda: api(fleet, "/api/gates/mall/g2").get("behind") == 8, 10)
            g1.publish("events", report("mall/g1", at, broker=("ok", "connected")))
            assert wait_until(
                lambda: api(fleet, "/api/gates/mall/g1").get("diagnostics") is not None, 10)
            assert api(fleet, "/api/gates/mall/g1")["behind"] is None
            assert get(fleet, "/api/commands?limit=0")[0] == 400
            assert get(fleet, "/api/commands?site=../x")[0] == 400
            assert get(fleet, "/api/commands", token=None)[0] == 401
    finally:
        g1.close()
        g2.close()


def report(device: str, at: datetime, **checks: tuple[str, str]) -> bytes:
    """A diagnostics event as the gate builds it."""
    worst = max((v for v, _ in checks.values()), key=("ok", "warn", "fail").index)
    return diagnostics_payload({
        "device": device, "ts": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "command": "cd" * 16, "result": worst,
        "checks": {name: {"status": v, "detail": d} for name, (v, d) in checks.items()}})


def test_the_latest_diagnostics_report_is_shown_per_gate_and_kept(tmp_path: Path) -> None:
    clock = Clock()
    state = _state(tmp_path, clock)
    at = datetime.fromtimestamp(clock.now, UTC)
    msg = parse(MATCHER, "kiosk/s/g1/events", report(
        "s/g1", at, clock=("ok", "synchronised"), trust=("warn", "bundle v4, 8.0 d old")), 65536)
    assert isinstance(msg, Diagnostics)
    state.apply([msg])
    shown = state.snapshot().gates[("s", "g1")]["diagnostics"]
    assert shown["result"] == "warn"
    assert shown["checks"]["trust"] == {"status": "warn", "detail": "bundle v4, 8.0 d old"}
    state.close()
    again = _state(tmp_path, clock)
    again.tick()
    assert again.snapshot().gates[("s", "g1")]["diagnostics"] == shown


def test_hostile_diagnostics_reports_are_dropped() -> None:
    at = datetime.fromtimestamp(Clock().now, UTC)
    good = json.loads(report("s/g", at, clock=("ok", "fine")))
    for change in ({"result": "great"}, {"checks": []}, {"checks": {"x y": {"status": "ok"}}},
                   {"checks": {f"c{i}": {"status": "ok"} for i in range(40)}},
                   {"checks": {"clock": {"status": "ok", "detail": 5}}}, {"ts": "yesterday"}):
        with pytest.raises(Rejected):
            parse(MATCHER, "kiosk/s/g/events", json.dumps({**good, **change}).encode(), 65536)
    long = {**good, "checks": {"clock": {"status": "ok", "detail": "x" * 5000}}}
    parsed = parse(MATCHER, "kiosk/s/g/events", json.dumps(long).encode(), 65536)
    assert isinstance(parsed, Diagnostics) and len(parsed.checks["clock"][1]) == 120
