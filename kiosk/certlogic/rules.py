"""EU DCC Gateway business rules: checked and compiled once into a :class:`RuleSet`.

A rule is the Gateway's JSON object (``Identifier``, ``Type``, ``Country``,
``Version``, ``SchemaVersion``, ``Engine``, ``EngineVersion``,
``CertificateType``, ``Description``, ``ValidFrom``, ``ValidTo``,
``AffectedFields``, ``Logic``). :func:`compile_rule_set` validates every field
(unknown keys are refused: a misspelt key in a signed policy must not pass
quietly) and compiles each ``Logic``; :meth:`RuleSet.evaluate` then runs the
rules that apply to one payload with the EU verifiers' data context
``{"payload": <hcert>, "external": {"validationClock", "valueSets",
"countryCode", "iat", "exp", ...}}``.

Which version decides: among the versions of one Identifier whose
``ValidFrom``..``ValidTo`` (both inclusive) holds the validation clock, the
highest ``Version``. A rule is not applicable (``passed is None``) when no
version is valid then, or when its ``CertificateType`` is neither ``General``
nor the payload's type. A rule passes only when its Logic evaluates to exactly
``true``; ``false``, any other value and any evaluation error fail it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from kiosk.certlogic.dates import CertLogicError, parse_date_time
from kiosk.certlogic.evaluator import MAX_STEPS, Program, compile_expression

MAX_RULES = 1000
MAX_TOTAL_NODES = 200_000
MAX_DESCRIPTION = 1000  # characters of one description text
CERTIFICATE_TYPES = ("General", "Vaccination", "Test", "Recovery")
RULE_TYPES = ("Acceptance", "Invalidation")
_FIELDS = ("Identifier", "Type", "Country", "Version", "SchemaVersion", "Engine",
           "EngineVersion", "CertificateType", "Description", "ValidFrom", "ValidTo",
           "AffectedFields", "Logic")
_IDENTIFIER = re.compile(r"(GR|VR|TR|RR|IR)-[A-Z]{2}-[0-9]{4}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_SEMVER = re.compile(r"(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})")
_LANG = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")
_PAYLOAD_TYPES = (("v", "Vaccination"), ("t", "Test"), ("r", "Recovery"))


@dataclass(frozen=True, slots=True)
class Rule:
    """One validated, compiled rule version."""

    identifier: str
    version: tuple[int, int, int]
    type: str
    country: str
    certificate_type: str
    valid_from_ms: int
    valid_to_ms: int
    descriptions: Mapping[str, str]
    affected_fields: tuple[str, ...]
    program: Program

    @property
    def version_text(self) -> str:
        """``Version`` as written in the rule, e.g. ``1.0.0``."""
        return ".".join(map(str, self.version))

    def description(self, lang: str, fallback: str = "en") -> str:
        """The description in ``lang``, else in ``fallback``, else the first one given."""
        found = self.descriptions.get(lang) or self.descriptions.get(fallback)
        return found if found is not None else next(iter(self.descriptions.values()))


class RuleOutcome(NamedTuple):
    """What one Identifier decided for one payload.

    ``passed``: True passed, False failed (``error`` says why when it raised),
    None not applicable (``rule`` is None when no version was valid).
    ``error`` names the expression's problem, never a data value.
    """

    identifier: str
    passed: bool | None
    rule: Rule | None
    error: str | None = None

    def description(self, lang: str, fallback: str = "en") -> str:
        """The deciding rule's description in ``lang`` (empty when no version was valid)."""
        return self.rule.description(lang, fallback) if self.rule is not None else ""


def certificate_type(payload: Any) -> str | None:
    """``Vaccination``, ``Test`` or ``Recovery`` from the hcert's non-empty v/t/r entry."""
    if type(payload) is dict:
        for key, name in _PAYLOAD_TYPES:
            if payload.get(key):
                return name
    return None


