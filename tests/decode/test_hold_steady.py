"""'Hold steady': a QR symbol seen but not read for a moment, alone and in the real loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory
from qrgen import hc1_like, in_scene, load_gray, save_qr

from kiosk.app import build_app
from kiosk.camera import ArrayFrameSource
from kiosk.config import load_config
from kiosk.decode.progress import SeenNotRead
from kiosk.decode.zxing import ZxingDecoder

FPS = 15.0
SEEN, READ, EMPTY = "seen", "read", "empty"


def feed(tracker: SeenNotRead, frames: list[str]) -> list[bool]:
    return [tracker.feed(read=f == READ, seen=f in (SEEN, READ)) for f in frames]


def test_the_hint_comes_after_a_moment_of_seen_but_unread_frames() -> None:
    tracker = SeenNotRead(after_frames=4, clear_frames=2)
    assert feed(tracker, [SEEN] * 6) == [False, False, False, True, True, True]
    assert tracker.shown == 1


def test_a_code_read_at_the_first_or_second_frame_never_shows_it() -> None:
    tracker = SeenNotRead(after_frames=4)
    assert not any(feed(tracker, [SEEN, READ, READ, SEEN, SEEN, READ] * 5))
    assert tracker.shown == 0


def test_the_hint_ends_at_once_when_the_code_is_read() -> None:
    tracker = SeenNotRead(after_frames=3)
    assert feed(tracker, [SEEN, SEEN, SEEN, READ]) == [False, False, True, False]
    # And a new unread spell counts from zero again.
    assert feed(tracker, [SEEN, SEEN, SEEN]) == [False, False, True]


def test_the_hint_ends_when_the_code_is_gone_without_flickering_on_one_miss() -> None:
    tracker = SeenNotRead(after_frames=3, clear_frames=2)
    shown = feed(tracker, [SEEN, SEEN, SEEN, EMPTY, SEEN, EMPTY, EMPTY, EMPTY])
    assert shown == [False, False, True, True, True, True, False, False]
    assert tracker.shown == 1


def test_zero_never_shows_it_and_bad_counts_are_refused() -> None:
    tracker = SeenNotRead(after_frames=0)
    assert not any(feed(tracker, [SEEN] * 50))
    with pytest.raises(ValueError):
        SeenNotRead(after_frames=-1)
    with pytest.raises(ValueError):
        SeenNotRead(clear_frames=0)


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Real frames: an empty scene, a code with half of it covered (seen, unreadable), the code."""
    path = save_qr(tmp_path_factory.mktemp("qr") / "qr.png", hc1_like(300, seed=4), scale=4)
    code = load_gray(path)
    covered = code.copy()
    side = code.shape[0]
    covered[side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = 170  # a thumb over it
    return {
        EMPTY: in_scene(np.full((8, 8), 120, np.uint8), seed=2),
        SEEN: in_scene(covered, at=(20, 100)),
        READ: in_scene(code, at=(20, 100)),
    }


def test_the_frames_are_what_they_claim(frames: dict[str, np.ndarray]) -> None:
    decoder = ZxingDecoder()
    assert decoder.decode(frames[SEEN]) == [] and decoder.symbols_seen > 0
    assert decoder.decode(frames[EMPTY]) == [] and decoder.symbols_seen == 0
    assert len(decoder.decode(frames[READ])) == 1


class OneKey:
    """A KTP keypad on which one digit is pressed at the start (the NIK prompt comes up)."""

    def __init__(self) -> None:
        self.keys = ["3"]

    def read_key(self, timeout_s: float) -> str | None:
        return self.keys.pop(0) if self.keys else None

    def close(self) -> None:
        pass


def run_loop(
    tmp_path: Path, frames: dict[str, np.ndarray], script: list[str], keys: OneKey | None = None
) -> list[str]:
    """Play ``script`` (frame names) through build_app; return the screens shown, in order."""
    (tmp_path / "trust").mkdir(exist_ok=True)
    config = load_config(None, {
        "device.data_dir": str(tmp_path / "state"),
        "verify.trust_dir": str(tmp_path / "trust"),
        "gate.pin_factory": "mock",
        "display.driver": "dummy",
        "display.fullscreen": False,
        "mqtt.enabled": False,
        "decoder.backend": "zxing",
        "decoder.hold_steady_after_frames": 4,
    })  # fmt: skip
    clock = [1000.0]
    screens: list[str] = []

    def tick() -> float:
        clock[0] += 1 / FPS
        return clock[0]

    def played() -> Iterator[np.ndarray]:
        for name in script:
            yield frames[name]

    def on_event(event: str, fields: dict[str, Any]) -> None:
        if event == "screen":
            screens.append(str(fields["screen"]))

    source = ArrayFrameSource(played(), clock=tick)
    with build_app(config, source=source, pin_factory=MockFactory(), keys=keys,
                   monotonic=lambda: clock[0], on_event=on_event) as app:  # fmt: skip
        app.loop.start()
        for _ in script:
            assert app.loop.step()
    return screens


def test_the_loop_shows_it_and_the_decision_replaces_it(
    tmp_path: Path, frames: dict[str, np.ndarray]
) -> None:
    screens = run_loop(tmp_path, frames, [EMPTY] * 3 + [SEEN] * 6 + [READ])
    assert screens[0] == "idle"  # the start
    assert screens[1:] == ["hold_steady", "denied:base45_invalid"]  # an HC1-like non-certificate


def test_the_loop_takes_it_down_when_the_code_is_gone(
    tmp_path: Path, frames: dict[str, np.ndarray]
) -> None:
    screens = run_loop(tmp_path, frames, [SEEN] * 5 + [EMPTY] * 3 + [SEEN] * 2 + [EMPTY])
    assert screens == ["idle", "hold_steady", "idle"]


def test_a_quick_read_never_shows_it(tmp_path: Path, frames: dict[str, np.ndarray]) -> None:
    screens = run_loop(tmp_path, frames, [EMPTY, SEEN, SEEN, READ, READ, EMPTY])
    assert "hold_steady" not in screens


def test_it_never_covers_the_nik_prompt(tmp_path: Path, frames: dict[str, np.ndarray]) -> None:
    screens = run_loop(tmp_path, frames, [EMPTY] + [SEEN] * 8 + [EMPTY] * 3, keys=OneKey())
    assert "nik_prompt" in screens
    assert "hold_steady" not in screens
