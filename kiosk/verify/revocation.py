"""Revocation: EU DCC revocation hashes and a local blocklist of signer keys.

Hash types (EU DCC revocation technical specification; our reading is the one
implemented by the German Corona-Warn-App, ``RevocationCalculation.kt``):

* ``UCI``: SHA-256 of the UVCI string exactly as in the certificate's ``ci``
  (UTF-8, ``URN:UVCI:`` prefix included when present);
* ``COUNTRYCODEUCI``: SHA-256 of the CWT issuer claim (``iss``, the issuing
  country code) immediately followed by the UVCI;
* ``SIGNATURE``: SHA-256 of the COSE signature bytes -- for ES256 only the
  first half (the ``r`` value), for PS256 the whole signature.

Each hash is truncated to its first 16 bytes (128 bits).  A large list of
hashes is kept as one ``bytes`` object of sorted fixed-width 16-byte records
with a 2-byte-prefix index and a prefix bitmap (:class:`HashList`): a million
entries cost 18.3 MB (16 MB records, 256 KB index, 2 MB bitmap; a
``frozenset`` of ``bytes`` costs 83 MB) and a lookup ~0.2 µs when the hash
is absent, < 1 µs when present (``bench/revocation.py``).
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "HASH_LEN",
    "HashList",
    "Revocation",
    "countrycodeuci_hash",
    "signature_hash",
    "uci_hash",
]

HASH_LEN = 16
INDEX_FROM = 4096  # entries; smaller lists are kept as a frozenset
KID_LEN = 8
HASH_TYPES = ("uci", "countrycodeuci", "signature")


_sha256 = hashlib.sha256


def _h(data: bytes) -> bytes:
    return _sha256(data).digest()[:HASH_LEN]


def uci_hash(uvci: str) -> bytes:
    """UCI revocation hash of a UVCI (16 bytes)."""
    return _h(uvci.encode("utf-8"))


def countrycodeuci_hash(issuer: str, uvci: str) -> bytes:
    """COUNTRYCODEUCI revocation hash: issuing country code + UVCI (16 bytes)."""
    return _h((issuer + uvci).encode("utf-8"))


def signature_hash(signature: bytes, *, ecdsa: bool) -> bytes:
    """SIGNATURE revocation hash: of ``r`` only for ES256 (``ecdsa=True``), else all bytes."""
    return _h(signature[: len(signature) // 2] if ecdsa else signature)


class HashList:
    """An immutable sorted set of 16-byte hashes, stored as one bytes object.

    Lists of at least :data:`INDEX_FROM` entries keep 16 bytes per entry plus
    a 65,537-entry index (256 KB) of where each 2-byte prefix starts and a
    bitmap of the prefixes present (~2 bytes per 16 entries, at most 2 MB).
    A lookup first reads one bit of the bitmap (a clear bit, ~15 times in 16
    for an absent hash, answers at once), then searches only the ~n/65,536
    records sharing its 2-byte prefix with one C-level ``bytes.find`` (O(1)
    expected, O(n/65,536) worst; < 1 µs for a million entries).  Smaller
    lists are a ``frozenset`` (O(1), < 0.5 MB).
    """

    __slots__ = ("_bitmap_bytes", "_data", "_has", "_index", "_n", "_small")

    def __init__(self, data: bytes = b"") -> None:
        """Wrap already sorted, duplicate-free records.

        Raises:
            ValueError: the length is not a multiple of 16 or the records are
                not strictly ascending (unsorted or duplicated).
        """
        if len(data) % HASH_LEN:
            raise ValueError(f"hash list length {len(data)} is not a multiple of {HASH_LEN}")
        n = len(data) // HASH_LEN
        if n > 1:
            # Vectorised strict-order check: compare each record with the next as
            # two big-endian 64-bit words (the same order as bytes comparison).
            words = np.frombuffer(data, ">u8").reshape(n, 2)
            hi_a, hi_b = words[:-1, 0], words[1:, 0]
            lo_a, lo_b = words[:-1, 1], words[1:, 1]
            if not bool(np.all((hi_a < hi_b) | ((hi_a == hi_b) & (lo_a < lo_b)))):
                raise ValueError("hash list is not strictly ascending")
        self._data = bytes(data)
        self._n = n
        self._index: array[int] | None = None
        # Small lists: a set is O(1) and at most ~400 KB; large ones: prefix index.
        self._small: frozenset[bytes] | None = None
        # The membership test of a 16-byte bytes object, bound once: Revocation.match
        # calls it directly, without the dispatch and the checks of ``in``.
        self._has: Callable[[bytes], bool]
        self._bitmap_bytes = 0
        if n < INDEX_FROM:
            self._small = frozenset(self._data[i : i + HASH_LEN]
                                    for i in range(0, len(self._data), HASH_LEN))
            self._has = self._small.__contains__
        else:
            prefixes = np.frombuffer(self._data, ">u2")[::HASH_LEN // 2]
            starts = np.searchsorted(prefixes, np.arange(65537), side="left")
            self._index = array("I", starts.astype(np.uint32).tobytes())
            # One bit per k-bit prefix, k ~ log2(16 n) (at most 24: 2 MB for a
            # million records): ~1 bit in 16 is set, so most misses end after
            # one byte read, without touching the index or the records.
            bits = min(24, max(16, (n * 16).bit_length()))
            records = np.frombuffer(self._data, np.uint8).reshape(n, HASH_LEN)
            top = ((records[:, 0].astype(np.uint32) << 16) | (records[:, 1].astype(np.uint32) << 8)
                   | records[:, 2]) >> (24 - bits)
            present = np.zeros(1 << bits, dtype=bool)
            present[top] = True
            bitmap = np.packbits(present, bitorder="little").tobytes()
            self._bitmap_bytes = len(bitmap)
            self._has = _indexed_lookup(self._data, self._index, bitmap, 24 - bits)

    @classmethod
    def from_hashes(cls, hashes: Iterable[bytes]) -> HashList:
        """Sort and de-duplicate ``hashes`` (each exactly 16 bytes). Raises ValueError otherwise."""
        unique = set()
        for h in hashes:
            if len(h) != HASH_LEN:
                raise ValueError(f"revocation hash of {len(h)} bytes, expected {HASH_LEN}")
            unique.add(bytes(h))
        return cls(b"".join(sorted(unique)))

    @property
    def raw(self) -> bytes:
        """The sorted records, concatenated (the bundle's wire form)."""
        return self._data

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes held for lookups: the records, plus index and bitmap for a large list."""
        index = 0 if self._index is None else len(self._index) * self._index.itemsize
        return len(self._data) + index + self._bitmap_bytes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HashList) and self._data == other._data

    def __hash__(self) -> int:
        return hash(self._data)

    def __repr__(self) -> str:
        return f"HashList({self._n} entries)"

    def __contains__(self, item: object) -> bool:
        if type(item) is not bytes or len(item) != HASH_LEN:
            return False
        return self._has(item)


def _indexed_lookup(data: bytes, index: array[int], bitmap: bytes,
                    shift: int) -> Callable[[bytes], bool]:
    """Membership in the sorted records ``data`` through the 2-byte-prefix ``index``.

    ``bitmap`` has bit p set when some record's first 3 bytes shifted right by
    ``shift`` are p: a clear bit answers "no" without touching ``index`` and
    ``data``.  A closure (not a method): the per-scan lookup reads its
    bindings from cells.
    """
    find = data.find

    def has(item: bytes) -> bool:
        top = ((item[0] << 16) | (item[1] << 8) | item[2]) >> shift
        if not (bitmap[top >> 3] >> (top & 7)) & 1:
            return False
        prefix = (item[0] << 8) | item[1]
        lo, hi = index[prefix] << 4, index[prefix + 1] << 4  # x HASH_LEN (16)
        # The ~n/65,536 records of this prefix are searched by one C-level
        # find; a hit must start on a record boundary (lo is one).
        pos = find(item, lo, hi)
        while pos >= 0:
            if not (pos - lo) & 15:
                return True
            pos = find(item, pos + 1, hi)
        return False

    return has


def _revocation_check(
    signature_has: Callable[[bytes], bool] | None, uci_has: Callable[[bytes], bool] | None,
    ccu_has: Callable[[bytes], bool] | None,
) -> Callable[[bytes, bool, Iterable[str], str | None], str | None]:
    """The body of :attr:`Revocation.revoked_by` over the non-empty lists' lookups.

    The hashes are those of :func:`uci_hash`, :func:`countrycodeuci_hash` and
    :func:`signature_hash` (the tests compare), computed inline.
    """
    sha256 = _sha256

    def revoked_by(signature: bytes, ecdsa: bool, uvcis: Iterable[str],
                   issuer: str | None) -> str | None:
        if signature_has is not None and signature_has(sha256(
                signature[: len(signature) // 2] if ecdsa else signature).digest()[:HASH_LEN]):
            return "signature"
        prefix = issuer.encode("utf-8") if ccu_has is not None and issuer is not None else None
        if uci_has is None and prefix is None:
            return None
        for uvci in uvcis:
            raw = uvci.encode("utf-8")
            if uci_has is not None and uci_has(sha256(raw).digest()[:HASH_LEN]):
                return "uci"
            if prefix is not None and ccu_has(  # type: ignore[misc]  # not None with prefix
                    sha256(prefix + raw).digest()[:HASH_LEN]):
                return "countrycodeuci"
        return None

    return revoked_by


@dataclass(frozen=True)
class Revocation:
    """Revocation data: three hash lists and a blocklist of signer kids.

    :meth:`match` runs on every scan: up to three SHA-256 and three lookups
    (~3 µs in all), each skipped when its list is empty.
    """

    uci: HashList = field(default_factory=HashList)
    countrycodeuci: HashList = field(default_factory=HashList)
    signature: HashList = field(default_factory=HashList)
    kids: frozenset[bytes] = frozenset()
    has_hashes: bool = field(init=False, repr=False, compare=False)
    revoked_by: Callable[[bytes, bool, Iterable[str], str | None], str | None] = field(
        init=False, repr=False, compare=False)
    """:meth:`match` with positional arguments ``(signature, ecdsa, uvcis, issuer)``.

    The per-scan call: a closure over the lists' lookups, bound once here, so
    a scan pays no keyword parsing and no attribute lookups.
    """

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_hashes",
                           bool(self.uci._n or self.countrycodeuci._n or self.signature._n))
        object.__setattr__(self, "revoked_by", _revocation_check(
            *(hash_list._has if hash_list._n else None
              for hash_list in (self.signature, self.uci, self.countrycodeuci))))

    def __len__(self) -> int:
        return len(self.uci) + len(self.countrycodeuci) + len(self.signature) + len(self.kids)

    def kid_blocked(self, kid: bytes) -> bool:
        """True when the signer key ``kid`` is on the local blocklist."""
        return kid in self.kids

    def match(self, *, uvcis: Iterable[str], issuer: str | None, signature: bytes,
              ecdsa: bool) -> str | None:
        """The hash type ("uci", "countrycodeuci", "signature") that revokes, else None.

        ``uvcis`` are the ``ci`` values of the certificate's entries; ``issuer``
        is the CWT ``iss`` claim (None skips COUNTRYCODEUCI).
        """
        return self.revoked_by(signature, ecdsa, uvcis, issuer)

    def to_obj(self) -> dict[str, Any]:
        """The bundle form: ``{"uci", "countrycodeuci", "signature": bstr, "kids": [bstr]}``."""
        return {
            "uci": self.uci.raw,
            "countrycodeuci": self.countrycodeuci.raw,
            "signature": self.signature.raw,
            "kids": sorted(self.kids),
        }

    @classmethod
    def from_obj(cls, obj: Any) -> Revocation:
        """Parse the bundle form (every key optional). Raises ValueError on a malformed value."""
        if obj is None:
            return cls()
        if not isinstance(obj, Mapping):
            raise ValueError("revocation is not a map")
        unknown = set(obj) - {*HASH_TYPES, "kids"}
        if unknown:
            raise ValueError(f"revocation: {len(unknown)} unknown keys, "
                             f"e.g. {min(map(str, unknown))!r:.40}")
        lists = {}
        for name in HASH_TYPES:
            raw = obj.get(name, b"")
            if not isinstance(raw, bytes):
                raise ValueError(f"revocation.{name} is not a byte string")
            lists[name] = HashList(raw)
        kids = obj.get("kids", [])
        if not isinstance(kids, list | tuple) or not all(
            isinstance(k, bytes) and len(k) == KID_LEN for k in kids
        ):
            raise ValueError(f"revocation.kids must be a list of {KID_LEN}-byte kids")
        return cls(kids=frozenset(kids), **lists)
