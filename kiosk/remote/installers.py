"""The gate's installers for distributed releases: the very checks of the install commands."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from kiosk.config import KioskConfig
from kiosk.errors import DocumentError
from kiosk.nik.store import install_list, installed_manifest
from kiosk.remote.receiver import Installers
from kiosk.remote.update import Updater
from kiosk.signing import load_public_keys
from kiosk.verify.bundle import ACCEPTED_FORMATS
from kiosk.verify.bundlefile import floor_path, install_bundle, read_floor, read_installed

__all__ = ["gate_installers"]


def gate_installers(
    config: KioskConfig, *, restart: Callable[[], None] = lambda: None
) -> Installers:
    """Install trust bundles and NIK lists as ``kiosk trust/nik install`` do on this gate.

    Trust bundles: authority signature, version above the installed one and the
    rollback floor, atomic; the running gate's trust watcher loads it. NIK lists:
    signature, not expired, version increasing, data hash; used from the next
    start of the service. Software updates (``remote.updates``): a signed
    manifest and a wheelhouse, built into a new release beside the running one,
    switched to, and ``restart`` called so systemd starts it on probation.
    """
    keys = load_public_keys(config.verify.authority_keys)
    bundle_path = config.device.data_dir / config.verify.bundle_file
    list_dir = config.nik.list_dir
    updater = Updater(config.remote.install_root, keys) if config.remote.updates else None

    def installed_version(kind: str) -> int:
        if kind == "update":
            # Without updates enabled, every offer counts as installed: never fetched.
            return updater.installed_build() if updater is not None else 2**53
        if kind == "trust":
            try:
                bundle = read_installed(bundle_path, keys)
            except DocumentError:
                bundle = None  # a damaged bundle must not block its own repair
            return max(bundle.version if bundle else 0, read_floor(floor_path(bundle_path)))
        try:
            manifest = installed_manifest(list_dir, keys)
        except DocumentError:
            return 0
        return manifest.version if manifest is not None else 0

    # Two transports (MQTT and HTTPS pull) may finish a release at once: one install at a time,
    # so each sees the version the other installed.
    lock = threading.Lock()

    def install(kind: str, files: Mapping[str, Path]) -> int:
        with lock:
            return install_unlocked(kind, files)

    def install_unlocked(kind: str, files: Mapping[str, Path]) -> int:
        if kind == "update":
            if updater is None:
                raise DocumentError("software updates are off (remote.updates = false)")
            updater.install(files["manifest"].read_bytes(), files["artifact"])
            restart()
            return updater.installed_build()
        if kind == "trust":
            return install_bundle(files["bundle"].read_bytes(), bundle_path, keys).version
        manifest = install_list(files["manifest"], files["data"], list_dir, keys, datetime.now(UTC))
        return manifest.version

    return Installers(
        installed_version=installed_version, install=install, readable={"trust": ACCEPTED_FORMATS}
    )
