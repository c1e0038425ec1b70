"""Display test fixtures: SDL's dummy video driver, set before any display init."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "screens"
SIZES = [(800, 480), (1920, 1080)]


@pytest.fixture(autouse=True)
def sdl_dummy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Headless SDL for every display test; video shut down afterwards."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    pygame.font.init()
    yield
    pygame.display.quit()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
