"""Offline verification of EU DCC / WHO DDCC "HC1:" health certificates.

Public entry points: :class:`kiosk.verify.trust.TrustStore` (signer
certificates, parsed once) and :class:`kiosk.verify.hc1.Verifier` (text from a
QR code → :class:`kiosk.decision.Decision`, never raises).
"""

from kiosk.verify.hc1 import Verification, Verifier
from kiosk.verify.trust import Signer, TrustStore, kid_of

__all__ = ["Signer", "TrustStore", "Verification", "Verifier", "kid_of"]
