"""KTP input: NIK validation, signed privacy-preserving status lists, input devices.

The gate calls :class:`NikVerifier` (built by :func:`build_nik_verifier`) like
the QR verifier, feeds keys into a :class:`NikEntry`, and resolves manual KTP
checks through :class:`ManualCheck`. See docs/nik-privacy.md.
"""

from kiosk.nik.entry import EntryState, Key, NikEntry, mask_nik
from kiosk.nik.manual import ManualAudit, ManualCheck, ManualOutcome
from kiosk.nik.validate import NikProblem, NikVerdict, validate_nik
from kiosk.nik.verifier import NikStats, NikVerifier, is_pending
from kiosk.nik.wiring import build_nik_verifier, sim_nik_verifier

__all__ = [
    "EntryState",
    "Key",
    "ManualAudit",
    "ManualCheck",
    "ManualOutcome",
    "NikEntry",
    "NikProblem",
    "NikStats",
    "NikVerdict",
    "NikVerifier",
    "build_nik_verifier",
    "is_pending",
    "mask_nik",
    "sim_nik_verifier",
    "validate_nik",
]
