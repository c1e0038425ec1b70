"""The installed trust bundle on the device: reading it and replacing it safely.

``install_bundle`` is what ``kiosk trust install`` runs: verify the signature
with the provisioned authority keys, parse the body, refuse a version that is
not strictly newer than the installed one (rollback), then replace the file
atomically (:func:`kiosk.verify.atomic.atomic_write`).  Any refusal leaves
the installed bundle untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.errors import DocumentError
from kiosk.verify.atomic import atomic_write
from kiosk.verify.bundle import MAX_BYTES, TrustBundle, load_bundle

__all__ = ["install_bundle", "read_installed"]

_log = logging.getLogger(__name__)


def read_installed(path: Path, keys: Sequence[Ed25519PublicKey]) -> TrustBundle | None:
    """The verified installed bundle, or None when no file exists.

    Raises:
        DocumentError: the file is unreadable, too large, not signed by a
            trusted authority key, or malformed.
    """
    try:
        with path.open("rb") as handle:
            blob = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return load_bundle(blob, keys)


def install_bundle(blob: bytes, path: Path, keys: Sequence[Ed25519PublicKey], *,
                   before_rename: Callable[[Path], None] | None = None) -> TrustBundle:
    """Verify ``blob`` and atomically install it at ``path``; returns the new bundle.

    Raises:
        DocumentError: bad signature, malformed body, or a version not newer
            than the installed one (rollback); nothing is written.
        OSError: the folder is not writable; the installed bundle is intact.
    """
    bundle = load_bundle(blob, keys)
    try:
        current = read_installed(path, keys)
    except DocumentError as exc:
        # A damaged installed file must not block its own repair.
        _log.warning("installed trust bundle unusable (%s); replacing it", exc)
        current = None
    if current is not None and bundle.version <= current.version:
        raise DocumentError(
            f"rollback refused: bundle version {bundle.version} is not newer than "
            f"the installed version {current.version}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, blob, before_rename=before_rename)
    _log.info("trust bundle v%d installed (%d signers, %d revocation entries)",
              bundle.version, len(bundle.signers), len(bundle.revocation))
    return bundle
