"""The shipped scenarios through the real application on a virtual clock.

Each scenario in config/scenarios/ is run by the simulator (real QR decoding,
real verification, gate state machine, dummy screen, SQLite counts, GPIO on a
MockFactory whose pin history is kept in virtual seconds). Assertions read the
JSON-lines events and the relay pin's state history.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kiosk.cli import main
from kiosk.config.schema import RELAY_PULSE_HARD_MAX_MS
from kiosk.sim.runner import SimResult, run_scenario
from tests.conftest import REPO_ROOT
from tests.gate.pinhistory import active_intervals

SCENARIOS = REPO_ROOT / "config" / "scenarios"


def run(name: str, tmp_path: Path) -> SimResult:
    return run_scenario(SCENARIOS / f"{name}.toml", tmp_path / f"{name}.jsonl")


def of(result: SimResult, event: str, **match: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in result.events
        if e["event"] == event and all(e.get(k) == v for k, v in match.items())
    ]


def relay_pulses(result: SimResult) -> list[tuple[float, float]]:
    assert result.factory is not None and result.config is not None
    pin = result.factory.pin(result.config.gate.relay_pin)
    return active_intervals(pin, result.config.gate.relay_active_high)


def test_allow_and_passage(tmp_path: Path) -> None:
    result = run("allow-and-pass", tmp_path)
    assert [(e["result"], e["reason"], e["input"]) for e in of(result, "decision")] == [
        ("allow", "ok", "qr")
    ]
    assert [e["t"] for e in of(result, "relay")] == [0.0, 0.5]
    # Pin history in virtual seconds: exactly the configured 500 ms, once.
    assert relay_pulses(result) == [(0.0, 0.5)]
    assert [e["t"] for e in of(result, "passage")] == [1.25]  # 1.2 + 50 ms debounce
    assert result.totals["passage"] == 1 and "unused_grant" not in result.totals
    assert [e["screen"] for e in of(result, "screen")] == ["idle", "allowed", "idle"]
    lines = (tmp_path / "allow-and-pass.jsonl").read_text().splitlines()
    assert all({"t", "event"} <= json.loads(line).keys() for line in lines)


def test_allow_without_passage_is_an_unused_grant(tmp_path: Path) -> None:
    result = run("unused-grant", tmp_path)
    assert [e["t"] for e in of(result, "count", name="unused_grant")] == [10.0, 25.0]
    # The unused grant released its anti-passback entry: the rescan is allowed.
    assert [e["result"] for e in of(result, "decision")] == ["allow", "allow"]
    assert result.totals["unused_grant"] == 2 and "passage" not in result.totals


def test_tailgating_raises_the_alarm(tmp_path: Path) -> None:
    result = run("tailgate", tmp_path)
    assert len(of(result, "passage")) == 2
    assert [e["t"] for e in of(result, "tailgate")] == [2.05]
    assert of(result, "buzzer", pattern="alarm")
    assert of(result, "screen", screen="tailgate")
    assert result.totals["tailgate"] == 1 and result.totals["passage"] == 1


def test_denials_keep_the_relay_off(tmp_path: Path) -> None:
    result = run("deny", tmp_path)
    reasons = [e["reason"] for e in of(result, "decision")]
    assert reasons[:4] == ["expired", "signature_invalid", "unknown_signer", "not_hc1"]
    assert len(reasons) == 5 and reasons[4] != "ok"
    assert of(result, "relay") == [] and relay_pulses(result) == []
    assert len(of(result, "led", color="red", state="on")) == 5
    assert result.totals["denied"] == 5


def test_anti_passback_inside_and_outside_the_window_and_across_restart(
    tmp_path: Path,
) -> None:
    result = run("anti-passback", tmp_path)
    decisions = [(e["t"], e["result"], e["reason"]) for e in of(result, "decision")]
    assert decisions == [
        (0.0, "allow", "ok"),
        (60.0, "deny", "already_admitted"),
        (200.0, "deny", "already_admitted"),  # after the restart at 120 s
        (400.0, "allow", "ok"),
    ]
    assert of(result, "restart")
    assert of(result, "screen", screen="denied:already_admitted")


def test_fire_alarm_during_open_cycle_and_idle(tmp_path: Path) -> None:
    result = run("fire-alarm", tmp_path)
    modes = [(e["t"], e["mode"]) for e in of(result, "mode")]
    assert modes == [
        (0.0, "normal"),
        (0.25, "emergency"),
        (30.05, "normal"),
        (60.05, "emergency"),
        (90.05, "normal"),
    ]
    # The relay stays on from the grant through the whole first emergency,
    # then again for the whole second one; the scan at 5 s changes nothing.
    assert relay_pulses(result) == [(0.0, pytest.approx(30.05)), (60.05, pytest.approx(30.0))]
    assert of(result, "screen", screen="emergency")
    scan = of(result, "decision")[1]
    assert scan["t"] == 5.0 and scan["gate"] == "emergency"
    assert not [
        e for e in result.events if 5.0 <= e["t"] < 8.0 and e["event"] in ("relay", "screen")
    ]
    assert result.totals["emergency_open"] == 2
    assert result.totals["emergency_passage"] == 1 and "tailgate" not in result.totals


def test_nik_entry_is_refused_until_configured_and_never_logged(tmp_path: Path) -> None:
    result = run("nik", tmp_path)
    [decision] = of(result, "decision")
    assert decision["input"] == "nik" and decision["result"] == "deny"
    assert "3171015008900001" not in (tmp_path / "nik.jsonl").read_text()


def test_hold_mode_relay_follows_the_person(tmp_path: Path) -> None:
    result = run("hold-mode", tmp_path)
    # Held from the grant until the passage (2.5 s + 50 ms debounce); the second
    # grant nobody uses drops at the 8 s timeout.
    assert relay_pulses(result) == [(0.0, pytest.approx(2.55)), (10.0, pytest.approx(8.0))]


def test_arm_that_does_not_turn_is_a_fault(tmp_path: Path) -> None:
    result = run("arm-fault", tmp_path)
    assert [e["t"] for e in of(result, "count", name="fault.arm")] == [22.5]
    assert of(result, "mode", mode="fault")


def test_eight_hour_shift_runs_fast(tmp_path: Path) -> None:
    result = run("shift", tmp_path)
    assert result.events[-1]["event"] == "end" and result.events[-1]["t"] == 28800
    assert [e["result"] for e in of(result, "decision")] == ["allow", "allow", "allow", "deny"]
    assert len(relay_pulses(result)) == 4  # three grants and one emergency


def test_pulse_at_the_hard_maximum(tmp_path: Path) -> None:
    scenario = tmp_path / "max.toml"
    samples = SCENARIOS / "samples"
    scenario.write_text(
        f'start = "2021-06-01T08:00:00Z"\nconfig = "{samples / "kiosk.toml"}"\n'
        f'[overrides]\n"gate.relay_pulse_ms" = {RELAY_PULSE_HARD_MAX_MS}\n'
        f'[[step]]\nat = 0\nscan = "{samples / "qr" / "valid-test.png"}"\n'
        '[[step]]\nat = 1\npayload = "not a certificate"\n'
    )
    result = run_scenario(scenario)
    assert relay_pulses(result) == [(0.0, RELAY_PULSE_HARD_MAX_MS / 1000)]


def test_cli_simulate_exit_status_and_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "out.jsonl"
    assert main(["simulate", str(SCENARIOS / "deny.toml"), "--log", str(log)]) == 0
    assert "0 allowed, 5 denied" in capsys.readouterr().out
    text = log.read_text()
    assert "HC1:" not in text and "*" not in text  # no payload, no (masked) name
    assert all(json.loads(line)["event"] for line in text.splitlines())


def test_exit_button_lets_someone_out(tmp_path: Path) -> None:
    scenario = tmp_path / "exit.toml"
    scenario.write_text(
        f'start = "2021-06-01T08:00:00Z"\nconfig = "{SCENARIOS / "samples" / "kiosk.toml"}"\n'
        '[overrides]\n"gate.exit_button_pin" = 25\n'
        "[[step]]\nat = 0\nexit = true\n[[step]]\nat = 1\npassage = true\n"
    )
    result = run_scenario(scenario)
    assert [e["kind"] for e in of(result, "passage")] == ["exit_passage"]
    assert result.totals["exit_request"] == 1 and "tailgate" not in result.totals
    assert relay_pulses(result) == [(0.05, 0.5)]  # after the button's debounce


def test_screens_are_saved_as_png(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    run_scenario(SCENARIOS / "fire-alarm.toml", screens=shots)
    names = sorted(p.name for p in shots.glob("*.png"))
    assert "000000.250-emergency.png" in names
    assert "000000.000-allowed.png" in names


def test_nik_list_mode_allows_members_only_and_never_logs_a_nik(tmp_path: Path) -> None:
    result = run("nik-list", tmp_path)
    assert [(e["result"], e["reason"]) for e in of(result, "decision", input="nik")] == [
        ("allow", "ok"),
        ("deny", "nik_not_listed"),
        ("deny", "nik_invalid"),
        ("allow", "ok"),
    ]
    assert result.totals["input.nik"] == 4 and result.totals["passage"] == 1
    assert result.totals["denied.nik_not_listed"] == 1
    log = (tmp_path / "nik-list.jsonl").read_text()
    for nik in ("3171015008900001", "3273014105850002", "3171011203950003", "3171013202950001"):
        assert nik not in log
    # The relay opened for the two listed numbers only.
    assert [start for start, _ in relay_pulses(result)] == [0.0, 30.0]


def test_nik_manual_mode_waits_for_staff_and_counts_each_outcome(tmp_path: Path) -> None:
    result = run("nik-manual", tmp_path)
    decisions = [(e["t"], e["result"], e["reason"]) for e in of(result, "decision")]
    assert decisions == [
        (0.0, "pending", "nik_staff_check"),
        (5.0, "allow", "ok"),  # staff confirmed
        (20.0, "pending", "nik_staff_check"),
        (24.0, "deny", "nik_staff_refused"),  # staff refused
        (40.0, "pending", "nik_staff_check"),
        (70.0, "deny", "nik_staff_refused"),  # nobody answered within 30 s
    ]
    # One count per traveller (pending is not a decision), plus the manual audit counters.
    assert result.totals["allowed"] == 1 and result.totals["denied"] == 2
    assert result.totals["input.nik"] == 3
    assert [result.totals[f"nik_manual.{o}"] for o in ("confirmed", "refused", "timeout")] == [
        1,
        1,
        1,
    ]
    assert of(result, "staff_key_ignored") == [
        {"t": 100.0, "event": "staff_key_ignored", "step": 7}
    ]
    assert [start for start, _ in relay_pulses(result)] == [5.0]  # only the confirmed one


def test_nik_off_mode_denies_as_disabled(tmp_path: Path) -> None:
    result = run("nik", tmp_path)
    assert [e["reason"] for e in of(result, "decision")] == ["nik_disabled"]
