"""A synthetic phone-screen corpus: real QR codes as a gate camera sees them (helpers, not tests).

Each case is a 640×480 (or 1280×720) grey frame: an empty gate scene (light
from one side, a few hard-edged objects, sensor noise) with a phone screen
showing a real QR code (segno, EC level Q like an EU DCC) at a given number of
pixels per module, degraded by one *condition* at severity 1..3. The code is
rendered supersampled and reduced with a box filter, so modules land on
fractional pixel positions as through a lens. Used by tests/decode and by
bench/scan.py; deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import segno
from PIL import Image, ImageFilter

BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
SUPERSAMPLE = 8


def hc1_text(rng: random.Random, length: int = 580) -> str:
    """An HC1-like payload: the prefix plus Base45 text (QR alphanumeric mode)."""
    return "HC1:" + "".join(rng.choice(BASE45) for _ in range(length - 4))


def idle_scene(rng: np.random.Generator, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """An empty gate scene as float64: lit from one side, some hard edges, no noise yet."""
    height, width = size
    y, x = np.mgrid[0:height, 0:width]
    scene = 70 + 90 * (x / width) + 20 * (y / height)
    for _ in range(6):
        top, left = int(rng.integers(0, height - 60)), int(rng.integers(0, width - 60))
        h, w = int(rng.integers(40, 200)), int(rng.integers(40, 200))
        scene[top : top + h, left : left + w] += rng.uniform(-50, 50)
    return scene


def finish(frame: np.ndarray, rng: np.random.Generator, noise: float = 5.0) -> np.ndarray:
    """Sensor noise, then clip to a uint8 frame."""
    return np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)


def idle_frame(rng: np.random.Generator, scene: np.ndarray) -> np.ndarray:
    """One camera frame of ``scene`` (fresh noise each time)."""
    return finish(scene, rng, 6.0)


def code_image(text: str, px_per_module: float) -> np.ndarray:
    """The QR code with its quiet zone, 1.0 = dark module, at ``px_per_module`` (float64)."""
    # A fixed mask per text: segno's mask search would cost ~0.1 s per code.
    mask = sum(map(ord, text)) % 8
    qr = segno.make(text, error="q", micro=False, boost_error=False, mask=mask)
    dark = np.array(list(qr.matrix_iter(scale=1, border=4)), dtype=np.uint8)
    side = round(dark.shape[0] * px_per_module)
    big = np.kron(dark, np.ones((SUPERSAMPLE, SUPERSAMPLE), dtype=np.uint8))
    image = Image.fromarray(big * np.uint8(255)).resize((side, side), Image.BOX)
    return np.asarray(image, dtype=np.float64) / 255.0


@dataclass(frozen=True)
class Case:
    """One corpus frame: what it shows and how it was degraded."""

    condition: str
    severity: int
    px_per_module: float
    text: str
    gray: np.ndarray


def _blur(screen: np.ndarray, sigma: float) -> np.ndarray:
    image = Image.fromarray(np.clip(screen, 0, 255).astype(np.uint8))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(sigma)), dtype=np.float64)


def _motion(screen: np.ndarray, length: int) -> np.ndarray:
    """A hand moving sideways: each pixel averages ``length`` pixels along its row."""
    padded = np.pad(screen, ((0, 0), (length, length)), mode="edge")
    summed = np.cumsum(padded, axis=1)
    window = summed[:, length:] - summed[:, :-length]
    start = length // 2
    return window[:, start : start + screen.shape[1]] / length


def _warp(screen: np.ndarray, coefficients: tuple[float, ...], fill: float) -> np.ndarray:
    image = Image.fromarray(np.clip(screen, 0, 255).astype(np.uint8))
    warped = image.transform(
        image.size, Image.PERSPECTIVE, coefficients, Image.BILINEAR, fillcolor=int(fill)
    )
    return np.asarray(warped, dtype=np.float64)


def _keystone(screen: np.ndarray, strength: float, fill: float) -> np.ndarray:
    """The phone tilted away at the top: the top edge shrinks by ``strength`` of the width."""
    w, h = screen.shape[1], screen.shape[0]
    shrink = strength * w / 2
    # Output corners ← input corners: PIL wants the inverse mapping's coefficients.
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    dst = [(shrink, 0), (w - shrink, 0), (w, h), (0, h)]
    return _warp(screen, _perspective(dst, src), fill)


Points = list[tuple[float, float]]


def _perspective(dst: Points, src: Points) -> tuple[float, ...]:
    """PIL's perspective coefficients mapping output points ``dst`` to input points ``src``."""
    rows = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    a = np.array(rows, dtype=np.float64)
    b = np.array([c for point in src for c in point], dtype=np.float64)
    return tuple(np.linalg.solve(a, b))


def _rotate(screen: np.ndarray, degrees: float, fill: float) -> np.ndarray:
    image = Image.fromarray(np.clip(screen, 0, 255).astype(np.uint8))
    turned = image.rotate(degrees, Image.BILINEAR, expand=True, fillcolor=int(fill))
    return np.asarray(turned, dtype=np.float64)


