"""Pure drawing: what a view looks like on any ``pygame.Surface``.

Nothing here opens a window; tests render onto plain surfaces. A :class:`View`
says *what* to show (banner colour and text blocks); :func:`draw_view` decides
*how big*: font heights are fractions of the surface height (so the same view
reads from 1.5 m at 800×480 and at 1920×1080), and every text block shrinks,
then wraps onto a second line, until it fits the width.

Fonts: pygame's built-in default font (``freesansbold.ttf``, shipped in the
pygame wheel), so nothing extra is installed; it covers Latin script, which is
all Bahasa Indonesia and English need.
"""

from __future__ import annotations

from dataclasses import dataclass

import pygame

from kiosk.decision import Decision, Reason
from kiosk.display.messages import IDLE, Message, credential_label, message_for

Color = tuple[int, int, int]

GREEN: Color = (0, 122, 51)
RED: Color = (190, 20, 30)
NEUTRAL: Color = (28, 58, 102)  # calm blue: the gate is waiting, not judging
BODY_BG: Color = (16, 16, 20)
TEXT: Color = (255, 255, 255)
TEXT_DIM: Color = (200, 200, 205)

BANNER_FRAC = 0.52  # share of the height taken by the coloured banner
MARGIN_FRAC = 0.04  # side margin, share of the width
TITLE_FRAC = 0.16  # nominal title line height, share of the surface height
TITLE_MIN_FRAC = 0.12  # a title never shrinks below this (readable at 1.5 m)
_SHRINK = 0.93  # each fitting step shrinks the font by 7 %


@dataclass(frozen=True)
class TextBlock:
    """One paragraph of text.

    Attributes:
        text: what to show.
        height_frac: nominal line height as a share of the surface height.
        min_frac: a one-line text shrinks down to this before it is wrapped
            onto two lines instead (shares of the surface height).
        color: foreground colour.
        max_lines: 1 or 2; with 1, text only shrinks until it fits.
    """

    text: str
    height_frac: float
    min_frac: float
    color: Color = TEXT
    max_lines: int = 2


@dataclass(frozen=True)
class View:
    """A full screen: ``kind`` is ``"idle"``, ``"allowed"``, ``"denied"``, ``"waiting"``…"""

    kind: str
    banner_color: Color
    banner: tuple[TextBlock, ...]
    body: tuple[TextBlock, ...]


@dataclass(frozen=True)
class DrawnLine:
    """Where one line of text landed (for tests and debugging)."""

    text: str
    rect: pygame.Rect
    color: Color
    region: str  # "banner" or "body"
    line_height: int  # font height in pixels


def _titles(msg: Message) -> tuple[TextBlock, ...]:
    return (
        TextBlock(msg.title_id, TITLE_FRAC, TITLE_MIN_FRAC),
        TextBlock(msg.title_en, 0.09, 0.06, TEXT, 1),
    )


def _hints(msg: Message) -> tuple[TextBlock, ...]:
    return (
        TextBlock(msg.hint_id, 0.085, 0.06),
        TextBlock(msg.hint_en, 0.07, 0.05, TEXT_DIM),
    )


def idle_view() -> View:
    """The waiting screen: neutral banner asking for a scan."""
    return View("idle", NEUTRAL, _titles(IDLE), _hints(IDLE))


def decision_view(decision: Decision) -> View:
    """The result screen for ``decision``.

    Allowed: green banner "SILAKAN MASUK / PLEASE ENTER", then the masked name
    and the credential type in both languages. Denied: red banner with the
    specific reason, then what to do next (for a failed CertLogic rule: the
    rule's description, ``decision.note``). A manual KTP check waiting for staff
    gets the calm idle colour.
    """
    msg = message_for(decision.reason, decision.input)
    if decision.reason is Reason.NIK_STAFF_CHECK:
        # Not a refusal yet: staff are about to look at the KTP. Calm, not red.
        return View("waiting", NEUTRAL, _titles(msg), _hints(msg))
    if not decision.allowed:
        if decision.note is not None:  # a business rule's own words say what was not met
            msg = Message(msg.title_id, msg.title_en, *decision.note)
        return View("denied", RED, _titles(msg), _hints(msg))
    body: list[TextBlock] = []
    if decision.holder_masked:
        body.append(TextBlock(decision.holder_masked, 0.12, 0.07, TEXT, 1))
    label = credential_label(decision.cert_type, decision.input)
    if label is not None:
        body.append(TextBlock(label[0], 0.075, 0.05))
        body.append(TextBlock(label[1], 0.065, 0.045, TEXT_DIM))
    return View("allowed", GREEN, _titles(msg), tuple(body) or _hints(msg))


