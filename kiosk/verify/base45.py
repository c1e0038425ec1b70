"""Base45 (RFC 9285) encoding and strict, fast decoding.

The decoder is on the hot path of every scan: a ~600-character QR payload is
decoded per verification.  :func:`decode` is the compiled decoder
(``kiosk/verify/_base45.c``, ~0.3 µs for 600 characters) when the install
built it, else :func:`decode_python`; both give the same bytes or the same
error (differential tests and the fuzz target compare them).
:data:`IMPLEMENTATION` says which one runs ("c" or "python").

The pure-Python decoder (measured on the dev box for 620 characters, run
between signature checks: per-character loop ~45 µs, numpy vectorisation ~20
µs, this version ~3-4 µs) does the arithmetic for all groups at once inside
one big Python integer ("SIMD within a register"): ``bytes.translate`` maps
characters to digit values (C), ``int.from_bytes`` packs them with each
3-digit group in its own 24-bit field, and three masked shifts and two
multiplications compute ``d0 + 45*d1 + 2025*d2`` for every field in parallel
(a group's value is at most 91,124, 17 bits, so no field overflows into the
next). The big-endian result with every third (zero) byte deleted is the
output. No numpy: its per-call overhead dominated for inputs this small.

Validation is strict: a character outside the alphabet (lower case included),
a length of 1 modulo 3, a 3-character group above 0xFFFF or a final pair above
0xFF all raise :class:`Base45Error` -- and nothing else is ever raised.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable

__all__ = ["ALPHABET", "IMPLEMENTATION", "Base45Error", "decode", "decode_python", "encode"]

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

_INVALID = 0xFF
_DIGITS = bytes(ALPHABET.find(chr(i)) if chr(i) in ALPHABET else _INVALID for i in range(256))


# (low, high) masks per group count: low has 0xFF in the lowest byte of every
# 24-bit field, high the top byte.  QR payloads come in a few lengths, so a
# small cache avoids rebuilding two ~600-byte integers per scan.
_MASKS: dict[int, tuple[int, int]] = {}
_MASKS_MAX = 64


def _masks(groups: int) -> tuple[int, int]:
    low = int.from_bytes(b"\xff\x00\x00" * groups, "little")
    masks = (low, low << 16)
    if len(_MASKS) >= _MASKS_MAX:
        _MASKS.clear()
    _MASKS[groups] = masks
    return masks


class Base45Error(ValueError):
    """The text is not valid Base45 (bad character, bad length or value out of range)."""


def decode_python(text: str) -> bytes:
    """Decode Base45 ``text`` into bytes (the pure-Python reference decoder).

    Raises:
        Base45Error: on a character outside the Base45 alphabet (lower case is
            invalid too), a length of 1 modulo 3, or a group whose value is out
            of range (> 0xFFFF for 3 characters, > 0xFF for a final pair).
            Never raises anything else for a ``str`` argument.
    """
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise Base45Error("non-ASCII character") from None
    rest = len(raw) % 3
    if rest == 1:
        raise Base45Error(f"invalid length {len(raw)} (1 modulo 3)")
    digits = raw.translate(_DIGITS)
    if _INVALID in digits:
        raise Base45Error("character outside the Base45 alphabet")
    n = len(digits) - rest
    if n:
        groups = n // 3
        # Big-endian: the first group is the most significant field, its first
        # digit the field's top byte (d0 << 16 | d1 << 8 | d2).
        packed = int.from_bytes(digits[:n] if rest else digits, "big")
        masks = _MASKS.get(groups)
        if masks is None:
            masks = _masks(groups)
        low, high = masks
        words = ((packed >> 16) & low) + 45 * ((packed >> 8) & low) + 2025 * (packed & low)
        if words & high:  # bits 16..23 of any field: a group above 0xFFFF
            raise Base45Error("3-character group above 0xFFFF")
        # Per group: 0, high byte, low byte; one C-level strided delete drops the 0s.
        pairs = bytearray(words.to_bytes(n, "big"))
        del pairs[0::3]
        if rest:
            pairs.append(_tail(digits))
        return bytes(pairs)
    return bytes((_tail(digits),)) if rest else b""


def _tail(digits: bytes) -> int:
    value: int = digits[-2] + digits[-1] * 45
    if value > 0xFF:
        raise Base45Error("final 2-character group above 0xFF")
    return value


decode: Callable[[str], bytes] = decode_python
"""Decode Base45 ``text`` into bytes: the compiled decoder when built, else :func:`decode_python`.

Same contract as :func:`decode_python`: raises :class:`Base45Error` on bad input,
nothing else for a ``str``.
"""
IMPLEMENTATION = "python"
try:
    from kiosk.verify import _base45
except ImportError:  # not built (no compiler at install time): the reference decoder
    pass
else:
    _base45.bind(Base45Error)
    decode = _base45.decode
    IMPLEMENTATION = "c"


def encode(data: bytes) -> str:
    """Encode ``data`` as Base45 text (upper-case alphabet, RFC 9285). Never raises for bytes."""
    n = len(data) - len(data) % 2
    words = array("H", data[:n])
    if sys.byteorder == "little":
        words.byteswap()  # Base45 reads each pair of bytes as a big-endian number
    parts = []
    for w in words:
        high, low = divmod(w, 45)
        parts.append(ALPHABET[low] + ALPHABET[high % 45] + ALPHABET[high // 45])
    if len(data) % 2:
        last = data[-1]
        parts.append(ALPHABET[last % 45] + ALPHABET[last // 45])
    return "".join(parts)
