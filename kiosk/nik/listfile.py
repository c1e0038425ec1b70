"""The NIK status list on disk: a signed manifest and a sorted file of fixed-width keys.

Two files per list version:

- ``*.manifest``: a COSE_Sign1 document of content type
  :data:`kiosk.signing.NIK_LIST` whose payload is the CBOR map of
  :class:`Manifest` (version, salt, KDF parameters, entry width and count,
  issue/expiry times, data size and SHA-256);
- ``*.data``: ``count`` entries of ``width`` bytes, sorted ascending, no header.

Lookups go through ``mmap``: the kernel pages the file in on demand and may
drop those pages under memory pressure, so a 100-million-entry list costs no
process heap. Entries are uniform (KDF output), so interpolation search needs ~3 probes
in a handful of nearby pages instead of binary search's ~27 scattered ones
(which matters when every page fault is a random SD-card read).
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk import cborsafe
from kiosk.cborsafe import shown
from kiosk.closing import Closing
from kiosk.errors import DocumentError
from kiosk.nik.kdf import MAX_WIDTH, MIN_WIDTH, SALT_BYTES, KdfParams
from kiosk.signing import NIK_LIST, sign_document, verify_document

FORMAT = 1
#: A signed manifest file is ~300 bytes; anything above this is not read whole.
MANIFEST_MAX_BYTES = 64 * 1024
#: The manifest payload: one flat map and the kdf map, text keys, no tags.
MANIFEST_LIMITS = cborsafe.Limits(max_bytes=4096, max_depth=3, max_items=64, text_keys=True)
_HASH_CHUNK = 4 * 1024 * 1024
_DONTNEED: int | None = getattr(mmap, "MADV_DONTNEED", None)  # Linux, macOS
RELEASE_EVERY = 256  # lookups between dropping mapped pages from the RSS
_SCAN = 32  # entries left when interpolation stops and bisection finishes


@dataclass(frozen=True, slots=True)
class Manifest:
    """What the authority signs about one list version. Contains no NIK.

    Attributes:
        version: strictly increasing list version; a gate refuses anything not newer.
        salt: per-version random salt (16 bytes) for the KDF.
        kdf: scrypt parameters.
        width: bytes per entry.
        count: number of entries.
        issued_at / expires_at: validity window (UTC, whole seconds).
        data_size: size of the data file in bytes (== width * count).
        data_sha256: SHA-256 of the data file.
    """

    version: int
    salt: bytes
    kdf: KdfParams
    width: int
    count: int
    issued_at: datetime
    expires_at: datetime
    data_sha256: bytes

    @property
    def data_size(self) -> int:
        """Expected size of the data file in bytes."""
        return self.width * self.count

    def expired(self, now: datetime) -> bool:
        """True when ``now`` is at or past ``expires_at``."""
        return now >= self.expires_at

    def summary(self) -> dict[str, object]:
        """Everything but the salt, for ``kiosk nik inspect`` and logs."""
        return {
            "version": self.version,
            "kdf": {"alg": "scrypt", "n": self.kdf.n, "r": self.kdf.r, "p": self.kdf.p},
            "width": self.width,
            "count": self.count,
            "data_size": self.data_size,
            "issued_at": self.issued_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "data_sha256": self.data_sha256.hex(),
        }

    def to_cbor(self) -> bytes:
        """The CBOR payload that the authority signs."""
        return cbor2.dumps(
            {
                "format": FORMAT,
                "version": self.version,
                "salt": self.salt,
                "kdf": {"alg": "scrypt", "n": self.kdf.n, "r": self.kdf.r, "p": self.kdf.p},
                "width": self.width,
                "count": self.count,
                "issued_at": int(self.issued_at.timestamp()),
                "expires_at": int(self.expires_at.timestamp()),
                "data_size": self.data_size,
                "data_sha256": self.data_sha256,
            }
        )

    @classmethod
    def from_cbor(cls, payload: bytes) -> Manifest:
        """Parse a (signature-checked) payload.

        Every field is type- and range-checked (a signed manifest may still be
        hostile: a leaked or buggy signer).  Raises DocumentError naming the
        field and the type or range it breaks, never echoing more than a
        short prefix of the value.
        """
        try:
            raw = cborsafe.loads(payload, MANIFEST_LIMITS)
        except cborsafe.CborError as exc:
            raise DocumentError(f"NIK list manifest refused: {exc}") from None
        if not isinstance(raw, dict):
            raise DocumentError(f"NIK list manifest: not a map ({shown(raw)})")
        unknown = set(raw) - _MANIFEST_KEYS
        if unknown:
            raise DocumentError(f"NIK list manifest: {len(unknown)} unknown keys, "
                                f"e.g. {shown(min(map(str, unknown)))}")
        if type(raw.get("format")) is not int or raw["format"] != FORMAT:
            raise DocumentError(f"NIK list manifest: unknown format ({shown(raw.get('format'))})")
        kdf_raw = raw.get("kdf")
        if not isinstance(kdf_raw, dict) or set(kdf_raw) - {"alg", "n", "r", "p"}:
            raise DocumentError("NIK list manifest: kdf must be a map of alg, n, r, p")
        if kdf_raw.get("alg") != "scrypt":
            raise DocumentError(
                f"NIK list manifest: unsupported KDF (kdf.alg is {shown(kdf_raw.get('alg'))})")
        try:
            kdf = KdfParams(_field(kdf_raw, "kdf.n", "n", 2, 2**30),
                            _field(kdf_raw, "kdf.r", "r", 1, 2**10),
                            _field(kdf_raw, "kdf.p", "p", 1, 2**10))
        except ValueError as exc:  # KdfParams names the parameter and its (small) value
            raise DocumentError(f"NIK list manifest: kdf: {exc}") from None
        width = _field(raw, "width", "width", MIN_WIDTH, MAX_WIDTH)
        count = _field(raw, "count", "count", 0, MAX_COUNT)
        manifest = cls(
            version=_field(raw, "version", "version", 1, MAX_VERSION),
            salt=_bytes(raw, "salt", SALT_BYTES, 64),
            kdf=kdf,
            width=width,
            count=count,
            issued_at=datetime.fromtimestamp(_field(raw, "issued_at", "issued_at", 0, _MAX_TS),
                                             UTC),
            expires_at=datetime.fromtimestamp(
                _field(raw, "expires_at", "expires_at", 0, _MAX_TS), UTC),
            data_sha256=_bytes(raw, "data_sha256", 32, 32),
        )
        if _field(raw, "data_size", "data_size", 0, MAX_DATA_BYTES) != manifest.data_size:
            raise DocumentError("NIK list manifest: data_size != width * count")
        return manifest


_MANIFEST_KEYS = frozenset({"format", "version", "salt", "kdf", "width", "count", "issued_at",
                            "expires_at", "data_size", "data_sha256"})
#: Versions are counters, kept exact in JSON/doubles (the install state file).
MAX_VERSION = 2**53 - 1
#: 16 GiB: ~2 billion 8-byte entries, ten times Indonesia's population.
MAX_DATA_BYTES = 16 * 1024**3
MAX_COUNT = MAX_DATA_BYTES // MIN_WIDTH
_MAX_TS = 253402300799  # 9999-12-31T23:59:59Z: the last second a datetime can hold


def _field(raw: dict[Any, Any], name: str, key: str, low: int, high: int) -> int:
    """Integer ``raw[key]`` within ``low..high``; DocumentError naming ``name`` otherwise."""
    value = raw.get(key)
    if value is None:
        raise DocumentError(f"NIK list manifest: {name} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise DocumentError(
            f"NIK list manifest: {name} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise DocumentError(f"NIK list manifest: {name} out of range ({low}..{high})")
    return value


def _bytes(raw: dict[Any, Any], key: str, low: int, high: int) -> bytes:
    """Byte string ``raw[key]`` of ``low..high`` bytes; DocumentError naming ``key`` otherwise."""
    value = raw.get(key)
    if not isinstance(value, bytes):
        raise DocumentError(
            f"NIK list manifest: {key} must be a byte string, not {type(value).__name__}")
    if not low <= len(value) <= high:
        raise DocumentError(f"NIK list manifest: {key} must be {low}..{high} bytes")
    return value


def sign_manifest(manifest: Manifest, key: Ed25519PrivateKey) -> bytes:
    """The signed manifest document (central side)."""
    return sign_document(manifest.to_cbor(), key, content_type=NIK_LIST)


def read_manifest(blob: bytes, trusted: Iterable[Ed25519PublicKey]) -> Manifest:
    """Verify a signed manifest against the authority keys and parse it.

    Raises:
        DocumentError: bad signature, wrong content type (e.g. a trust bundle),
            unknown key, or a malformed manifest.
    """
    return Manifest.from_cbor(verify_document(blob, trusted, content_type=NIK_LIST))


def sha256_file(path: Path) -> tuple[bytes, int]:
    """SHA-256 and size of a file, read in 4 MiB chunks. Raises OSError."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.digest(), size


