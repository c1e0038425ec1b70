"""Count the starts of a release on probation; roll back after too many (stdlib only).

Run by systemd *before* the gate starts (``ExecStartPre``), with the system
Python and outside any release: ``python3 /opt/kiosk/probation.py /opt/kiosk``.
It must not depend on the release it judges, because a release that cannot
even import would otherwise never be counted, and never rolled back. So this
file imports nothing from :mod:`kiosk` and ``install.sh --pi`` copies it next
to the releases.

State (``update-state.json``, written by :class:`kiosk.remote.update.Updater`):
``pending`` (the version switched to), ``previous``, ``boots``. After
:data:`MAX_PROBATION_BOOTS` starts without the running gate having committed
the release (``Updater.mark_healthy``), ``current`` is pointed back at
``previous`` and the start continues with it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

MAX_PROBATION_BOOTS = 3
STATE_FILE = "update-state.json"


def _read(path: Path) -> dict[str, object]:
    try:
        with open(path, "rb") as handle:
            doc = json.loads(handle.read(65536))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write(path: Path, doc: dict[str, object]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(doc, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def point(link: Path, target: str) -> None:
    """Make ``link`` point at ``target`` with one atomic rename."""
    tmp = link.with_name(f".{link.name}.new")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def count_start(root: Path) -> str | None:
    """One start: count it if a release is on probation; returns the version rolled back to."""
    state_path = root / STATE_FILE
    state = _read(state_path)
    pending, previous = state.get("pending"), state.get("previous")
    try:
        current = Path(os.readlink(root / "current")).name
    except OSError:
        return None
    if not isinstance(pending, str) or pending != current:
        return None
    counted = state.get("boots")
    boots = (counted if isinstance(counted, int) else 0) + 1
    if boots < MAX_PROBATION_BOOTS or not isinstance(previous, str):
        _write(state_path, {**state, "boots": boots})
        return None
    point(root / "current", f"releases/{previous}")
    _write(
        state_path,
        {
            "rolled_back": pending,
            "running": previous,
            "boots": boots,
            "failed_build": state.get("build"),
            "running_build": state.get("running_build"),
        },
    )
    return previous


def main(argv: list[str]) -> int:
    """``probation.py ROOT``: exit 0 always (a counting failure must not stop the gate)."""
    root = Path(argv[1]) if len(argv) > 1 else Path("/opt/kiosk")
    try:
        rolled = count_start(root)
    except OSError as exc:
        print(f"kiosk probation: cannot count this start: {exc}", file=sys.stderr)
        return 0
    if rolled is not None:
        print(
            f"kiosk probation: new release failed its health check: rolled back to {rolled}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
