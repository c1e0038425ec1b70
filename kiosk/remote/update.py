"""Software updates on the gate: versioned releases, an atomic switch, rollback by itself.

Layout (made by ``install.sh --pi``)::

    /opt/kiosk/releases/<version>/   one release each (venv/, doc/)
    /opt/kiosk/current -> releases/<version>   what systemd starts
    /opt/kiosk/update-state.json     the switch in progress, if any

An update is a signed **update manifest** (a :mod:`kiosk.signing` document of
content type ``application/vnd.kiosk.update+cbor``: version, SHA-256 and size
of the artifact) plus the **artifact**: a tar archive of a wheelhouse
(``wheels/*.whl``) that installs offline. :meth:`Updater.install` checks both,
builds ``releases/<version>`` next to the running one, and switches ``current``
with one atomic rename; the service then restarts into it.

The new release is on probation: every start of the service counts a boot
(:meth:`Updater.on_start`), and only a gate that has run healthily for a while
(:meth:`Updater.mark_healthy`: its loop turning, READY sent) commits it. A
release that crashes, hangs (the watchdog restarts it) or exits before that is
rolled back after :data:`MAX_PROBATION_BOOTS` starts: ``current`` points at the
previous release again and the service restarts into it — no technician, no
network needed. What happened is kept in the state file and reported in status.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk import cborsafe
from kiosk.cborsafe import CborError, Limits
from kiosk.errors import DocumentError
from kiosk.remote import probation
from kiosk.signing import sign_document, verify_document
from kiosk.verify.atomic import atomic_write

__all__ = [
    "MAX_PROBATION_BOOTS",
    "UPDATE_MANIFEST",
    "UpdateManifest",
    "Updater",
    "pip_populate",
    "read_update_manifest",
    "sign_update_manifest",
]

log = logging.getLogger(__name__)

UPDATE_MANIFEST = "application/vnd.kiosk.update+cbor"
MAX_PROBATION_BOOTS = probation.MAX_PROBATION_BOOTS
MAX_ARTIFACT_BYTES = 256 * 1024 * 1024
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+_-]{0,31}")
STATE_FILE = probation.STATE_FILE
_MANIFEST_LIMITS = Limits(max_bytes=4096, max_depth=2, max_items=32, text_keys=True)


@dataclass(frozen=True, slots=True)
class UpdateManifest:
    """A verified update manifest."""

    version: str
    build: int  # increasing release number: what distribution compares
    sha256: bytes
    size: int


def sign_update_manifest(
    key: Ed25519PrivateKey, *, version: str, build: int, artifact: bytes
) -> bytes:
    """The authority's signed manifest for ``artifact`` (central side)."""
    if not _VERSION.fullmatch(version):
        raise ValueError("version must be 1-32 characters of digits, letters and . + _ -")
    if not 0 < build < 2**53:
        raise ValueError("build must be a positive integer")
    payload = cbor2.dumps(
        {
            "v": 1,
            "version": version,
            "build": build,
            "sha256": hashlib.sha256(artifact).digest(),
            "size": len(artifact),
        }
    )
    return sign_document(payload, key, content_type=UPDATE_MANIFEST)


def read_update_manifest(blob: bytes, keys: Iterable[Ed25519PublicKey]) -> UpdateManifest:
    """Verify a manifest's signature and fields.

    Raises:
        DocumentError: not signed by an authority key, or a field out of bounds.
    """
    payload = verify_document(blob, list(keys), content_type=UPDATE_MANIFEST, max_bytes=4096)
    try:
        doc = cborsafe.loads(payload, _MANIFEST_LIMITS)
    except CborError:
        raise DocumentError("update manifest is not plain CBOR") from None
    if not isinstance(doc, dict) or doc.get("v") != 1:
        raise DocumentError("update manifest is not a version-1 map")
    version, digest, size = doc.get("version"), doc.get("sha256"), doc.get("size")
    build = doc.get("build")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise DocumentError("update manifest version is not a release version")
    if not isinstance(build, int) or isinstance(build, bool) or not 0 < build < 2**53:
        raise DocumentError("update manifest build is not a positive integer")
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise DocumentError("update manifest sha256 is not 32 bytes")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_ARTIFACT_BYTES:
        raise DocumentError(f"update manifest size out of bounds (1..{MAX_ARTIFACT_BYTES})")
    return UpdateManifest(version, build, digest, size)


def pip_populate(release: Path, wheelhouse: Path) -> None:
    """Build ``release/venv`` from the unpacked wheelhouse, offline (the device's way).

    System site packages give Debian's picamera2, pygame, lgpio and numpy, as
    ``install.sh --pi`` does. pip reads no configuration file and no ``PIP_*``
    variable: a ``find-links`` in /etc/pip.conf or the environment must not add
    packages the signed wheelhouse does not hold.
    """
    venv = release / "venv"
    env = _sealed_pip_env()
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, env=env
    )
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "kiosk",
        ],
        check=True,
        env=env,
    )


