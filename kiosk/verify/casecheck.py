"""Checks of single EXPECTED* flags of one EU DCC conformance test case.

Each checker receives the case (the parsed JSON file) and returns True (the
step succeeded), False (it failed), or None when the case lacks the fields the
step needs (then the flag cannot be evaluated; upstream skips it too).  The
checkers reuse the production steps of :mod:`kiosk.verify.steps` on the
intermediate values stored in the case, so a pass here means the gate code
itself behaves as the case expects.  No checker ever looks at the file name,
country or description.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import cbor2

from kiosk.decision import CertType
from kiosk.errors import VerificationError
from kiosk.verify import steps
from kiosk.verify.cose import parse_sign1
from kiosk.verify.schema import check_structure, schema_errors, strip_nulls
from kiosk.verify.trust import Signer, TrustStore
from kiosk.verify.valuesets import ValueSets

__all__ = ["CHECKS", "FLAG_ALIASES", "IGNORED_FLAGS", "parse_clock", "run_check"]

Case = dict[str, Any]

# Misspelled flag keys seen in published suites, mapped to the flag they mean.
# BG wrote EXPTECTEDEXPIRED=true on certificates that are *not* expired at the
# validation clock, so it is the expiration check passing, not "expired".
FLAG_ALIASES = {"EXPTECTEDEXPIRED": "EXPECTEDEXPIRATIONCHECK"}

_CLOCK = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d{0,9}))?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def parse_clock(text: str) -> datetime:
    """Parse a VALIDATIONCLOCK: ISO-8601 with ``Z``, ``+02:00``, ``+0000`` or no zone (UTC),
    and 0-9 fractional digits (truncated to microseconds). Raises ValueError otherwise."""
    m = _CLOCK.match(text.strip())
    if m is None:
        raise ValueError(f"unrecognised clock {text!r}")
    day, hms, frac, zone = m.groups()
    if hms.count(":") == 1:
        hms += ":00"
    micro = (frac or "").ljust(6, "0")[:6]
    if zone in (None, "Z"):
        zone = "+00:00"
    elif ":" not in zone:
        zone = zone[:3] + ":" + (zone[3:] or "00")
    return datetime.fromisoformat(f"{day}T{hms}.{micro}{zone}").astimezone(UTC)


def _hex(case: Case, key: str) -> bytes | None:
    value = case.get(key)
    if not isinstance(value, str):
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return b"\x00invalid-hex"  # present but unusable: steps will reject it


def _signer(case: Case) -> Signer | None:
    ctx = case.get("TESTCTX") or {}
    try:
        der = base64.b64decode(ctx["CERTIFICATE"], validate=False)
        return Signer.from_der(der)
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None


def _canon(value: Any) -> Any:
    """Normalise for comparison: map order ignored, date-times compared as UTC instants."""
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).replace(microsecond=0).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and _ISO_DATETIME.match(value):
        try:
            return _canon(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _hcert_of(cbor: bytes) -> Any:
    """Decode CBOR holding either full CWT claims ({-260: {1: hcert}}) or the hcert alone."""
    obj = cbor2.loads(cbor)
    if isinstance(obj, dict) and -260 in obj:
        container = obj[-260]
        return container.get(1) if isinstance(container, dict) else None
    return obj


def _cose_hcert(case: Case) -> Any:
    cose = _hex(case, "COSE")
    if cose is None:
        return None
    return _hcert_of(parse_sign1(cose).payload)


def check_picture(case: Case) -> bool | None:
    """EXPECTEDPICTUREDECODE: the PNG in 2DCODE (or any key ending in 2DCODE) reads as PREFIX."""
    png = next((v for k, v in case.items() if k.upper().endswith("2DCODE")), None)
    if not isinstance(png, str) or "PREFIX" not in case:
        return None
    try:
        texts = _read_qr(base64.b64decode(png))
    except Exception:  # undecodable base64 or image: the picture cannot be read
        return False
    return case["PREFIX"] in texts


def _read_qr(png: bytes) -> list[str]:
    from PIL import Image
    from pyzbar import pyzbar

    with Image.open(io.BytesIO(png)) as image:
        image.load()
        found = [
            r.data.decode("utf-8", "replace")
            for r in pyzbar.decode(image, symbols=[pyzbar.ZBarSymbol.QRCODE])
        ]
        if found:
            return found
        try:  # second opinion: zxing-cpp reads some codes zbar misses
            import zxingcpp
        except ImportError:
            return []
        return [r.text for r in zxingcpp.read_barcodes(image)]


def check_unprefix(case: Case) -> bool | None:
    """EXPECTEDUNPREFIX: PREFIX carries the HC1: context and stripping it gives BASE45."""
    prefix = case.get("PREFIX")
    if not isinstance(prefix, str):
        return None
    body = steps.strip_prefix(prefix)
    return "BASE45" not in case or body == case["BASE45"]


def check_base45(case: Case) -> bool | None:
    """EXPECTEDB45DECODE: BASE45 decodes, and equals COMPRESSED when given."""
    text = case.get("BASE45")
    if not isinstance(text, str):
        return None
    out = steps.decode_base45(text)
    expected = _hex(case, "COMPRESSED")
    return expected is None or out == expected


def check_compression(case: Case) -> bool | None:
    """EXPECTEDCOMPRESSION: COMPRESSED inflates (capped), and equals COSE when given."""
    data = _hex(case, "COMPRESSED")
    if data is None:
        return None
    out = steps.inflate(data)
    expected = _hex(case, "COSE")
    return expected is None or out == expected


def check_verify(case: Case) -> bool | None:
    """EXPECTEDVERIFY: kid (protected first) names the case's DSC and the signature verifies."""
    cose = _hex(case, "COSE")
    if cose is None:
        return None
    signer = _signer(case)
    if signer is None:
        return False
    steps.authenticate(parse_sign1(cose), TrustStore([signer]))
    return True


