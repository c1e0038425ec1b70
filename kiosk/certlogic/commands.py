"""``kiosk rules check``: run a CertLogic rule set on DCC payloads before it is signed.

``kiosk rules check RULES.json PAYLOADS.json --at ISO_TIME [--valuesets DIR]
[--country CC] [--iat ISO] [--exp ISO]`` prints one JSON line per payload, in
order: ``{"<Identifier>": true | false | null, ...}`` for every Identifier in
RULES (true passed, false failed or raised, null not applicable). RULES is one
Gateway rule or a list of them, PAYLOADS one hcert payload or a list of them.
Exit status 0 when every payload was evaluated, 2 when an input is refused
(the message names the file and the reason; nothing is printed to stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiosk.certlogic.rules import RuleSet

MAX_RULES_BYTES = 4 << 20
MAX_PAYLOADS_BYTES = 16 << 20
MAX_PAYLOADS = 100_000


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``kiosk rules`` to the ``kiosk`` parser."""
    rules = commands.add_parser("rules", help="CertLogic business rules (central side)")
    sub = rules.add_subparsers(required=True, metavar="RULES_COMMAND")
    check = sub.add_parser("check", help="evaluate rules on payloads; one JSON line each")
    check.add_argument("rules", type=Path, help="one EU DCC Gateway rule or a JSON list of them")
    check.add_argument("payloads", type=Path, help="one hcert payload or a JSON list of them")
    check.add_argument("--at", required=True, type=_moment, metavar="ISO_TIME",
                       help="validation clock (ISO 8601; no offset means UTC)")
    check.add_argument("--valuesets", type=Path, metavar="DIR",
                       help="folder of EU value-set JSON files -> external.valueSets")
    check.add_argument("--country", type=_country, metavar="CC",
                       help="country of arrival -> external.countryCode")
    check.add_argument("--iat", type=_moment, metavar="ISO", help="issued at -> external.iat")
    check.add_argument("--exp", type=_moment, metavar="ISO", help="expiry -> external.exp")
    check.set_defaults(handler=_check)


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _country(text: str) -> str:
    if len(text) != 2 or not text.isascii() or not text.isupper():
        raise argparse.ArgumentTypeError(f"{text[:10]!r} is not a two-letter country code")
    return text


def read_json(path: Path, limit: int) -> Any:
    """Parse ``path`` after checking its size; :class:`CertLogicError` names file and reason."""
    from kiosk.certlogic.dates import CertLogicError

    try:
        with path.open("rb") as handle:
            blob = handle.read(limit + 1)
    except OSError as exc:
        raise CertLogicError(f"{path}: {exc.strerror or exc}") from None
    if len(blob) > limit:
        raise CertLogicError(f"{path}: larger than {limit} bytes")
    try:
        return json.loads(blob, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise CertLogicError(f"{path}: not JSON ({str(exc)[:80]})") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check(args: argparse.Namespace) -> int:
    # Imported here: the kiosk command line registers every area at start-up.
    from kiosk.certlogic.dates import CertLogicError

    try:
        rules = _load_rules(args.rules, args.valuesets)
        payloads = _load_payloads(args.payloads)
    except CertLogicError as exc:
        print(f"rules check: {exc}", file=sys.stderr)
        return 2
    external = rules.external(args.at, country=args.country, iat=args.iat, exp=args.exp)
    for payload in payloads:
        outcomes = rules.evaluate(payload, external)
        print(json.dumps({outcome.identifier: outcome.passed for outcome in outcomes}))
    return 0


def _load_rules(path: Path, valuesets: Path | None) -> RuleSet:
    from kiosk.certlogic.dates import CertLogicError
    from kiosk.certlogic.rules import compile_rule_set
    from kiosk.certlogic.valuesets import load_value_sets

    raw = read_json(path, MAX_RULES_BYTES)
    value_sets = load_value_sets(valuesets) if valuesets is not None else None
    try:
        return compile_rule_set(raw if type(raw) is list else [raw], value_sets)
    except CertLogicError as exc:
        raise CertLogicError(f"{path}: {exc}") from None


def _load_payloads(path: Path) -> list[dict[str, Any]]:
    from kiosk.certlogic.dates import CertLogicError

    payloads = read_json(path, MAX_PAYLOADS_BYTES)
    if type(payloads) is not list:
        payloads = [payloads]
    if len(payloads) > MAX_PAYLOADS or not all(type(p) is dict for p in payloads):
        raise CertLogicError(f"{path}: expected one payload object or a list of at most "
                             f"{MAX_PAYLOADS} of them")
    return payloads
