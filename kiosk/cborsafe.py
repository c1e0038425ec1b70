"""The one reader for untrusted CBOR: bounded and strict before any object is built.

Every CBOR item that reaches the device from outside goes through :func:`loads`
(or :func:`loads_tagged` for an envelope such as COSE_Sign1): signed-document
envelopes and their headers, trust bundle bodies, NIK list manifests, HC1
COSE envelopes and, after their signature check, CWT claims.  Each format
states its :class:`Limits` next to its parser; docs/security.md lists them.

What is refused, and when:

* **size**: more than ``max_bytes`` bytes -- checked first, nothing decoded;
* **item count and depth**: :func:`check_bounds` walks the item heads
  iteratively (no recursion, no allocation per item) and refuses more than
  ``max_items`` items or nesting deeper than ``max_depth``, *before* ``cbor2``
  builds anything.  An item takes at least one byte, so the walk is skipped
  for inputs shorter than ``max_items`` bytes (the verify hot path);
* **tags**: every tag except those in ``Limits.tags`` (only the date/time
  tags 0 and 1 are ever allowed, inside CWT claims).  In particular tags 28/29
  (shared references, which turn a few hundred bytes into an object graph
  whose printed or hashed form is exponentially large), tags 2/3 (bignums),
  regular expressions (35) and MIME messages (36).  An envelope's leading tags
  are read here, not by ``cbor2`` (:func:`loads_tagged`);
* **duplicate map keys** (RFC 9052 section 3 / RFC 8949 section 5.6), also
  keys that are equal as Python values (``1``, ``1.0`` and ``true``);
* **indefinite-length** strings, arrays and maps (no format uses them);
* with ``Limits.text_keys``, map keys that are not text or byte strings (the
  formats with text keys: no crafted colliding integer hashes);
* anything that is not one well-formed item, including bytes after it.

Every refusal is a :class:`CborError` whose message names the rule, never the
content.  The depth and item rules follow ``cbor2``'s own ``max_depth`` and
:func:`check_bounds`; both are run with the same limits.

Decoding: when the install compiled it, ``kiosk/_cbor.c`` decodes first (the
strict subset every format here uses -- no tags, definite lengths, int, text
and byte-string keys -- ~3x faster than ``cbor2`` on a scan's claims).  It
returns what ``cbor2`` returns or declines; on anything it declines (including
every malformed or refused input) ``cbor2`` decodes with the same limits and
names the refusal.  :data:`IMPLEMENTATION` says which ran.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from typing import Any

import cbor2

try:
    from kiosk import _cbor
except ImportError:  # not built (no compiler at install time): cbor2 decodes everything
    _cbor = None  # type: ignore[assignment]

__all__ = [
    "DATE_TAGS",
    "IMPLEMENTATION",
    "CborError",
    "Limits",
    "check_bounds",
    "loads",
    "loads_tagged",
    "shown",
]

#: Tags 0 (RFC 3339 date-time text) and 1 (epoch date-time): the only tags any
#: format lets ``cbor2`` interpret (some DCC issuers tag the test sample time).
DATE_TAGS = frozenset({0, 1})

#: "c" when the compiled fast path (kiosk/_cbor.c) decodes first, else "python" (cbor2 only).
IMPLEMENTATION = "c" if _cbor is not None else "python"


class CborError(ValueError):
    """Untrusted CBOR refused: malformed, out of bounds, or outside the accepted subset.

    The message names the rule that refused it and never quotes the content.
    """


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one format's CBOR.

    Attributes:
        max_bytes: largest encoded size.
        max_depth: deepest nesting of arrays, maps and tags (an array of scalars is 1).
        max_items: most data items in total (a map pair counts two).
        tags: tags ``cbor2`` may interpret, a subset of :data:`DATE_TAGS`.
        text_keys: map keys must be text or byte strings.
    """

    max_bytes: int
    max_depth: int
    max_items: int
    tags: frozenset[int] = frozenset()
    text_keys: bool = False
    _semantic: dict[int, Any] = field(init=False, repr=False, compare=False)
    _local: threading.local = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.tags <= DATE_TAGS:
            raise ValueError(f"only tags {sorted(DATE_TAGS)} may be allowed")
        if not 0 < self.max_items <= self.max_bytes:
            raise ValueError("max_items must be between 1 and max_bytes")
        object.__setattr__(self, "_semantic", _TagGate(self.tags))
        object.__setattr__(self, "_local", threading.local())

    def _new_decoder(self) -> cbor2.CBORDecoder:
        """A decoder for these limits, kept for this thread (saves ~0.6 us per claims decode)."""
        decoder = cbor2.CBORDecoder(
            _EMPTY,
            tag_hook=_refuse_unknown_tag,
            semantic_decoders=self._semantic,
            max_depth=self.max_depth,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=self.text_keys,
        )
        self._local.decoder = decoder
        return decoder


