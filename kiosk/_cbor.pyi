"""Type stub of the compiled fast path of kiosk.cborsafe.loads (kiosk/_cbor.c)."""

from typing import Any

class Unsupported(ValueError):
    """Not decoded here: outside the strict subset, or not well-formed (cbor2 decides)."""

def loads(data: bytes, max_depth: int, text_keys: bool, /) -> Any:
    """Decode one CBOR item of the strict subset; raises :class:`Unsupported` for anything else."""

def split_sign1_tbs(data: bytes, /) -> tuple[bytes, bytes, bytes, int | None, bytes] | None:
    """kiosk.verify.cose.split_sign1 of the usual COSE_Sign1 shape plus its Sig_structure."""
