"""Import the DSC trust lists central systems receive, for ``kiosk trust build --gateway-json``.

The EU DCC Gateway's trust list (``GET /trustList/DSC``, also what national
backends mirror) is a JSON array of entries::

    {"kid": base64 (first 8 bytes of SHA-256 of the DER), "timestamp": ISO time,
     "country": "DE", "certificateType": "DSC", "thumbprint": hex SHA-256 of the DER,
     "signature": base64 (the gateway's CMS signature), "rawData": base64 DER}

Some mirrors wrap it as ``{"certificates": [...]}``; both are read.  Only
``certificateType`` DSC entries are imported (CSCA, UPLOAD and AUTHENTICATION
entries are the gateway's own business); each keeps its **country** from the
list, and its **key usage** from the DSC's own Extended Key Usage, which the
gate applies (:meth:`kiosk.verify.bundle.BundleSigner.signer`).  A ``kid`` or
``thumbprint`` that does not match the DER is refused: it means the list was
corrupted or tampered with.  The gateway's per-entry ``signature`` (a CMS
signature by the uploading country's UPLOAD certificate) is not checked here:
the list is trusted as the central system received it over its mutually
authenticated TLS connection, and the bundle is then signed by our authority.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path
from typing import Any

from kiosk.decision import CertType
from kiosk.errors import DocumentError
from kiosk.verify.bundle import BundleSigner

__all__ = ["MAX_DER_BYTES", "MAX_ENTRIES", "MAX_FILE_BYTES", "decode_b64",
           "read_gateway_trustlist"]

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 50_000
MAX_DER_BYTES = 16 * 1024


def decode_b64(value: Any, what: str) -> bytes:
    """Standard base64 of at most a DER's size, strictly decoded; ValueError naming ``what``."""
    if not isinstance(value, str) or len(value) > 4 * MAX_DER_BYTES:
        raise ValueError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64") from None


def read_gateway_trustlist(path: Path) -> list[BundleSigner]:
    """The DSC entries of an EU DCC Gateway trust-list JSON file, as bundle signers.

    Raises:
        DocumentError: unreadable or too large file, not a list of entries, or
            an entry (named by its position) whose fields are malformed or
            whose kid/thumbprint does not match its certificate.
    """
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DocumentError(f"{path}: {size} bytes, more than {MAX_FILE_BYTES}")
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read trust list: {exc}") from exc
    except ValueError as exc:
        raise DocumentError(f"{path}: trust list is not JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("certificates"), list):
        data = data["certificates"]
    if not isinstance(data, list):
        raise DocumentError(f"{path}: trust list is not a JSON array of entries")
    if len(data) > MAX_ENTRIES:
        raise DocumentError(f"{path}: {len(data)} entries, more than {MAX_ENTRIES}")
    signers: list[BundleSigner] = []
    seen: set[bytes] = set()
    for index, entry in enumerate(data):
        try:
            signer = _entry(entry)
        except ValueError as exc:
            raise DocumentError(f"{path}: entry #{index}: {exc}") from None
        if signer is not None and signer.der not in seen:
            seen.add(signer.der)
            signers.append(signer)
    return signers


def _entry(entry: Any) -> BundleSigner | None:
    if not isinstance(entry, dict):
        raise ValueError("not an object")
    if entry.get("certificateType", "DSC") != "DSC":
        return None
    der = decode_b64(entry.get("rawData"), "rawData")
    if not der or len(der) > MAX_DER_BYTES:
        raise ValueError("rawData is empty or too large")
    country = entry.get("country")
    if not isinstance(country, str) or not 1 <= len(country) <= 3 or not country.isalpha():
        raise ValueError("country must be a 1-3 letter code")
    digest = hashlib.sha256(der).digest()
    if entry.get("kid") is not None and decode_b64(entry["kid"], "kid") != digest[:8]:
        raise ValueError("kid does not match the certificate")
    thumbprint = entry.get("thumbprint")
    if thumbprint is not None and (not isinstance(thumbprint, str)
                                   or thumbprint.lower() != digest.hex()):
        raise ValueError("thumbprint does not match the certificate")
    return BundleSigner(der, country.upper(), frozenset(CertType))
