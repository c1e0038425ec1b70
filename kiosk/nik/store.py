"""Installing and loading the NIK status list on a gate.

Layout of ``nik.list_dir``::

    niklist.manifest        the signed manifest in force (written last: the commit point)
    niklist-<version>.data  the sorted entries of that version
    niklist-<version>.index block index: first entry of every 4 KiB block (derived, ~1.6 MB/100 M)
    niklist.state.json      what was verified at install: version, SHA-256, size, mtime,
                            inode, and the index's SHA-256

Install (:func:`install_list`) checks the signature, refuses an expired list
and any version not newer than the installed one (rollback), copies the data
while hashing it, and swaps atomically: every file is written to a temporary
name, fsynced and renamed, the manifest last, then the folder is fsynced. A
power cut at any point leaves either the old list or the new one in force.

Load (:func:`load_installed`) re-checks the signature (cheap) but not the data
hash when the file's size, mtime and inode still match what install verified:
hashing 800 MB on a Pi's SD card takes ~20-40 s, too long for every boot. A
file changed behind our back (different mtime/inode/size) is re-hashed before
use. Silent corruption that keeps all three is caught by :func:`reverify`,
which the gate may run in a background thread (see docs/nik-privacy.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk import capped
from kiosk.atomic import atomic_write, atomic_writer, fsync_dir
from kiosk.errors import DocumentError, KioskError
from kiosk.nik.listfile import (
    MANIFEST_MAX_BYTES,
    Manifest,
    StatusList,
    block_entries,
    read_manifest,
    sha256_file,
)
from kiosk.verify.cose import parse_sign1

log = logging.getLogger(__name__)

MANIFEST_NAME = "niklist.manifest"
STATE_NAME = "niklist.state.json"
_COPY_CHUNK = 4 * 1024 * 1024
_STATE_MAX_BYTES = 4096  # the install record is ~300 bytes


def data_name(version: int) -> str:
    """File name of a version's data file."""
    return f"niklist-{version}.data"


def installed_manifest(list_dir: Path, trusted: Iterable[Ed25519PublicKey]) -> Manifest | None:
    """The manifest in force, signature checked; None when no list is installed.

    Raises:
        DocumentError: a manifest is there but does not verify.
    """
    path = list_dir / MANIFEST_NAME
    try:
        blob = read_capped(path, MANIFEST_MAX_BYTES)
    except FileNotFoundError:
        return None
    return read_manifest(blob, trusted)


