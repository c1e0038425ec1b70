"""The fleet service against real Mosquitto brokers and real SQLite files.

A real simulated gate (``kiosk demo``'s pipeline through ``build_app``) must
show up with its exact counts; duplicated and replayed reports must not change
totals; a gap must raise an alarm; totals must survive a restart of the service.

"Today" is the gate's local day (Asia/Jakarta: midnight is 17:00 UTC), taken
from the service's wall clock. Tests against a running service therefore time
their reports inside the current local day (:func:`_inside_today`) and compare
"today" with the day the service reports (:func:`_today_expected`); the day
boundary itself is tested with a clock the test moves
(:func:`test_a_report_at_23_59_59_wib_counts_on_that_day_and_today_rolls_at_midnight`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kiosk.central.fleet.config import load_fleet_config
from kiosk.central.fleet.db import Database
from kiosk.central.fleet.messages import Counts, Status, TopicMatcher, parse
from kiosk.central.fleet.state import SWEEP_S, FleetState
from kiosk.central.fleet.store import today_from_hourly
from kiosk.central.fleet.timefmt import local_day, zone
from kiosk.decision import Decision, InputKind, Reason
from kiosk.demo import run_demo
from kiosk.telemetry.payloads import (
    CountsHeader,
    StatusInfo,
    counts_payload,
    decision_change,
    status_payload,
)
from tests.central.helpers import (
    RawGate,
    api,
    fleet_config,
    gate_view,
    get,
    running,
    wait_until,
)
from tests.conftest import Mosquitto

ALLOW = Decision(allowed=True, reason=Reason.OK, input=InputKind.QR)
DENY = Decision(allowed=False, reason=Reason.EXPIRED, input=InputKind.NIK)


WIB = zone("Asia/Jakarta")


def _inside_today(minutes: int) -> datetime:
    """``minutes`` ago, but not before the current local (WIB) midnight.

    A report from before midnight belongs to yesterday, so a test started at
    00:00:30 WIB would otherwise see "today" empty.
    """
    now = datetime.now(UTC)
    midnight = local_day(now.timestamp(), WIB)[1]
    return max(now - timedelta(minutes=minutes), datetime.fromtimestamp(midnight + 1, UTC))


def _today_expected(view: dict[str, Any], at: datetime, counts: dict[str, int]) -> dict[str, int]:
    """What ``view["today"]`` must hold for reports timed ``at`` adding up to ``counts``.

    They count if ``at`` lies in the local day the service calls today, as
    the service decides it; a test that ran across midnight sees them as
    yesterday's, and then "today" must not hold them.
    """
    same_day = local_day(at.timestamp(), WIB)[0] == view["today"]["date"]
    return {"date": view["today"]["date"], **(counts if same_day else {})}


def _demo(workdir: Path, broker: Mosquitto) -> None:
    lines: list[str] = []
    assert run_demo(workdir, once=True, broker=(broker.host, broker.port), headless=True,
                    fast=True, out=lines.append) == 0, lines


def test_a_simulated_gate_shows_its_exact_counts(tmp_path: Path,
                                                 mosquitto_factory: type[Mosquitto]) -> None:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    with running(fleet_config(tmp_path, broker.port)) as fleet:
        started = local_day(time.time(), WIB)[0]
        _demo(tmp_path / "demo", broker)  # 2 allowed, 4 denied
        assert wait_until(lambda: (gate_view(fleet, "demo-site", "demo-gate") or {})
                          .get("seq") == 6, 15)
        gate = gate_view(fleet, "demo-site", "demo-gate")
        assert gate is not None
        assert gate["totals"]["allowed"] == 2 and gate["totals"]["denied"] == 4
        # The demo counts at the real time; "today" holds all of it unless the
        # run crossed local midnight (then the day rows split it, checked below).
        if gate["today"]["date"] == started:
            assert gate["today"]["allowed"] == 2 and gate["today"]["denied"] == 4
            assert gate["today"]["input.qr"] == 6
        # The demo stopped cleanly: the final status and then "offline" reached the broker.
        assert wait_until(lambda: gate_view(fleet, "demo-site", "demo-gate")["online"] is False, 5)
        assert gate["timezone"] == "Asia/Jakarta" and gate["version"]
        _demo(tmp_path / "demo", broker)  # the same gate again: cumulative totals
        assert wait_until(lambda: gate_view(fleet, "demo-site", "demo-gate")["seq"] == 12, 15)
        gate = gate_view(fleet, "demo-site", "demo-gate")
        assert gate["totals"]["allowed"] == 4 and gate["totals"]["denied"] == 8
        (site,) = api(fleet, "/api/sites")
        assert site["site"] == "demo-site" and site["gates"] == 1 and site["totals"]["denied"] == 8
        rows = api(fleet, "/api/counts?site=demo-site&bucket=day")
        assert sum(r["counters"].get("allowed", 0) for r in rows) == 4
        assert sum(r["counters"].get("denied", 0) for r in rows) == 8
        # "today" is exactly the local day's row, whatever the wall clock says.
        today = {r["start"]: r["counters"] for r in rows}.get(gate["today"]["date"], {})
        assert {k: v for k, v in gate["today"].items() if k != "date"} == today
        assert {k: site["today"].get(k) for k in ("allowed", "denied")} == \
               {k: today.get(k, 0) for k in ("allowed", "denied")}
        if gate["today"]["date"] == started:
            assert gate["today"]["denied"] == 8 and site["today"]["allowed"] == 4
        status, csv_body = get(fleet, "/api/counts?site=demo-site&gate=demo-gate&format=csv")
        assert status == 200
        lines = csv_body.decode().splitlines()
        assert lines[0] == "site,gate,start,counter,value"
        assert sum(int(x.split(",")[4]) for x in lines[1:] if ",allowed," in x) == 4
        # No personal data anywhere the service shows: the samples' holder is
        # Erika Musterfrau, born 1964-08-12; none of it may appear.
        seen = b"".join(get(fleet, p)[1] for p in (
            "/api/gates", "/api/sites", "/api/alarms?history=1", "/api/counts?format=csv",
            "/metrics", "/chart/demo-site.svg", "/"))
        with fleet.state._db.connect() as conn:
            dump = repr([conn.execute(f"SELECT * FROM {t}").fetchall() for t in
                         ("reports", "streams", "gates", "hourly", "alarms")]).encode()
        for secret in (b"Musterfrau", b"MUSTERFRAU", b"Erika", b"ERIKA", b"1964-08-12", b"HC1:"):
            assert secret not in seen and secret not in dump


def test_duplicates_and_replays_do_not_change_totals_and_a_gap_raises_an_alarm(
        tmp_path: Path, mosquitto_factory: type[Mosquitto]) -> None:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    config = fleet_config(tmp_path, broker.port, **{"alarms.gap_grace_s": 0})
    gate = RawGate(broker.host, broker.port, "site-a", "g1")
    try:
        with running(config) as fleet:
            gate.online()
            at = _inside_today(1)
            for decision in (ALLOW, ALLOW, DENY):
                gate.decide(decision, at)
            for payload in gate.sent:  # QoS 1 re-sends after a reconnect, all of them
                gate.publish("counts", payload)
            gate.publish("counts", gate.sent[0])  # and a late replay
            assert wait_until(lambda: gate_view(fleet, "site-a", "g1")["seq"] == 3, 10)
            time.sleep(0.5)
            view = gate_view(fleet, "site-a", "g1")
            assert view["today"] == _today_expected(view, at, {
                "allowed": 2, "denied": 1, "denied.expired": 1, "input.qr": 2, "input.nik": 1})
            metrics = get(fleet, "/metrics")[1].decode()
            assert "kiosk_fleet_duplicate_reports_total 4" in metrics
            assert 'kiosk_fleet_gate_decisions_total{site="site-a",gate="g1",result="allowed",' \
                   'reason="ok"} 2' in metrics
            # seq 4 is lost, seq 5 arrives: a gap, an alarm.
            gate.decide(ALLOW, at, send=False)
            gate.decide(ALLOW, at)
            assert wait_until(lambda: "gap" in gate_view(fleet, "site-a", "g1")["alarms"], 10)
            (alarm,) = [a for a in api(fleet, "/api/alarms") if a["kind"] == "gap"]
            assert alarm["site"] == "site-a" and alarm["cleared"] is None
            assert gate_view(fleet, "site-a", "g1")["gaps"][0]["first"] == 4
            # The late re-send of 4 fills it: the alarm clears, the counts are complete.
            gate.publish("counts", gate.sent[3])
            assert wait_until(lambda: gate_view(fleet, "site-a", "g1")["alarms"] == [], 10)
            view = gate_view(fleet, "site-a", "g1")
            assert view["totals"]["allowed"] == 4
            assert view["today"] == _today_expected(view, at, {
                "allowed": 4, "denied": 1, "denied.expired": 1, "input.qr": 4, "input.nik": 1})
            history = api(fleet, "/api/alarms?history=1")
            assert any(a["kind"] == "gap" and a["cleared"] for a in history)
    finally:
        gate.close()


def test_totals_survive_a_restart_and_an_old_status_never_replaces_newer_totals(
        tmp_path: Path, mosquitto_factory: type[Mosquitto]) -> None:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    config = fleet_config(tmp_path, broker.port)
    gate = RawGate(broker.host, broker.port, "site-b", "g2")
    try:
        with running(config) as fleet:
            at = _inside_today(2)
            gate.status(at)  # retained, seq 0
            gate.decide(ALLOW, at)
            gate.decide(DENY, at)
            assert wait_until(lambda: gate_view(fleet, "site-b", "g2")["seq"] == 2, 10)
        # While the service is down: more reports wait at the broker (persistent session).
        gate.decide(ALLOW, at)
        with running(config) as fleet:
            # The retained status (seq 0, totals 0) is delivered again on subscribe; it
            # must not replace the totals of seq 3.
            assert wait_until(lambda: gate_view(fleet, "site-b", "g2")["seq"] == 3, 10)
            time.sleep(0.5)
            view = gate_view(fleet, "site-b", "g2")
            assert view["totals"] == {"allowed": 2, "denied": 1, "denied.expired": 1,
                                      "input.nik": 1, "input.qr": 2}
            assert view["today"] == _today_expected(view, at, {
                "allowed": 2, "denied": 1, "denied.expired": 1, "input.nik": 1, "input.qr": 2})
    finally:
        gate.close()


_KILLABLE = """
import sys, time, paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="killable")
c.will_set("kiosk/site-c/g3/availability", b"offline", qos=1, retain=True)
c.connect("127.0.0.1", int(sys.argv[1]), keepalive=5)
c.loop_start()
c.publish("kiosk/site-c/g3/availability", b"online", qos=1, retain=True).wait_for_publish(5)
print("up", flush=True)
time.sleep(60)
"""


def test_a_killed_gate_goes_offline_by_last_will_and_raises_a_debounced_alarm(
        tmp_path: Path, mosquitto_factory: type[Mosquitto]) -> None:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    config = fleet_config(tmp_path, broker.port, **{"alarms.offline_after_s": 5})
    with running(config) as fleet:
        child = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(broker.port)],
                                 stdout=subprocess.PIPE)
        try:
            assert child.stdout is not None and child.stdout.readline() == b"up\n"
            assert wait_until(lambda: gate_view(fleet, "site-c", "g3")["online"] is True, 10)
            child.kill()
            assert wait_until(lambda: gate_view(fleet, "site-c", "g3")["online"] is False, 10)
            killed = time.monotonic()
            time.sleep(2)  # a short outage is no alarm yet
            assert "offline" not in gate_view(fleet, "site-c", "g3")["alarms"]
            assert wait_until(lambda: "offline" in gate_view(fleet, "site-c", "g3")["alarms"], 10)
            assert time.monotonic() - killed >= 4
        finally:
            child.kill()
            child.wait(5)
        back = RawGate(broker.host, broker.port, "site-c", "g3")
        try:
            back.online()
            assert wait_until(lambda: gate_view(fleet, "site-c", "g3")["alarms"] == []
                              or "offline" not in gate_view(fleet, "site-c", "g3")["alarms"], 10)
            assert gate_view(fleet, "site-c", "g3")["online"] is True
        finally:
            back.close()


def test_hostile_messages_are_counted_and_dropped(
        tmp_path: Path, mosquitto_factory: type[Mosquitto]) -> None:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    gate = RawGate(broker.host, broker.port, "site-d", "g4")
    try:
        with running(fleet_config(tmp_path, broker.port)) as fleet:
            at = _inside_today(1)
            gate.decide(ALLOW, at)
            good = json.loads(gate.sent[0])
            hostile = [
                ("counts", b"{not json"),
                ("counts", b"[" * 50_000 + b"]" * 50_000),  # deep nesting, oversized too
                ("counts", json.dumps({**good, "v": 2}).encode()),
                ("counts", json.dumps({**good, "seq": "7"}).encode()),
                ("counts", json.dumps({**good, "device": "site-x/g9"}).encode()),
                ("counts", json.dumps({**good, "seq_first": 9, "seq": 8}).encode()),
                ("counts", json.dumps({**good, "delta": {"Name With Space": 1}}).encode()),
                ("counts", json.dumps({**good, "totals": {"allowed": -5}}).encode()),
                ("status", b"\xff\xfe"),
                ("availability", b"maybe"),
            ]
            for suffix, payload in hostile:
                gate.publish(suffix, payload)
            odd_topic = "kiosk/site d/g\u00e9/counts"
            gate.client.publish(odd_topic, gate.sent[0], qos=1).wait_for_publish(5)
            assert wait_until(lambda: gate_view(fleet, "site-d", "g4")["seq"] == 1, 10)
            time.sleep(0.5)
            metrics = get(fleet, "/metrics")[1].decode()
            rejected = sum(int(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                           if line.startswith("kiosk_fleet_messages_rejected_total"))
            assert rejected == len(hostile) + 1
            assert gate_view(fleet, "site-d", "g4")["totals"] == good["totals"]
            assert [g["site"] for g in api(fleet, "/api/gates")] == ["site-d"]
    finally:
        gate.close()


def test_the_api_and_metrics_need_a_token(tmp_path: Path,
                                          mosquitto_factory: type[Mosquitto]) -> None:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    with running(fleet_config(tmp_path, broker.port)) as fleet:
        for path in ("/api/gates", "/api/sites", "/api/alarms", "/api/counts", "/metrics", "/"):
            assert get(fleet, path, token=None)[0] == 401
            assert get(fleet, path, token="wrong-token-0123456789")[0] == 401
        assert get(fleet, "/api/gates")[0] == 200
        assert get(fleet, "/api/counts?bucket=week")[0] == 400
        assert get(fleet, "/api/counts?from=yesterday")[0] == 400
        assert get(fleet, "/api/gates/x/y/z")[0] == 404
        assert get(fleet, "/x" * 2000)[0] == 414
        assert get(fleet, "/healthz", token=None)[0] == 200


class _Clock:
    """UNIX seconds the test sets."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


