"""What a verifier trusts right now, how fresh it is, and the health report built from it.

:class:`TrustMaterial` is an immutable snapshot (signers, revocation, scan
mode, bundle metadata) swapped as a whole; :func:`freshness` classifies it:

* ``dev``: an unsigned folder of DSC files (development/demo; never expires);
* ``fresh``: age <= ``max_age_s``;
* ``stale``: ``max_age_s`` < age <= ``max_age_s + grace_s`` (still verifies, flagged);
* ``expired``: older, or no usable bundle at all (``missing``).

The age is measured with the verifier's trusted clock, which never runs
below the bundle's issue time (:mod:`kiosk.verify.clock`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from kiosk.verify.certrules import GateRules
from kiosk.verify.clock import ClockState
from kiosk.verify.revocation import Revocation
from kiosk.verify.rules import ScanMode
from kiosk.verify.trust import TrustStore
from kiosk.verify.valuesets import ValueSets

__all__ = ["Freshness", "TrustMaterial", "VerifierHealth", "freshness"]

Freshness = Literal["fresh", "stale", "expired", "dev"]


@dataclass(frozen=True)
class TrustMaterial:
    """An immutable snapshot of the trust material a :class:`Verifier` uses.

    Attributes:
        store: the trusted signers.
        revocation: revocation hashes and the kid blocklist.
        mode: the scan mode applied after the cryptographic checks.
        valuesets: the coded-field value sets checked on every scan (empty:
            none checked; a bundle of format 1 or a dev folder).
        rules: the bundle's CertLogic rules this gate applies (compiled once,
            :class:`~kiosk.verify.certrules.GateRules`); None: no rules apply.
        version / issued_at / max_age_s / grace_s: the bundle's metadata; all
            None in dev mode (``version is None``).
        missing: True when a signed bundle was required but none is usable
            (every scan is denied with ``TRUST_EXPIRED``).
    """

    store: TrustStore
    revocation: Revocation = field(default_factory=Revocation)
    mode: ScanMode = field(default_factory=lambda: ScanMode("any"))
    valuesets: ValueSets = field(default_factory=ValueSets)
    rules: GateRules | None = None
    version: int | None = None
    issued_at: datetime | None = None
    max_age_s: int = 0
    grace_s: int = 0
    missing: bool = False
    # Precomputed for the per-scan freshness check (POSIX seconds).
    fresh_until: float = field(init=False, repr=False, compare=False)
    stale_until: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        issued = self.issued_at.timestamp() if self.issued_at is not None else 0.0
        object.__setattr__(self, "fresh_until", issued + self.max_age_s)
        object.__setattr__(self, "stale_until", issued + self.max_age_s + self.grace_s)

    @classmethod
    def dev(cls, store: TrustStore, mode: ScanMode | None = None) -> TrustMaterial:
        """Unsigned dev-mode material (a folder of DSCs): never expires."""
        return cls(store, mode=mode or ScanMode("any"))

    @classmethod
    def none(cls) -> TrustMaterial:
        """No usable trust material: every scan is denied with TRUST_EXPIRED."""
        return cls(TrustStore([]), missing=True)


def freshness(material: TrustMaterial, now_ts: float) -> Freshness:
    """Classify ``material`` at ``now_ts`` (POSIX seconds); see the module docstring."""
    if material.missing:
        return "expired"
    if material.issued_at is None:
        return "dev"
    if now_ts <= material.fresh_until:
        return "fresh"
    if now_ts <= material.stale_until:
        return "stale"
    return "expired"


@dataclass(frozen=True)
class VerifierHealth:
    """What the screen and the MQTT status show about verification.

    Attributes:
        mode: fresh | stale | expired | dev (see :func:`freshness`).
        bundle_version: the installed bundle's version; None in dev mode or missing.
        bundle_issued_at: its issue time (aware UTC); None likewise.
        bundle_age_s: seconds since issue by the trusted clock; None likewise.
        clock_state: synchronised | unsynchronised | held (clamped to the
            high-water mark because the system clock is behind it).
        signers: number of trusted DSCs.
        scan_mode: name of the scan mode applied.
        revocation_entries: revocation hashes plus blocked kids.
        on_expired: deny | allow -- what this gate does once ``mode`` is expired.
        clock_jump_s: seconds a refused clock reading or bundle issue time lies
            ahead of the trusted mark (the gate verifies at the mark until it is
            corroborated); None when there is none.
        bundle_formats: the trust-bundle body formats this gate reads
            (:data:`kiosk.verify.bundle.ACCEPTED_FORMATS`), for a central side
            that serves mixed fleets.
    """

    mode: Freshness
    bundle_version: int | None
    bundle_issued_at: datetime | None
    bundle_age_s: float | None
    clock_state: ClockState
    signers: int
    scan_mode: str = "any"
    revocation_entries: int = 0
    on_expired: str = "deny"
    clock_jump_s: float | None = None
    bundle_formats: tuple[int, ...] = ()
