"""Content checks of the hcert (the DCC JSON object under CWT claim -260/1).

Two levels:

* :func:`check_structure` -- the fast structural sanity check run on every
  scan: exactly one of ``v``/``t``/``r``, each entry a map with the fields its
  type requires, the right JSON types.  It deliberately does not enforce value
  patterns or length caps, which issuers in the field do not all respect.
* :func:`schema_errors` -- a real JSON-schema validation against the official
  EU DCC schemas shipped in ``kiosk/verify/data`` (Apache-2.0, see the
  ``NOTICE`` there).  It needs ``jsonschema`` and is used by the conformance
  runner; it costs ~0.4 ms, several times a whole verification.

Common rules (documented in docs/conformance.md):

* a property whose value is ``null`` is treated as absent (BG issued about a
  million certificates with ``"t": null`` and asked verifiers to accept them);
* a payload declaring version X.Y.Z is accepted when it is valid against the
  shipped schema for its own version line or any later one (later schema
  versions only relaxed constraints); unknown/newer versions use the newest;
* ``format`` is an annotation, not an assertion (JSON Schema 2020-12 default).
"""

from __future__ import annotations

import importlib
import json
import re
from datetime import datetime
from functools import cache
from importlib import resources
from operator import itemgetter
from typing import Any

from kiosk.decision import CertType, Reason
from kiosk.errors import VerificationError

__all__ = ["SCHEMA_VERSIONS", "check_structure", "plain_type", "schema_errors", "strip_nulls"]

_REQUIRED = {
    CertType.VACCINATION: ("tg", "vp", "mp", "ma", "dn", "sd", "dt", "co", "is", "ci"),
    CertType.TEST: ("tg", "tt", "sc", "tr", "tc", "co", "is", "ci"),
    CertType.RECOVERY: ("tg", "fr", "co", "is", "df", "du", "ci"),
}
_INTEGER_FIELDS = frozenset({"dn", "sd"})
# Some issuers encode the sample time as a CBOR tag 0 date-time, which cbor2
# hands out as a datetime; it is the same information as the JSON string.
_DATETIME_FIELDS = frozenset({"sc"})
_GROUPS = (CertType.VACCINATION, CertType.TEST, CertType.RECOVERY)
_GROUP_KEYS = tuple((g.value, g) for g in _GROUPS)
_REQUIRED_TYPES = {
    t: tuple((k, int if k in _INTEGER_FIELDS else str) for k in keys)
    for t, keys in _REQUIRED.items()
}

# (version, file) of the shipped official schemas, oldest first.
SCHEMA_VERSIONS: tuple[tuple[tuple[int, int, int], str], ...] = (
    ((1, 0, 0), "DGC.combined-schema-1.0.x.json"),
    ((1, 2, 1), "DCC.combined-schema-1.2.1.json"),
    ((1, 3, 0), "DCC.combined-schema-1.3.0.json"),
)
_VERSION = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")


def _invalid(detail: str) -> VerificationError:
    return VerificationError(Reason.SCHEMA_INVALID, detail)


# Per type: one C-level getter of all required entry fields and their exact types.
_ENTRY_FIELDS = {t: (itemgetter(*(k for k, _ in fields)), tuple(kind for _, kind in fields))
                 for t, fields in _REQUIRED_TYPES.items()}
_VACCINATION, _TEST, _RECOVERY = CertType.VACCINATION, CertType.TEST, CertType.RECOVERY


def plain_type(hcert: Any) -> CertType | None:
    """The type of an hcert made only of exact JSON types that passes every check, else None.

    The common case of :func:`check_structure` in a few C-level calls (this runs
    on every scan); None sends the hcert through the field-by-field checks,
    which also accept str subclasses and CBOR date-times and name the failing field.
    """
    if type(hcert) is not dict:
        return None
    get = hcert.get
    v, t, r = get("v"), get("t"), get("r")
    if v is not None:
        if t is not None or r is not None:
            return None
        entries, cert_type = v, _VACCINATION
    elif t is not None:
        if r is not None:
            return None
        entries, cert_type = t, _TEST
    elif r is not None:
        entries, cert_type = r, _RECOVERY
    else:
        return None
    nam = get("nam")
    if type(get("ver")) is not str or type(get("dob")) is not str or type(nam) is not dict \
            or type(nam.get("fnt")) is not str or type(entries) is not list or not entries:
        return None
    fn, gn, gnt = nam.get("fn"), nam.get("gn"), nam.get("gnt")
    if (fn is not None and type(fn) is not str) or (gn is not None and type(gn) is not str) \
            or (gnt is not None and type(gnt) is not str):
        return None
    fields, kinds = _ENTRY_FIELDS[cert_type]
    for entry in entries:
        if type(entry) is not dict:
            return None
        try:
            values = fields(entry)
        except KeyError:
            return None
        if tuple(map(type, values)) != kinds:
            return None
    return cert_type


