"""Offline verification of EU DCC / WHO DDCC "HC1:" health certificates.

Public entry points: :func:`open_verifier` (the device verifier from config:
signed trust bundle or unsigned dev folder, trusted clock, scan mode),
:class:`kiosk.verify.trust.TrustStore` (signer certificates, parsed once),
:class:`kiosk.verify.hc1.Verifier` (text from a QR code →
:class:`kiosk.decision.Decision`, never raises; ``health()`` →
:class:`VerifierHealth`).
"""

from typing import Any

from kiosk.verify.hc1 import Verification, Verifier
from kiosk.verify.material import TrustMaterial, VerifierHealth
from kiosk.verify.trust import Signer, TrustStore, kid_of

__all__ = [
    "Signer",
    "TrustMaterial",
    "TrustStore",
    "Verification",
    "Verifier",
    "VerifierHealth",
    "kid_of",
    "open_verifier",
]


def __getattr__(name: str) -> Any:
    # Imported lazily: the factory needs kiosk.signing, which itself imports
    # kiosk.verify.cose (and so this package) -- an eager import would be circular.
    if name == "open_verifier":
        from kiosk.verify.factory import open_verifier

        return open_verifier
    raise AttributeError(name)
