"""KTP entry on the running gate: keys from an input adapter, staff keys on GPIO.

The application is built by the real ``build_app`` from config (manual NIK
policy, terminal input, staff keys on MockFactory pins); the test types a NIK,
sees the gate wait for staff, presses the staff key and checks the relay,
the decision sequence and the counts.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.app import build_app
from kiosk.camera import ArrayFrameSource
from kiosk.config import load_config
from kiosk.inputs import KeypadInput

NIK = "3171015008900001"
CONFIRM_PIN, REFUSE_PIN = 5, 6


def _build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, typed: str, **extra: Any) -> Any:
    (tmp_path / "trust").mkdir(exist_ok=True)
    monkeypatch.setattr(sys, "stdin", io.StringIO(typed))
    config = load_config(
        None,
        {
            "device.data_dir": str(tmp_path / "state"),
            "verify.trust_dir": str(tmp_path / "trust"),
            "gate.pin_factory": "mock",
            "gate.staff_confirm_pin": CONFIRM_PIN,
            "gate.staff_refuse_pin": REFUSE_PIN,
            "gate.debounce_ms": 0,
            "display.driver": "dummy",
            "display.fullscreen": False,
            "mqtt.enabled": False,
            "nik.mode": "manual",
            "nik.input": "terminal",
            **extra,
        },
    )
    return config


def _no_frames() -> ArrayFrameSource:
    """The camera is not part of these tests: the loop is ticked directly."""
    return ArrayFrameSource([np.zeros((8, 8), dtype=np.uint8)])


def _press(factory: MockFactory, pin: int, loop: Any) -> None:
    """A staff key press (buttons pull the pin to ground), seen by two loop turns."""
    factory.pin(pin).drive_low()
    for _ in range(3):
        loop.tick()
    factory.pin(pin).drive_high()
    for _ in range(3):
        loop.tick()


def test_typed_nik_waits_for_staff_then_the_staff_key_opens_the_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _build(tmp_path, monkeypatch, NIK + "\n")
    factory = MockFactory()
    events: list[tuple[str, dict[str, Any]]] = []
    with build_app(
        config,
        source=_no_frames(),
        pin_factory=factory,
        on_event=lambda e, f: events.append((e, f)),
    ) as app:
        app.loop.start()
        app.loop.tick()  # reads the 16 digits and ENTER from the input
        decisions = [f for e, f in events if e == "decision"]
        assert decisions == [{"result": "pending", "reason": "nik_staff_check", "input": "nik"}]
        assert not app.outputs.snapshot()["relay"]
        _press(factory, CONFIRM_PIN, app.loop)
        decisions = [f for e, f in events if e == "decision"]
        assert decisions[-1] == {"result": "allow", "reason": "ok", "input": "nik"}
        assert app.outputs.snapshot()["relay"] is True
        totals = app.store.totals()
        _press(factory, REFUSE_PIN, app.loop)  # nothing pending: a stray press changes nothing
        assert len([e for e, _ in events if e == "decision"]) == 2
    assert totals["allowed"] == 1 and totals["input.nik"] == 1
    assert totals["nik_manual.confirmed"] == 1 and totals.get("denied", 0) == 0
    assert NIK not in repr(events)


def test_staff_refuse_key_denies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _build(tmp_path, monkeypatch, NIK + "\n")
    factory = MockFactory()
    with build_app(config, source=_no_frames(), pin_factory=factory) as app:
        app.loop.start()
        app.loop.tick()
        _press(factory, REFUSE_PIN, app.loop)
        totals = app.store.totals()
    assert totals["denied.nik_staff_refused"] == 1 and totals["nik_manual.refused"] == 1
    assert totals["allowed"] == 0


def test_typing_shows_the_masked_prompt_and_a_stale_entry_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _build(tmp_path, monkeypatch, "", **{"nik.entry_timeout_s": 20.0})
    factory = MockFactory()
    screens: list[str] = []
    now = [1000.0]  # the gate's monotonic clock, moved by the test

    class Keys:
        """Key presses arriving one per loop turn, like a person typing."""

        def __init__(self, keys: list[str]) -> None:
            self.keys = keys

        def read_key(self, timeout_s: float) -> str | None:
            return self.keys.pop(0) if self.keys else None

        def close(self) -> None:
            pass

    with build_app(
        config,
        source=_no_frames(),
        pin_factory=factory,
        monotonic=lambda: now[0],
        on_event=lambda e, f: screens.append(f["screen"]) if e == "screen" else None,
        keys=Keys(list("3171")),
    ) as app:
        (keypad,) = [i for i in app.loop.inputs if isinstance(i, KeypadInput)]
        app.loop.start()
        app.loop.tick()
        assert screens[-1] == "nik_prompt"
        assert keypad.entry.masked() == "3171"
        now[0] += 19.0
        app.loop.tick()
        assert keypad.entry.masked() == "3171"
        now[0] += 1.0  # the traveller walked away 20 s ago
        app.loop.tick()
        assert screens[-1] == "idle"
        assert keypad.entry.length == 0
        assert app.store.totals().get("input.nik", 0) == 0
