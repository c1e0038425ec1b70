"""Real QR images for the decoder tests, rendered with segno (helpers, not tests)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import segno
from PIL import Image

# The QR alphanumeric alphabet, which is also Base45's: an EU DCC "HC1:" payload
# is encoded in this QR mode.
BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def hc1_like(length: int = 580, seed: int = 1) -> str:
    """A deterministic HC1-like payload of ``length`` characters."""
    rng = random.Random(seed)
    return "HC1:" + "".join(rng.choice(BASE45) for _ in range(length - 4))


def save_qr(
    path: Path,
    text: str,
    *,
    scale: int = 3,
    dark: str = "black",
    light: str = "white",
    border: int = 4,
) -> Path:
    """Render ``text`` as a real QR code (EC level Q, like an EU DCC) to an image file."""
    segno.make(text, error="q", micro=False, boost_error=False).save(
        str(path), scale=scale, dark=dark, light=light, border=border
    )
    return path


def load_gray(path: Path) -> np.ndarray:
    """An image file as a 2-D uint8 gray array."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L")).copy()


def in_scene(
    code: np.ndarray,
    *,
    size: tuple[int, int] = (480, 640),
    at: tuple[int, int] = (80, 160),
    seed: int = 0,
) -> np.ndarray:
    """Place a code on a mid-gray, sensor-noisy background like a camera frame."""
    rng = np.random.default_rng(seed)
    scene = np.clip(rng.normal(120, 12, size), 0, 255).astype(np.uint8)
    y, x = at
    scene[y : y + code.shape[0], x : x + code.shape[1]] = code
    return scene
