"""Evaluator behaviour beyond the official suites: dates, strictness, bounds, hostile input."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.certlogic import CertLogicError, Instant, compile_expression, evaluate
from kiosk.certlogic.dates import date_of_birth, parse_date_time, plus_time
from kiosk.certlogic.evaluator import MAX_DEPTH


def _iso(expr: Any, data: Any = None) -> str:
    result = evaluate(expr, data)
    assert isinstance(result, Instant)
    return result.isoformat()


@pytest.mark.parametrize(("start", "amount", "unit", "expected"), [
    # The specification's leap-day table.
    ("2020-02-29", 1, "day", "2020-03-01T00:00:00.000Z"),
    ("2020-02-29", 1, "month", "2020-03-29T00:00:00.000Z"),
    ("2020-02-29", 1, "year", "2021-03-01T00:00:00.000Z"),
    # setUTCMonth rolls a day past the month's end over, as JavaScript does.
    ("2021-01-31", 1, "month", "2021-03-03T00:00:00.000Z"),
    ("2021-03-31", -1, "month", "2021-03-03T00:00:00.000Z"),
    ("2021-12-15", 1, "month", "2022-01-15T00:00:00.000Z"),
    ("2021-01-15", -13, "month", "2019-12-15T00:00:00.000Z"),
    ("2021-06-01T00:00:00+00:00", 40, "hour", "2021-06-02T16:00:00.000Z"),
    ("2021-06-01T23:30:00-01:00", 0, "hour", "2021-06-02T00:30:00.000Z"),
    ("2021-06-01T12:00:00+5", 0, "day", "2021-06-01T07:00:00.000Z"),
    ("2021-06-01T12:00:00+0530", 0, "day", "2021-06-01T06:30:00.000Z"),
    ("2021-06-01T12:00:00+530", 0, "day", "2021-06-01T06:30:00.000Z"),
    ("2021-06-01T12:00:00-05:30", 0, "day", "2021-06-01T17:30:00.000Z"),
    ("2021-06-01T12:00:00.123456Z", 0, "day", "2021-06-01T12:00:00.123Z"),
    ("2021-06-01T12:00:00.9", 0, "day", "2021-06-01T12:00:00.900Z"),
    ("2021-06-01T12:00:00", 0, "day", "2021-06-01T12:00:00.000Z"),
    ("2004", 18, "year", "2022-12-31T00:00:00.000Z"),
    ("2004-02", 0, "year", "2004-02-29T00:00:00.000Z"),
    ("1900-02", 0, "year", "1900-02-28T00:00:00.000Z"),
    ("0000-01-01", -1, "day", "-001-12-31T00:00:00.000Z"),
])
def test_plus_time(start: str, amount: int, unit: str, expected: str) -> None:
    assert _iso({"plusTime": [start, amount, unit]}) == expected


@pytest.mark.parametrize("text", [
    "2021-02-29", "2021-13", "2021-09-99", "2021-06-01T24:00:00Z", "2021-06-01T12:60:00Z",
    "2021-06-01 12:00:00", "21-06-01", "2021-6-1", "２０２１", "2021-06-01T12:00:00+24:00",
    "2021-06-01T12:00Z", "", "x" * 100,
])
def test_invalid_dates_are_errors(text: str) -> None:
    with pytest.raises(CertLogicError):
        evaluate({"plusTime": [{"var": ""}, 0, "day"]}, text)


def test_date_of_birth_is_the_last_possible_day() -> None:
    assert date_of_birth("1990").isoformat() == "1990-12-31T00:00:00.000Z"
    assert date_of_birth("1992-02").isoformat() == "1992-02-29T00:00:00.000Z"
    assert date_of_birth("1992-02-03").isoformat() == "1992-02-03T00:00:00.000Z"
    for text in ("1992-02-03T00:00:00Z", "", "1992-2"):
        with pytest.raises(CertLogicError):
            date_of_birth(text)


def test_dates_beyond_javascripts_range_are_errors() -> None:
    start = parse_date_time("2021-01-01")
    with pytest.raises(CertLogicError, match="range"):
        plus_time(start, 10**12, "year")
    with pytest.raises(CertLogicError, match="range"):
        evaluate({"plusTime": ["2021-01-01", 10**15, "hour"]}, None)


def test_date_times_are_neither_truthy_nor_falsy() -> None:
    for op in ("!", "if"):
        args: list[Any] = [{"plusTime": ["2021-01-01", 0, "day"]}]
        if op == "if":
            args += [1, 2]
        with pytest.raises(CertLogicError, match="neither truthy nor falsy"):
            evaluate({op: args}, None)


def test_date_comparison_needs_date_times_and_integer_comparison_integers() -> None:
    with pytest.raises(CertLogicError, match="date-times"):
        evaluate({"after": ["2021-01-02", "2021-01-01"]}, None)
    with pytest.raises(CertLogicError, match="integers"):
        evaluate({"<": [{"plusTime": ["2021-01-01", 0, "day"]}, 1]}, None)
    with pytest.raises(CertLogicError, match="integers"):
        evaluate({"<": ["1", 2]}, None)
    assert evaluate({"before": [{"plusTime": ["2021-01-01", 0, "day"]},
                                {"plusTime": ["2021-01-01", 1, "hour"]},
                                {"plusTime": ["2021-01-01", 2, "hour"]}]}, None) is True


@pytest.mark.parametrize(("expr", "data", "expected"), [
    ({"===": [{"var": "0"}, {"var": "1"}]}, [True, 1], False),
    ({"===": [{"var": "0"}, {"var": "1"}]}, [0, False], False),
    ({"===": [{"var": "0"}, {"var": "1"}]}, [2, 2.0], True),
    ({"===": [{"var": "0"}, {"var": "1"}]}, [[1, "a"], [1, "a"]], True),
    ({"===": [{"var": "0"}, {"var": "1"}]}, [[1], [True]], False),
    ({"===": [{"var": "0"}, {"var": "1"}]}, [None, None], True),
    ({"in": [{"var": "0"}, {"var": "1"}]}, [1, [True, "1"]], False),
    ({"in": [{"var": "0"}, {"var": "1"}]}, [True, [1, "true"]], False),
    ({"in": [{"var": "0"}, {"var": "1"}]}, [None, [0, ""]], False),
    ({"in": [{"var": "0"}, {"var": "1"}]}, [[1], [[1]]], True),
    ({"var": "s.0"}, {"s": "abc"}, "a"),  # as JavaScript's acc[fragment]
    ({"var": "s.9"}, {"s": "abc"}, None),
    ({"var": "s.x"}, {"s": "abc"}, None),
    ({"var": "a.1.b.0.c"}, {"a": [0, {"b": [{"c": 7}]}]}, 7),
    ({"var": "a.1.b.0.d"}, {"a": [0, {"b": [{"c": 7}]}]}, None),
    ({"var": "a.99999999999999999999999"}, {"a": [1]}, None),
    ({"var": "a.b"}, {"a": None}, None),
    ({"var": "a.b"}, {"a": 5}, None),
    ({"var": "a.0"}, {"a": {"0": "zero"}}, "zero"),
    ({"var": "a.-1"}, {"a": [1, 2]}, None),
    ({"var": "0"}, {"0": "key"}, "key"),
    ({"+": [{"var": "0"}, 1]}, [2.0], 3),
])
def test_strict_values(expr: Any, data: Any, expected: Any) -> None:
    result = evaluate(expr, data)
    assert json.dumps(result) == json.dumps(expected)


def test_plus_needs_two_integers() -> None:
    for data in (["1", 2], [True, 1], [1.5, 1], [None, 1]):
        with pytest.raises(CertLogicError, match="integers"):
            evaluate({"+": [{"var": "0"}, {"var": "1"}]}, data)


@pytest.mark.parametrize(("expr", "message"), [
    ({"if": [True, 1]}, "must have 3 operands, but it has 2"),
    ({"and": [True]}, "at least 2"),
    ({"<": [1, 2, 3, 4]}, "2 or 3"),
    ({"===": [1, 2, 3]}, "must have 2 operands"),
    ({"!": []}, "must have 1 operands"),
    ({"plusTime": ["2021", {"var": "n"}, "day"]}, '"amount" argument'),
    ({"plusTime": ["2021", 1, "week"]}, '"unit" argument'),
    ({"extractFromUVCI": [{"var": "ci"}, "1"]}, '"index" argument'),
    ({"var": ["a", 1]}, "not of the form"),
    ({"var": "a..b"}, "valid format"),
    ({"missing": [1]}, "unrecognised operator"),
    ({"x" * 5000: [1]}, "unrecognised operator"),
    ({"if": [True, {"a": 1, "b": 2}, 1]}, "exactly one key"),
    ([1, None], "invalid CertLogic expression"),
    ({"in": [1.5, []]}, "non-integer"),
])
def test_invalid_expressions_are_rejected_at_compile_time(expr: Any, message: str) -> None:
    with pytest.raises(CertLogicError, match=message.replace("(", r"\(")) as caught:
        compile_expression(expr)
    assert len(str(caught.value)) < 200  # operator names are quoted bounded, never in full


def test_errors_never_quote_data() -> None:
    secret = "Erika Musterfrau 1964-08-12"
    for expr in ({"+": [{"var": "x"}, 1]}, {"!": [{"var": "y"}]},
                 {"plusTime": [{"var": "x"}, 0, "day"]}, {"in": [1, {"var": "x"}]},
                 {"after": [{"var": "x"}, {"var": "x"}]}):
        with pytest.raises(CertLogicError) as caught:
            evaluate(expr, {"x": secret, "y": 1.5})
        assert "Erika" not in str(caught.value) and "1964" not in str(caught.value)


def _nested(depth: int) -> Any:
    expr: Any = True
    for _ in range(depth):
        expr = {"!": [expr]}
    return expr


def test_depth_limit_allows_real_rules_and_refuses_deeper() -> None:
    assert evaluate(_nested(MAX_DEPTH // 2 * 2 - 2), None) is True
    with pytest.raises(CertLogicError, match="nested deeper"):
        compile_expression(_nested(MAX_DEPTH + 1))
    with pytest.raises(CertLogicError, match="nested deeper"):
        compile_expression(_nested(100_000))  # no RecursionError: the walk stops at the limit
    deep_list: Any = 1
    for _ in range(5000):
        deep_list = [deep_list]
    with pytest.raises(CertLogicError, match="nested deeper"):
        compile_expression(deep_list)


def test_node_limit() -> None:
    with pytest.raises(CertLogicError, match="more than"):
        compile_expression([1] * 20_000)
    assert compile_expression([1] * 100).nodes == 101


def test_reduce_budget_bounds_nested_folds() -> None:
    # sum over x of (sum over x of 1): n*n lambda calls
    inner = {"reduce": [{"var": "x"}, {"+": [{"var": "accumulator"}, 1]}, 0]}
    expr = {"reduce": [{"var": "x"}, {"+": [{"var": "accumulator"}, 1]}, 0]}
    assert evaluate(expr, {"x": list(range(50))}) == 50
    nested = {"reduce": [{"var": "data"}, {"+": [{"var": "accumulator"}, 1]}, inner]}
    assert compile_expression(nested).run({"x": [1, 2], "data": [1]}) == 3
    program = compile_expression(expr)
    with pytest.raises(CertLogicError, match="budget"):
        program.run({"x": list(range(200_000))})
    assert program.run({"x": list(range(200_000))}, max_steps=10**6) == 200_000
    with pytest.raises(CertLogicError, match="array or null"):
        program.run({"x": "abc"})


def test_deeply_nested_data_compare_is_bounded() -> None:
    value: Any = 1
    for _ in range(10_000):
        value = [value]
    with pytest.raises(CertLogicError, match="too deeply"):
        evaluate({"===": [{"var": "0"}, {"var": "1"}]}, [value, value])


def test_extract_from_uvci() -> None:
    expr = {"extractFromUVCI": [{"var": "ci"}, 1]}
    assert evaluate(expr, {"ci": "URN:UVCI:01:ID:ABC#X"}) == "ID"
    assert evaluate(expr, {"ci": None}) is None
    assert evaluate(expr, {}) is None
    with pytest.raises(CertLogicError, match="string or null"):
        evaluate(expr, {"ci": 5})


def test_compiled_program_is_reusable_and_pure() -> None:
    program = compile_expression(
        {"and": [{"var": "payload.v.0"}, {"in": [{"var": "payload.v.0.mp"}, ["A", "B"]]}]})
    assert program.run({"payload": {"v": [{"mp": "A"}]}}) is True
    assert program.run({"payload": {"v": [{"mp": "C"}]}}) is False
    assert program.run({"payload": {"v": []}}) is None
    assert program.run({"payload": {"v": [{"mp": "A"}]}}) is True


# --- hostile input: only CertLogicError ever escapes --------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=25,
)
OPERATORS = ["var", "if", "!", "and", "===", "in", "+", "<", ">", "<=", ">=", "before", "after",
             "not-after", "not-before", "plusTime", "dccDateOfBirth", "reduce", "extractFromUVCI"]
DATES = st.sampled_from(["2021-06-01", "2004", "2004-02", "2021-06-01T12:00:00Z", "2021-02-30",
                         "", "2021-06-01T12:00:00.5+01:00"])
PATHS = st.sampled_from(["", "x", "x.0", "current", "accumulator", "a.b", "0", "1"])


def _certlogicish(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    operation = st.builds(lambda op, args: {op: args}, st.sampled_from(OPERATORS),
                          st.lists(children, max_size=4))
    return (operation
            | st.builds(lambda path: {"var": path}, PATHS)
            | st.builds(lambda d, n, u: {"plusTime": [d, n, u]}, children | DATES,
                        st.integers(-10**6, 10**6), st.sampled_from(["year", "month", "day",
                                                                      "hour", "week"]))
            | st.lists(children, max_size=3))


EXPRESSIONS = st.recursive(
    st.booleans() | st.integers(-5, 5) | DATES | st.builds(lambda p: {"var": p}, PATHS),
    _certlogicish, max_leaves=30,
)
DATA = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | DATES | st.floats(allow_nan=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["x", "a", "b", "0", "1"]), children, max_size=3),
    max_leaves=20,
)


def _run_hostile(expr: Any, data: Any) -> None:
    try:
        program = compile_expression(expr)
    except CertLogicError:
        return
    with contextlib.suppress(CertLogicError):
        program.run(data)


@settings(max_examples=400, deadline=None)
@given(JSON, JSON)
def test_arbitrary_json_raises_only_certlogic_errors(expr: Any, data: Any) -> None:
    _run_hostile(expr, data)


@settings(max_examples=800, deadline=None)
@given(EXPRESSIONS, DATA)
def test_generated_expressions_raise_only_certlogic_errors(expr: Any, data: Any) -> None:
    _run_hostile(expr, data)


def _containers(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_containers(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_containers(v) for v in value), default=0)
    return 0


def test_deepest_accepted_expression_in_containers() -> None:
    """docs/certlogic.md tells the bundle format: at most 2 x 64 + 1 CBOR containers per Logic."""
    deepest: Any = {"var": "x"}
    for _ in range(MAX_DEPTH):
        deepest = {"!": [deepest]}
    compile_expression(deepest)
    assert _containers(deepest) == 2 * MAX_DEPTH + 1
    with pytest.raises(CertLogicError):
        compile_expression({"!": [deepest]})
    with pytest.raises(CertLogicError):
        compile_expression([deepest])
