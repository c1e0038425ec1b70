"""The Raspberry Pi camera through picamera2: a thin adapter.

picamera2 (and libcamera under it) exist only on the Pi, from apt, so they are
imported inside :class:`Picamera2Source` and never when this module is
imported. The logic worth testing off the Pi is kept in pure functions:
:func:`y_plane` (luma out of a stride-padded YUV420 buffer) and
:func:`frames_missed` (sensor frames skipped between two delivered ones).

Capture is bounded: each frame is requested asynchronously
(``capture_request(wait=False)``) and awaited with ``wait(job, timeout)``, so a
camera that stalls (loose ribbon cable, ISP hang) raises
:class:`~kiosk.errors.CameraTimeout` instead of hanging the scan loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from kiosk.camera.base import Frame, FrameSource
from kiosk.config.schema import CameraConfig
from kiosk.errors import CameraError, CameraTimeout

log = logging.getLogger(__name__)

_STREAM = "lores"
_INSTALL_HINT = (
    "picamera2 is unavailable in this Python environment: on Raspberry Pi OS install it "
    "with `sudo apt install python3-picamera2` and create the venv with "
    '--system-site-packages; off the Pi set camera.source = "files" or "video"'
)


def y_plane(buffer: np.ndarray, width: int, height: int, stride: int) -> np.ndarray:
    """Copy the Y (luma) plane out of a YUV420 buffer.

    libcamera pads each row to ``stride`` bytes (often a multiple of 32 or 64),
    so for a width that is not a multiple of the alignment ``stride > width``
    and a naive ``reshape(height, width)`` shears the image. The Y plane is the
    first ``height`` rows of ``stride`` bytes; its first ``width`` bytes per row
    are pixels, the rest is padding.

    Args:
        buffer: the stream buffer, 1-D (``make_buffer``) or 2-D
            (``height * 3 // 2`` × ``stride``), ``uint8``.
        width, height: image size in pixels.
        stride: bytes per row (``>= width``).

    Returns:
        A new C-contiguous ``(height, width)`` ``uint8`` array (it never aliases
        the camera buffer, which is recycled after ``release()``).

    Raises:
        CameraError: size or stride inconsistent with the buffer.
    """
    if width <= 0 or height <= 0 or stride < width:
        raise CameraError(f"bad YUV420 geometry: {width}x{height}, stride {stride}")
    flat = np.asarray(buffer, dtype=np.uint8).reshape(-1)
    needed = stride * height
    if flat.size < needed:
        raise CameraError(
            f"YUV420 buffer too small: {flat.size} bytes for {height} rows of stride {stride}"
        )
    return np.array(flat[:needed].reshape(height, stride)[:, :width], order="C", copy=True)


def frames_missed(previous_ns: int | None, current_ns: int, frame_duration_us: float) -> int:
    """Sensor frames skipped between two delivered frames.

    Args:
        previous_ns: ``SensorTimestamp`` (ns) of the previous delivered frame, or None.
        current_ns: ``SensorTimestamp`` (ns) of this frame.
        frame_duration_us: ``FrameDuration`` (µs) of this frame.

    Returns:
        ``round(gap / duration) - 1``, never below 0; 0 when there is nothing
        to compare with or the inputs are not usable.
    """
    if previous_ns is None or frame_duration_us <= 0 or current_ns <= previous_ns:
        return 0
    periods = (current_ns - previous_ns) / (frame_duration_us * 1000.0)
    return max(0, round(periods) - 1)


# libcamera's enum values (control_ids_core.yaml), as plain ints so libcamera is not imported.
METERING = {"centre": 0, "spot": 1, "matrix": 2}  # AeMeteringMode
EXPOSURE_MODES = {"normal": 0, "short": 1, "long": 2}  # AeExposureMode
AF_MODES = {"manual": 0, "auto": 1, "continuous": 2}  # AfMode
AF_RANGES = {"normal": 0, "macro": 1, "full": 2}  # AfRange
AF_TRIGGER_START = 0  # AfTrigger: start one focus cycle (AfMode auto)


def camera_controls(
    cfg: CameraConfig, supported: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The picamera2 controls for ``cfg`` (docs/camera.md), and the ones this camera lacks.

    Args:
        cfg: camera settings (``fps``, ``metering``, ``exposure_mode``,
            ``exposure_value``, ``autofocus``, ``lens_position``, ``af_range``).
        supported: the camera's ``camera_controls`` (name → limits); None when
            unknown: every control is kept.

    Returns:
        ``(controls, skipped)``: the controls to start the camera with, and
        the names left out because the camera does not offer them (a module
        without autofocus has no ``AfMode``).
    """
    wanted: dict[str, Any] = {
        "FrameRate": cfg.fps,
        "AeMeteringMode": METERING[cfg.metering],
        "AeExposureMode": EXPOSURE_MODES[cfg.exposure_mode],
        "ExposureValue": cfg.exposure_value,
    }
    if cfg.autofocus != "none":
        wanted["AfMode"] = AF_MODES[cfg.autofocus]
        if cfg.autofocus == "manual":
            wanted["LensPosition"] = cfg.lens_position
        else:
            wanted["AfRange"] = AF_RANGES[cfg.af_range]
        if cfg.autofocus == "auto":
            wanted["AfTrigger"] = AF_TRIGGER_START
    if supported is None:
        return wanted, []
    # FrameRate is picamera2's own shorthand for FrameDurationLimits, not a camera control.
    kept = {k: v for k, v in wanted.items() if k == "FrameRate" or k in supported}
    return kept, [k for k in wanted if k not in kept]


class Picamera2Source(FrameSource):
    """Gray frames from the Pi camera's low-resolution YUV420 stream.

    The lores stream is configured at ``cfg.width``×``cfg.height`` and
    ``cfg.fps``; only its Y plane is kept. ``frames_dropped`` counts sensor
    frames that came and went while the loop was busy (from the sensor
    timestamps); ``timeouts`` counts stalls.

    Args:
        cfg: camera settings (``width``, ``height``, ``fps``, ``frame_timeout_s``, and the
            exposure and focus controls of :func:`camera_controls`).
        camera_factory: makes the ``Picamera2`` object; defaults to
            ``picamera2.Picamera2`` (imported here, lazily). Tests pass a fake.
        clock: monotonic seconds for :attr:`Frame.timestamp`.

    Raises:
        CameraError: picamera2 is not installed, no camera is connected, or
            configuring/starting it fails (the camera is closed again).
    """

    def __init__(
        self,
        cfg: CameraConfig,
        *,
        camera_factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._camera: Any = None  # first, so close() works whatever fails below
        self.frames_read = 0
        self.frames_dropped = 0
        self.timeouts = 0
        self._timeout_s = cfg.frame_timeout_s
        self._clock = clock
        self._last_sensor_ns: int | None = None
        self._requested = (cfg.width, cfg.height)
        self._size_checked = False
        if camera_factory is None:
            try:
                from picamera2 import Picamera2
            except (ImportError, OSError) as exc:
                raise CameraError(_INSTALL_HINT) from exc
            camera_factory = Picamera2
        try:
            self._camera = camera_factory()
        except Exception as exc:  # picamera2 raises IndexError/RuntimeError with no camera
            raise CameraError(f"cannot open the Pi camera: {exc}") from exc
        try:
            size = (cfg.width, cfg.height)
            controls, skipped = camera_controls(cfg, getattr(self._camera, "camera_controls", None))
            if skipped:
                log.warning("this camera has no %s control(s); not set", ", ".join(skipped))
            config = self._camera.create_video_configuration(
                main={"size": size},
                lores={"size": size, "format": "YUV420"},
                controls=controls,
                display=None,
            )
            self._camera.configure(config)
            self._camera.start()
        except Exception as exc:
            self.close()
            raise CameraError(f"cannot configure/start the Pi camera: {exc}") from exc
        log.info(
            "Pi camera started: %s %dx%d YUV420 at %.1f fps, frame timeout %.2f s",
            _STREAM,
            cfg.width,
            cfg.height,
            cfg.fps,
            cfg.frame_timeout_s,
        )

    def read(self) -> Frame:
        """Wait at most ``frame_timeout_s`` for the next frame and return its Y plane.

        Never returns ``None``: a camera has no end of stream.

        Raises:
            CameraTimeout: no frame within ``frame_timeout_s``; the pending job
                is cancelled so no buffer is leaked.
            CameraError: capture failed, or the source is closed.
        """
        camera = self._camera
        if camera is None:
            raise CameraError("read from a closed Pi camera source")
        try:
            job = camera.capture_request(wait=False)
        except Exception as exc:
            raise CameraError(f"Pi camera capture failed: {exc}") from exc
        try:
            request = camera.wait(job, timeout=self._timeout_s)
        except TimeoutError as exc:  # concurrent.futures.TimeoutError is this since 3.11
            self.timeouts += 1
            self._abandon(camera, job)
            raise CameraTimeout(f"Pi camera gave no frame within {self._timeout_s:g} s") from exc
        except Exception as exc:
            raise CameraError(f"Pi camera capture failed: {exc}") from exc
        timestamp = self._clock()
        try:
            stream = request.config[_STREAM]
            width, height = stream["size"]
            stride = stream["stride"]
            buffer = request.make_buffer(_STREAM)
            metadata = request.get_metadata()
        except Exception as exc:
            raise CameraError(f"Pi camera frame unreadable: {exc}") from exc
        finally:
            # Return the buffer to libcamera at once: it has only a handful.
            request.release()
        gray = y_plane(buffer, int(width), int(height), int(stride))
        self._check_size(gray)
        sensor_ns = self._count_drops(metadata)
        frame = Frame(
            gray=gray,
            timestamp=timestamp,
            index=self.frames_read,
            sensor_timestamp=sensor_ns / 1e9 if sensor_ns is not None else None,
        )
        self.frames_read += 1
        return frame

    def restart(self) -> None:
        """Stop and start the camera within the same Picamera2 object (a stall's first remedy).

        Re-creating the Picamera2 object leaks memory in picamera2/libcamera,
        so a stalled camera is restarted in place first.

        Raises:
            CameraError: the source is closed, or stop/start failed.
        """
        camera = self._camera
        if camera is None:
            raise CameraError("restart of a closed Pi camera source")
        try:
            camera.stop()
            camera.start()
        except Exception as exc:
            raise CameraError(f"Pi camera restart failed: {exc}") from exc
        self._last_sensor_ns = None
        log.warning("Pi camera restarted (stop/start)")

    def close(self) -> None:
        """Stop and close the camera. Idempotent; errors while closing are logged."""
        camera = getattr(self, "_camera", None)
        self._camera = None
        if camera is None:
            return
        for step in ("stop", "close"):
            try:
                getattr(camera, step)()
            except Exception:
                log.warning("Pi camera %s() failed while closing", step, exc_info=True)

    def _abandon(self, camera: Any, job: Any) -> None:
        """Cancel a timed-out job; release its request if it completed meanwhile."""
        try:
            camera.cancel_all_and_flush()
        except Exception:
            log.debug("cancel_all_and_flush failed", exc_info=True)
        # The job may have finished between the timeout and the cancel; its
        # request would then be held forever and starve the camera of buffers.
        try:
            late = camera.wait(job, timeout=0)
        except Exception:  # CancelledError, TimeoutError, InvalidStateError: nothing held
            return
        release = getattr(late, "release", None)
        if callable(release):
            release()

    def _check_size(self, gray: np.ndarray) -> None:
        if self._size_checked:
            return
        self._size_checked = True
        actual = (gray.shape[1], gray.shape[0])
        if actual != self._requested:
            log.warning(
                "Pi camera delivers %dx%d, not the configured %dx%d",
                actual[0],
                actual[1],
                self._requested[0],
                self._requested[1],
            )

    def _count_drops(self, metadata: Any) -> int | None:
        """Count sensor frames missed since the last one; returns this frame's SensorTimestamp."""
        try:
            sensor_ns = int(metadata["SensorTimestamp"])
            duration_us = float(metadata["FrameDuration"])
        except (KeyError, TypeError, ValueError):
            return None  # no timing metadata: drops cannot be known, count none
        self.frames_dropped += frames_missed(self._last_sensor_ns, sensor_ns, duration_us)
        self._last_sensor_ns = sensor_ns
        return sensor_ns