def read_capped(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, refusing a file above ``limit`` bytes without reading it all.

    Raises:
        FileNotFoundError: no such file.
        DocumentError: unreadable (the OS reason, one line) or above ``limit``.
    """
    try:
        return capped.read_capped(path, limit)
    except FileNotFoundError:
        raise
    except capped.FileTooLarge:
        raise DocumentError(f"{path}: larger than {limit} bytes; not a NIK list file") from None
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read: {exc.strerror or type(exc).__name__}") from None


def install_list(
    manifest_path: Path,
    data_path: Path,
    list_dir: Path,
    trusted: Iterable[Ed25519PublicKey],
    now: datetime,
) -> Manifest:
    """Verify and install a new list version; returns its manifest.

    Raises:
        DocumentError: bad signature, expired, not newer than the installed
            version, data size/hash mismatch, or an I/O error. The list in force
            is unchanged.
    """
    trusted = list(trusted)
    try:
        blob = read_capped(manifest_path, MANIFEST_MAX_BYTES)
    except FileNotFoundError:
        raise DocumentError(f"{manifest_path}: no such file") from None
    manifest = read_manifest(blob, trusted)
    if manifest.expired(now):
        raise DocumentError(
            f"NIK list version {manifest.version} expired at {manifest.expires_at.isoformat()}"
        )
    target = list_dir / data_name(manifest.version)
    index_path = list_dir / index_name(manifest.version)
    try:
        list_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DocumentError(f"cannot install NIK list into {list_dir}: "
                            f"{exc.strerror or type(exc).__name__}") from None
    floor = _installed_version(list_dir, trusted)
    if manifest.version <= floor:
        raise DocumentError(
            f"NIK list version {manifest.version} refused: version {floor} is "
            "installed and versions must increase (rollback protection)"
        )
    # From here on the files of this version are new: any failure removes them.
    try:
        _check_space(list_dir, manifest.data_size)
        _copy_verified(data_path, target, manifest)
        with StatusList(manifest, target) as fresh:  # pages are still in the cache
            index = fresh.make_index()
        atomic_write(index_path, index)
        _write_state(list_dir, manifest, target, index)
        atomic_write(list_dir / MANIFEST_NAME, blob)  # the commit point
    except BaseException as exc:
        # Nothing of this version is in force (the manifest is written last): drop its files.
        for partial in (target, index_path):
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise DocumentError(
                f"cannot install NIK list into {list_dir}: "
                f"{exc.strerror or type(exc).__name__}; the installed list is unchanged"
            ) from None
        raise
    keep = {target.name, index_path.name}
    for old in [*list_dir.glob("niklist-*.data"), *list_dir.glob("niklist-*.index")]:
        if old.name not in keep:
            old.unlink(missing_ok=True)
    fsync_dir(list_dir)
    log.info("installed NIK list version %d (%d entries)", manifest.version, manifest.count)
    return manifest


def _check_space(list_dir: Path, size: int) -> None:
    """Refuse before copying when the folder's file system cannot hold ``size`` more bytes."""
    stats = os.statvfs(list_dir)
    free = stats.f_bavail * stats.f_frsize
    if size > free:
        raise DocumentError(
            f"cannot install NIK list into {list_dir}: the data needs {size} bytes, "
            f"{free} are free; the installed list is unchanged")


def _copy_verified(source: Path, target: Path, manifest: Manifest) -> None:
    """Copy ``source`` to ``target`` atomically, reading at most the signed size plus one byte.

    An endless or oversized source stops the copy at once; a wrong size or
    hash refuses it.  Either way the temporary file is removed.

    Raises:
        DocumentError: source unreadable, size or hash not the manifest's.
        OSError: writing failed (disk full, read-only folder).
    """
    try:
        src = source.open("rb")
    except OSError as exc:
        raise DocumentError(f"NIK list data {source}: cannot read: "
                            f"{exc.strerror or type(exc).__name__}") from None
    digest = hashlib.sha256()
    size = 0
    limit = manifest.data_size
    with src, atomic_writer(target) as dst:
        while size <= limit:
            try:
                chunk = src.read(min(_COPY_CHUNK, limit + 1 - size))
            except OSError as exc:
                raise DocumentError(f"NIK list data {source}: cannot read: "
                                    f"{exc.strerror or type(exc).__name__}") from None
            if not chunk:
                break
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        if size > limit:
            raise DocumentError(f"NIK list data {source} is larger than the {limit} bytes "
                                "the signed manifest says")
        if size != limit or digest.digest() != manifest.data_sha256:
            raise DocumentError(
                f"NIK list data {source} does not match the signed manifest ({size} bytes, "
                f"hash {'ok' if digest.digest() == manifest.data_sha256 else 'differs'})")


def _installed_version(list_dir: Path, trusted: list[Ed25519PublicKey]) -> int:
    """The installed version (0 when none), for the rollback check.

    A manifest that no longer verifies (e.g. after an authority key rotation)
    may be replaced, but its version still counts, read without the signature:
    otherwise breaking the old signature would open the door to a rollback.
    """
    try:
        current = installed_manifest(list_dir, trusted)
        return current.version if current is not None else 0
    except DocumentError as exc:
        log.warning("installed NIK list does not verify (%s); it may be replaced", exc)
    try:
        payload = parse_sign1(read_capped(list_dir / MANIFEST_NAME, MANIFEST_MAX_BYTES)).payload
        return Manifest.from_cbor(payload).version
    except (OSError, ValueError, KioskError):
        return 0


def load_installed(
    list_dir: Path, trusted: Iterable[Ed25519PublicKey], *, full_verify: bool = False
) -> StatusList | None:
    """Open the list in force; None when none is installed.

    Args:
        full_verify: hash the whole data file even if it is unchanged since install.

    Raises:
        DocumentError: the manifest does not verify, or the data file is missing,
            truncated or altered.
    """
    manifest = installed_manifest(list_dir, trusted)
    if manifest is None:
        return None
    path = list_dir / data_name(manifest.version)
    state = None if full_verify else _state_if_unchanged(list_dir, manifest, path)
    if state is None:
        log.info("hashing NIK list data version %d", manifest.version)
        reverify(manifest, path)
    status = StatusList(manifest, path)
    index = _read_index(list_dir / index_name(manifest.version), state, manifest)
    if index is None:
        # After a re-hash the pages are cached, so this scan is cheap. With an
        # unchanged file but a lost or altered index it reads every page once.
        index = status.make_index()
        atomic_write(list_dir / index_name(manifest.version), index)
        _write_state(list_dir, manifest, path, index)
    status.use_index(index)
    return status


def reverify(manifest: Manifest, path: Path) -> None:
    """Hash the data file and compare with the manifest (slow: reads the whole file).

    Raises:
        DocumentError: missing, wrong size or wrong hash.
    """
    try:
        digest, size = sha256_file(path)
    except OSError as exc:
        raise DocumentError(f"NIK list data {path}: {exc.strerror}") from None
    if size != manifest.data_size:
        raise DocumentError(f"NIK list data {path}: {size} bytes, expected {manifest.data_size}")
    if digest != manifest.data_sha256:
        raise DocumentError(f"NIK list data {path}: hash does not match the signed manifest")


def index_name(version: int) -> str:
    """File name of a version's block index (derived locally, not signed)."""
    return f"niklist-{version}.index"


def _state_if_unchanged(list_dir: Path, manifest: Manifest, path: Path) -> dict[str, Any] | None:
    """The install record if the data file still matches it, else None."""
    try:
        state = json.loads(read_capped(list_dir / STATE_NAME, _STATE_MAX_BYTES))
        st = path.stat()
    except (OSError, ValueError, DocumentError):
        return None
    unchanged = (
        isinstance(state, dict)
        and state.get("version") == manifest.version
        and state.get("sha256") == manifest.data_sha256.hex()
        and state.get("size") == st.st_size == manifest.data_size
        and state.get("mtime_ns") == st.st_mtime_ns
        and state.get("inode") == st.st_ino
    )
    return state if unchanged else None


def _read_index(path: Path, state: dict[str, Any] | None, manifest: Manifest) -> bytes | None:
    """The stored block index if it matches the hash in the install record.

    Read with a cap: the index of ``manifest`` has a known size, anything
    larger is not read whole (the folder is writable by the service user).
    """
    if state is None:
        return None
    blocks = -(-manifest.count // block_entries(manifest.width))
    try:
        with path.open("rb") as handle:
            index = handle.read(blocks * manifest.width + 1)
    except OSError:
        return None
    return index if hashlib.sha256(index).hexdigest() == state.get("index_sha256") else None


def _write_state(list_dir: Path, manifest: Manifest, path: Path, index: bytes) -> None:
    st = path.stat()
    state = {
        "version": manifest.version,
        "sha256": manifest.data_sha256.hex(),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "inode": st.st_ino,
        "index_sha256": hashlib.sha256(index).hexdigest(),
    }
    atomic_write(list_dir / STATE_NAME, json.dumps(state).encode())


def remove_installed(list_dir: Path) -> None:
    """Delete the installed list (e.g. when a site switches NIK entry off)."""
    for name in (MANIFEST_NAME, STATE_NAME):
        (list_dir / name).unlink(missing_ok=True)
    for old in [*list_dir.glob("niklist-*.data"), *list_dir.glob("niklist-*.index")]:
        old.unlink(missing_ok=True)