def check_decode(case: Case) -> bool | None:
    """EXPECTEDDECODE: the COSE payload and/or CBOR decode and match JSON (order ignored)."""
    decoded = []
    if "COSE" in case:
        decoded.append(_cose_hcert(case))
    cbor = _hex(case, "CBOR")
    if cbor is not None:
        decoded.append(_hcert_of(cbor))
    if not decoded:
        return None
    if "JSON" in case:
        decoded.append(case["JSON"])
    first = _canon(decoded[0])
    return isinstance(decoded[0], dict) and all(_canon(d) == first for d in decoded[1:])


def check_valid_json(case: Case) -> bool | None:
    """EXPECTEDVALIDJSON: PREFIX → Base45 → zlib → COSE → payload equals JSON."""
    prefix, expected = case.get("PREFIX"), case.get("JSON")
    if not isinstance(prefix, str) or expected is None:
        return None
    compressed = steps.decode_base45(steps.strip_prefix(prefix))
    hcert = _hcert_of(parse_sign1(steps.inflate(compressed)).payload)
    return isinstance(hcert, dict) and _canon(hcert) == _canon(expected)


def check_schema(case: Case, valuesets: ValueSets | None = None) -> bool | None:
    """EXPECTEDSCHEMAVALIDATION: the payload (COSE, else CBOR, else JSON) passes the DCC schema.

    With ``valuesets``, the coded fields must also hold codes of their value
    sets (as the EU verifiers' schema validation does; a test's ``ma`` only
    when the device list is complete).
    """
    if "COSE" in case:
        hcert = _cose_hcert(case)
    elif "CBOR" in case:
        hcert = _hcert_of(_hex(case, "CBOR") or b"")
    elif "JSON" in case:
        hcert = case["JSON"]
    else:
        return None
    if schema_errors(hcert):
        return False
    if valuesets:
        data = strip_nulls(hcert)
        cert_type = check_structure(data)
        return valuesets.why_not(data[cert_type.value], cert_type) is None
    return True


def check_expiration(case: Case) -> bool | None:
    """EXPECTEDEXPIRATIONCHECK: iat <= clock <= exp and the DSC validity covers iat..exp."""
    cose = _hex(case, "COSE")
    clock = (case.get("TESTCTX") or {}).get("VALIDATIONCLOCK")
    signer = _signer(case)
    if cose is None or not isinstance(clock, str) or signer is None:
        return None
    claims = steps.parse_claims(parse_sign1(cose).payload)
    steps.check_times(claims, signer, parse_clock(clock))
    return True


def check_key_usage(case: Case) -> bool | None:
    """EXPECTEDKEYUSAGE: the DSC's EKU allows the payload's certificate type."""
    signer = _signer(case)
    if "COSE" not in case or signer is None:
        return None
    hcert = _cose_hcert(case)
    if not isinstance(hcert, dict):
        return False
    groups = [t for t in CertType if hcert.get(t.value) is not None]
    return len(groups) == 1 and signer.allows(groups[0])


CHECKS: dict[str, Callable[[Case], bool | None]] = {
    "EXPECTEDPICTUREDECODE": check_picture,
    "EXPECTEDUNPREFIX": check_unprefix,
    "EXPECTEDB45DECODE": check_base45,
    "EXPECTEDCOMPRESSION": check_compression,
    "EXPECTEDVERIFY": check_verify,
    "EXPECTEDDECODE": check_decode,
    "EXPECTEDVALIDJSON": check_valid_json,
    "EXPECTEDSCHEMAVALIDATION": check_schema,
    "EXPECTEDEXPIRATIONCHECK": check_expiration,
    "EXPECTEDKEYUSAGE": check_key_usage,
}
"""Flag → checker.  EXPECTEDVALIDOBJECT / EXPECTEDENCODE concern issuing, not verifying."""

IGNORED_FLAGS = frozenset({"EXPECTEDVALIDOBJECT", "EXPECTEDENCODE"})


def run_check(name: str, case: Case,
              valuesets: ValueSets | None = None) -> tuple[bool | None, str]:
    """Run one checker; any VerificationError or decoding exception counts as "step failed".

    ``valuesets`` (optional) joins the schema check (:func:`check_schema`).
    Returns (outcome, short detail naming the reason or exception type).
    """
    try:
        if name == "EXPECTEDSCHEMAVALIDATION":
            return check_schema(case, valuesets), ""
        return CHECKS[name](case), ""
    except VerificationError as exc:
        return False, str(exc.reason)
    except Exception as exc:  # hostile test data: a crash of a step is a failed step
        return False, type(exc).__name__