def _sealed_pip_env() -> dict[str, str]:
    """This process's environment without pip's settings; PIP_CONFIG_FILE=devnull skips
    every pip.conf (global, user and site), which ``--isolated`` would not."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


class Updater:
    """Releases under ``root`` (``/opt/kiosk``): install, switch, probation, rollback."""

    def __init__(
        self,
        root: Path,
        keys: Iterable[Ed25519PublicKey],
        *,
        populate: Callable[[Path, Path], None] = pip_populate,
    ) -> None:
        self.root = root
        self._keys = list(keys)
        self._populate = populate
        self._state_path = root / STATE_FILE

    # ------------------------------------------------------------------ queries

    @property
    def current(self) -> str | None:
        """The version ``current`` points at, or None."""
        try:
            return Path(os.readlink(self.root / "current")).name
        except OSError:
            return None

    def state(self) -> dict[str, object]:
        """The switch in progress or the last outcome (empty when none)."""
        try:
            doc = json.loads(self._state_path.read_bytes()[:65536])
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    # ------------------------------------------------------------------ install

    def install(self, manifest_blob: bytes, artifact: Path) -> str:
        """Verify, build ``releases/<version>`` and switch ``current`` to it (probation).

        Raises:
            DocumentError: bad signature, artifact size/hash mismatch, an unsafe
                archive, or the version is already the current one.
            OSError / subprocess.CalledProcessError: building failed; nothing switched.
        """
        manifest = read_update_manifest(manifest_blob, self._keys)
        if manifest.build <= self.installed_build():
            raise DocumentError(
                f"update build {manifest.build} is not newer than {self.installed_build()}"
            )
        if manifest.version == self.current:
            raise DocumentError(f"version {manifest.version} is already running")
        if artifact.stat().st_size != manifest.size or _sha256(artifact) != manifest.sha256:
            raise DocumentError("update artifact does not match its signed manifest")
        releases = self.root / "releases"
        target = releases / manifest.version
        unpacked = releases / f".{manifest.version}.wheels"
        for leftover in (unpacked, target):
            shutil.rmtree(leftover, ignore_errors=True)
        unpacked.mkdir(parents=True)
        try:
            _extract(artifact, unpacked / "wheels")
            # Built where it will run: a venv's scripts name their interpreter by
            # absolute path, so a venv moved after building cannot start. Until
            # the switch below, ``current`` still points at the running release.
            target.mkdir()
            self._populate(target, unpacked / "wheels")
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(unpacked, ignore_errors=True)
        self._switch(manifest.version, manifest.build, previous=self.current)
        return manifest.version

    def installed_build(self) -> int:
        """The newest build tried here: running, on probation, or failed and rolled back.

        A build that was rolled back counts, so distribution does not offer it again.
        """
        state = self.state()
        builds = [state.get(k) for k in ("build", "running_build", "failed_build")]
        return max((b for b in builds if isinstance(b, int)), default=0)

    def _switch(self, version: str, build: int, *, previous: str | None) -> None:
        running = self.installed_build()
        self._write_state(
            {
                "pending": version,
                "build": build,
                "previous": previous,
                "running_build": running,
                "boots": 0,
            }
        )
        probation.point(self.root / "current", f"releases/{version}")
        log.warning("update: switched to %s (probation; previous %s)", version, previous)

    # --------------------------------------------------------------- probation

    def on_start(self) -> str | None:
        """Count a start of a release on probation (see :mod:`kiosk.remote.probation`)."""
        return probation.count_start(self.root)

    def mark_healthy(self) -> bool:
        """Commit a release on probation once it runs well; prune old releases.

        Returns True when a pending release was committed now.
        """
        state = self.state()
        pending = state.get("pending")
        if not isinstance(pending, str) or pending != self.current:
            return False
        self._write_state(
            {"committed": pending, "build": state.get("build"), "previous": state.get("previous")}
        )
        # Keep the running release and the one to roll back to by hand; drop the rest.
        keep = {pending, state.get("previous")}
        for old in (self.root / "releases").iterdir():
            if old.name not in keep and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
        log.warning("update: %s healthy, committed", pending)
        return True

    def _write_state(self, doc: dict[str, object]) -> None:
        atomic_write(self._state_path, json.dumps(doc, sort_keys=True).encode(), mode=0o644)


def _sha256(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


def _extract(artifact: Path, into: Path) -> None:
    """Unpack a wheelhouse archive: regular ``*.whl`` files only, no paths, no links."""
    into.mkdir()
    with tarfile.open(artifact) as archive:
        for member in archive.getmembers():
            # Only the base name is used, so no member can write outside ``into``.
            name = Path(member.name).name
            if member.isdir():
                continue
            if not member.isfile() or not name.endswith(".whl") or name.startswith("."):
                raise DocumentError("update artifact holds something other than wheels")
            source = archive.extractfile(member)
            if source is None:
                raise DocumentError("update artifact member unreadable")
            with source, open(into / name, "wb") as out:
                shutil.copyfileobj(source, out)


class HealthWatch:
    """Commits a release on probation once the gate has run well for ``after_s`` seconds.

    Fed once per loop turn (``ScanLoop.on_turn``): healthy means turns with
    frames (or, without a camera, turns at all) for ``after_s`` since start.
    """

    def __init__(
        self, updater: Updater, *, after_s: float = 60.0, clock: Callable[[], float] | None = None
    ) -> None:
        import time

        self._updater = updater
        self._clock = clock or time.monotonic
        self._since = self._clock()
        self._after_s = after_s
        self.done = False

    def turn(self, progress: bool) -> None:
        """One loop turn; commits once, then does nothing."""
        if self.done or not progress or self._clock() - self._since < self._after_s:
            return
        self.done = True
        try:
            self._updater.mark_healthy()
        except OSError as exc:
            log.error("update: cannot commit the running release: %s", exc)
