"""The traveller-facing screen: a pygame window (or console framebuffer via kmsdrm).

Use :func:`open_screen`; it returns a :class:`NullScreen` when the display is
disabled, so the scan loop never tests for ``None``. All methods must be called
from the thread that opened the screen (SDL's event pump is not thread-safe).

Drawing itself is in :mod:`kiosk.display.render`; this module only owns the
window: driver selection, start-up retries, flipping and events.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pygame

from kiosk.closing import Closing
from kiosk.config.schema import DisplayConfig
from kiosk.decision import Decision
from kiosk.display.render import FontCache, View, decision_view, draw_view, idle_view
from kiosk.errors import DisplayError

log = logging.getLogger(__name__)

# On the Pi console the DRM device may not be ready when the service starts at
# boot; a few seconds of retries avoid a restart loop.
KMSDRM_INIT_ATTEMPTS = 5
KMSDRM_RETRY_DELAY_S = 1.0


class Screen(Closing):
    """A pygame window showing the idle screen or the last decision.

    Args:
        cfg: driver, size and full-screen choice. ``driver`` other than
            ``"auto"`` is exported as ``SDL_VIDEODRIVER`` before SDL starts
            (with ``"auto"`` an existing ``SDL_VIDEODRIVER`` is respected).
            In full screen the panel's native resolution is used and
            ``width``/``height`` only apply to windowed mode.
        init_attempts: how many times to try opening the display; default
            :data:`KMSDRM_INIT_ATTEMPTS` for ``kmsdrm``, else 1.
        retry_delay_s: pause between attempts, in seconds.

    Raises:
        DisplayError: every attempt failed; the message names the driver and
            SDL's reason. Nothing is left initialised.
    """

    def __init__(
        self,
        cfg: DisplayConfig,
        *,
        init_attempts: int | None = None,
        retry_delay_s: float = KMSDRM_RETRY_DELAY_S,
    ) -> None:
        self._closed = False
        self._surface: pygame.Surface | None = None
        self._fonts: FontCache | None = None
        self._view: View | None = None
        if cfg.driver != "auto":
            os.environ["SDL_VIDEODRIVER"] = cfg.driver
        attempts = init_attempts or (KMSDRM_INIT_ATTEMPTS if cfg.driver == "kmsdrm" else 1)
        last_error: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                self._open(cfg)
                break
            except pygame.error as exc:
                last_error = exc
                pygame.display.quit()  # start the next attempt from scratch
                log.warning(
                    "display: attempt %d/%d with driver %s failed: %s",
                    attempt,
                    attempts,
                    cfg.driver,
                    exc,
                )
                if attempt < attempts:
                    time.sleep(retry_delay_s)
        else:
            self.close()
            raise DisplayError(
                f"cannot open the display (display.driver = {cfg.driver!r}, "
                f"SDL_VIDEODRIVER = {os.environ.get('SDL_VIDEODRIVER', '<unset>')!r}) after "
                f"{attempts} attempt(s): {last_error}; set display.enabled = false to run "
                "without a screen, or display.driver = 'dummy' for headless tests"
            ) from last_error

    def _open(self, cfg: DisplayConfig) -> None:
        pygame.display.init()
        if cfg.fullscreen:
            # (0, 0): the desktop/panel resolution; avoids a mode switch on kmsdrm.
            surface = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
        else:
            surface = pygame.display.set_mode((cfg.width, cfg.height))
        pygame.display.set_caption("kiosk")
        pygame.mouse.set_visible(False)
        self._fonts = FontCache()
        self._surface = surface
        log.info(
            "display: %s driver, %dx%d%s",
            pygame.display.get_driver(),
            *surface.get_size(),
            " full screen" if cfg.fullscreen else "",
        )

    @property
    def size(self) -> tuple[int, int]:
        """The drawing surface size in pixels, (0, 0) once closed."""
        return self._surface.get_size() if self._surface is not None else (0, 0)

    def show_idle(self) -> None:
        """Show the waiting screen. Raises :class:`DisplayError` if SDL fails."""
        self._show(idle_view())

    def show_decision(self, decision: Decision) -> None:
        """Show the result of one scan (allowed: green, denied: red with the reason).

        Raises:
            DisplayError: SDL failed to draw or flip.
        """
        self._show(decision_view(decision))

    def show_view(self, view: View) -> None:
        """Show any view (emergency, fault, NIK prompt ...; see :mod:`kiosk.display.views`).

        Raises:
            DisplayError: SDL failed to draw or flip.
        """
        self._show(view)

    def _show(self, view: View) -> None:
        if self._surface is None:
            log.debug("display: show after close ignored")
            return
        self._view = view
        try:
            draw_view(self._surface, view, self._fonts)
            pygame.display.flip()
        except pygame.error as exc:
            raise DisplayError(f"cannot draw the {view.kind} screen: {exc}") from exc

    def poll_quit(self) -> bool:
        """Handle pending window events; True if the window was closed or Escape pressed.

        Call it regularly (each loop turn): SDL needs its events pumped or the
        window is reported as not responding. Redraws after an expose event.
        """
        if self._surface is None:
            return False
        quit_requested = False
        redraw = False
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (
                event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE
            ):
                quit_requested = True
            elif event.type in (pygame.VIDEOEXPOSE, pygame.WINDOWEXPOSED):
                redraw = True
        if redraw and self._view is not None:
            self._show(self._view)
        return quit_requested

    def save_png(self, path: Path) -> None:
        """Write what is on screen to ``path`` (PNG), creating parent folders.

        Raises:
            DisplayError: the screen is closed or the file cannot be written.
        """
        if self._surface is None:
            raise DisplayError("cannot save a screenshot: the screen is closed")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            pygame.image.save(self._surface, str(path))
        except pygame.error as exc:
            raise DisplayError(f"cannot save screenshot to {path}: {exc}") from exc

    def close(self) -> None:
        """Close the window and shut SDL's video down. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._surface = None
        self._fonts = None
        self._view = None
        pygame.display.quit()
        log.info("display closed")



class NullScreen(Closing):
    """The screen when ``display.enabled`` is false: every method does nothing."""

    def show_idle(self) -> None:
        """Do nothing."""

    def show_decision(self, decision: Decision) -> None:
        """Do nothing."""

    def show_view(self, view: View) -> None:
        """Do nothing."""

    def poll_quit(self) -> bool:
        """Never asks to quit."""
        return False

    def save_png(self, path: Path) -> None:
        """Do nothing (there is no picture)."""

    def close(self) -> None:
        """Do nothing."""



def open_screen(cfg: DisplayConfig) -> Screen | NullScreen:
    """The screen described by ``cfg``: a :class:`NullScreen` when disabled.

    Raises:
        DisplayError: the display is enabled but cannot be opened.
    """
    if not cfg.enabled:
        log.info("display disabled")
        return NullScreen()
    return Screen(cfg)
