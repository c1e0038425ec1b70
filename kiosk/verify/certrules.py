"""CertLogic business rules in the trust bundle (format 3), and their per-scan check.

The bundle carries the rules as one section, ``certlogic``: a byte string
holding a CBOR array of EU DCC Gateway rule objects (the JSON of
``kiosk rules check`` as CBOR).  Nesting that a CertLogic expression needs
(an operation is a map holding an array, so an expression at the evaluator's
depth limit of 64 nests about 130 containers) is far beyond the body walker's
limit of 8; keeping the rules in a byte string lets the body stay bounded at 8
while this section alone is read with :data:`SECTION_LIMITS` (depth 136, at
most :data:`MAX_RULES` rules, :data:`MAX_SECTION_BYTES`), again before any
object is built.

:class:`BundleRules` is the section as the bundle holds it: the raw rule
objects (written back verbatim) and their compiled form, compiled once when
the bundle is parsed.  :class:`GateRules` is what one gate applies: the
``Acceptance`` rules of its country of arrival (``policy.country``), with the
bundle's value sets, and each rule's screen text; :meth:`GateRules.check` runs
once per scan that passed every built-in check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cbor2

from kiosk import cborsafe
from kiosk.certlogic.dates import CertLogicError, Instant
from kiosk.certlogic.rules import Rule, RuleSet, compile_rule_set, instant_text
from kiosk.decision import Reason
from kiosk.errors import VerificationError

__all__ = ["MAX_RULES", "MAX_SECTION_BYTES", "SECTION_LIMITS", "BundleRules", "GateRules",
           "RuleFailed"]

#: Rules in one bundle (every version counts); the EU's largest national sets hold < 100.
MAX_RULES = 1000
MAX_SECTION_BYTES = 4 << 20
# 1 (rule list) + 1 (rule map) + 2 per operator level up to the evaluator's depth 64,
# plus slack: every rule the evaluator accepts fits, nothing much deeper is walked.
SECTION_DEPTH = 136
SECTION_LIMITS = cborsafe.Limits(max_bytes=MAX_SECTION_BYTES, max_depth=SECTION_DEPTH,
                                 max_items=200_000, text_keys=True)
#: The languages of the screen, in its order (Bahasa Indonesia first, then English).
SCREEN_LANGUAGES = ("id", "en")
_FALLBACK_LANGUAGE = "en"


class RuleFailed(VerificationError):
    """A CertLogic rule failed (or raised): the deny carries its Identifier and screen text."""

    def __init__(self, identifier: str, note: tuple[str, str], error: bool) -> None:
        detail = f"rule {identifier} " + ("could not be evaluated" if error else "failed")
        super().__init__(Reason.RULE_FAILED, detail)
        self.identifier = identifier
        self.note = note


@dataclass(frozen=True)
class BundleRules:
    """The ``certlogic`` section: raw Gateway rules and their compiled :class:`RuleSet`."""

    raw: tuple[Any, ...] = ()
    compiled: RuleSet = field(default_factory=lambda: RuleSet((), {}), repr=False,
                              compare=False)

    def __bool__(self) -> bool:
        return bool(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every compiled rule version, in bundle order."""
        return self.compiled.rules

    @classmethod
    def from_rules(cls, raw: Sequence[Any]) -> BundleRules:
        """Validate and compile Gateway-format ``raw`` rules.

        Raises:
            ValueError: more than :data:`MAX_RULES`, or a rule that does not
                parse or compile; the message names the rule (number and Identifier).
        """
        if len(raw) > MAX_RULES:
            raise ValueError(f"{len(raw)} CertLogic rules: at most {MAX_RULES} per bundle")
        try:
            compiled = compile_rule_set(list(raw))
        except CertLogicError as exc:
            raise ValueError(f"certlogic: {exc}") from None
        return cls(tuple(raw), compiled)

    def to_bytes(self) -> bytes:
        """The section's wire form: the CBOR array of the rules as given."""
        return cbor2.dumps(list(self.raw))

    @classmethod
    def from_bytes(cls, blob: Any) -> BundleRules:
        """Parse and compile the section (bounded by :data:`SECTION_LIMITS`).

        Raises ValueError naming the defect (never quoting rule content beyond 40 characters).
        """
        if type(blob) is not bytes:
            raise ValueError("certlogic must be a byte string holding a CBOR array of rules")
        try:
            raw = cborsafe.loads(blob, SECTION_LIMITS)
        except cborsafe.CborError as exc:
            raise ValueError(f"certlogic refused: {exc}") from None
        if type(raw) is not list:
            raise ValueError("certlogic must hold an array of rules")
        return cls.from_rules(raw)


