"""The gate as a systemd service: readiness and liveness notifications (sd_notify).

:mod:`kiosk.service.notify` speaks the sd_notify datagram protocol;
:mod:`kiosk.service.heartbeat` decides when the scan loop has earned a
watchdog ping. Nothing here is needed off systemd: without ``$NOTIFY_SOCKET``
every call is a no-op.
"""

from kiosk.service.heartbeat import Heartbeat
from kiosk.service.notify import Notifier

__all__ = ["Heartbeat", "Notifier"]
