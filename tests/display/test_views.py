"""The gate's other screens rendered with the dummy driver, saved as PNG, checked by region."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pygame
import pytest

from kiosk.config.schema import DisplayConfig
from kiosk.decision import Decision, Reason
from kiosk.display import Screen
from kiosk.display.render import BANNER_FRAC, NEUTRAL, RED, View, draw_view
from kiosk.display.views import (
    AMBER,
    AMBER_TEXT,
    FAULT,
    DeviceStatus,
    emergency_view,
    hold_steady_view,
    nik_prompt_view,
    scanner_fault_view,
    status_from_health,
    tailgate_view,
    view_for,
)
from kiosk.nik.entry import mask_nik
from tests.display.conftest import SIZES
from tests.display.pixels import Frame

STALE = DeviceStatus(trust="stale", clock_ok=False)

SCREENS: list[tuple[str, View, tuple[int, int, int], list[str]]] = [
    ("emergency", emergency_view(), AMBER, ["PINTU DARURAT TERBUKA", "EMERGENCY — GATE OPEN"]),
    ("scanner_fault", scanner_fault_view(), FAULT, ["PEMINDAI TIDAK BERFUNGSI"]),
    ("tailgate", tailgate_view(), RED, ["SATU ORANG SATU PINDAI"]),
    (
        "already_admitted",
        view_for("decision", Decision.deny(Reason.ALREADY_ADMITTED)),
        RED,
        ["SERTIFIKAT SUDAH DIPAKAI", "ALREADY USED TO ENTER"],
    ),
    (
        "nik_prompt",
        nik_prompt_view(mask_nik("3171015008900001")),
        NEUTRAL,
        ["3171 •••• •••• 0001"],
    ),
    ("idle_degraded", view_for("idle", None, STALE), NEUTRAL, ["Clock not synchronised"]),
    (
        "hold_steady",
        hold_steady_view(),
        NEUTRAL,
        ["TAHAN SEBENTAR", "HOLD STEADY", "Kode QR terlihat", "a little further away"],
    ),
]


@dataclass
class _Health:
    mode: str
    clock_state: str


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(("name", "view", "banner", "texts"), SCREENS, ids=[s[0] for s in SCREENS])
def test_screen_png_banner_and_text(
    size: tuple[int, int],
    name: str,
    view: View,
    banner: tuple[int, int, int],
    texts: list[str],
    artifacts: Path,
) -> None:
    w, h = size
    cfg = DisplayConfig(driver="dummy", width=w, height=h, fullscreen=False)
    with Screen(cfg) as screen:
        screen.show_view(view)
        png = artifacts / f"{w}x{h}_{name}.png"
        screen.save_png(png)
    image = pygame.image.load(str(png))
    banner_rect = pygame.Rect(0, 0, w, round(h * BANNER_FRAC))
    # Most of the banner is the expected colour (the rest is text).
    assert Frame(image).share_of(banner_rect, banner) > 0.5
    drawn = draw_view(pygame.Surface(size), view)
    shown = " ".join(line.text for line in drawn)
    for text in texts:
        assert text in shown, (text, shown)
    # Large type: the headline is at least 12 % of the screen height (1.5 m).
    assert drawn[0].line_height >= 0.12 * h - 1


def test_degraded_line_is_amber_in_the_body() -> None:
    surface = pygame.Surface((800, 480))
    drawn = draw_view(surface, view_for("idle", None, STALE))
    notes = [line for line in drawn if line.color == AMBER_TEXT]
    assert len(notes) == 2 and all(line.region == "body" for line in notes)
    fine = draw_view(surface, view_for("idle", None, DeviceStatus()))
    assert not [line for line in fine if line.color == AMBER_TEXT]


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("", "____ ____ ____ ____"),
        ("3171", "3171 ____ ____ ____"),
        ("317101500890", "3171 •••• •••• ____"),
        ("3171015008900001", "3171 •••• •••• 0001"),
    ],
)
def test_nik_prompt_shows_the_entry_mask_and_the_digits_left(typed: str, shown: str) -> None:
    view = nik_prompt_view(mask_nik(typed))
    assert view.body[0].text == shown


@pytest.mark.parametrize(
    ("mode", "clock", "degraded"),
    [
        ("fresh", "synchronised", False),
        ("dev", "synchronised", False),
        ("stale", "synchronised", True),
        ("expired", "synchronised", True),
        ("fresh", "held", True),
        ("fresh", "unsynchronised", True),
    ],
)
def test_status_from_verifier_health(mode: str, clock: str, degraded: bool) -> None:
    assert status_from_health(_Health(mode, clock)).degraded is degraded


def test_unknown_screen_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown screen"):
        view_for("party", None)
