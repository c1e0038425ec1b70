"""The installed trust bundle on the device: reading it and replacing it safely.

``install_bundle`` is what ``kiosk trust install`` runs: verify the signature
with the provisioned authority keys, parse the body, refuse a version that is
not strictly newer than both the installed one and the **rollback floor**, then
replace the file atomically (:func:`kiosk.atomic.atomic_write`) and
raise the floor.  Any refusal leaves the installed bundle untouched.

The rollback floor (:data:`FLOOR_FILE`, ``{"version": N}`` next to the
bundle) is the highest bundle version ever accepted on this device.  It
outlives the bundle file, so deleting the installed bundle, or replacing it
directly with an older, genuinely signed one, does not reopen the door to a
rollback: :func:`read_installed` refuses an installed bundle below the floor
exactly as it refuses a forged one.  A missing floor file is floor 0; an
unreadable or garbage one is floor 0 with a warning (the installed-file check
still applies) and is rewritten by the next accepted bundle.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.atomic import atomic_write
from kiosk.capped import FileTooLarge, read_capped
from kiosk.errors import DocumentError
from kiosk.verify.bundle import MAX_BYTES, TrustBundle, load_bundle

__all__ = [
    "FLOOR_FILE",
    "floor_path",
    "install_bundle",
    "raise_floor",
    "read_floor",
    "read_installed",
]

_log = logging.getLogger(__name__)

#: Name of the rollback-floor file, in the bundle's folder (``device.data_dir``).
FLOOR_FILE = "trust-floor.json"
# A floor file is a few bytes; anything bigger is not ours and is not read whole.
_FLOOR_MAX_BYTES = 4096


def floor_path(bundle_path: Path) -> Path:
    """The rollback-floor file that belongs to the bundle at ``bundle_path``."""
    return bundle_path.with_name(FLOOR_FILE)


def read_floor(path: Path) -> int:
    """The highest bundle version accepted on this device, from the floor file ``path``.

    Returns 0 when the file does not exist.  An unreadable file or one that
    is not ``{"version": <int >= 0>}`` also gives 0, with a warning: a broken
    floor must not brick the gate, and the installed-file version check still
    applies.  Never raises.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(_FLOOR_MAX_BYTES + 1)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        _log.warning("trust floor %s unreadable (%s); using floor 0", path,
                     exc.strerror or exc)
        return 0
    try:
        if len(raw) > _FLOOR_MAX_BYTES:
            raise ValueError("too large")
        value = json.loads(raw)["version"]
    except (ValueError, KeyError, TypeError) as exc:
        _log.warning("trust floor %s malformed (%s); using floor 0", path, type(exc).__name__)
        return 0
    # bool is an int subclass; true/false in the file is garbage, not 1/0.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        _log.warning("trust floor %s malformed (version %.40r); using floor 0", path, value)
        return 0
    return value


def raise_floor(path: Path, version: int) -> bool:
    """Raise the floor file ``path`` to ``version`` when it is below it; True if written.

    Written atomically (:func:`atomic_write`), so a power cut leaves the old
    floor or the new one.  A garbage floor counts as 0 and is overwritten.

    Raises:
        OSError: the folder is not writable; the old floor file is intact.
    """
    if version <= read_floor(path):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"version": version}).encode())
    return True


def _read_file(path: Path, keys: Sequence[Ed25519PublicKey]) -> TrustBundle | None:
    """The verified bundle at ``path`` (no floor check), or None when no file exists."""
    try:
        blob = read_capped(path, MAX_BYTES)
    except FileNotFoundError:
        return None
    except FileTooLarge:
        raise DocumentError(f"{path}: larger than the {MAX_BYTES}-byte bundle limit") from None
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return load_bundle(blob, keys)


def read_installed(path: Path, keys: Sequence[Ed25519PublicKey], *,
                   floor_file: Path | None = None) -> TrustBundle | None:
    """The verified installed bundle, or None when no file exists.

    Args:
        path: the installed bundle.
        keys: the authority public keys.
        floor_file: the rollback floor; default :func:`floor_path` of ``path``.

    Raises:
        DocumentError: the file is unreadable, too large, not signed by a
            trusted authority key, malformed, or its version is below the
            rollback floor (an older bundle put in place of a newer one).
    """
    bundle = _read_file(path, keys)
    if bundle is None:
        return None
    floor = read_floor(floor_path(path) if floor_file is None else floor_file)
    if bundle.version < floor:
        raise DocumentError(
            f"rollback refused: installed bundle version {bundle.version} is below "
            f"the highest version accepted on this device ({floor})"
        )
    return bundle


def install_bundle(blob: bytes, path: Path, keys: Sequence[Ed25519PublicKey], *,
                   before_rename: Callable[[Path], None] | None = None,
                   floor_file: Path | None = None) -> TrustBundle:
    """Verify ``blob`` and atomically install it at ``path``; returns the new bundle.

    The version must be strictly greater than both the installed bundle's and
    the rollback floor (``floor_file``, default :func:`floor_path` of
    ``path``); after the bundle is in place the floor is raised to it.

    Raises:
        DocumentError: bad signature, malformed body, or a version not newer
            than the installed one or the floor (rollback); nothing is written.
        OSError: the folder is not writable; the installed bundle is intact.
    """
    floor_file = floor_path(path) if floor_file is None else floor_file
    bundle = load_bundle(blob, keys)
    try:
        current = _read_file(path, keys)
    except DocumentError as exc:
        # A damaged installed file must not block its own repair.
        _log.warning("installed trust bundle unusable (%s); replacing it", exc)
        current = None
    floor = read_floor(floor_file)
    if current is not None and bundle.version <= current.version:
        raise DocumentError(
            f"rollback refused: bundle version {bundle.version} is not newer than "
            f"the installed version {current.version}"
        )
    if bundle.version <= floor:
        raise DocumentError(
            f"rollback refused: bundle version {bundle.version} is not newer than "
            f"the highest version accepted on this device ({floor})"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, blob, before_rename=before_rename)
    try:
        raise_floor(floor_file, bundle.version)
    except OSError as exc:
        # The bundle is in place; the next load adopts its version as the floor.
        _log.error("trust bundle v%d installed but the floor %s was not raised: %s",
                   bundle.version, floor_file, exc)
    _log.info("trust bundle v%d installed (%d signers, %d revocation entries)",
              bundle.version, len(bundle.signers), len(bundle.revocation))
    return bundle
