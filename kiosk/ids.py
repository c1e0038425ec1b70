"""The one character rule for site and gate ids (topics, certificate names, file names).

An id fills exactly one MQTT topic level and one certificate name part, so it
must never hold ``/``, ``+``, ``#``, white space, NUL or anything that needs
escaping: ``^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$``. The device identity is
``<site>/<gate>``: the certificate's CN, the MQTT user name and two topic
levels under ``kiosk/``.
"""

from __future__ import annotations

import re

from kiosk.errors import ConfigError

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class IdError(ConfigError):
    """A site or gate id breaks the character rule (the message never echoes it unbounded)."""


def check_id(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid ``kind`` id ("site" or "gate"); raise :class:`IdError`."""
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        shown = repr(value[:40]) if isinstance(value, str) else type(value).__name__
        raise IdError(
            f"{kind} id {shown}: use 1-64 letters, digits, '-' or '_' (the first a letter or digit)"
        )
    return value


def device_identity(site: str, gate: str) -> str:
    """``<site>/<gate>`` after checking both parts."""
    return f"{check_id('site', site)}/{check_id('gate', gate)}"


def split_identity(identity: str) -> tuple[str, str]:
    """``(site, gate)`` from ``<site>/<gate>``; raise :class:`IdError` for anything else."""
    site, sep, gate = identity.partition("/")
    if not sep:
        raise IdError(f"device identity {identity[:80]!r}: expected <site>/<gate>")
    return check_id("site", site), check_id("gate", gate)
