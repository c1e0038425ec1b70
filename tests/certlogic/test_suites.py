"""The official CertLogic test suites (../shared/testdata/certlogic) against our evaluator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kiosk.certlogic import CertLogicError, compile_expression, evaluate, validate
from tests.certlogic.suites import evaluation_assertions, shared_dir, validation_cases

EVALUATIONS = list(evaluation_assertions())
VALIDATIONS = list(validation_cases())

# The suites' own "skip" directives: cases the reference implementations do not run
# either. Each is listed here with why CertLogic (and so this evaluator) answers
# differently; test_unsupported_cases pins what we do instead.
UNSUPPORTED = {
    "ins-with-nulls:null-safety:0": "in: right-hand side null is not an array -> error",
    "ins-with-nulls:null-safety:1": "in: right-hand side missing (null) -> error",
    "ins-with-nulls:null-safety:2": "in: right-hand side missing (null) -> error",
    "ins-with-nulls:null-safety:3": "in: right-hand side null is not an array -> error",
    **{f"patched-reduce:patched reduce knows about global data:{n}":
       "reduce: the lambda sees only current and accumulator; a 'data' key is a possible "
       "future extension of the specification, not part of 1.3.3" for n in range(10)},
}


def _same(actual: Any, expected: Any) -> bool:
    """Equal as JSON values, with booleans and integers kept apart (True is not 1)."""
    return json.dumps(actual, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_suites_are_present() -> None:
    shared_dir("certlogic")
    assert len(EVALUATIONS) >= 230 and len(VALIDATIONS) >= 20
    skipped = {case_id for case_id, _, _, skipped in EVALUATIONS if skipped}
    assert skipped == set(UNSUPPORTED), "the suites' skip list changed: review UNSUPPORTED"


@pytest.mark.parametrize(
    ("expr", "assertion"),
    [pytest.param(expr, assertion, id=case_id)
     for case_id, expr, assertion, skipped in EVALUATIONS if not skipped],
)
def test_evaluation_suite(expr: Any, assertion: dict[str, Any]) -> None:
    result = evaluate(expr, assertion["data"])
    assert _same(result, assertion["expected"]), assertion.get("message", "")


@pytest.mark.parametrize(
    ("expr", "assertion"),
    [pytest.param(expr, assertion, id=case_id)
     for case_id, expr, assertion, skipped in EVALUATIONS if skipped],
)
def test_unsupported_cases(expr: Any, assertion: dict[str, Any]) -> None:
    """What the evaluator does instead of the JsonLogic-style answer, as UNSUPPORTED says."""
    program = compile_expression(expr)  # still valid CertLogic
    if "in" in expr:
        with pytest.raises(CertLogicError, match="must be an array"):
            program.run(assertion["data"])
    else:  # patched reduce: "data.z" inside the lambda is null, so only nulls count
        items = (assertion["data"] or {}).get("x") or []
        assert program.run(assertion["data"]) == sum(1 for item in items if item is None)


@pytest.mark.parametrize(("expr", "issues"),
                         [pytest.param(e, i, id=case_id) for case_id, e, i in VALIDATIONS])
def test_validation_suite(expr: Any, issues: list[str]) -> None:
    assert validate(expr) == issues
