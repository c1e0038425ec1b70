"""Camera stalls from frame timestamps: detected, reported, remedied, and the gate goes on."""

from __future__ import annotations

import functools
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.camera import Frame, FrameSource
from kiosk.camera.stall import StallWatch, capture_time
from kiosk.errors import CameraTimeout
from kiosk.peripherals import FaultBoard, RetryingFrameSource

FRAME_S = 1 / 15


def frame(taken: float, *, sensor: float | None = None, index: int = 0) -> Frame:
    return Frame(np.zeros((48, 64), np.uint8), taken, index, sensor_timestamp=sensor)


class Clock:
    """A virtual monotonic clock; the camera advances it by one frame per read."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FreezingCamera(FrameSource):
    """A camera that delivers ``fresh`` frames, then the last one again and again (a stall).

    Its capture times come from the sensor (like picamera2's SensorTimestamp);
    ``restart()`` (stop/start in place) makes it deliver fresh frames again
    unless ``restart_helps`` is False.
    """

    def __init__(self, clock: Clock, fresh: int, *, restart_helps: bool = True,
                 can_restart: bool = True) -> None:  # fmt: skip
        self.clock = clock
        self.fresh = fresh
        self.restart_helps = restart_helps
        self.restart_calls = 0
        self.closed = False
        self.sensor = 5000.0
        self.delivered = 0
        if not can_restart:
            self.restart = None  # type: ignore[assignment]

    def read(self) -> Frame:
        self.clock.sleep(FRAME_S)
        if self.delivered < self.fresh:
            self.sensor += FRAME_S
        self.delivered += 1
        return frame(self.clock.now, sensor=self.sensor, index=self.delivered)

    def restart(self) -> None:
        self.restart_calls += 1
        if self.restart_helps:
            self.fresh = self.delivered + 1000

    def close(self) -> None:
        self.closed = True


def test_capture_time_prefers_the_sensor_timestamp() -> None:
    assert capture_time(frame(10.0, sensor=3.5)) == 3.5
    assert capture_time(frame(10.0)) == 10.0


def test_the_watch_tells_fresh_from_stale_and_says_when_it_is_a_stall() -> None:
    watch = StallWatch(stall_after_s=2.0)
    assert watch.fresh(frame(1.0, sensor=1.0), now=1.0)
    assert watch.fresh(frame(1.1, sensor=1.1), now=1.1)
    assert not watch.fresh(frame(1.2, sensor=1.1), now=1.2)  # the same exposure again
    assert not watch.fresh(frame(1.3, sensor=0.9), now=1.3)  # going backwards
    assert watch.stale_frames == 2
    assert not watch.stalled(3.0)
    assert watch.stalled(3.1)  # 2 s after the last fresh frame
    watch.reset(4.0)
    assert not watch.stalled(5.9) and watch.stalled(6.0)
    assert not watch.fresh(frame(4.1, sensor=1.1), now=4.1)  # the old frame again: stale
    watch.reset(4.2)
    assert watch.fresh(frame(4.3, sensor=0.1), now=4.3)  # a restart may count from a new origin
    assert not watch.fresh(frame(4.4, sensor=0.05), now=4.4)


def test_zero_turns_detection_off_and_negative_is_refused() -> None:
    watch = StallWatch(0)
    assert all(watch.fresh(frame(1.0, sensor=1.0), now=t) for t in range(100))
    assert not watch.stalled(1e9)
    with pytest.raises(ValueError):
        StallWatch(-1)


def retrying(clock: Clock, cameras: list[FreezingCamera], board: FaultBoard,
             stall_after_s: float = 3.0) -> RetryingFrameSource:  # fmt: skip
    queue = list(cameras)
    return RetryingFrameSource(
        lambda: queue.pop(0), board, timeout_s=1.0, retry_s=0.0,
        stall_after_s=stall_after_s, monotonic=clock, wait=clock.sleep,
    )  # fmt: skip


def reads(source: RetryingFrameSource, count: int) -> list[str]:
    """``count`` reads as "frame" or "timeout"."""
    out = []
    for _ in range(count):
        try:
            source.read()
        except CameraTimeout:
            out.append("timeout")
        else:
            out.append("frame")
    return out


def test_a_stall_is_reported_restarted_in_place_and_cleared_by_the_next_fresh_frame() -> None:
    clock = Clock()
    counted: list[str] = []
    changes: list[tuple[str, bool]] = []
    board = FaultBoard(counted.append, lambda part, faulty: changes.append((part, faulty)))
    camera = FreezingCamera(clock, fresh=10)
    source = retrying(clock, [camera], board)
    assert reads(source, 10) == ["frame"] * 10
    # Then the same frame again and again: no frame reaches the loop; each read
    # gives up after the frame timeout (1 s) like a silent camera.
    assert reads(source, 2) == ["timeout", "timeout"]
    assert camera.restart_calls == 0 and "camera" not in board.faults
    assert reads(source, 1) == ["timeout"]  # 3 s without a new frame: a stall
    assert camera.restart_calls == 1 and source.stalls == 1 and source.restarts == 1
    assert re.fullmatch(r"stalled: no new frame for 3\.\d s; restarting", board.faults["camera"])
    assert board.status()["last_error"].startswith("camera: stalled")
    assert counted == ["fault.camera"] and changes == [("camera", True)]
    assert source.stale_frames > 30
    # Restarted in place: fresh frames again, the fault clears; the camera was never re-created.
    assert reads(source, 5) == ["frame"] * 5
    assert "camera" not in board.faults and changes[-1] == ("camera", False)
    assert not camera.closed and source.reopens == 0
    source.close()


def test_when_restarting_in_place_does_not_help_the_camera_is_opened_again() -> None:
    clock = Clock()
    board = FaultBoard()
    stuck = FreezingCamera(clock, fresh=3, restart_helps=False)
    spare = FreezingCamera(clock, fresh=1000)
    source = retrying(clock, [stuck, spare], board)
    outcomes = reads(source, 12)
    assert outcomes[:3] == ["frame"] * 3
    assert stuck.restart_calls == 1  # first remedy: restart in place; it did not help
    assert stuck.closed and source.reopens == 1  # second: closed and opened again
    assert outcomes[-1] == "frame" and spare.delivered >= 1
    assert "camera" not in board.faults
    source.close()


def test_a_camera_that_cannot_restart_is_opened_again_at_once() -> None:
    clock = Clock()
    board = FaultBoard()
    first = FreezingCamera(clock, fresh=2, can_restart=False)
    second = FreezingCamera(clock, fresh=1000)
    source = retrying(clock, [first, second], board, stall_after_s=1.5)
    outcomes = reads(source, 6)
    assert first.closed and source.reopens == 1 and source.restarts == 0
    assert outcomes[:2] == ["frame", "frame"] and outcomes[-1] == "frame"
    source.close()


class RealtimeFreezingCamera(FreezingCamera):
    """The same stall on the real clock, for the application test."""

    def read(self) -> Frame:
        time.sleep(0.005)
        if self.delivered < self.fresh:
            self.sensor += FRAME_S
        self.delivered += 1
        return frame(time.monotonic(), sensor=self.sensor, index=self.delivered)


def test_the_gate_reports_a_stall_and_keeps_turning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kiosk.app
    from kiosk.app import build_app
    from kiosk.config import load_config

    monkeypatch.setenv("SDL_VIDEODRIVER", os.environ.get("SDL_VIDEODRIVER", "dummy"))
    camera = RealtimeFreezingCamera(Clock(), fresh=5)
    monkeypatch.setattr(kiosk.app, "open_frame_source", lambda cfg: camera)
    (tmp_path / "trust").mkdir()
    config = load_config(None, {
        "device.data_dir": str(tmp_path / "state"),
        "verify.trust_dir": str(tmp_path / "trust"),
        "gate.pin_factory": "mock",
        "camera.source": "files",  # opened as the freezing camera above
        "camera.path": str(tmp_path),
        "camera.frame_timeout_s": 0.1,
        "camera.stall_after_s": 0.3,
        "display.driver": "dummy",
        "display.fullscreen": False,
        "mqtt.enabled": False,
    })  # fmt: skip
    events: list[tuple[str, dict[str, Any]]] = []
    with build_app(config, pin_factory=MockFactory(),
                   on_event=lambda e, f: events.append((e, f))) as app:  # fmt: skip
        board = app.screen._board  # type: ignore[attr-defined]
        app.loop.start()
        last_error = None
        for _ in range(40):
            assert app.loop.step()  # never raises, never ends
            last_error = last_error or board.status().get("last_error")
            if camera.restart_calls and "camera" not in board.faults:
                break
        assert last_error is not None and last_error.startswith("camera: stalled")
        assert camera.restart_calls == 1
        assert ("fault", {"part": "camera"}) in events
        assert app.store.totals().get("fault.camera") == 1
        screens = [f["screen"] for e, f in events if e == "screen"]
        assert "scanner_fault" in screens  # the traveller was told, meanwhile
        frames_before = app.loop.stats.frames
        for _ in range(3):
            assert app.loop.step()
        assert app.loop.stats.frames == frames_before + 3  # fresh frames flow again
        assert ("recovered", {"part": "camera"}) in events



def test_re_creating_the_camera_is_bounded_then_the_service_is_asked_to_restart() -> None:
    clock = Clock()
    board = FaultBoard()
    made: list[FreezingCamera] = []
    exhausted: list[bool] = []

    def opener() -> FreezingCamera:  # every camera stalls and no restart in place cures it
        made.append(FreezingCamera(clock, fresh=2, can_restart=False))
        return made[-1]

    # A short frame timeout: without a camera a read waits it out in real time.
    source = RetryingFrameSource(
        opener, board, timeout_s=0.2, retry_s=0.0, stall_after_s=0.5, max_reopens=3,
        on_exhausted=lambda: exhausted.append(True), monotonic=clock, wait=clock.sleep)
    for _ in range(200):
        reads(source, 1)
        if exhausted:
            break
    assert len(made) == 4 and source.reopens == 4  # the first camera and 3 re-creations
    assert exhausted == [True]  # asked once, never a fifth object
    assert board.faults["camera"] == "re-created 3 times; restarting the service"
    assert reads(source, 3) == ["timeout"] * 3 and len(made) == 4  # the loop still turns
    assert exhausted == [True]
    source.close()


def test_an_absent_camera_never_counts_towards_the_bound() -> None:
    clock = Clock()
    board = FaultBoard()
    exhausted: list[bool] = []

    def absent() -> FrameSource:
        raise OSError(19, "No such device")

    source = RetryingFrameSource(
        absent, board, timeout_s=0.01, retry_s=0.0, max_reopens=1,
        on_exhausted=lambda: exhausted.append(True), monotonic=clock, wait=clock.sleep)
    assert reads(source, 20) == ["timeout"] * 20
    assert exhausted == [] and "No such device" in board.faults["camera"]
    source.close()


def test_the_gate_exits_for_systemd_once_the_camera_was_re_created_too_often(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kiosk.app
    from kiosk.app import EXIT_CAMERA, build_app
    from kiosk.config import load_config

    monkeypatch.setenv("SDL_VIDEODRIVER", os.environ.get("SDL_VIDEODRIVER", "dummy"))
    made: list[FreezingCamera] = []

    def stalling(_cfg: object) -> FreezingCamera:
        made.append(RealtimeFreezingCamera(Clock(), fresh=2, can_restart=False))
        return made[-1]

    monkeypatch.setattr(kiosk.app, "open_frame_source", stalling)
    # Retry at once (5 s in service): the test is about the bound, not the pace.
    monkeypatch.setattr(kiosk.app, "RetryingFrameSource",
                        functools.partial(RetryingFrameSource, retry_s=0.0))
    (tmp_path / "trust").mkdir()
    config = load_config(None, {
        "device.data_dir": str(tmp_path / "state"),
        "verify.trust_dir": str(tmp_path / "trust"),
        "gate.pin_factory": "mock",
        "camera.source": "files",
        "camera.path": str(tmp_path),
        "camera.frame_timeout_s": 0.1,
        "camera.stall_after_s": 0.3,
        "camera.max_reopens": 2,
        "display.driver": "dummy",
        "display.fullscreen": False,
        "mqtt.enabled": False,
    })  # fmt: skip
    with build_app(config, pin_factory=MockFactory()) as app:
        app.loop.start()
        for _ in range(400):  # run() ends after the turn in which an exit was asked
            app.loop.step()
            if app.loop.exit_status is not None:
                break
        assert app.loop.exit_status == EXIT_CAMERA
        assert len(made) == 3
