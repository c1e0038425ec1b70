"""Load a TOML file into the typed, frozen :class:`KioskConfig` and validate it.

Validation is driven by the field declarations in :mod:`kiosk.config.schema`:
unknown tables and keys, wrong types, out-of-range values and bad choices all
raise :class:`~kiosk.errors.ConfigError` naming the file, the line, the dotted
key and the reason. Relative paths are resolved against the config file's folder
so a config works wherever the process is started.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from kiosk.config.ids import quote
from kiosk.config.schema import KioskConfig
from kiosk.errors import ConfigError

MAX_CONFIG_BYTES = 256 * 1024
"""A config file larger than this is refused unread (the shipped one is about 12 KiB)."""
MAX_STRING_CHARS = 1024
"""Longest string setting; longer is a mistake or an attack, not a setting."""
# Control and format characters (NUL, escapes, bidi overrides) and Unicode line and
# paragraph separators are never meaningful in a setting and can hide text in a log.
_BAD_CHAR = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)

# A key path: bare or quoted parts joined by dots (`mqtt.port`, `"port"`, `mqtt . 'port'`).
_PART = r"""(?:[A-Za-z0-9_\-]+|"[^"\\\n]*"|'[^'\n]*')"""
_PATH = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"^\s*\[\s*({_PATH})\s*\]")
_KEY = re.compile(rf"^\s*({_PATH})\s*=")
_PART_RE = re.compile(_PART)
T = TypeVar("T")


def load_config(path: Path | None, overrides: Mapping[str, Any] | None = None) -> KioskConfig:
    """Read, validate and return the configuration.

    Args:
        path: the TOML file; None means all defaults (still validated).
        overrides: dotted keys (``"gate.relay_pulse_ms"``) applied on top of the file.

    Raises:
        ConfigError: the file is unreadable, not TOML, or any value is invalid.
    """
    config: KioskConfig = load_tree(KioskConfig, path, overrides, check=_check_cross_fields)
    return config


def load_tree(
    cls: type[T],
    path: Path | None,
    overrides: Mapping[str, Any] | None = None,
    *,
    check: Callable[[T, _Locator], None] | None = None,
) -> T:
    """Read and validate any frozen dataclass tree declared with :func:`setting`.

    The same rules and error style as :func:`load_config` (file, line, key), for
    other programs' configurations (the fleet service's). ``check`` runs the
    cross-field rules; it raises ``locator.error(key, reason)``.

    Raises:
        ConfigError: the file is unreadable, not TOML, or any value is invalid.
    """
    raw: dict[str, Any] = {}
    text = ""
    source = "<defaults>"
    base_dir = Path.cwd()
    if path is not None:
        source = str(path)
        base_dir = path.resolve().parent
        text = _read_bounded(path, source)
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        except RecursionError:
            # tomllib parses nested arrays and inline tables recursively; the schema
            # has no nesting below a table, so depth is only ever an attack.
            raise ConfigError(f"{source}: not valid TOML: nested too deeply") from None
        except ValueError:
            # int() of a literal longer than Python's 4,300-digit limit escapes tomllib.
            raise ConfigError(f"{source}: not valid TOML: a number is too long") from None
    locator = _Locator(source, text)
    for dotted, value in (overrides or {}).items():
        _apply_override(raw, dotted, value, source)
    config: T = _build(cls, raw, "", locator, base_dir)
    if check is not None:
        check(config, locator)
    return config


def _read_bounded(path: Path, source: str) -> str:
    """The file's text, at most :data:`MAX_CONFIG_BYTES`, decoded as UTF-8."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES} bytes: not a config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{source}:{line}: not UTF-8 text (byte {exc.start})") from None


def _apply_override(raw: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    parts = dotted.split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"{source}: override {dotted!r}: expected 'table.key'")
    table = raw.setdefault(parts[0], {})
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: override {dotted!r}: {parts[0]} is not a table")
    table[parts[1]] = value


class _Locator:
    """Finds the line of a dotted key in the TOML text, for error messages."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self._lines: dict[str, int] = {}
        table = ""
        # TOML lines end at "\n" only (splitlines() would also split at U+2028 etc.).
        for number, line in enumerate(text.split("\n"), start=1):
            if header := _HEADER.match(line):
                table = _dotted(header.group(1))
                self._lines.setdefault(table, number)
            elif key := _KEY.match(line):
                name = _dotted(key.group(1))
                dotted = f"{table}.{name}" if table else name
                self._lines.setdefault(dotted, number)

    def error(self, key: str, reason: str, near: str | None = None) -> ConfigError:
        """A ConfigError naming file, line and key.

        The line is the key's own, else that of ``near`` (the key that made this
        one required), else that of the key's table; omitted when none is in the file.
        """
        table = key.rpartition(".")[0]
        line = self._lines.get(key) or self._lines.get(near or "") or self._lines.get(table)
        where = f"{self.source}:{line}" if line else self.source
        return ConfigError(f"{where}: {key}: {reason}")


Locator = _Locator
"""What a ``check`` passed to :func:`load_tree` receives to raise located errors."""


