"""Business rules: a declarative entry policy made of named rules and scan modes.

A **rule** accepts one kind of certificate under conditions; a **scan mode**
is a named list of rules, and a certificate meets the mode when one rule of
its type accepts one of its entries.  An empty rule list means "any
cryptographically valid certificate" (used in unsigned dev mode).

Rule kinds and parameters (the wire form in the trust bundle and the
``[policy]`` overrides are documented in docs/trust-bundle.md):

* ``vaccination``: ``require = "complete"`` (dn >= sd) or ``"booster"``
  (dn > sd, e.g. 3/2 or 2/1, or dn >= 3, e.g. 3/3); ``min_days`` after ``dt``
  (default 0) and ``max_days`` after ``dt`` (0 = no limit); ``products``:
  the accepted ``mp`` codes (empty = any product); ``doses``: ``mp`` → doses
  of a complete primary series for that product (e.g. Jcovden 1), counted
  instead of the certificate's ``sd`` -- so 1/1 Jcovden is complete, 2/2
  Jcovden a booster, 2/2 CoronaVac complete; a booster entry names the
  booster's product (a Comirnaty 3/3 after two CoronaVac doses is accepted
  where Comirnaty is);
* ``test``: the result must be "not detected" (``260415000``); ``max_hours``
  maps the test type to the largest sample age (default NAA ``LP6464-4`` 72 h,
  RAT ``LP217198-3`` 24 h); other test types are refused;
* ``recovery``: at most ``max_days`` (default 180) since the first positive
  test ``fr``, and today within ``df`` .. ``du`` (inclusive).

All limits are inclusive; days count whole UTC calendar days; a sample time
in the future is refused.  Refusals raise
``VerificationError(POLICY_NOT_MET)`` whose detail names the mode and the
unmet condition, never a value from the certificate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from kiosk.cborsafe import shown
from kiosk.decision import CertType, Reason
from kiosk.errors import VerificationError

__all__ = ["DEFAULT_POLICY", "Policy", "Rule", "ScanMode"]

TEST_NAA = "LP6464-4"
TEST_RAT = "LP217198-3"
TEST_NOT_DETECTED = "260415000"
_KINDS = {"vaccination": CertType.VACCINATION, "test": CertType.TEST,
          "recovery": CertType.RECOVERY}
_MAX_RULES = 64
_MAX_PRODUCTS = 256
_KEY_OF = {t: t.value for t in CertType}  # enum .value is slow on the per-scan path


@dataclass(frozen=True)
class Rule:
    """One declarative rule; ``kind`` is vaccination, test or recovery."""

    name: str
    kind: str
    require: str = "complete"  # vaccination: complete | booster
    min_days: int = 0  # vaccination: days after dt before it counts
    max_days: int = 0  # vaccination: 0 = unlimited; recovery: days since fr
    max_hours: Mapping[str, int] = field(default_factory=dict)  # test: type -> hours
    products: frozenset[str] = frozenset()  # vaccination: accepted mp; empty = any
    doses: Mapping[str, int] = field(default_factory=dict)  # vaccination: mp -> series doses

    @property
    def cert_type(self) -> CertType:
        """The certificate type this rule applies to."""
        return _KINDS[self.kind]

    def why_not(self, entry: Mapping[str, Any], now: datetime) -> str | None:
        """None when ``entry`` satisfies the rule, else a short reason (no personal data)."""
        if self.kind == "vaccination":
            return self._vaccination(entry, now)
        if self.kind == "test":
            return self._test(entry, now)
        return self._recovery(entry, now)

    @property
    def timeless(self) -> bool:
        """True when the rule never looks at the clock (vaccination without day limits)."""
        return self.kind == "vaccination" and not (self.min_days or self.max_days)

    def doses_why_not(self, entry: Mapping[str, Any]) -> str | None:
        """The dose part of a vaccination rule: None when met, else why not."""
        dn, sd = entry.get("dn"), entry.get("sd")
        if type(dn) is not int or type(sd) is not int or dn < 1 or sd < 1:
            return "vaccination doses unreadable"
        if self.products or self.doses:
            mp = entry.get("mp")
            if self.products and mp not in self.products:
                return "vaccine product not accepted"
            sd = self.doses.get(mp, sd)  # type: ignore[arg-type]
        if self.require == "booster":
            if not (dn > sd or dn >= 3):
                return "no booster dose"
        elif dn < sd:
            return "vaccination not complete"
        return None

    def _vaccination(self, entry: Mapping[str, Any], now: datetime) -> str | None:
        why = self.doses_why_not(entry)
        if why is not None:
            return why
        if self.min_days or self.max_days:
            day = _date(entry.get("dt"))
            if day is None:
                return "vaccination date unreadable"
            days = (now.date() - day).days
            if days < self.min_days:
                return f"vaccination less than {self.min_days} days old"
            if self.max_days and days > self.max_days:
                return f"vaccination older than {self.max_days} days"
        return None

    def _test(self, entry: Mapping[str, Any], now: datetime) -> str | None:
        if entry.get("tr") != TEST_NOT_DETECTED:
            return "test result not negative"
        hours = self.max_hours.get(entry.get("tt"))  # type: ignore[arg-type]
        if hours is None:
            return "test type not accepted"
        sampled = _datetime(entry.get("sc"))
        if sampled is None:
            return "test sample time unreadable"
        age_s = (now - sampled).total_seconds()
        if age_s < 0:
            return "test sample time in the future"
        if age_s > hours * 3600:
            return f"test older than {hours} h"
        return None

    def _recovery(self, entry: Mapping[str, Any], now: datetime) -> str | None:
        first, start, end = (_date(entry.get(k)) for k in ("fr", "df", "du"))
        if first is None or start is None or end is None:
            return "recovery dates unreadable"
        today = now.date()
        if not start <= today <= end:
            return "outside the recovery validity"
        if (today - first).days > self.max_days:
            return f"recovery older than {self.max_days} days"
        return None

    def to_obj(self) -> dict[str, Any]:
        """The wire form (a CBOR/TOML map) of this rule."""
        obj: dict[str, Any] = {"kind": self.kind}
        if self.kind == "vaccination":
            obj.update(require=self.require, min_days=self.min_days, max_days=self.max_days)
            if self.products:
                obj["products"] = sorted(self.products)
            if self.doses:
                obj["doses"] = dict(sorted(self.doses.items()))
        elif self.kind == "test":
            obj["max_hours"] = dict(self.max_hours)
        else:
            obj["max_days"] = self.max_days
        return obj

    @classmethod
    def from_obj(cls, name: str, obj: Any) -> Rule:
        """Parse one rule's wire form. Raises ValueError naming the rule and the key."""
        if not isinstance(obj, Mapping) or obj.get("kind") not in _KINDS:
            raise ValueError(f"rule {name!r:.40}: kind must be one of {sorted(_KINDS)}")
        kind = obj["kind"]
        allowed = {"vaccination": {"kind", "require", "min_days", "max_days", "products",
                                   "doses"},
                   "test": {"kind", "max_hours"}, "recovery": {"kind", "max_days"}}[kind]
        if set(obj) - allowed:
            unknown = set(obj) - allowed
            raise ValueError(f"rule {name!r:.40}: {len(unknown)} unknown keys, "
                             f"e.g. {min(map(str, unknown))!r:.40}")
        require = obj.get("require", "complete")
        if require not in ("complete", "booster"):
            raise ValueError(f"rule {name!r:.40}: require must be complete or booster")
        max_hours = obj.get("max_hours", {TEST_NAA: 72, TEST_RAT: 24})
        if not isinstance(max_hours, Mapping) or not all(
            isinstance(k, str) and _count(v) for k, v in max_hours.items()
        ):
            raise ValueError(f"rule {name!r:.40}: max_hours must map test types to hours")
        default_days = 180 if kind == "recovery" else 0
        min_days, max_days = obj.get("min_days", 0), obj.get("max_days", default_days)
        if not (_count(min_days) and _count(max_days)):
            raise ValueError(f"rule {name!r:.40}: min_days/max_days must be integers >= 0")
        products, doses = obj.get("products", []), obj.get("doses", {})
        if not isinstance(products, list | tuple) or len(products) > _MAX_PRODUCTS or not all(
                type(p) is str and 0 < len(p) <= 64 for p in products):
            raise ValueError(
                f"rule {name!r:.40}: products must list at most {_MAX_PRODUCTS} mp codes")
        if not isinstance(doses, Mapping) or len(doses) > _MAX_PRODUCTS or not all(
                type(k) is str and 0 < len(k) <= 64 and type(v) is int and 1 <= v <= 10
                for k, v in doses.items()):
            raise ValueError(f"rule {name!r:.40}: doses must map mp codes to 1..10 doses")
        return cls(name, kind, require, min_days, max_days,
                   dict(max_hours) if kind == "test" else {}, frozenset(products), dict(doses))


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= 100_000


