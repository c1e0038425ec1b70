"""Small network helpers for telemetry."""

from __future__ import annotations

import socket


def broker_reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds within ``timeout`` seconds.

    Only a hint for humans (the demo says whether it will publish): the publisher
    never depends on it and connects whenever the broker becomes reachable.
    Never raises; name-resolution failures and timeouts return False. Note that
    resolving ``host`` may take longer than ``timeout`` on a machine with a broken
    resolver; pass an address to avoid that.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