def _glare(screen: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    h, w = screen.shape
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    y, x = np.mgrid[0:h, 0:w]
    spot = np.exp(-(((y - cy) ** 2 + (x - cx) ** 2) / (2 * (0.18 * w) ** 2)))
    return screen + strength * spot


def _moire(screen: np.ndarray, amplitude: float, period: float) -> np.ndarray:
    """The phone's pixel grid beating with the sensor's: a slanted sinusoidal pattern."""
    h, w = screen.shape
    y, x = np.mgrid[0:h, 0:w]
    pattern = np.sin(2 * np.pi * (x * 0.94 + y * 0.31) / period)
    return screen * (1 + amplitude * pattern)


# name → (dark level, light level, degradation per severity 1..3).
Degrade = Callable[[np.ndarray, int, np.random.Generator, float], np.ndarray]


def _conditions() -> dict[str, tuple[float, float, Degrade]]:
    fillers: dict[str, tuple[float, float, Degrade]] = {
        "clean": (45, 215, lambda s, k, r, f: s),
        "blur": (45, 215, lambda s, k, r, f: _blur(s, (1.0, 1.4, 1.8)[k - 1])),
        "motion_blur": (45, 215, lambda s, k, r, f: _motion(s, (3, 4, 5)[k - 1])),
        "noise": (45, 215, lambda s, k, r, f: s + r.normal(0, (10, 16, 22)[k - 1], s.shape)),
        "rotation": (45, 215, lambda s, k, r, f: _rotate(s, (12, 30, 45)[k - 1], f)),
        "keystone": (45, 215, lambda s, k, r, f: _keystone(s, (0.15, 0.25, 0.35)[k - 1], f)),
        "low_contrast": (
            45, 215, lambda s, k, r, f: 128 + (s - 128) * (0.25, 0.14, 0.08)[k - 1]
        ),
        "dark_mode": (215, 40, lambda s, k, r, f: s),
        "glare": (45, 215, lambda s, k, r, f: _glare(s, (120, 170, 220)[k - 1], r)),
        "moire": (45, 215, lambda s, k, r, f: _moire(s, (0.15, 0.25, 0.35)[k - 1], 2.7)),
        "dim": (45, 215, lambda s, k, r, f: s * (0.45, 0.3, 0.2)[k - 1]),
        "uneven_light": (
            45, 215,
            lambda s, k, r, f: s * np.linspace(1.0, (0.6, 0.4, 0.25)[k - 1], s.shape[1])[None, :],
        ),
        "finger": (45, 215, lambda s, k, r, f: _finger(s, (0.06, 0.1, 0.14)[k - 1])),
    }  # fmt: skip
    return fillers


def _finger(screen: np.ndarray, fraction: float) -> np.ndarray:
    """A thumb over the lower right corner (not a finder pattern's corner)."""
    out = screen.copy()
    h, w = out.shape
    size = int(fraction * h * 2)
    y, x = np.mgrid[0:h, 0:w]
    thumb = (y - (h - size * 0.3)) ** 2 + ((x - (w - size * 0.3)) * 0.8) ** 2 < size**2
    out[thumb] = 150
    return out


CONDITIONS = tuple(_conditions())


def make_case(
    condition: str,
    severity: int,
    px_per_module: float,
    seed: int,
    size: tuple[int, int] = (480, 640),
) -> Case:
    """One corpus frame (deterministic for its arguments)."""
    rng = np.random.default_rng(seed)
    text = hc1_text(random.Random(seed))
    dark, light, degrade = _conditions()[condition]
    code = code_image(text, px_per_module)
    screen = light + (dark - light) * code
    # The screen's own bezel-free margin, so warps and rotations keep a quiet zone.
    margin = int(8 * px_per_module)
    screen = np.pad(screen, margin, constant_values=light)
    screen = degrade(screen, severity, rng, light)
    scene = idle_scene(rng, size)
    height, width = size
    sh, sw = min(screen.shape[0], height - 4), min(screen.shape[1], width - 4)
    screen = screen[:sh, :sw]
    top = int(rng.integers(2, height - sh - 1)) if height - sh > 3 else 2
    left = int(rng.integers(2, width - sw - 1)) if width - sw > 3 else 2
    scene[top : top + sh, left : left + sw] = screen
    return Case(condition, severity, px_per_module, text, finish(scene, rng, 4.0))


def corpus(
    px_per_module: float = 3.0,
    seeds: range = range(1),
    conditions: tuple[str, ...] = CONDITIONS,
    size: tuple[int, int] = (480, 640),
) -> list[Case]:
    """Every condition × severity 1..3 × seed at ``px_per_module``."""
    return [
        make_case(condition, severity, px_per_module, 1000 * seed + 10 * severity + i, size)
        for seed in seeds
        for i, condition in enumerate(conditions)
        for severity in (1, 2, 3)
    ]