def instant_text(moment: datetime) -> str:
    """``moment`` as CertLogic date-time text, UTC with milliseconds (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    m = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:"
            f"{m.second:02d}.{m.microsecond // 1000:03d}Z")


# One version as the hot loop reads it: (valid from, valid to, certificate type, root, rule).
_Version = tuple[int, int, str, Any, Rule]


class RuleSet:
    """Compiled rules with the value sets they are evaluated against."""

    def __init__(self, rules: Sequence[Rule], value_sets: Mapping[str, list[str]]) -> None:
        """Group ``rules`` by Identifier (first appearance order), newest version first."""
        groups: dict[str, list[Rule]] = {}
        for rule in rules:
            groups.setdefault(rule.identifier, []).append(rule)
        self._groups: tuple[tuple[str, tuple[_Version, ...]], ...] = tuple(
            (identifier, tuple((r.valid_from_ms, r.valid_to_ms, r.certificate_type,
                                r.program.node, r)
                               for r in sorted(versions, key=lambda r: r.version,
                                               reverse=True)))
            for identifier, versions in groups.items())
        self.rules = tuple(rules)
        self.value_sets = dict(value_sets)

    @property
    def identifiers(self) -> tuple[str, ...]:
        """Every Identifier, in the order of first appearance."""
        return tuple(identifier for identifier, _ in self._groups)

    def external(self, at: datetime, *, country: str | None = None,
                 iat: datetime | None = None, exp: datetime | None = None,
                 **extra: Any) -> dict[str, Any]:
        """The ``external`` data context as the EU verifiers pass it (times as UTC text)."""
        external: dict[str, Any] = {"validationClock": instant_text(at),
                                    "valueSets": self.value_sets}
        if country is not None:
            external["countryCode"] = country
        if iat is not None:
            external["iat"] = instant_text(iat)
        if exp is not None:
            external["exp"] = instant_text(exp)
        external.update(extra)
        return external

    def evaluate(self, payload: Any, external: Mapping[str, Any]) -> list[RuleOutcome]:
        """One outcome per Identifier for ``payload``; ``external["validationClock"]`` required.

        Raises :class:`CertLogicError` only when the validation clock is missing
        or malformed (a caller's mistake, not a rule's); rule errors are outcomes.
        """
        kind, at_ms, data = _context(payload, external)
        outcomes = []
        for identifier, versions in self._groups:
            version = _valid_version(versions, at_ms)
            if version is None:
                outcomes.append(RuleOutcome(identifier, None, None))
                continue
            _, _, rule_kind, node, rule = version
            if rule_kind != "General" and rule_kind != kind:
                outcomes.append(RuleOutcome(identifier, None, rule))
                continue
            try:
                outcomes.append(RuleOutcome(identifier, node(data, [MAX_STEPS]) is True, rule))
            except CertLogicError as exc:
                outcomes.append(RuleOutcome(identifier, False, rule, str(exc)[:200]))
        return outcomes

    def failures(self, payload: Any, external: Mapping[str, Any]) -> list[RuleOutcome]:
        """Only the failed outcomes, as :meth:`evaluate` decides them.

        The per-scan path: rules that pass or do not apply cost no object.
        """
        kind, at_ms, data = _context(payload, external)
        failed = []
        for identifier, versions in self._groups:
            version = _valid_version(versions, at_ms)
            if version is None:
                continue
            _, _, rule_kind, node, rule = version
            if rule_kind != "General" and rule_kind != kind:
                continue
            try:
                if node(data, [MAX_STEPS]) is True:
                    continue
                error = None
            except CertLogicError as exc:
                error = str(exc)[:200]
            failed.append(RuleOutcome(identifier, False, rule, error))
        return failed


def _valid_version(versions: tuple[_Version, ...], at_ms: int) -> _Version | None:
    """The highest version valid at ``at_ms`` (``versions`` are sorted newest first)."""
    for version in versions:
        if version[0] <= at_ms <= version[1]:
            return version
    return None


def _context(payload: Any, external: Mapping[str, Any]) -> tuple[str | None, int, dict[str, Any]]:
    """(certificate type, validation clock in ms, data context) for one evaluation."""
    clock = external.get("validationClock")
    if type(clock) is not str:
        raise CertLogicError("external.validationClock must be date-time text")
    data = {"payload": payload, "external": external}
    return certificate_type(payload), parse_date_time(clock).ms, data


def compile_rule_set(rules: Sequence[Any],
                     value_sets: Mapping[str, list[str]] | None = None) -> RuleSet:
    """Validate and compile Gateway-format ``rules``; :class:`CertLogicError` names the rule.

    ``value_sets`` (valueSetId -> codes, see :mod:`kiosk.certlogic.valuesets`)
    become ``external.valueSets`` in :meth:`RuleSet.external`.
    """
    if len(rules) > MAX_RULES:
        raise CertLogicError(f"{len(rules)} rules: at most {MAX_RULES} per set")
    compiled: list[Rule] = []
    seen: set[tuple[str, tuple[int, int, int]]] = set()
    total_nodes = 0
    for number, raw in enumerate(rules, 1):
        label = f"rule #{number}"
        if type(raw) is dict and type(raw.get("Identifier")) is str:
            label += f" ({raw['Identifier'][:20]})"
        try:
            rule = parse_rule(raw)
        except CertLogicError as exc:
            raise CertLogicError(f"{label}: {exc}") from None
        if (rule.identifier, rule.version) in seen:
            raise CertLogicError(f"{label}: version {rule.version_text} appears twice")
        seen.add((rule.identifier, rule.version))
        total_nodes += rule.program.nodes
        if total_nodes > MAX_TOTAL_NODES:
            raise CertLogicError(f"rules hold more than {MAX_TOTAL_NODES} expression nodes")
        compiled.append(rule)
    return RuleSet(compiled, value_sets or {})


def parse_rule(raw: Any) -> Rule:
    """One Gateway rule object -> :class:`Rule`; :class:`CertLogicError` names the field."""
    if type(raw) is not dict:
        raise CertLogicError("a rule must be a JSON object")
    unknown = [key for key in raw if key not in _FIELDS]
    if unknown:
        raise CertLogicError(f"unknown field {str(unknown[0])[:40]!r}")
    missing = [key for key in _FIELDS if key not in raw]
    if missing:
        raise CertLogicError(f"missing field {missing[0]!r}")
    identifier = _text(raw, "Identifier", _IDENTIFIER)
    version = _semver(raw, "Version")
    _semver(raw, "SchemaVersion")
    _semver(raw, "EngineVersion")
    if raw["Engine"] != "CERTLOGIC":
        raise CertLogicError("Engine: only CERTLOGIC is supported")
    rule_type = _choice(raw, "Type", RULE_TYPES)
    kind = _choice(raw, "CertificateType", CERTIFICATE_TYPES)
    country = _text(raw, "Country", _COUNTRY)
    valid_from, valid_to = _instant(raw, "ValidFrom"), _instant(raw, "ValidTo")
    if valid_to < valid_from:
        raise CertLogicError("ValidTo is before ValidFrom")
    affected = raw["AffectedFields"]
    if type(affected) is not list or not all(type(f) is str and len(f) <= 100 for f in affected):
        raise CertLogicError("AffectedFields must be a list of field names")
    try:
        program = compile_expression(raw["Logic"])
    except CertLogicError as exc:
        raise CertLogicError(f"Logic: {exc}") from None
    return Rule(identifier, version, rule_type, country, kind, valid_from, valid_to,
                _descriptions(raw["Description"]), tuple(affected), program)


def _text(raw: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value = raw[key]
    if type(value) is not str or pattern.fullmatch(value) is None:
        raise CertLogicError(f"{key}: {str(value)[:40]!r} does not match {pattern.pattern}")
    return value


def _semver(raw: dict[str, Any], key: str) -> tuple[int, int, int]:
    match = _SEMVER.fullmatch(_text(raw, key, _SEMVER))
    assert match is not None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _choice(raw: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = raw[key]
    if value not in choices or type(value) is not str:
        raise CertLogicError(f"{key}: must be one of {', '.join(choices)}")
    return str(value)


def _instant(raw: dict[str, Any], key: str) -> int:
    value = raw[key]
    if type(value) is not str:
        raise CertLogicError(f"{key}: must be date-time text")
    try:
        return parse_date_time(value).ms
    except CertLogicError as exc:
        raise CertLogicError(f"{key}: {exc}") from None


def _descriptions(value: Any) -> dict[str, str]:
    if type(value) is not list or not value or len(value) > 100:
        raise CertLogicError("Description must be a non-empty list of {lang, desc}")
    descriptions: dict[str, str] = {}
    for entry in value:
        if (type(entry) is not dict or set(entry) != {"lang", "desc"}
                or type(entry["lang"]) is not str or _LANG.fullmatch(entry["lang"]) is None
                or type(entry["desc"]) is not str or len(entry["desc"]) > MAX_DESCRIPTION):
            raise CertLogicError("Description: each entry is {lang: ISO 639 code, desc: text}")
        descriptions.setdefault(entry["lang"], entry["desc"])
    return descriptions