class _TagGate(dict[int, Any]):
    """``cbor2``'s semantic-decoder table: a refusal for every tag not allowed.

    ``cbor2`` looks every tag up here before its built-in decoders; a KeyError
    lets an allowed tag through to the built-in date/time decoding.
    """

    def __init__(self, allowed: frozenset[int]) -> None:
        super().__init__()
        self._allowed = allowed

    def __getitem__(self, tag: int) -> Any:
        if tag in self._allowed:
            raise KeyError(tag)
        return _refuser(tag)

    def get(self, tag: int, default: Any = None) -> Any:
        return default if tag in self._allowed else _refuser(tag)

    def __contains__(self, tag: object) -> bool:
        return tag not in self._allowed


_EMPTY = io.BytesIO(b"")


# Names of the tags an attacker reaches for, so a refusal says what was tried.
_TAG_NAMES = {0: "date-time", 1: "epoch date-time", 2: "bignum", 3: "negative bignum",
              4: "decimal fraction", 5: "bigfloat", 25: "string reference",
              28: "shared value", 29: "shared reference", 30: "rational", 35: "regular expression",
              36: "MIME message", 37: "UUID", 256: "string-reference namespace", 258: "set"}


def _tag_refusal(tag: object) -> CborError:
    name = _TAG_NAMES.get(tag) if isinstance(tag, int) else None
    return CborError(f"CBOR tag {tag} ({name}) is not allowed here" if name
                     else f"CBOR tag {tag} is not allowed here")


def _refuser(tag: int) -> Any:
    def refuse(*_: object) -> None:
        raise _tag_refusal(tag)

    return refuse


def _refuse_unknown_tag(tag: object, *_: object) -> None:
    raise _tag_refusal(tag.tag if isinstance(tag, cbor2.CBORTag) else "?")


# cbor2's own messages may quote a key or value; only these fixed phrases are used.
_EXPLAINED = (
    ("Duplicate map key", "duplicate map key"),
    ("map key must be", "map key is not a text or byte string"),
    ("indefinite length", "indefinite-length item"),
    ("nesting depth", "nesting too deep"),
    ("premature end", "truncated CBOR"),
)


