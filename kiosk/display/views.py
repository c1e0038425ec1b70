"""The gate's other screens: emergency, scanner fault, tailgate, NIK, degraded idle, hold steady.

Each function returns a :class:`~kiosk.display.render.View` (what to show);
:func:`~kiosk.display.render.draw_view` decides sizes, so every screen reads
from 1.5 m at 800×480 and at 1920×1080. :func:`view_for` maps the gate
machine's screen request (a kind string plus an optional decision) and the
device status to a view, so the scan loop needs no display knowledge.

Device status: another part (the verifier's ``health()``) reports how fresh the
trust list is and whether the clock is synchronised. :class:`DeviceStatus` is
this module's small, stable view of that; :func:`status_from_health` maps any
object with ``mode`` and ``clock_state`` attributes onto it, tolerating values
it does not know (they count as "not fine").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kiosk.decision import Decision
from kiosk.display.messages import IDLE, Message
from kiosk.display.render import (
    NEUTRAL,
    RED,
    TEXT,
    TEXT_DIM,
    TITLE_FRAC,
    TITLE_MIN_FRAC,
    TextBlock,
    View,
    decision_view,
)

AMBER = (204, 102, 0)  # emergency: orange, distinct from allow green and deny red
FAULT = (90, 90, 96)  # scanner fault: grey, the gate is not judging anyone
AMBER_TEXT = (255, 190, 90)

EMERGENCY = Message(
    "PINTU DARURAT TERBUKA",
    "EMERGENCY — GATE OPEN",
    "Silakan keluar dengan tenang, ikuti petunjuk petugas",
    "Please leave calmly and follow staff instructions",
)
SCANNER_FAULT = Message(
    "PEMINDAI TIDAK BERFUNGSI",
    "SCANNER OUT OF ORDER",
    "Silakan gunakan gerbang lain atau minta bantuan petugas",
    "Please use another gate or ask staff for help",
)
TAILGATE = Message(
    "SATU ORANG SATU PINDAI",
    "ONE PERSON PER SCAN",
    "Setiap orang harus memindai sertifikatnya sendiri",
    "Everyone must scan their own certificate",
)
NIK_PROMPT = Message(
    "MASUKKAN NIK ANDA",
    "ENTER YOUR ID NUMBER (NIK)",
    "16 digit NIK pada KTP, lalu tekan OK",
    "The 16 digits on your KTP, then press OK",
)
NIK_CHECKING = Message(
    "MEMERIKSA NIK…",
    "CHECKING YOUR ID NUMBER…",
    "Mohon tunggu sebentar",
    "Please wait a moment",
)
HOLD_STEADY = Message(
    "TAHAN SEBENTAR",
    "HOLD STEADY",
    "Kode QR terlihat: tahan ponsel diam, sedikit lebih jauh",
    "QR code seen: keep the phone still, a little further away",
)

_CLOCK_OK = frozenset({"ok", "synced", "synchronised", "synchronized", "good", "dev"})


@dataclass(frozen=True)
class DeviceStatus:
    """What the screen needs to know about verification health.

    Attributes:
        trust: ``fresh``, ``stale``, ``expired`` or ``dev`` (the trust list's age).
        clock_ok: False when the wall clock is not known to be synchronised.
    """

    trust: str = "fresh"
    clock_ok: bool = True

    @property
    def degraded(self) -> bool:
        """True when the traveller should be told the gate runs in a degraded mode."""
        return self.trust in ("stale", "expired") or not self.clock_ok


def status_from_health(health: Any) -> DeviceStatus:
    """Map a verifier health report (``.mode``, ``.clock_state``) to a :class:`DeviceStatus`.

    Unknown or missing values: ``mode`` is taken as given (unknown modes are not
    degraded), an unknown ``clock_state`` is "not synchronised".
    """
    mode = str(getattr(health, "mode", "fresh") or "fresh").lower()
    clock = str(getattr(health, "clock_state", "ok") or "ok").lower()
    return DeviceStatus(trust=mode, clock_ok=clock in _CLOCK_OK)


def _message_view(kind: str, colour: tuple[int, int, int], msg: Message) -> View:
    return View(
        kind,
        colour,
        (
            TextBlock(msg.title_id, TITLE_FRAC, TITLE_MIN_FRAC),
            TextBlock(msg.title_en, 0.09, 0.06, TEXT, 1),
        ),
        (TextBlock(msg.hint_id, 0.085, 0.06), TextBlock(msg.hint_en, 0.07, 0.05, TEXT_DIM)),
    )


def emergency_view() -> View:
    """Fire alarm: orange banner "PINTU DARURAT TERBUKA / EMERGENCY — GATE OPEN"."""
    return _message_view("emergency", AMBER, EMERGENCY)


def scanner_fault_view() -> View:
    """The camera delivers no frames: grey banner, use another gate."""
    return _message_view("scanner_fault", FAULT, SCANNER_FAULT)


def tailgate_view() -> View:
    """Someone passed without a grant of their own: red banner, one person per scan."""
    return _message_view("tailgate", RED, TAILGATE)


def idle_view(status: DeviceStatus | None = None) -> View:
    """The waiting screen; in a degraded mode a status line in amber under the hints."""
    base = _message_view("idle", NEUTRAL, IDLE)
    if status is None or not status.degraded:
        return base
    notes: list[str] = []
    if status.trust in ("stale", "expired"):
        notes.append("Data penerbit perlu diperbarui / Issuer list needs an update")
    if not status.clock_ok:
        notes.append("Jam belum tersinkron / Clock not synchronised")
    body = base.body + tuple(TextBlock(n, 0.05, 0.035, AMBER_TEXT) for n in notes)
    return View("idle_degraded", NEUTRAL, base.banner, body)


def nik_prompt_view(masked: str = "") -> View:
    """The KTP/NIK entry prompt showing what has been typed so far.

    ``masked`` comes from :meth:`kiosk.nik.NikEntry.masked`: the entry editor
    alone decides which digits a queue may see. Slots still to type show as
    ``_`` so the traveller sees how many digits remain.
    """
    slots = list(masked.replace(" ", ""))[:16]
    slots += ["_"] * (16 - len(slots))
    shown = " ".join("".join(slots[i : i + 4]) for i in range(0, 16, 4))
    base = _message_view("nik_prompt", NEUTRAL, NIK_PROMPT)
    entry = TextBlock(shown, 0.13, 0.08, TEXT, 1)
    return View("nik_prompt", NEUTRAL, base.banner, (entry, *base.body))


def nik_checking_view() -> View:
    """A typed NIK is being checked (about a second on a Pi 4): a calm neutral banner."""
    return _message_view("nik_checking", NEUTRAL, NIK_CHECKING)


def hold_steady_view() -> View:
    """A code is seen but not yet read: the calm waiting colour, "hold steady"."""
    return _message_view("hold_steady", NEUTRAL, HOLD_STEADY)


def view_for(kind: str, decision: Decision | None, status: DeviceStatus | None = None) -> View:
    """The view for a gate screen request (see :class:`kiosk.gate.machine.ScreenRequest`).

    Raises:
        ValueError: ``kind`` is unknown, or ``decision`` is missing for ``"decision"``.
    """
    if kind == "decision":
        if decision is None:
            raise ValueError("a decision screen needs a decision")
        return decision_view(decision)
    builders = {
        "idle": lambda: idle_view(status),
        "emergency": emergency_view,
        "scanner_fault": scanner_fault_view,
        "tailgate": tailgate_view,
        "nik_prompt": nik_prompt_view,
        "nik_checking": nik_checking_view,
        "hold_steady": hold_steady_view,
    }
    if kind not in builders:
        raise ValueError(f"unknown screen {kind!r}")
    return builders[kind]()


def screen_name(kind: str, decision: Decision | None) -> str:
    """A short name for logs: ``allowed``, ``denied:<reason>``, or the kind."""
    if kind == "decision" and decision is not None:
        return "allowed" if decision.allowed else f"denied:{decision.reason}"
    return kind
