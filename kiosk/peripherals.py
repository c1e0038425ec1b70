"""A missing or unplugged peripheral degrades its one function, is reported, and is retried.

The camera, the KTP keypad or reader and the screen are each wrapped so the
gate never stops because one of them is absent at start or vanishes while it
runs:

- :class:`RetryingFrameSource`: no camera → every read waits the frame timeout
  and reports "no frame" (the scan loop shows "scanner out of order", KTP
  entry and the gate's inputs keep working); the camera is opened again every
  ``retry_s``. A camera that stalls (frames whose capture time stops
  advancing) is restarted in place, or closed and opened again.
- :class:`RetryingKeySource`: no reader → no keys (QR scanning unaffected);
  re-opened every ``retry_s``; a read error (unplugged) closes it and retries.
- :class:`RetryingScreen`: no display → nothing drawn (relay, LEDs and buzzer
  still tell the traveller); re-opened every ``retry_s``.

Every change goes to one :class:`FaultBoard`: a log line, a ``fault.<part>``
event (counted, sent on ``<root>/events``), the retained status's
``last_error`` while a fault lasts, and a callback (the watchdog heartbeat is
told the camera is absent, so it keeps the gate alive without one). All of it
runs on the scan loop's thread, which owns these parts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from kiosk.camera import Frame, FrameSource
from kiosk.camera.stall import StallWatch
from kiosk.config.schema import DisplayConfig
from kiosk.display import NullScreen, Screen, open_screen
from kiosk.display.render import View
from kiosk.errors import CameraError, CameraTimeout, ConfigError, KioskError
from kiosk.nik.devices import KeySource

log = logging.getLogger(__name__)

# How often an absent peripheral is looked for again (seconds).
DEFAULT_RETRY_S = 5.0
# Pause between two reads that returned the same old frame (seconds).
STALE_PACE_S = 0.02
# Errors that mean "the device is not there or stopped working" (never a bug: those propagate).
DEVICE_ERRORS = (OSError, KioskError, ImportError)


class FaultBoard:
    """Which peripherals are faulty now, and the one place that reports changes.

    Args:
        record_event: counts ``fault.<part>`` (the count store's ``record_event``
            bound to the wall clock); None to skip counting.
        on_change: ``(part, faulty)`` on every change (e.g. the heartbeat).
    """

    def __init__(
        self,
        record_event: Callable[[str], object] | None = None,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self._record = record_event
        self._on_change = on_change
        self._lock = threading.Lock()  # status() is read on the publisher's thread
        self._faults: dict[str, str] = {}

    def fault(self, part: str, reason: str) -> None:
        """``part`` is unavailable for ``reason`` (short, no payload); reported once per outage."""
        with self._lock:
            new = part not in self._faults
            self._faults[part] = reason[:120]
        if not new:
            return
        log.error("%s unavailable: %s; the gate goes on without it and retries", part, reason[:120])
        if self._record is not None:
            try:
                self._record(f"fault.{part}")
            except Exception:  # reporting a fault must not become one
                log.exception("could not count the %s fault", part)
        if self._on_change is not None:
            self._on_change(part, True)

    def recovered(self, part: str) -> None:
        """``part`` works again."""
        with self._lock:
            was = self._faults.pop(part, None)
        if was is None:
            return
        log.warning("%s is back", part)
        if self._on_change is not None:
            self._on_change(part, False)

    @property
    def faults(self) -> dict[str, str]:
        """A copy of the current faults, part → reason."""
        with self._lock:
            return dict(self._faults)

    def status(self) -> dict[str, Any]:
        """A status source: ``last_error`` names the faulty parts (nothing when none is)."""
        faults = self.faults
        if not faults:
            return {}
        return {"last_error": "; ".join(f"{p}: {r}" for p, r in sorted(faults.items()))[:200]}


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:80]}"


class _Retry:
    """When to look for a device again."""

    def __init__(self, retry_s: float, monotonic: Callable[[], float]) -> None:
        self.retry_s = retry_s
        self._monotonic = monotonic
        self._next = float("-inf")

    def due(self) -> bool:
        now = self._monotonic()
        if now < self._next:
            return False
        self._next = now + self.retry_s
        return True


class RetryingKeySource:
    """A KTP keypad or reader that may be absent or unplugged (see the module doc)."""

    def __init__(
        self,
        opener: Callable[[], KeySource | None],
        board: FaultBoard,
        *,
        part: str = "ktp_reader",
        retry_s: float = DEFAULT_RETRY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._opener = opener
        self._board = board
        self.part = part
        self._retry = _Retry(retry_s, monotonic)
        self._keys: KeySource | None = None
        self._open()

    def _open(self) -> None:
        if not self._retry.due():
            return
        try:
            self._keys = self._opener()
        except ConfigError:
            raise  # a wrong setting is not a missing device: refuse to start
        except DEVICE_ERRORS as exc:
            self._board.fault(self.part, _reason(exc))
            return
        self._board.recovered(self.part)

    def read_key(self, timeout_s: float) -> str | None:
        """The next key, or None (also while the device is missing)."""
        if self._keys is None:
            self._open()
            if self._keys is None:
                return None
        try:
            return self._keys.read_key(timeout_s)
        except DEVICE_ERRORS as exc:  # unplugged mid-run
            self._drop()
            self._board.fault(self.part, _reason(exc))
            return None

    def _drop(self) -> None:
        keys, self._keys = self._keys, None
        if keys is not None:
            try:
                keys.close()
            except DEVICE_ERRORS:
                log.debug("closing the failed %s", self.part, exc_info=True)

    def close(self) -> None:
        """Close the device if open; idempotent."""
        self._drop()


class RetryingFrameSource(FrameSource):
    """The camera, absent, failing or stalled, as a source of "no frame" (see the module doc).

    ``timeout_s`` is how long a read waits when there is no camera (the
    configured frame timeout), so the loop keeps its usual pace.

    Stalls (:mod:`kiosk.camera.stall`): a frame whose capture time does not
    advance is stale and is not delivered; the read tries again (paced by
    ``STALE_PACE_S``) for at most ``timeout_s``, then reports "no frame" like a
    silent camera. Once no fresh frame has come for ``stall_after_s`` (0: no
    detection), the stall is reported (``fault.camera``, ``last_error``) and
    remedied: the source is restarted in place when it can be (``restart()``:
    the Pi camera's stop/start, which does not leak like re-creating it), else,
    or when the previous in-place restart brought no fresh frame, it is closed
    and opened again at the next retry. The first fresh frame clears the fault.
    Counters: ``stalls``, ``restarts`` (in place), ``reopens``.

    Re-creating a source is bounded: a Picamera2 object leaks what it holds
    when it is made again, so after ``max_reopens`` re-creations (openings
    after the first successful one) no further one is made: the fault says so
    and ``on_exhausted`` is called once, for the service to exit and systemd
    to start it clean. Openings that fail (no camera at all) are not counted:
    a missing camera degrades the camera function and never restarts the gate.
    """

    def __init__(
        self,
        opener: Callable[[], FrameSource],
        board: FaultBoard,
        *,
        timeout_s: float,
        retry_s: float = DEFAULT_RETRY_S,
        stall_after_s: float = 0.0,
        max_reopens: int | None = None,
        on_exhausted: Callable[[], None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        self._source: FrameSource | None = None
        self._created = 0  # sources opened successfully, the first included
        self._max_reopens = max_reopens
        self._on_exhausted = on_exhausted
        self._exhausted = False
        self._opener = opener
        self._board = board
        self._timeout_s = timeout_s
        self._retry = _Retry(retry_s, monotonic)
        self._monotonic = monotonic
        self._closed = threading.Event()
        self._wait = wait if wait is not None else self._closed.wait
        self._watch = StallWatch(stall_after_s)
        self._stalled = False  # a reported stall not yet cleared by a fresh frame
        self._restarted = False  # the last remedy was an in-place restart
        self.stalls = self.restarts = self.reopens = 0
        self._open()

    @property
    def stale_frames(self) -> int:
        """Frames read whose capture time did not advance (not delivered)."""
        return self._watch.stale_frames

    def _open(self) -> None:
        if self._exhausted or not self._retry.due():
            return
        if self._max_reopens is not None and self._created > self._max_reopens:
            self._exhausted = True
            log.error("camera re-created %d times; the service restarts clean", self._max_reopens)
            self._board.fault(
                "camera", f"re-created {self._max_reopens} times; restarting the service"
            )
            self._on_exhausted()
            return
        try:
            source = self._opener()
            source.__enter__()
        except ConfigError:
            raise
        except DEVICE_ERRORS as exc:
            self._board.fault("camera", _reason(exc))
            return
        self._created += 1
        self._source = source
        self._watch.reset(self._monotonic())
        self._board.recovered("camera")

    def read(self) -> Frame | None:
        """A fresh frame; CameraTimeout while the camera is absent, failed or stalled.

        None at a file's end.
        """
        if self._source is None:
            self._open()
        source = self._source
        if source is None:
            self._closed.wait(self._timeout_s)  # pace the loop as a silent camera would
            raise CameraTimeout("no camera (absent or failed); retrying")
        deadline = self._monotonic() + self._timeout_s
        while True:
            try:
                frame = source.read()
            except CameraTimeout:
                raise
            except (CameraError, OSError) as exc:
                self._drop()
                self._board.fault("camera", _reason(exc))
                raise CameraTimeout("the camera failed; retrying") from exc
            if frame is None:
                return None
            now = self._monotonic()
            if self._watch.fresh(frame, now):
                self._restarted = False
                if self._stalled:
                    self._stalled = False
                    self._board.recovered("camera")
                self.frames_read += 1
                return frame
            if self._watch.stalled(now):
                stale_s = self._watch.stale_for(now)
                self._remedy_stall(source, stale_s, now)
                raise CameraTimeout(f"the camera stalled ({stale_s:.1f} s without a new frame)")
            if now >= deadline or self._closed.is_set():
                raise CameraTimeout("the camera repeats an old frame")
            self._wait(STALE_PACE_S)  # a stale frame returned at once must not spin the loop

    def _remedy_stall(self, source: FrameSource, stale_s: float, now: float) -> None:
        """Report a stall and restart the camera in place, or close it for a reopen."""
        self.stalls += 1
        self._stalled = True
        self._board.fault("camera", f"stalled: no new frame for {stale_s:.1f} s; restarting")
        restart = getattr(source, "restart", None)
        if callable(restart) and not self._restarted:
            try:
                restart()
            except DEVICE_ERRORS as exc:
                log.warning("camera restart failed (%s); it is opened again", _reason(exc))
            else:
                self.restarts += 1
                self._restarted = True
                self._watch.reset(now)
                return
        # No in-place restart, or the last one did not help: a new source at the next retry.
        self._restarted = False
        self.reopens += 1
        self._drop()
        self._watch.reset(now)

    def _drop(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            try:
                source.close()
            except DEVICE_ERRORS:
                log.debug("closing the failed camera", exc_info=True)

    def close(self) -> None:
        """Close the camera; idempotent, safe after a failed constructor."""
        closed = getattr(self, "_closed", None)
        if closed is not None:
            closed.set()
        if getattr(self, "_source", None) is not None:
            self._drop()


class RetryingScreen(NullScreen):
    """The screen, absent or failing: nothing drawn meanwhile (see the module doc).

    A :class:`NullScreen` to the loop's type checks; each view goes to the
    real screen whenever it is open.
    """

    def __init__(
        self,
        opener: Callable[[], Screen | NullScreen],
        board: FaultBoard,
        *,
        retry_s: float = DEFAULT_RETRY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._screen: Screen | NullScreen | None = None
        self._opener = opener
        self._board = board
        self._retry = _Retry(retry_s, monotonic)
        self._last: View | None = None
        self._open()

    def _open(self) -> None:
        if not self._retry.due():
            return
        try:
            self._screen = self._opener()
        except ConfigError:
            raise
        except DEVICE_ERRORS as exc:
            self._board.fault("screen", _reason(exc))
            return
        self._board.recovered("screen")
        if self._last is not None:
            self.show_view(self._last)  # what the traveller should be seeing now

    @property
    def size(self) -> tuple[int, int]:
        """The real screen's size, (0, 0) while there is none."""
        return getattr(self._screen, "size", (0, 0))

    def show_view(self, view: View) -> None:
        """Draw ``view`` when the screen is there; remember it for when it returns."""
        self._last = view
        if self._screen is None:
            self._open()
            return
        try:
            self._screen.show_view(view)
        except DEVICE_ERRORS as exc:
            self._drop()
            self._board.fault("screen", _reason(exc))

    def poll_quit(self) -> bool:
        """The window's close button (never while there is no screen)."""
        if self._screen is None:
            return False
        try:
            return self._screen.poll_quit()
        except DEVICE_ERRORS as exc:
            self._drop()
            self._board.fault("screen", _reason(exc))
            return False

    def save_png(self, path: Path) -> None:
        """A screenshot of the real screen (the simulator's); nothing while there is none."""
        if self._screen is not None:
            self._screen.save_png(path)

    def _drop(self) -> None:
        screen, self._screen = self._screen, None
        if screen is not None:
            try:
                screen.close()
            except DEVICE_ERRORS:
                log.debug("closing the failed screen", exc_info=True)

    def close(self) -> None:
        """Close the screen; idempotent."""
        if getattr(self, "_screen", None) is not None:
            self._drop()


def display_opener(cfg: DisplayConfig) -> Callable[[], Screen | NullScreen]:
    """Opens the display: with its start-up retries the first time, one quick try later.

    A KMS display may need a moment at boot (several attempts with a pause);
    a later retry runs on the scan loop's thread and must not stall it.
    """
    first = [True]

    def opener() -> Screen | NullScreen:
        if first[0] or not cfg.enabled:
            first[0] = False
            return open_screen(cfg)
        return Screen(cfg, init_attempts=1)

    return opener


def count_event(store: Any, wall_clock: Callable[[], datetime]) -> Callable[[str], object]:
    """``record_event`` of a count store at the wall clock's now (for :class:`FaultBoard`)."""
    return lambda name: store.record_event(name, wall_clock())


__all__ = [
    "DEFAULT_RETRY_S",
    "FaultBoard",
    "RetryingFrameSource",
    "RetryingKeySource",
    "RetryingScreen",
    "count_event",
    "display_opener",
]
