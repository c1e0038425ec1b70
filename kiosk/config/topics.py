"""Syntax of the MQTT topic settings: ``mqtt.topic_root`` and ``mqtt.discovery_prefix``.

``topic_root`` is a template whose levels are either literal or exactly
``{site}`` / ``{gate}``; it is filled in by splitting on ``/`` (never with
:meth:`str.format`, which would run format specs such as ``{site:>999999999}``).
Literal levels use a conservative character set that is valid in any MQTT topic:
no wildcards (``#``, ``+``), no NUL or control characters, no ``$`` (reserved
for broker topics), no empty levels.
"""

from __future__ import annotations

import re

from kiosk.config.ids import quote

TOPIC_LEVEL_RULE = "letters, digits, '_', '-' or '.' (1-64 characters)"
_LEVEL = re.compile(r"[A-Za-z0-9_.-]{1,64}")
FIELDS = ("{site}", "{gate}")
MAX_TEMPLATE_LEVELS = 8


def _level_problem(level: str, setting: str) -> str | None:
    if _LEVEL.fullmatch(level):
        return None
    if level == "":
        return f"{setting} has an empty topic level (leading, doubled or trailing '/')"
    if "{" in level or "}" in level:
        return (
            f"topic level {quote(level)}: only {{site}} and {{gate}} are filled in, "
            "each as a whole level"
        )
    return f"topic level {quote(level)} may only hold {TOPIC_LEVEL_RULE}"


def topic_root_problem(template: str) -> str | None:
    """Why ``template`` is not a usable ``mqtt.topic_root``, or None when it is.

    It must hold ``{site}`` and ``{gate}`` once each as whole levels, so every
    gate publishes under its own subtree, and nothing else in braces.
    """
    levels = template.removesuffix("/").split("/")  # one trailing '/' is tolerated
    if len(levels) > MAX_TEMPLATE_LEVELS:
        return f"at most {MAX_TEMPLATE_LEVELS} topic levels, got {len(levels)}"
    for level in levels:
        if level in FIELDS:
            continue
        if problem := _level_problem(level, "topic_root"):
            return problem
    for name in FIELDS:
        if levels.count(name) != 1:
            return f"must contain {name} exactly once as a whole topic level"
    return None


def topic_prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` is not a usable literal topic prefix (no fields), or None."""
    levels = prefix.split("/")
    if len(levels) > MAX_TEMPLATE_LEVELS:
        return f"at most {MAX_TEMPLATE_LEVELS} topic levels, got {len(levels)}"
    for level in levels:
        if problem := _level_problem(level, "the prefix"):
            return problem
    return None


def fill_topic_root(template: str, site: str, gate: str) -> str:
    """The topic root with ``{site}`` and ``{gate}`` levels replaced (no format specs)."""
    values = {"{site}": site, "{gate}": gate}
    levels = template.removesuffix("/").split("/")
    return "/".join(values.get(level, level) for level in levels)
