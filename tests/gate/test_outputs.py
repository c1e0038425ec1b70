"""GateOutputs against gpiozero's MockFactory: levels and timing read from pin history."""

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
from kiosk.gate import GateOutputs, GpioError
from kiosk.gate import outputs as outputs_mod
from tests.gate.pinhistory import active_intervals, wait_for

TOL_S = 0.040  # timing tolerance on a loaded, non-realtime machine


def cfg(**kw: object) -> GateConfig:
    return dataclasses.replace(GateConfig(pin_factory="mock"), **kw)  # type: ignore[arg-type]


def physical_inactive(active_high: bool) -> bool:
    return not active_high


@pytest.mark.parametrize("active_high", [True, False])
def test_outputs_start_inactive_and_never_blip(factory: MockFactory, active_high: bool) -> None:
    c = cfg(relay_active_high=active_high, led_active_high=active_high)
    with GateOutputs(c, factory) as gate:
        for n in (c.relay_pin, c.green_led_pin, c.red_led_pin):
            pin = factory.pin(n)
            assert pin.state == physical_inactive(active_high)
            assert active_intervals(pin, active_high) == []
        assert gate.snapshot() == {"relay": False, "green": False, "red": False}


@pytest.mark.parametrize("active_high", [True, False])
def test_allowed_pulses_relay_for_configured_time(factory: MockFactory, active_high: bool) -> None:
    c = cfg(relay_pulse_ms=200, relay_active_high=active_high)
    relay = factory.pin(c.relay_pin)
    with GateOutputs(c, factory) as gate:
        gate.signal_allowed()
        assert gate.snapshot()["green"] is True
        assert gate.snapshot()["red"] is False
        wait_for(lambda: gate.snapshot()["relay"] is False and len(relay.states) >= 3)
        intervals = active_intervals(relay, active_high)
        assert len(intervals) == 1
        assert intervals[0][1] == pytest.approx(0.200, abs=TOL_S)
        # Physical level back to the inactive one, green LED still showing the result.
        assert relay.state == physical_inactive(active_high)
        assert gate.snapshot() == {"relay": False, "green": True, "red": False}


def test_snapshot_reports_relay_active_during_pulse(factory: MockFactory) -> None:
    with GateOutputs(cfg(relay_pulse_ms=1000), factory) as gate:
        gate.signal_allowed()
        wait_for(lambda: gate.snapshot()["relay"])
        assert gate.snapshot() == {"relay": True, "green": True, "red": False}