def _date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ScanMode:
    """A named set of rules; an empty set accepts any valid certificate."""

    name: str
    rules: tuple[Rule, ...] = ()
    # Rules per certificate type, precomputed: check() runs on every scan.
    by_type: Mapping[CertType, tuple[Rule, ...]] = field(
        init=False, repr=False, compare=False)

    # Per type, the rules that need no clock: accepts_timeless() tries them
    # before check() has to be given a datetime.
    timeless: Mapping[CertType, tuple[Rule, ...]] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_type", {
            t: tuple(r for r in self.rules if r.cert_type is t) for t in CertType})
        object.__setattr__(self, "timeless", {
            t: tuple(r for r in rules if r.timeless) for t, rules in self.by_type.items()})

    def accepts_timeless(self, hcert: Mapping[str, Any], cert_type: CertType) -> bool:
        """True when a rule that needs no clock accepts an entry, so :meth:`check` passes.

        False says nothing either way: :meth:`check` decides (the hot path skips
        building its datetime for the common vaccination certificate).
        """
        rules = self.timeless[cert_type]
        if rules:
            entries = hcert.get(_KEY_OF[cert_type]) or ()
            for rule in rules:
                for entry in entries:
                    if (type(entry) is dict or isinstance(entry, Mapping)) \
                            and rule.doses_why_not(entry) is None:
                        return True
        return False

    def check(self, hcert: Mapping[str, Any], cert_type: CertType, now: datetime) -> None:
        """Raise VerificationError(POLICY_NOT_MET) unless a rule accepts an entry."""
        if not self.rules:
            return
        candidates = self.by_type[cert_type]
        if not candidates:
            raise VerificationError(
                Reason.POLICY_NOT_MET, f"mode {self.name}: {cert_type.name.lower()} not accepted"
            )
        entries = hcert.get(_KEY_OF[cert_type]) or ()
        why = "no entry"
        for rule in candidates:
            for entry in entries:
                if isinstance(entry, Mapping):
                    reason = rule.why_not(entry, now)
                    if reason is None:
                        return
                    why = reason
        raise VerificationError(Reason.POLICY_NOT_MET, f"mode {self.name}: {why}")


