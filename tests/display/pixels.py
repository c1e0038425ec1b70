"""Colour checks on rendered surfaces."""

from __future__ import annotations

import pygame

Color = tuple[int, int, int]


class Frame:
    """One rendered frame as mapped pixel values, taken once and queried often.

    ``array2d`` holds one integer per pixel, so comparisons are cheap even at 4K.
    """

    def __init__(self, surface: pygame.Surface) -> None:
        self._surface = surface
        self._pixels = pygame.surfarray.array2d(surface)

    def share_of(self, rect: pygame.Rect, colour: Color) -> float:
        """Fraction of the rect's pixels exactly equal to ``colour``."""
        block = self._pixels[rect.left : rect.right, rect.top : rect.bottom]
        return float((block == self._surface.map_rgb(colour)).mean())


def is_green(c: Color) -> bool:
    r, g, b = c
    return g > r + 60 and g > b + 40


def is_red(c: Color) -> bool:
    r, g, b = c
    return r > g + 100 and r > b + 100


def is_neutral(c: Color) -> bool:
    return not is_green(c) and not is_red(c)
