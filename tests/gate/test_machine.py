"""The pure gate state machine on a hand-driven clock: no threads, no GPIO."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.config.schema import RELAY_HOLD_HARD_MAX_S, RELAY_PULSE_HARD_MAX_MS, GateConfig
from kiosk.decision import Decision, Reason
from kiosk.gate import GateMachine, MachineConfig, Mode, Phase

ALLOW = Decision(True, Reason.OK)
DENY = Decision.deny(Reason.EXPIRED)


def machine(**kw: object) -> GateMachine:
    cfg = dataclasses.replace(MachineConfig(), **kw)  # type: ignore[arg-type]
    m = GateMachine(cfg)
    m.start(0.0)
    return m


def counts(m: GateMachine) -> list[str]:
    return [e.name for e in m.take_effects() if e.kind == "count"]


def test_starts_safe_and_idle() -> None:
    m = machine()
    assert m.outputs.relay is False and m.phase is Phase.IDLE and m.screen.kind == "idle"
    assert m.next_deadline() is None


def test_allow_pulses_then_waits_for_passage() -> None:
    m = machine(pulse_s=0.5, passage_timeout_s=10, result_hold_s=3)
    assert m.begin_verify(0.0) and m.phase is Phase.VERIFYING
    assert m.on_decision(ALLOW, 0.0)
    assert m.outputs.relay and m.outputs.green and m.phase is Phase.OPEN
    assert m.next_deadline() == 0.5
    m.tick(0.49)
    assert m.outputs.relay
    m.tick(0.5)
    assert not m.outputs.relay and m.phase is Phase.OPEN
    m.take_effects()
    m.on_passage(1.2)
    assert counts(m) == ["passage"]
    m.tick(3.0)
    assert m.phase is Phase.IDLE and m.screen.kind == "idle" and not m.outputs.green


def test_grant_without_passage_is_unused_and_released() -> None:
    m = machine(passage_timeout_s=10)
    m.on_decision(ALLOW, 0.0, token=b"k")
    m.take_effects()
    m.tick(9.99)
    assert m.open_grants == 1
    m.tick(10.0)
    effects = m.take_effects()
    assert [e.name for e in effects if e.kind == "count"] == ["unused_grant"]
    assert [e.token for e in effects if e.kind == "release"] == [b"k"]
    assert m.phase is Phase.IDLE


def test_second_passage_on_one_grant_is_a_tailgate() -> None:
    m = machine()
    m.on_decision(ALLOW, 0.0)
    m.take_effects()
    m.on_passage(1.0)
    m.on_passage(1.6)
    assert counts(m) == ["passage", "tailgate"]
    assert m.screen.kind == "tailgate" and m.outputs.red


def test_passage_without_any_grant_is_unauthorised() -> None:
    m = machine()
    m.on_passage(5.0)
    assert counts(m) == ["unauthorised_passage"]


def test_two_grants_two_passages_no_tailgate() -> None:
    m = machine()
    m.on_decision(ALLOW, 0.0)
    m.on_decision(ALLOW, 0.3)
    m.take_effects()
    m.on_passage(1.0)
    m.on_passage(1.5)
    assert counts(m) == ["passage", "passage"]


def test_deny_does_not_cut_the_previous_pulse() -> None:
    m = machine(pulse_s=0.5)
    m.on_decision(ALLOW, 0.0)
    m.on_decision(DENY, 0.2)
    assert m.outputs.relay and m.outputs.red and not m.outputs.green
    m.tick(0.5)
    assert not m.outputs.relay


def test_hold_mode_holds_until_passage_or_timeout() -> None:
    m = machine(relay_mode="hold", passage_timeout_s=8)
    m.on_decision(ALLOW, 0.0)
    m.tick(5.0)
    assert m.outputs.relay
    m.on_passage(5.5)
    assert not m.outputs.relay
    m.on_decision(ALLOW, 10.0)
    m.tick(17.99)
    assert m.outputs.relay
    m.tick(18.0)
    assert not m.outputs.relay
    assert "unused_grant" in counts(m)


@pytest.mark.parametrize("when", ["idle", "open"])
def test_fire_alarm_holds_relay_and_ignores_scans(when: str) -> None:
    m = machine(pulse_s=0.5)
    if when == "open":
        m.on_decision(ALLOW, 0.0)
    m.take_effects()
    m.on_fire_alarm(True, 0.2)
    assert m.mode is Mode.EMERGENCY and m.phase is Phase.EMERGENCY
    assert m.outputs.relay and m.screen.kind == "emergency"
    assert "emergency_open" in counts(m)
    m.tick(100.0)  # no pulse end, no grant timeout: the relay stays held
    assert m.outputs.relay
    assert m.begin_verify(100.0) is False
    assert m.on_decision(ALLOW, 100.0) is False
    assert m.on_decision(DENY, 101.0) is False
    assert m.outputs.relay and m.screen.kind == "emergency"
    m.on_passage(102.0)
    assert counts(m) == ["emergency_passage"]
    m.on_fire_alarm(False, 200.0)
    assert not m.outputs.relay and m.mode is Mode.NORMAL and m.screen.kind == "idle"


def test_arm_that_does_not_move_is_a_fault() -> None:
    m = machine(arm_feedback_timeout_s=1.5)
    m.on_decision(ALLOW, 0.0)
    m.on_arm_moved(0.3)
    m.tick(2.0)
    assert m.mode is Mode.NORMAL
    m.on_decision(ALLOW, 10.0)
    m.tick(11.5)
    assert m.mode is Mode.FAULT and m.outputs.amber
    assert "fault.arm" in counts(m)
    m.on_decision(ALLOW, 20.0)
    m.on_arm_moved(20.2)
    assert m.mode is Mode.NORMAL


@given(st.integers(min_value=1, max_value=100_000), st.floats(min_value=0.001, max_value=1.0))
def test_pulse_never_longer_than_hard_max(pulse_ms: int, tick_s: float) -> None:
    cfg = MachineConfig.from_gate(GateConfig(relay_pulse_ms=pulse_ms))
    assert cfg.pulse_s <= RELAY_PULSE_HARD_MAX_MS / 1000
    m = GateMachine(cfg)
    m.start(0.0)
    m.on_decision(ALLOW, 0.0)
    deadline = m.next_deadline()
    assert deadline is not None and deadline <= RELAY_PULSE_HARD_MAX_MS / 1000
    m.tick(deadline)  # a virtual clock ticks exactly at the deadline
    assert not m.outputs.relay


def test_hold_timeout_is_capped() -> None:
    cfg = MachineConfig.from_gate(GateConfig(relay_mode="hold", passage_timeout_s=500))
    assert cfg.passage_timeout_s == RELAY_HOLD_HARD_MAX_S


def test_scanner_fault_screen() -> None:
    m = machine()
    m.set_scanner_fault(True, 0.0)
    assert m.screen.kind == "scanner_fault" and m.mode is Mode.FAULT
    m.set_scanner_fault(False, 1.0)
    assert m.screen.kind == "idle" and m.mode is Mode.NORMAL


def test_exit_button_opens_once_for_someone_leaving() -> None:
    m = machine(pulse_s=0.5)
    m.on_exit_request(0.0)
    assert m.outputs.relay and m.screen.kind == "idle"  # nothing to tell the queue
    m.on_passage(1.0)
    assert counts(m) == ["exit_request", "exit_passage"]


def test_remote_open_grants_one_passage() -> None:
    m = machine(pulse_s=0.5)
    assert m.on_remote_open(0.0) is True
    assert m.outputs.relay and m.outputs.green
    m.on_passage(1.0)
    assert counts(m) == ["remote_open", "passage"]
    m.on_passage(2.0)  # a second person on the same remote open is a tailgater
    assert counts(m) == ["tailgate"]


def test_remote_emergency_and_fire_alarm_are_independent_sources() -> None:
    m = machine(pulse_s=0.5)
    m.set_remote_emergency(True, 0.0)
    assert m.mode is Mode.EMERGENCY and m.outputs.relay
    assert counts(m) == ["emergency_open"]
    assert m.on_remote_open(1.0) is False  # already open
    m.on_fire_alarm(True, 2.0)
    m.set_remote_emergency(False, 3.0)
    # The fire panel still holds the gate open: an operator cannot close it.
    assert m.mode is Mode.EMERGENCY and m.outputs.relay
    assert counts(m) == []
    m.on_fire_alarm(False, 4.0)
    assert m.mode is Mode.NORMAL and not m.outputs.relay
    assert counts(m) == ["emergency_clear"]
