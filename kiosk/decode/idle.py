"""Idle budget: decode every frame while something happens, few frames while nothing does.

Most of a gate's frames show the empty scene. A full QR decode of a 640×480
frame costs about a millisecond on a fast core (several on a Pi 4), so
decoding 15 idle frames a second spends half a Pi core on nothing. The
:class:`IdleThrottle` lets the loop skip the decode of a frame when all of
these hold:

* nothing has happened for ``idle_after_s`` seconds (no change in the scene,
  no QR symbol seen by the decoder);
* the frame looks like the last frame that *was* decoded: a 1/8-scale
  thumbnail differs from that frame's by less than ``change_level`` grey levels
  on average in every cell of 10×10 thumbnail samples (80×80 frame pixels).
  Sensor noise averages out over a cell; a phone or a hand entering the view
  changes whole cells by tens of levels;
* the last decode was less than ``check_every_s`` ago (a code that appeared
  without any visible change, or a change too faint to see, is still read
  within that time).

A frame that changes the scene is decoded at once, so the first code frame
after a quiet spell costs no extra frame; the loop then decodes every frame
until the scene has been still again for ``idle_after_s``. The throttle is pure:
the caller passes each frame's time (monotonic seconds).
"""

from __future__ import annotations

import numpy as np

# Thumbnail sampling step in frame pixels, and cell size in thumbnail samples.
THUMB_STEP = 8
CELL = 10
# Mean absolute difference of a cell, in grey levels, that counts as a change.
# Sensor noise of sigma 6 gives about 7 between two frames of a still scene.
CHANGE_LEVEL = 12.0


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """Every ``THUMB_STEP``-th pixel of every ``THUMB_STEP``-th row, as int16 (copied)."""
    return gray[::THUMB_STEP, ::THUMB_STEP].astype(np.int16)


def largest_cell_change(before: np.ndarray, after: np.ndarray) -> float:
    """The largest mean absolute difference over the cells of two same-shape thumbnails."""
    diff = np.abs(after - before)
    rows, cols = diff.shape[0] // CELL, diff.shape[1] // CELL
    if rows == 0 or cols == 0:  # a tiny frame: one cell
        return float(diff.mean()) if diff.size else 0.0
    cells = diff[: rows * CELL, : cols * CELL].reshape(rows, CELL, cols, CELL)
    return float(cells.mean(axis=(1, 3)).max())


class IdleThrottle:
    """Decides per frame whether the loop decodes it (see the module docstring).

    Args:
        idle_after_s: seconds without a change or a seen symbol before frames
            may be skipped; 0 decodes every frame (the throttle is off).
        check_every_s: while idle, a frame is decoded at least this often.
        change_level: grey levels (mean per cell) that count as a change.

    Counters: ``decoded`` and ``skipped`` frames.
    """

    def __init__(
        self,
        idle_after_s: float = 2.0,
        check_every_s: float = 1.0,
        change_level: float = CHANGE_LEVEL,
    ) -> None:
        if idle_after_s < 0 or check_every_s <= 0 or change_level <= 0:
            raise ValueError(
                f"idle_after_s >= 0, check_every_s > 0 and change_level > 0 required, got "
                f"{idle_after_s!r}, {check_every_s!r}, {change_level!r}"
            )
        self.idle_after_s = idle_after_s
        self.check_every_s = check_every_s
        self.change_level = change_level
        self.decoded = 0
        self.skipped = 0
        self._reference: np.ndarray | None = None  # thumbnail of the last decoded frame
        self._last_decode = float("-inf")
        self._last_activity = float("-inf")
        self._unchecked = False  # a busy frame passed without its change check (see observe)

    @property
    def enabled(self) -> bool:
        """False when ``idle_after_s`` is 0: every frame is decoded."""
        return self.idle_after_s > 0

    def idle(self, now: float) -> bool:
        """True when nothing has happened for ``idle_after_s`` seconds at ``now``."""
        return self.enabled and now - self._last_activity >= self.idle_after_s

    def wants(self, gray: np.ndarray, now: float) -> bool:
        """Whether to decode ``gray`` (a 2-D uint8 frame taken at ``now``).

        While the scene is busy (not :meth:`idle`) every frame is decoded and
        the change check is left to :meth:`observe`, which the loop calls after
        the frame's decisions: a code in view reaches the relay without it.
        """
        if not self.enabled:
            self.decoded += 1
            return True
        if not self.idle(now):
            self._unchecked = True
            self._last_decode = now
            self.decoded += 1
            return True
        self._unchecked = False
        thumb = thumbnail(gray)
        changed = self._changed(thumb, now)
        if changed or not self.idle(now) or now - self._last_decode >= self.check_every_s:
            self._reference = thumb  # the reference is always the last decoded frame
            self._last_decode = now
            self.decoded += 1
            return True
        self.skipped += 1
        return False

    def observe(self, gray: np.ndarray, now: float) -> None:
        """The change check of a busy frame that :meth:`wants` let through unchecked.

        Call it once the frame's decisions are taken; it does nothing otherwise.
        """
        if self._unchecked:
            self._unchecked = False
            thumb = thumbnail(gray)
            self._changed(thumb, now)
            self._reference = thumb

    def _changed(self, thumb: np.ndarray, now: float) -> bool:
        """Whether ``thumb`` differs from the reference; a change is activity at ``now``."""
        reference = self._reference
        changed = (
            reference is None
            or reference.shape != thumb.shape
            or largest_cell_change(reference, thumb) >= self.change_level
        )
        if changed:
            self._last_activity = now
        return changed

    def saw(self, now: float) -> None:
        """The decoder saw a QR symbol (read or not) at ``now``: stay at the full rate."""
        self._last_activity = now
