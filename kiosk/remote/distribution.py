"""Trust bundles and NIK lists delivered over MQTT: the release format and its reassembly.

The centre publishes a **release** for the fleet, a site or one gate: a small
retained JSON *descriptor* on ``<scope>/dist/<kind>`` naming each file's size
and SHA-256, and each file cut into retained *chunks* on
``<scope>/dist/<kind>/<sha256>/<index>``, each well under the gate's maximum
MQTT packet size. ``<scope>`` is the gates' topic root with ``_all`` for the
site and/or gate (``kiosk/_all/_all`` for the fleet, ``kiosk/<site>/_all`` for
a site): ``_all`` can never be a real id (ids start with a letter or digit).
Retained messages are what make a gate that was offline catch up: on every
(re)connect the broker hands it the current descriptor and chunks.

Trust bundles come in body formats (:data:`kiosk.verify.bundle.ACCEPTED_FORMATS`)
and a fleet may run firmware that reads different ones. The centre may publish
one variant per format of the same release: each on
``<scope>/dist/trust/f<N>``, and the lowest also on the plain descriptor topic,
which is all that firmware from before variants reads. A gate listens to the
plain topic and to the variants it can read, and fetches the newest version,
in the newest format it reads (:func:`choose`). An offer it cannot read is
reported ("no readable format") instead of leaving the gate to go stale.

Nothing here is trusted. The descriptor only says what to fetch: each chunk is
written to a staging file at its offset, and a file is used only once its size
and SHA-256 match; the content is then installed through exactly the checks of
``kiosk trust install`` / ``kiosk nik install`` (authority signature, version
strictly greater, not expired, atomic), so a forged, older or truncated release
changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kiosk.config.topics import fill_topic_root

__all__ = [
    "ALL",
    "CHUNK_BYTES",
    "KINDS",
    "MAX_DESCRIPTOR_BYTES",
    "MAX_FILE_BYTES",
    "MAX_FORMAT",
    "VARIANT_KINDS",
    "Assembly",
    "FileRef",
    "Release",
    "ReleaseError",
    "choose",
    "chunk_topic",
    "descriptor_topic",
    "parse_descriptor",
    "release_for",
    "scope_roots",
    "split",
    "variant_topic",
]

ALL = "_all"
#: File kinds and the roles of their files, in install order.
KINDS = {"trust": ("bundle",), "nik": ("manifest", "data"), "update": ("manifest", "artifact")}
#: 12 KiB of payload leaves room for the topic and headers below the gate's
#: 16 KiB maximum inbound packet.
CHUNK_BYTES = 12 * 1024
MAX_DESCRIPTOR_BYTES = 4096
#: The largest file a gate will stage (the signed-document limit).
MAX_FILE_BYTES = 64 * 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: Kinds published in format variants, and the highest format number a descriptor may name.
VARIANT_KINDS = frozenset({"trust"})
MAX_FORMAT = 99


class ReleaseError(ValueError):
    """A descriptor or chunk is not acceptable; the message names why (bounded)."""


@dataclass(frozen=True, slots=True)
class FileRef:
    """One file of a release: its role, size and SHA-256 (hex)."""

    role: str
    size: int
    sha256: str

    @property
    def chunks(self) -> int:
        """How many chunks carry it."""
        return max(1, math.ceil(self.size / CHUNK_BYTES))


@dataclass(frozen=True, slots=True)
class Release:
    """A descriptor: what the centre offers (unverified until installed)."""

    kind: str
    version: int
    files: tuple[FileRef, ...]
    format: int | None = None  # the body format of a trust bundle; None: not stated

    def to_json(self) -> bytes:
        """The descriptor's wire form."""
        doc = {
            "v": 1,
            "kind": self.kind,
            "version": self.version,
            "chunk_bytes": CHUNK_BYTES,
            "files": [{"role": f.role, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        if self.format is not None:
            doc["format"] = self.format  # added within v1: older gates ignore it
        return json.dumps(doc, sort_keys=True).encode()


def scope_roots(topic_root: str, site: str, gate: str) -> tuple[str, str, str]:
    """The fleet, site and gate topic roots this gate listens to for releases."""
    return (
        fill_topic_root(topic_root, ALL, ALL),
        fill_topic_root(topic_root, site, ALL),
        fill_topic_root(topic_root, site, gate),
    )


def descriptor_topic(scope_root: str, kind: str) -> str:
    """Where a scope's current release of ``kind`` is described (retained)."""
    return f"{scope_root}/dist/{kind}"


def variant_topic(scope_root: str, kind: str, body_format: int) -> str:
    """Where a scope's release of ``kind`` in ``body_format`` is described (retained)."""
    return f"{scope_root}/dist/{kind}/f{body_format}"


def chunk_topic(scope_root: str, kind: str, sha256: str, index: int) -> str:
    """Where chunk ``index`` of the file with this SHA-256 lies (retained)."""
    return f"{scope_root}/dist/{kind}/{sha256}/{index}"


def release_for(
    kind: str, version: int, files: dict[str, bytes], body_format: int | None = None
) -> Release:
    """The descriptor of ``files`` (role → content) for the centre to publish."""
    if kind not in KINDS or set(files) != set(KINDS[kind]):
        raise ReleaseError(f"a {kind} release needs exactly: {', '.join(KINDS.get(kind, ()))}")
    refs = tuple(
        FileRef(role, len(files[role]), hashlib.sha256(files[role]).hexdigest())
        for role in KINDS[kind]
    )
    return Release(kind, version, refs, body_format)


def choose(
    offers: list[tuple[Release, str]], readable: tuple[int, ...]
) -> tuple[tuple[Release, str] | None, str]:
    """The offer a gate that reads ``readable`` formats should fetch, and what it cannot read.

    ``offers`` are ``(release, scope)`` pairs; a release that states no format is
    tried (its install decides); ``readable`` empty means every format is. The
    pick is the newest version, then the newest format. The second item is empty,
    or says why the newest version offered is out of this gate's reach, so a
    gate on older firmware reports it instead of silently going stale.
    """
    if not offers:
        return None, ""
    usable = [o for o in offers if not readable or o[0].format in (None, *readable)]
    best = max(usable, key=lambda o: (o[0].version, o[0].format or 0), default=None)
    newest = max(o[0].version for o in offers)
    if best is not None and best[0].version == newest:
        return best, ""
    offered = ", ".join(sorted({str(o[0].format) for o in offers if o[0].version == newest}))
    reads = ", ".join(map(str, readable))
    return best, f"no readable format for v{newest} (offered {offered}; reads {reads})"


def split(content: bytes) -> Iterator[tuple[int, bytes]]:
    """``(index, chunk)`` pairs of one file (one empty chunk for an empty file)."""
    if not content:
        yield 0, b""
        return
    for index in range(0, len(content), CHUNK_BYTES):
        yield index // CHUNK_BYTES, content[index : index + CHUNK_BYTES]


def parse_descriptor(payload: bytes, kind: str) -> Release:
    """Check a received descriptor's shape and bounds (never its content's truth).

    Raises:
        ReleaseError: too large, not JSON, wrong kind, or a field out of bounds.
    """
    if len(payload) > MAX_DESCRIPTOR_BYTES:
        raise ReleaseError(f"descriptor is {len(payload)} bytes, limit {MAX_DESCRIPTOR_BYTES}")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        raise ReleaseError("descriptor is not JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != 1 or doc.get("kind") != kind:
        raise ReleaseError(f"descriptor is not a version-1 {kind} release")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 < version < 2**53:
        raise ReleaseError("descriptor version is not a positive integer")
    if doc.get("chunk_bytes") != CHUNK_BYTES:
        raise ReleaseError(f"descriptor chunk size is not {CHUNK_BYTES}")
    files = doc.get("files")
    roles = KINDS[kind]
    if not isinstance(files, list) or len(files) != len(roles):
        raise ReleaseError(f"descriptor must list {len(roles)} file(s)")
    refs = []
    for role, item in zip(roles, files, strict=True):
        if not isinstance(item, dict) or item.get("role") != role:
            raise ReleaseError(f"descriptor file {role!r} missing or out of order")
        size, digest = item.get("size"), item.get("sha256")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_FILE_BYTES:
            raise ReleaseError(f"descriptor {role} size out of bounds (0..{MAX_FILE_BYTES})")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ReleaseError(f"descriptor {role} sha256 is not 64 hex digits")
        refs.append(FileRef(role, size, digest))
    body_format = doc.get("format")
    if body_format is not None and (
        not isinstance(body_format, int) or isinstance(body_format, bool)
        or not 1 <= body_format <= MAX_FORMAT
    ):
        raise ReleaseError(f"descriptor format is not an integer 1..{MAX_FORMAT}")
    return Release(kind, version, tuple(refs), body_format)


class Assembly:
    """One file being reassembled in a staging folder from chunks in any order.

    The staging file has the announced size from the start (a sparse file), so
    a chunk is one positioned write and memory stays at one chunk whatever the
    file's size. Duplicates (QoS 1 redelivery, a retained resend) are harmless.
    """

    def __init__(self, ref: FileRef, staging: Path) -> None:
        self.ref = ref
        self.path = staging / f"{ref.sha256}.part"
        self._have = bytearray(ref.chunks)
        self._missing = ref.chunks
        staging.mkdir(parents=True, exist_ok=True)
        with open(self.path, "wb") as handle:
            handle.truncate(ref.size)

    @property
    def complete(self) -> bool:
        """Every chunk has arrived."""
        return self._missing == 0

    @property
    def missing(self) -> int:
        """Chunks still to come."""
        return self._missing

    def add(self, index: int, chunk: bytes) -> None:
        """Write chunk ``index``.

        Raises:
            ReleaseError: index out of range or a chunk of the wrong length.
            OSError: the staging folder is not writable or full.
        """
        if not 0 <= index < self.ref.chunks:
            raise ReleaseError(f"chunk index out of range (0..{self.ref.chunks - 1})")
        expected = min(CHUNK_BYTES, self.ref.size - index * CHUNK_BYTES)
        if len(chunk) != expected:
            raise ReleaseError(f"chunk {index} is {len(chunk)} bytes, expected {expected}")
        if self._have[index]:
            return
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, chunk, index * CHUNK_BYTES)
        finally:
            os.close(fd)
        self._have[index] = 1
        self._missing -= 1

    def verified(self) -> Path:
        """The complete file, once its SHA-256 matches the descriptor.

        Raises:
            ReleaseError: incomplete, or the content does not hash to the descriptor.
        """
        if not self.complete:
            raise ReleaseError(f"{self._missing} chunk(s) missing")
        with open(self.path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        if digest != self.ref.sha256:
            raise ReleaseError(f"{self.ref.role} does not match its announced hash")
        return self.path

    def discard(self) -> None:
        """Remove the staging file."""
        self.path.unlink(missing_ok=True)
