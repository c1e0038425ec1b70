"""The running gate picks up a newly installed trust bundle without a restart.

:class:`TrustWatcher` owns one daemon thread, ``kiosk-trust-watch``.  Every
``interval_s`` seconds it stats the installed bundle file (``st_mtime_ns``,
``st_size``, ``st_ino``: ``kiosk trust install`` replaces the file by rename,
so a new install always changes the inode).  When that state changed, it
loads the file through the start-up code path (a ``load`` callable, in the
device :func:`kiosk.verify.factory.load_material`) and on success swaps the
new material into the verifier (:meth:`Verifier.update`, one reference
assignment: a scan sees the old material or the new one).

A file that fails (forged, below the rollback floor, malformed, deleted) never
replaces good material with "none": the current material stays, and the
failure is logged once per distinct file state (the next poll sees the same
state and does nothing).  A bundle older than the material in use is refused
too, even when the floor file could not be written.

The first poll after start always loads the file once, so a bundle installed
between the start-up load and the thread's first stat is not missed.
:func:`reload_on_sighup` makes ``SIGHUP`` (``systemctl kill -s HUP kiosk``) ask for an
immediate, forced reload; the handler only sets an Event.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from kiosk.closing import Closing
from kiosk.errors import KioskError
from kiosk.verify.hc1 import Verifier
from kiosk.verify.material import TrustMaterial

__all__ = ["THREAD_NAME", "FileState", "TrustWatcher", "file_state", "reload_on_sighup"]

_log = logging.getLogger(__name__)

THREAD_NAME = "kiosk-trust-watch"
#: ``(st_mtime_ns, st_size, st_ino)`` of the bundle file, or None when it cannot be stat'ed.
FileState = tuple[int, int, int] | None
# Not a FileState: "never looked", so the first poll always loads once.
_UNSEEN = object()
# close() waits this long for the thread; a load in progress finishes on its own.
_JOIN_TIMEOUT_S = 2.0


def file_state(path: Path) -> FileState:
    """The identity of the file at ``path`` as the watcher compares it; None if missing.

    Any ``OSError`` (missing file, no permission) is None: the load that
    follows reports the precise reason.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _describe(material: TrustMaterial) -> str:
    if material.missing:
        return "no usable bundle"
    return "dev folder" if material.version is None else f"v{material.version}"


class TrustWatcher(Closing):
    """Reloads the trust material of ``verifier`` when the bundle file at ``path`` changes.

    Args:
        verifier: the running verifier; only :meth:`Verifier.update` is called.
        path: the installed bundle file to watch.
        load: returns fresh material from ``path`` (the start-up code path);
            ``TrustMaterial.missing`` means the file was refused.  A
            :class:`KioskError` it raises (e.g. a ``policy.mode`` the new
            bundle does not define) also keeps the current material.
        interval_s: seconds between polls; 0 (or less) starts no thread, and
            the watcher then only reloads when :meth:`check` is called.

    The thread stops on :meth:`close` (Event, join with a timeout); ``close``
    is idempotent.
    """

    def __init__(self, verifier: Verifier, path: Path, load: Callable[[], TrustMaterial], *,
                 interval_s: float) -> None:
        self._thread: threading.Thread | None = None
        self._verifier = verifier
        self._path = path
        self._load = load
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._force = False
        # check() may run on the watcher thread and on a caller's thread (tests, CLI).
        self._lock = threading.Lock()
        self._seen: FileState | object = _UNSEEN
        if interval_s > 0:
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()

    @property
    def thread(self) -> threading.Thread | None:
        """The polling thread, or None when ``interval_s`` is 0."""
        return self._thread

    def request_reload(self) -> None:
        """Ask the thread for an immediate reload, even if the file looks unchanged.

        Safe from a signal handler: it only sets a flag and an Event.  Without
        a thread (``interval_s`` 0) it does nothing.
        """
        self._force = True
        self._wake.set()

    def check(self, *, force: bool = False) -> bool:
        """Poll once: reload when the file changed (or ``force``); True when material was swapped.

        Never raises for a bad file: the current material stays and the
        failure is logged (once per distinct file state, unless forced).
        """
        with self._lock:
            state = file_state(self._path)
            if not force and state == self._seen:
                return False
            first = self._seen is _UNSEEN
            self._seen = state
            current = self._verifier.material
            try:
                material = self._load()
            except KioskError as exc:
                _log.error("trust bundle %s not applied (%s); keeping %s", self._path, exc,
                           _describe(current))
                return False
            if material.missing:
                # load() already logged why; a bad file must never wipe good material.
                _log.error("trust bundle %s not usable; keeping %s", self._path,
                           _describe(current))
                return False
            if (not current.missing and current.version is not None
                    and material.version is not None and material.version < current.version):
                _log.error("trust bundle %s: rollback refused (v%d is older than v%d in use)",
                           self._path, material.version, current.version)
                return False
            self._verifier.update(material)
            if first and not current.missing and material.version == current.version:
                _log.debug("trust bundle %s unchanged since start (%s)", self._path,
                           _describe(material))
            else:
                _log.info("trust bundle %s reloaded without restart (was %s)",
                          _describe(material), _describe(current))
            return True

    def close(self) -> None:
        """Stop the thread (waits at most 2 s for a load in progress). Idempotent."""
        stop = getattr(self, "_stop", None)  # safe after a failed __init__
        if stop is None:
            return
        stop.set()
        self._wake.set()
        thread = getattr(self, "_thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=_JOIN_TIMEOUT_S)
            if thread.is_alive():
                _log.warning("%s did not stop within %.1f s", THREAD_NAME, _JOIN_TIMEOUT_S)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval_s)
            if self._stop.is_set():
                break
            self._wake.clear()
            force, self._force = self._force, False
            try:
                self.check(force=force)
            except Exception:  # the loop boundary: a reload bug must not end the watcher
                _log.exception("trust bundle reload failed; keeping the current material")


@contextlib.contextmanager
def reload_on_sighup(watcher: TrustWatcher) -> Iterator[bool]:
    """While inside, SIGHUP asks ``watcher`` for an immediate reload; yields True if wired.

    Python runs signal handlers on the main thread only and lets only the
    main thread install them, so elsewhere (or without SIGHUP on the
    platform) nothing is installed and False is yielded.  The previous
    handler is restored on exit.
    """
    hup = getattr(signal, "SIGHUP", None)
    if hup is None or threading.current_thread() is not threading.main_thread():
        yield False
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        watcher.request_reload()

    previous = signal.signal(hup, handler)
    try:
        yield True
    finally:
        signal.signal(hup, previous if previous is not None else signal.SIG_DFL)
