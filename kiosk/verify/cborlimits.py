"""A bounds check for untrusted CBOR *before* it is decoded into Python objects.

``cbor2`` limits nesting (400) but not the number of items: 64 MB of CBOR
made of one-byte integers would become tens of millions of Python objects
(gigabytes on a 1 GB Pi).  :func:`check_bounds` walks the item heads
iteratively (no recursion, no allocation per item) and refuses the document
when it nests deeper than ``max_depth`` or holds more than ``max_items``
items.  Byte and text strings count as one item whatever their length, so a
16 MB revocation list is one item.  Indefinite-length items are refused.
"""

from __future__ import annotations

__all__ = ["CborBoundsError", "check_bounds"]


class CborBoundsError(ValueError):
    """The CBOR is malformed, too deep, too big, or uses indefinite lengths."""


def _argument(data: bytes, pos: int, info: int) -> tuple[int, int]:
    if info < 24:
        return info, pos
    if info > 27:
        raise CborBoundsError("indefinite length or reserved additional info")
    size = 1 << (info - 24)
    if pos + size > len(data):
        raise CborBoundsError("truncated item head")
    return int.from_bytes(data[pos : pos + size], "big"), pos + size


def check_bounds(data: bytes, *, max_depth: int, max_items: int) -> None:
    """Raise :class:`CborBoundsError` unless ``data`` is one well-framed CBOR item within bounds.

    Args:
        data: the encoded CBOR.
        max_depth: largest nesting of arrays, maps and tags (top level is 1).
        max_items: largest total number of data items (map pairs count twice).
    """
    pos, items = 0, 0
    # Stack of "children still to read" per open container.
    pending: list[int] = [1]
    end = len(data)
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        pending[-1] -= 1
        if pos >= end:
            raise CborBoundsError("truncated CBOR")
        head = data[pos]
        major, info = head >> 5, head & 0x1F
        value, pos = _argument(data, pos + 1, info)
        items += 1
        if items > max_items:
            raise CborBoundsError(f"more than {max_items} items")
        if major in (2, 3):
            pos += value
            if pos > end:
                raise CborBoundsError("string runs past the end")
        elif major in (4, 5, 6):
            count = value * 2 if major == 5 else value if major == 4 else 1
            if count > max_items:
                raise CborBoundsError(f"container of {count} items")
            pending.append(count)
            if len(pending) - 1 > max_depth:
                raise CborBoundsError(f"nesting deeper than {max_depth}")
    if pos != end:
        raise CborBoundsError("bytes after the CBOR item")
