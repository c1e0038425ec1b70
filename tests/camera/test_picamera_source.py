"""Picamera2Source off the Pi: stride handling, lazy import, and a fake camera that behaves.

The fake plays what libcamera does to us: lores YUV420 buffers whose rows are
padded to a stride wider than the image, sensor timestamps with gaps when
frames were skipped, and a camera that stalls.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest
from camgen import FakeClock, decode, qr_gray

from kiosk.camera import open_frame_source
from kiosk.camera.picamera import Picamera2Source, frames_missed, y_plane
from kiosk.config.schema import CameraConfig
from kiosk.errors import CameraError, CameraTimeout

WIDTH, HEIGHT, STRIDE = 500, 380, 512  # 500 is not 64-aligned: libcamera pads rows to 512


def padded_yuv420(gray: np.ndarray, stride: int, pad: int = 0xAA) -> np.ndarray:
    """A 1-D YUV420 buffer as libcamera lays it out: Y rows padded to ``stride``, then U, V."""
    height, width = gray.shape
    y = np.full((height, stride), pad, np.uint8)
    y[:, :width] = gray
    chroma = np.full(2 * (height // 2) * (stride // 2), 128, np.uint8)
    return np.concatenate([y.reshape(-1), chroma])


def scene(text: str) -> np.ndarray:
    frame = np.full((HEIGHT, WIDTH), 200, np.uint8)
    code = qr_gray(text, scale=3)
    frame[30 : 30 + code.shape[0], 90 : 90 + code.shape[1]] = code
    return frame


# -- pure functions ---------------------------------------------------------------------------


def test_y_plane_drops_the_row_padding_and_the_chroma() -> None:
    gray = np.arange(HEIGHT * WIDTH, dtype=np.uint32).reshape(HEIGHT, WIDTH).astype(np.uint8)
    buffer = padded_yuv420(gray, STRIDE)
    y = y_plane(buffer, WIDTH, HEIGHT, STRIDE)
    assert y.shape == (HEIGHT, WIDTH) and y.dtype == np.uint8 and y.flags.c_contiguous
    np.testing.assert_array_equal(y, gray)
    buffer[:] = 0  # the camera recycles its buffer: the frame must not change
    np.testing.assert_array_equal(y, gray)


def test_y_plane_accepts_picamera2s_2d_yuv420_array() -> None:
    gray = scene("TWO-D")
    as_2d = padded_yuv420(gray, STRIDE).reshape(HEIGHT * 3 // 2, STRIDE)
    np.testing.assert_array_equal(y_plane(as_2d, WIDTH, HEIGHT, STRIDE), gray)


def test_ignoring_the_stride_shears_the_code_and_y_plane_does_not() -> None:
    gray = scene("STRIDE-MATTERS")
    buffer = padded_yuv420(gray, STRIDE)
    naive = buffer[: WIDTH * HEIGHT].reshape(HEIGHT, WIDTH)
    assert decode(naive) == []
    assert decode(y_plane(buffer, WIDTH, HEIGHT, STRIDE)) == ["STRIDE-MATTERS"]


@pytest.mark.parametrize(
    ("width", "height", "stride", "size", "message"),
    [
        (64, 48, 32, "full", "geometry"),
        (64, 48, 64, 64 * 47, "too small"),
        (0, 48, 64, "full", "geometry"),
    ],
)
def test_y_plane_rejects_inconsistent_geometry(
    width: int, height: int, stride: int, size: int | str, message: str
) -> None:
    n = 64 * 48 * 3 // 2 if size == "full" else int(size)
    with pytest.raises(CameraError, match=message):
        y_plane(np.zeros(n, np.uint8), width, height, stride)


@pytest.mark.parametrize(
    ("previous", "current", "duration_us", "missed"),
    [
        (None, 1_000, 66_666, 0),
        (0, 66_666_000, 66_666, 0),  # the next frame
        (0, 200_000_000, 66_666, 2),  # three periods later: two skipped
        (0, 70_000_000, 66_666, 0),  # jitter is not a drop
        (100, 100, 66_666, 0),
        (0, 1_000_000, 0, 0),
    ],
)
def test_frames_missed(previous: int | None, current: int, duration_us: float, missed: int) -> None:
    assert frames_missed(previous, current, duration_us) == missed


# -- import behaviour -------------------------------------------------------------------------


def test_importing_the_adapter_does_not_import_picamera2() -> None:
    code = (
        "import sys, kiosk.camera, kiosk.camera.picamera;"
        "assert 'picamera2' not in sys.modules and 'libcamera' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_open_frame_source_without_picamera2_is_a_clear_camera_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # as on a machine without it
    with pytest.raises(CameraError, match="picamera2 is unavailable") as info:
        open_frame_source(CameraConfig(source="picamera2"))
    assert "apt install python3-picamera2" in str(info.value)


# -- a fake Picamera2 that behaves --------------------------------------------------------------


class FakeRequest:
    def __init__(self, camera: FakePicamera2, buffer: np.ndarray, sensor_ns: int) -> None:
        self.camera = camera
        self.config = {"lores": {"size": (WIDTH, HEIGHT), "stride": STRIDE, "format": "YUV420"}}
        self._buffer = buffer
        self._sensor_ns = sensor_ns
        self.released = False

    def make_buffer(self, name: str) -> np.ndarray:
        assert name == "lores" and not self.released
        return self._buffer.copy()

    def get_metadata(self) -> dict[str, Any]:
        return {"SensorTimestamp": self._sensor_ns, "FrameDuration": 66_666}

    def release(self) -> None:
        assert not self.released, "released twice"
        self.released = True


class FakePicamera2:
    """Plays ``script``, one step per capture: a frame (gray array); ``"skip"`` (a sensor
    frame that came and went unseen); ``"stall"`` (no frame within the timeout);
    ``"repeat"`` (the last frame again, with its sensor timestamp); or
    ``("late", frame)`` (no frame within the timeout, but it lands just before the cancel)."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.sensor_ns = 0
        self.requests: list[FakeRequest] = []
        self.config: dict[str, Any] | None = None
        self.calls: list[str] = []
        self.waits: list[float | None] = []
        self.start_error: Exception | None = None
        self.pending: tuple[Future[FakeRequest], np.ndarray] | None = None
        self.last = np.zeros((HEIGHT, WIDTH), np.uint8)

    def create_video_configuration(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def start(self) -> None:
        if self.start_error:
            raise self.start_error
        self.calls.append("start")

    def capture_request(self, wait: bool) -> Future[FakeRequest]:
        assert wait is False, "must not block: the timeout is applied in wait()"
        job: Future[FakeRequest] = Future()
        while self.script and isinstance(self.script[0], str) and self.script[0] == "skip":
            self.script.pop(0)
            self.sensor_ns += 66_666_000
        step = self.script.pop(0)
        if isinstance(step, np.ndarray):
            self.sensor_ns += 66_666_000
            self.last = step
            job.set_result(self._request(step))
        elif isinstance(step, str) and step == "repeat":  # the same exposure again (a stall)
            job.set_result(self._request(self.last))
        elif isinstance(step, tuple):
            self.pending = (job, step[1])
        return job  # "stall": never completes

    def wait(self, job: Future[FakeRequest], timeout: float | None = None) -> FakeRequest:
        self.waits.append(timeout)
        return job.result(timeout=0)  # TimeoutError for a stalled job, without waiting

    def cancel_all_and_flush(self) -> None:
        self.calls.append("cancel")
        if self.pending is not None:  # the late frame wins the race against the cancel
            job, gray = self.pending
            self.pending = None
            job.set_result(self._request(gray))

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")

    def _request(self, gray: np.ndarray) -> FakeRequest:
        request = FakeRequest(self, padded_yuv420(gray, STRIDE), self.sensor_ns)
        self.requests.append(request)
        return request


CFG = CameraConfig(width=WIDTH, height=HEIGHT, fps=15.0, frame_timeout_s=0.5)


def test_reads_gray_frames_from_the_lores_stream_and_releases_every_request() -> None:
    camera = FakePicamera2([scene("PI-1"), scene("PI-2")])
    clock = FakeClock()
    with Picamera2Source(CFG, camera_factory=lambda: camera, clock=clock) as source:
        frames = [source.read(), source.read()]
    assert [decode(f.gray) for f in frames] == [["PI-1"], ["PI-2"]]
    assert [f.index for f in frames] == [0, 1]
    assert all(f.gray.shape == (HEIGHT, WIDTH) and f.gray.flags.c_contiguous for f in frames)
    assert all(r.released for r in camera.requests)
    assert camera.waits == [0.5, 0.5]
    assert camera.config is not None
    assert camera.config["lores"] == {"size": (WIDTH, HEIGHT), "format": "YUV420"}
    assert camera.config["controls"] == {
        "FrameRate": 15.0, "AeMeteringMode": 0, "AeExposureMode": 0, "ExposureValue": 0.0,
    }  # fmt: skip
    assert camera.calls == ["start", "stop", "close"]


def test_a_stalled_camera_raises_camera_timeout_and_cancels_the_job() -> None:
    camera = FakePicamera2([scene("BEFORE"), "stall", scene("AFTER")])
    source = Picamera2Source(CFG, camera_factory=lambda: camera)
    assert decode(source.read().gray) == ["BEFORE"]
    with pytest.raises(CameraTimeout, match=r"0\.5 s") as info:
        source.read()
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, CameraError)
    assert "cancel" in camera.calls
    assert source.timeouts == 1
    assert decode(source.read().gray) == ["AFTER"]  # the loop may retry after a stall
    source.close()