def _dotted(path: str) -> str:
    """``mqtt . "port"`` -> ``mqtt.port`` (quotes dropped; escapes are not resolved)."""
    return ".".join(part.strip("\"'") for part in _PART_RE.findall(path))


def _build(cls: type, raw: Any, prefix: str, locator: _Locator, base_dir: Path) -> Any:
    if not isinstance(raw, dict):
        raise locator.error(prefix, f"expected a table, got {_type_name(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            shown = key if len(key) <= 64 and not _BAD_CHAR.search(key) else quote(key)
            dotted = f"{prefix}.{shown}" if prefix else shown
            known = ", ".join(sorted(fields))
            raise locator.error(dotted, f"unknown key (known keys: {known})")
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        if name not in raw:
            continue
        dotted = f"{prefix}.{name}" if prefix else name
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            values[name] = _build(hint, raw[name], dotted, locator, base_dir)
        elif typing.get_origin(hint) is dict:
            values[name] = _build_named(typing.get_args(hint)[1], raw[name], dotted, locator,
                                        base_dir)
        else:
            values[name] = _coerce(raw[name], hint, spec.metadata, dotted, locator, base_dir)
    try:
        return cls(**values)
    except ConfigError as exc:
        # Cross-field rules inside a section raise "<dotted.key>: reason": add file and line.
        key, _, reason = str(exc).partition(": ")
        raise locator.error(key, reason) from None


def _build_named(
    cls: type, raw: Any, prefix: str, locator: _Locator, base_dir: Path
) -> dict[str, Any]:
    """A table of named tables (``[notify.sites.<name>]``), each one a ``cls``."""
    if not isinstance(raw, dict):
        raise locator.error(prefix, f"expected a table, got {_type_name(raw)}")
    out: dict[str, Any] = {}
    for name, table in raw.items():
        if not name or len(name) > 64 or _BAD_CHAR.search(name):
            raise locator.error(f"{prefix}.{quote(name)}", "not a usable name")
        out[name] = _build(cls, table, f"{prefix}.{name}", locator, base_dir)
    return out


def _coerce(
    value: Any, hint: Any, meta: Mapping[str, Any], key: str, locator: _Locator, base_dir: Path
) -> Any:
    optional = False
    if isinstance(hint, types.UnionType):
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        optional = len(members) < len(typing.get_args(hint))
        hint = members[0]
    if optional and value == "":
        return None  # TOML has no null: an empty string means "not set"
    if hint is bool:
        if not isinstance(value, bool):
            raise locator.error(key, f"expected true or false, got {_type_name(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise locator.error(key, f"expected an integer, got {_type_name(value)}")
        _check_range(value, meta, key, locator)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise locator.error(key, f"expected a number, got {_type_name(value)}")
        if not math.isfinite(value):
            # nan compares false with every bound, so it would pass any range check
            # (nan as a rate or window switches the limit off); inf is never meant.
            raise locator.error(key, f"expected a finite number, got {value}")
        _check_range(value, meta, key, locator)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise locator.error(key, f"expected a string, got {_type_name(value)}")
        if len(value) > MAX_STRING_CHARS:
            raise locator.error(key, f"longer than {MAX_STRING_CHARS} characters")
        if bad := _BAD_CHAR.search(value):
            raise locator.error(
                key, f"control or separator character U+{ord(bad.group()):04X} not allowed"
            )
        choices = meta.get("choices")
        if choices and value not in choices:
            raise locator.error(key, f"{quote(value)} is not one of: {', '.join(choices)}")
        check = meta.get("check")
        if check is not None and (problem := check(value)):
            raise locator.error(key, problem)
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise locator.error(key, f"expected a path string, got {_type_name(value)}")
        if len(value) > MAX_STRING_CHARS or "\x00" in value:
            raise locator.error(key, f"not a usable path: {quote(value)}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else base_dir / path
    raise TypeError(f"unsupported config type {hint!r} for {key}")  # a schema bug, not user error


def _check_range(value: float, meta: Mapping[str, Any], key: str, locator: _Locator) -> None:
    low, high = meta.get("min"), meta.get("max")
    shown = str(value)
    if len(shown) > 40:
        shown = f"{shown[:20]}… ({len(shown)} digits)"
    if low is not None and value < low:
        raise locator.error(key, f"{shown} is below the minimum {low}")
    if high is not None and value > high:
        raise locator.error(key, f"{shown} is above the maximum {high}")


def _check_cross_fields(config: KioskConfig, locator: _Locator) -> None:
    if config.camera.source in ("files", "video") and config.camera.path is None:
        raise locator.error(
            "camera.path",
            f"required when camera.source = {config.camera.source!r}",
            near="camera.source",
        )
    # Every `*_pin` key of [gate]: two functions on one pin would wire a sensor to a relay.
    pins = {
        f"gate.{f.name}": getattr(config.gate, f.name)
        for f in dataclasses.fields(config.gate)
        if f.name.endswith("_pin") and getattr(config.gate, f.name) is not None
    }
    seen: dict[int, str] = {}
    for key, pin in pins.items():
        if pin in seen:
            raise locator.error(key, f"pin {pin} is already used by {seen[pin]}")
        seen[pin] = key


def _type_name(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
