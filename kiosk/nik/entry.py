"""The NIK entry editor: digits in, a submitted NIK (or cancel/timeout) out.

Pure and clock-injected, so the gate's state machine and the simulator drive it
the same way and tests need no threads. Every input device (keypad, keyboard
wedge, serial e-KTP reader, terminal) is turned into :class:`Key` presses.

What the screen may show (:meth:`NikEntry.masked`, :func:`mask_nik`): people in
the queue can read the screen, and digits 5-12 are the district and the birth
date (with the sex folded into the day). So positions 1-4 (province and
regency: a coarse region) and 13-16 (the serial, meaningless alone) are shown,
positions 5-12 are always bullets, while typing and after. The traveller can
still see how many digits are typed and check the start and the end, which is
where a keypad typo is usually noticed; a typo in the middle comes back as
"NIK not valid/not registered", never as somebody else's details.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from kiosk.nik.validate import NIK_LENGTH

BULLET = "•"
_SHOWN = frozenset((0, 1, 2, 3, 12, 13, 14, 15))  # indices of digits the screen may show


class Key(enum.StrEnum):
    """Non-digit keys. Digits are passed as one-character strings ``"0"``..``"9"``."""

    BACKSPACE = "backspace"
    ENTER = "enter"
    CANCEL = "cancel"


class EntryState(enum.StrEnum):
    """Where the editor is."""

    IDLE = "idle"  # nothing typed
    TYPING = "typing"
    SUBMITTED = "submitted"  # ENTER pressed; the NIK was returned once and forgotten
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


def mask_nik(digits: str) -> str:
    """Mask a (partial) NIK for the screen: ``"3171••••••••0001"`` grouped by four.

    ``mask_nik("3171012345670001") == "3171 •••• •••• 0001"``; a partial entry
    shows only what is typed: ``mask_nik("317101") == "3171 ••"``.
    """
    shown = "".join(c if i in _SHOWN else BULLET for i, c in enumerate(digits[:NIK_LENGTH]))
    return " ".join(shown[i : i + 4] for i in range(0, len(shown), 4))


@dataclass
class NikEntry:
    """A 16-digit entry buffer with backspace, cancel and an inactivity timeout.

    Args:
        timeout_s: seconds without a key after which a started entry is dropped
            (so a walked-away traveller's half-typed NIK does not stay on screen).

    Digits beyond 16 are ignored (and counted in :attr:`ignored`); ENTER submits
    whatever is typed, even if short, so the traveller is told "not valid"
    rather than left wondering; ENTER on an empty buffer is ignored.
    """

    timeout_s: float = 20.0
    ignored: int = field(default=0, init=False)
    state: EntryState = field(default=EntryState.IDLE, init=False)
    # repr=False: a NIK must never reach a log through a repr() of the editor.
    _digits: str = field(default="", init=False, repr=False)
    _last_key_at: float | None = field(default=None, init=False, repr=False)

    def press(self, key: str, now: float) -> str | None:
        """Apply one key at monotonic time ``now`` (seconds).

        Returns the typed digits when ``key`` is ENTER (the buffer is then
        cleared), else None. Unknown keys are ignored. Never raises.
        """
        if self.poll(now) is EntryState.TIMED_OUT:
            self.state = EntryState.IDLE  # a key after a timeout starts afresh
        if key == Key.ENTER:
            if not self._digits:
                return None
            submitted, self._digits = self._digits, ""
            self._last_key_at = None
            self.state = EntryState.SUBMITTED
            return submitted
        if key == Key.CANCEL:
            self._clear(EntryState.CANCELLED)
            return None
        if key == Key.BACKSPACE:
            self._digits = self._digits[:-1]
        elif len(key) == 1 and key in "0123456789":
            if len(self._digits) >= NIK_LENGTH:
                self.ignored += 1
            else:
                self._digits += key
        else:
            return None
        self._last_key_at = now
        self.state = EntryState.TYPING if self._digits else EntryState.IDLE
        return None

    def poll(self, now: float) -> EntryState:
        """Check the inactivity timeout at ``now``; returns the (possibly new) state."""
        if self._last_key_at is not None and now - self._last_key_at >= self.timeout_s:
            self._clear(EntryState.TIMED_OUT)
        return self.state

    def masked(self) -> str:
        """The current buffer as the screen may show it (see module docstring)."""
        return mask_nik(self._digits)

    @property
    def length(self) -> int:
        """How many digits are typed."""
        return len(self._digits)

    def _clear(self, state: EntryState) -> None:
        self._digits = ""
        self._last_key_at = None
        self.state = state
