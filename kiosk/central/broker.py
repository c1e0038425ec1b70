"""The ``--broker mqtt[s]://HOST:PORT`` form every central command takes."""

from __future__ import annotations

from urllib.parse import urlsplit

from kiosk.errors import ConfigError

__all__ = ["parse_broker_url"]


def parse_broker_url(url: str) -> tuple[str, int, bool]:
    """``(host, port, tls)`` of ``mqtt://HOST[:PORT]`` or ``mqtts://HOST[:PORT]``.

    Raises:
        ConfigError: another scheme, no host, or a bad port (the URL quoted bounded).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"--broker {url[:80]!r}: expected mqtt://HOST:PORT or mqtts://")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"--broker {url[:80]!r}: bad port") from None
    tls = parts.scheme == "mqtts"
    return parts.hostname, port or (8883 if tls else 1883), tls
