"""The idle throttle (kiosk.decode.idle) on a virtual clock, alone and in the real loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.app import build_app
from kiosk.camera import ArrayFrameSource
from kiosk.config import load_config
from kiosk.decode import IdleThrottle
from kiosk.decode.idle import largest_cell_change, thumbnail
from tests import scancorpus

FPS = 15.0


@pytest.fixture(scope="module")
def still() -> list[np.ndarray]:
    """Two seconds (30 frames) of one empty scene, fresh sensor noise in every frame."""
    rng = np.random.default_rng(5)
    scene = scancorpus.idle_scene(rng)
    return [scancorpus.idle_frame(rng, scene) for _ in range(30)]


@pytest.fixture(scope="module")
def phone() -> scancorpus.Case:
    return scancorpus.make_case("clean", 1, 3.0, seed=3)


def _feed(throttle: IdleThrottle, frames: list[np.ndarray], t0: float) -> list[bool]:
    return [throttle.wants(f, t0 + i / FPS) for i, f in enumerate(frames)]


def test_sensor_noise_is_no_change_and_a_phone_is(
    still: list[np.ndarray], phone: scancorpus.Case
) -> None:
    a, b = thumbnail(still[0]), thumbnail(still[1])
    assert largest_cell_change(a, b) < 10  # noise of sigma 6 averages out over a cell
    assert largest_cell_change(a, thumbnail(phone.gray)) > 30


def test_a_still_scene_is_decoded_once_a_second_after_the_idle_delay(
    still: list[np.ndarray],
) -> None:
    throttle = IdleThrottle(idle_after_s=2.0, check_every_s=1.0)
    frames = still * 8  # 240 frames = 16 s at 15 fps
    wanted = _feed(throttle, frames, 100.0)
    assert all(wanted[:30])  # the first 2 s: every frame
    late = wanted[45:]  # well past the idle delay: one in 15 frames
    assert 12 <= sum(late) <= 14, sum(late)
    assert throttle.skipped == wanted.count(False) and throttle.decoded == wanted.count(True)


def test_a_phone_coming_into_view_is_decoded_in_its_first_frame(
    still: list[np.ndarray], phone: scancorpus.Case
) -> None:
    throttle = IdleThrottle(idle_after_s=2.0, check_every_s=1.0)
    _feed(throttle, still * 4, 100.0)
    t = 100.0 + 120 / FPS
    assert throttle.idle(t)
    assert throttle.wants(phone.gray, t)  # no frame of delay
    assert not throttle.idle(t)  # and the full rate from now on
    assert throttle.wants(phone.gray, t + 1 / FPS)


def test_a_symbol_seen_keeps_the_full_rate(still: list[np.ndarray]) -> None:
    throttle = IdleThrottle(idle_after_s=2.0, check_every_s=1.0)
    for i, frame in enumerate(still * 4):
        now = 100.0 + i / FPS
        throttle.wants(frame, now)
        throttle.saw(now)  # the decoder keeps reporting a symbol it cannot read
    assert throttle.skipped == 0


def test_a_busy_frame_is_checked_for_change_after_its_decode(
    still: list[np.ndarray], phone: scancorpus.Case
) -> None:
    """While busy, wants() lets frames through unchecked; observe() does the check later."""
    throttle = IdleThrottle(idle_after_s=2.0, check_every_s=1.0)
    t = 100.0
    assert throttle.wants(still[0], t)  # first frame: the reference
    throttle.observe(still[0], t)  # nothing left to check: it was checked before its decode
    moving = [phone.gray, still[1]] * 30  # a scene that changes every frame, for 4 s
    for i, frame in enumerate(moving, start=1):
        now = t + i / FPS
        assert throttle.wants(frame, now)
        throttle.observe(frame, now)  # each change counts as activity
    end = t + len(moving) / FPS
    assert not throttle.idle(end + 1.9) and throttle.idle(end + 2.0)  # the last change counts
    # The same frames never observed: only the changes seen while idle count, the
    # last at 2.07 s, so the throttle would go idle in the middle of the motion.
    unchecked = IdleThrottle(idle_after_s=2.0, check_every_s=1.0)
    unchecked.wants(still[0], t)
    for i, frame in enumerate(moving, start=1):
        unchecked.wants(frame, t + i / FPS)
    assert unchecked.idle(end + 1.9)


def test_zero_decodes_every_frame_and_bad_settings_are_refused(still: list[np.ndarray]) -> None:
    throttle = IdleThrottle(idle_after_s=0.0)
    assert not throttle.enabled
    assert all(_feed(throttle, still * 6, 100.0))
    with pytest.raises(ValueError, match="check_every_s"):
        IdleThrottle(check_every_s=0)


def test_the_loop_skips_still_frames_and_reads_the_phone_at_once(
    tmp_path: Path, still: list[np.ndarray], phone: scancorpus.Case
) -> None:
    (tmp_path / "trust").mkdir()
    config = load_config(None, {
        "device.data_dir": str(tmp_path / "state"),
        "verify.trust_dir": str(tmp_path / "trust"),
        "gate.pin_factory": "mock",
        "display.driver": "dummy",
        "display.fullscreen": False,
        "mqtt.enabled": False,
    })
    clock = [1000.0]

    def tick() -> float:
        clock[0] += 1 / FPS
        return clock[0]

    def frames() -> Iterator[np.ndarray]:
        yield from still * 4  # 8 s of nothing
        yield phone.gray

    source = ArrayFrameSource(frames(), clock=tick)
    with build_app(config, source=source, pin_factory=MockFactory(),
                   monotonic=lambda: clock[0]) as app:
        app.loop.start()
        for _ in range(120):
            assert app.loop.step()
        throttle = app.loop.throttle
        assert throttle is not None and throttle.skipped > 80
        assert app.loop.stats.scans == 0
        assert app.loop.step()  # the phone's first frame
        assert app.loop.stats.scans == 1  # decided (an HC1-like text that is no certificate)