@dataclass(frozen=True)
class Policy:
    """Rules, the scan modes built from them, and the default mode."""

    rules: Mapping[str, Rule]
    modes: Mapping[str, tuple[str, ...]]
    default_mode: str

    def mode(self, name: str | None = None, *, naa_hours: int = 0, rat_hours: int = 0,
             recovery_days: int = 0) -> ScanMode:
        """The scan mode ``name`` (default: ``default_mode``), with site overrides.

        Overrides of 0 keep the policy's value.  Raises ValueError for an unknown mode.
        """
        name = name or self.default_mode
        if name not in self.modes:
            raise ValueError(
                f"unknown scan mode {name!r:.40} (known: {', '.join(sorted(self.modes))})")
        rules = []
        for rule_name in self.modes[name]:
            rule = self.rules[rule_name]
            if rule.kind == "test" and (naa_hours or rat_hours):
                hours = dict(rule.max_hours)
                if naa_hours:
                    hours[TEST_NAA] = naa_hours
                if rat_hours:
                    hours[TEST_RAT] = rat_hours
                rule = replace(rule, max_hours=hours)
            if rule.kind == "recovery" and recovery_days:
                rule = replace(rule, max_days=recovery_days)
            rules.append(rule)
        return ScanMode(name, tuple(rules))

    def to_obj(self) -> dict[str, Any]:
        """The wire form: ``{"rules": {name: rule}, "modes": {name: [rule]}, "default_mode"}``."""
        return {
            "rules": {n: r.to_obj() for n, r in self.rules.items()},
            "modes": {n: list(m) for n, m in self.modes.items()},
            "default_mode": self.default_mode,
        }

    @classmethod
    def from_obj(cls, obj: Any) -> Policy:
        """Parse and cross-check the wire form (None gives :data:`DEFAULT_POLICY`).

        Raises:
            ValueError: not a map, unknown keys, a malformed rule, a mode naming
                an unknown rule, or a default mode that does not exist.
        """
        if obj is None:
            return DEFAULT_POLICY
        if not isinstance(obj, Mapping) or set(obj) - {"rules", "modes", "default_mode"}:
            raise ValueError("policy must be a map of rules, modes and default_mode")
        raw_rules, raw_modes = obj.get("rules", {}), obj.get("modes", {})
        if not isinstance(raw_rules, Mapping) or not isinstance(raw_modes, Mapping):
            raise ValueError("policy rules and modes must be maps")
        if len(raw_rules) > _MAX_RULES or len(raw_modes) > _MAX_RULES:
            raise ValueError(f"policy: more than {_MAX_RULES} rules or modes")
        rules = {str(n): Rule.from_obj(str(n), r) for n, r in raw_rules.items()}
        modes: dict[str, tuple[str, ...]] = {}
        for name, members in raw_modes.items():
            if not isinstance(members, list | tuple) or not all(m in rules for m in members):
                raise ValueError(f"mode {name!r:.40}: must list known rule names")
            modes[str(name)] = tuple(members)
        default = obj.get("default_mode")
        if default not in modes:
            raise ValueError(f"policy: default_mode ({shown(default)}) is not a mode")
        return cls(rules, modes, default)


DEFAULT_POLICY = Policy(
    rules={
        "vaccination_complete": Rule("vaccination_complete", "vaccination", "complete"),
        "booster": Rule("booster", "vaccination", "booster"),
        "test_negative": Rule("test_negative", "test",
                              max_hours={TEST_NAA: 72, TEST_RAT: 24}),
        "recovery": Rule("recovery", "recovery", max_days=180),
    },
    modes={
        "3G": ("vaccination_complete", "test_negative", "recovery"),
        "2G": ("vaccination_complete", "recovery"),
        "booster": ("booster",),
        "any": (),
    },
    default_mode="3G",
)
"""The documented default: modes 3G (default), 2G, booster and any (no rules)."""
