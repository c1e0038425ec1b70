"""atheris (libFuzzer) target for the CertLogic evaluator and rule sets (docs/fuzzing.md).

Usage::

    python fuzz/fuzz_certlogic.py --make-corpus fuzz/corpus-certlogic   # suite seeds
    python fuzz/fuzz_certlogic.py [libFuzzer flags] fuzz/corpus-certlogic

The first byte of an input picks how the rest becomes an expression:

* even: the rest is JSON text ``[expression, data]`` (or just an expression,
  run on a DCC-shaped data context);
* odd: the rest is read as a compact tree code (operator, literal, path and
  arity bytes), so mutations stay well-formed and reach evaluation, nesting
  past the depth limit included.

Invariants on every input: compiling and running raise nothing but
``CertLogicError``; running twice gives the same result and leaves the data
unchanged; the same Logic as a Gateway rule yields exactly one outcome whose
``passed`` is True, False or None.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

OPERATORS = ["if", "!", "and", "===", "in", "+", "<", ">", "<=", ">=", "before", "after",
             "not-after", "not-before", "plusTime", "dccDateOfBirth", "reduce",
             "extractFromUVCI", "var", "all"]
TEXTS = ["", "2021-06-01", "2004", "2004-02", "2021-06-01T12:00:00Z", "2021-02-30",
         "2021-06-01T12:00:00.5+01:00", "day", "hour", "month", "year", "week",
         "URN:UVCI:01:ID:ABC#X", "EU/1/20/1528", "x"]
PATHS = ["", "payload", "payload.v", "payload.v.0", "payload.v.0.dt", "payload.dob",
         "external.validationClock", "external.valueSets.x", "current", "accumulator",
         "payload.v.0.dn", "0", "x."]
CONTEXT = {"payload": {"ver": "1.3.0", "dob": "1964-08", "v": [
    {"tg": "840539006", "mp": "EU/1/20/1528", "dn": 2, "sd": 2, "dt": "2021-05-01",
     "co": "ID", "ci": "URN:UVCI:01:ID:ABC#X"}]},
    "external": {"validationClock": "2021-06-20T12:00:00.000Z",
                 "valueSets": {"x": ["EU/1/20/1528", "ID"]}}}
MAX_INPUT = 1 << 16


def _tree(code: Iterator[int], depth: int = 0) -> Any:
    """A JSON value from bytes: one byte picks the node kind, following bytes its parts."""
    kind = next(code, 0) % 8
    if kind == 0 or depth > 90:
        return next(code, 0) % 2 == 0
    if kind == 1:
        return next(code, 128) - 128
    if kind == 2:
        return TEXTS[next(code, 0) % len(TEXTS)]
    if kind == 3:
        return {"var": PATHS[next(code, 0) % len(PATHS)]}
    if kind == 4:
        return [_tree(code, depth + 1) for _ in range(next(code, 0) % 4)]
    if kind == 5:  # a date the way rules build them
        return {"plusTime": [_tree(code, depth + 1), next(code, 128) - 128,
                             TEXTS[7 + next(code, 0) % 5]]}
    if kind == 6:
        return None if next(code, 0) % 2 else 1.5
    operator = OPERATORS[next(code, 0) % len(OPERATORS)]
    return {operator: [_tree(code, depth + 1) for _ in range(next(code, 0) % 4)]}


def decode(data: bytes) -> tuple[Any, Any]:
    """(expression, data context) from a fuzz input; ``None`` expression when unusable."""
    if not data:
        return None, None
    if data[0] % 2:
        return _tree(iter(data[1:])), CONTEXT
    try:
        value = json.loads(data[1:MAX_INPUT].decode("utf-8"))
    except (ValueError, RecursionError):
        return None, None
    if type(value) is list and len(value) == 2:
        return value[0], value[1]
    return value, CONTEXT


def check_one(data: bytes) -> None:
    """The invariants for one input (AssertionError or any other escape is a finding)."""
    from kiosk.certlogic import CertLogicError, compile_expression
    from kiosk.certlogic.rules import compile_rule_set

    expr, context = decode(data)
    if expr is None and context is None:
        return
    before = json.dumps(context, sort_keys=True, default=repr)
    try:
        program = compile_expression(expr)
    except CertLogicError:
        return
    results = []
    for _ in range(2):
        try:
            results.append(json.dumps(program.run(context), sort_keys=True, default=repr))
        except CertLogicError as exc:
            results.append(f"error: {exc}")
    assert results[0] == results[1], "evaluation is not deterministic"
    assert json.dumps(context, sort_keys=True, default=repr) == before, "data was changed"
    rule = {"Identifier": "GR-ID-0001", "Type": "Acceptance", "Country": "ID",
            "Version": "1.0.0", "SchemaVersion": "1.0.0", "Engine": "CERTLOGIC",
            "EngineVersion": "1.3.3", "CertificateType": "General",
            "Description": [{"lang": "en", "desc": "fuzz"}],
            "ValidFrom": "2021-01-01T00:00:00Z", "ValidTo": "2030-01-01T00:00:00Z",
            "AffectedFields": [], "Logic": expr}
    rules = compile_rule_set([rule])
    payload = context.get("payload") if type(context) is dict else None
    outcomes = rules.evaluate(payload, {"validationClock": "2021-06-20T12:00:00Z"})
    assert len(outcomes) == 1 and outcomes[0].passed in (True, False, None)


def make_corpus(folder: Path) -> int:
    """Seed files: every official suite expression with its data, plus a few tree codes."""
    folder.mkdir(parents=True, exist_ok=True)
    suites = REPO.parent / "shared" / "testdata" / "certlogic" / "testSuite"
    count = 0
    for file in sorted(suites.glob("*.json")):
        for case in json.loads(file.read_text())["cases"]:
            for assertion in case["assertions"]:
                expr = assertion.get("certLogicExpression", case.get("certLogicExpression"))
                blob = b"\x00" + json.dumps([expr, assertion["data"]]).encode()
                (folder / f"suite-{count:04d}").write_bytes(blob)
                count += 1
    examples = json.loads((REPO / "docs" / "examples" / "certlogic-rules.json").read_text())
    for rule in examples:
        (folder / f"rule-{count:04d}").write_bytes(b"\x00" + json.dumps(rule["Logic"]).encode())
        count += 1
    for seed in (b"\x01\x07\x00\x03\x07\x11\x02", b"\x01\x07\x10\x03\x05\x02\x01\x0e\x03",
                 b"\x01" + b"\x07\x01\x01" * 80):
        (folder / f"tree-{count:04d}").write_bytes(seed)
        count += 1
    return count


def main() -> None:
    """Make the corpus, or fuzz :func:`check_one`."""
    if len(sys.argv) == 3 and sys.argv[1] == "--make-corpus":
        print(f"{make_corpus(Path(sys.argv[2]))} seeds written")
        return
    import atheris  # type: ignore[import-untyped,unused-ignore]

    with atheris.instrument_imports(include=["kiosk.certlogic"]):
        import kiosk.certlogic.rules  # noqa: F401
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
