"""Shared fixtures: real signers made with cryptography and a fixed clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kiosk.verify import TrustStore, Verifier
from kiosk.verify.issuer import (
    EKU_RECOVERY,
    EKU_TEST,
    EKU_VACCINATION,
    PrivateKey,
    issue_hc1,
    make_signer,
)

NOW = datetime(2021, 6, 10, 12, 0, tzinfo=UTC)
IAT = NOW - timedelta(days=1)
EXP = NOW + timedelta(days=180)

Signer = tuple[PrivateKey, bytes]


@pytest.fixture(scope="session")
def ec_signer() -> Signer:
    """An EC P-256 DSC allowed to sign all three types (official EKU OIDs)."""
    return make_signer("Test DSC EC", "ec", [EKU_TEST, EKU_VACCINATION, EKU_RECOVERY])


@pytest.fixture(scope="session")
def rsa2048_signer() -> Signer:
    return make_signer("Test DSC RSA2048", "rsa2048")


@pytest.fixture(scope="session")
def rsa3072_signer() -> Signer:
    return make_signer("Test DSC RSA3072", "rsa3072")


def verifier_for(*ders: bytes, now: datetime = NOW) -> Verifier:
    """A verifier trusting exactly ``ders`` with the clock frozen at ``now``."""
    return Verifier(TrustStore.from_certificates(ders), lambda: now)


def issue(signer: Signer, hcert: dict[str, Any], **kwargs: Any) -> str:
    """Issue with the default IAT/EXP window unless overridden."""
    key, der = signer
    iat = kwargs.pop("iat", IAT)
    exp = kwargs.pop("exp", EXP)
    return issue_hc1(hcert, key, der, iat, exp, **kwargs)


Issue = Callable[..., str]
