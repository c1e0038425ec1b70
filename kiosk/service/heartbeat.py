"""When the scan loop has earned a watchdog ping (systemd ``WatchdogSec=``).

systemd restarts the gate when ``WATCHDOG=1`` stops for ``WatchdogSec``. Pinging
from a timer thread would prove only that the timer runs, so the scan loop
calls :meth:`Heartbeat.turn` once per turn and the heartbeat pings only while
that turn shows *progress*:

- a fresh frame arrived (``progress=True``), or the loop turned with no camera
  at all (a gate without a camera still serves KTP entry: its owner passes
  ``progress=True`` for a turn that served its inputs);
- or a camera fault is being reported (``fault=True``: the frame source timed
  out) and it is younger than ``fault_grace_s``, the time its bounded recovery
  may take. A fault that outlives it stops the pings: a restart is the
  recovery of last resort.

A loop stuck inside one turn (a hung driver, a deadlock) calls nothing, so
the pings stop and systemd restarts the service within ``WatchdogSec``.

``READY=1`` is sent on the first turn: everything was built (camera, GPIO and
screen opened or reported degraded) and the loop has run once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kiosk.service.notify import Notifier

# How long a camera fault may go on while recovery runs before pings stop (seconds).
DEFAULT_FAULT_GRACE_S = 20.0
# Without $WATCHDOG_USEC (tests, a manual run) ping at most this often (seconds).
DEFAULT_PING_INTERVAL_S = 1.0


class Heartbeat:
    """Turns scan-loop progress into ``READY``/``WATCHDOG``/``STATUS`` notifications.

    Args:
        notifier: where messages go (a no-op :class:`Notifier` off systemd).
        monotonic: clock in seconds (injected for tests and the simulator).
        fault_grace_s: how long a reported fault keeps the pings going.
        ping_interval_s: minimum spacing of pings; default a quarter of
            ``WatchdogSec`` (systemd recommends at least every half), else 1 s.

    Owned by the scan loop's thread; not thread-safe.
    """

    def __init__(
        self,
        notifier: Notifier,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        fault_grace_s: float = DEFAULT_FAULT_GRACE_S,
        ping_interval_s: float | None = None,
    ) -> None:
        self._notifier = notifier
        self._monotonic = monotonic
        self.fault_grace_s = fault_grace_s
        if ping_interval_s is None:
            usec = notifier.watchdog_usec
            ping_interval_s = usec / 4e6 if usec else DEFAULT_PING_INTERVAL_S
        self.ping_interval_s = ping_interval_s
        self._ready = False
        self._last_ping: float | None = None
        self._fault_since: float | None = None
        self._status = ""
        self._camera_absent = False
        self.pings = 0

    @property
    def ready(self) -> bool:
        """True once ``READY=1`` was sent (the first turn)."""
        return self._ready

    def turn(self, progress: bool, fault: bool = False) -> bool:
        """One scan-loop turn; returns True when this turn counts as alive.

        ``progress``: a fresh frame (or, without a camera, served inputs).
        ``fault``: no frame, but the fault is reported and recovery runs.
        A turn with neither (the source returned nothing useful without a
        reported fault) does not count.
        """
        now = self._monotonic()
        if not self._ready:
            self._ready = True
            self._notifier.ready(self._status or None)
        if progress:
            self._fault_since = None
            alive = True
        elif fault:
            if self._fault_since is None:
                self._fault_since = now
            alive = self._camera_absent or now - self._fault_since < self.fault_grace_s
        else:
            alive = False
        if alive and (self._last_ping is None or now - self._last_ping >= self.ping_interval_s):
            self._last_ping = now
            if self._notifier.watchdog():
                self.pings += 1
        return alive

    def camera_absent(self, absent: bool) -> None:
        """Mark the camera as known absent (reported, degraded): faults then stay alive.

        A gate whose camera is missing keeps serving KTP entry; restarting it
        would not bring the camera back, so its turns keep the pings going.
        """
        self._camera_absent = absent

    def status(self, text: str) -> None:
        """Set the ``STATUS=`` line; sent only when it changes."""
        if text != self._status:
            self._status = text
            if self._ready:
                self._notifier.status(text)

    def stopping(self) -> None:
        """Tell systemd the gate is shutting down (relay safe, outbox draining)."""
        self._notifier.stopping()
