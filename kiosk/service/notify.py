"""sd_notify(3) over ``$NOTIFY_SOCKET`` with the standard library's socket module.

The protocol is one datagram of newline-separated ``KEY=value`` lines sent to
the unix socket systemd names in ``$NOTIFY_SOCKET`` (a path, or ``@name`` for
the abstract namespace). We send ``READY=1``, ``WATCHDOG=1``, ``STATUS=...``
and ``STOPPING=1``. Without the variable (a terminal, the tests, the
simulator) every call does nothing, so the same code runs everywhere.

Sending never raises: systemd going away must not stop the gate (the watchdog
would then restart it anyway).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from kiosk.closing import Closing

log = logging.getLogger(__name__)

# A STATUS= line is shown by `systemctl status`; keep it to one short line.
MAX_STATUS_CHARS = 200


class Notifier(Closing):
    """Sends sd_notify messages to one socket; a no-op when ``address`` is None.

    Args:
        address: the value of ``$NOTIFY_SOCKET`` (``/run/systemd/notify`` or
            ``@/org/freedesktop/systemd1/notify``); None or empty disables.
        watchdog_usec: ``$WATCHDOG_USEC`` as an int (microseconds), None when
            systemd expects no watchdog pings.
    """

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._sock: socket.socket | None = None
        self._address = ""
        self.watchdog_usec = watchdog_usec
        if not address:
            return
        # A leading "@" means Linux's abstract namespace: a leading NUL byte.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET`` / ``$WATCHDOG_USEC`` of this process.

        ``$WATCHDOG_PID``, when set, must name this process (sd_watchdog_enabled(3)):
        a child that inherited the variables must not feed its parent's watchdog.
        Read when called, never at import.
        """
        env = os.environ if environ is None else environ
        usec: int | None = None
        pid = env.get("WATCHDOG_PID", "")
        if env.get("WATCHDOG_USEC", "").isdigit() and (not pid or pid == str(os.getpid())):
            usec = int(env["WATCHDOG_USEC"]) or None
        return cls(env.get("NOTIFY_SOCKET") or None, usec)

    @property
    def enabled(self) -> bool:
        """True when messages go somewhere."""
        return self._sock is not None

    def notify(self, fields: Mapping[str, str]) -> bool:
        """Send one message of ``KEY=value`` lines; True when the datagram was sent."""
        if self._sock is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            self._sock.sendto(message.encode("utf-8", "replace"), self._address)
        except OSError as exc:
            log.debug("sd_notify to %r failed: %s", self._address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (start-up finished), with an optional status line."""
        fields = {"READY": "1"}
        if status:
            fields["STATUS"] = _one_line(status)
        return self.notify(fields)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the service is alive."""
        return self.notify({"WATCHDOG": "1"})

    def status(self, text: str) -> bool:
        """``STATUS=``: one line for ``systemctl status`` (control characters replaced)."""
        return self.notify({"STATUS": _one_line(text)})

    def stopping(self) -> bool:
        """``STOPPING=1``: shutdown has begun (relay safe, outbox draining)."""
        return self.notify({"STOPPING": "1"})

    def close(self) -> None:
        """Close the socket; idempotent."""
        sock, self._sock = getattr(self, "_sock", None), None
        if sock is not None:
            sock.close()


def _one_line(text: str) -> str:
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned[:MAX_STATUS_CHARS]
