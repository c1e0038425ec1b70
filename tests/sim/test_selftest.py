"""``kiosk selftest --sim``: every check on simulated hardware passes."""

from __future__ import annotations

import pytest

from kiosk.cli import main


def test_selftest_sim_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selftest", "--sim"]) == 0
    lines = capsys.readouterr().out.splitlines()
    parts = [line.split()[1] for line in lines[:-1]]
    assert parts[:5] == ["relay", "led", "led", "led", "buzzer"]
    assert any(line.startswith("PASS input") and "fire_alarm" in line for line in lines)
    assert any(line.startswith("PASS camera") for line in lines)
    assert any(line.startswith("PASS screen") for line in lines)
    assert all(line.split()[0] in ("PASS", "SKIP") for line in lines[:-1])
    assert lines[-1] == "selftest: all passed"


def test_selftest_reports_a_fire_alarm_wire_cut(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiosk.gate import inputs

    # Simulate the cut wire: the mock wiring leaves the fire-alarm pin at its pull-up.
    monkeypatch.setattr(inputs, "_wire_mock", lambda pin, spec: None)
    assert main(["selftest", "--sim"]) == 1
    out = capsys.readouterr().out
    [line] = [x for x in out.splitlines() if x.startswith("FAIL")]
    assert "input fire_alarm" in line and "ALARM or cut wire" in line
    assert "selftest: FAILED (1)" in out
