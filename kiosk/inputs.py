"""What reaches the scan loop from outside, in one shape: inputs that report events.

Every input (the camera, the KTP keypad or reader, remote commands) is an
:class:`Input`: the loop asks it ``poll(now)`` and gets one small immutable
event or ``None`` ("nothing now"). The loop owns every input and calls them
from its own thread only; what an event *means* for the gate is decided in
:class:`kiosk.scanloop.ScanLoop`, never in the input.

An input whose :attr:`Input.waits` is True may block in ``poll`` until
something arrives (the camera waits for its next frame); the loop asks such an
input once at the start of each turn, so it paces the loop. Every other input
must return at once; the loop drains those each turn, at most
``MAX_EVENTS_PER_TURN`` events per input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kiosk.camera import FrameSource
from kiosk.errors import CameraTimeout
from kiosk.nik.devices import KeySource
from kiosk.nik.entry import EntryState, NikEntry
from kiosk.remote.runner import CommandInbox

# Key presses read from the device per poll at most (a serial reader delivers 17 at once).
MAX_KEYS_PER_POLL = 64


@dataclass(frozen=True, slots=True)
class FrameSeen:
    """The camera delivered a frame: ``gray`` (2-D uint8), ``timestamp`` (monotonic s)."""

    gray: np.ndarray
    timestamp: float


@dataclass(frozen=True, slots=True)
class CameraSilent:
    """The camera delivered no frame within its timeout."""

    error: CameraTimeout


@dataclass(frozen=True, slots=True)
class SourceEnded:
    """The frame source has no more frames (a file or video source at its end)."""


@dataclass(frozen=True, slots=True)
class NikTyped:
    """ENTER was pressed on a complete KTP number; ``nik`` is the digits (never logged)."""

    nik: str


@dataclass(frozen=True, slots=True)
class NikPrompt:
    """A digit was typed or erased: ``masked`` is what the prompt may show."""

    masked: str


@dataclass(frozen=True, slots=True)
class NikAbandoned:
    """A started entry ended without ENTER: ``state`` is TIMED_OUT or CANCELLED."""

    state: EntryState


@dataclass(frozen=True, slots=True)
class CommandReceived:
    """A message arrived on the gate's command topic: not yet verified, bounded in size."""

    payload: bytes
    retained: bool


Event = (
    FrameSeen | CameraSilent | SourceEnded | NikTyped | NikPrompt | NikAbandoned | CommandReceived
)


class Input(Protocol):
    """One source of events for the scan loop."""

    #: True: ``poll`` may block until the next event (polled once per turn, paces the loop).
    waits: bool

    def poll(self, now: float) -> Event | None:
        """The next event at monotonic second ``now``, or None when there is none now."""
        ...


class CameraInput:
    """The frame source as an input: one frame (or its absence) per poll.

    ``poll`` blocks for as long as the source's ``read`` does (the camera's
    frame interval, at most its timeout), which is what paces the loop.
    """

    waits = True

    def __init__(self, source: FrameSource) -> None:
        self.source = source

    def poll(self, now: float) -> FrameSeen | CameraSilent | SourceEnded:
        """Read the next frame: FrameSeen, CameraSilent on a timeout, SourceEnded at the end.

        Raises:
            CameraError: the source failed (the loop makes the relay safe and stops).
        """
        try:
            frame = self.source.read()
        except CameraTimeout as exc:
            return CameraSilent(exc)
        if frame is None:
            return SourceEnded()
        return FrameSeen(frame.gray, frame.timestamp)


class KeypadInput:
    """A KTP keypad or reader feeding a :class:`NikEntry` editor.

    Keys are read without blocking. While ``paused()`` is true (a typed NIK is
    being checked in the background) no key is read: presses wait in the
    device's own buffer and are handled once the decision is out, so a second
    ENTER is never submitted alongside the first and never lost.
    """

    waits = False

    def __init__(
        self,
        keys: KeySource,
        entry: NikEntry,
        *,
        paused: Callable[[], bool] = lambda: False,
    ) -> None:
        self.keys = keys
        self.entry = entry
        self._paused = paused
        self._prompting = False  # a prompt is on screen for an entry still open

    def poll(self, now: float) -> NikTyped | NikPrompt | NikAbandoned | None:
        """The next entry event from the pending key presses, or None.

        Presses that change nothing visible (a digit beyond the 16th) are
        consumed without an event; at most :data:`MAX_KEYS_PER_POLL` per call.
        """
        if self._paused():
            return None
        for _ in range(MAX_KEYS_PER_POLL):
            key = self.keys.read_key(0.0)
            if key is None:
                break
            nik = self.entry.press(key, now)
            if nik is not None:
                self._prompting = False
                return NikTyped(nik)
            if self.entry.state is EntryState.TYPING:
                self._prompting = True
                return NikPrompt(self.entry.masked())
        state = self.entry.poll(now)
        if self._prompting and state in (EntryState.TIMED_OUT, EntryState.CANCELLED):
            # A walked-away or cancelled entry must not stay on screen.
            self._prompting = False
            return NikAbandoned(state)
        return None


class CommandInput:
    """Operators' command messages handed over by the MQTT thread (a bounded inbox).

    The input only delivers them; the loop verifies each one (signature,
    certificate, target, time, replay) before anything happens.
    """

    waits = False

    def __init__(self, inbox: CommandInbox) -> None:
        self.inbox = inbox
        self._pending: list[tuple[bytes, bool]] = []

    def poll(self, now: float) -> CommandReceived | None:
        """The next received message, or None."""
        if not self._pending:
            self._pending = self.inbox.take()
            if not self._pending:
                return None
        payload, retained = self._pending.pop(0)
        return CommandReceived(payload, retained)
