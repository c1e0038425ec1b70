"""Pure rendering onto off-screen surfaces: colours, sizes, and that all text fits."""

from __future__ import annotations

import pygame
import pytest

from kiosk.decision import CertType, Decision, InputKind, Reason, mask_name
from kiosk.display.render import (
    BANNER_FRAC,
    BODY_BG,
    TITLE_MIN_FRAC,
    DrawnLine,
    FontCache,
    View,
    decision_view,
    draw_view,
    idle_view,
)
from tests.display.conftest import SIZES
from tests.display.pixels import Frame, is_green, is_neutral, is_red

ALLOWED = Decision(
    allowed=True,
    reason=Reason.OK,
    cert_type=CertType.VACCINATION,
    holder_masked=mask_name("Budi Santoso Wijayakusuma"),
)
DENIED = [r for r in Reason if r is not Reason.OK]

# Extra shapes the schema allows: smallest, 4:3, and a portrait panel.
ODD_SIZES = [(320, 240), (1024, 768), (480, 800), (3840, 2160)]


def all_views() -> list[tuple[str, View]]:
    views = [
        ("idle", idle_view()),
        ("allowed", decision_view(ALLOWED)),
        ("allowed_nik", decision_view(Decision(True, Reason.OK, input=InputKind.NIK))),
        ("allowed_test_noname", decision_view(Decision(True, Reason.OK, cert_type=CertType.TEST))),
    ]
    views += [(r.value, decision_view(Decision.deny(r))) for r in DENIED]
    return views


def check_layout(surface: pygame.Surface, view: View, drawn: list[DrawnLine]) -> None:
    """Every line inside the surface and its region, no overlaps, text visibly drawn."""
    w, h = surface.get_size()
    banner = pygame.Rect(0, 0, w, round(h * BANNER_FRAC))
    body = pygame.Rect(0, banner.bottom, w, h - banner.bottom)
    assert drawn
    frame = Frame(surface)
    for i, line in enumerate(drawn):
        region = banner if line.region == "banner" else body
        assert surface.get_rect().contains(line.rect), (line.text, line.rect)
        assert region.contains(line.rect), (line.text, line.rect, line.region)
        for other in drawn[i + 1 :]:
            assert not line.rect.colliderect(other.rect), (line.text, other.text)
        bg = view.banner_color if line.region == "banner" else BODY_BG
        # Both the background and the solid text colour occur inside the text box.
        assert frame.share_of(line.rect, bg) > 0.2, line.text
        assert frame.share_of(line.rect, line.color) > 0.03, line.text


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(
    ("name", "view"), all_views(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_views_fit_and_are_large(size: tuple[int, int], name: str, view: View) -> None:
    surface = pygame.Surface(size)
    drawn = draw_view(surface, view)
    check_layout(surface, view, drawn)
    title = drawn[0]
    assert title.region == "banner"
    # Readable at 1.5 m: the first title line is at least 12 % of the height.
    assert title.line_height >= TITLE_MIN_FRAC * size[1] - 1, (name, title)


@pytest.mark.parametrize("size", ODD_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_view_fits_other_screen_shapes(size: tuple[int, int]) -> None:
    surface = pygame.Surface(size)
    fonts = FontCache()
    for _, view in all_views():
        check_layout(surface, view, draw_view(surface, view, fonts))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_banner_colours(size: tuple[int, int]) -> None:
    surface = pygame.Surface(size)
    banner = pygame.Rect(0, 0, size[0], round(size[1] * BANNER_FRAC))
    corner = (3, 3)  # inside the banner margin, never covered by text
    cases = [
        (idle_view(), is_neutral),
        (decision_view(ALLOWED), is_green),
        (decision_view(Decision.deny(Reason.EXPIRED)), is_red),
    ]
    for view, check in cases:
        draw_view(surface, view)
        r, g, b, _ = surface.get_at(corner)
        colour = (r, g, b)
        assert check(colour), (view.kind, colour)
        assert Frame(surface).share_of(banner, view.banner_color) > 0.5


def test_allowed_shows_masked_name_and_type_in_both_languages() -> None:
    surface = pygame.Surface((800, 480))
    texts = [line.text for line in draw_view(surface, decision_view(ALLOWED))]
    assert texts[:2] == ["SILAKAN MASUK", "PLEASE ENTER"]
    assert "B*** S****** W***********" in texts
    assert "Sertifikat vaksinasi" in texts
    assert "Vaccination certificate" in texts


def test_denied_shows_reason_and_hint_in_both_languages() -> None:
    surface = pygame.Surface((1920, 1080))
    drawn = draw_view(surface, decision_view(Decision.deny(Reason.EXPIRED)))
    banner = " ".join(line.text for line in drawn if line.region == "banner")
    body = " ".join(line.text for line in drawn if line.region == "body")
    assert "SERTIFIKAT KEDALUWARSA" in banner
    assert "CERTIFICATE EXPIRED" in banner
    assert "Tunjukkan sertifikat yang masih berlaku" in body
    assert "Show a certificate that is still valid" in body


def test_long_name_shrinks_to_fit_the_width() -> None:
    name = mask_name("Raden Mas Gusti Bendara Pangeran Harya Purbaya Kusumawardhana Putra")
    surface = pygame.Surface((800, 480))
    view = decision_view(Decision(True, Reason.OK, holder_masked=name))
    drawn = draw_view(surface, view)
    check_layout(surface, view, drawn)
    line = next(d for d in drawn if d.text == name)
    assert line.rect.width <= 800


def test_waiting_for_staff_is_not_shown_as_a_refusal() -> None:
    from kiosk.decision import Decision, InputKind, Reason
    from kiosk.display.render import NEUTRAL, RED, decision_view

    view = decision_view(Decision.deny(Reason.NIK_STAFF_CHECK, input=InputKind.NIK))
    assert view.kind == "waiting" and view.banner_color == NEUTRAL != RED
    assert "PETUGAS" in view.banner[0].text
