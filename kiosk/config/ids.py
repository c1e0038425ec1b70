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