def test_a_request_that_completes_after_the_timeout_is_still_released() -> None:
    camera = FakePicamera2([("late", scene("LATE"))])
    with Picamera2Source(CFG, camera_factory=lambda: camera) as source:
        with pytest.raises(CameraTimeout):
            source.read()
        # Otherwise the buffer would be held forever and the camera would run dry.
        assert [r.released for r in camera.requests] == [True]


def test_skipped_sensor_frames_are_counted_as_dropped() -> None:
    camera = FakePicamera2([scene("A"), "skip", "skip", scene("B"), scene("C")])
    with Picamera2Source(CFG, camera_factory=lambda: camera) as source:
        for _ in range(3):
            source.read()
        assert source.frames_read == 3
        assert source.frames_dropped == 2


def test_close_is_idempotent_and_reading_after_close_fails() -> None:
    camera = FakePicamera2([scene("X")])
    source = Picamera2Source(CFG, camera_factory=lambda: camera)
    source.close()
    source.close()
    assert camera.calls == ["start", "stop", "close"]
    with pytest.raises(CameraError, match="closed"):
        source.read()


def test_a_camera_that_fails_to_start_is_closed_and_reported() -> None:
    camera = FakePicamera2([])
    camera.start_error = RuntimeError("Camera frontend has timed out!")
    with pytest.raises(CameraError, match="frontend has timed out"):
        Picamera2Source(CFG, camera_factory=lambda: camera)
    assert camera.calls == ["stop", "close"]