def rule_note(rule: Rule) -> tuple[str, str]:
    """The rule's screen text per :data:`SCREEN_LANGUAGES`: that language, else en, else its Id."""
    descriptions = rule.descriptions
    return tuple(  # type: ignore[return-value]
        descriptions.get(lang) or descriptions.get(_FALLBACK_LANGUAGE) or rule.identifier
        for lang in SCREEN_LANGUAGES)


def _instant_text_ts(ts: float) -> str:
    return instant_text(datetime.fromtimestamp(ts, UTC))


def valid_span(rule: Rule) -> str:
    """``ValidFrom .. ValidTo`` of ``rule`` as UTC text (for ``kiosk trust inspect``)."""
    return f"{Instant(rule.valid_from_ms).isoformat()} .. {Instant(rule.valid_to_ms).isoformat()}"


class GateRules:
    """The rules one gate applies: ``Acceptance`` rules of its country, with value sets.

    Built once per bundle load from the already compiled rules (nothing is
    compiled again); :meth:`check` runs per scan.
    """

    def __init__(self, rules: Sequence[Rule], country: str,
                 value_sets: Mapping[str, list[str]]) -> None:
        """Apply ``rules`` (already filtered) for ``country`` with ``value_sets``."""
        self.country = country
        self._set = RuleSet(rules, value_sets)
        self._value_sets = self._set.value_sets
        self._notes = {(r.identifier, r.version): rule_note(r) for r in rules}

    def __len__(self) -> int:
        return len(self._set.rules)

    @property
    def identifiers(self) -> tuple[str, ...]:
        """The Identifiers applied, in bundle order."""
        return self._set.identifiers

    @classmethod
    def for_gate(cls, section: BundleRules, country: str,
                 value_sets: Mapping[str, list[str]]) -> GateRules | None:
        """The ``Acceptance`` rules of ``section`` for ``country``; None when there are none."""
        mine = [r for r in section.rules if r.type == "Acceptance" and r.country == country]
        return cls(mine, country, value_sets) if mine else None

    def external(self, now_ts: float, iat: float, exp: float) -> dict[str, Any]:
        """The EU verifiers' ``external`` parameters for one scan."""
        return {"validationClock": _instant_text_ts(now_ts), "valueSets": self._value_sets,
                "countryCode": self.country, "iat": _instant_text_ts(iat),
                "exp": _instant_text_ts(exp)}

    def check(self, hcert: dict[str, Any], now_ts: float, iat: float, exp: float) -> None:
        """Raise :class:`RuleFailed` for the first applicable rule that fails or raises.

        ``now_ts`` is the gate's trusted now (the validation clock), ``iat`` /
        ``exp`` the CWT's (POSIX seconds).  Which rules apply -- the version
        valid at the clock with the highest Version per Identifier, of
        CertificateType General or the certificate's type -- is
        :meth:`kiosk.certlogic.rules.RuleSet.failures`.
        """
        failed = self._set.failures(_as_json(hcert), self.external(now_ts, iat, exp))
        if failed:
            first = failed[0]
            assert first.rule is not None
            raise RuleFailed(first.identifier, self._notes[(first.identifier,
                                                            first.rule.version)],
                             first.error is not None)


def _as_json(hcert: dict[str, Any]) -> dict[str, Any]:
    """``hcert`` as the EU verifiers see it (JSON): a CBOR-tagged sample time as text.

    Some issuers tag a test's ``sc`` (CBOR tag 0), which decodes to a datetime;
    the JSON payload the rules are written for has the text.  Only then is a
    copy made.
    """
    tests = hcert.get("t")
    if type(tests) is not list or not any(
            type(e) is dict and isinstance(e.get("sc"), datetime) for e in tests):
        return hcert
    copied = [dict(e, sc=instant_text(e["sc"])) if type(e) is dict
              and isinstance(e.get("sc"), datetime) else e for e in tests]
    return dict(hcert, t=copied)
