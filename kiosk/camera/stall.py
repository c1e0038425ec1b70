"""Stall detection from frame timestamps: a camera that answers but shows nothing new.

A camera that stops delivering is caught by the frame timeout
(:class:`~kiosk.errors.CameraTimeout`). A camera can also stall while
``read()`` keeps returning: the same exposure again and again (its capture
timestamp repeats), or timestamps that stop advancing (an ISP or driver hang
that recycles an old buffer). Decoding such frames wastes the loop on a
picture that is no longer the scene, and a traveller's code is never seen.

:class:`StallWatch` tells a fresh frame from a stale one by its capture time
(``Frame.sensor_timestamp`` when the camera reports one, else
``Frame.timestamp``), and says the camera is stalled once no fresh frame has
come for ``stall_after_s`` seconds of the caller's clock while stale frames
did. It is pure: the caller passes each frame and the time.
"""

from __future__ import annotations

from kiosk.camera.base import Frame


def capture_time(frame: Frame) -> float:
    """The frame's capture time in seconds: the camera's own when it reports one."""
    return frame.sensor_timestamp if frame.sensor_timestamp is not None else frame.timestamp


class StallWatch:
    """Fresh or stale, frame by frame, and whether the stale spell has become a stall.

    Args:
        stall_after_s: seconds without a fresh frame (while stale ones arrive)
            that make a stall; 0 turns detection off (every frame is fresh).

    Counters: ``stale_frames`` (frames whose capture time did not advance).

    Raises:
        ValueError: a negative ``stall_after_s``.
    """

    def __init__(self, stall_after_s: float = 2.0) -> None:
        if stall_after_s < 0:
            raise ValueError(f"stall_after_s must be >= 0, got {stall_after_s!r}")
        self.stall_after_s = stall_after_s
        self.stale_frames = 0
        self._last: float | None = None  # capture time of the newest fresh frame
        self._fresh_at: float | None = None  # caller's time when it arrived
        self._rebased = False  # reset since the last frame: a new time origin is allowed

    def fresh(self, frame: Frame, now: float) -> bool:
        """True when ``frame`` is newer than every frame before it (it counts as progress)."""
        taken = capture_time(frame)
        rebased, self._rebased = self._rebased, False
        # After a restart a source may count from a new origin: only the very
        # same capture time again is stale then.
        newer = taken != self._last if rebased else taken > (self._last or float("-inf"))
        if self.stall_after_s == 0 or self._last is None or newer:
            self._last, self._fresh_at = taken, now
            return True
        self.stale_frames += 1
        if self._fresh_at is None:
            self._fresh_at = now
        return False

    def stalled(self, now: float) -> bool:
        """True when no fresh frame has come for ``stall_after_s`` seconds at ``now``."""
        return (
            self.stall_after_s > 0
            and self._fresh_at is not None
            and now - self._fresh_at >= self.stall_after_s
        )

    def reset(self, now: float) -> None:
        """After a restart: the stall clock starts at ``now``; the next frame is fresh
        unless it repeats the last fresh frame's capture time exactly."""
        self._rebased = True
        self._fresh_at = now

    def stale_for(self, now: float) -> float:
        """Seconds since the newest fresh frame (0 before any frame)."""
        return 0.0 if self._fresh_at is None else now - self._fresh_at
