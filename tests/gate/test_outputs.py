"""GateOutputs against gpiozero's MockFactory: levels read from pin history, the relay guard."""

from __future__ import annotations

import dataclasses
import time

import pytest
from gpiozero import LED, Device, DigitalOutputDevice
from gpiozero.pins.mock import MockFactory
from hypothesis import given
from hypothesis import strategies as st

from kiosk.config.schema import RELAY_PULSE_HARD_MAX_MS, GateConfig
from kiosk.errors import ConfigError, KioskError
from kiosk.gate import GateOutputs, GpioError, OutputState
from kiosk.gate import outputs as outputs_mod
from tests.gate.pinhistory import active_intervals, wait_for

ALL_OFF = {"relay": False, "green": False, "red": False, "amber": False}


def cfg(**kw: object) -> GateConfig:
    return dataclasses.replace(GateConfig(pin_factory="mock"), **kw)  # type: ignore[arg-type]


def output_pins(c: GateConfig) -> list[int]:
    return [c.relay_pin, c.green_led_pin, c.red_led_pin, c.amber_led_pin]


@pytest.mark.parametrize("active_high", [True, False])
def test_outputs_start_inactive_and_never_blip(factory: MockFactory, active_high: bool) -> None:
    c = cfg(relay_active_high=active_high, led_active_high=active_high)
    with GateOutputs(c, factory) as gate:
        for n in output_pins(c):
            pin = factory.pin(n)
            assert pin.state == (not active_high)
            assert active_intervals(pin, active_high) == []
        assert gate.snapshot() == ALL_OFF


@pytest.mark.parametrize("active_high", [True, False])
def test_apply_sets_physical_levels(factory: MockFactory, active_high: bool) -> None:
    c = cfg(relay_active_high=active_high, led_active_high=active_high)
    with GateOutputs(c, factory) as gate:
        gate.apply(OutputState(relay=True, green=True))
        assert gate.snapshot() == {**ALL_OFF, "relay": True, "green": True}
        assert factory.pin(c.relay_pin).state == active_high
        gate.apply(OutputState(red=True, amber=True))
        assert gate.snapshot() == {**ALL_OFF, "red": True, "amber": True}
        assert factory.pin(c.relay_pin).state == (not active_high)


def test_relay_guard_cuts_a_relay_left_on(
    factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stalled loop never switches the relay off: the guard does, at the hard maximum.
    monkeypatch.setattr(outputs_mod, "RELAY_PULSE_HARD_MAX_MS", 150)
    c = cfg()
    relay = factory.pin(c.relay_pin)
    with GateOutputs(c, factory) as gate:
        gate.apply(OutputState(relay=True))
        wait_for(lambda: len(relay.states) >= 3)
        [(_, duration)] = active_intervals(relay, True)
        assert duration == pytest.approx(0.150, abs=0.04)


def test_held_relay_is_not_cut_in_emergency(
    factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outputs_mod, "RELAY_PULSE_HARD_MAX_MS", 50)
    with GateOutputs(cfg(), factory) as gate:
        gate.apply(OutputState(relay=True), held=True)
        time.sleep(0.2)
        assert gate.snapshot()["relay"] is True


@given(st.integers(min_value=1, max_value=1_000_000))
def test_effective_pulse_never_exceeds_hard_max(ms: int) -> None:
    s = outputs_mod.effective_pulse_s(ms)
    assert 0 < s <= RELAY_PULSE_HARD_MAX_MS / 1000
    if ms <= RELAY_PULSE_HARD_MAX_MS:
        assert s == ms / 1000


@pytest.mark.parametrize("ms", [0, -5])
def test_non_positive_pulse_is_a_config_error(factory: MockFactory, ms: int) -> None:
    with pytest.raises(ConfigError, match=r"gate\.relay_pulse_ms"):
        GateOutputs(cfg(relay_pulse_ms=ms), factory)


def test_buzzer_beeps_in_the_background(factory: MockFactory) -> None:
    c = cfg()
    buzzer = factory.pin(c.buzzer_pin)
    with GateOutputs(c, factory) as gate:
        assert gate.has_buzzer
        gate.beep("deny")
        wait_for(lambda: len(buzzer.states) >= 7)
        assert len(active_intervals(buzzer, True)) == 3
    with GateOutputs(cfg(buzzer_pin=None), MockFactory()) as quiet:
        assert not quiet.has_buzzer
        quiet.beep("allow")  # nothing to do, no error


@pytest.mark.parametrize("active_high", [True, False])
def test_close_drops_everything_and_is_idempotent(factory: MockFactory, active_high: bool) -> None:
    c = cfg(relay_active_high=active_high, led_active_high=active_high)
    gate = GateOutputs(c, factory)
    gate.apply(OutputState(relay=True, green=True, red=True, amber=True))
    gate.close()
    for n in output_pins(c):
        assert factory.pin(n).state == (not active_high)
    gate.close()
    assert gate.snapshot() == ALL_OFF
    with pytest.raises(GpioError):
        gate.apply(OutputState(relay=True))
    DigitalOutputDevice(c.relay_pin, pin_factory=factory).close()  # pins were released


def test_pin_in_use_fails_cleanly_and_leaves_nothing_active(factory: MockFactory) -> None:
    c = cfg()
    squatter = LED(c.amber_led_pin, pin_factory=factory)  # built after relay, green, red
    try:
        with pytest.raises(GpioError, match=f"BCM {c.amber_led_pin}") as info:
            GateOutputs(c, factory)
        assert isinstance(info.value, KioskError)
        for n in (c.relay_pin, c.green_led_pin, c.red_led_pin):
            assert factory.pin(n).state is False
            assert active_intervals(factory.pin(n), True) == []
            DigitalOutputDevice(n, pin_factory=factory).close()
    finally:
        squatter.close()


def test_requires_explicit_factory_and_never_touches_global() -> None:
    with pytest.raises(ValueError, match="pin factory"):
        GateOutputs(cfg(), None)
    assert Device.pin_factory is None
