"""The one character rule for site and gate identifiers.

A site or gate id appears in MQTT topics, client ids, certificate names, file
names and metric labels. One rule, checked here and imported wherever an id is
accepted (config, fleet, provisioning), keeps all of those well-formed: ASCII
letters and digits, then letters, digits, ``_`` or ``-``, 1 to 64 characters.
It excludes topic separators and wildcards, path separators, ``.`` (no ``..``),
spaces, control and Unicode separator characters by construction.
"""

from __future__ import annotations

import re

from kiosk.errors import ConfigError

ID_RULE = "1-64 characters: a letter or digit, then letters, digits, '_' or '-'"
"""The rule in words, for error messages and documentation."""

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Match with :meth:`re.Pattern.fullmatch` (``$`` would accept a trailing newline)."""

ECHO_MAX = 40
"""At most this many characters of a refused value are quoted back in a message."""


def is_valid_id(value: object) -> bool:
    """Whether ``value`` is a string that follows :data:`ID_RULE`."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid site or gate id, or None when it is."""
    if is_valid_id(value):
        return None
    return f"{quote(value)} is not a valid id ({ID_RULE})"


def quote(value: str, limit: int = ECHO_MAX) -> str:
    """``repr`` of at most ``limit`` characters of ``value``, marked when cut.

    Untrusted text is never echoed unbounded into a message or a log line.
    """
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"


class IdError(ConfigError):
    """A site or gate id (or a ``<site>/<gate>`` identity) breaks :data:`ID_RULE`."""


def check_id(kind: str, value: str) -> str:
    """``value`` when it is a valid ``kind`` ("site", "gate") id, else :class:`IdError`."""
    problem = id_problem(value) if isinstance(value, str) else f"a {type(value).__name__}"
    if problem is not None:
        raise IdError(f"{kind} id: {problem}")
    return value


def device_identity(site: str, gate: str) -> str:
    """The device identity ``<site>/<gate>`` (certificate CN, MQTT user name), checked."""
    return f"{check_id('site', site)}/{check_id('gate', gate)}"


def split_identity(identity: str) -> tuple[str, str]:
    """``(site, gate)`` of a ``<site>/<gate>`` identity, else :class:`IdError`."""
    site, sep, gate = identity.partition("/")
    if not sep:
        raise IdError(f"device identity {quote(identity)}: expected <site>/<gate>")
    return check_id("site", site), check_id("gate", gate)