class FontCache:
    """pygame default-font objects by pixel line height.

    Font objects die with ``pygame.font.quit()``, so a cache belongs to one
    screen (or one draw call), never to the module.
    """

    def __init__(self) -> None:
        if not pygame.font.get_init():
            pygame.font.init()
        self._by_size: dict[int, pygame.font.Font] = {}
        probe = self._font(100)
        self._px_per_size = probe.get_height() / 100  # ≈ 0.69 for freesansbold

    def _font(self, size: int) -> pygame.font.Font:
        font = self._by_size.get(size)
        if font is None:
            font = pygame.font.Font(None, size)
            self._by_size[size] = font
        return font

    def for_height(self, px: float) -> pygame.font.Font:
        """A font whose line height is about ``px`` pixels (at least 6)."""
        return self._font(max(6, round(px / self._px_per_size)))


def _wrap(text: str, font: pygame.font.Font, width: int, max_lines: int) -> list[str] | None:
    """``text`` on at most ``max_lines`` (1 or 2) lines no wider than ``width``, or None."""
    if font.size(text)[0] <= width:
        return [text]
    words = text.split()
    if max_lines < 2 or len(words) < 2:
        return None
    best: list[str] | None = None
    best_w = width + 1
    # Balanced split: the widest of the two lines as narrow as possible.
    for i in range(1, len(words)):
        lines = [" ".join(words[:i]), " ".join(words[i:])]
        w = max(font.size(line)[0] for line in lines)
        if w < best_w:
            best, best_w = lines, w
    return best if best_w <= width else None


def _fit_block(
    block: TextBlock, surface_h: int, width: int, scale: float, fonts: FontCache
) -> tuple[pygame.font.Font, list[str]]:
    """The largest font at which ``block`` fits ``width``, and its lines.

    First one line, shrinking from the nominal height down to the block's
    minimum; then up to ``max_lines`` lines, shrinking from the nominal height
    as far as the width demands (fitting beats size).
    """
    nominal = block.height_frac * surface_h * scale
    min_px = block.min_frac * surface_h * scale
    for max_lines, floor in ((1, min_px), (block.max_lines, 6.0)):
        px = nominal
        while True:
            font = fonts.for_height(px)
            lines = _wrap(block.text, font, width, max_lines)
            if lines is not None:
                return font, lines
            if px <= floor:
                break
            px = max(floor, px * _SHRINK)
    return fonts.for_height(6.0), [block.text]  # cannot fit at all; blit clips it


def _layout(
    blocks: tuple[TextBlock, ...], region: pygame.Rect, surface_h: int, fonts: FontCache
) -> list[tuple[pygame.font.Font, str, TextBlock, int]]:
    """Lines of ``blocks`` with their y position, centred vertically in ``region``."""
    width = region.width - 2 * round(MARGIN_FRAC * region.width)
    scale = 1.0
    for _ in range(12):
        fitted = [_fit_block(b, surface_h, width, scale, fonts) for b in blocks]
        # Advance by the line spacing (not the glyph height): rendered lines
        # can be a pixel or two taller than get_height() says.
        gaps = [round(0.15 * f.get_linesize()) for f, _ in fitted[1:]]
        total = sum(f.get_linesize() * len(lines) for f, lines in fitted) + sum(gaps)
        if total <= region.height * 0.92:
            break
        # Too tall for the region: shrink everything in proportion and refit.
        scale *= max(0.5, region.height * 0.92 / total)
    y = region.top + (region.height - total) // 2
    out: list[tuple[pygame.font.Font, str, TextBlock, int]] = []
    for i, ((font, lines), block) in enumerate(zip(fitted, blocks, strict=True)):
        if i:
            y += gaps[i - 1]
        for line in lines:
            out.append((font, line, block, y))
            y += font.get_linesize()
    return out


def draw_view(
    surface: pygame.Surface, view: View, fonts: FontCache | None = None
) -> list[DrawnLine]:
    """Draw ``view`` over the whole of ``surface``; returns where each line went.

    Args:
        surface: any pygame surface (the display, or an off-screen one).
        view: what to show.
        fonts: a cache to reuse between calls; a fresh one when None.

    Raises:
        pygame.error: the font module cannot initialise (no SDL_ttf).
    """
    fonts = fonts or FontCache()
    w, h = surface.get_size()
    banner = pygame.Rect(0, 0, w, round(h * BANNER_FRAC))
    body = pygame.Rect(0, banner.bottom, w, h - banner.bottom)
    surface.fill(BODY_BG)
    surface.fill(view.banner_color, banner)
    drawn: list[DrawnLine] = []
    for name, region, blocks, bg in (
        ("banner", banner, view.banner, view.banner_color),
        ("body", body, view.body, BODY_BG),
    ):
        for font, line, block, y in _layout(blocks, region, h, fonts):
            # Render onto the background colour: crisp anti-aliasing, no alpha.
            image = font.render(line, True, block.color, bg)
            rect = image.get_rect(midtop=(region.centerx, y))
            surface.blit(image, rect)
            drawn.append(DrawnLine(line, rect, block.color, name, font.get_height()))
    return drawn