def test_no_camera_connected_is_a_camera_error() -> None:
    def no_camera() -> Any:
        raise IndexError("list index out of range")  # what Picamera2() raises with no camera

    with pytest.raises(CameraError, match="cannot open the Pi camera"):
        Picamera2Source(CFG, camera_factory=no_camera)


def test_frames_carry_the_sensor_time_and_a_stall_restarts_the_same_camera_object() -> None:
    from kiosk.peripherals import FaultBoard, RetryingFrameSource

    camera = FakePicamera2([scene("A"), *["repeat"] * 8, scene("B")])
    made: list[FakePicamera2] = []
    clock = FakeClock()

    def opener() -> Picamera2Source:
        made.append(camera)
        return Picamera2Source(CFG, camera_factory=lambda: camera, clock=clock)

    board = FaultBoard()
    source = RetryingFrameSource(opener, board, timeout_s=0.5, stall_after_s=0.1,
                                 monotonic=clock, wait=clock.sleep)  # fmt: skip
    first = source.read()
    assert first is not None and first.sensor_timestamp == pytest.approx(0.066666)
    with pytest.raises(CameraTimeout, match="stalled"):
        source.read()  # the repeated exposures are not delivered; then it is a stall
    assert camera.calls == ["start", "stop", "start"]  # stop/start in place, never re-created
    assert len(made) == 1 and source.restarts == 1
    assert board.faults["camera"].startswith("stalled")
    second = source.read()
    assert second is not None and decode(second.gray) == ["B"]
    assert "camera" not in board.faults
    assert all(r.released for r in camera.requests)
    source.close()


def test_screen_reading_controls_reach_the_camera_and_missing_ones_are_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from dataclasses import replace

    camera = FakePicamera2([scene("PHONE")])
    # A Camera Module 3 offers autofocus; this one (like a v2 module) does not.
    camera.camera_controls = {  # type: ignore[attr-defined]
        name: (0, 1, 0) for name in ("AeMeteringMode", "AeExposureMode", "ExposureValue")
    }
    cfg = replace(CFG, metering="spot", exposure_mode="short", exposure_value=-1.0,
                  autofocus="manual", lens_position=5.0)  # fmt: skip
    with Picamera2Source(cfg, camera_factory=lambda: camera) as source:
        assert decode(source.read().gray) == ["PHONE"]
    assert camera.config is not None
    assert camera.config["controls"] == {
        "FrameRate": 15.0, "AeMeteringMode": 1, "AeExposureMode": 1, "ExposureValue": -1.0,
    }  # fmt: skip
    assert "no AfMode, LensPosition control(s)" in caplog.text


@pytest.mark.parametrize(
    ("autofocus", "expected"),
    [
        ("none", {}),
        ("manual", {"AfMode": 0, "LensPosition": 4.0}),
        ("auto", {"AfMode": 1, "AfRange": 2, "AfTrigger": 0}),
        ("continuous", {"AfMode": 2, "AfRange": 2}),
    ],
)
def test_autofocus_settings_map_to_libcamera_controls(
    autofocus: str, expected: dict[str, object]
) -> None:
    from dataclasses import replace

    from kiosk.camera.picamera import camera_controls

    cfg = replace(CFG, autofocus=autofocus, af_range="full")
    controls, skipped = camera_controls(cfg)
    assert {k: v for k, v in controls.items() if k.startswith(("Af", "Lens"))} == expected
    assert skipped == []
