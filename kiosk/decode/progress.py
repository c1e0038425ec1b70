"""Seen but not read: when to tell the traveller "hold steady".

A phone held too close, tilted or shaking shows a QR symbol the decoder finds
but cannot read (zxing-cpp reports such symbols: ``Decoder.symbols_seen``
while ``decode`` returns nothing). People then walk off or shake the phone
harder; a screen that says the code is seen and to hold it steady keeps them
there. :class:`SeenNotRead` decides, frame by frame, when that hint is due:

* **on** after ``after_frames`` consecutive frames with a symbol seen and
  nothing read (a moment: 4 frames are ~0.27 s at 15 fps, so a code that reads
  at the first or second frame never flashes the hint);
* **off** at once on the first frame that reads a code, and after
  ``clear_frames`` consecutive frames without any symbol (the code is gone;
  two frames, so one frame in which the detector misses the symbol does not
  make the screen flicker).

It is pure: the loop feeds it each frame's outcome and shows or clears the hint.
"""

from __future__ import annotations


class SeenNotRead:
    """Counts frames with a QR symbol seen but not read, and says when the hint is due.

    Args:
        after_frames: consecutive seen-but-unread frames before the hint (0: never).
        clear_frames: consecutive frames without a symbol that end the hint.

    Raises:
        ValueError: a negative ``after_frames`` or a ``clear_frames`` below 1.
    """

    def __init__(self, after_frames: int = 4, clear_frames: int = 2) -> None:
        if after_frames < 0 or clear_frames < 1:
            raise ValueError(f"bad hint frame counts: {after_frames}, {clear_frames}")
        self.after_frames = after_frames
        self.clear_frames = clear_frames
        self.active = False
        #: Times the hint came on (for tests and the benchmark).
        self.shown = 0
        self._unread = 0
        self._empty = 0

    def feed(self, *, read: bool, seen: bool) -> bool:
        """Take one frame's outcome (``read``: a text came out; ``seen``: a symbol was found).

        Returns whether the hint should be up after this frame.
        """
        if read:
            self._unread = self._empty = 0
            self.active = False
        elif seen:
            self._empty = 0
            self._unread += 1
            if self.after_frames and self._unread >= self.after_frames and not self.active:
                self.active = True
                self.shown += 1
        else:
            self._empty += 1
            if self._empty >= self.clear_frames:
                self._unread = 0
                self.active = False
        return self.active

    def reset(self) -> None:
        """Forget the frames so far (the loop showed another screen); the hint is off."""
        self._unread = self._empty = 0
        self.active = False
