"""Linux input events → NIK entry keys: a pure mapping, testable without evdev.

Key codes are those of ``linux/input-event-codes.h`` (stable kernel ABI), so
this module needs no evdev import. Both the top-row digits (keyboard-wedge
readers type those) and the numeric keypad map to digits; only key-down
events count (auto-repeat would turn a held key into "1111").
"""

from __future__ import annotations

from kiosk.nik.entry import Key

EV_KEY = 1
KEY_DOWN, KEY_UP, KEY_REPEAT = 1, 0, 2

# Top row: KEY_1..KEY_9 are 2..10, KEY_0 is 11.
_TOP_ROW = {2 + i: str(i + 1) for i in range(9)} | {11: "0"}
# Numeric keypad: KEY_KP7=71 KP8=72 KP9=73 KP4=75 KP5=76 KP6=77 KP1=79 KP2=80 KP3=81 KP0=82.
_KEYPAD = {71: "7", 72: "8", 73: "9", 75: "4", 76: "5", 77: "6", 79: "1", 80: "2", 81: "3", 82: "0"}
_CONTROL = {
    14: Key.BACKSPACE,  # KEY_BACKSPACE
    111: Key.BACKSPACE,  # KEY_DELETE
    83: Key.BACKSPACE,  # KEY_KPDOT: keypads label it "Del"
    28: Key.ENTER,  # KEY_ENTER
    96: Key.ENTER,  # KEY_KPENTER
    1: Key.CANCEL,  # KEY_ESC
    98: Key.CANCEL,  # KEY_KPSLASH: the spare key on common 17-key keypads
}
KEYMAP: dict[int, str] = _TOP_ROW | _KEYPAD | _CONTROL
"""Key code → ``"0"``..``"9"`` or a :class:`Key`."""


def key_for_event(ev_type: int, code: int, value: int) -> str | None:
    """The entry key for one input event, or None when it is not a key-down we use.

    Args:
        ev_type: event type (``EV_KEY`` = 1; others such as EV_SYN/EV_MSC are ignored).
        code: key code.
        value: 1 down, 0 up, 2 auto-repeat (repeat is ignored).
    """
    if ev_type != EV_KEY or value != KEY_DOWN:
        return None
    return KEYMAP.get(code)
