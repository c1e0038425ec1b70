"""Inputs debounced by sampling; real gpiozero InputDevices on MockFactory pins."""

from __future__ import annotations

import dataclasses

import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.config.schema import GateConfig
from kiosk.gate import GateInputs
from kiosk.gate.inputs import Debouncer, InputEdge, input_specs


def test_debouncer_needs_two_samples_over_the_stable_period() -> None:
    d = Debouncer(0.05, initial=False)
    assert d.sample(True, 1.00) is None
    assert d.next_deadline() == pytest.approx(1.05)
    assert d.sample(True, 1.03) is None  # two samples, but not yet stable long enough
    assert d.sample(True, 1.05) is True
    assert d.state is True and d.next_deadline() is None


def test_debouncer_ignores_a_glitch_between_samples() -> None:
    d = Debouncer(0.05, initial=False)
    assert d.sample(True, 0.0) is None
    assert d.sample(False, 0.02) is None  # bounced back: the candidate is dropped
    assert d.sample(True, 0.04) is None  # starts over
    assert d.sample(True, 0.07) is None
    assert d.sample(True, 0.09) is True


def test_debouncer_with_zero_period_still_needs_two_samples() -> None:
    d = Debouncer(0.0, initial=False)
    assert d.sample(True, 0.0) is None
    assert d.sample(True, 0.0) is True


def cfg(**kw: object) -> GateConfig:
    return dataclasses.replace(GateConfig(pin_factory="mock"), **kw)  # type: ignore[arg-type]


def test_mock_inputs_start_at_their_normal_levels(factory: MockFactory) -> None:
    c = cfg(exit_button_pin=25, arm_feedback_pin=16)
    with GateInputs(c, factory) as inputs:
        assert set(inputs.names) == {"passage", "fire_alarm", "exit", "arm"}
        assert inputs.poll(0.0) == [] and inputs.poll(1.0) == []
        assert not any(inputs.read_raw().values())
        # NC fire contact closed = pin low; beam clear on an active-low sensor = high.
        assert factory.pin(c.fire_alarm_pin).state is False
        assert factory.pin(c.passage_pin).state is True


def test_pulls_follow_the_failure_rules() -> None:
    specs = {name: (active_high, pull_up) for name, _, active_high, pull_up in input_specs(cfg())}
    # Passage pulled to inactive (cut wire = nobody passed); fire alarm pulled to
    # the alarm level (cut wire = emergency).
    assert specs["passage"] == (False, True)
    assert specs["fire_alarm"] == (True, True)


def test_passage_pulse_is_debounced_from_pin_levels(factory: MockFactory) -> None:
    c = cfg(debounce_ms=50)
    with GateInputs(c, factory) as inputs:
        pin = factory.pin(c.passage_pin)
        pin.drive_low()  # beam broken
        assert inputs.poll(10.00) == []
        assert inputs.poll(10.05) == [InputEdge("passage", True)]
        pin.drive_high()
        assert inputs.poll(10.30) == []
        assert inputs.poll(10.36) == [InputEdge("passage", False)]


def test_short_spike_is_not_a_passage(factory: MockFactory) -> None:
    c = cfg(debounce_ms=50)
    with GateInputs(c, factory) as inputs:
        pin = factory.pin(c.passage_pin)
        pin.drive_low()
        assert inputs.poll(1.00) == []
        pin.drive_high()
        assert inputs.poll(1.02) == [] and inputs.poll(1.2) == []


def test_fire_alarm_cut_wire_is_an_alarm(factory: MockFactory) -> None:
    c = cfg()
    with GateInputs(c, factory) as inputs:
        factory.pin(c.fire_alarm_pin).drive_high()  # contact open or wire cut
        inputs.poll(0.0)
        assert inputs.poll(0.1) == [InputEdge("fire_alarm", True)]
        assert inputs.state("fire_alarm") is True


def test_close_releases_pins_and_is_idempotent(factory: MockFactory) -> None:
    c = cfg()
    inputs = GateInputs(c, factory)
    inputs.close()
    inputs.close()
    GateInputs(c, factory).close()  # the pins can be claimed again
