"""The gate's memory of accepted commands: replays refused without a central counter.

Every accepted command id is kept, with its expiry, in a small JSON file in
the data folder (atomically replaced on each accept) until the command has
expired, after which a replay is refused as expired anyway. The newest accepted
issue time is kept too, so a command issued well before one already accepted
(an old capture replayed out of order) is refused as superseded.

If the file is missing on first start the memory is simply empty. If it is
unreadable (torn by hand, wrong owner), the gate cannot know what it accepted
in the last minutes, so it accepts only commands issued after it started.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from kiosk.remote.command import CLOCK_SKEW_S, Command, CommandRefused, Refusal
from kiosk.verify.atomic import atomic_write

__all__ = ["AcceptedCommands"]

_log = logging.getLogger(__name__)
# Commands live at most five minutes; even a burst of one a second stays far below this.
_MAX_FILE_BYTES = 256 * 1024


class AcceptedCommands:
    """Persisted ids of accepted commands (owned by the thread that runs commands)."""

    def __init__(self, path: Path, *, now: float) -> None:
        self._path = path
        self._ids: dict[str, int] = {}
        self._newest_iat = 0
        self._floor_iat = 0
        try:
            self._load()
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            _log.warning(
                "command memory %s unreadable (%s): accepting only new commands",
                path.name,
                type(exc).__name__,
            )
            self._floor_iat = int(now)

    def _load(self) -> None:
        with open(self._path, "rb") as handle:
            raw = handle.read(_MAX_FILE_BYTES + 1)
        if len(raw) > _MAX_FILE_BYTES:
            raise ValueError("file too large")
        doc = json.loads(raw)
        ids = doc.get("ids") if isinstance(doc, dict) else None
        newest = doc.get("newest_iat") if isinstance(doc, dict) else None
        if not isinstance(ids, dict) or not isinstance(newest, int):
            raise ValueError("unexpected shape")
        if not all(isinstance(k, str) and isinstance(v, int) for k, v in ids.items()):
            raise ValueError("unexpected entry")
        self._ids = ids
        self._newest_iat = newest

    def __len__(self) -> int:
        return len(self._ids)

    def accept(self, command: Command, *, now: float) -> None:
        """Record ``command`` as accepted, or refuse it as a replay.

        Raises:
            CommandRefused: REPLAYED (id seen before) or SUPERSEDED (issued
                before the newest accepted command by more than the skew, or
                before a start whose memory was lost).
            OSError: the memory cannot be written; the command is not accepted.
        """
        self._ids = {k: exp for k, exp in self._ids.items() if exp > now}
        if command.id_hex in self._ids:
            raise CommandRefused(Refusal.REPLAYED, "command id already accepted", command.id_hex)
        if command.issued_at < max(self._newest_iat - CLOCK_SKEW_S, self._floor_iat):
            raise CommandRefused(
                Refusal.SUPERSEDED, "issued before a newer command", command.id_hex
            )
        ids = dict(self._ids)
        ids[command.id_hex] = command.expires_at
        newest = max(self._newest_iat, command.issued_at)
        payload = json.dumps({"ids": ids, "newest_iat": newest}, sort_keys=True).encode()
        # Persist before acting: a crash after the action must not let the replay through.
        atomic_write(self._path, payload, mode=0o600)
        self._ids, self._newest_iat = ids, newest
