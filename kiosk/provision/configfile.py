"""Write settings into the gate's TOML config, keeping its layout and comments.

The shipped ``kiosk.toml`` documents every key in comments; provisioning
changes values in place (``key = value  # comment`` keeps the comment) and
appends a key or section only when it is missing. The result is loaded with
:func:`kiosk.config.load_config` before it replaces the old file, so a bad
answer never leaves a gate with a config it cannot start with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from kiosk.config import KioskConfig, load_config
from kiosk.verify.atomic import atomic_write

Value = str | int | float | bool | None

_SECTION = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-]+)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_\-]+)(\s*=\s*)(.*)$")
# A trailing comment after a simple value: the value holds no '#' (ours never do).
_COMMENT = re.compile(r"^([^#]*?)(\s+#.*)$")


def toml_value(value: Value) -> str:
    """``value`` as TOML; None is the empty string (the config's "unset")."""
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def set_values(text: str, values: Mapping[str, Value]) -> str:
    """``text`` with each dotted ``section.key`` of ``values`` set."""
    lines = text.splitlines()
    pending = dict(values)
    section = ""
    ends: dict[str, int] = {}  # section -> index after its last key line
    for i, line in enumerate(lines):
        header = _SECTION.match(line)
        if header:
            section = header.group(1)
            ends[section] = i + 1
            continue
        match = _KEY.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        ends[section] = i + 1
        dotted = f"{section}.{match.group(2)}" if section else match.group(2)
        if dotted in pending:
            comment = _COMMENT.match(match.group(4))
            tail = comment.group(2) if comment else ""
            new = (
                f"{match.group(1)}{match.group(2)}{match.group(3)}{toml_value(pending.pop(dotted))}"
            )
            lines[i] = new + tail
    # Missing keys: after the last key of their section, or in a new section at the end.
    for dotted, value in sorted(
        pending.items(), key=lambda kv: -ends.get(kv[0].rpartition(".")[0], 10**9)
    ):
        sec, _, key = dotted.rpartition(".")
        line = f"{key} = {toml_value(value)}"
        if sec in ends:
            lines.insert(ends[sec], line)
        else:
            lines += ["", f"[{sec}]", line]
            ends[sec] = len(lines)
    return "\n".join(lines) + "\n"


def write_config(
    path: Path, values: Mapping[str, Value], *, template: Path | None = None
) -> KioskConfig:
    """Set ``values`` in ``path`` (or in ``template`` when ``path`` does not exist yet).

    The new text is validated first (a :class:`~kiosk.errors.ConfigError`
    names the key); only then does it replace ``path`` atomically (mode 0640).
    """
    source = path if path.exists() else template
    text = source.read_text() if source is not None else ""
    new = set_values(text, values)
    candidate = path.with_name(f".{path.name}.provision")
    candidate.write_text(new)
    try:
        config = load_config(candidate)
    finally:
        candidate.unlink(missing_ok=True)
    atomic_write(path, new.encode(), mode=0o640)
    return config
