"""Carrying out verified commands on the gate, and the hand-over from the MQTT thread.

:class:`CommandInbox` is the only thing the MQTT network thread touches: it
copies at most a few bounded messages into a queue and wakes nobody up.
:class:`CommandRunner` runs on the scan loop's thread (the one owner of the
gate machine): it verifies each message (:func:`kiosk.remote.command.check_command`),
remembers it (:class:`kiosk.remote.replay.AcceptedCommands`), acts through a
narrow :class:`GateActions` interface and names the outcome as a gate event
counter (``command.<action>`` or ``command_refused.<reason>``) that the loop
counts, so the outbox reports it on ``<root>/events`` as durably as any count.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.remote.command import MAX_COMMAND_BYTES, CommandRefused, check_command
from kiosk.remote.replay import AcceptedCommands

__all__ = ["CommandInbox", "CommandOutcome", "CommandRunner", "GateActions"]

log = logging.getLogger(__name__)

#: Refusals are recorded as events at most this often (per minute); beyond it they
#: are only counted in memory, so a flood of garbage cannot flood the outbox.
REFUSED_EVENTS_PER_MINUTE = 10


class GateActions(Protocol):
    """What a command can make the gate do (implemented by the scan loop)."""

    def open_once(self) -> bool:
        """Open for one passage; False when that is not possible (e.g. emergency)."""

    def set_emergency(self, active: bool) -> None:
        """Hold the gate open (``True``) or release the remote emergency."""

    def reload(self) -> None:
        """Re-read trust material and lists, as on SIGHUP."""

    def restart(self) -> None:
        """End the service cleanly so systemd starts it again."""

    def diagnostics(self, command_id: str) -> None:
        """Run the non-actuating self-test checks and publish their report (naming the command)."""


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What became of one message: ``event`` is the counter recorded, or None."""

    accepted: bool
    action: str | None
    reason: str
    command_id: str | None
    event: str | None


class CommandInbox:
    """Bounded hand-over of raw command messages from the MQTT thread."""

    def __init__(self, capacity: int = 16) -> None:
        self._queue: collections.deque[tuple[bytes, bool]] = collections.deque()
        self._capacity = capacity
        self._lock = threading.Lock()
        self.dropped = 0

    def offer(self, payload: bytes, retained: bool) -> None:
        """Queue one message (called from the MQTT thread; never blocks, never parses)."""
        with self._lock:
            if len(payload) > MAX_COMMAND_BYTES + 1 or len(self._queue) >= self._capacity:
                self.dropped += 1
                return
            # One byte beyond the limit is kept so the runner reports "too large".
            self._queue.append((bytes(payload[: MAX_COMMAND_BYTES + 1]), retained))

    def take(self) -> list[tuple[bytes, bool]]:
        """Everything queued since the last call (called by the loop's thread)."""
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
        return items


class CommandRunner:
    """Verifies, remembers and carries out commands (owned by the scan loop's thread)."""

    def __init__(
        self,
        *,
        authorities: list[Ed25519PublicKey],
        site: str,
        gate: str,
        memory: AcceptedCommands,
        actions: GateActions,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._authorities = authorities
        self._site = site
        self._gate = gate
        self._memory = memory
        self._actions = actions
        self._clock = clock
        self._refused_window: collections.deque[float] = collections.deque()
        #: refusals per reason since start (status ``refused.command``).
        self.refused: collections.Counter[str] = collections.Counter()

    def handle(self, message: bytes, *, retained: bool) -> CommandOutcome:
        """Verify and carry out one message; never raises for anything in the message.

        The caller counts ``outcome.event`` (None for a refusal beyond the
        per-minute event budget: it is still in :attr:`refused`).
        """
        now = self._clock()
        try:
            command = check_command(
                message,
                authorities=self._authorities,
                site=self._site,
                gate=self._gate,
                now=now,
                retained=retained,
            )
            self._memory.accept(command, now=now)
        except CommandRefused as refused:
            return self._refuse(str(refused.reason), refused.command_id, now)
        except OSError as exc:
            # The memory could not be written: acting now could let a replay through later.
            log.error(
                "command memory not writable (%s): command not carried out", type(exc).__name__
            )
            return self._refuse("memory_unwritable", None, now)
        log.warning(
            "command %s %s from operator key %s",
            command.action,
            command.id_hex[:8],
            command.operator.key_id,
        )
        done = self._act(command.action, command.id_hex)
        event = f"command.{command.action.replace('-', '_')}"
        if not done:
            event += ".not_possible"
        return CommandOutcome(
            done, command.action, "ok" if done else "not_possible", command.id_hex, event
        )

    def _act(self, action: str, command_id: str) -> bool:
        if action == "open-once":
            return self._actions.open_once()
        if action in ("emergency-on", "emergency-off"):
            self._actions.set_emergency(action == "emergency-on")
        elif action == "reload":
            self._actions.reload()
        elif action == "restart":
            self._actions.restart()
        elif action == "diagnostics":
            self._actions.diagnostics(command_id)
        return True

    def _refuse(self, reason: str, command_id: str | None, now: float) -> CommandOutcome:
        self.refused[reason] += 1
        window = self._refused_window
        while window and window[0] <= now - 60:
            window.popleft()
        event: str | None = None
        if len(window) < REFUSED_EVENTS_PER_MINUTE:
            window.append(now)
            event = f"command_refused.{reason}"
        log.info("command refused: %s", reason)
        return CommandOutcome(False, None, reason, command_id, event)