def test_pulse_is_capped_at_hard_maximum(
    factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Unpatched: an out-of-range hand-built config still gives at most the hard max.
    with GateOutputs(cfg(relay_pulse_ms=9000), factory) as gate:
        assert gate.pulse_s == RELAY_PULSE_HARD_MAX_MS / 1000
    # Patched to a short cap so the real pulse can be measured quickly.
    monkeypatch.setattr(outputs_mod, "RELAY_PULSE_HARD_MAX_MS", 150)
    c = cfg(relay_pulse_ms=1000)
    relay = factory.pin(c.relay_pin)
    relay.clear_states()
    with GateOutputs(c, factory) as gate:
        gate.signal_allowed()
        wait_for(lambda: len(relay.states) >= 3)
        [(_, duration)] = active_intervals(relay, True)
        assert duration == pytest.approx(0.150, abs=TOL_S)


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


def test_denied_sets_red_and_lets_the_previous_pulse_finish(factory: MockFactory) -> None:
    # The running pulse belongs to the traveller admitted just before: never cut it.
    c = cfg(relay_pulse_ms=300)
    relay = factory.pin(c.relay_pin)
    with GateOutputs(c, factory) as gate:
        gate.signal_allowed()
        wait_for(lambda: gate.snapshot()["relay"])
        time.sleep(0.1)
        gate.signal_denied()
        assert gate.snapshot() == {"relay": True, "green": False, "red": True}
        wait_for(lambda: not gate.snapshot()["relay"])
        [(_, duration)] = active_intervals(relay, True)
        assert duration == pytest.approx(0.300, abs=TOL_S)


def test_idle_turns_leds_off_but_lets_the_pulse_finish(factory: MockFactory) -> None:
    c = cfg(relay_pulse_ms=200)
    relay = factory.pin(c.relay_pin)
    with GateOutputs(c, factory) as gate:
        gate.signal_allowed()
        wait_for(lambda: gate.snapshot()["relay"])
        gate.signal_idle()
        assert gate.snapshot() == {"relay": True, "green": False, "red": False}
        wait_for(lambda: len(relay.states) >= 3)
        [(_, duration)] = active_intervals(relay, True)
        assert duration == pytest.approx(0.200, abs=TOL_S)


def test_second_allow_restarts_the_pulse(factory: MockFactory) -> None:
    c = cfg(relay_pulse_ms=200)
    relay = factory.pin(c.relay_pin)
    with GateOutputs(c, factory) as gate:
        gate.signal_allowed()
        wait_for(lambda: gate.snapshot()["relay"])
        time.sleep(0.1)
        gate.signal_allowed()
        time.sleep(0.35)
        intervals = active_intervals(relay, True)
        assert relay.state is False
        # Either one merged period of ~0.3 s or two back to back; never longer.
        total = intervals[-1][0] + intervals[-1][1] - intervals[0][0]
        assert total == pytest.approx(0.300, abs=TOL_S)


@pytest.mark.parametrize("active_high", [True, False])
def test_close_during_pulse_drops_relay_immediately(
    factory: MockFactory, active_high: bool
) -> None:
    c = cfg(relay_pulse_ms=2000, relay_active_high=active_high, led_active_high=active_high)
    relay = factory.pin(c.relay_pin)
    gate = GateOutputs(c, factory)
    gate.signal_allowed()
    wait_for(lambda: gate.snapshot()["relay"])
    time.sleep(0.05)
    t0 = time.monotonic()
    gate.close()
    assert time.monotonic() - t0 < 0.1
    [(_, duration)] = active_intervals(relay, active_high)
    assert duration == pytest.approx(0.050, abs=TOL_S)
    for n in (c.relay_pin, c.green_led_pin, c.red_led_pin):
        assert factory.pin(n).state == physical_inactive(active_high)
    # Idempotent, and a closed gate reports all-off and refuses to signal.
    gate.close()
    assert gate.snapshot() == {"relay": False, "green": False, "red": False}
    with pytest.raises(GpioError):
        gate.signal_allowed()
    # Pins were released: they can be claimed again.
    DigitalOutputDevice(c.relay_pin, pin_factory=factory).close()


def test_close_turns_leds_off(factory: MockFactory) -> None:
    c = cfg()
    with GateOutputs(c, factory) as gate:
        gate.signal_denied()
        assert factory.pin(c.red_led_pin).state is True
    assert factory.pin(c.red_led_pin).state is False
    assert factory.pin(c.green_led_pin).state is False


def test_pin_in_use_fails_cleanly_and_leaves_nothing_active(factory: MockFactory) -> None:
    c = cfg()
    squatter = LED(c.red_led_pin, pin_factory=factory)  # built last by GateOutputs
    try:
        with pytest.raises(GpioError, match=f"BCM {c.red_led_pin}") as info:
            GateOutputs(c, factory)
        assert isinstance(info.value, KioskError)
        for n in (c.relay_pin, c.green_led_pin):
            pin = factory.pin(n)
            assert pin.state is False
            assert active_intervals(pin, True) == []
            # Released by the half-built object's cleanup.
            DigitalOutputDevice(n, pin_factory=factory).close()
    finally:
        squatter.close()


def test_duplicate_pin_in_config_fails_cleanly(factory: MockFactory) -> None:
    c = cfg(green_led_pin=17, relay_pin=17)
    with pytest.raises(GpioError):
        GateOutputs(c, factory)
    assert factory.pin(17).state is False
    DigitalOutputDevice(17, pin_factory=factory).close()


def test_requires_explicit_factory_and_never_touches_global() -> None:
    with pytest.raises(ValueError, match="pin factory"):
        GateOutputs(cfg(), None)
    assert Device.pin_factory is None