_MATCH = TopicMatcher("kiosk/{site}/{gate}")


def _counts_at(seq: int, at: float) -> Counts:
    payload = counts_payload(
        CountsHeader("s/g", "ab" * 16, 1, seq, seq),
        at_first=datetime.fromtimestamp(at, UTC), at=datetime.fromtimestamp(at, UTC),
        bucket_s=60, change=decision_change(ALLOW), delta={"allowed": 1}, totals={"allowed": seq},
    )
    msg = parse(_MATCH, "kiosk/s/g/counts", payload, 65536)
    assert isinstance(msg, Counts)
    return msg


def _status_at(at: float) -> Status:
    info = StatusInfo(
        device_id="s/g", version="0.1.0", uptime_s=1, totals={}, pending=0, published=0,
        acked=0, reconnects=0, last_error=None, day="2026-05-01", today={}, gate={},
        store_id="ab" * 16, seq=0, timezone="Asia/Jakarta",
    )
    msg = parse(_MATCH, "kiosk/s/g/status",
                status_payload(info, datetime.fromtimestamp(at, UTC)), 65536)
    assert isinstance(msg, Status)
    return msg


def test_a_report_at_23_59_59_wib_counts_on_that_day_and_today_rolls_at_midnight(
        tmp_path: Path) -> None:
    midnight = datetime(2026, 5, 2, tzinfo=WIB).timestamp()  # 2026-05-01 17:00 UTC
    clock = _Clock(midnight - 1)  # 23:59:59 WIB
    config = load_fleet_config(None, {"store.url": f"sqlite:///{tmp_path / 'f.sqlite'}"})
    state = FleetState(Database(config.store.url), config, clock)

    def today() -> dict[str, Any]:
        return dict(state.snapshot().gates[("s", "g")]["today"])

    state.apply([_status_at(clock.now), _counts_at(1, clock.now)])
    state.tick()
    assert today() == {"date": "2026-05-01", "allowed": 1}
    # Midnight: a report made at 00:00:00 arrives before the day has been rolled
    # over; it is not yesterday's, and after the roll-over it is today's.
    clock.now = midnight
    state.apply([_counts_at(2, clock.now)])
    assert today() == {"date": "2026-05-01", "allowed": 1}
    state.tick()
    assert today() == {"date": "2026-05-02", "allowed": 1}
    # A late report made at 23:59:30 the day before stays on that day.
    clock.now = midnight + 30
    state.apply([_counts_at(3, midnight - 30)])
    state.tick()
    assert today() == {"date": "2026-05-02", "allowed": 1}
    state.close()
    # The database agrees, and a restarted service reads the same split back.
    state = FleetState(Database(config.store.url), config, clock)
    assert today() == {"date": "2026-05-02", "allowed": 1}
    with state._db.connect() as conn:
        assert today_from_hourly(conn, "s", "g", int(midnight) - 86400, int(midnight)) == \
            {"allowed": 2}
    # One second before the next midnight is still 2026-05-02; at it, a new day.
    clock.now = midnight + 86400 - 1
    state.apply([_counts_at(4, clock.now)])
    state.tick()
    assert today() == {"date": "2026-05-02", "allowed": 2}
    # A quiet gate is rolled over by the next sweep of all gates (every SWEEP_S).
    clock.now = midnight + 86400 + SWEEP_S
    state.tick()
    assert today() == {"date": "2026-05-03"}
    state.close()