def _explain(exc: BaseException) -> CborError:
    """A content-free CborError for an exception ``cbor2`` raised."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, CborError):
            return CborError(str(cause))
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    for phrase, meaning in _EXPLAINED:
        if phrase in text:
            return CborError(meaning)
    return CborError(f"not well-formed CBOR ({type(exc).__name__})")


def loads(data: bytes, limits: Limits) -> Any:
    """Decode one untrusted CBOR item within ``limits``.

    Raises:
        CborError: too large, too many items, too deep, a tag not allowed,
            a duplicate map key, indefinite length, not well-formed, or bytes
            after the item.  The message names the rule, not the content.
    """
    if type(data) is not bytes:
        data = bytes(data)
    size = len(data)
    if size > limits.max_items:  # shorter inputs cannot hold more items than bytes
        if size > limits.max_bytes:
            raise CborError(f"{size} bytes, above the limit of {limits.max_bytes}")
        check_bounds(data, max_depth=limits.max_depth, max_items=limits.max_items)
    if _cbor is not None:
        try:
            return _cbor.loads(data, limits.max_depth, limits.text_keys)
        except _cbor.Unsupported:
            pass  # outside its subset, or refused: cbor2 decides and names the rule
    decoder = getattr(limits._local, "decoder", None) or limits._new_decoder()
    stream = io.BytesIO(data)
    decoder.fp = stream
    try:
        value = decoder.decode()
    except Exception as exc:  # cbor2 raises several types on hostile input
        # A decoder that failed half-way may keep state (depth, buffer): never reuse it.
        limits._local.decoder = None
        raise _explain(exc) from None
    decoder.fp = _EMPTY  # do not keep the input alive until the next call
    if stream.tell() != size:
        raise CborError("bytes after the CBOR item")
    return value


#: Longest echo of an untrusted value in a message (characters of its repr).
SHOWN_MAX = 40


def shown(value: object, limit: int = SHOWN_MAX) -> str:
    """A short, safe description of an untrusted decoded value for an error message.

    Scalars appear as their type and a repr cut to ``limit`` characters
    (``str 'HS25…'``); integers too long to print, containers and anything
    else appear as their type and size only, never their content.  Cost is
    bounded whatever the value (no full repr is ever built).
    """
    kind = type(value).__name__
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > 128:
            return f"an int of {value.bit_length()} bits"
        text = repr(value)
    elif isinstance(value, str | bytes):
        text = repr(value[: limit + 1])
    elif isinstance(value, list | tuple | dict | set | frozenset):
        return f"a {kind} of {len(value)} items"
    else:
        return f"a {kind}"
    if len(text) > limit:
        text = text[:limit] + "…"
    return f"{kind} {text}"


def loads_tagged(data: bytes, limits: Limits, *, top_tags: frozenset[int],
                 max_tags: int = 2) -> tuple[tuple[int, ...], Any]:
    """Read the leading tags of an envelope (e.g. 61(18(...))), then :func:`loads` the rest.

    Returns ``(tags outermost first, the decoded item under them)``.  A tag is
    accepted only in this leading position and only when in ``top_tags``; the
    item under it follows ``limits`` (no tags unless ``limits.tags``).

    Raises:
        CborError: a leading tag not in ``top_tags``, more than ``max_tags`` of
            them, or any refusal of :func:`loads`.
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > limits.max_bytes:
        raise CborError(f"{len(data)} bytes, above the limit of {limits.max_bytes}")
    tags: list[int] = []
    pos = 0
    while pos < len(data) and data[pos] >> 5 == 6:
        tag, pos = _argument(data, pos + 1, data[pos] & 0x1F)
        if tag not in top_tags:
            raise _tag_refusal(tag)
        tags.append(tag)
        if len(tags) > max_tags:
            raise CborError(f"more than {max_tags} tags around the item")
    return tuple(tags), loads(data[pos:], limits)


def _argument(data: bytes, pos: int, info: int) -> tuple[int, int]:
    """The argument of an item head whose additional info is ``info``, and the next position."""
    if info < 24:
        return info, pos
    if info > 27:
        raise CborError("indefinite length or reserved additional info")
    size = 1 << (info - 24)
    if pos + size > len(data):
        raise CborError("truncated item head")
    return int.from_bytes(data[pos : pos + size], "big"), pos + size


def check_bounds(data: bytes, *, max_depth: int, max_items: int) -> None:
    """Raise :class:`CborError` unless ``data`` is one well-framed CBOR item within bounds.

    Walks the item heads without building objects.  Byte and text strings
    count as one item whatever their length (a 16 MB revocation list is one
    item); indefinite lengths are refused.

    Args:
        data: the encoded CBOR.
        max_depth: largest nesting of non-empty arrays and maps and of tags
            (an array of scalars is 1; an empty container adds no level).
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
            raise CborError("truncated CBOR")
        head = data[pos]
        major, info = head >> 5, head & 0x1F
        value, pos = _argument(data, pos + 1, info)
        items += 1
        if items > max_items:
            raise CborError(f"more than {max_items} items")
        if major in (2, 3):
            pos += value
            if pos > end:
                raise CborError("string runs past the end")
        elif major in (4, 5, 6):
            count = value * 2 if major == 5 else value if major == 4 else 1
            if count > max_items:
                raise CborError(f"container of {count} items")
            if count:  # an empty container nests nothing (as cbor2's max_depth counts)
                pending.append(count)
                if len(pending) - 1 > max_depth:
                    raise CborError(f"nesting deeper than {max_depth}")
    if pos != end:
        raise CborError("bytes after the CBOR item")
