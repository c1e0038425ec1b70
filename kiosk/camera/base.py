"""Frames and the frame-source contract shared by every camera backend.

A :class:`FrameSource` hands the scan loop one grayscale :class:`Frame` at a
time. Backends live in their own modules (:mod:`kiosk.camera.files`,
:mod:`kiosk.camera.picamera`) and are imported lazily by
:func:`open_frame_source`, so importing this module never touches camera
hardware or Pi-only libraries.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kiosk.closing import Closing
from kiosk.errors import CameraError

if TYPE_CHECKING:
    from kiosk.config.schema import CameraConfig

log = logging.getLogger(__name__)

# ITU-R BT.601 luma weights: the same ones Pillow's convert("L") and the
# camera ISP's Y plane use, so a file-fed frame looks like a camera frame.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Frame:
    """One grayscale frame.

    Attributes:
        gray: 2-D ``uint8`` array (rows × columns), C-contiguous, owned by the
            frame (never a view into a camera buffer that may be recycled).
        timestamp: ``time.monotonic()`` seconds when the frame was captured.
        index: 0, 1, 2, … counted per source (continues across loops).
        sensor_timestamp: the camera's own capture time in seconds when it
            reports one (picamera2's ``SensorTimestamp``), else None. A frame
            that repeats it is the same exposure delivered again (a stall).
    """

    gray: np.ndarray
    timestamp: float
    index: int
    sensor_timestamp: float | None = None


class FrameSource(Closing, abc.ABC):
    """Where frames come from: a context manager yielding :class:`Frame` objects.

    Subclasses implement :meth:`read` and :meth:`close`. ``close()`` must be
    idempotent and safe to call after a constructor that failed half-way, so
    subclasses set every attribute ``close()`` touches before doing anything
    that can raise.

    Counters (plain ints, read by the status reporter):
        frames_read: frames returned by :meth:`read`.
        frames_dropped: frames the source knows it skipped (a camera that
            delivered newer frames than the loop could take). 0 where the
            source cannot drop.
    """

    frames_read: int = 0
    frames_dropped: int = 0

    @abc.abstractmethod
    def read(self) -> Frame | None:
        """Return the next frame, or ``None`` at the end of the stream.

        Raises:
            CameraTimeout: the device delivered no frame within its timeout.
            CameraError: the source failed or was read after :meth:`close`.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device or files. Idempotent; never raises for a second call."""



def to_gray(array: np.ndarray) -> np.ndarray:
    """Convert an image array to a C-contiguous 2-D ``uint8`` gray image.

    Accepts ``(h, w)``, ``(h, w, 1)``, ``(h, w, 3)`` RGB and ``(h, w, 4)`` RGBA
    (alpha ignored) arrays of ``uint8`` or ``bool``. A 2-D ``uint8`` input that is
    already C-contiguous is copied anyway, so the frame never aliases a buffer
    the caller may reuse.

    Raises:
        CameraError: unsupported shape or dtype (the message names both).
    """
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype != np.uint8:
        raise CameraError(f"frame dtype {arr.dtype} is not supported (expected uint8)")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return np.array(arr, dtype=np.uint8, order="C", copy=True)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        luma = arr[:, :, :3].astype(np.float32) @ _LUMA_WEIGHTS
        # +0.5 rounds like Pillow instead of truncating (a 1-level bias matters
        # for nothing here, but keeps file frames identical to Pillow's "L").
        return np.ascontiguousarray(np.clip(luma + 0.5, 0, 255).astype(np.uint8))
    raise CameraError(f"frame shape {arr.shape} is not supported (expected 2-D gray or RGB)")


def open_frame_source(cfg: CameraConfig) -> FrameSource:
    """Open the frame source selected by ``cfg.source``.

    * ``picamera2`` → :class:`~kiosk.camera.picamera.Picamera2Source` (lores
      YUV420 stream at ``cfg.width``×``cfg.height``, ``cfg.frame_timeout_s``).
    * ``files`` → :class:`~kiosk.camera.files.ImageFrameSource` over
      ``cfg.path`` (an image or a folder), paced at ``cfg.fps``, ``cfg.loop``.
    * ``video`` → :class:`~kiosk.camera.files.VideoFrameSource` over ``cfg.path``,
      paced at ``cfg.fps``, ``cfg.loop``.

    Raises:
        CameraError: unknown source, missing ``path`` for files/video, a path
            that does not exist, or picamera2 not installed / no camera found.
    """
    if cfg.source == "picamera2":
        from kiosk.camera.picamera import Picamera2Source

        return Picamera2Source(cfg)
    if cfg.source in ("files", "video"):
        if cfg.path is None:
            raise CameraError(f"camera.path is required when camera.source = {cfg.source!r}")
        from kiosk.camera.files import ImageFrameSource, VideoFrameSource

        if cfg.source == "files":
            return ImageFrameSource(cfg.path, fps=cfg.fps, loop=cfg.loop)
        return VideoFrameSource(cfg.path, fps=cfg.fps, loop=cfg.loop)
    raise CameraError(f"unknown camera.source {cfg.source!r} (picamera2, files or video)")