def check_structure(hcert: Any) -> CertType:
    """Fast structural check of an hcert; returns its certificate type.

    Raises:
        VerificationError(SCHEMA_INVALID): naming the field (never its value).
    """
    plain = plain_type(hcert)
    if plain is not None:
        return plain
    if not isinstance(hcert, dict):
        raise _invalid("hcert is not a map")
    # Plain string keys, not CertType.value: enum attribute access is slow and
    # this runs on every scan.
    present = [g for g in _GROUP_KEYS if hcert.get(g[0]) is not None]
    if len(present) != 1:
        raise _invalid(f"expected exactly one of v/t/r, found {len(present)}")
    if type(hcert.get("ver")) is not str:
        raise _invalid("ver missing or not a string")
    if type(hcert.get("dob")) is not str:
        raise _invalid("dob missing or not a string")
    nam = hcert.get("nam")
    if not isinstance(nam, dict) or not isinstance(nam.get("fnt"), str):
        raise _invalid("nam.fnt missing or not a string")
    for key in ("fn", "gn", "gnt"):
        if nam.get(key) is not None and not isinstance(nam[key], str):
            raise _invalid(f"nam.{key} is not a string")
    group, cert_type = present[0]
    entries = hcert[group]
    if not isinstance(entries, list) or not entries:
        raise _invalid(f"{group} is not a non-empty array")
    required = _REQUIRED_TYPES[cert_type]
    for entry in entries:
        if not isinstance(entry, dict):
            raise _invalid(f"{group} entry is not a map")
        for key, kind in required:
            value = entry.get(key)
            # type() identity checks: this runs ~10 times per scan.
            if type(value) is kind:
                continue
            if key in _DATETIME_FIELDS and isinstance(value, datetime):
                continue
            expected = "an integer" if key in _INTEGER_FIELDS else "a string"
            raise _invalid(f"{group}.{key} missing or not {expected}")
    return cert_type


def strip_nulls(value: Any) -> Any:
    """The JSON data model of a decoded hcert, for schema validation.

    Null-valued map entries are removed (recursively).  Date/times that cbor2
    decoded from CBOR tag 0/1 become RFC 3339 strings: RFC 8949 section 6.1
    converts a tagged item to JSON by converting its content, which for tag 0
    is the date-time text string.
    """
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [strip_nulls(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


@cache
def _validator(filename: str) -> Any:
    # Optional dependency (conformance only), imported on first use.
    validator_class = importlib.import_module("jsonschema").Draft202012Validator
    text = resources.files("kiosk.verify").joinpath("data", filename).read_text("utf-8")
    schema = json.loads(text)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _candidates(ver: Any) -> list[str]:
    match = _VERSION.match(ver) if isinstance(ver, str) else None
    if match is None:
        return [SCHEMA_VERSIONS[-1][1]]
    line = (int(match[1]), int(match[2]), 0)
    files = [name for version, name in SCHEMA_VERSIONS if version >= line]
    return files or [SCHEMA_VERSIONS[-1][1]]


def schema_errors(hcert: Any) -> list[str]:
    """Validate ``hcert`` against the official DCC JSON schema(s) for its ``ver``.

    Returns an empty list when valid, else short messages naming the failing
    path and keyword (never field values, which may be personal data).
    Raises ImportError when ``jsonschema`` is not installed.
    """
    data = strip_nulls(hcert)
    if not isinstance(data, dict):
        return ["hcert is not a map"]
    groups = [g for g in "vtr" if g in data]
    errors: list[str] = []
    if len(groups) != 1:
        errors.append(f"expected exactly one of v/t/r, found {len(groups)}")
    last: list[str] = []
    for filename in _candidates(data.get("ver")):
        found = [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.validator}"
            for e in _validator(filename).iter_errors(data)
        ]
        if not found:
            return errors
        # Report the newest (most lenient) schema's complaints: the ones that remain.
        last = [f"{filename}: {m}" for m in found]
    return errors + last
