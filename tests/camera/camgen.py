"""Helpers for the camera tests: real QR frames and a fake clock (not tests)."""

from __future__ import annotations

import numpy as np
import segno

from kiosk.decode import Decoder, create_decoder

_decoder: Decoder | None = None


def qr_gray(text: str, *, scale: int = 3, border: int = 4) -> np.ndarray:
    """A real QR code for ``text`` as a 2-D uint8 array (black on white)."""
    qr = segno.make(text, error="q", micro=False, boost_error=False)
    dark = np.array(list(qr.matrix_iter(scale=scale, border=border)), dtype=bool)
    return np.where(dark, 0, 255).astype(np.uint8)


def decode(gray: np.ndarray) -> list[str]:
    """What a gate would read from this frame (the preferred installed backend)."""
    global _decoder
    if _decoder is None:
        _decoder = create_decoder("auto")
    return _decoder.decode(gray)


class FakeClock:
    """A monotonic clock that only moves when slept on or advanced; records sleeps."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds
