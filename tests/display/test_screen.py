"""The pygame window with SDL's dummy driver: PNG artifacts, events, lifecycle."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pygame
import pytest

from kiosk.config.schema import DisplayConfig
from kiosk.decision import CertType, Decision, Reason, mask_name
from kiosk.display import DisplayError, NullScreen, Screen, open_screen
from kiosk.display.render import BANNER_FRAC
from kiosk.errors import KioskError
from tests.display.conftest import SIZES
from tests.display.pixels import is_green, is_neutral, is_red

ALLOWED = Decision(
    allowed=True,
    reason=Reason.OK,
    cert_type=CertType.RECOVERY,
    holder_masked=mask_name("Siti Nurhaliza"),
)
SHOTS = [
    ("denied_expired", Reason.EXPIRED),
    ("denied_signature", Reason.SIGNATURE_INVALID),
    ("denied_policy", Reason.POLICY_NOT_MET),
    ("denied_nik", Reason.NIK_NOT_LISTED),
    ("denied_internal", Reason.INTERNAL_ERROR),
]


def dummy_cfg(w: int = 800, h: int = 480, **kw: object) -> DisplayConfig:
    base: dict[str, object] = {"driver": "dummy", "width": w, "height": h, "fullscreen": False}
    base.update(kw)
    return DisplayConfig(**base)  # type: ignore[arg-type]


def banner_colour(png: Path) -> tuple[int, int, int]:
    image = pygame.image.load(str(png))
    h = image.get_height()
    # Left edge, half-way down the banner: inside the side margin, never text.
    r, g, b, *_ = image.get_at((2, round(h * BANNER_FRAC / 2)))
    return (r, g, b)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_screens_saved_as_png(size: tuple[int, int], artifacts: Path) -> None:
    w, h = size
    with Screen(dummy_cfg(w, h)) as screen:
        assert os.environ["SDL_VIDEODRIVER"] == "dummy"
        assert pygame.display.get_driver() == "dummy"
        assert screen.size == size
        assert pygame.mouse.get_visible() is False

        screen.show_idle()
        screen.save_png(artifacts / f"{w}x{h}_idle.png")
        assert is_neutral(banner_colour(artifacts / f"{w}x{h}_idle.png"))

        screen.show_decision(ALLOWED)
        screen.save_png(artifacts / f"{w}x{h}_allowed.png")
        assert is_green(banner_colour(artifacts / f"{w}x{h}_allowed.png"))

        for name, reason in SHOTS:
            screen.show_decision(Decision.deny(reason))
            path = artifacts / f"{w}x{h}_{name}.png"
            screen.save_png(path)
            assert pygame.image.load(str(path)).get_size() == size
            assert is_red(banner_colour(path)), name


def test_poll_quit_on_close_and_escape() -> None:
    with Screen(dummy_cfg()) as screen:
        screen.show_idle()
        assert screen.poll_quit() is False
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_a))
        assert screen.poll_quit() is False
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE))
        assert screen.poll_quit() is True
        pygame.event.post(pygame.event.Event(pygame.QUIT))
        assert screen.poll_quit() is True
        # An expose event redraws the current view without complaint.
        pygame.event.post(pygame.event.Event(pygame.VIDEOEXPOSE))
        assert screen.poll_quit() is False


def test_close_is_idempotent_and_later_calls_are_safe(tmp_path: Path) -> None:
    screen = Screen(dummy_cfg())
    screen.close()
    screen.close()
    assert pygame.display.get_init() is False
    screen.show_idle()  # ignored after close
    screen.show_decision(ALLOWED)
    assert screen.poll_quit() is False
    assert screen.size == (0, 0)
    with pytest.raises(DisplayError):
        screen.save_png(tmp_path / "x.png")


def test_fullscreen_uses_the_native_resolution() -> None:
    with Screen(dummy_cfg(fullscreen=True)) as screen:
        w, h = screen.size
        assert w > 0
        assert h > 0
        screen.show_decision(Decision.deny(Reason.REVOKED))


def test_auto_driver_respects_environment() -> None:
    with Screen(dummy_cfg(driver="auto")):
        assert pygame.display.get_driver() == "dummy"


def test_open_screen_disabled_gives_null_screen(tmp_path: Path) -> None:
    screen = open_screen(DisplayConfig(enabled=False, driver="kmsdrm"))
    assert isinstance(screen, NullScreen)
    assert pygame.display.get_init() is False
    screen.show_idle()
    screen.show_decision(ALLOWED)
    assert screen.poll_quit() is False
    screen.save_png(tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
    screen.close()
    screen.close()


def test_open_screen_enabled_gives_screen() -> None:
    screen = open_screen(dummy_cfg())
    try:
        assert isinstance(screen, Screen)
    finally:
        screen.close()


def test_unavailable_driver_raises_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    # No DRM device in the test environment: kmsdrm fails like a Pi at early boot.
    if os.path.exists("/dev/dri/card0"):
        pytest.skip("a DRM device exists here; kmsdrm might really open")
    caplog.set_level(logging.WARNING, logger="kiosk.display.screen")
    with pytest.raises(DisplayError, match="kmsdrm") as info:
        Screen(dummy_cfg(driver="kmsdrm"), init_attempts=2, retry_delay_s=0.01)
    assert isinstance(info.value, KioskError)
    assert "display.enabled = false" in str(info.value)
    assert len([r for r in caplog.records if "attempt" in r.getMessage()]) == 2
    assert pygame.display.get_init() is False


def test_kmsdrm_retries_until_display_is_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate a display that becomes ready on the third try, then open for real.
    real_init = pygame.display.init
    calls = {"n": 0}

    def flaky_init() -> None:
        calls["n"] += 1
        if calls["n"] < 3:
            raise pygame.error("Could not initialize OpenGL / GLES library")
        monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # the real driver for this test
        real_init()

    monkeypatch.setattr(pygame.display, "init", flaky_init)
    with Screen(dummy_cfg(driver="kmsdrm"), retry_delay_s=0.01) as screen:
        assert calls["n"] == 3
        assert screen.size == (800, 480)