class StatusList(Closing):
    """Read-only membership lookups in an installed data file, through ``mmap``.

    The caller has already checked the manifest signature and the data hash
    (see :mod:`kiosk.nik.store`); this class checks only that the file size is
    what the manifest says, so a truncated file is refused rather than misread.

    Args:
        index: optional block index (:func:`block_index`): the first entry of
            every block of ``block_entries(width)`` entries, held in RAM
            (~1.6 MB for 100 M entries). With it a lookup touches one data
            page (one SD-card read when cold) instead of ~3. A wrong index can
            only make members look absent (a false deny), never admit anyone:
            a match is always an entry read from the verified data file.

    Raises:
        DocumentError: the file is missing, has the wrong size, or the index
            has the wrong length.
    """

    def __init__(self, manifest: Manifest, data_path: Path, index: bytes | None = None) -> None:
        self.manifest = manifest
        self.path = data_path
        self._mm: mmap.mmap | None = None
        self._lookups = 0
        self._index: bytes | None = None
        if index is not None:
            self.use_index(index)
        try:
            fd = os.open(data_path, os.O_RDONLY)
        except OSError as exc:
            raise DocumentError(f"NIK list data {data_path}: {exc.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            if size != manifest.data_size:
                raise DocumentError(
                    f"NIK list data {data_path}: {size} bytes, manifest says {manifest.data_size}"
                )
            if size:
                self._mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
                # Random access: tell the kernel not to read ahead 128 KiB per probe.
                if hasattr(self._mm, "madvise") and hasattr(mmap, "MADV_RANDOM"):
                    self._mm.madvise(mmap.MADV_RANDOM)
        finally:
            os.close(fd)  # the mapping keeps its own reference to the file

    def make_index(self) -> bytes:
        """Compute the block index from the mapping (touches one entry per page)."""
        if self._mm is None:
            return b""
        return block_index(self._mm, self.manifest.width, self.manifest.count)

    def use_index(self, index: bytes) -> None:
        """Search through ``index`` from now on. Raises DocumentError on a wrong length."""
        blocks = -(-self.manifest.count // block_entries(self.manifest.width))
        if len(index) != blocks * self.manifest.width:
            raise DocumentError(f"NIK list index: {len(index)} bytes, expected {blocks} blocks")
        self._index = index

    def __contains__(self, key: bytes) -> bool:
        return self.contains(key)

    def contains(self, key: bytes) -> bool:
        """True if the ``width``-byte ``key`` is in the list; False for any other length.

        Every ``RELEASE_EVERY`` lookups the mapping's pages are dropped from this
        process (``MADV_DONTNEED``; they stay in the page cache, so the next
        touch is a minor fault of ~1 us). Without it, mapped pages accumulate
        in the process's RSS (~3 pages per distinct lookup), which the OOM
        killer and memory watchdogs count against the gate.
        """
        found = self._search_index(key) if self._index is not None else self._search(key)
        self._lookups += 1
        mm = self._mm
        if self._lookups % RELEASE_EVERY == 0 and mm is not None and _DONTNEED is not None:
            mm.madvise(_DONTNEED)
        return found

    def _search(self, key: bytes) -> bool:
        """Interpolation search for ``key`` (keys are uniform KDF output, so each probe lands
        close to the target: ~3 probes for 100 M entries, all but the first in
        the same or a neighbouring 4 KiB page). A probe that fails to halve the
        range is followed by a bisection step, so a skewed list still costs at
        most ~2*log2(count) probes.
        """
        mm, width, count = self._mm, self.manifest.width, self.manifest.count
        if mm is None or len(key) != width:
            return False
        target = int.from_bytes(key, "big")

        def at(index: int) -> int:
            return int.from_bytes(mm[index * width : (index + 1) * width], "big")

        lo, hi = 0, count - 1
        bisect_next = False
        while lo <= hi:
            low, high = at(lo), at(hi)
            if target < low or target > high:
                return False
            if target in (low, high):
                return True
            if hi - lo <= _SCAN:
                # A few entries left, within one or two pages: plain binary search.
                return self._bisect(mm, key, lo + 1, hi)
            # Bisect when the last probe did not halve the range (a skewed list).
            pos = (lo + hi) // 2
            if not bisect_next:
                pos = lo + (target - low) * (hi - lo) // (high - low)
            before = hi - lo
            value = at(pos)
            if value == target:
                return True
            if value < target:
                lo = pos + 1
            else:
                hi = pos - 1
            bisect_next = (hi - lo) * 2 > before
        return False

    def _search_index(self, key: bytes) -> bool:
        """Binary search of the in-RAM block index, then of one block in the mapping."""
        mm, index, width, count = self._mm, self._index, self.manifest.width, self.manifest.count
        if mm is None or index is None or len(key) != width:
            return False
        lo, hi = 0, len(index) // width
        while lo < hi:  # first block whose first entry is > key
            mid = (lo + hi) // 2
            if index[mid * width : (mid + 1) * width] <= key:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0:
            return False
        per_block = block_entries(width)
        start = (lo - 1) * per_block
        return self._bisect(mm, key, start, min(start + per_block, count))

    def _bisect(self, mm: mmap.mmap, key: bytes, lo: int, hi: int) -> bool:
        width = self.manifest.width
        while lo < hi:
            mid = (lo + hi) // 2
            entry = mm[mid * width : (mid + 1) * width]
            if entry < key:
                lo = mid + 1
            elif entry > key:
                hi = mid
            else:
                return True
        return False

    def close(self) -> None:
        """Unmap the file. Safe to call twice."""
        if self._mm is not None:
            self._mm.close()
            self._mm = None



def block_entries(width: int) -> int:
    """Entries per index block: as many as fit one 4 KiB page."""
    return max(1, 4096 // width)


def block_index(status_or_data: bytes | mmap.mmap, width: int, count: int) -> bytes:
    """The first entry of every block (reads one entry per page of the data)."""
    step = block_entries(width) * width
    return b"".join(status_or_data[o : o + width] for o in range(0, count * width, step))
