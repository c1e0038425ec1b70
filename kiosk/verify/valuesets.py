"""EU DCC value sets: which codes a certificate's coded fields may hold.

The EU verifier apps refuse a certificate whose disease (``tg``), vaccine
(``vp``), product (``mp``), marketing-authorisation holder (``ma``), test type
(``tt``), test result (``tr``) or country (``co``) is not in the published
value sets (github.com/ehn-dcc-development/eu-dcc-valuesets).  The trust
bundle (format 2) carries them as ``{valueSetId: [code, ...]}``; a gate checks
every scan against them with frozenset lookups (no JSON schema on the hot
path) and denies an unknown code with its own reason (``unknown_product``,
``unknown_country``, ...).

A test's ``ma`` (the rapid-test device) is checked only when the bundle says
its device list is complete (``complete_test_devices``): the shipped
``test-manf-example`` set is an 88-entry *example*, and refusing on it would
refuse real rapid tests.  A value set that is absent from the bundle checks
nothing (an older bundle, or a site that chose not to ship it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from kiosk.decision import CertType, Reason
from kiosk.errors import DocumentError, VerificationError

__all__ = ["FIELD_SETS", "ValueSets", "load_folder"]

# valueSetId of each governed field, per certificate type (eu-dcc-valuesets ids).
DISEASE = "disease-agent-targeted"
VACCINE = "sct-vaccines-covid-19"
PRODUCT = "vaccines-covid-19-names"
MAH = "vaccines-covid-19-auth-holders"
TEST_TYPE = "covid-19-lab-test-type"
TEST_RESULT = "covid-19-lab-result"
TEST_DEVICE = "covid-19-lab-test-manufacturer-and-name"
COUNTRY = "country-2-codes"

FIELD_SETS: Mapping[CertType, tuple[tuple[str, str, Reason], ...]] = {
    CertType.VACCINATION: (
        ("tg", DISEASE, Reason.UNKNOWN_DISEASE), ("vp", VACCINE, Reason.UNKNOWN_VACCINE),
        ("mp", PRODUCT, Reason.UNKNOWN_PRODUCT), ("ma", MAH, Reason.UNKNOWN_MANUFACTURER),
        ("co", COUNTRY, Reason.UNKNOWN_COUNTRY),
    ),
    CertType.TEST: (
        ("tg", DISEASE, Reason.UNKNOWN_DISEASE), ("tt", TEST_TYPE, Reason.UNKNOWN_TEST_TYPE),
        ("tr", TEST_RESULT, Reason.UNKNOWN_TEST_RESULT),
        ("ma", TEST_DEVICE, Reason.UNKNOWN_MANUFACTURER), ("co", COUNTRY, Reason.UNKNOWN_COUNTRY),
    ),
    CertType.RECOVERY: (
        ("tg", DISEASE, Reason.UNKNOWN_DISEASE), ("co", COUNTRY, Reason.UNKNOWN_COUNTRY),
    ),
}
"""Per type: (entry field, valueSetId, deny reason), in the order they are checked."""

KNOWN_IDS = frozenset(vs for rows in FIELD_SETS.values() for _, vs, _ in rows)
MAX_SETS = 32
MAX_CODES = 10_000  # per set; the largest EU set (countries) has 250
MAX_CODE_LEN = 64


@dataclass(frozen=True)
class ValueSets:
    """Value sets by id, and the per-type checks compiled from them.

    Attributes:
        sets: valueSetId → the codes it holds.
        complete_test_devices: the test device set (``ma`` of a test) is the
            complete list, so a test's ``ma`` is checked; False for an example.
    """

    sets: Mapping[str, frozenset[str]] = field(default_factory=dict)
    complete_test_devices: bool = False
    # Per type: ((field, codes, reason), ...) for the sets present: check() runs per scan.
    _checks: Mapping[CertType, tuple[tuple[str, frozenset[str], Reason], ...]] = field(
        init=False, repr=False, compare=False)
    enabled: bool = field(init=False, repr=False, compare=False)
    _plain: Mapping[CertType, tuple[Any, tuple[frozenset[str], ...], bool]] = field(
        init=False, repr=False, compare=False)
    """True when any set is present (read per scan: a plain attribute, not ``__bool__``)."""

    def __post_init__(self) -> None:
        checks = {}
        for cert_type, rows in FIELD_SETS.items():
            checks[cert_type] = tuple(
                (key, self.sets[vs], reason) for key, vs, reason in rows
                if vs in self.sets
                and (vs != TEST_DEVICE or self.complete_test_devices))
        object.__setattr__(self, "_checks", checks)
        object.__setattr__(self, "enabled", bool(self.sets))
        # Per type: one C-level getter of the checked fields and their sets, in order.
        object.__setattr__(self, "_plain", {
            t: (itemgetter(*(k for k, _, _ in rows)) if rows else None,
                tuple(codes for _, codes, _ in rows), len(rows) == 1)
            for t, rows in checks.items()})

    def __bool__(self) -> bool:
        return self.enabled

    def known(self, entries: Iterable[dict[str, Any]], cert_type: CertType) -> bool:
        """True when every checked field of every entry holds a known code (the per-scan test).

        Needs every checked field present (:func:`why_not` tolerates a missing
        one): False here only means "ask :meth:`why_not`".
        """
        getter, sets, single = self._plain[cert_type]
        if getter is None:
            return True
        try:
            for entry in entries:
                values = getter(entry)
                if single:
                    if values not in sets[0]:
                        return False
                elif not all(map(frozenset.__contains__, sets, values)):
                    return False
        except (KeyError, TypeError):
            return False
        return True

    def why_not(self, entries: Iterable[Any], cert_type: CertType) -> tuple[Reason, str] | None:
        """The first unknown code of ``entries`` as (reason, detail), else None.

        The detail names the field and the value set, never the value (it may
        be free text an issuer put there).  A field missing from an entry is
        left to the structure check.
        """
        checks = self._checks[cert_type]
        for entry in entries:
            get = entry.get
            for key, codes, reason in checks:
                value = get(key)
                if value is not None and value not in codes:
                    return reason, f"{cert_type.value}.{key} not in value set"
        return None

    def check(self, entries: Iterable[Any], cert_type: CertType) -> None:
        """Raise VerificationError(UNKNOWN_...) for the first unknown code."""
        found = self.why_not(entries, cert_type)
        if found is not None:
            raise VerificationError(found[0], found[1])

    def as_external(self) -> dict[str, list[str]]:
        """``{valueSetId: sorted codes}``: CertLogic's ``external.valueSets``."""
        return {vs: sorted(codes) for vs, codes in sorted(self.sets.items())}

    def to_obj(self) -> dict[str, Any]:
        """The bundle wire form: ``{"sets": {id: [code]}, "complete_test_devices": bool}``."""
        return {"sets": self.as_external(), "complete_test_devices": self.complete_test_devices}

    @classmethod
    def from_obj(cls, obj: Any) -> ValueSets:
        """Parse the wire form (None: no value sets). Raises ValueError naming the defect."""
        if obj is None:
            return cls()
        if not isinstance(obj, dict) or set(obj) - {"sets", "complete_test_devices"}:
            raise ValueError("valuesets must be a map of sets and complete_test_devices")
        raw, complete = obj.get("sets", {}), obj.get("complete_test_devices", False)
        if not isinstance(raw, dict) or len(raw) > MAX_SETS or type(complete) is not bool:
            raise ValueError(f"valuesets.sets must be a map of at most {MAX_SETS} sets")
        sets: dict[str, frozenset[str]] = {}
        for vs, codes in raw.items():
            if not isinstance(vs, str) or not isinstance(codes, list) \
                    or len(codes) > MAX_CODES or not all(
                        type(c) is str and 0 < len(c) <= MAX_CODE_LEN for c in codes):
                raise ValueError(f"valueset {str(vs)[:40]!r}: must list at most {MAX_CODES} "
                                 "codes (strings)")
            sets[vs] = frozenset(codes)
        return cls(sets, complete)


def load_folder(folder: Path, *, complete_test_devices: bool = False) -> ValueSets:
    """Read every ``*.json`` value-set file of ``folder`` (the eu-dcc-valuesets layout).

    The files are read and bounded by :func:`kiosk.certlogic.valuesets.load_value_sets`
    (the one reader, shared with ``kiosk rules check``); every listed code
    counts, active or not.  Files with other ids are kept too (CertLogic rules
    may use them).

    Raises:
        DocumentError: unreadable folder or file, a file too large or not of
            that shape (named), an id twice, or no value-set file at all.
    """
    from kiosk.certlogic.dates import CertLogicError
    from kiosk.certlogic.valuesets import load_value_sets

    try:
        sets = load_value_sets(folder)
    except CertLogicError as exc:
        raise DocumentError(str(exc)) from None
    if not sets:
        raise DocumentError(f"{folder}: no value-set files (*.json)")
    try:
        return ValueSets.from_obj({"sets": sets, "complete_test_devices": complete_test_devices})
    except ValueError as exc:
        raise DocumentError(f"{folder}: {exc}") from exc
