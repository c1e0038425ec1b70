"""The second look: a few enhanced re-reads of a frame where a code is seen but not read.

Only frames that earn it get one: the first attempt read nothing, and either
zxing-cpp reported a QR symbol it found but could not decode, or
:func:`kiosk.decode.texture.qr_like_region` sees a QR-like patch. The
re-reads work on that region only (the reported symbol's box, else the
patch), in order of what they recover per millisecond on the phone-screen
corpus (tests/scancorpus.py, bench/scan.py):

1. unsharp mask (radius 3, 200 %): motion blur, moiré, low contrast;
2. 2× bicubic upscale, then unsharp mask (radius 6, 300 %): blur, motion blur;
3. 2× upscale, then unsharp mask (radius 4, 400 %): strong Gaussian blur;
4. 2× upscale alone: very low contrast, moiré.

The first re-read that yields a text ends the look. A text only ever comes
from a symbol whose Reed–Solomon error correction and format checks passed
in zxing-cpp, exactly as on the first attempt, so an enhancement can make a
code readable but cannot make the decoder accept a wrong one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageFilter

Box = tuple[int, int, int, int]  # top, left, bottom, right (pixels)
# Regions larger than this (pixels, before upscaling; a 3 px/module code with
# margin is ~420²) are not upscaled: a bounded cost.
MAX_UPSCALE_PIXELS = 480 * 480


def _unsharp(gray: np.ndarray, radius: float, percent: int) -> np.ndarray:
    image = Image.fromarray(gray).filter(ImageFilter.UnsharpMask(radius, percent, 0))
    return np.asarray(image)


def _upscale(gray: np.ndarray) -> np.ndarray:
    height, width = gray.shape
    image = Image.fromarray(gray).resize((2 * width, 2 * height), Image.Resampling.BICUBIC)
    return np.asarray(image)


def _sharpen(gray: np.ndarray) -> np.ndarray:
    return _unsharp(gray, 3, 200)


def _up_sharpen_wide(gray: np.ndarray) -> np.ndarray:
    return _unsharp(_upscale(gray), 6, 300)


def _up_sharpen_strong(gray: np.ndarray) -> np.ndarray:
    return _unsharp(_upscale(gray), 4, 400)


#: (name, enhancement, needs an upscale) in the order they are tried.
ATTEMPTS: tuple[tuple[str, Callable[[np.ndarray], np.ndarray], bool], ...] = (
    ("sharpen", _sharpen, False),
    ("upscale_sharpen_wide", _up_sharpen_wide, True),
    ("upscale_sharpen_strong", _up_sharpen_strong, True),
    ("upscale", _upscale, True),
)


def symbol_box(corners: Sequence[tuple[float, float]], shape: tuple[int, int]) -> Box:
    """The box around a reported symbol's corners (x, y), widened by a quarter of its size."""
    xs = [x for x, _ in corners]
    ys = [y for _, y in corners]
    margin = max(max(xs) - min(xs), max(ys) - min(ys)) / 4 + 8
    height, width = shape
    return (
        max(0, int(min(ys) - margin)),
        max(0, int(min(xs) - margin)),
        min(height, int(max(ys) + margin) + 1),
        min(width, int(max(xs) + margin) + 1),
    )


def second_look(
    gray: np.ndarray, box: Box, read: Callable[[np.ndarray], list[str]]
) -> tuple[list[str], str | None]:
    """Re-read ``box`` of ``gray`` with each enhancement until one yields texts.

    Returns the texts and the name of the enhancement that read them
    (``([], None)`` when none did).
    """
    top, left, bottom, right = box
    region = np.ascontiguousarray(gray[top:bottom, left:right])
    if region.shape[0] < 16 or region.shape[1] < 16:
        return [], None
    small = region.size <= MAX_UPSCALE_PIXELS
    for name, enhance, upscales in ATTEMPTS:
        if upscales and not small:
            continue
        texts = read(np.ascontiguousarray(enhance(region)))
        if texts:
            return texts, name
    return [], None
