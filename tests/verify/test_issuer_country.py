"""A DSC listed for one country must not sign certificates claiming another issuer.

The rule needs the DSC's country from the trust bundle (dev mode has none) and
the CWT ``iss`` claim; both the straight allow path and the step pipeline apply it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from kiosk.decision import Reason
from kiosk.verify import TrustStore, Verifier
from kiosk.verify.issuer import make_signer, sample_vaccination
from kiosk.verify.trust import Signer

from .conftest import NOW, issue

SIGNER = make_signer("DSC listed for DE")


def _verifier(country: str | None) -> Verifier:
    signer = replace(Signer.from_der(SIGNER[1]), country=country)
    return Verifier(TrustStore([signer]), lambda: NOW)


@pytest.mark.parametrize(("country", "iss"), [
    ("DE", "DE"),
    ("DE", "de"),  # case is not a forgery
    ("de", "DE"),
    ("DE", None),  # iss is optional in the CWT: nothing to compare
    (None, "FR"),  # dev mode: no listed country
])
def test_allowed_when_the_issuer_is_the_dsc_country_or_unknown(country: str | None,
                                                               iss: str | None) -> None:
    qr = issue(SIGNER, sample_vaccination(), issuer=iss)
    verifier = _verifier(country)
    assert verifier.verify(qr).reason is Reason.OK
    assert verifier.inspect(qr).decision.reason is Reason.OK


@pytest.mark.parametrize("iss", ["FR", "DEU", "", "D"])
def test_denied_when_the_issuer_claims_another_country(iss: str) -> None:
    qr = issue(SIGNER, sample_vaccination(), issuer=iss)
    verifier = _verifier("DE")
    decision = verifier.verify(qr)
    assert not decision.allowed and decision.reason is Reason.ISSUER_MISMATCH
    assert "DE" in decision.detail
    failed = [s for s in verifier.inspect(qr).steps if not s.ok]
    assert [(s.name, s.reason) for s in failed] == [("key_usage", Reason.ISSUER_MISMATCH)]


def test_a_long_hostile_issuer_is_cut_in_the_detail() -> None:
    qr = issue(SIGNER, sample_vaccination(), issuer="X" * 500 + "\n")
    decision = _verifier("DE").verify(qr)
    assert decision.reason is Reason.ISSUER_MISMATCH
    assert "X" * 9 not in decision.detail and "\n" not in decision.detail
