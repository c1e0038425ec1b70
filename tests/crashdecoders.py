"""Decoders that fail the way a native library does, for the isolation tests (not tests).

They run inside the isolated worker process. The frame's first pixel says
what to do: 0 read nothing, 1 abort the process (as zbar's assertion does),
2 hang, anything else read the text "pixel-<value>".
"""

from __future__ import annotations

import os
import time

import numpy as np

from kiosk.decode.base import Decoder

ABORT, HANG = 1, 2


class MisbehavingDecoder(Decoder):
    """Reads nothing, aborts, hangs or reads ``pixel-<n>``, by the first pixel."""

    name = "misbehaving"

    def decode(self, gray: np.ndarray) -> list[str]:
        """See the module docstring."""
        first = int(gray[0, 0])
        if first == ABORT:
            os.abort()
        if first == HANG:
            time.sleep(3600)
        return [] if first == 0 else [f"pixel-{first}"]


def frame(first: int, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A frame whose first pixel is ``first``."""
    gray = np.full(shape, 200, dtype=np.uint8)
    gray[0, 0] = first
    return gray
