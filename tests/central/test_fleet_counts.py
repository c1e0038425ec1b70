"""The fleet service against real Mosquitto brokers and real SQLite files.

A real simulated gate (``kiosk demo``'s pipeline through ``build_app``) must
show up with its exact counts; duplicated and replayed reports must not change
totals; a gap must raise an alarm; totals must survive a restart of the service.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from kiosk.decision import Decision, InputKind, Reason
from kiosk.demo import run_demo
from tests.central.helpers import (
    RawGate,
    api,
    fleet_config,
    gate_view,
    get,
    minutes_ago,
    running,
    wait_until,
)
from tests.conftest import Mosquitto

ALLOW = Decision(allowed=True, reason=Reason.OK, input=InputKind.QR)
DENY = Decision(allowed=False, reason=Reason.EXPIRED, input=InputKind.NIK)


def _demo(workdir: Path, broker: Mosquitto) -> None:
    lines: list[str] = []
    assert run_demo(workdir, once=True, broker=(broker.host, broker.port), headless=True,
                    fast=True, out=lines.append) == 0, lines


def test_a_simulated_gate_shows_its_exact_counts(tmp_path: Path,
                                                 mosquitto_factory: type[Mosquitto]) -> None:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    with running(fleet_config(tmp_path, broker.port)) as fleet:
        _demo(tmp_path / "demo", broker)  # 2 allowed, 4 denied
        assert wait_until(lambda: (gate_view(fleet, "demo-site", "demo-gate") or {})
                          .get("seq") == 6, 15)
        gate = gate_view(fleet, "demo-site", "demo-gate")
        assert gate is not None
        assert gate["totals"]["allowed"] == 2 and gate["totals"]["denied"] == 4
        assert gate["today"]["allowed"] == 2 and gate["today"]["denied"] == 4
        assert gate["today"]["input.qr"] == 6
        # The demo stopped cleanly: the final status and then "offline" reached the broker.
        assert wait_until(lambda: gate_view(fleet, "demo-site", "demo-gate")["online"] is False, 5)
        assert gate["timezone"] == "Asia/Jakarta" and gate["version"]
        _demo(tmp_path / "demo", broker)  # the same gate again: cumulative totals
        assert wait_until(lambda: gate_view(fleet, "demo-site", "demo-gate")["seq"] == 12, 15)
        gate = gate_view(fleet, "demo-site", "demo-gate")
        assert gate["totals"]["allowed"] == 4 and gate["today"]["denied"] == 8
        (site,) = api(fleet, "/api/sites")
        assert site["site"] == "demo-site" and site["gates"] == 1
        assert site["today"]["allowed"] == 4 and site["totals"]["denied"] == 8
        rows = api(fleet, "/api/counts?site=demo-site&bucket=day")
        assert sum(r["counters"].get("allowed", 0) for r in rows) == 4
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
            at = minutes_ago(1)
            for decision in (ALLOW, ALLOW, DENY):
                gate.decide(decision, at)
            for payload in gate.sent:  # QoS 1 re-sends after a reconnect, all of them
                gate.publish("counts", payload)
            gate.publish("counts", gate.sent[0])  # and a late replay
            assert wait_until(lambda: gate_view(fleet, "site-a", "g1")["seq"] == 3, 10)
            time.sleep(0.5)
            view = gate_view(fleet, "site-a", "g1")
            assert view["today"]["allowed"] == 2 and view["today"]["denied.expired"] == 1
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
            assert view["today"]["allowed"] == 4 and view["totals"]["allowed"] == 4
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
            at = minutes_ago(2)
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
            assert view["today"]["allowed"] == 2
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
            at = minutes_ago(1)
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
