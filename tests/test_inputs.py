"""The scan loop's inputs (kiosk.inputs): events in one shape, one hook per loop turn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gpiozero.pins.mock import MockFactory

from kiosk.app import build_app
from kiosk.camera import ArrayFrameSource, Frame, FrameSource
from kiosk.config import load_config
from kiosk.errors import CameraTimeout
from kiosk.inputs import (
    CameraInput,
    CameraSilent,
    FrameSeen,
    KeypadInput,
    NikAbandoned,
    NikPrompt,
    NikTyped,
    SourceEnded,
)
from kiosk.nik.entry import EntryState, Key, NikEntry
from kiosk.scanloop import Turn

BLANK = np.zeros((48, 64), dtype=np.uint8)


class Keys:
    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def read_key(self, timeout_s: float) -> str | None:
        return self.keys.pop(0) if self.keys else None

    def close(self) -> None:
        pass


class SilentThenFrames(FrameSource):
    """One timeout, then one frame, then the end."""

    def __init__(self) -> None:
        self.script: list[str] = ["timeout", "frame"]

    def read(self) -> Frame | None:
        if not self.script:
            return None
        if self.script.pop(0) == "timeout":
            raise CameraTimeout("no frame in 0.5 s")
        return Frame(BLANK.copy(), 12.5, 0)

    def close(self) -> None:
        pass


def test_camera_input_reports_a_frame_a_silence_and_the_end() -> None:
    camera = CameraInput(SilentThenFrames())
    assert camera.waits
    assert isinstance(camera.poll(0.0), CameraSilent)
    seen = camera.poll(0.0)
    assert isinstance(seen, FrameSeen) and seen.timestamp == 12.5 and seen.gray.shape == (48, 64)
    assert camera.poll(0.0) == SourceEnded()


def test_keypad_input_prompts_submits_and_reports_an_abandoned_entry() -> None:
    keys = Keys(["3", "1", Key.ENTER])
    keypad = KeypadInput(keys, NikEntry(timeout_s=5.0))
    assert not keypad.waits
    assert keypad.poll(0.0) == NikPrompt("3")
    assert keypad.poll(0.0) == NikPrompt("31")
    assert keypad.poll(0.0) == NikTyped("31")
    assert keypad.poll(0.0) is None
    keys.keys += ["4"]
    assert isinstance(keypad.poll(1.0), NikPrompt)
    assert keypad.poll(2.0) is None
    assert keypad.poll(6.0) == NikAbandoned(EntryState.TIMED_OUT)
    assert keypad.poll(7.0) is None  # reported once


def test_a_paused_keypad_leaves_the_keys_in_the_device() -> None:
    keys = Keys(["3", "1"])
    paused = [True]
    keypad = KeypadInput(keys, NikEntry(), paused=lambda: paused[0])
    assert keypad.poll(0.0) is None and keys.keys == ["3", "1"]
    paused[0] = False
    assert keypad.poll(0.0) == NikPrompt("3")


def test_the_turn_hook_runs_once_per_step(tmp_path: Path) -> None:
    (tmp_path / "trust").mkdir()
    config = load_config(None, {
        "device.data_dir": str(tmp_path / "state"),
        "verify.trust_dir": str(tmp_path / "trust"),
        "gate.pin_factory": "mock",
        "display.driver": "dummy",
        "display.fullscreen": False,
        "mqtt.enabled": False,
    })
    turns: list[Turn] = []
    with build_app(config, source=SilentThenFrames(), pin_factory=MockFactory()) as app:
        app.loop.on_turn = turns.append
        app.loop.start()
        assert app.loop.step()  # the timeout: the loop keeps going
        assert app.loop.step()  # the frame
        assert not app.loop.step()  # the end
    assert turns == [
        Turn(progress=False, camera_silent=True),
        Turn(progress=True, camera_silent=False),
        Turn(progress=False, camera_silent=False),
    ]
    assert app.loop.stats.frames == 1 and app.loop.stats.camera_timeouts == 1


def test_array_source_through_camera_input_ends() -> None:
    camera = CameraInput(ArrayFrameSource([BLANK]))
    assert isinstance(camera.poll(0.0), FrameSeen)
    assert isinstance(camera.poll(0.0), SourceEnded)
