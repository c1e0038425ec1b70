"""EU DCC value-set files, read and bounded: the one reader of both sides.

A folder holds one JSON file per value set, as the EU published them
(``../shared/testdata/valuesets/``): ``{"valueSetId", "valueSetDate",
"valueSetValues": {code: {"display", "lang", "active", "version", "system"}}}``.
:func:`load_value_sets` gives CertLogic's ``external.valueSets`` (valueSetId ->
list of codes, for ``kiosk rules check``); the trust bundle's value sets
(:func:`kiosk.verify.valuesets.load_folder`, for ``kiosk trust build``) are
read through it too, so both sides accept and refuse the same files.  Every
code is listed, active or not, as the EU verifiers pass them (a certificate
issued while a code was active stays readable); rules that care about
``active`` cannot see it (nor can the EU's).  Files are bounded in size and
count before they are parsed; other files in the folder (README, LICENSE) are
ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kiosk.certlogic.commands import read_json
from kiosk.certlogic.dates import CertLogicError

MAX_FILES = 64
MAX_FILE_BYTES = 1 << 20
MAX_CODES = 10_000
MAX_CODE_CHARS = 256


def value_set_codes(document: Any) -> tuple[str, list[str]]:
    """(valueSetId, codes) of one parsed value-set document; raises CertLogicError if malformed."""
    if type(document) is not dict:
        raise CertLogicError("a value set must be a JSON object")
    set_id, values = document.get("valueSetId"), document.get("valueSetValues")
    if type(set_id) is not str or not 0 < len(set_id) <= 100:
        raise CertLogicError("valueSetId must be non-empty text (at most 100 characters)")
    if type(values) is not dict or len(values) > MAX_CODES:
        raise CertLogicError(f"valueSetValues must be an object of at most {MAX_CODES} codes")
    codes = list(values)
    if not all(0 < len(code) <= MAX_CODE_CHARS for code in codes):
        raise CertLogicError(f"a code is empty or longer than {MAX_CODE_CHARS} characters")
    return set_id, codes


def read_value_set_file(path: Path) -> tuple[str, list[str]]:
    """(valueSetId, codes) of one value-set file, read bounded; errors name the file."""
    document = read_json(path, MAX_FILE_BYTES)  # its errors name the file already
    try:
        return value_set_codes(document)
    except CertLogicError as exc:
        raise CertLogicError(f"{path}: {exc}") from None


def load_value_sets(folder: Path) -> dict[str, list[str]]:
    """Every ``*.json`` value set in ``folder`` (none: empty); errors name the file and reason."""
    if not folder.is_dir():
        raise CertLogicError(f"{folder}: not a folder of value sets")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".json")
    if len(files) > MAX_FILES:
        raise CertLogicError(f"{folder}: {len(files)} value-set files, at most {MAX_FILES}")
    value_sets: dict[str, list[str]] = {}
    for file in files:
        set_id, codes = read_value_set_file(file)
        if set_id in value_sets:
            raise CertLogicError(f"{file}: valueSetId {set_id!r} appears twice")
        value_sets[set_id] = codes
    return value_sets
