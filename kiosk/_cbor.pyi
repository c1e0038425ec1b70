"""Type stub of the compiled fast path of kiosk.cborsafe.loads (kiosk/_cbor.c)."""

from typing import Any

class Unsupported(ValueError):
    """Not decoded here: outside the strict subset, or not well-formed (cbor2 decides)."""

def loads(data: bytes, max_depth: int, text_keys: bool, /) -> Any:
    """Decode one CBOR item of the strict subset; raises :class:`Unsupported` for anything else."""
