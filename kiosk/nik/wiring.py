"""Building the NIK verifier from the ``[nik]`` config section, or for simulation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kiosk.config.schema import KioskConfig, NikConfig
from kiosk.errors import DocumentError
from kiosk.nik.kdf import KdfParams
from kiosk.nik.listfile import StatusList
from kiosk.nik.manual import ManualAudit, ManualCheck
from kiosk.nik.ratelimit import TokenBucket
from kiosk.nik.store import install_list, load_installed
from kiosk.nik.verifier import NikVerifier
from kiosk.signing import generate_authority_key, load_public_keys, refusal_code
from kiosk.telemetry.refused import note_refused

log = logging.getLogger(__name__)

SIM_KDF = KdfParams(n=2**10, r=8, p=1)
"""Cheap parameters for simulated lists (~1 ms per NIK); never for real data."""


def load_list(config: NikConfig, authority_keys: Path) -> StatusList | None:
    """The installed status list, or None (logged) when none is usable.

    ``authority_keys`` is ``verify.authority_keys``: lists share the trust
    bundle's trust root.

    A gate must start even with a broken list: NIK decisions then follow
    ``nik.on_list_unavailable`` while QR verification works as before.
    """
    try:
        keys = load_public_keys(authority_keys)
        if not keys:
            raise DocumentError(f"{authority_keys}: no authority key")
        return load_installed(
            config.list_dir, keys, full_verify=config.verify_data_on_load == "always"
        )
    except DocumentError as exc:
        log.error("NIK status list not usable: %s", exc)
        note_refused("nik", refusal_code(exc))
        return None


def build_nik_verifier(
    config: KioskConfig,
    *,
    audit: Callable[[ManualAudit], None] | None = None,
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
) -> NikVerifier:
    """A :class:`NikVerifier` for ``config.nik``; loads the list only in ``list`` mode.

    Args:
        audit: receives each finished manual KTP check (for the count store).
    """
    nik = config.nik
    manual = ManualCheck(
        timeout_s=nik.manual_timeout_s, audit=audit, monotonic=monotonic, wall_clock=wall_clock
    )
    return NikVerifier(
        mode=nik.mode,
        limiter=TokenBucket(nik.rate_burst, nik.rate_per_minute / 60.0),
        manual=manual,
        status_list=load_list(nik, config.verify.authority_keys) if nik.mode == "list" else None,
        on_list_unavailable=nik.on_list_unavailable,
        wall_clock=wall_clock,
        monotonic=monotonic,
    )


def sim_nik_verifier(
    workdir: Path,
    listed: Iterable[str],
    *,
    mode: str = "list",
    kdf: KdfParams = SIM_KDF,
    lifetime: timedelta = timedelta(days=7),
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
    rate_burst: int = 100,
    rate_per_minute: float = 600.0,
    manual_timeout_s: float = 60.0,
    audit: Callable[[ManualAudit], None] | None = None,
) -> NikVerifier:
    """A verifier over a freshly built, signed and installed list, for simulation and demos.

    A throwaway authority key signs a list of ``listed`` NIKs with cheap KDF
    parameters (``SIM_KDF``; never for real data) under ``workdir``; the list
    goes through the real install and load. Rate limits default generous so
    scenarios are not throttled unless they ask to be.
    """
    from kiosk.nik.build import build_list  # numpy: only needed to build lists

    key = generate_authority_key()
    now = wall_clock()
    built = build_list(
        listed,
        workdir / "central",
        key,
        version=1,
        issued_at=now - timedelta(minutes=1),
        lifetime=lifetime,
        kdf=kdf,
    )
    trusted = [key.public_key()]
    install_list(built.manifest_path, built.data_path, workdir / "gate", trusted, now)
    return NikVerifier(
        mode=mode,
        limiter=TokenBucket(rate_burst, rate_per_minute / 60.0),
        manual=ManualCheck(
            timeout_s=manual_timeout_s, audit=audit, monotonic=monotonic, wall_clock=wall_clock
        ),
        status_list=load_installed(workdir / "gate", trusted) if mode == "list" else None,
        wall_clock=wall_clock,
        monotonic=monotonic,
    )
