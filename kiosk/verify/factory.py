"""Build the device's verifier from configuration: trust source, trusted clock, policy.

:func:`open_verifier` is the one place that decides between the signed trust
bundle and the unsigned dev folder (``verify.trust_source``), sets up the
trusted clock with its persisted high-water mark, and resolves the scan mode
(``[policy]`` overrides on top of the bundle's policy).  :func:`open_trust_watcher`
starts the reload of a newly installed bundle in the running gate
(:mod:`kiosk.verify.reload`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from kiosk.config.schema import ClockConfig, PolicyConfig, VerifyConfig
from kiosk.errors import ConfigError, DocumentError
from kiosk.signing import load_public_keys, refusal_code
from kiosk.telemetry.refused import note_refused
from kiosk.verify.bundle import TrustBundle
from kiosk.verify.bundlefile import floor_path, raise_floor, read_installed
from kiosk.verify.certrules import GateRules
from kiosk.verify.clock import AdjtimexProbe, FixedProbe, SyncProbe, TimesyncdProbe, TrustedClock
from kiosk.verify.hc1 import Verifier
from kiosk.verify.material import TrustMaterial
from kiosk.verify.reload import TrustWatcher
from kiosk.verify.rules import DEFAULT_POLICY, Policy, ScanMode
from kiosk.verify.trust import TrustStore

__all__ = [
    "load_material",
    "make_probe",
    "open_trust_watcher",
    "open_trusted_clock",
    "open_verifier",
    "resolve_source",
]

_log = logging.getLogger(__name__)


def make_probe(name: str) -> SyncProbe:
    """The synchronisation probe named by ``clock.probe``; adjtimex falls back to none."""
    if name == "adjtimex":
        try:
            return AdjtimexProbe()
        except (OSError, AttributeError) as exc:  # not Linux / no libc symbol
            _log.warning("adjtimex unavailable (%s): clock treated as unsynchronised", exc)
            return FixedProbe(False)
    if name == "timesyncd":
        return TimesyncdProbe()
    return FixedProbe(False)


def resolve_source(cfg: VerifyConfig, state_dir: Path) -> str:
    """``bundle`` or ``folder`` for this configuration (``auto`` decided by what exists)."""
    if cfg.trust_source != "auto":
        return cfg.trust_source
    if (state_dir / cfg.bundle_file).exists():
        return "bundle"
    return "folder" if cfg.trust_dir.is_dir() else "bundle"


def _mode(policy: Policy, cfg: PolicyConfig, default: str | None) -> ScanMode:
    try:
        return policy.mode(cfg.mode or default, naa_hours=cfg.test_naa_max_hours,
                           rat_hours=cfg.test_rat_max_hours,
                           recovery_days=cfg.recovery_max_days)
    except ValueError as exc:
        # Fail closed: a gate must not guess which entry rules the site meant.
        raise ConfigError(f"policy.mode: {exc}") from None


def load_material(cfg: VerifyConfig, state_dir: Path, policy: PolicyConfig,
                  clock: TrustedClock | None = None) -> TrustMaterial:
    """Load the trust material named by ``cfg``.

    A missing, unreadable or forged installed bundle, or one below the
    rollback floor (:mod:`kiosk.verify.bundlefile`), gives
    :meth:`TrustMaterial.none` (every scan denied with TRUST_EXPIRED; logged as
    an error) rather than a gate that does not start.  A loaded bundle is
    offered to ``clock`` (:meth:`TrustedClock.offer_bundle`: its issue time
    raises the high-water mark unless it lies too far ahead) and raises the
    rollback floor to its version (so a bundle installed before the floor
    existed becomes the floor).

    Raises:
        ConfigError: ``policy.mode`` names a mode the policy does not define.
    """
    source = resolve_source(cfg, state_dir)
    if source == "folder":
        try:
            store = TrustStore.from_folder(cfg.trust_dir)
        except OSError as exc:
            _log.error("dev trust folder %s unreadable: %s", cfg.trust_dir, exc)
            return TrustMaterial.none()
        _log.warning("UNSIGNED dev mode: %d DSC(s) from %s", len(store), cfg.trust_dir)
        return TrustMaterial.dev(store, _mode(DEFAULT_POLICY, policy, "any"))
    path = state_dir / cfg.bundle_file
    try:
        bundle = read_installed(path, load_public_keys(cfg.authority_keys))
    except DocumentError as exc:
        _log.error("trust bundle %s refused: %s", path, exc)
        note_refused("bundle", refusal_code(exc))
        return TrustMaterial.none()
    if bundle is None:
        _log.error("no trust bundle installed at %s: every scan is denied", path)
        return TrustMaterial.none()
    try:
        raise_floor(floor_path(path), bundle.version)
    except OSError as exc:  # a read-only or full disk must not stop the gate
        _log.warning("cannot record trust floor v%d: %s", bundle.version, exc)
    if clock is not None:
        # Evidence of the time, bounded: a far-future issued_at is not adopted.
        issued = bundle.issued_at.timestamp()
        clock.offer_bundle(issued, issued + bundle.max_age_s + bundle.grace_s, bundle.version)
    store = bundle.store()
    rules = gate_rules(bundle, policy.country)
    _log.info("trust bundle v%d: %d signers, %d revocation entries, %d CertLogic rules "
              "applied", bundle.version, len(store), len(bundle.revocation),
              0 if rules is None else len(rules))
    return TrustMaterial(
        store=store,
        revocation=bundle.revocation,
        mode=_mode(bundle.policy, policy, None),
        version=bundle.version,
        issued_at=bundle.issued_at,
        max_age_s=bundle.max_age_s,
        grace_s=bundle.grace_s,
        valuesets=bundle.valuesets,
        rules=rules,
    )


def gate_rules(bundle: TrustBundle, country: str) -> GateRules | None:
    """The bundle's CertLogic rules this gate applies (Acceptance rules of ``country``).

    The rules were compiled when the bundle was parsed; this only selects
    them.  A bundle whose rules are all for other countries (or Invalidation
    rules) applies none, with a warning: a site must notice a bundle meant for
    another country of arrival.
    """
    if not bundle.certlogic:
        return None
    rules = GateRules.for_gate(bundle.certlogic, country, bundle.valuesets.as_external())
    if rules is None:
        _log.warning("trust bundle v%d carries %d CertLogic rules, none of them an Acceptance "
                     "rule of policy.country %s: no rule applies", bundle.version,
                     len(bundle.certlogic), country)
    return rules


def open_trusted_clock(clock: ClockConfig | None, *, wall_clock: Callable[[], datetime],
                       state_dir: Path, probe: SyncProbe | None = None) -> TrustedClock:
    """The device's trusted clock: ``[clock]`` settings, high-water mark in ``state_dir``.

    Args:
        clock: the ``[clock]`` section (defaults when None).
        wall_clock: the system clock (aware UTC).
        state_dir: ``device.data_dir`` (holds ``clock.state_file``).
        probe: clock synchronisation probe; default from ``clock.probe``.
    """
    clock_cfg = clock or ClockConfig()
    return TrustedClock(
        wall_clock,
        probe if probe is not None else make_probe(clock_cfg.probe),
        state_dir / clock_cfg.state_file,
        policy=clock_cfg.unsynchronised,  # type: ignore[arg-type]
        persist_interval_s=clock_cfg.persist_interval_s,
        max_step_s=clock_cfg.max_step_s,
        bundle_tolerance_s=clock_cfg.bundle_tolerance_s,
        jump_confirm_s=clock_cfg.jump_confirm_s,
    )


def open_verifier(cfg: VerifyConfig, *, wall_clock: Callable[[], datetime], state_dir: Path,
                  clock: ClockConfig | None = None, policy: PolicyConfig | None = None,
                  probe: SyncProbe | None = None,
                  trusted_clock: TrustedClock | None = None) -> Verifier:
    """The device verifier: trust material per ``cfg``, trusted clock, scan mode.

    Args:
        cfg: the ``[verify]`` section.
        wall_clock: the system clock (aware UTC).
        state_dir: ``device.data_dir``: holds the installed bundle and the clock state.
        clock / policy: the ``[clock]`` and ``[policy]`` sections (defaults when None).
        probe: clock synchronisation probe; default from ``clock.probe``.
        trusted_clock: use this clock (from :func:`open_trusted_clock`, shared
            with :func:`open_trust_watcher`) instead of building one from
            ``clock`` and ``probe``.  The verifier's ``close()`` closes it.

    Raises:
        ConfigError: ``policy.mode`` is unknown to the loaded policy.
    """
    trusted = trusted_clock or open_trusted_clock(clock, wall_clock=wall_clock,
                                                  state_dir=state_dir, probe=probe)
    material = load_material(cfg, state_dir, policy or PolicyConfig(), trusted)
    return Verifier(material, trusted, on_expired=cfg.on_expired)


def open_trust_watcher(verifier: Verifier, cfg: VerifyConfig, *, state_dir: Path,
                       policy: PolicyConfig | None = None,
                       clock: TrustedClock | None = None) -> TrustWatcher | None:
    """Start reloading ``verifier``'s bundle when the installed file changes; None when off.

    Off (None, no thread) when ``cfg.reload_interval_s`` is 0 or the trust
    source resolves to the unsigned dev folder.  Reloads use
    :func:`load_material` restricted to the signed bundle, so a deleted bundle
    never falls back to a folder at run time; a reloaded bundle raises
    ``clock``'s high-water mark as at start.  The caller closes the watcher.
    """
    if cfg.reload_interval_s <= 0 or resolve_source(cfg, state_dir) != "bundle":
        return None
    bundle_only = dataclasses.replace(cfg, trust_source="bundle")
    site_policy = policy or PolicyConfig()

    def load() -> TrustMaterial:
        return load_material(bundle_only, state_dir, site_policy, clock)

    return TrustWatcher(verifier, state_dir / cfg.bundle_file, load,
                        interval_s=cfg.reload_interval_s)
