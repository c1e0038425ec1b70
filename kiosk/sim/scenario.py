"""Scenario files for ``kiosk simulate``: parsing and validation (format in docs/simulate.md).

A scenario is a TOML file::

    start = "2021-06-01T08:00:00Z"   # virtual wall-clock start (required)
    config = "kiosk.toml"            # optional, relative to this file
    end = 120                        # optional: run until this many seconds
    [overrides]                      # optional dotted keys overriding the config
    "gate.relay_pulse_ms" = 400
    [[step]]
    at = 0.0                         # seconds after start
    scan = "qr/valid.png"            # exactly one action per step

Actions: ``scan`` (image file), ``payload`` (QR text), ``passage`` (true: one
beam-break), ``fire_alarm`` (true/false), ``nik`` (16 digits), ``exit`` (true:
exit button press), ``arm_stuck`` (true/false: the simulated arm stops moving),
``restart`` (true: the gate process restarts; state on disk is kept),
``staff`` (true/false: a staff key confirms or refuses a pending manual KTP check).
``nik_list`` (top level, optional): the NIKs on the simulated KTP status list,
signed and installed through the real code when ``nik.mode`` is not "off".
Every error names the file and the step.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiosk.errors import ConfigError

ACTIONS: dict[str, type | tuple[type, ...]] = {
    "scan": str,
    "payload": str,
    "passage": bool,
    "fire_alarm": bool,
    "nik": str,
    "exit": bool,
    "arm_stuck": bool,
    "restart": bool,
    "staff": bool,
}
_TOP_KEYS = {"start", "config", "end", "overrides", "step", "nik_list"}
# Without ``end``, a scenario runs until nothing is pending, at most this long
# after its last step (a safety net: a stuck deadline cannot hang the run).
MAX_TAIL_S = 3600.0


@dataclass(frozen=True)
class Step:
    """One scheduled action: ``index`` is 1-based for error messages."""

    index: int
    at: float
    action: str
    value: Any = field(repr=False)  # may be a NIK or a payload: never printed


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario; paths are resolved against the scenario's folder."""

    path: Path
    start: datetime
    config: Path | None
    overrides: dict[str, Any]
    steps: tuple[Step, ...]
    end: float | None = None
    nik_list: tuple[str, ...] = field(default=(), repr=False)  # synthetic NIKs: never printed

    def resolve(self, relative: str) -> Path:
        """A path from the scenario file, relative to its folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.path.parent / p


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file.

    Raises:
        ConfigError: unreadable file, bad TOML, unknown keys (naming the step),
            wrong types, negative times, or not exactly one action in a step.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read scenario: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(_TOP_KEYS)}")
    start = _start(path, raw.get("start"))
    config = raw.get("config")
    if config is not None and not isinstance(config, str):
        raise ConfigError(f"{path}: config: expected a file name")
    overrides = raw.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"{path}: overrides: expected a table of dotted keys")
    end = raw.get("end")
    if end is not None and (isinstance(end, bool) or not isinstance(end, int | float) or end < 0):
        raise ConfigError(f"{path}: end: expected seconds >= 0")
    steps_raw = raw.get("step", [])
    if not isinstance(steps_raw, list):
        raise ConfigError(f"{path}: step: expected [[step]] tables")
    steps = [_step(path, i, s) for i, s in enumerate(steps_raw, start=1)]
    nik_list = raw.get("nik_list", [])
    if not isinstance(nik_list, list) or not all(isinstance(n, str) for n in nik_list):
        raise ConfigError(f"{path}: nik_list: expected an array of strings")
    steps.sort(key=lambda s: (s.at, s.index))  # stable: same time keeps file order
    scenario = Scenario(
        path=path.resolve(),
        start=start,
        config=None,
        overrides=dict(_flatten(overrides)),
        steps=tuple(steps),
        end=float(end) if end is not None else None,
        nik_list=tuple(nik_list),
    )
    if config is not None:
        scenario = dataclasses.replace(scenario, config=scenario.resolve(config))
    return scenario


def _start(path: Path, value: Any) -> datetime:
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"{path}: start: {value!r} is not an ISO 8601 time") from exc
    else:
        raise ConfigError(f'{path}: start: required, e.g. "2021-06-01T08:00:00Z"')
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _step(path: Path, index: int, raw: Any) -> Step:
    where = f"{path}: step {index}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    at = raw.get("at")
    if isinstance(at, bool) or not isinstance(at, int | float) or at < 0:
        raise ConfigError(f"{where}: at: required, seconds >= 0 after start")
    where = f"{path}: step {index} (at={at})"
    unknown = set(raw) - set(ACTIONS) - {"at"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; actions: {sorted(ACTIONS)}")
    actions = [k for k in raw if k in ACTIONS]
    if len(actions) != 1:
        raise ConfigError(f"{where}: expected exactly one action of {sorted(ACTIONS)}")
    action = actions[0]
    value = raw[action]
    if not isinstance(value, ACTIONS[action]):
        raise ConfigError(f"{where}: {action}: expected {ACTIONS[action].__name__}")  # type: ignore[union-attr]
    if action in ("passage", "exit", "restart") and value is not True:
        raise ConfigError(f"{where}: {action}: only `true` is meaningful")
    return Step(index, float(at), action, value)


def _flatten(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"gate": {"relay_pulse_ms": 1}}`` and ``{"gate.relay_pulse_ms": 1}`` alike."""
    out: list[tuple[str, Any]] = []
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _flatten(value, dotted + ".")
        else:
            out.append((dotted, value))
    return out
