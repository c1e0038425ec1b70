"""Helpers: real signed trust bundles made with the authority's Ed25519 key."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.cli import main
from kiosk.config.schema import ClockConfig, PolicyConfig, VerifyConfig
from kiosk.decision import CertType
from kiosk.signing import TRUST_BUNDLE, save_public_key, sign_document
from kiosk.verify import open_verifier
from kiosk.verify.bundle import BundleSigner, TrustBundle
from kiosk.verify.clock import FixedProbe
from kiosk.verify.hc1 import Verifier
from kiosk.verify.revocation import Revocation

from .conftest import NOW

EXAMPLE_RULES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "certlogic-rules.json"
AUTHORITY = Ed25519PrivateKey.generate()
KEYS = [AUTHORITY.public_key()]


def make_bundle(*ders: bytes, version: int = 1, issued_at: datetime = NOW,
                max_age_s: int = 7 * 86400, grace_s: int = 14 * 86400,
                revocation: Revocation | None = None, country: str = "XX") -> TrustBundle:
    """A bundle trusting ``ders`` for all types."""
    return TrustBundle(
        version=version, issued_at=issued_at, max_age_s=max_age_s, grace_s=grace_s,
        signers=tuple(BundleSigner(d, country, frozenset(CertType)) for d in ders),
        revocation=revocation or Revocation(),
    )


def sign_install_open(tmp_path: Path, body: Path, keys: Path) -> Verifier:
    """The central-to-gate path: ``kiosk trust sign`` ``body`` with the authority key in
    ``keys`` (from ``kiosk trust keygen``), ``kiosk trust install`` it on a gate whose data
    folder is ``tmp_path/state``, and open that gate's verifier (clock frozen at NOW)."""
    blob, config = tmp_path / "bundle.cose", tmp_path / "kiosk.toml"
    assert main(["trust", "sign", str(body), "--key", str(keys / "authority.key"),
                 "--out", str(blob)]) == 0
    config.write_text(f'[device]\ndata_dir = "state"\n[verify]\n'
                      f'authority_keys = "{keys / "authority.pem"}"\n')
    assert main(["trust", "install", str(blob), "--config", str(config)]) == 0
    cfg = VerifyConfig(trust_source="bundle", authority_keys=keys / "authority.pem")
    return open_verifier(cfg, wall_clock=lambda: NOW, state_dir=tmp_path / "state",
                         clock=ClockConfig(), policy=PolicyConfig(), probe=FixedProbe(True))


def assert_country_and_usage_kept(gate: Verifier, dsc: tuple[Any, bytes], country: str,
                                  tests_only: tuple[Any, bytes], tests_country: str) -> None:
    """An imported trust list kept each DSC's country and key usage, as the gate decides:
    ``dsc`` signs for ``country`` only; ``tests_only`` (EKU test) signs tests only."""
    from kiosk.decision import Reason
    from kiosk.verify.issuer import sample_test, sample_vaccination

    from .conftest import issue

    assert gate.verify(issue(dsc, sample_vaccination(), issuer=country)).allowed
    other = "AT" if country != "AT" else "DE"
    assert gate.verify(issue(dsc, sample_vaccination(), issuer=other)).reason \
        is Reason.ISSUER_MISMATCH
    test = sample_test(sc="2021-06-10T08:00:00Z")
    assert gate.verify(issue(tests_only, test, issuer=tests_country)).allowed
    assert gate.verify(issue(tests_only, sample_vaccination(), issuer=tests_country)).reason \
        is Reason.WRONG_CERT_TYPE


def signed(bundle: TrustBundle, key: Ed25519PrivateKey = AUTHORITY) -> bytes:
    """The bundle signed as a TRUST_BUNDLE document."""
    return sign_document(bundle.to_cbor(), key, content_type=TRUST_BUNDLE)


def sign_body(body: bytes, key: Ed25519PrivateKey = AUTHORITY) -> bytes:
    """Sign arbitrary body bytes (for malformed-body tests)."""
    return sign_document(body, key, content_type=TRUST_BUNDLE)


def write_authority(folder: Path) -> Path:
    """Provision the authority public key as a gate would; returns its path."""
    path = folder / "authority.pem"
    save_public_key(AUTHORITY.public_key(), path)
    return path


def with_version(bundle: TrustBundle, version: int) -> TrustBundle:
    """A copy of ``bundle`` with another version."""
    return replace(bundle, version=version)


def example_rules() -> list[dict[str, Any]]:
    """The 20 EU-style example CertLogic rules shipped in docs/examples."""
    rules: list[dict[str, Any]] = json.loads(EXAMPLE_RULES.read_text())
    return rules


def gateway_rule(identifier: str = "VR-ID-0100", logic: Any = True,
                 **fields: Any) -> dict[str, Any]:
    """One Gateway-format rule with ``logic``: by default an Acceptance rule of ID for
    vaccinations, valid 2021-06-01 .. 2030-06-01, English and Indonesian descriptions."""
    base = copy.deepcopy(example_rules()[3])
    base.update(Identifier=identifier, Logic=logic, **fields)
    return base
