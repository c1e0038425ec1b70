"""Former home of the CBOR bounds check, now in :mod:`kiosk.cborsafe` (kept for imports)."""

from __future__ import annotations

from kiosk.cborsafe import CborError as CborBoundsError
from kiosk.cborsafe import check_bounds

__all__ = ["CborBoundsError", "check_bounds"]
