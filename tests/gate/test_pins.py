"""make_pin_factory: mock is independent per call; native fails clearly off a Pi."""

from __future__ import annotations

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from kiosk.errors import KioskError
from kiosk.gate import GpioUnavailable, make_pin_factory


def test_mock_factory_is_fresh_and_not_global() -> None:
    a = make_pin_factory("mock")
    b = make_pin_factory("mock")
    try:
        assert isinstance(a, MockFactory)
        assert a is not b
        assert Device.pin_factory is None
    finally:
        a.close()
        b.close()


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown pin factory"):
        make_pin_factory("pigpio")


def test_native_without_gpio_raises_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    try:
        f = make_pin_factory("native")
    except GpioUnavailable as exc:
        assert isinstance(exc, KioskError)
        msg = str(exc)
        assert "no GPIO available" in msg
        assert "lgpio" in msg
        assert "rpigpio" in msg
        assert "mock" in msg
    else:  # running on a real Pi
        f.close()
        pytest.skip("GPIO is available on this machine")
    assert Device.pin_factory is None


def test_env_var_forces_a_gpiozero_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    f = make_pin_factory("native")
    try:
        assert isinstance(f, MockFactory)
    finally:
        f.close()


def test_env_var_with_unknown_factory_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "nonesuch")
    with pytest.raises(GpioUnavailable, match="nonesuch"):
        make_pin_factory("native")
