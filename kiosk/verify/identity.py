"""What anti-passback remembers: the identity of a credential, not the bytes of one copy.

A copy of a certificate can change everything that is not signed, and some
things that are: an ES256 signature ``(r, s)`` and ``(r, n - s)`` are both
valid for the same message (ECDSA malleability), the COSE envelope can be
re-tagged, re-ordered or recompressed.  What no copy can change is the signed
content.  So the gate's anti-passback (:mod:`kiosk.gate.passback`, which
stores only ``HMAC(device secret, identity)``) keys an HC1 admission on

* the **issuing country** (the CWT ``iss`` claim; the DSC's listed country
  when the claim is missing -- the two are equal whenever both exist, or the
  verifier denies with ISSUER_MISMATCH), and
* the **UVCI** of every entry (``ci``), upper-cased, without the optional
  ``URN:UVCI:`` prefix and without the ``#`` checksum character: the UVCI
  specification allows both forms of one identifier, and an issuer's
  re-issue (a new ``exp``, a corrected name) keeps the UVCI of the event.

A NIK admission is keyed on its status-list entry: the salted KDF output of
the NIK (:mod:`kiosk.nik`), never the NIK itself.  The two kinds carry
different prefixes, so they never collide.  When an entry's UVCI is empty
after normalising, the identity falls back to a SHA-256 of the signed CWT
payload (still the same for every copy).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["hc1_identity", "nik_identity", "normalise_uvci"]

_URN = "URN:UVCI:"
_URN_LEN = len(_URN)


def normalise_uvci(uvci: str) -> str:
    """``uvci`` upper-cased, without a leading ``URN:UVCI:`` and the ``#`` checksum.

    ``"urn:uvci:01:DE:ABC#7"``, ``"01:de:abc#7"`` and ``"01:DE:ABC"`` all give
    ``"01:DE:ABC"``.  Never raises for a string.
    """
    upper = uvci.upper()
    if upper.startswith(_URN):
        upper = upper[_URN_LEN:]
    return upper.partition("#")[0]


def hc1_identity(country: str | None, uvcis: Sequence[str], payload: bytes) -> bytes:
    """The anti-passback identity of an HC1 certificate (bytes, no personal data beyond it).

    Args:
        country: the issuing country (CWT ``iss``, else the DSC's country), or None.
        uvcis: the ``ci`` of each entry (a certificate normally has one).
        payload: the signed CWT payload bytes, used only when no UVCI is left.
    """
    if len(uvcis) == 1:  # the usual certificate: normalise_uvci inlined (runs per scan)
        joined = uvcis[0].upper()
        if joined.startswith(_URN):
            joined = joined[_URN_LEN:]
        cut = joined.find("#")
        if cut >= 0:
            joined = joined[:cut]
    else:
        ids = sorted(normalise_uvci(u) for u in uvcis)
        joined = "\x1f".join(ids) if any(ids) else ""
    if not joined:
        return b"hc1-payload:" + hashlib.sha256(payload).digest()
    return f"hc1:{country.upper() if country else ''}/{joined}".encode()


def nik_identity(entry: bytes) -> bytes:
    """The anti-passback identity of a NIK admission: its status-list (KDF) entry."""
    return b"nik:" + entry
